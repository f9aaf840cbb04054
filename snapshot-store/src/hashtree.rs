//! Content hash trees: the BLAKE3 chaining values of a version's 4 KiB-aligned leaves.
//!
//! BLAKE3 is itself a Merkle tree over 1 KiB chunks. The chaining value of an aligned 4 KiB leaf
//! depends only on its bytes and its offset, and the version id (the BLAKE3 of the whole content)
//! is the left-balanced merge of all leaf values. So a version whose changed ranges are known can
//! get its id by hashing only the leaves those ranges touch and merging them with its base's
//! stored values: a change-tracked backup never reads unchanged data, yet its version id is the
//! same BLAKE3 a full read would give.
//!
//! Leaves are grouped in aligned regions of 64 (256 KiB). A stored tree is a table of regions —
//! each region's chaining value and where its block of 64 leaf values is stored — plus the blocks
//! that are new in this version; unchanged regions point to the blocks of earlier trees. So a
//! change-tracked write reads the table and the blocks of the regions that changed, not every
//! leaf value, and every block read is checked against its region's value, every table against
//! the version id.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root};
use rayon::prelude::*;

use std::sync::Arc;

use crate::codec::{Decoder, Encoder};
use crate::error::{Error, Result};
use crate::id::{ObjectId, VersionId};

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

/// Where a region's leaf block is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAt {
    /// Block `n` of the tree object being written.
    New(u32),
    /// Block `slot` of an existing hash-tree object.
    In(ObjectId, u32),
}

/// One region of a new tree: its chaining value (zero for a partial last region) and its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionEntry {
    /// Chaining value of the region's 64-leaf subtree; zero for a partial last region.
    pub cv: Cv,
    /// Where its leaf values are stored.
    pub at: BlockAt,
}

/// A new version's hash tree, ready to encode: one entry per region, and the leaf blocks of the
/// regions that are not shared with an existing tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeLeaves {
    /// Number of leaves.
    pub count: u64,
    /// One entry per region.
    pub regions: Vec<RegionEntry>,
    /// The new leaf blocks (`BlockAt::New` indexes them).
    pub blocks: Vec<LeafBlock>,
}

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

    /// Leaves pushed so far.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True before the first leaf.
    pub fn is_empty(&self) -> bool {
        self.count == 0
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
}

