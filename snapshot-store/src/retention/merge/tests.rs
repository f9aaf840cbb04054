//! Delta merging on real stores: every kept version reads the same bytes before and after, the
//! store shrinks, records and objects below the merged full go, repacking, the merge interval,
//! crashes at every step of a merge, and writes after a merge.

use std::fs;
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use proptest::prelude::*;

use crate::failpoint::{Action, Point, arm, disarm};
use crate::format::policy::{Percent, Policy};
use crate::format::retention::Retention;
use crate::format::snapshot::SnapshotId;
use crate::format::version::VersionKind;
use crate::read::reader::FileReader;
use crate::read::verify::{VerifyOptions, verify};
use crate::retention::forget::{ForgetOptions, forget};
use crate::retention::prune::{PruneOptions, PruneReport, prune};
use crate::store::Store;
use crate::testdata::pseudo;
use crate::write::progress::WriteProgress;
use crate::write::{WriteOptions, write_snapshot};

const DAY_NS: i64 = 86_400_000_000_000;
const START_NS: i64 = 1_767_236_400_000_000_000;
const SIZE: usize = 256 << 10;

struct Store2 {
    _dir: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    day: i64,
    /// Each snapshot written and the file's content in it.
    history: Vec<(SnapshotId, Vec<u8>)>,
}

fn policy() -> Policy {
    Policy {
        min_delta_size: 64 << 10,
        block_size: crate::format::policy::BlockSize::Fixed(4096),
        ..Policy::default()
    }
}

fn merging(max_unused: u32) -> Retention {
    Retention {
        delta_merge: true,
        max_unused: Percent(max_unused * 100),
        ..Retention::default()
    }
}

impl Store2 {
    fn new(retention: Retention) -> Store2 {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        Store::init_with(&root, policy(), retention).unwrap();
        Store2 {
            _dir: dir,
            root,
            src,
            day: 0,
            history: Vec::new(),
        }
    }

    fn store(&self) -> Store {
        Store::open(&self.root).unwrap()
    }

    /// Writes `data` as the next day's snapshot.
    fn write(&mut self, data: &[u8]) -> SnapshotId {
        fs::write(self.src.join("f"), data).unwrap();
        let opts = WriteOptions {
            policy: policy(),
            time_ns: Some(START_NS + self.day * DAY_NS),
            ..WriteOptions::default()
        };
        self.day += 1;
        let s = write_snapshot(&self.store(), &self.src, &opts, None, &WriteProgress::default()).unwrap();
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        self.history.push((s.snapshot.clone(), data.to_vec()));
        s.snapshot
    }

    fn keep_last(&self, n: u32) {
        crate::retention::tests::keep_last(&self.root, n);
    }

    fn forget(&self, ids: Vec<SnapshotId>) {
        let opts = ForgetOptions {
            snapshots: ids,
            wait_for_lock: true,
            ..ForgetOptions::default()
        };
        forget(&self.store(), &opts, &TimeZone::UTC).unwrap();
    }

    fn prune(&self) -> PruneReport {
        prune(&self.store(), &PruneOptions::default()).unwrap()
    }

    /// Every snapshot left reads back as written, and `verify --read-data` is clean.
    fn check(&self) {
        let store = self.store();
        let ids = store.snapshot_ids().unwrap();
        for (id, data) in self.history.iter().filter(|(id, _)| ids.contains(id)) {
            let snap = store.snapshot(id).unwrap();
            let e = snap.entry(snap.lookup(b"f").unwrap()).unwrap();
            let r = FileReader::open(&store, &e.content.unwrap(), e.meta.size).unwrap();
            let mut got = vec![0u8; data.len()];
            assert_eq!(r.read_at(0, &mut got).unwrap(), got.len());
            assert!(got == *data, "snapshot {id} reads other bytes");
        }
        let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.unreferenced.is_empty(), "{:?}", report.unreferenced);
        assert!(report.pending.is_empty(), "{:?}", report.pending);
    }

    fn kind_of(&self, id: &SnapshotId) -> VersionKind {
        let store = self.store();
        let snap = store.snapshot(id).unwrap();
        let e = snap.entry(snap.lookup(b"f").unwrap()).unwrap();
        store.version(&e.content.unwrap().version).unwrap().kind
    }
}

fn files_under(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |rd| {
        rd.map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { files_under(&p) } else { 1 }
        })
        .sum()
    })
}

