//! Content hash trees: the BLAKE3 chaining values of a version's 4 KiB-aligned leaves.
//!
//! BLAKE3 is itself a Merkle tree over 1 KiB chunks. The chaining value of an aligned 4 KiB leaf
//! depends only on its bytes and its offset, and the version id (the BLAKE3 of the whole content)
//! is the left-balanced merge of all leaf values. So a version whose changed ranges are known can
//! get its id by hashing only the leaves those ranges touch and merging them with its base's
//! stored values: a change-tracked backup never reads unchanged data, yet its version id is the
//! same BLAKE3 a full read would give. Trees are stored like signatures, as runs over the base
//! version's tree (unchanged leaves keep their values).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
use rayon::prelude::*;

use crate::codec::{Decoder, Encoder};
use crate::error::{Error, Result};
use crate::id::{ObjectId, VersionId};
use crate::runs::{Run, decode_runs, encode_runs, resolve_runs};

/// Bytes per leaf: four BLAKE3 chunks. On disk: do not modify.
pub const LEAF: u64 = 4096;

/// A chaining value.
pub type Cv = ChainingValue;

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

    /// Leaves pushed.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.count == 0
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

/// Hashes a stream into its BLAKE3 and its leaf values, fed in order in any pieces. With a base
/// tree, leaves equal to the base's at the same index are recorded as base runs, so only changed
/// leaves are held in memory.
#[derive(Default)]
pub struct TreeHasher {
    offset: u64,
    partial: Vec<u8>,
    leaves: u64,
    stack: CvStack,
    base: Option<std::sync::Arc<Vec<Cv>>>,
    runs: crate::runs::RunBuilder<Cv>,
    /// The content while it is at most one leaf long (a one-leaf root needs the bytes).
    head: Vec<u8>,
}

impl TreeHasher {
    /// A hasher recording every leaf value.
    pub fn new() -> Self {
        Self::default()
    }

    /// A hasher recording leaves as runs over `base` where they are equal.
    pub fn with_base(base: std::sync::Arc<Vec<Cv>>) -> Self {
        TreeHasher {
            base: Some(base),
            ..Self::default()
        }
    }

    fn push_leaf(&mut self, cv: Cv) {
        let i = self.leaves;
        self.stack.push(cv);
        let same = self.base.as_ref().and_then(|b| b.get(i as usize)) == Some(&cv);
        if same {
            self.runs.push_base(i as u32);
        } else {
            self.runs.push_new([cv]);
        }
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
        if leaves.len() >= 16 * LEAF as usize {
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
            self.update(crate::matcher::zeros(k));
            n -= k as u64;
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// True before any byte.
    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    /// The BLAKE3 of everything hashed, and the leaves as runs (over the base if one was given).
    pub fn finish(mut self) -> (VersionId, TreeLeaves) {
        if !self.partial.is_empty() {
            let leaf = std::mem::take(&mut self.partial);
            let cv = leaf_cv(self.leaves, &leaf);
            self.push_leaf(cv);
        }
        let count = self.leaves;
        let id = match self.stack.root() {
            Some(id) => id,
            None => VersionId::from(blake3::hash(&self.head)),
        };
        (
            id,
            TreeLeaves {
                count,
                runs: self.runs.finish(),
            },
        )
    }
}

/// The content hash of a version being written: plain BLAKE3, or BLAKE3 with its leaf values
/// when a hash tree is kept (change tracking). Both give the same id.
pub enum ContentHasher {
    /// Only the id.
    Plain(Box<blake3::Hasher>),
    /// The id and the leaf values.
    Tree(Box<TreeHasher>),
}

impl ContentHasher {
    /// A hasher keeping leaf values when `tree`, as runs over `base` when given.
    pub fn new(tree: bool, base: Option<std::sync::Arc<Vec<Cv>>>) -> Self {
        match (tree, base) {
            (false, _) => ContentHasher::Plain(Box::new(blake3::Hasher::new())),
            (true, Some(b)) => ContentHasher::Tree(Box::new(TreeHasher::with_base(b))),
            (true, None) => ContentHasher::Tree(Box::new(TreeHasher::new())),
        }
    }

    /// Appends bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            ContentHasher::Plain(h) => {
                h.update(data);
            }
            ContentHasher::Tree(t) => t.update(data),
        }
    }

    /// Appends `n` zero bytes.
    pub fn update_zeros(&mut self, mut n: u64) {
        match self {
            ContentHasher::Tree(t) => t.update_zeros(n),
            ContentHasher::Plain(h) => {
                while n > 0 {
                    let k = n.min(16 << 20) as usize;
                    h.update(crate::matcher::zeros(k));
                    n -= k as u64;
                }
            }
        }
    }

    /// The id, and the leaves when kept.
    pub fn finish(self) -> (VersionId, Option<TreeLeaves>) {
        match self {
            ContentHasher::Plain(h) => (VersionId::from(h.finalize()), None),
            ContentHasher::Tree(t) => {
                let (id, leaves) = t.finish();
                (id, Some(leaves))
            }
        }
    }
}

