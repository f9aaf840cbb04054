//! Forget and prune on real stores: what is freed, what stays readable, registered readers,
//! and a crash (a panic at a fail point) at every step, then a re-run.

use std::fs;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;

use super::forget::{ForgetOptions, forget};
use super::prune::{PruneOptions, prune};
use crate::failpoint::{Action, Point, arm, disarm};
use crate::format::policy::Policy;
use crate::format::retention::KeepRules;
use crate::format::snapshot::SnapshotId;
use crate::read::reader::FileReader;
use crate::read::verify::{VerifyOptions, verify};
use crate::store::Store;
use crate::testdata::pseudo;
use crate::write::progress::WriteProgress;
use crate::write::{WriteOptions, write_snapshot};

const DAY_NS: i64 = 86_400_000_000_000;
/// 2026-01-01T03:00:00Z.
const START_NS: i64 = 1_767_236_400_000_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    /// Each snapshot and the content of `big` and `small` in it.
    days: Vec<(SnapshotId, Vec<u8>, Vec<u8>)>,
}

/// A store with `n` daily snapshots of a 300 KiB file in a chain (one block changed a day)
/// and a small file stored whole (changed every day).
fn fixture(n: usize, policy: Policy) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let store = Store::init(&root, policy).unwrap();
    let mut big = pseudo(300 << 10, 1);
    let mut days = Vec::new();
    for d in 0..n {
        let at = (d * 4096 * 7) % big.len();
        big[at..at + 4096].copy_from_slice(&pseudo(4096, 100 + d as u64));
        let small = pseudo(1000, 1000 + d as u64);
        fs::write(src.join("big"), &big).unwrap();
        fs::write(src.join("small"), &small).unwrap();
        let opts = WriteOptions {
            policy,
            time_ns: Some(START_NS + d as i64 * DAY_NS),
            ..WriteOptions::default()
        };
        let s = write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
        days.push((s.snapshot, big.clone(), small));
    }
    Fixture {
        _dir: dir,
        root,
        src,
        days,
    }
}

fn small_policy() -> Policy {
    Policy {
        min_delta_size: 64 << 10,
        ..Policy::default()
    }
}

fn read_all(store: &Store, id: &SnapshotId, path: &str) -> Vec<u8> {
    let snap = store.snapshot(id).unwrap();
    let e = snap.entry(snap.lookup(path.as_bytes()).unwrap()).unwrap();
    let r = FileReader::open(store, &e.content.unwrap(), e.meta.size).unwrap();
    let mut buf = vec![0u8; e.meta.size as usize];
    assert_eq!(r.read_at(0, &mut buf).unwrap(), buf.len());
    buf
}

/// Every snapshot still in the store reads back as written, and verify finds nothing wrong
/// and nothing unreferenced.
fn check_kept(f: &Fixture) {
    let store = Store::open(&f.root).unwrap();
    let ids = store.snapshot_ids().unwrap();
    for (id, big, small) in &f.days {
        if ids.contains(id) {
            assert!(read_all(&store, id, "big") == *big, "{id}: big differs");
            assert!(read_all(&store, id, "small") == *small, "{id}: small differs");
        }
    }
    let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Forgets all but the `n` newest snapshots; returns those forgotten.
pub(super) fn keep_last(root: &Path, n: u32) -> Vec<SnapshotId> {
    let store = Store::open(root).unwrap();
    let opts = ForgetOptions {
        rules: Some(KeepRules {
            last: Some(n),
            ..KeepRules::default()
        }),
        wait_for_lock: true,
        ..ForgetOptions::default()
    };
    forget(&store, &opts, &TimeZone::UTC).unwrap().removed
}

/// What a prune of `store` would do, changing nothing.
pub(super) fn dry_prune(store: &Store) -> crate::retention::prune::PruneReport {
    prune(
        store,
        &PruneOptions {
            dry_run: true,
            ..PruneOptions::default()
        },
    )
    .unwrap()
}

fn files_under(dir: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        n += if p.is_dir() { files_under(&p) } else { 1 };
    }
    n
}

#[test]
fn forget_then_prune_frees_what_only_forgotten_snapshots_used() {
    let f = fixture(6, small_policy());
    let removed = keep_last(&f.root, 2);
    assert_eq!(removed.len(), 4);
    let store = Store::open(&f.root).unwrap();
    assert_eq!(store.snapshot_ids().unwrap().len(), 2);
    let dry = dry_prune(&store);
    // Four small files stored whole are freed; the chain is still needed by the newest.
    assert!(dry.freed.files >= 4, "{dry:?}");
    let stored = |f: &Fixture| files_under(&f.root.join("objects")) + files_under(&f.root.join("versions"));
    let before = stored(&f);
    let real = prune(&store, &PruneOptions::default()).unwrap();
    assert_eq!(
        real.freed, dry.freed,
        "the dry run's estimate is what the real run frees"
    );
    assert!(!real.upgraded);
    assert_eq!(real.deferred.files, 0);
    assert_eq!(stored(&f), before - real.freed.files as usize);
    check_kept(&f);
    let again = prune(&Store::open(&f.root).unwrap(), &PruneOptions::default()).unwrap();
    assert_eq!(again.freed.files, 0, "a second prune finds nothing");
    assert!(!again.upgraded);
}

