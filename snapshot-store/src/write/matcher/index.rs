//! A base signature prepared for lookups by weak hash: a small bitmap filter, then buckets of
//! (weak hash, block) pairs, so that a lookup touches no block until a weak hash matches.

use std::sync::Arc;

use crate::format::signature::{Signature, block_sig};
use crate::hash::block::{strong_hash, zeros};
use crate::hash::rolling::Roller;

/// Longest chain of equal-bucket candidates examined per lookup.
const MAX_CANDIDATES: usize = 64;

/// A base signature prepared for lookups by weak hash.
#[derive(Debug)]
pub struct BaseIndex {
    pub(super) sig: Arc<Signature>,
    pub(super) roller: Roller,
    /// One bit per slot of `mix(weak) >> filter_shift`: clear means no block has such a hash.
    filter: Vec<u64>,
    filter_shift: u32,
    /// `buckets[b]..buckets[b+1]` is the range of `entries` whose weak hash falls in bucket `b`.
    buckets: Vec<u32>,
    bucket_shift: u32,
    /// (weak hash, block index), grouped by bucket: a lookup touches no block until weak matches.
    entries: Vec<(u32, u32)>,
    /// Per block: all zeros (matched as a hole).
    pub(super) zero: Vec<bool>,
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

    /// The block whose hashes equal those of `window` (full block length), if any.
    #[inline]
    pub(super) fn find(&self, weak: u32, window: &[u8]) -> Option<u32> {
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