/// A version's leaf values as runs (over a base tree where one was given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeLeaves {
    /// Number of leaves.
    pub count: u64,
    /// The runs.
    pub runs: Vec<Run<Cv>>,
}

/// A stored hash tree: complete, or runs over a base version's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashTreeRecord {
    /// Size of the version.
    pub file_size: u64,
    /// Number of leaves after resolving runs.
    pub leaf_count: u32,
    /// The base tree the `Base` runs refer to.
    pub base: Option<ObjectId>,
    /// Run-encoded levels above a complete tree (0 for a complete one).
    pub chain: u16,
    /// The runs.
    pub runs: Vec<Run<Cv>>,
}

const DERIVE_CONTEXT: &str = "backup-fs 2026-11 hash tree object";

impl HashTreeRecord {
    /// Encodes the payload and returns it with its object id.
    pub fn encode(&self) -> (ObjectId, Vec<u8>) {
        let mut e = Encoder::new();
        e.u32(LEAF as u32);
        e.u64(self.file_size);
        e.u32(self.leaf_count);
        e.u16(self.chain);
        match &self.base {
            Some(id) => {
                e.u8(1);
                e.object_id(id);
            }
            None => e.u8(0),
        }
        encode_runs(&self.runs, &mut e, |cv, e| e.raw(cv));
        let payload = e.into_bytes();
        let id = ObjectId::from(
            blake3::Hasher::new_derive_key(DERIVE_CONTEXT)
                .update(&payload)
                .finalize(),
        );
        (id, payload)
    }

    /// Decodes a payload written by [`HashTreeRecord::encode`].
    pub fn decode(payload: &[u8], what: &str) -> Result<Self> {
        let mut d = Decoder::new(payload, what);
        let leaf = d.u32()?;
        if u64::from(leaf) != LEAF {
            return Err(d.error(format!("leaf size {leaf} is not {LEAF}")));
        }
        let file_size = d.u64()?;
        let leaf_count = d.u32()?;
        if u64::from(leaf_count) != leaf_count_of(file_size) {
            return Err(d.error("leaf count disagrees with the file size"));
        }
        let chain = d.u16()?;
        let base = match d.u8()? {
            0 => None,
            1 => Some(d.object_id()?),
            t => return Err(d.error(format!("bad base flag {t}"))),
        };
        if base.is_none() != (chain == 0) {
            return Err(d.error("chain length disagrees with base"));
        }
        let (runs, total) = decode_runs(&mut d, base.is_some(), u64::from(leaf_count), 32, |d| {
            let mut cv = [0u8; 32];
            cv.copy_from_slice(d.take(32)?);
            Ok(cv)
        })?;
        d.finish()?;
        if total != u64::from(leaf_count) {
            return Err(Error::corrupt(what, "runs hold fewer leaves than the header says"));
        }
        Ok(HashTreeRecord {
            file_size,
            leaf_count,
            base,
            chain,
            runs,
        })
    }

    /// Resolves into all leaf values given the base tree's (required iff `base` is set).
    pub fn resolve(self, base: Option<&[Cv]>, what: &str) -> Result<Vec<Cv>> {
        let cvs = resolve_runs(self.runs, base, what)?;
        if cvs.len() as u64 != u64::from(self.leaf_count) {
            return Err(Error::corrupt(what, "tree has the wrong number of leaves"));
        }
        Ok(cvs)
    }
}