#[test]
fn the_first_prune_upgrades_a_version_1_store() {
    let f = fixture(2, small_policy());
    let store = Store::open(&f.root).unwrap();
    let mut v1 = store.config().clone();
    v1.format = crate::format::FormatVersion::V1;
    crate::store::write_config(&crate::store::backend::LocalBackend::new(&f.root), &v1).unwrap();
    let store = Store::open(&f.root).unwrap();
    assert_eq!(store.config().format, crate::format::FormatVersion::V1);
    let dry = dry_prune(&store);
    assert!(!dry.upgraded);
    assert_eq!(
        Store::open(&f.root).unwrap().config().format,
        crate::format::FormatVersion::V1
    );
    assert!(prune(&store, &PruneOptions::default()).unwrap().upgraded);
    let upgraded = Store::open(&f.root).unwrap();
    assert_eq!(upgraded.config().format, crate::format::FormatVersion::V2);
    assert_eq!(upgraded.config().policy, store.config().policy);
    assert_eq!(upgraded.config().store_id, store.config().store_id);
    check_kept(&f);
}

#[test]
fn forgetting_every_snapshot_frees_every_file() {
    let f = fixture(3, small_policy());
    let store = Store::open(&f.root).unwrap();
    let ids = store.snapshot_ids().unwrap();
    let opts = ForgetOptions {
        snapshots: ids,
        wait_for_lock: true,
        ..ForgetOptions::default()
    };
    assert_eq!(forget(&store, &opts, &TimeZone::UTC).unwrap().removed.len(), 3);
    prune(&store, &PruneOptions::default()).unwrap();
    assert_eq!(files_under(&f.root.join("objects")), 0);
    assert_eq!(files_under(&f.root.join("versions")), 0);
}

#[test]
fn a_registered_reader_holds_back_deletion_until_it_refreshes() {
    let f = fixture(4, small_policy());
    let reader = Store::open(&f.root).unwrap();
    reader.register_reader().unwrap();
    let first = f.days[0].0.clone();
    let before = read_all(&reader, &first, "small");
    keep_last(&f.root, 1);
    let quick = PruneOptions {
        reader_wait: std::time::Duration::from_millis(100),
        ..PruneOptions::default()
    };
    let r = prune(&Store::open(&f.root).unwrap(), &quick).unwrap();
    assert_eq!(r.freed.files, 0, "{r:?}");
    assert!(r.deferred.files >= 3);
    assert_eq!(r.waiting_for.len(), 1);
    // The reader still reads the forgotten snapshot it had open.
    assert_eq!(read_all(&reader, &first, "small"), before);
    // It catches up (as a mount does within a second); the next prune deletes.
    assert!(reader.refresh_after_prune().unwrap());
    let r2 = prune(&Store::open(&f.root).unwrap(), &quick).unwrap();
    assert_eq!(r2.freed.files, r.deferred.files);
    assert_eq!(r2.deferred.files, 0);
    // A reader that exits releases everything too.
    drop(reader);
    check_kept(&f);
}

#[test]
fn a_reader_that_is_gone_holds_nothing_back() {
    let f = fixture(3, small_policy());
    let reader = Store::open(&f.root).unwrap();
    reader.register_reader().unwrap();
    // A killed reader leaves its registration behind, unlocked.
    let dir = f.root.join("readers");
    let leftover = dir.join("999999-deadbeef");
    fs::write(&leftover, format!("{:020}\n", 0)).unwrap();
    drop(reader);
    keep_last(&f.root, 1);
    let r = prune(&Store::open(&f.root).unwrap(), &PruneOptions::default()).unwrap();
    assert_eq!(r.deferred.files, 0);
    assert!(!leftover.exists());
    check_kept(&f);
}

