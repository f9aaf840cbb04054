//! What a tracked write reads and rewrites, and the "trust but verify" sample of the blocks it
//! takes as unchanged.

use std::fs::File;

use crate::format::delta::DeltaOp;
use crate::format::signature::Signature;
use crate::hash::block::{is_zero, strong_hash, zeros};
use crate::hash::tree::{LEAF, leaf_count};
use crate::os::file::read_full_at;
use crate::tracking::ranges::RangeSet;

/// The ranges of a version whose ops do not copy the base at the same offset.
pub(super) fn differs_from_base(ops: &[DeltaOp]) -> RangeSet {
    let mut pos = 0u64;
    let mut out = Vec::new();
    for op in ops {
        let len = op.len();
        let same = matches!(op, DeltaOp::Copy { base_offset, .. } if *base_offset == pos);
        if !same {
            out.push(pos..pos + len);
        }
        pos += len;
    }
    RangeSet::from_ranges(out)
}

/// What a tracked write reads and rewrites.
pub(super) struct Plan {
    /// Base blocks to rewrite (merged), plus growth past the old size.
    pub sig_regions: RangeSet,
    /// Leaves to rehash, as byte ranges.
    pub leaves: RangeSet,
    /// Everything to read: both of the above.
    pub read: RangeSet,
    /// Base blocks kept unchanged (for the verification sample).
    clean_blocks: Vec<usize>,
}

impl Plan {
    pub fn new(sig: &Signature, dirty: &RangeSet, old: u64, new: u64) -> Plan {
        let mut dirty = dirty.clip(new);
        if new > old {
            dirty = dirty.union(&RangeSet::one(old..new));
        }
        let mut regions = Vec::new();
        let mut clean = Vec::new();
        for (j, b) in sig.blocks.iter().enumerate() {
            let o = sig.offsets.get(j).copied().unwrap_or(0);
            let e = o + u64::from(b.len);
            if o >= new {
                break;
            }
            if e > new || dirty.intersects(o, e) {
                regions.push(o..e.min(new));
            } else {
                clean.push(j);
            }
        }
        if new > old {
            regions.push(old..new);
        }
        let sig_regions = RangeSet::from_ranges(regions);
        let mut leaves = dirty.align(LEAF, new);
        // The leaf holding the smaller of the old and new ends changes length (truncation or
        // growth), unless that end falls on a leaf boundary.
        let edge = old.min(new) / LEAF * LEAF;
        if old != new && edge < new {
            leaves = leaves.union(&RangeSet::one(edge..(edge + LEAF).min(new)));
        }
        if leaf_count(new) <= 1 && new > 0 {
            // A one-leaf version's id is its plain BLAKE3: read it all.
            leaves = RangeSet::one(0..new);
        }
        if leaf_count(old) <= 1 && new > 0 {
            // A one-leaf base has no checked leaf value (its id is a plain BLAKE3): rehash it.
            leaves = leaves.union(&RangeSet::one(0..new.min(LEAF)));
        }
        let read = sig_regions.union(&leaves);
        Plan {
            sig_regions,
            leaves,
            read,
            clean_blocks: clean,
        }
    }

    pub fn leaf_dirty(&self, leaf: u64) -> bool {
        self.leaves.intersects(leaf * LEAF, leaf * LEAF + 1)
    }

    /// Re-reads up to `n` blocks taken as unchanged; returns the offset of the first that
    /// differs from its stored signature.
    pub fn verify_sample(
        &mut self,
        data: &File,
        sig: &Signature,
        n: u32,
        bytes_read: &mut u64,
    ) -> std::io::Result<Option<u64>> {
        if self.clean_blocks.is_empty() || n == 0 {
            return Ok(None);
        }
        // Distinct blocks, chosen at random (a partial Fisher-Yates shuffle): a sample as large as
        // the file checks every block.
        let mut x = crate::format::time::now_ns() as u64 | 1;
        let mut buf = Vec::new();
        let pool = &mut self.clean_blocks;
        let take = (n as usize).min(pool.len());
        for k in 0..take {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pick = k + (x % (pool.len() - k) as u64) as usize;
            pool.swap(k, pick);
            let Some(&j) = pool.get(k) else { continue };
            let (Some(b), Some(&o)) = (sig.blocks.get(j), sig.offsets.get(j)) else {
                continue;
            };
            buf.resize(b.len as usize, 0);
            let got = read_full_at(data, &mut buf, o)?;
            *bytes_read += got as u64;
            let zero_block = b.strong == strong_hash(zeros(b.len as usize));
            let same = got == buf.len()
                && if zero_block {
                    is_zero(&buf)
                } else {
                    strong_hash(&buf) == b.strong
                };
            if !same {
                return Ok(Some(o));
            }
        }
        Ok(None)
    }
}
