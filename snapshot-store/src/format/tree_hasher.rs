//! Building a new version's hash tree: leaf values pushed in order, regions equal to the base
//! tree's shared with it, and the hasher that computes a content's BLAKE3 and its tree at once.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::sync::Arc;

use rayon::prelude::*;

use crate::format::hashtree::{BlockAt, RegionEntry, TreeLeaves, TreeTable};
use crate::hash::tree::{Cv, CvStack, LEAF, LeafBlock, REGION, leaf_cv, region_cv};
use crate::id::VersionId;

/// Builds a [`TreeLeaves`] from leaf values pushed in order, sharing with `base` every full region
/// whose chaining value is the base's at the same index (same value, same leaves).
#[derive(Default)]
pub struct TreeBuilder {
    base: Option<Arc<TreeTable>>,
    regions: Vec<RegionEntry>,
    blocks: Vec<LeafBlock>,
    current: Vec<Cv>,
    count: u64,
}

impl TreeBuilder {
    /// A builder sharing regions with `base` where they are equal.
    pub fn new(base: Option<Arc<TreeTable>>) -> Self {
        TreeBuilder {
            base,
            ..Self::default()
        }
    }

    /// Pushes the value of the next leaf.
    pub fn push_leaf(&mut self, cv: Cv) {
        self.current.push(cv);
        self.count += 1;
        if self.current.len() as u64 == REGION {
            self.close_region();
        }
    }

    /// Pushes a whole region stored elsewhere (only at a region boundary, for a full region).
    pub fn push_region(&mut self, cv: Cv, at: BlockAt) {
        debug_assert!(self.current.is_empty());
        self.regions.push(RegionEntry { cv, at });
        self.count += REGION;
    }

    fn close_region(&mut self) {
        let leaves = std::mem::take(&mut self.current);
        let full = leaves.len() as u64 == REGION;
        let cv = if full { region_cv(&leaves) } else { [0; 32] };
        let r = self.regions.len() as u64;
        let shared = self.base.as_ref().filter(|b| full && b.is_full(r)).and_then(|b| {
            b.regions
                .get(r as usize)
                .filter(|e| e.cv == cv)
                .and_then(|_| b.location(r))
        });
        let at = match shared {
            Some((id, slot)) => BlockAt::In(id, slot),
            None => {
                let mut block = [[0u8; 32]; REGION as usize];
                for (dst, src) in block.iter_mut().zip(&leaves) {
                    *dst = *src;
                }
                self.blocks.push(block);
                BlockAt::New(self.blocks.len() as u32 - 1)
            }
        };
        self.regions.push(RegionEntry { cv, at });
    }

    /// The tree of all leaves pushed.
    pub fn finish(mut self) -> TreeLeaves {
        if !self.current.is_empty() {
            self.close_region();
        }
        TreeLeaves {
            count: self.count,
            regions: self.regions,
            blocks: self.blocks,
        }
    }
}

/// Hashes a stream into its BLAKE3 and its hash tree, fed in order in any pieces. With a base
/// tree, regions equal to the base's share its blocks, so only changed regions are held in memory.
#[derive(Default)]
pub struct TreeHasher {
    offset: u64,
    partial: Vec<u8>,
    leaves: u64,
    stack: CvStack,
    tree: TreeBuilder,
    /// The content while it is at most one leaf long (a one-leaf root needs the bytes).
    head: Vec<u8>,
    /// Whether long runs of leaves are hashed on rayon's pool.
    parallel: bool,
}

impl TreeHasher {
    /// A hasher sharing regions with `base` where they are equal, hashing long runs of leaves on
    /// rayon's pool when `parallel`.
    ///
    /// `parallel` must be false when the thread that feeds the hasher is waited on by a pool
    /// worker (as the hash thread of a file written inside a rayon task is): with every worker so
    /// waiting, nothing would run the pool's share of the hashing, and the write would hang.
    pub fn new(base: Option<Arc<TreeTable>>, parallel: bool) -> Self {
        TreeHasher {
            tree: TreeBuilder::new(base),
            parallel,
            ..Self::default()
        }
    }

