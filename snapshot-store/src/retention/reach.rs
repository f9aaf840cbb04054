//! What the kept snapshots need: every version record and object reachable from their
//! manifests through every reference the format has (a record's base, full, signature, literal,
//! extent map and hash tree; a signature's base; an extent map's data objects; a hash tree's
//! referenced trees). Whatever is not reached may be deleted.

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, Storage};
use crate::id::{ObjectId, VersionId};
use crate::store::Store;

/// The files the snapshots need.
#[derive(Debug, Default)]
pub(crate) struct Reachable {
    /// Version records.
    pub versions: HashSet<VersionId>,
    /// Objects of every kind.
    pub objects: HashSet<ObjectId>,
    /// References to files that are not there (the snapshots that need them are damaged
    /// already; nothing is deleted because of them).
    pub missing: Vec<String>,
}

impl Reachable {
    /// Everything `snapshots` need. A referenced file that cannot be read (damaged, or of a
    /// newer format) stops the walk: what it references cannot be known, so nothing may be
    /// deleted.
    pub(crate) fn from_snapshots(store: &Store, snapshots: &[Arc<Snapshot>]) -> Result<Reachable> {
        let mut r = Reachable::default();
        for s in snapshots {
            for e in &s.entries {
                let Some(c) = e.content else { continue };
                match c.storage {
                    Storage::Whole => {
                        r.objects.insert(c.version.as_object());
                    }
                    Storage::Chain => r.version(store, c.version)?,
                }
            }
        }
        Ok(r)
    }

    /// Keeps going after a missing file, stops on any other error.
    fn tolerate_missing(&mut self, what: impl FnOnce() -> String, result: Result<()>) -> Result<()> {
        match result {
            Err(Error::Missing { .. }) => {
                self.missing.push(what());
                Ok(())
            }
            Err(e) => Err(Error::PruneRefused {
                what: what(),
                reason: format!("{e} (run `backup-fs verify`)"),
            }),
            Ok(()) => Ok(()),
        }
    }

    fn version(&mut self, store: &Store, id: VersionId) -> Result<()> {
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            if !self.versions.insert(id) {
                continue;
            }
            let v = match store.version(&id) {
                Ok(v) => v,
                Err(e) => {
                    self.tolerate_missing(|| format!("file version {}", id.short()), Err(e))?;
                    continue;
                }
            };
            todo.extend(v.base);
            todo.push(v.full);
            self.signature(store, v.signature)?;
            self.objects.extend(v.literal);
            if let Some(m) = v.map_checkpoint
                && self.objects.insert(m)
            {
                let res = store
                    .map_checkpoint(&m)
                    .map(|map| self.objects.extend(map.objects().iter().copied()));
                self.tolerate_missing(|| format!("extent-map object {}", m.short()), res)?;
            }
            if let Some(t) = v.hash_tree {
                self.tree(store, t)?;
            }
        }
        Ok(())
    }

    fn signature(&mut self, store: &Store, id: ObjectId) -> Result<()> {
        let mut at = Some(id);
        while let Some(id) = at.take() {
            if !self.objects.insert(id) {
                break;
            }
            let res = store.signature_record(&id).map(|rec| at = rec.base);
            self.tolerate_missing(|| format!("signature object {}", id.short()), res)?;
        }
        Ok(())
    }

    fn tree(&mut self, store: &Store, id: ObjectId) -> Result<()> {
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            if !self.objects.insert(id) {
                continue;
            }
            let res = store.tree_table(&id).map(|t| todo.extend(t.refs.iter().copied()));
            self.tolerate_missing(|| format!("hash-tree object {}", id.short()), res)?;
        }
        Ok(())
    }
}
