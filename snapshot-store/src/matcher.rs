//! The streaming delta matcher: finds the blocks of a base signature in a new version at any byte
//! offset (rsync's algorithm) and produces the new version's ops, literal bytes and signature.
//!
//! At a block boundary the matcher tries, in order: the base block that follows the last match
//! (in-place data continues without a table lookup), an all-zero window (a hole), and a lookup of
//! the window's weak hash among all full-length base blocks, confirmed by the strong hash. When
//! nothing matches it slides the window one byte at a time with the rolling hash; the skipped bytes
//! become literal data. So an insertion or deletion costs only the bytes inserted, and unchanged
//! data is hashed once and never stored. Memory is bounded by the signatures plus a window of a
//! few MiB, whatever the file size.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use crate::delta::{DeltaOp, OpsBuilder};
use crate::error::Result;
use crate::rolling::Roller;
use crate::runs::RunBuilder;
use crate::signature::{BlockSig, SigRun, Signature, is_zero, strong_hash};

/// Receives the literal bytes of a version, in order.
pub trait LiteralSink {
    /// Appends `data` to the literal stream.
    fn write(&mut self, data: &[u8]) -> Result<()>;
}

impl LiteralSink for Vec<u8> {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }
}

/// Literal data is handed to the sink at least every this many bytes.
const FLUSH_AT: usize = 1 << 20;
/// Longest chain of equal-bucket candidates examined per lookup.
const MAX_CANDIDATES: usize = 64;
/// Zeros are fed through the normal path in pieces of this size.
const ZERO_PIECE: usize = 64 << 10;
/// Base blocks tried at their unshifted positions after a block that changed in place, before
/// falling back to sliding byte by byte.
const IN_PLACE_LOOKAHEAD: u32 = 8;

/// A shared buffer of zeros, at least `len` long (len ≤ 16 MiB).
pub(crate) fn zeros(len: usize) -> &'static [u8] {
    static ZEROS: OnceLock<Vec<u8>> = OnceLock::new();
    let z = ZEROS.get_or_init(|| vec![0u8; crate::policy::BlockSize::MAX as usize]);
    &z[..len.min(z.len())]
}

/// The signature entry of `block` (weak and strong hash).
pub fn block_sig(roller: &Roller, block: &[u8]) -> BlockSig {
    BlockSig {
        len: block.len() as u32,
        weak: roller.hash(block),
        strong: strong_hash(block),
    }
}

/// A base signature prepared for lookups by weak hash.
#[derive(Debug)]
pub struct BaseIndex {
    sig: Arc<Signature>,
    roller: Roller,
    /// One bit per slot of `mix(weak) >> filter_shift`: clear means no block has such a hash.
    filter: Vec<u64>,
    filter_shift: u32,
    /// `buckets[b]..buckets[b+1]` is the range of `entries` whose weak hash falls in bucket `b`.
    buckets: Vec<u32>,
    bucket_shift: u32,
    /// (weak hash, block index), grouped by bucket: a lookup touches no block until weak matches.
    entries: Vec<(u32, u32)>,
    /// Per block: all zeros (matched as a hole).
    zero: Vec<bool>,
}

