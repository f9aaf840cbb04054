//! Emits a tracked version's ops and signature runs in file order: base blocks kept as copies,
//! rewritten regions as literal blocks cut from where each region starts (all-zero full blocks
//! become holes, as the matcher makes them).

use crate::error::Result;
use crate::format::delta::{DeltaOp, OpsBuilder};
use crate::format::runs::RunBuilder;
use crate::format::signature::{BlockSig, SigRun, Signature, block_sig};
use crate::hash::block::{is_zero, zeros};
use crate::hash::rolling::Roller;
use crate::store::object::LiteralSink;

/// Emits ops and signature runs in file order: base blocks kept as copies, rewritten regions as
/// literal blocks cut from where each region starts (all-zero full blocks become holes, as the
/// matcher does).
pub(super) struct Emitter<'a> {
    sig: &'a Signature,
    roller: Roller,
    zero: Vec<bool>,
    zero_block: BlockSig,
    bs: usize,
    next_block: usize,
    ops: OpsBuilder,
    runs: RunBuilder<BlockSig>,
    pending: Vec<u8>,
    pub literal: u64,
}

impl<'a> Emitter<'a> {
    pub fn new(sig: &'a Signature) -> Self {
        let bs = sig.block_size as usize;
        let roller = Roller::new(bs);
        let zero_block = block_sig(&roller, zeros(bs));
        // Every block but the last is `bs` long: hash zeros once per length, not once per block
        // (a 4 GiB file has a million blocks).
        let short_zero = sig
            .blocks
            .last()
            .filter(|b| b.len as usize != bs)
            .map(|b| block_sig(&roller, zeros(b.len as usize)));
        let zero = sig
            .blocks
            .iter()
            .map(|b| {
                let z = if b.len as usize == bs {
                    Some(&zero_block)
                } else {
                    short_zero.as_ref()
                };
                z == Some(b)
            })
            .collect();
        Emitter {
            sig,
            roller,
            zero,
            zero_block,
            bs,
            next_block: 0,
            ops: OpsBuilder::new(),
            runs: RunBuilder::default(),
            pending: Vec::new(),
            literal: 0,
        }
    }

    /// Emits, as copies of the base, the base blocks that end at or before `x`.
    pub fn clean_until(&mut self, x: u64) {
        while let (Some(b), Some(&o)) = (
            self.sig.blocks.get(self.next_block),
            self.sig.offsets.get(self.next_block),
        ) {
            let e = o + u64::from(b.len);
            if e > x {
                break;
            }
            if self.zero.get(self.next_block).copied().unwrap_or(false) {
                self.ops.push(DeltaOp::Hole { len: u64::from(b.len) });
            } else {
                self.ops.push(DeltaOp::Copy {
                    base_offset: o,
                    len: u64::from(b.len),
                });
            }
            self.runs.push_base(self.next_block as u32);
            self.next_block += 1;
        }
    }

    pub fn begin(&mut self, start: u64) {
        self.clean_until(start);
        self.pending.clear();
    }

    pub fn feed(&mut self, mut bytes: &[u8], sink: &mut dyn LiteralSink) -> Result<()> {
        while !bytes.is_empty() {
            let take = (self.bs - self.pending.len()).min(bytes.len());
            let (now, rest) = bytes.split_at(take);
            self.pending.extend_from_slice(now);
            bytes = rest;
            if self.pending.len() == self.bs {
                self.block(sink)?;
            }
        }
        Ok(())
    }

    fn block(&mut self, sink: &mut dyn LiteralSink) -> Result<()> {
        let piece = std::mem::take(&mut self.pending);
        if piece.len() == self.bs && is_zero(&piece) {
            self.ops.push(DeltaOp::Hole { len: self.bs as u64 });
            self.runs.push_new([self.zero_block]);
        } else if !piece.is_empty() {
            sink.write(&piece)?;
            self.literal += piece.len() as u64;
            self.ops.push(DeltaOp::Literal {
                len: piece.len() as u64,
            });
            self.runs.push_new([block_sig(&self.roller, &piece)]);
        }
        self.pending = piece;
        self.pending.clear();
        Ok(())
    }

    /// Ends the region at `end`: emits its last, short block and skips the base blocks it replaced.
    pub fn end(&mut self, end: u64, sink: &mut dyn LiteralSink) -> Result<()> {
        self.block(sink)?;
        while let Some(&o) = self.sig.offsets.get(self.next_block) {
            if self.next_block >= self.sig.blocks.len() || o >= end {
                break;
            }
            self.next_block += 1;
        }
        Ok(())
    }

    pub fn finish(self) -> (Vec<DeltaOp>, Vec<SigRun>, u32) {
        let count = self.runs.len();
        (self.ops.finish(), self.runs.finish(), count)
    }
}
