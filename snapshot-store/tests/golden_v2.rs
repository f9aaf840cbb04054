//! The golden store of format version 2, checked in under `tests/fixtures/format-v2/`: a store
//! with a stored retention policy whose chain was merged (a merged full and the records above it
//! replaced), with files still condemned (a reader was registered during the last prune) and a
//! merge request the merge interval deferred. Every kept snapshot must read back as recorded, and
//! a prune of a copy must finish what was left.
//!
//! `BACKUP_FS_REGENERATE_GOLDEN=1 cargo test -p snapshot-store --test golden_v2` writes a new
//! store (only when the format changes on purpose).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;
use snapshot_store::{
    ForgetOptions, KeepRules, Policy, PruneOptions, Retention, SnapshotId, Store, VerifyOptions, VersionState,
    WriteOptions, WriteProgress, file_history, forget, prune, verify, write_snapshot,
};

mod common;
use common::golden::{describe, open_copy, text};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/format-v2")
}

const DAY_NS: i64 = 86_400_000_000_000;
/// 2026-06-01T03:00:00Z.
const START_NS: i64 = 1_780_282_800_000_000_000;

fn regenerate() {
    let out = fixture();
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let policy = Policy {
        min_delta_size: 64 << 10,
        ..Policy::default()
    };
    let retention = Retention {
        keep: KeepRules {
            last: Some(2),
            ..KeepRules::default()
        },
        delta_merge: true,
        merge_interval_s: 2 * 86_400,
        ..Retention::default()
    };
    let store_dir = out.join("store");
    let store = Store::init_with(&store_dir, policy, retention).unwrap();
    let mut big = text(300_000, 1);
    let mut day = 0;
    let mut write = |big: &mut Vec<u8>| {
        let at = (day * 37_000) % (big.len() - 100);
        let mark = format!("day {day:02} edited here");
        big[at..at + mark.len()].copy_from_slice(mark.as_bytes());
        fs::write(src.join("big.bin"), &*big).unwrap();
        fs::write(src.join("small.txt"), format!("small file of day {day}\n")).unwrap();
        let opts = WriteOptions {
            policy,
            time_ns: Some(START_NS + day as i64 * DAY_NS),
            ..WriteOptions::default()
        };
        day += 1;
        write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap()
    };
    let forget_and_prune = |store: &Store| {
        let opts = ForgetOptions {
            wait_for_lock: true,
            ..ForgetOptions::default()
        };
        forget(store, &opts, &jiff::tz::TimeZone::UTC).unwrap();
        let quick = PruneOptions {
            reader_wait: std::time::Duration::ZERO,
            ..PruneOptions::default()
        };
        prune(store, &quick).unwrap()
    };
    for _ in 0..4 {
        write(&mut big);
    }
    let first = forget_and_prune(&store);
    assert_eq!(first.merges.merged.len(), 1, "{first:?}");
    write(&mut big);
    // A reader registered while the next prune runs: what it condemns stays listed.
    let reader = Store::open(&store_dir).unwrap();
    reader.register_reader().unwrap();
    let second = forget_and_prune(&store);
    assert!(
        second.merges.merged.is_empty() && second.merges.deferred.len() == 1,
        "{second:?}"
    );
    assert!(second.deferred.files > 0, "{second:?}");
    drop(reader);
    let ids = store.snapshot_ids().unwrap();
    let history: Vec<&str> = file_history(&store, b"big.bin")
        .unwrap()
        .entries
        .iter()
        .map(|e| e.state.as_str())
        .collect();
    let doc = json!({
        "format_version": 2,
        "big.bin history": history,
        "snapshots": ids.iter().map(|id| json!({"snapshot": id.as_str(), "entries": describe(&store, id)})).collect::<Vec<_>>(),
    });
    fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&doc).unwrap() + "\n",
    )
    .unwrap();
    fs::remove_dir(store_dir.join("tmp")).unwrap();
    let _ = fs::remove_dir(store_dir.join("readers"));
}

#[test]
fn a_store_of_format_version_2_reads_back_exactly_and_a_prune_finishes_it() {
    if std::env::var("BACKUP_FS_REGENERATE_GOLDEN").is_ok_and(|v| v == "1") {
        regenerate();
    }
    let common::golden::Opened {
        want,
        dir: _dir,
        root,
        store,
    } = open_copy(&fixture());
    assert_eq!(want["format_version"], 2);
    assert_eq!(store.config().format, snapshot_store::FormatVersion::V2);
    let r = store.config().retention;
    assert!(r.delta_merge && !r.auto_prune);
    assert_eq!(r.keep.last, Some(2));
    assert_eq!(r.merge_interval_s, 2 * 86_400);
    let check_reads = |store: &Store| {
        let snapshots = want["snapshots"].as_array().unwrap();
        assert_eq!(store.snapshot_ids().unwrap().len(), snapshots.len());
        for s in snapshots {
            let id = SnapshotId::parse(s["snapshot"].as_str().unwrap()).unwrap();
            let got = serde_json::to_value(describe(store, &id)).unwrap();
            assert_eq!(got, s["entries"], "snapshot {id}");
        }
    };
    check_reads(&store);
    // Both kept versions are deltas over the merged full of the first prune (depth 0, in no
    // kept snapshot: the second prune's merge waits for its interval).
    let history: Vec<(VersionState, u32)> = file_history(&store, b"big.bin")
        .unwrap()
        .entries
        .iter()
        .map(|e| (e.state, e.depth))
        .collect();
    assert_eq!(
        history,
        [(VersionState::Incremental, 1), (VersionState::Incremental, 2)]
    );
    let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.unreferenced.is_empty(), "{:?}", report.unreferenced);
    assert!(!report.condemned.is_empty(), "the fixture holds condemned files");
    assert!(
        root.join("queue").read_dir().unwrap().count() == 1,
        "a deferred merge request"
    );
    // A prune of the copy deletes what was condemned; everything still reads back.
    let p = prune(&store, &PruneOptions::default()).unwrap();
    assert!(p.freed.files as usize >= report.condemned.len(), "{p:?}");
    check_reads(&Store::open(&root).unwrap());
    let report = verify(&Store::open(&root).unwrap(), VerifyOptions { read_data: true }).unwrap();
    assert!(report.problems.is_empty() && report.condemned.is_empty(), "{report:?}");
}