#[inline]
fn mix(weak: u32) -> u64 {
    u64::from(weak).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl BaseIndex {
    /// Indexes every full-length, non-zero block of `sig`.
    pub fn new(sig: Arc<Signature>) -> Self {
        let bs = sig.block_size as usize;
        let roller = Roller::new(bs);
        let zero_full = block_sig(&roller, zeros(bs));
        let mut zero_partial = std::collections::HashMap::new();
        let zero: Vec<bool> = sig
            .blocks
            .iter()
            .map(|b| {
                let z = if b.len as usize == bs {
                    zero_full
                } else {
                    *zero_partial
                        .entry(b.len)
                        .or_insert_with(|| block_sig(&roller, zeros(b.len as usize)))
                };
                b.weak == z.weak && b.strong == z.strong
            })
            .collect();
        let indexed: Vec<u32> = (0..sig.blocks.len() as u32)
            .filter(|&i| sig.blocks[i as usize].len as usize == bs && !zero[i as usize])
            .collect();
        let n = indexed.len().max(1);
        let bucket_bits = (n.next_power_of_two().trailing_zeros()).clamp(4, 30);
        // 16-32 filter bits per block: a lookup of a hash that is not there is rejected by one
        // probe of a small bitmap about 97% of the time.
        let filter_bits = (bucket_bits + 5).min(32);
        let bucket_shift = 64 - bucket_bits;
        let filter_shift = 64 - filter_bits;
        let mut filter = vec![0u64; (1usize << filter_bits) / 64];
        let mut counts = vec![0u32; (1usize << bucket_bits) + 1];
        for &i in &indexed {
            let m = mix(sig.blocks[i as usize].weak);
            counts[(m >> bucket_shift) as usize + 1] += 1;
            let f = (m >> filter_shift) as usize;
            filter[f / 64] |= 1 << (f % 64);
        }
        for b in 1..counts.len() {
            counts[b] += counts[b - 1];
        }
        let buckets = counts.clone();
        let mut fill = counts;
        let mut entries = vec![(0u32, 0u32); indexed.len()];
        for &i in &indexed {
            let weak = sig.blocks[i as usize].weak;
            let b = (mix(weak) >> bucket_shift) as usize;
            entries[fill[b] as usize] = (weak, i);
            fill[b] += 1;
        }
        BaseIndex {
            sig,
            roller,
            filter,
            filter_shift,
            buckets,
            bucket_shift,
            entries,
            zero,
        }
    }

    /// The indexed signature.
    pub fn signature(&self) -> &Arc<Signature> {
        &self.sig
    }

    /// Bytes of memory held (signature excluded).
    pub fn memory_bytes(&self) -> usize {
        self.filter.len() * 8 + self.buckets.len() * 4 + self.entries.len() * 8 + self.zero.len()
    }

    /// The block whose hashes equal those of `window` (full block length), if any (benchmarks).
    #[doc(hidden)]
    pub fn probe(&self, weak: u32, window: &[u8]) -> Option<u32> {
        self.find(weak, window)
    }

    /// The block whose hashes equal those of `window` (full block length), if any.
    #[inline]
    fn find(&self, weak: u32, window: &[u8]) -> Option<u32> {
        let m = mix(weak);
        let f = (m >> self.filter_shift) as usize;
        if self.filter[f / 64] & (1 << (f % 64)) == 0 {
            return None;
        }
        let b = (m >> self.bucket_shift) as usize;
        let range = self.buckets[b] as usize..self.buckets[b + 1] as usize;
        let mut strong = None;
        for &(w, i) in self.entries[range].iter().take(MAX_CANDIDATES) {
            if w == weak && *strong.get_or_insert_with(|| strong_hash(window)) == self.sig.blocks[i as usize].strong {
                return Some(i);
            }
        }
        None
    }
}

/// Counts of what the matcher produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchStats {
    /// Bytes copied from the base.
    pub copied: u64,
    /// Bytes stored as literal data.
    pub literal: u64,
    /// Bytes that are zeros (holes).
    pub holes: u64,
}

/// The result of matching one version.
#[derive(Debug, Clone)]
pub struct MatchOutput {
    /// Ops covering the version.
    pub ops: Vec<DeltaOp>,
    /// The version's signature as runs over the base signature and new blocks.
    pub sig_runs: Vec<SigRun>,
    /// Number of blocks in the new signature.
    pub block_count: u32,
    /// Size of the version.
    pub size: u64,
    /// What the ops are made of.
    pub stats: MatchStats,
}

/// The outcome of [`Matcher::in_place_match`].
enum InPlace {
    /// Base block `block` matches `skip` bytes after `pos`.
    Found { skip: usize, block: u32 },
    /// A candidate lies beyond the buffered data.
    NeedMoreData,
    /// No candidate matches.
    NotFound,
}

