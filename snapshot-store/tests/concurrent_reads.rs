//! The read API is `Send + Sync`: many threads reading random ranges of versions at different
//! chain depths at once get exactly the right bytes through one shared cache.

use std::fs;
use std::sync::Arc;

use snapshot_store::{
    BlockSize, FileReader, Policy, Snapshot, Store, StoreOptions, WriteOptions, WriteProgress, write_snapshot,
};

mod common;
use common::pseudo;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn read_api_types_are_send_and_sync() {
    assert_send_sync::<Store>();
    assert_send_sync::<FileReader>();
    assert_send_sync::<Snapshot>();
    assert_send_sync::<Arc<Snapshot>>();
}

#[test]
fn many_threads_read_random_ranges_of_many_versions() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        min_delta_size: 0,
        block_size: BlockSize::Fixed(1024),
        max_deltas: None,
        ..Policy::default()
    };
    let store = Store::init(&dir.path().join("store"), policy).unwrap();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    let mut data = pseudo(3 << 20, 1);
    let mut versions = Vec::new();
    for day in 0..20u64 {
        let at = (day as usize * 150_001) % (data.len() - 10_000);
        data[at..at + 5000].copy_from_slice(&pseudo(5000, day + 100));
        data.splice(at / 2..at / 2, pseudo(333, day + 200));
        fs::write(src.join("f"), &data).unwrap();
        let opts = WriteOptions {
            policy,
            ..WriteOptions::default()
        };
        let s = write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
        versions.push((s.snapshot, data.clone()));
    }
    // A small cache forces evictions while threads read.
    let reader_store = Store::open_with(
        &dir.path().join("store"),
        StoreOptions {
            cache_bytes: 1 << 20,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let readers: Vec<(FileReader, Arc<Vec<u8>>)> = versions
        .iter()
        .map(|(id, bytes)| {
            let snap = reader_store.snapshot(id).unwrap();
            let e = snap.entry(snap.lookup(b"f").unwrap()).unwrap();
            (
                snapshot_store::FileReader::open(&reader_store, &e.content.unwrap(), e.meta.size).unwrap(),
                Arc::new(bytes.clone()),
            )
        })
        .collect();
    let readers = Arc::new(readers);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let readers = Arc::clone(&readers);
            std::thread::spawn(move || {
                let mut x = t + 1;
                for _ in 0..400 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let (reader, expected) = &readers[(x >> 33) as usize % readers.len()];
                    let off = (x >> 20) as usize % expected.len();
                    let len = ((x >> 7) as usize % 300_000).min(expected.len() - off);
                    let mut buf = vec![0u8; len];
                    assert_eq!(reader.read_at(off as u64, &mut buf).unwrap(), len);
                    assert!(
                        buf == expected[off..off + len],
                        "thread {t} read wrong bytes at {off}+{len}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
