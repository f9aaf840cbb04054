//! Tests of the matcher: rebuilt content, signatures describing it, edits costing only their
//! blocks.

use std::sync::Arc;

use super::*;
use crate::format::signature::{Signature, SignatureRecord};
use crate::testdata::pseudo;
use proptest::prelude::*;

/// Matches `new` against `base_sig` (if any) feeding in pieces, then rebuilds it from the ops.
fn run(base: Option<(&[u8], &Signature)>, new: &[u8], bs: u32, piece: usize) -> (MatchOutput, Signature) {
    let index = base.map(|(_, s)| BaseIndex::new(Arc::new(s.clone())));
    let mut m = Matcher::new(index.as_ref(), bs);
    let mut lits = Vec::new();
    for chunk in new.chunks(piece.max(1)) {
        m.feed(chunk, &mut lits).unwrap();
    }
    let out = m.finish(&mut lits).unwrap();
    // Rebuild.
    let mut rebuilt = Vec::new();
    let mut lp = 0usize;
    for op in &out.ops {
        match *op {
            DeltaOp::Literal { len } => {
                rebuilt.extend_from_slice(&lits[lp..lp + len as usize]);
                lp += len as usize;
            }
            DeltaOp::Hole { len } => rebuilt.extend(std::iter::repeat_n(0u8, len as usize)),
            DeltaOp::Copy { base_offset, len } => {
                let b = base.unwrap().0;
                rebuilt.extend_from_slice(&b[base_offset as usize..(base_offset + len) as usize]);
            }
        }
    }
    assert_eq!(lp, lits.len());
    assert!(rebuilt == new, "rebuilt differs");
    let rec = SignatureRecord {
        block_size: m_bs(&index, bs),
        file_size: out.size,
        block_count: out.block_count,
        base: index.as_ref().map(|_| crate::id::ObjectId([0; 32])),
        chain: u16::from(index.is_some()),
        runs: out.sig_runs.clone(),
    };
    let sig = rec.resolve(base.map(|(_, s)| s), "t").unwrap();
    (out, sig)
}

fn m_bs(index: &Option<BaseIndex>, bs: u32) -> u32 {
    index.as_ref().map_or(bs, |i| i.sig.block_size)
}

/// The signature must describe the content: every block's hashes equal hashes of its bytes.
fn check_sig(sig: &Signature, data: &[u8]) {
    assert_eq!(sig.file_size(), data.len() as u64);
    let roller = Roller::new(sig.block_size as usize);
    for (i, b) in sig.blocks.iter().enumerate() {
        let s = sig.offsets[i] as usize;
        let chunk = &data[s..s + b.len as usize];
        assert_eq!(*b, block_sig(&roller, chunk), "block {i}");
    }
}

#[test]
fn insertion_costs_only_the_inserted_bytes() {
    let base = pseudo(200_000, 1);
    let (_, base_sig) = run(None, &base, 1024, 7777);
    check_sig(&base_sig, &base);
    let mut new = base.clone();
    let ins = pseudo(333, 2);
    new.splice(50_000..50_000, ins.iter().copied());
    new.drain(120_000..120_500);
    let (out, sig) = run(Some((&base, &base_sig)), &new, 1024, 5000);
    check_sig(&sig, &new);
    // Literal: the insertion plus at most two blocks around each edit.
    assert!(out.stats.literal <= 333 + 4 * 1024, "literal {}", out.stats.literal);
}

#[test]
fn unchanged_file_is_all_copy_and_signature_all_base_runs() {
    let base = pseudo(100_000, 3);
    let (_, base_sig) = run(None, &base, 4096, 65536);
    let (out, sig) = run(Some((&base, &base_sig)), &base, 4096, 1000);
    assert_eq!(out.stats.literal, 0);
    assert_eq!(
        out.ops,
        vec![DeltaOp::Copy {
            base_offset: 0,
            len: 100_000
        }]
    );
    assert_eq!(
        out.sig_runs,
        vec![SigRun::Base {
            start: 0,
            count: base_sig.blocks.len() as u32
        }]
    );
    assert_eq!(sig, base_sig);
}

#[test]
fn zeros_become_holes_and_feed_zeros_equals_feeding_zero_bytes() {
    let mut data = pseudo(10_000, 4);
    data.extend(std::iter::repeat_n(0u8, 50_000));
    data.extend(pseudo(7_000, 5));
    let (full, full_sig) = run(None, &data, 4096, 3000);
    assert!(full.stats.holes >= 40_000, "{:?}", full.stats);
    check_sig(&full_sig, &data);

    // Same through feed_zeros.
    let mut m = Matcher::new(None, 4096);
    let mut lits = Vec::new();
    m.feed(&data[..10_000], &mut lits).unwrap();
    m.feed_zeros(50_000, &mut lits).unwrap();
    m.feed(&data[60_000..], &mut lits).unwrap();
    let out = m.finish(&mut lits).unwrap();
    assert_eq!(out.ops, full.ops);
    assert_eq!(out.sig_runs, full.sig_runs);
}

#[test]
fn edits_in_place_are_found_without_sliding() {
    let base = pseudo(400_000, 6);
    let (_, base_sig) = run(None, &base, 4096, 65536);
    let mut new = base.clone();
    // One byte, a block-straddling run, and a 20 KiB rewrite, all in place.
    new[10_000] ^= 1;
    new[100_000..106_000].copy_from_slice(&pseudo(6000, 7));
    new[200_000..220_480].copy_from_slice(&pseudo(20_480, 8));
    let (out, sig) = run(Some((&base, &base_sig)), &new, 4096, 65536);
    check_sig(&sig, &new);
    // Each edit costs only the blocks it touches: 1 + 2 + 6 blocks.
    assert_eq!(out.stats.literal, 9 * 4096, "{:?}", out.stats);
    // And the signature keeps the base's tiling: same number of blocks.
    assert_eq!(sig.blocks.len(), base_sig.blocks.len());
}

fn edit_strategy() -> impl Strategy<Value = (u8, usize, usize, u64)> {
    (0u8..6, any::<usize>(), 0usize..3000, any::<u64>())
}

fn apply(data: &mut Vec<u8>, (kind, at, len, seed): (u8, usize, usize, u64)) {
    let at = if data.is_empty() { 0 } else { at % data.len() };
    match kind {
        0 => {
            let p = pseudo(len, seed);
            let end = (at + len).min(data.len());
            data.splice(at..end, p[..end - at].iter().copied());
        }
        1 => {
            data.splice(at..at, pseudo(len, seed));
        }
        2 => {
            let end = (at + len).min(data.len());
            data.drain(at..end);
        }
        3 => data.truncate(at),
        4 => data.extend(pseudo(len, seed)),
        _ => {
            let end = (at + len * 8).min(data.len());
            data[at..end].fill(0);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn chains_of_random_edits_rebuild_exactly(
        start_len in 0usize..60_000,
        edits in proptest::collection::vec(proptest::collection::vec(edit_strategy(), 1..6), 1..5),
        bs in prop_oneof![Just(512u32), Just(1024), Just(4096)],
        piece in 1usize..20_000,
    ) {
        let mut data = pseudo(start_len, 9);
        let (_, mut sig) = run(None, &data, bs, piece);
        check_sig(&sig, &data);
        let mut prev = data.clone();
        for day in edits {
            for e in day { apply(&mut data, e); }
            let (_, s) = run(Some((&prev, &sig)), &data, bs, piece);
            check_sig(&s, &data);
            sig = s;
            prev = data.clone();
        }
    }
}
