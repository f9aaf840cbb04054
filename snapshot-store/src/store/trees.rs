//! Reading hash trees piecemeal: a tree's table (checked by merging its region values to the
//! version id) and single leaf blocks (each checked against its region's value).

use std::sync::Arc;

use super::{Store, read_exact};
use crate::error::{Error, Result};
use crate::format::envelope::{self, Kind, hex8};
use crate::format::hashtree::{self, TreeHeader, TreeTable};
use crate::hash::tree::{LeafBlock, region_cv};
use crate::id::ObjectId;
use crate::store::backend::Key;

impl Store {
    /// Loads (or returns the cached) table of hash tree `id`: its header, references and regions,
    /// read without its leaf blocks, checked by merging the region values to the version id the
    /// header names (callers compare that id with their version's).
    pub(crate) fn tree_table(&self, id: &ObjectId) -> Result<Arc<TreeTable>> {
        if let Some(t) = self.inner.trees.get(id) {
            return Ok(t);
        }
        let key = Key::object(id);
        let what = format!(
            "{} {} ({})",
            Kind::HashTree.noun(),
            id.short(),
            self.backend().describe(&key)
        );
        let file = self.open_referenced(&key, &what, "a file version")?;
        let file_len = file.len();
        let base = envelope::PAYLOAD_OFFSET;
        let head = read_exact(file.as_ref(), 0, (base + hashtree::TREE_HEADER) as usize, &what)?;
        let (env, tree) = head.split_at(base as usize);
        let payload_len = envelope::open_header(Kind::HashTree, env, file_len, &what)?;
        let header = TreeHeader::decode(tree, &what)?;
        if header.payload_len() != payload_len {
            return Err(Error::corrupt(&what, "payload length disagrees with its header"));
        }
        let table = read_exact(
            file.as_ref(),
            base + header.table_offset(),
            header.table_len() as usize,
            &what,
        )?;
        let mut table = TreeTable::decode(*id, header, &table, &what)?;
        if let Some(r) = hashtree::root_block(table.leaf_count()) {
            let block = self.leaf_block(&table, r, &what)?;
            table.root_leaves = Some((r, block));
        }
        let root = table.root(table.root_leaves.as_ref().map(|(_, b)| b));
        if root.is_some_and(|r| r != header.version) {
            return Err(Error::ChecksumMismatch {
                what: format!("{what}: its regions"),
                expected: header.version.short(),
                got: root.map(|r| r.short()).unwrap_or_default(),
            });
        }
        let size = table.regions.len() * 40 + table.refs.len() * 32 + 256;
        Ok(self.inner.trees.insert(*id, Arc::new(table), size))
    }

    /// The leaf values of region `r` of a tree, from whichever tree object holds them; a full
    /// region's block is checked against the region's value.
    pub(crate) fn tree_block(&self, table: &TreeTable, r: u64) -> Result<LeafBlock> {
        if let Some((root_r, block)) = &table.root_leaves
            && *root_r == r
        {
            return Ok(*block);
        }
        let what = format!("{} {}", Kind::HashTree.noun(), table.id.short());
        if !table.is_full(r) {
            return Err(Error::corrupt(what, format!("region {r} is not a full region")));
        }
        self.leaf_block(table, r, &what)
    }

    fn leaf_block(&self, table: &TreeTable, r: u64, what: &str) -> Result<LeafBlock> {
        let (oid, slot) = table
            .location(r)
            .ok_or_else(|| Error::corrupt(what, format!("no region {r}")))?;
        let key = Key::object(&oid);
        let bwhat = format!(
            "{} {} ({}), block {slot}",
            Kind::HashTree.noun(),
            oid.short(),
            self.backend().describe(&key)
        );
        let referrer = format!("hash-tree object {}", table.id.short());
        let file = self.open_referenced(&key, &bwhat, &referrer)?;
        let at = envelope::PAYLOAD_OFFSET + hashtree::TREE_HEADER + u64::from(slot) * hashtree::BLOCK_BYTES;
        let bytes = read_exact(file.as_ref(), at, hashtree::BLOCK_BYTES as usize, &bwhat)?;
        let block = hashtree::decode_block(&bytes).ok_or_else(|| Error::corrupt(&bwhat, "short block"))?;
        if table.is_full(r) {
            let expected = table.regions.get(r as usize).map(|e| e.cv).unwrap_or_default();
            if region_cv(&block) != expected {
                return Err(Error::ChecksumMismatch {
                    what: format!("{bwhat}: region {r} of hash-tree object {}", table.id.short()),
                    expected: hex8(&expected),
                    got: crate::format::envelope::hex8(&region_cv(&block)),
                });
            }
        }
        Ok(block)
    }
}