/// Overwrites one 4 KiB block chosen by `day` with new bytes.
fn edit(data: &mut [u8], day: u64) {
    let blocks = data.len() / 4096;
    let b = (day as usize * 7) % blocks;
    data[b * 4096..(b + 1) * 4096].copy_from_slice(&pseudo(4096, 1000 + day));
}

#[test]
fn merging_frees_the_chain_below_the_oldest_kept_version() {
    let mut s = Store2::new(merging(20));
    let mut data = pseudo(SIZE, 1);
    for day in 0..10 {
        edit(&mut data, day);
        s.write(&data);
    }
    let versions_before = files_under(&s.root.join("versions"));
    assert_eq!(versions_before, 10);
    s.keep_last(3);
    let r = s.prune();
    assert_eq!(r.merges.merged.len(), 1, "{r:?}");
    let m = &r.merges.merged[0];
    assert_eq!((m.absorbed, m.rewritten, m.path.as_str()), (7, 3, "f"));
    // Their literal data is still used by the merged full (each day changed another block).
    assert!(r.freed.files >= 7 * 2, "records and signatures of 7 versions: {r:?}");
    assert_eq!(files_under(&s.root.join("versions")), 3);
    let oldest_kept = s.store().snapshot_ids().unwrap()[0].clone();
    assert_eq!(s.kind_of(&oldest_kept), VersionKind::Merged);
    s.check();
    // More days, more merges: the chain never grows past what is kept.
    for day in 10..20 {
        edit(&mut data, day);
        s.write(&data);
        s.keep_last(3);
        let r = s.prune();
        assert_eq!(r.merges.merged.len(), 1, "day {day}: {r:?}");
        s.check();
    }
    assert_eq!(files_under(&s.root.join("versions")), 3);
}

#[test]
fn the_dry_run_estimate_is_what_the_merge_frees() {
    let mut s = Store2::new(merging(20));
    let mut data = pseudo(SIZE, 2);
    for day in 0..8 {
        edit(&mut data, day);
        s.write(&data);
    }
    s.keep_last(2);
    let dry = crate::retention::tests::dry_prune(&s.store());
    assert_eq!(dry.merges.merged.len(), 1);
    assert!(dry.freed.files > 0);
    // The dry run changed nothing.
    assert_eq!(files_under(&s.root.join("versions")), 8);
    let real = s.prune();
    assert_eq!(real.freed, dry.freed);
    s.check();
}

#[test]
fn an_object_mostly_unused_is_repacked_and_freed() {
    let mut s = Store2::new(merging(20));
    // The first half of the file is rewritten every day: the full's first half is soon unused.
    let mut data = pseudo(SIZE, 3);
    s.write(&data);
    for day in 1..4 {
        data[..SIZE / 2].copy_from_slice(&pseudo(SIZE / 2, 50 + day));
        s.write(&data);
    }
    s.keep_last(1);
    let r = s.prune();
    let m = &r.merges.merged[0];
    assert!(m.copied > 0 && m.copied <= (SIZE / 2) as u64, "{m:?}");
    s.check();
    // Without repacking the old full would stay: with max unused 100% it does.
    let mut t = Store2::new(merging(100));
    let mut data = pseudo(SIZE, 3);
    t.write(&data);
    for day in 1..4 {
        data[..SIZE / 2].copy_from_slice(&pseudo(SIZE / 2, 50 + day));
        t.write(&data);
    }
    t.keep_last(1);
    let r = t.prune();
    assert_eq!(r.merges.merged[0].copied, 0);
    t.check();
    let size = |x: &Store2| files_under(&x.root.join("objects"));
    assert!(size(&s) <= size(&t));
}

#[test]
fn a_chain_is_merged_at_most_once_per_interval() {
    let mut s = Store2::new(Retention {
        merge_interval_s: 3 * 86_400,
        ..merging(20)
    });
    let mut data = pseudo(SIZE, 4);
    let mut merged_days = Vec::new();
    for day in 0..8 {
        edit(&mut data, day);
        s.write(&data);
        s.keep_last(2);
        let r = s.prune();
        if !r.merges.merged.is_empty() {
            merged_days.push(day);
        } else if day >= 2 {
            assert_eq!(r.merges.deferred, ["f"], "day {day}");
        }
        s.check();
    }
    assert_eq!(merged_days, [2, 5], "a merge every three days of snapshot time");
    // The deferred request is still queued (it survives a crash).
    assert_eq!(s.store().merge_requests().unwrap().len(), 1);
}