#[derive(Debug, Clone, Copy)]
struct Rolling {
    weak: u32,
    /// Number of zero bytes at the end of the current window.
    zero_run: usize,
}

/// Matches one new version against an optional base, fed in order.
pub struct Matcher<'a> {
    base: Option<&'a BaseIndex>,
    bs: usize,
    roller: Roller,
    zero_block: BlockSig,
    buf: Vec<u8>,
    buf_off: u64,
    pos: usize,
    lit: usize,
    rolling: Option<Rolling>,
    prev: Option<u32>,
    ops: OpsBuilder,
    sig: RunBuilder<BlockSig>,
    stats: MatchStats,
}

impl<'a> Matcher<'a> {
    /// A matcher producing blocks of `block_size` (ignored when `base` is given: a chain keeps its
    /// base's block size).
    pub fn new(base: Option<&'a BaseIndex>, block_size: u32) -> Self {
        let bs = base.map_or(block_size, |b| b.sig.block_size) as usize;
        let roller = base.map_or_else(|| Roller::new(bs), |b| b.roller.clone());
        let zero_block = block_sig(&roller, zeros(bs));
        Matcher {
            base,
            bs,
            roller,
            zero_block,
            buf: Vec::with_capacity(8 << 20),
            buf_off: 0,
            pos: 0,
            lit: 0,
            rolling: None,
            prev: None,
            ops: OpsBuilder::new(),
            sig: RunBuilder::default(),
            stats: MatchStats::default(),
        }
    }

    /// The block size of the signature being built.
    pub fn block_size(&self) -> u32 {
        self.bs as u32
    }

    /// Feeds the next bytes of the version.
    pub fn feed(&mut self, data: &[u8], sink: &mut dyn LiteralSink) -> Result<()> {
        if self.lit > 0 {
            self.buf.drain(..self.lit);
            self.pos -= self.lit;
            self.buf_off += self.lit as u64;
            self.lit = 0;
        }
        self.buf.extend_from_slice(data);
        self.scan(false, sink)
    }

    /// Feeds `len` zero bytes (a hole of the source) without materialising whole blocks of them.
    pub fn feed_zeros(&mut self, mut len: u64, sink: &mut dyn LiteralSink) -> Result<()> {
        while len > 0 {
            let pending = self.buf.get(self.pos..).unwrap_or_default();
            if self.rolling.is_none() && self.lit == self.pos && is_zero(pending) {
                self.skip_zero_blocks(pending.len() as u64 + len, sink)?;
                return Ok(());
            }
            let n = len.min(ZERO_PIECE as u64) as usize;
            self.feed(zeros(n), sink)?;
            len -= n as u64;
        }
        Ok(())
    }

    /// Consumes `avail` zero bytes starting at `pos` (the buffer from `pos` on holds only zeros
    /// and is part of them) as whole blocks, then re-materialises the remainder.
    fn skip_zero_blocks(&mut self, mut avail: u64, sink: &mut dyn LiteralSink) -> Result<()> {
        let start = self.buf_off + self.pos as u64;
        let total = avail;
        loop {
            if let Some(j) = self.expected_next() {
                let base = self.base.expect("expected_next implies a base");
                let l = u64::from(base.sig.blocks[j as usize].len);
                if base.zero[j as usize] && l <= avail {
                    self.ops.push(DeltaOp::Hole { len: l });
                    self.stats.holes += l;
                    self.sig.push_base(j);
                    self.prev = Some(j);
                    avail -= l;
                    continue;
                }
            }
            if avail >= self.bs as u64 {
                self.ops.push(DeltaOp::Hole { len: self.bs as u64 });
                self.stats.holes += self.bs as u64;
                self.sig.push_new([self.zero_block]);
                self.prev = None;
                avail -= self.bs as u64;
                continue;
            }
            break;
        }
        self.buf.clear();
        self.buf_off = start + (total - avail);
        self.pos = 0;
        self.lit = 0;
        self.buf.extend_from_slice(zeros(avail as usize));
        self.scan(false, sink)
    }

