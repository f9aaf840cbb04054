//! Many mid-size files written at once: the small-file path runs files in parallel on rayon's
//! pool while each file's content hash runs on a thread of its own. With change tracking on, the
//! hash tree of every file must still be built without waiting on a pool whose workers are all
//! busy waiting on those hash threads (a write of such a tree used to hang forever).

use std::fs;
use std::sync::mpsc;
use std::time::Duration;

use snapshot_store::{FileReader, Policy, Store, VerifyOptions, WriteOptions, WriteProgress, verify, write_snapshot};

mod common;
use common::pseudo;

#[test]
fn many_mid_size_files_with_change_tracking_are_written_and_read_back() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    // Sizes above one hash-tree batch (64 KiB) and below the one-file-at-a-time size (8 MiB),
    // and a sparse one whose hole is hashed as one long run of zeros.
    for i in 0..24u64 {
        fs::write(
            src.join(format!("f{i:02}")),
            pseudo((256 << 10) + (i as usize) * 40_000, i),
        )
        .unwrap();
    }
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(4 << 20).unwrap();
    drop(sparse);
    let store_dir = work.path().join("store");
    let policy = Policy {
        change_tracking: true,
        min_delta_size: 64 << 10,
        ..Policy::default()
    };
    Store::init(&store_dir, policy).unwrap();

    let (tx, rx) = mpsc::channel();
    let (s, d) = (src.clone(), store_dir.clone());
    std::thread::spawn(move || {
        let store = Store::open(&d).unwrap();
        let opts = WriteOptions {
            policy,
            ..WriteOptions::default()
        };
        let r = write_snapshot(&store, &s, &opts, None, &WriteProgress::default()).map(|w| w.snapshot);
        let _ = tx.send(r);
    });
    let snapshot = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(r) => r.expect("the write succeeds"),
        Err(_) => panic!("the write of 25 mid-size files hung (over 120 s)"),
    };

    let store = Store::open(&store_dir).unwrap();
    let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let snap = store.snapshot(&snapshot).unwrap();
    let mut files = 0;
    for (i, e) in snap.entries.iter().enumerate() {
        let Some(content) = e.content else { continue };
        let name = String::from_utf8(snap.path_of(i as u32)).unwrap();
        let mut got = Vec::new();
        FileReader::open(&store, &content, e.meta.size)
            .unwrap()
            .copy_to(&mut got, true)
            .unwrap();
        assert!(got == fs::read(src.join(&name)).unwrap(), "{name} reads back different");
        files += 1;
    }
    assert_eq!(files, 25);
}