#[test]
fn without_delta_merge_nothing_is_merged_and_the_chain_stays() {
    let mut s = Store2::new(Retention::default());
    let mut data = pseudo(SIZE, 5);
    for day in 0..6 {
        edit(&mut data, day);
        s.write(&data);
    }
    s.keep_last(2);
    let r = s.prune();
    assert!(r.merges.merged.is_empty());
    assert_eq!(files_under(&s.root.join("versions")), 6);
    s.check();
}

#[test]
fn differential_chains_are_not_merged_but_unused_differentials_are_freed() {
    let mut s = Store2::new(Retention::default());
    let mut data = pseudo(SIZE, 6);
    let diff = Policy {
        mode: crate::format::policy::DeltaMode::Differential,
        ..policy()
    };
    for day in 0..6 {
        edit(&mut data, day);
        fs::write(s.src.join("f"), &data).unwrap();
        let opts = WriteOptions {
            policy: diff,
            time_ns: Some(START_NS + day as i64 * DAY_NS),
            ..WriteOptions::default()
        };
        let w = write_snapshot(&s.store(), &s.src, &opts, None, &WriteProgress::default()).unwrap();
        s.history.push((w.snapshot, data.clone()));
    }
    s.keep_last(2);
    let r = s.prune();
    assert!(r.merges.merged.is_empty());
    // The full and the two kept differentials remain.
    assert_eq!(files_under(&s.root.join("versions")), 3);
    s.check();
}

impl Store2 {
    /// Checks every kept version's lineage against its base links: the versions under its
    /// base down to the first that starts a map; returns the longest.
    fn check_lineages(&self) -> usize {
        let store = self.store();
        let mut longest = 0;
        for id in store.snapshot_ids().unwrap() {
            let snap = store.snapshot(&id).unwrap();
            let content = snap.entry(snap.lookup(b"f").unwrap()).unwrap().content.unwrap();
            let v = store.version(&content.version).unwrap();
            let mut under = Vec::new();
            let mut at = v.base.map(|b| store.version(&b).unwrap());
            while let Some(b) = at.filter(|b| !b.starts_a_map()) {
                let next = store.version(&b.base.unwrap()).unwrap();
                under.push(next.id);
                at = Some(next);
            }
            assert_eq!(v.lineage, under, "lineage of the version of snapshot {id}");
            longest = longest.max(under.len());
        }
        longest
    }
}

#[test]
fn lineages_name_the_chain_under_each_base_and_a_merge_rewrites_them() {
    let mut s = Store2::new(merging(20));
    let mut data = pseudo(SIZE, 3);
    for day in 0..8 {
        edit(&mut data, day);
        s.write(&data);
    }
    assert_eq!(s.check_lineages(), 6, "depth 7 names the six versions under its base");
    s.keep_last(3);
    assert_eq!(s.prune().merges.merged.len(), 1);
    // The kept versions are a merged full and two deltas above it.
    assert_eq!(s.check_lineages(), 1);
    s.check();
}

#[test]
fn writes_after_a_merge_build_on_the_merged_full() {
    let mut s = Store2::new(merging(20));
    let mut data = pseudo(SIZE, 7);
    for day in 0..5 {
        edit(&mut data, day);
        s.write(&data);
    }
    s.keep_last(1);
    s.prune();
    let newest = s.history.last().unwrap().0.clone();
    assert_eq!(s.kind_of(&newest), VersionKind::Merged);
    edit(&mut data, 99);
    let next = s.write(&data);
    assert_eq!(s.kind_of(&next), VersionKind::Incremental);
    let store = s.store();
    let snap = store.snapshot(&next).unwrap();
    let v = store
        .version(&snap.entry(snap.lookup(b"f").unwrap()).unwrap().content.unwrap().version)
        .unwrap();
    assert_eq!((v.depth, v.deltas_since_full), (1, 1));
    assert!(
        v.stored_bytes < 3 * 4096 + 4096,
        "one block changed: {}",
        v.stored_bytes
    );
    s.check();
}

