//! Tracked writes seen from inside the store: what they read, what their hash trees share, and
//! that a damaged tree block is found, named and never trusted.
#![allow(clippy::single_range_in_vec_init)] // lists of ranges with one range

use std::fs;

use crate::testdata::{pseudo, write_in_place};
use crate::{
    ChangeSource, Fallback, FileReader, ListProvider, Policy, RangeSet, SnapshotId, Store, Tracking, VerifyOptions,
    WriteOptions, WriteProgress, verify, write_snapshot,
};

fn read_back(store: &Store, id: &SnapshotId) -> Vec<u8> {
    let snap = store.snapshot(id).unwrap();
    let e = snap.entry(snap.lookup(b"data").unwrap()).unwrap();
    let r = FileReader::open(store, &e.content.unwrap(), e.meta.size).unwrap();
    let mut out = vec![0u8; r.size() as usize];
    r.read_at(0, &mut out).unwrap();
    out
}

#[test]
fn tracked_write_reads_only_the_changed_blocks_and_a_lie_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        min_delta_size: 0,
        change_tracking: true,
        ..Policy::default()
    };
    let store = Store::init(&dir.path().join("store"), policy).unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let file = src.join("data");
    let mut data = pseudo(8 << 20, 1);
    write_in_place(&file, &data);
    let opts = WriteOptions {
        policy,
        ..WriteOptions::default()
    };
    write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
    // Ten scattered 100-byte writes.
    let mut changed = Vec::new();
    for i in 0..10u64 {
        let at = (i * 777_777) as usize;
        data[at..at + 100].copy_from_slice(&pseudo(100, i));
        changed.push(at as u64..at as u64 + 100);
    }
    write_in_place(&file, &data);
    let tracking = |ranges: Vec<std::ops::Range<u64>>, sample: u32| Tracking {
        providers: vec![Box::new(ListProvider::new([(
            "data".to_string(),
            RangeSet::from_ranges(ranges),
        )]))],
        verify_sample: sample,
    };
    let s = write_snapshot(
        &store,
        &src,
        &opts,
        Some(&tracking(changed.clone(), 0)),
        &WriteProgress::default(),
    )
    .unwrap();
    let f = &s.files[0];
    assert_eq!(f.change_source, Some(ChangeSource::List));
    // At most two 4 KiB blocks per write (a write may straddle a boundary).
    assert!(f.bytes_read <= 10 * 8192, "read {} bytes", f.bytes_read);
    assert_eq!(read_back(&store, &s.snapshot), data);
    // Its hash tree stores leaf blocks only for the regions the writes touched (8 MiB is 32
    // regions of 256 KiB); the others point into the first version's tree.
    let snap = store.snapshot(&s.snapshot).unwrap();
    let e = snap.entry(snap.lookup(b"data").unwrap()).unwrap();
    let v = store.version(&e.content.unwrap().version).unwrap();
    let table = store.tree_table(&v.hash_tree.unwrap()).unwrap();
    assert!((1..=10).contains(&table.header.block_count), "{:?}", table.header);
    assert_eq!(table.refs.len(), 1);
    assert_eq!(table.regions.len(), 32);

    // A list that leaves a change out: with every block sampled, the lie is caught and the file
    // compared instead.
    data[5_000_000..5_000_050].fill(0xAB);
    data[100..110].fill(0xCD);
    write_in_place(&file, &data);
    let s = write_snapshot(
        &store,
        &src,
        &opts,
        Some(&tracking(vec![100..110], 100_000)),
        &WriteProgress::default(),
    )
    .unwrap();
    let f = &s.files[0];
    assert_eq!(f.change_source, None, "the lie must be caught: {f:?}");
    assert!(
        matches!(f.tracking_fallback, Some(Fallback::SampleDiffers { .. })),
        "{f:?}"
    );
    assert_eq!(read_back(&store, &s.snapshot), data);
    assert!(
        verify(&store, VerifyOptions { read_data: true })
            .unwrap()
            .problems
            .is_empty()
    );
}

#[test]
fn a_damaged_hash_tree_block_is_named_and_never_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        min_delta_size: 0,
        change_tracking: true,
        ..Policy::default()
    };
    let store_dir = dir.path().join("store");
    let store = Store::init(&store_dir, policy).unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let file = src.join("data");
    let mut data = pseudo(2 << 20, 7); // 8 regions of 256 KiB
    write_in_place(&file, &data);
    let opts = WriteOptions {
        policy,
        ..WriteOptions::default()
    };
    let first = write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
    let snap = store.snapshot(&first.snapshot).unwrap();
    let e = snap.entry(snap.lookup(b"data").unwrap()).unwrap();
    let tree = store.version(&e.content.unwrap().version).unwrap().hash_tree.unwrap();
    // Flip a byte in the leaf block of region 3 (envelope header 24 + tree header 56).
    let path = store.object_path(&tree);
    let mut bytes = fs::read(&path).unwrap();
    bytes[24 + 56 + 3 * 2048 + 5] ^= 1;
    fs::write(&path, &bytes).unwrap();

    // A tracked write that needs that block (a change in region 3) fails and names the object.
    let at = 3 * (256 << 10) + 1000;
    data[at..at + 10].fill(0xEE);
    write_in_place(&file, &data);
    let tracking = Tracking {
        providers: vec![Box::new(ListProvider::new([(
            "data".to_string(),
            RangeSet::from_ranges(vec![at as u64..at as u64 + 10]),
        )]))],
        verify_sample: 0,
    };
    let store = Store::open(&store_dir).unwrap();
    let err = write_snapshot(&store, &src, &opts, Some(&tracking), &WriteProgress::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&tree.short()) && msg.contains("hash-tree object"), "{msg}");
    // The store is as it was, and verify names the damaged tree.
    assert_eq!(store.snapshot_ids().unwrap().len(), 1);
    let report = verify(&store, VerifyOptions { read_data: false }).unwrap();
    assert!(
        report.problems.iter().any(|p| p.what.contains(&tree.short())),
        "{:?}",
        report.problems
    );
}