impl TreeHasher {
    /// A hasher sharing regions with `base` where they are equal.
    pub fn new(base: Option<Arc<TreeTable>>) -> Self {
        TreeHasher {
            tree: TreeBuilder::new(base),
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

/// The content hash of a version being written: plain BLAKE3, or BLAKE3 with its hash tree when
/// one is kept (change tracking). Both give the same id.
pub enum ContentHasher {
    /// Only the id.
    Plain(Box<blake3::Hasher>),
    /// The id and the tree.
    Tree(Box<TreeHasher>),
}

impl ContentHasher {
    /// A hasher keeping a tree when `tree`, sharing regions with `base` when given.
    pub fn new(tree: bool, base: Option<Arc<TreeTable>>) -> Self {
        if tree {
            ContentHasher::Tree(Box::new(TreeHasher::new(base)))
        } else {
            ContentHasher::Plain(Box::new(blake3::Hasher::new()))
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

    /// The id, and the tree when kept.
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

/// Bytes of a hash-tree object's fixed header (inside the envelope payload).
pub const TREE_HEADER: u64 = 56;
/// Bytes of one leaf block: 64 chaining values.
pub const BLOCK_BYTES: u64 = REGION * 32;
/// Bytes of one region entry.
const REGION_BYTES: u64 = 40;

const DERIVE_CONTEXT: &str = "backup-fs 2026-11 hash tree object";

/// The id of a hash-tree object with this payload.
pub fn tree_object_id(payload: &[u8]) -> ObjectId {
    ObjectId::from(
        blake3::Hasher::new_derive_key(DERIVE_CONTEXT)
            .update(payload)
            .finalize(),
    )
}

impl TreeLeaves {
    /// Encodes the payload of the tree of version `version` (of `file_size` bytes) and returns it
    /// with its object id.
    pub fn encode(&self, version: &VersionId, file_size: u64) -> Result<(ObjectId, Vec<u8>)> {
        if self.count != leaf_count(file_size) || self.regions.len() as u64 != region_count(self.count) {
            return Err(Error::InvalidArgument("hash tree does not match the file size".into()));
        }
        let mut refs: Vec<ObjectId> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for r in &self.regions {
            if let BlockAt::In(id, _) = r.at {
                index.entry(id).or_insert_with(|| {
                    refs.push(id);
                    refs.len() as u32
                });
            }
        }
        let too_many = || Error::InvalidArgument("hash tree too large".into());
        let mut e = Encoder::new();
        e.u32(LEAF as u32);
        e.u32(REGION as u32);
        e.u64(file_size);
        e.u32(u32::try_from(self.blocks.len()).map_err(|_| too_many())?);
        e.u32(u32::try_from(refs.len()).map_err(|_| too_many())?);
        e.version_id(version);
        for b in &self.blocks {
            for cv in b {
                e.raw(cv);
            }
        }
        for id in &refs {
            e.object_id(id);
        }
        for r in &self.regions {
            e.raw(&r.cv);
            let (source, slot) = match r.at {
                BlockAt::New(n) => (0, n),
                BlockAt::In(id, slot) => (index.get(&id).copied().unwrap_or(0), slot),
            };
            e.u32(source);
            e.u32(slot);
        }
        let payload = e.into_bytes();
        Ok((tree_object_id(&payload), payload))
    }
}

/// The fixed header of a stored hash tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHeader {
    /// Size of the version.
    pub file_size: u64,
    /// Leaf blocks stored in the object.
    pub block_count: u32,
    /// Other hash-tree objects referenced.
    pub ref_count: u32,
    /// The version whose tree this is.
    pub version: VersionId,
}

impl TreeHeader {
    /// Decodes the first [`TREE_HEADER`] bytes of a payload.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        let mut d = Decoder::new(bytes, what);
        let leaf = d.u32()?;
        let region = d.u32()?;
        if u64::from(leaf) != LEAF || u64::from(region) != REGION {
            return Err(d.error(format!(
                "leaf size {leaf} or region size {region} is not {LEAF} and {REGION}"
            )));
        }
        let file_size = d.u64()?;
        if leaf_count(file_size) > u64::from(u32::MAX) {
            return Err(d.error("file size too large for a hash tree"));
        }
        Ok(TreeHeader {
            file_size,
            block_count: d.u32()?,
            ref_count: d.u32()?,
            version: d.version_id()?,
        })
    }

    /// Leaves of the version.
    pub fn leaf_count(&self) -> u64 {
        leaf_count(self.file_size)
    }

    /// Payload offset of the table (after the blocks).
    pub fn table_offset(&self) -> u64 {
        TREE_HEADER + u64::from(self.block_count) * BLOCK_BYTES
    }

    /// Bytes of the table (references and regions).
    pub fn table_len(&self) -> u64 {
        u64::from(self.ref_count) * 32 + region_count(self.leaf_count()) * REGION_BYTES
    }

    /// Bytes of the whole payload.
    pub fn payload_len(&self) -> u64 {
        self.table_offset() + self.table_len()
    }
}

/// One region of a stored tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Chaining value of the region's subtree (zero for a partial last region).
    pub cv: Cv,
    /// 0: a block of this object; `k`: a block of the `k`th referenced object.
    pub source: u32,
    /// Block index in that object.
    pub slot: u32,
}

/// The table of a stored hash tree: what a reader needs to find any leaf block, without the
/// blocks themselves. Loaded by [`crate::Store::tree_table`], which also checks that the region
/// values merge to the version id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeTable {
    /// The hash-tree object.
    pub id: ObjectId,
    /// Its header.
    pub header: TreeHeader,
    /// Referenced hash-tree objects.
    pub refs: Vec<ObjectId>,
    /// One entry per region.
    pub regions: Vec<Region>,
    /// The leaves of the region the root needs leaf by leaf (see [`root_block`]), checked.
    pub root_leaves: Option<(u64, LeafBlock)>,
}

impl TreeTable {
    /// Decodes the table bytes (`header.table_len()` of them) of object `id`.
    pub fn decode(id: ObjectId, header: TreeHeader, table: &[u8], what: &str) -> Result<Self> {
        let mut d = Decoder::new(table, what);
        let mut refs = Vec::with_capacity(header.ref_count.min(1 << 16) as usize);
        for _ in 0..header.ref_count {
            refs.push(d.object_id()?);
        }
        let n = region_count(header.leaf_count());
        let mut regions = Vec::with_capacity(n.min(1 << 24) as usize);
        for _ in 0..n {
            let mut cv = [0u8; 32];
            cv.copy_from_slice(d.take(32)?);
            let source = d.u32()?;
            let slot = d.u32()?;
            if source > header.ref_count || (source == 0 && slot >= header.block_count) {
                return Err(d.error(format!("region points to a missing block ({source}, {slot})")));
            }
            regions.push(Region { cv, source, slot });
        }
        d.finish()?;
        Ok(TreeTable {
            id,
            header,
            refs,
            regions,
            root_leaves: None,
        })
    }

    /// Leaves of the version.
    pub fn leaf_count(&self) -> u64 {
        self.header.leaf_count()
    }

    /// True if region `r` holds [`REGION`] leaves.
    pub fn is_full(&self, r: u64) -> bool {
        (r + 1) * REGION <= self.leaf_count()
    }

    /// The object and slot holding region `r`'s leaf block.
    pub fn location(&self, r: u64) -> Option<(ObjectId, u32)> {
        let e = self.regions.get(r as usize)?;
        match e.source {
            0 => Some((self.id, e.slot)),
            k => self.refs.get(k as usize - 1).map(|id| (*id, e.slot)),
        }
    }

    /// The version id these regions merge to, given the leaves of [`root_block`]'s region.
    pub fn root(&self, root_leaves: Option<&LeafBlock>) -> Option<VersionId> {
        let n = self.leaf_count();
        let region = |r: u64| {
            if self.is_full(r) && n > REGION {
                self.regions.get(r as usize).map(|e| e.cv)
            } else {
                None
            }
        };
        let leaf = |i: u64| {
            root_leaves
                .and_then(|b| b.get((i % REGION) as usize))
                .copied()
                .unwrap_or([0; 32])
        };
        root_of(n, &region, &leaf)
    }
}

/// The region whose leaves the root of `leaf_count` leaves needs one by one (the partial last
/// region, or the only region), if any.
pub fn root_block(leaf_count: u64) -> Option<u64> {
    if leaf_count < 2 {
        None
    } else if leaf_count <= REGION || !leaf_count.is_multiple_of(REGION) {
        Some(region_count(leaf_count) - 1)
    } else {
        None
    }
}

/// Decodes leaf block bytes ([`BLOCK_BYTES`] of them).
pub fn decode_block(bytes: &[u8]) -> Option<LeafBlock> {
    if bytes.len() as u64 != BLOCK_BYTES {
        return None;
    }
    let mut b = [[0u8; 32]; REGION as usize];
    for (dst, src) in b.iter_mut().zip(bytes.chunks_exact(32)) {
        dst.copy_from_slice(src);
    }
    Some(b)
}

/// Decodes a whole payload: the table and every block (for `verify`).
pub fn decode_payload(id: ObjectId, payload: &[u8], what: &str) -> Result<(TreeTable, Vec<LeafBlock>)> {
    let header = TreeHeader::decode(payload.get(..TREE_HEADER as usize).unwrap_or(payload), what)?;
    if payload.len() as u64 != header.payload_len() {
        return Err(Error::corrupt(what, "payload length disagrees with its header"));
    }
    let blocks = payload
        .get(TREE_HEADER as usize..header.table_offset() as usize)
        .unwrap_or_default()
        .chunks_exact(BLOCK_BYTES as usize)
        .filter_map(decode_block)
        .collect();
    let table = TreeTable::decode(
        id,
        header,
        payload.get(header.table_offset() as usize..).unwrap_or_default(),
        what,
    )?;
    Ok((table, blocks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    fn hash_tree(data: &[u8], base: Option<Arc<TreeTable>>) -> (VersionId, TreeLeaves) {
        let mut t = TreeHasher::new(base);
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
        fn tree_root_is_blake3(n in 0usize..600_000, piece in 1usize..70_000, seed: u8) {
            let data = bytes(n, seed);
            let mut t = TreeHasher::new(None);
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

        #[test]
        fn changing_leaves_and_remerging_matches_rehashing(n in 8193usize..600_000, at in any::<usize>(), len in 1usize..9000) {
            let mut data = bytes(n, 1);
            let (_, leaves) = hash_tree(&data, None);
            let mut cvs = all_leaves(&leaves, &|at| match at {
                BlockAt::New(k) => leaves.blocks[*k as usize],
                BlockAt::In(..) => unreachable!(),
            });
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

        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let _ = decode_payload(ObjectId([0; 32]), &data, "g");
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
        let mut a = TreeHasher::new(None);
        a.update(b"x");
        a.update_zeros(10_000);
        let mut b = TreeHasher::new(None);
        let mut v = vec![0u8; 10_001];
        v[0] = b'x';
        b.update(&v);
        assert_eq!(a.finish().0, b.finish().0);
    }

    #[test]
    fn root_block_rule() {
        assert_eq!(root_block(0), None);
        assert_eq!(root_block(1), None);
        assert_eq!(root_block(2), Some(0));
        assert_eq!(root_block(64), Some(0));
        assert_eq!(root_block(65), Some(1));
        assert_eq!(root_block(128), None);
        assert_eq!(root_block(129), Some(2));
    }
}