    fn push_leaf(&mut self, cv: Cv) {
        self.stack.push(cv);
        self.tree.push_leaf(cv);
        self.leaves += 1;
    }

    /// Appends bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        if self.offset < LEAF {
            let keep = (LEAF - self.offset).min(data.len() as u64) as usize;
            self.head.extend_from_slice(data.get(..keep).unwrap_or_default());
        }
        self.offset += data.len() as u64;
        if !self.partial.is_empty() {
            let need = LEAF as usize - self.partial.len();
            let (now, rest) = data.split_at(need.min(data.len()));
            self.partial.extend_from_slice(now);
            data = rest;
            if self.partial.len() < LEAF as usize {
                return;
            }
            let leaf = std::mem::take(&mut self.partial);
            let cv = leaf_cv(self.leaves, &leaf);
            self.push_leaf(cv);
        }
        let whole = data.len() / LEAF as usize * LEAF as usize;
        let (leaves, tail) = data.split_at(whole);
        let first = self.leaves;
        if self.parallel && leaves.len() >= 16 * LEAF as usize {
            let cvs: Vec<Cv> = leaves
                .par_chunks(LEAF as usize)
                .enumerate()
                .map(|(i, l)| leaf_cv(first + i as u64, l))
                .collect();
            for cv in cvs {
                self.push_leaf(cv);
            }
        } else {
            for (i, l) in leaves.chunks(LEAF as usize).enumerate() {
                self.push_leaf(leaf_cv(first + i as u64, l));
            }
        }
        self.partial.extend_from_slice(tail);
    }

    /// Appends `n` zero bytes.
    pub fn update_zeros(&mut self, mut n: u64) {
        while n > 0 {
            let k = n.min(4 << 20) as usize;
            self.update(crate::hash::block::zeros(k));
            n -= k as u64;
        }
    }

    /// The BLAKE3 of everything hashed, and the tree.
    pub fn finish(mut self) -> (VersionId, TreeLeaves) {
        if !self.partial.is_empty() {
            let leaf = std::mem::take(&mut self.partial);
            let cv = leaf_cv(self.leaves, &leaf);
            self.push_leaf(cv);
        }
        let id = match self.stack.root() {
            Some(id) => id,
            None => VersionId::from(blake3::hash(&self.head)),
        };
        (id, self.tree.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::hashtree::{decode_payload, root_block};
    use crate::hash::tree::{LeafBlock, leaf_count, region_count, root_from};
    use proptest::prelude::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    fn hash_tree(data: &[u8], base: Option<Arc<TreeTable>>) -> (VersionId, TreeLeaves) {
        let mut t = TreeHasher::new(base, true);
        t.update(data);
        t.finish()
    }

    /// Encodes `leaves` and decodes it back as a stored table (with its root block, as the store
    /// loads it), plus its blocks.
    fn store(leaves: &TreeLeaves, id: &VersionId, size: u64) -> (Arc<TreeTable>, Vec<LeafBlock>) {
        let (oid, payload) = leaves.encode(id, size).unwrap();
        let (mut table, blocks) = decode_payload(oid, &payload, "t").unwrap();
        table.root_leaves = root_block(table.leaf_count()).map(|r| {
            let BlockAt::New(slot) = leaves.regions[r as usize].at else {
                panic!("root block shared")
            };
            (r, blocks[slot as usize])
        });
        (Arc::new(table), blocks)
    }

    fn all_leaves(leaves: &TreeLeaves, blocks_of: &dyn Fn(&BlockAt) -> LeafBlock) -> Vec<Cv> {
        let mut out = Vec::new();
        for r in &leaves.regions {
            out.extend_from_slice(&blocks_of(&r.at));
        }
        out.truncate(leaves.count as usize);
        out
    }

    proptest! {
        #[test]
        fn tree_root_is_blake3(n in 0usize..600_000, piece in 1usize..70_000, seed: u8, parallel: bool) {
            let data = bytes(n, seed);
            let mut t = TreeHasher::new(None, parallel);
            for c in data.chunks(piece) {
                t.update(c);
            }
            let (id, leaves) = t.finish();
            prop_assert_eq!(id, VersionId::from(blake3::hash(&data)));
            prop_assert_eq!(leaves.count, leaf_count(n as u64));
            prop_assert_eq!(leaves.regions.len() as u64, region_count(leaves.count));
            let cvs = all_leaves(&leaves, &|at| match at {
                BlockAt::New(k) => leaves.blocks[*k as usize],
                BlockAt::In(..) => unreachable!(),
            });
            if cvs.len() >= 2 {
                prop_assert_eq!(root_from(cvs.len(), |i| cvs[i]), Some(id));
                // From the stored table: region values plus the root block only.
                let (table, _) = store(&leaves, &id, n as u64);
                prop_assert_eq!(table.root(table.root_leaves.as_ref().map(|(_, b)| b)), Some(id));
            }
            // Against itself as base: every full region is shared, only a partial one is new.
            if n > 0 {
                let (table, _) = store(&leaves, &id, n as u64);
                let (id2, again) = hash_tree(&data, Some(Arc::clone(&table)));
                prop_assert_eq!(id2, id);
                let partial = usize::from(leaves.count % REGION != 0);
                prop_assert_eq!(again.blocks.len(), partial);
            }
        }

    }

    #[test]
    fn a_changed_region_is_new_and_the_others_are_shared() {
        let n = 70 * 4096 * 3 + 100;
        let data = bytes(n, 3);
        let (id, leaves) = hash_tree(&data, None);
        let (table, blocks) = store(&leaves, &id, n as u64);
        let mut changed = data.clone();
        changed[64 * 4096 + 5] ^= 1; // region 1
        let (id2, l2) = hash_tree(&changed, Some(Arc::clone(&table)));
        assert_eq!(id2, VersionId::from(blake3::hash(&changed)));
        // Region 1 and the partial last region are new; the rest point into the base.
        assert_eq!(l2.blocks.len(), 2);
        assert!(matches!(l2.regions[1].at, BlockAt::New(0)));
        assert_eq!(l2.regions[0].at, BlockAt::In(table.id, 0));
        assert_eq!(table.location(2), Some((table.id, 2)));
        // Encoded, the new tree refers to the base object once and resolves to the right leaves.
        let (oid2, payload2) = l2.encode(&id2, n as u64).unwrap();
        let (t2, b2) = decode_payload(oid2, &payload2, "t2").unwrap();
        assert_eq!(t2.refs, vec![table.id]);
        assert_eq!(t2.location(0), Some((table.id, 0)));
        assert_eq!(t2.location(1), Some((oid2, 0)));
        assert_eq!(region_cv(&b2[0]), t2.regions[1].cv);
        assert_eq!(region_cv(&blocks[0]), t2.regions[0].cv);
        let last = root_block(t2.leaf_count()).unwrap();
        let (_, slot) = t2.location(last).unwrap();
        assert_eq!(t2.root(Some(&b2[slot as usize])), Some(id2));
    }

    #[test]
    fn bad_tables_are_refused() {
        let data = bytes(300_000, 9);
        let (id, leaves) = hash_tree(&data, None);
        let (oid, payload) = leaves.encode(&id, 300_000).unwrap();
        assert!(decode_payload(oid, &payload, "t").is_ok());
        // A region pointing past the blocks.
        let mut bad = payload.clone();
        let n = bad.len();
        bad[n - 4..].copy_from_slice(&99u32.to_le_bytes());
        assert!(decode_payload(oid, &bad, "t").is_err());
        // A truncated payload.
        assert!(decode_payload(oid, &payload[..payload.len() - 1], "t").is_err());
        // Another leaf size.
        let mut bad = payload.clone();
        bad[0] = 1;
        assert!(decode_payload(oid, &bad, "t").is_err());
        // A tree that does not match its file size cannot be encoded.
        assert!(leaves.encode(&id, 1).is_err());
    }

    #[test]
    fn zeros_hash_like_zero_bytes() {
        let mut a = TreeHasher::new(None, true);
        a.update(b"x");
        a.update_zeros(10_000);
        let mut b = TreeHasher::new(None, false);
        let mut v = vec![0u8; 10_001];
        v[0] = b'x';
        b.update(&v);
        assert_eq!(a.finish().0, b.finish().0);
    }
}