fn leaf_count_of(size: u64) -> u64 {
    leaf_count(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    proptest! {
        #[test]
        fn tree_root_is_blake3(n in 0usize..70_000, piece in 1usize..20_000, seed: u8) {
            let data = bytes(n, seed);
            let mut t = TreeHasher::new();
            for c in data.chunks(piece) {
                t.update(c);
            }
            let (id, leaves) = t.finish();
            prop_assert_eq!(id, VersionId::from(blake3::hash(&data)));
            prop_assert_eq!(leaves.count, leaf_count(n as u64));
            let cvs = resolve_runs(leaves.runs, None, "t").unwrap();
            if cvs.len() >= 2 {
                prop_assert_eq!(root_from(cvs.len(), |i| cvs[i]), Some(id));
            }
            // Against itself as base: every leaf is a base run.
            let mut again = TreeHasher::with_base(std::sync::Arc::new(cvs.clone()));
            again.update(&data);
            let (id2, l2) = again.finish();
            prop_assert_eq!(id2, id);
            let all_base = l2.runs.iter().all(|r| matches!(r, Run::Base { .. }));
            prop_assert!(all_base);
        }

        #[test]
        fn changing_leaves_and_remerging_matches_rehashing(n in 8193usize..200_000, at in any::<usize>(), len in 1usize..9000) {
            let mut data = bytes(n, 1);
            let mut t = TreeHasher::new();
            t.update(&data);
            let (_, leaves) = t.finish();
            let mut cvs = resolve_runs(leaves.runs, None, "t").unwrap();
            let at = at % n;
            let end = (at + len).min(n);
            for b in &mut data[at..end] { *b ^= 0x5a; }
            for leaf in (at as u64 / LEAF)..=((end as u64 - 1) / LEAF) {
                let s = (leaf * LEAF) as usize;
                let e = (s + LEAF as usize).min(n);
                cvs[leaf as usize] = leaf_cv(leaf, &data[s..e]);
            }
            prop_assert_eq!(root_from(cvs.len(), |i| cvs[i]), Some(VersionId::from(blake3::hash(&data))));
            let mut stack = CvStack::default();
            for cv in &cvs { stack.push(*cv); }
            prop_assert_eq!(stack.root(), Some(VersionId::from(blake3::hash(&data))));
        }

        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let _ = HashTreeRecord::decode(&data, "g");
        }
    }

    #[test]
    fn records_roundtrip_and_resolve() {
        let mut t = TreeHasher::new();
        t.update(&bytes(20_000, 3));
        let (_, leaves) = t.finish();
        let cvs = resolve_runs(leaves.runs, None, "t").unwrap();
        let rec = HashTreeRecord {
            file_size: 20_000,
            leaf_count: cvs.len() as u32,
            base: None,
            chain: 0,
            runs: vec![Run::New(cvs.clone())],
        };
        let (id, p) = rec.encode();
        let back = HashTreeRecord::decode(&p, "t").unwrap();
        assert_eq!(back, rec);
        let delta = HashTreeRecord {
            file_size: 20_000,
            leaf_count: cvs.len() as u32,
            base: Some(id),
            chain: 1,
            runs: vec![
                Run::Base { start: 0, count: 2 },
                Run::New(vec![[7; 32]]),
                Run::Base { start: 3, count: 2 },
            ],
        };
        let (_, p2) = delta.encode();
        let got = HashTreeRecord::decode(&p2, "t2")
            .unwrap()
            .resolve(Some(&cvs), "t2")
            .unwrap();
        assert_eq!(got[2], [7; 32]);
        assert_eq!(got[4], cvs[4]);
    }

    #[test]
    fn zeros_hash_like_zero_bytes() {
        let mut a = TreeHasher::new();
        a.update(b"x");
        a.update_zeros(10_000);
        let mut b = TreeHasher::new();
        let mut v = vec![0u8; 10_001];
        v[0] = b'x';
        b.update(&v);
        assert_eq!(a.finish().0, b.finish().0);
    }
}

#[cfg(test)]
mod encoding_tests {
    use super::*;

    #[test]
    fn one_leaf_record_reencodes_identically() {
        for n in [1usize, 4095, 4096, 4097, 10_000] {
            let mut t = TreeHasher::new();
            t.update(&vec![3u8; n]);
            let (_, leaves) = t.finish();
            let rec = HashTreeRecord {
                file_size: n as u64,
                leaf_count: leaves.count as u32,
                base: None,
                chain: 0,
                runs: vec![Run::New(resolve_runs(leaves.runs, None, "t").unwrap())],
            };
            let (id, p) = rec.encode();
            let back = HashTreeRecord::decode(&p, "t").unwrap();
            assert_eq!(back.encode().0, id, "n = {n}");
        }
    }
}
