//! The hash-tree object: a version's leaf chaining values (see `hash::tree`), stored by region.
//!
//! A stored tree is a table of regions — each region's chaining value and where its block of 64
//! leaf values is stored — plus the blocks that are new in this version; unchanged regions point
//! to the blocks of earlier trees. So a change-tracked write reads the table and the blocks of the
//! regions that changed, not every leaf value, and every block read is checked against its
//! region's value, every table against the version id.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::{Error, Result};
use crate::format::codec::{Decoder, Encoder};
use crate::format::magic;
use crate::hash::tree::{Cv, LEAF, LeafBlock, REGION, leaf_count, region_count, root_of};
use crate::id::{ObjectId, VersionId};

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

/// Bytes of a hash-tree object's fixed header (inside the envelope payload).
pub const TREE_HEADER: u64 = 56;
/// Bytes of one leaf block: 64 chaining values.
pub const BLOCK_BYTES: u64 = REGION * 32;
/// Bytes of one region entry.
const REGION_BYTES: u64 = 40;

/// The id of a hash-tree object with this payload.
pub fn tree_object_id(payload: &[u8]) -> ObjectId {
    magic::keyed_id(magic::HASH_TREE_CONTEXT, payload)
}

impl TreeLeaves {
    /// Encodes the payload of the tree of version `version` (of `file_size` bytes) and returns it
    /// with its object id.
    pub fn encode(&self, version: &VersionId, file_size: u64) -> Result<(ObjectId, Vec<u8>)> {
        if self.count != leaf_count(file_size) || self.regions.len() as u64 != region_count(self.count) {
            return Err(Error::Internal {
                what: "a new hash tree does not match its file's size".into(),
            });
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
        let too_many = || Error::Internal {
            what: "a new hash tree has more than 2^32 blocks".into(),
        };
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
/// blocks themselves. Loaded by `Store::tree_table`, which also checks that the region
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
#[cfg(test)]
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
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let _ = decode_payload(ObjectId([0; 32]), &data, "g");
        }
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
