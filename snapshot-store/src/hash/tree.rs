//! BLAKE3 as a tree: the chaining values of a content's 4 KiB-aligned leaves and how they merge
//! into its hash.
//!
//! BLAKE3 is itself a Merkle tree over 1 KiB chunks. The chaining value of an aligned 4 KiB leaf
//! depends only on its bytes and its offset, and the hash of the whole content is the
//! left-balanced merge of all leaf values. So the hash of a content whose changed ranges are
//! known can be computed by hashing only the leaves those ranges touch and merging them with
//! stored values of the others: the same BLAKE3 a full read would give. Leaves are grouped in
//! aligned regions of 64 (256 KiB), each a subtree whose value can stand in for its leaves.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};

use crate::id::VersionId;

/// Bytes per leaf: four BLAKE3 chunks. On disk: do not modify.
pub const LEAF: u64 = 4096;

/// Leaves per region: a region is the 64-leaf (256 KiB) aligned subtree. On disk: do not modify.
pub const REGION: u64 = 64;

/// A chaining value.
pub type Cv = ChainingValue;

/// The leaf values of one region (leaves past the end of the file are zero).
pub type LeafBlock = [Cv; REGION as usize];

/// The chaining value of leaf `index` holding `data` (at most [`LEAF`] bytes, the last leaf may be
/// shorter).
pub fn leaf_cv(index: u64, data: &[u8]) -> Cv {
    blake3::Hasher::new()
        .set_input_offset(index * LEAF)
        .update(data)
        .finalize_non_root()
}

/// The number of leaves of a version of `size` bytes.
pub fn leaf_count(size: u64) -> u64 {
    size.div_ceil(LEAF)
}

/// Largest power of two strictly less than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let p = n.next_power_of_two();
    if p == n { n / 2 } else { p / 2 }
}

fn merge_non_root(cv: &impl Fn(usize) -> Cv, lo: usize, hi: usize) -> Cv {
    if hi - lo == 1 {
        return cv(lo);
    }
    let mid = lo + split(hi - lo);
    merge_subtrees_non_root(&merge_non_root(cv, lo, mid), &merge_non_root(cv, mid, hi), Mode::Hash)
}

/// The BLAKE3 of a version with `n ≥ 2` leaves whose chaining values `cv(i)` gives. (A version of
/// one leaf or less is hashed directly: its root is not a merge.)
#[cfg(test)]
pub fn root_from(n: usize, cv: impl Fn(usize) -> Cv) -> Option<VersionId> {
    if n < 2 {
        return None;
    }
    let mid = split(n);
    Some(VersionId::from(merge_subtrees_root(
        &merge_non_root(&cv, 0, mid),
        &merge_non_root(&cv, mid, n),
        Mode::Hash,
    )))
}

/// The number of regions of a version of `leaves` leaves.
pub fn region_count(leaves: u64) -> u64 {
    leaves.div_ceil(REGION)
}

/// The chaining value of a full region's subtree from its 64 leaf values.
pub fn region_cv(leaves: &[Cv]) -> Cv {
    merge_non_root(&|i| leaves.get(i).copied().unwrap_or([0; 32]), 0, leaves.len())
}

/// The non-root chaining value of leaves `lo..hi` of a left-balanced tree, taking a full aligned
/// region's value from `region` when it knows it.
fn node(lo: u64, hi: u64, region: &dyn Fn(u64) -> Option<Cv>, leaf: &dyn Fn(u64) -> Cv) -> Cv {
    if hi - lo == REGION
        && lo.is_multiple_of(REGION)
        && let Some(cv) = region(lo / REGION)
    {
        return cv;
    }
    if hi - lo == 1 {
        return leaf(lo);
    }
    let mid = lo + split((hi - lo) as usize) as u64;
    merge_subtrees_non_root(&node(lo, mid, region, leaf), &node(mid, hi, region, leaf), Mode::Hash)
}

