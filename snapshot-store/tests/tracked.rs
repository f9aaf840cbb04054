//! Property test: change-tracked writes from exact changed ranges (in-place writes, appends,
//! truncation, growth, insertions reported as changed-to-the-end) give versions that read back
//! byte-identical, whose ids are the BLAKE3 of their content, in both modes — and read only the
//! changed blocks.
#![allow(clippy::single_range_in_vec_init)] // lists of changed ranges that hold one range

use std::fs;

use proptest::prelude::*;
use snapshot_store::{
    BlockSize, ChangeSource, DeltaMode, ListProvider, Policy, RangeSet, Store, Tracking, VerifyOptions, WriteOptions,
    WriteProgress, verify, write_snapshot,
};

mod common;
use common::{pseudo, write_in_place};

#[derive(Debug, Clone)]
enum Edit {
    Overwrite { at: usize, len: usize, seed: u64 },
    Append { len: usize, seed: u64 },
    Truncate { at: usize },
    Zeros { at: usize, len: usize },
    Insert { at: usize, len: usize, seed: u64 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), 1usize..9000, any::<u64>()).prop_map(|(at, len, seed)| Edit::Overwrite { at, len, seed }),
        1 => (1usize..30_000, any::<u64>()).prop_map(|(len, seed)| Edit::Append { len, seed }),
        1 => any::<usize>().prop_map(|at| Edit::Truncate { at }),
        1 => (any::<usize>(), 1usize..20_000).prop_map(|(at, len)| Edit::Zeros { at, len }),
        1 => (any::<usize>(), 1usize..3000, any::<u64>()).prop_map(|(at, len, seed)| Edit::Insert { at, len, seed }),
    ]
}

/// Applies `e` and returns the ranges it changed (relative to the file before).
fn apply(data: &mut Vec<u8>, e: &Edit) -> Vec<std::ops::Range<u64>> {
    let n = data.len();
    let pos = |at: usize| if n == 0 { 0 } else { at % n };
    match *e {
        Edit::Overwrite { at, len, seed } => {
            let p = pos(at);
            let end = (p + len).min(n);
            data[p..end].copy_from_slice(&pseudo(end - p, seed));
            vec![p as u64..end as u64]
        }
        Edit::Append { len, seed } => {
            data.extend(pseudo(len, seed));
            vec![n as u64..(n + len) as u64]
        }
        Edit::Truncate { at } => {
            data.truncate(pos(at).max(n / 2));
            vec![]
        }
        Edit::Zeros { at, len } => {
            let p = pos(at);
            let end = (p + len).min(n);
            data[p..end].fill(0);
            vec![p as u64..end as u64]
        }
        Edit::Insert { at, len, seed } => {
            let p = pos(at);
            data.splice(p..p, pseudo(len, seed));
            vec![p as u64..u64::MAX]
        }
    }
}

fn read_back(store: &Store, id: &snapshot_store::SnapshotId) -> Vec<u8> {
    let snap = store.snapshot(id).unwrap();
    let e = snap.entry(snap.lookup(b"data").unwrap()).unwrap();
    let r = snapshot_store::FileReader::open(store, &e.content.unwrap(), e.meta.size).unwrap();
    let mut out = vec![0u8; r.size() as usize];
    r.read_at(0, &mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn tracked_versions_read_back_exactly(
        start in 1usize..1_200_000,
        bs in prop_oneof![Just(BlockSize::Fixed(512)), Just(BlockSize::Fixed(1000)), Just(BlockSize::Auto)],
        days in proptest::collection::vec(
            (proptest::collection::vec(edit(), 1..5), prop_oneof![Just(DeltaMode::Incremental), Just(DeltaMode::Differential)]),
            1..7,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy { block_size: bs, min_delta_size: 0, max_deltas: None, max_delta_ratio: None, change_tracking: true, ..Policy::default() };
        let store = Store::init(&dir.path().join("store"), policy).unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        let file = src.join("data");
        let mut data = pseudo(start, 1);
        write_in_place(&file, &data);
        let first = write_snapshot(&store, &src, &WriteOptions { policy, ..WriteOptions::default() }, None, &WriteProgress::default()).unwrap();
        let mut history = vec![(first.snapshot, data.clone())];
        let mut previous_mode = DeltaMode::Incremental;
        for (edits, mode) in days {
            let mut changed = Vec::new();
            for e in &edits {
                changed.extend(apply(&mut data, e));
            }
            write_in_place(&file, &data);
            let tracking = Tracking {
                providers: vec![Box::new(ListProvider::new([("data".to_string(), RangeSet::from_ranges(changed))]))],
                verify_sample: 8,
            };
            let p = Policy { mode, ..policy };
            let s = write_snapshot(&store, &src, &WriteOptions { policy: p, ..WriteOptions::default() }, Some(&tracking), &WriteProgress::default()).unwrap();
            prop_assert!(s.errors.is_empty(), "{:?}", s.errors);
            let f = &s.files[0];
            let must_track = !(mode == DeltaMode::Differential && previous_mode == DeltaMode::Incremental && history.len() > 1);
            if must_track && f.change_source.is_some() {
                prop_assert_eq!(f.change_source, Some(ChangeSource::List));
            }
            previous_mode = mode;
            history.push((s.snapshot, data.clone()));
        }
        for (id, expected) in &history {
            prop_assert!(read_back(&store, id) == *expected, "snapshot {} differs", id);
        }
        let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
        prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