#[test]
fn a_condemned_file_that_a_write_reuses_is_kept() {
    let f = fixture(3, small_policy());
    let reader = Store::open(&f.root).unwrap();
    reader.register_reader().unwrap();
    keep_last(&f.root, 1);
    let quick = PruneOptions {
        reader_wait: std::time::Duration::ZERO,
        ..PruneOptions::default()
    };
    let store = Store::open(&f.root).unwrap();
    let r = prune(&store, &quick).unwrap();
    assert!(r.deferred.files > 0);
    // The first day's small file comes back: its condemned object is reused by name.
    fs::write(f.src.join("small"), &f.days[0].2).unwrap();
    let opts = WriteOptions {
        policy: small_policy(),
        time_ns: Some(START_NS + 10 * DAY_NS),
        ..WriteOptions::default()
    };
    let s = write_snapshot(&store, &f.src, &opts, None, &WriteProgress::default()).unwrap();
    drop(reader);
    prune(&store, &PruneOptions::default()).unwrap();
    assert_eq!(
        read_all(&Store::open(&f.root).unwrap(), &s.snapshot, "small"),
        f.days[0].2
    );
    check_kept(&f);
}

#[test]
fn write_time_must_be_later_than_the_newest_snapshot() {
    let f = fixture(2, small_policy());
    let store = Store::open(&f.root).unwrap();
    for at in [START_NS, START_NS + DAY_NS] {
        let opts = WriteOptions {
            policy: small_policy(),
            time_ns: Some(at),
            ..WriteOptions::default()
        };
        let err = write_snapshot(&store, &f.src, &opts, None, &WriteProgress::default()).unwrap_err();
        assert!(matches!(err, crate::Error::TimeNotAfter { .. }), "{err}");
        assert!(err.to_string().contains("2026-01-02T03:00:00Z"), "{err}");
    }
    assert_eq!(store.snapshot_ids().unwrap().len(), 2);
}

#[test]
fn forget_refuses_without_rules_and_unknown_snapshots() {
    let f = fixture(2, small_policy());
    let store = Store::open(&f.root).unwrap();
    let err = forget(&store, &ForgetOptions::default(), &TimeZone::UTC).unwrap_err();
    assert!(matches!(err, crate::Error::NoKeepRules), "{err}");
    let opts = ForgetOptions {
        snapshots: vec![SnapshotId::parse("2020-01-01T00-00-00Z").unwrap()],
        ..ForgetOptions::default()
    };
    let err = forget(&store, &opts, &TimeZone::UTC).unwrap_err();
    assert!(matches!(err, crate::Error::SnapshotNotFound { .. }), "{err}");
    assert_eq!(store.snapshot_ids().unwrap().len(), 2);
}

#[test]
fn prune_refuses_while_a_manifest_is_damaged() {
    let f = fixture(3, small_policy());
    let store = Store::open(&f.root).unwrap();
    let path = store.snapshot_path(&f.days[1].0);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&path, bytes).unwrap();
    let before = files_under(&f.root.join("objects"));
    let err = prune(&store, &PruneOptions::default()).unwrap_err();
    assert!(matches!(err, crate::Error::PruneRefused { .. }), "{err}");
    assert!(err.to_string().contains(f.days[1].0.as_str()), "{err}");
    assert_eq!(files_under(&f.root.join("objects")), before);
}

/// A crash at `point` (its `nth` hit) during forget + prune, then a clean re-run: every kept
/// snapshot reads back, verify is clean, nothing unreferenced is left.
fn crash_then_rerun(point: Point, nth: u32) -> bool {
    let f = fixture(5, small_policy());
    arm(point, &f.root, Action::Panic, nth);
    let run = std::panic::catch_unwind(|| {
        keep_last(&f.root, 2);
        prune(&Store::open(&f.root).unwrap(), &PruneOptions::default()).unwrap();
    });
    let fired = !disarm(&f.root);
    assert_eq!(run.is_err(), fired);
    // Whatever state the crash left: every snapshot still listed reads back.
    let store = Store::open(&f.root).unwrap();
    for (id, big, _) in &f.days {
        if store.snapshot_ids().unwrap().contains(id) {
            assert!(
                read_all(&store, id, "big") == *big,
                "{point:?}/{nth}: {id} differs after the crash"
            );
        }
    }
    keep_last(&f.root, 2);
    prune(&store, &PruneOptions::default()).unwrap();
    check_kept(&f);
    let report = verify(&Store::open(&f.root).unwrap(), VerifyOptions::default()).unwrap();
    assert!(
        report.unreferenced.is_empty(),
        "{point:?}/{nth}: {:?}",
        report.unreferenced
    );
    fired
}

#[test]
fn a_crash_at_any_step_of_forget_and_prune_loses_nothing_and_a_rerun_finishes() {
    for point in [Point::ForgetDelete, Point::CondemnedWrite, Point::GenerationWrite] {
        assert!(crash_then_rerun(point, 1), "{point:?} never fired");
    }
    let mut nth = 1;
    while crash_then_rerun(Point::PruneDelete, nth) {
        nth += 1;
    }
    // Three forgotten days' small files (their chain versions are still needed by the newest).
    assert!(nth > 3, "prune deleted only {} files", nth - 1);
}