/// A crash at `point` (its `nth` hit) during a prune that merges, then (optionally a write and)
/// a clean re-run: every snapshot reads back, nothing is left over.
fn crash_during_merge(point: Point, nth: u32, write_between: bool) -> bool {
    let mut s = Store2::new(merging(20));
    let mut data = pseudo(SIZE, 8);
    for day in 0..6 {
        edit(&mut data, day);
        s.write(&data);
    }
    s.keep_last(2);
    arm(point, &s.root, Action::Panic, nth);
    let crashed = std::panic::catch_unwind(|| {
        prune(&Store::open(&s.root).unwrap(), &PruneOptions::default()).unwrap();
    })
    .is_err();
    let fired = !disarm(&s.root);
    assert_eq!(crashed, fired);
    // Readers see every kept snapshot whole, whatever the crash left.
    let store = s.store();
    let ids = store.snapshot_ids().unwrap();
    for (id, d) in s.history.iter().filter(|(id, _)| ids.contains(id)) {
        let snap = store.snapshot(id).unwrap();
        let e = snap.entry(snap.lookup(b"f").unwrap()).unwrap();
        let r = FileReader::open(&store, &e.content.unwrap(), e.meta.size).unwrap();
        let mut got = vec![0u8; d.len()];
        r.read_at(0, &mut got).unwrap();
        assert!(got == *d, "{point:?}/{nth}: {id} differs after the crash");
    }
    if write_between {
        edit(&mut data, 77);
        s.write(&data);
        s.keep_last(3);
    }
    s.prune();
    s.check();
    fired
}

#[test]
fn a_crash_at_any_step_of_a_merge_loses_nothing_and_the_next_run_finishes() {
    for point in [Point::MergeObjects, Point::JournalStaged, Point::JournalCommit] {
        for write_between in [false, true] {
            assert!(crash_during_merge(point, 1, write_between), "{point:?} never fired");
        }
    }
    for (point, min) in [
        (Point::JournalRename, 2),
        (Point::StagedRename, 2),
        (Point::PruneDelete, 10),
    ] {
        let mut nth = 1;
        while crash_during_merge(point, nth, nth % 2 == 0) {
            nth += 1;
        }
        assert!(nth > min, "{point:?} fired only {} times", nth - 1);
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Overwrite { at: usize, len: usize, seed: u64 },
    Insert { at: usize, len: usize, seed: u64 },
    Truncate { at: usize },
    Append { len: usize, seed: u64 },
}

fn apply(data: &mut Vec<u8>, e: &Edit) {
    match *e {
        Edit::Overwrite { at, len, seed } => {
            let at = at % data.len().max(1);
            let end = (at + len).min(data.len());
            data[at..end].copy_from_slice(&pseudo(end - at, seed));
        }
        Edit::Insert { at, len, seed } => {
            let at = at % (data.len() + 1);
            let tail = data.split_off(at);
            data.extend(pseudo(len, seed));
            data.extend(tail);
        }
        Edit::Truncate { at } => {
            let keep = (64 << 10) + at % (data.len().saturating_sub(64 << 10) + 1);
            data.truncate(keep);
        }
        Edit::Append { len, seed } => data.extend(pseudo(len, seed)),
    }
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..40_000, any::<u64>()).prop_map(|(at, len, seed)| Edit::Overwrite { at, len, seed }),
        (any::<usize>(), 1usize..20_000, any::<u64>()).prop_map(|(at, len, seed)| Edit::Insert { at, len, seed }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
        (1usize..30_000, any::<u64>()).prop_map(|(len, seed)| Edit::Append { len, seed }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Any chain, any kept set, merged in rounds as days go by: every kept version reads the
    /// same bytes before and after, and verify is clean.
    #[test]
    fn merges_keep_every_kept_version_readable(
        days in prop::collection::vec(prop::collection::vec(edit_strategy(), 1..4), 3..12),
        keep in prop::collection::vec(any::<bool>(), 12),
        max_unused in prop_oneof![Just(0u32), Just(20), Just(100)],
        prune_every in 1usize..5,
    ) {
        let mut s = Store2::new(merging(max_unused));
        let mut data = pseudo(100 << 10, 9);
        for (i, edits) in days.iter().enumerate() {
            for e in edits {
                apply(&mut data, e);
            }
            s.write(&data);
            if (i + 1) % prune_every == 0 {
                // Forget a random part of what is there (never the newest).
                let ids = s.store().snapshot_ids().unwrap();
                let n = ids.len();
                let gone: Vec<SnapshotId> = ids
                    .into_iter()
                    .take(n - 1)
                    .enumerate()
                    .filter(|(j, _)| !keep[(i + j) % keep.len()])
                    .map(|(_, id)| id)
                    .collect();
                if !gone.is_empty() {
                    s.forget(gone);
                }
                s.prune();
                s.check();
            }
        }
        s.prune();
        s.check();
    }
}