/// The BLAKE3 of a version with `n ≥ 2` leaves, from the values of full regions where `region`
/// gives them and of single leaves elsewhere. (Every aligned full region is a subtree of the
/// left-balanced tree, except a region that is the whole version: its merge is the root.)
pub fn root_of(n: u64, region: &dyn Fn(u64) -> Option<Cv>, leaf: &dyn Fn(u64) -> Cv) -> Option<VersionId> {
    if n < 2 {
        return None;
    }
    let mid = split(n as usize) as u64;
    Some(VersionId::from(merge_subtrees_root(
        &node(0, mid, region, leaf),
        &node(mid, n, region, leaf),
        Mode::Hash,
    )))
}

/// Merges leaf values pushed in order into the root, keeping O(log n) values (BLAKE3's own lazy
/// chaining-value stack: a leaf is merged only once the next one arrives, so the last merge can
/// be the root).
#[derive(Debug, Default)]
pub struct CvStack {
    stack: Vec<Cv>,
    pending: Option<Cv>,
    count: u64,
}

impl CvStack {
    /// Pushes the value of the next leaf.
    pub fn push(&mut self, cv: Cv) {
        if let Some(mut prev) = self.pending.replace(cv) {
            let mut total = self.count;
            while total & 1 == 0 {
                let Some(left) = self.stack.pop() else { break };
                prev = merge_subtrees_non_root(&left, &prev, Mode::Hash);
                total >>= 1;
            }
            self.stack.push(prev);
        }
        self.count += 1;
    }

    /// The root over all pushed leaves; `None` with fewer than two (hash those bytes directly).
    pub fn root(mut self) -> Option<VersionId> {
        let mut right = self.pending?;
        let mut left = self.stack.pop()?;
        while let Some(next) = self.stack.pop() {
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
            left = next;
        }
        Some(VersionId::from(merge_subtrees_root(&left, &right, Mode::Hash)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    fn leaf_cvs(data: &[u8]) -> Vec<Cv> {
        data.chunks(LEAF as usize)
            .enumerate()
            .map(|(i, l)| leaf_cv(i as u64, l))
            .collect()
    }

    proptest! {
        #[test]
        fn merging_leaf_values_gives_blake3(n in 4097usize..600_000, seed: u8) {
            let data = bytes(n, seed);
            let cvs = leaf_cvs(&data);
            let want = Some(VersionId::from(blake3::hash(&data)));
            prop_assert_eq!(root_from(cvs.len(), |i| cvs[i]), want);
            let mut stack = CvStack::default();
            for cv in &cvs { stack.push(*cv); }
            prop_assert_eq!(stack.root(), want);
        }

        #[test]
        fn changing_leaves_and_remerging_matches_rehashing(n in 8193usize..600_000, at in any::<usize>(), len in 1usize..9000) {
            let mut data = bytes(n, 1);
            let mut cvs = leaf_cvs(&data);
            let at = at % n;
            let end = (at + len).min(n);
            for b in &mut data[at..end] { *b ^= 0x5a; }
            for leaf in (at as u64 / LEAF)..=((end as u64 - 1) / LEAF) {
                let s = (leaf * LEAF) as usize;
                let e = (s + LEAF as usize).min(n);
                cvs[leaf as usize] = leaf_cv(leaf, &data[s..e]);
            }
            let want = Some(VersionId::from(blake3::hash(&data)));
            prop_assert_eq!(root_from(cvs.len(), |i| cvs[i]), want);
            let mut stack = CvStack::default();
            for cv in &cvs { stack.push(*cv); }
            prop_assert_eq!(stack.root(), want);
            // Region values for every full region, leaves for the rest.
            let region = |r: u64| {
                let lo = (r * REGION) as usize;
                cvs.get(lo..lo + REGION as usize).map(region_cv)
            };
            prop_assert_eq!(root_of(cvs.len() as u64, &region, &|i| cvs[i as usize]), want);
        }
    }

    #[test]
    fn one_leaf_has_no_merge() {
        assert_eq!(root_from(1, |_| [0; 32]), None);
        assert_eq!(CvStack::default().root(), None);
    }
}
