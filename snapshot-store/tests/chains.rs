//! Property test: random edits over many versions, written through the real writer with random
//! policies (both modes, switching between them, forced fulls, several block sizes), read back
//! byte-identical through the random-access read API, and verified.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use snapshot_store::{
    BlockSize, DeltaMode, Percent, Policy, SnapshotId, Store, VerifyOptions, WriteOptions, WriteProgress, verify,
    write_snapshot,
};

mod common;
use common::pseudo;

#[derive(Debug, Clone)]
enum Edit {
    Overwrite { at: usize, len: usize, seed: u64 },
    Insert { at: usize, len: usize, seed: u64 },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Append { len: usize, seed: u64 },
    Zeros { at: usize, len: usize },
    GrowSparse { len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        (at, 1usize..20_000, any::<u64>()).prop_map(|(at, len, seed)| Edit::Overwrite { at, len, seed }),
        (at, 1usize..20_000, any::<u64>()).prop_map(|(at, len, seed)| Edit::Insert { at, len, seed }),
        (at, 1usize..20_000).prop_map(|(at, len)| Edit::Delete { at, len }),
        at.prop_map(|at| Edit::Truncate { at }),
        (1usize..50_000, any::<u64>()).prop_map(|(len, seed)| Edit::Append { len, seed }),
        (at, 1usize..60_000).prop_map(|(at, len)| Edit::Zeros { at, len }),
        (1usize..200_000).prop_map(|len| Edit::GrowSparse { len }),
    ]
}

fn apply(data: &mut Vec<u8>, e: &Edit) {
    let pos = |at: usize| if data.is_empty() { 0 } else { at % data.len() };
    match *e {
        Edit::Overwrite { at, len, seed } => {
            let p = pos(at);
            let end = (p + len).min(data.len());
            let bytes = pseudo(end - p, seed);
            data[p..end].copy_from_slice(&bytes);
        }
        Edit::Insert { at, len, seed } => {
            let p = pos(at);
            data.splice(p..p, pseudo(len, seed));
        }
        Edit::Delete { at, len } => {
            let p = pos(at);
            let end = (p + len).min(data.len());
            data.drain(p..end);
        }
        Edit::Truncate { at } => {
            let p = pos(at);
            data.truncate(p.max(data.len() / 2));
        }
        Edit::Append { len, seed } => data.extend(pseudo(len, seed)),
        Edit::Zeros { at, len } => {
            let p = pos(at);
            let end = (p + len).min(data.len());
            data[p..end].fill(0);
        }
        Edit::GrowSparse { len } => data.resize(data.len() + len, 0),
    }
}

/// Writes `data` so that holes in it become holes on disk where the filesystem supports them.
fn write_file(path: &Path, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let _ = fs::remove_file(path);
    let f = fs::File::create(path).unwrap();
    for (i, chunk) in data.chunks(4096).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            f.write_all_at(chunk, (i * 4096) as u64).unwrap();
        }
    }
    f.set_len(data.len() as u64).unwrap();
}

#[derive(Debug, Clone)]
struct Day {
    edits: Vec<Edit>,
    mode: DeltaMode,
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![
            Just(BlockSize::Fixed(512)),
            Just(BlockSize::Fixed(1000)),
            Just(BlockSize::Auto)
        ],
        prop_oneof![Just(None), (1u32..4).prop_map(Some)],
        prop_oneof![Just(None), Just(Some(Percent(4000)))],
    )
        .prop_map(|(block_size, max_deltas, max_delta_ratio)| Policy {
            block_size,
            min_delta_size: 0,
            max_deltas,
            max_delta_ratio,
            ..Policy::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn random_edit_histories_read_back_exactly(
        start in 0usize..150_000,
        policy in policy_strategy(),
        days in proptest::collection::vec(
            (proptest::collection::vec(edit(), 1..5), prop_oneof![Just(DeltaMode::Incremental), Just(DeltaMode::Differential)])
                .prop_map(|(edits, mode)| Day { edits, mode }),
            1..8,
        ),
        read_sizes in proptest::collection::vec(1usize..70_000, 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("store"), policy).unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        let file = src.join("data");
        let mut data = pseudo(start, 1);
        let mut history: Vec<(SnapshotId, Vec<u8>)> = Vec::new();
        for (i, day) in std::iter::once(None).chain(days.iter().map(Some)).enumerate() {
            let mut p = policy;
            if let Some(day) = day {
                for e in &day.edits {
                    apply(&mut data, e);
                }
                p.mode = day.mode;
            }
            write_file(&file, &data);
            let opts = WriteOptions { policy: p, ..WriteOptions::default() };
            let summary = write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
            prop_assert!(summary.errors.is_empty(), "day {i}: {:?}", summary.errors);
            history.push((summary.snapshot, data.clone()));
        }
        for (id, expected) in &history {
            let snap = store.snapshot(id).unwrap();
            let entry = snap.entry(snap.lookup(b"data").unwrap()).unwrap();
            let reader = snapshot_store::FileReader::open(&store, &entry.content.unwrap(), entry.meta.size).unwrap();
            prop_assert_eq!(reader.size(), expected.len() as u64);
            // Read it back in pieces of varying sizes at varying offsets.
            let mut got = vec![0u8; expected.len()];
            let mut off = 0usize;
            let mut k = 0;
            while off < got.len() {
                let n = read_sizes[k % read_sizes.len()].min(got.len() - off);
                prop_assert_eq!(reader.read_at(off as u64, &mut got[off..off + n]).unwrap(), n);
                off += n;
                k += 1;
            }
            prop_assert!(got == *expected, "snapshot {} differs", id);
            // Past the end reads nothing.
            prop_assert_eq!(reader.read_at(expected.len() as u64, &mut [0u8; 10]).unwrap(), 0);
        }
        let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
        prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
