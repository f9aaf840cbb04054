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

mod index;
#[cfg(test)]
mod tests;

use crate::error::Result;
use crate::format::delta::{DeltaOp, OpsBuilder};
use crate::format::runs::RunBuilder;
use crate::format::signature::{BlockSig, SigRun, block_sig};
use crate::hash::block::{is_zero, strong_hash, zeros};
use crate::hash::rolling::Roller;
use crate::store::object::LiteralSink;
use rayon::prelude::*;

pub(crate) use index::BaseIndex;

/// Literal data is handed to the sink at least every this many bytes.
const FLUSH_AT: usize = 1 << 20;
/// Zeros are fed through the normal path in pieces of this size.
const ZERO_PIECE: usize = 64 << 10;
/// Base blocks tried at their unshifted positions after a block that changed in place, before
/// falling back to sliding byte by byte.
const IN_PLACE_LOOKAHEAD: u32 = 8;

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