    /// Ends the version and returns what was built.
    pub fn finish(mut self, sink: &mut dyn LiteralSink) -> Result<MatchOutput> {
        self.scan(true, sink)?;
        self.pos = self.buf.len();
        self.flush_literal(sink)?;
        let size = self.buf_off + self.buf.len() as u64;
        debug_assert_eq!(self.ops.total(), size);
        Ok(MatchOutput {
            size,
            block_count: self.sig.len(),
            ops: self.ops.finish(),
            sig_runs: self.sig.finish(),
            stats: self.stats,
        })
    }

    fn expected_next(&self) -> Option<u32> {
        let base = self.base?;
        let j = self.prev? + 1;
        ((j as usize) < base.sig.blocks.len()).then_some(j)
    }

    fn scan(&mut self, last: bool, sink: &mut dyn LiteralSink) -> Result<()> {
        let bs = self.bs;
        loop {
            match self.rolling {
                None => {
                    let avail = self.buf.len() - self.pos;
                    if avail == 0 || (!last && avail < bs) {
                        return Ok(());
                    }
                    if let Some(j) = self.expected_next() {
                        let base = self.base.expect("expected_next implies a base");
                        let blk = &base.sig.blocks[j as usize];
                        let l = blk.len as usize;
                        if l <= avail {
                            let w = &self.buf[self.pos..self.pos + l];
                            // The 128-bit strong hash decides alone: for the common unchanged
                            // block, computing the weak hash as well would be wasted work.
                            let hit = if base.zero[j as usize] {
                                is_zero(w)
                            } else {
                                strong_hash(w) == blk.strong
                            };
                            if hit {
                                self.take_match(j, sink)?;
                                continue;
                            }
                        }
                    }
                    if avail < bs {
                        return Ok(());
                    }
                    let w = &self.buf[self.pos..self.pos + bs];
                    if is_zero(w) {
                        self.take_zero_block(sink)?;
                        continue;
                    }
                    let Some(base) = self.base else {
                        self.pos += bs;
                        if self.pos - self.lit >= FLUSH_AT {
                            self.flush_literal(sink)?;
                        }
                        continue;
                    };
                    let weak = self.roller.hash(w);
                    if let Some(j) = base.find(weak, w) {
                        self.take_match(j, sink)?;
                        continue;
                    }
                    match self.in_place_match(last) {
                        InPlace::Found { skip, block } => {
                            self.pos += skip;
                            self.take_match(block, sink)?;
                            continue;
                        }
                        InPlace::NeedMoreData => return Ok(()),
                        InPlace::NotFound => {}
                    }
                    let zero_run = w.iter().rev().take_while(|&&b| b == 0).count();
                    self.prev = None;
                    self.rolling = Some(Rolling { weak, zero_run });
                }
                Some(r) => {
                    let base = self.base.expect("rolling implies a base");
                    if self.pos + bs >= self.buf.len() {
                        return Ok(());
                    }
                    let out = self.buf[self.pos];
                    let inp = self.buf[self.pos + bs];
                    let weak = self.roller.roll(r.weak, out, inp);
                    self.pos += 1;
                    let zero_run = if inp == 0 { r.zero_run + 1 } else { 0 };
                    if zero_run >= bs {
                        // The window is all zeros: stop sliding; the block path makes it a hole.
                        self.rolling = None;
                        continue;
                    }
                    if let Some(j) = base.find(weak, &self.buf[self.pos..self.pos + bs]) {
                        self.take_match(j, sink)?;
                        continue;
                    }
                    self.rolling = Some(Rolling { weak, zero_run });
                    if self.pos - self.lit >= FLUSH_AT {
                        self.flush_literal_blocks(sink)?;
                    }
                }
            }
        }
    }

