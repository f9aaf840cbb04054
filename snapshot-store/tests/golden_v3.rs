//! The golden store of format version 3, checked in under `tests/fixtures/format-v3/`: an
//! incremental chain six deep whose delta records carry lineages (format-3 records), and a
//! second file whose chain was merged under its kept versions (records above a merged full
//! rewritten with their new lineages). Every snapshot must read back as recorded, the records
//! must say format version 3 exactly where they have a lineage, and the store must verify clean.
//!
//! `BACKUP_FS_REGENERATE_GOLDEN=1 cargo test -p snapshot-store --test golden_v3` writes a new
//! store (only when the format changes on purpose).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;
use snapshot_store::{
    ForgetOptions, FormatVersion, KeepRules, Policy, PruneOptions, Retention, SnapshotId, Store, VerifyOptions,
    VersionState, WriteOptions, WriteProgress, file_history, forget, prune, verify, write_snapshot,
};

mod common;
use common::golden::{describe, open_copy, text};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/format-v3")
}

const DAY_NS: i64 = 86_400_000_000_000;
/// 2026-07-01T03:00:00Z.
const START_NS: i64 = 1_782_874_800_000_000_000;

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
    // Merging keeps the newest three snapshots' versions, so both chains are merged under
    // day 4 by the prune at the end.
    let retention = Retention {
        keep: KeepRules {
            last: Some(3),
            ..KeepRules::default()
        },
        delta_merge: true,
        ..Retention::default()
    };
    let store_dir = out.join("store");
    let store = Store::init_with(&store_dir, policy, retention).unwrap();
    let (mut deep, mut merged) = (text(300_000, 3), text(200_000, 4));
    for day in 0..7usize {
        for (data, step) in [(&mut deep, 41_000), (&mut merged, 29_000)] {
            let at = (day * step) % (data.len() - 100);
            let mark = format!("day {day:02} edited here");
            data[at..at + mark.len()].copy_from_slice(mark.as_bytes());
        }
        fs::write(src.join("deep.bin"), &deep).unwrap();
        fs::write(src.join("merged.bin"), &merged).unwrap();
        let opts = WriteOptions {
            policy,
            time_ns: Some(START_NS + day as i64 * DAY_NS),
            ..WriteOptions::default()
        };
        write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
    }
    let forget_opts = ForgetOptions {
        wait_for_lock: true,
        ..ForgetOptions::default()
    };
    forget(&store, &forget_opts, &jiff::tz::TimeZone::UTC).unwrap();
    let quick = PruneOptions {
        reader_wait: std::time::Duration::ZERO,
        ..PruneOptions::default()
    };
    let report = prune(&store, &quick).unwrap();
    assert_eq!(report.merges.merged.len(), 2, "{report:?}");
    let ids = store.snapshot_ids().unwrap();
    let doc = json!({
        "format_version": 3,
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

/// The format version each record file in `versions/` is sealed as, counted.
fn record_versions(root: &Path) -> [usize; 4] {
    let mut n = [0; 4];
    for fan in fs::read_dir(root.join("versions")).unwrap() {
        for f in fs::read_dir(fan.unwrap().path()).unwrap() {
            let bytes = fs::read(f.unwrap().path()).unwrap();
            n[usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))] += 1;
        }
    }
    n
}

#[test]
fn a_store_of_format_version_3_reads_back_exactly_with_its_lineages() {
    if std::env::var("BACKUP_FS_REGENERATE_GOLDEN").is_ok_and(|v| v == "1") {
        regenerate();
    }
    let common::golden::Opened {
        want,
        dir: _dir,
        root,
        store,
    } = open_copy(&fixture());
    assert_eq!(want["format_version"], 3);
    assert_eq!(store.config().format, FormatVersion::V3);
    let snapshots = want["snapshots"].as_array().unwrap();
    assert_eq!(store.snapshot_ids().unwrap().len(), snapshots.len());
    for s in snapshots {
        let id = SnapshotId::parse(s["snapshot"].as_str().unwrap()).unwrap();
        let got = serde_json::to_value(describe(&store, &id)).unwrap();
        assert_eq!(got, s["entries"], "snapshot {id}");
    }
    // Each file: a merged full (version 2) and two deltas above it; the upper one has the
    // merged full as its lineage (version 3), the lower one none (version 1).
    for path in [&b"deep.bin"[..], b"merged.bin"] {
        let depths: Vec<(VersionState, u32)> = (file_history(&store, path).unwrap().entries.iter())
            .map(|e| (e.state, e.depth))
            .collect();
        assert_eq!(
            depths,
            [
                (VersionState::Merged, 0),
                (VersionState::Incremental, 1),
                (VersionState::Incremental, 2)
            ],
            "{}",
            String::from_utf8_lossy(path)
        );
    }
    assert_eq!(
        record_versions(&root),
        [0, 2, 2, 2],
        "records sealed as versions 1, 2 and 3"
    );
    let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.unreferenced.is_empty(), "{:?}", report.unreferenced);
}
