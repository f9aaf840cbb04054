//! Extent maps of stored versions: composed from the chain's op lists (from the nearest
//! checkpoint or full), checked against the sizes the records and snapshots state, and cached.

use std::sync::Arc;

use super::Store;
use crate::error::{Error, Result};
use crate::format::envelope::Kind;
use crate::format::extent::ExtentMap;
use crate::format::snapshot::{FileContent, Storage};
use crate::format::version::FileVersion;
use crate::id::{ObjectId, VersionId};

impl Store {
    /// Loads an extent-map checkpoint object.
    pub(crate) fn map_checkpoint(&self, id: &ObjectId) -> Result<ExtentMap> {
        let (payload, what) = self.envelope_object(id, Kind::ExtentMap)?;
        ExtentMap::decode(&payload, &what)
    }

    /// The flattened extent map of chain version `id`, composed from the nearest checkpoint or
    /// full along its base links, and cached.
    pub(crate) fn extent_map(&self, id: &VersionId) -> Result<Arc<ExtentMap>> {
        if let Some(m) = self.inner.maps.get(id) {
            return Ok(m);
        }
        let mut chain: Vec<Arc<FileVersion>> = Vec::new();
        let mut at = *id;
        let mut base_map: Option<Arc<ExtentMap>> = None;
        loop {
            if let Some(m) = self.inner.maps.get(&at) {
                base_map = Some(m);
                break;
            }
            let v = self.version(&at)?;
            if chain.is_empty() {
                self.versions_ahead(&v);
            }
            if let Some(cp) = v.map_checkpoint {
                let map = self.map_checkpoint(&cp)?;
                if map.size() != v.size {
                    return Err(Error::corrupt(
                        format!("extent-map object {}", cp.short()),
                        "size disagrees with its version",
                    ));
                }
                let size = map.memory_bytes();
                base_map = Some(self.inner.maps.insert(at, Arc::new(map), size));
                break;
            }
            let next = v.base;
            chain.push(v);
            match next {
                Some(b) if chain.len() <= 1 << 20 => at = b,
                Some(_) => {
                    return Err(Error::corrupt(
                        format!("file version {}", id.short()),
                        "base chain loops",
                    ));
                }
                None => break,
            }
        }
        while let Some(v) = chain.pop() {
            let what = format!("file version {}", v.id.short());
            if let Some(b) = &base_map
                && v.base.is_some()
                && v.ops.iter().any(
                    |op| matches!(op, crate::format::delta::DeltaOp::Copy { base_offset, len } if base_offset + len > b.size()),
                )
            {
                return Err(Error::corrupt(what, "copies past the end of its base"));
            }
            let map = ExtentMap::compose(&v.ops, v.literal, base_map.as_deref(), &what)?;
            let size = map.memory_bytes();
            base_map = Some(self.inner.maps.insert(v.id, Arc::new(map), size));
        }
        base_map.ok_or_else(|| Error::corrupt(format!("file version {}", id.short()), "empty chain"))
    }

    /// Fetches, in a remote store, the records of `top`'s base and lineage at once (each a
    /// round trip), so that following the base links finds them cached. A lineage is a hint: a
    /// record it names that is gone (merged away) is not an error here; the walk fetches what
    /// the base links really lead to.
    fn versions_ahead(&self, top: &FileVersion) {
        if !self.is_remote() || top.lineage.is_empty() {
            return;
        }
        let ids: Vec<VersionId> = (top.base.iter().chain(&top.lineage))
            .filter(|id| !self.inner.versions.contains(id) && !self.inner.maps.contains(id))
            .copied()
            .collect();
        let at_once = self.options().remote.small_reads().max(1);
        std::thread::scope(|scope| {
            for ids in ids.chunks(ids.len().div_ceil(at_once).max(1)) {
                scope.spawn(move || ids.iter().for_each(|id| drop(self.version(id))));
            }
        });
    }

    /// The extent map of a regular file's content of `size` bytes.
    pub(crate) fn content_map(&self, content: &FileContent, size: u64) -> Result<Arc<ExtentMap>> {
        let map = match content.storage {
            Storage::Whole => {
                let obj = self.data_object_of_len(&content.version.as_object(), size)?;
                if obj.logical_len() != size {
                    return Err(Error::corrupt(
                        obj.describe(),
                        format!("holds {} bytes, but the file has {size}", obj.logical_len()),
                    ));
                }
                Arc::new(ExtentMap::whole(content.version.as_object(), size))
            }
            Storage::Chain => self.extent_map(&content.version)?,
        };
        if map.size() != size {
            return Err(Error::corrupt(
                format!("file version {}", content.version.short()),
                format!("has {} bytes, but the snapshot entry says {size}", map.size()),
            ));
        }
        Ok(map)
    }
}