    /// After the block following the last match did not match at `pos`, looks for one of the
    /// next few base blocks at its unshifted position: the common case of data changed in place.
    /// Costs one strong hash per candidate instead of a lookup per byte while sliding.
    fn in_place_match(&self, last: bool) -> InPlace {
        let (Some(base), Some(prev)) = (self.base, self.prev) else {
            return InPlace::NotFound;
        };
        let blocks = &base.sig.blocks;
        let first = prev as usize + 1;
        let Some(mut skip) = blocks.get(first).map(|b| b.len as usize) else {
            return InPlace::NotFound;
        };
        let end = (first + IN_PLACE_LOOKAHEAD as usize).min(blocks.len());
        for (j, blk) in blocks.iter().enumerate().take(end).skip(first + 1) {
            let start = self.pos + skip;
            let stop = start + blk.len as usize;
            if stop > self.buf.len() {
                return if last { InPlace::NotFound } else { InPlace::NeedMoreData };
            }
            let w = &self.buf[start..stop];
            let hit = if base.zero[j] {
                is_zero(w)
            } else {
                strong_hash(w) == blk.strong
            };
            if hit {
                return InPlace::Found { skip, block: j as u32 };
            }
            skip += blk.len as usize;
        }
        InPlace::NotFound
    }

    fn take_match(&mut self, j: u32, sink: &mut dyn LiteralSink) -> Result<()> {
        self.flush_literal(sink)?;
        let base = self.base.expect("a match implies a base");
        let l = u64::from(base.sig.blocks[j as usize].len);
        if base.zero[j as usize] {
            self.ops.push(DeltaOp::Hole { len: l });
            self.stats.holes += l;
        } else {
            self.ops.push(DeltaOp::Copy {
                base_offset: base.sig.offsets[j as usize],
                len: l,
            });
            self.stats.copied += l;
        }
        self.sig.push_base(j);
        self.pos += l as usize;
        self.lit = self.pos;
        self.prev = Some(j);
        self.rolling = None;
        Ok(())
    }

    fn take_zero_block(&mut self, sink: &mut dyn LiteralSink) -> Result<()> {
        self.flush_literal(sink)?;
        self.ops.push(DeltaOp::Hole { len: self.bs as u64 });
        self.stats.holes += self.bs as u64;
        self.sig.push_new([self.zero_block]);
        self.pos += self.bs;
        self.lit = self.pos;
        self.prev = None;
        self.rolling = None;
        Ok(())
    }

    /// Emits `[lit, pos)` as literal data.
    fn flush_literal(&mut self, sink: &mut dyn LiteralSink) -> Result<()> {
        let end = self.pos;
        self.emit_literal(end, sink)
    }

    /// Emits the whole blocks of `[lit, pos)` as literal data, keeping the tiling.
    fn flush_literal_blocks(&mut self, sink: &mut dyn LiteralSink) -> Result<()> {
        let n = (self.pos - self.lit) / self.bs * self.bs;
        self.emit_literal(self.lit + n, sink)
    }

    fn emit_literal(&mut self, end: usize, sink: &mut dyn LiteralSink) -> Result<()> {
        if end <= self.lit {
            return Ok(());
        }
        let data = &self.buf[self.lit..end];
        sink.write(data)?;
        let len = data.len() as u64;
        self.ops.push(DeltaOp::Literal { len });
        self.stats.literal += len;
        let roller = &self.roller;
        if data.len() >= 16 * self.bs {
            let blocks: Vec<BlockSig> = data.par_chunks(self.bs).map(|b| block_sig(roller, b)).collect();
            self.sig.push_new(blocks);
        } else {
            self.sig.push_new(data.chunks(self.bs).map(|b| block_sig(roller, b)));
        }
        self.lit = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::SignatureRecord;
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

    fn pseudo(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
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
}
