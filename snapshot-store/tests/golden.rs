//! The golden store: a small store written by format version 1, checked in under
//! `tests/fixtures/format-v1/`, with what every file of every snapshot must read back as. A
//! change that breaks the reading of old stores fails here.
//!
//! The store holds four snapshots of one tree: a full version of a large file, then an
//! incremental delta, a differential delta and a change-tracked delta of it; a sparse file
//! (holes); `user.*` extended attributes; a hard link; a symbolic link; a named pipe; a nested
//! directory; small files stored whole.
//!
//! `BACKUP_FS_REGENERATE_GOLDEN=1 cargo test -p snapshot-store --test golden` writes a new store
//! and its expectations (only when the format changes on purpose: then the format version
//! changes too, and the old fixture stays as the store of the old version).
#![allow(clippy::single_range_in_vec_init)] // a list of changed ranges that holds one range

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use snapshot_store::{
    ChangeSource, DeltaMode, ListProvider, Policy, RangeSet, Store, Tracking, VerifyOptions, VersionState,
    WriteOptions, WriteProgress, file_history, verify, write_snapshot,
};

mod common;
use common::golden::{describe, open_copy, text};
use common::pseudo;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/format-v1")
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty()).expect("user xattrs");
}

/// Edits `len` bytes of `path` in place at `at`.
fn edit(path: &Path, at: u64, bytes: &[u8]) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, at)
        .unwrap();
}

/// Writes the golden store and its expectations into the fixture directory.
fn regenerate() {
    let out = fixture();
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir_all(src.join("dir/nested")).unwrap();
    fs::write(src.join("big.bin"), text(300_000, 1)).unwrap();
    let sparse = fs::File::create(src.join("sparse.img")).unwrap();
    sparse.set_len(1 << 20).unwrap();
    sparse.write_all_at(&pseudo(10_000, 2), 4096).unwrap();
    sparse.write_all_at(&pseudo(5_000, 3), 700_000).unwrap();
    drop(sparse);
    fs::write(src.join("small.txt"), b"a small file, stored whole\n").unwrap();
    set_xattr(&src.join("small.txt"), "user.comment", b"golden");
    set_xattr(&src.join("small.txt"), "user.binary", &[0, 1, 2, 255]);
    fs::write(src.join("dir/nested/deep.txt"), b"deep\n").unwrap();
    fs::hard_link(src.join("small.txt"), src.join("dir/hardlink.txt")).unwrap();
    std::os::unix::fs::symlink("../small.txt", src.join("dir/symlink")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();

    let policy = Policy {
        min_delta_size: 64 << 10,
        change_tracking: true,
        ..Policy::default()
    };
    let store_dir = out.join("store");
    let store = Store::init(&store_dir, policy).unwrap();
    let write = |mode: DeltaMode, tracking: Option<&Tracking>| {
        std::thread::sleep(std::time::Duration::from_millis(2100)); // distinct ids, no racy reuse
        let opts = WriteOptions {
            policy: Policy { mode, ..policy },
            ..WriteOptions::default()
        };
        write_snapshot(&store, &src, &opts, tracking, &WriteProgress::default()).unwrap()
    };
    let mut states = Vec::new();
    // 1: full versions.
    let s = write(DeltaMode::Incremental, None);
    states.push((s.snapshot.clone(), describe(&store, &s.snapshot)));
    // 2: an incremental delta (an edit in place, an insertion shifting the rest).
    edit(&src.join("big.bin"), 1000, b"EDITED IN PLACE");
    let mut big = fs::read(src.join("big.bin")).unwrap();
    big.splice(150_000..150_000, text(5000, 9));
    fs::write(src.join("big.bin"), &big).unwrap();
    edit(&src.join("sparse.img"), 300_000, &pseudo(4096, 4));
    let s = write(DeltaMode::Incremental, None);
    states.push((s.snapshot.clone(), describe(&store, &s.snapshot)));
    // 3: a differential delta against the chain's full.
    edit(&src.join("big.bin"), 200_000, b"DIFFERENTIAL");
    let s = write(DeltaMode::Differential, None);
    states.push((s.snapshot.clone(), describe(&store, &s.snapshot)));
    // 4: a change-tracked delta: the changed range given by a list.
    edit(&src.join("big.bin"), 250_000, b"TRACKED CHANGE");
    let tracking = Tracking {
        providers: vec![Box::new(ListProvider::new([(
            "big.bin".to_string(),
            RangeSet::from_ranges([250_000..250_014]),
        )]))],
        verify_sample: 4,
    };
    let s = write(DeltaMode::Incremental, Some(&tracking));
    let big = s.files.iter().find(|f| f.path == "big.bin").unwrap();
    assert_eq!(big.change_source, Some(ChangeSource::List), "{big:?}");
    states.push((s.snapshot.clone(), describe(&store, &s.snapshot)));

    let history: Vec<&str> = file_history(&store, b"big.bin")
        .unwrap()
        .entries
        .iter()
        .map(|e| e.state.as_str())
        .collect();
    assert_eq!(history, ["full", "incremental", "differential", "incremental"]);
    let expected: Vec<Value> = states
        .into_iter()
        .map(|(id, files)| json!({"snapshot": id.as_str(), "entries": files}))
        .collect();
    let doc = json!({
        "format_version": 1,
        "big.bin history": history,
        "snapshots": expected,
    });
    fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();
    // Git keeps no empty directory: the test recreates tmp/ in its copy.
    fs::remove_dir(store_dir.join("tmp")).unwrap();
}

#[test]
fn a_store_of_format_version_1_reads_back_exactly() {
    if std::env::var("BACKUP_FS_REGENERATE_GOLDEN").is_ok_and(|v| v == "1") {
        regenerate();
    }
    let common::golden::Opened {
        want, dir: _dir, store, ..
    } = open_copy(&fixture());
    assert_eq!(want["format_version"], 1);
    let snapshots = want["snapshots"].as_array().unwrap();
    assert_eq!(store.snapshot_ids().unwrap().len(), snapshots.len());
    for s in snapshots {
        let id = snapshot_store::SnapshotId::parse(s["snapshot"].as_str().unwrap()).unwrap();
        let got = serde_json::to_value(describe(&store, &id)).unwrap();
        assert_eq!(got, s["entries"], "snapshot {id}");
    }
    // The kinds of the large file's versions, and the sparse file's holes.
    let history: Vec<VersionState> = file_history(&store, b"big.bin")
        .unwrap()
        .entries
        .iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(
        history,
        [
            VersionState::Full,
            VersionState::Incremental,
            VersionState::Differential,
            VersionState::Incremental
        ]
    );
    let last = &snapshots[snapshots.len() - 1]["entries"];
    assert_eq!(last["sparse.img"]["has_holes"], true);
    assert_eq!(last["dir/hardlink.txt"]["hard_linked"], true);
    assert_eq!(last["small.txt"]["xattrs"].as_array().unwrap().len(), 2);
    assert_eq!(last["fifo"]["kind"], "a named pipe");
    let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.unreferenced.is_empty(), "{:?}", report.unreferenced);
}
