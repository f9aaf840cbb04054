//! What the kept snapshots need: every version record and object reachable from their
//! manifests through every reference the format has (a record's base, full, signature, literal,
//! extent map and hash tree; a signature's base; an extent map's data objects; a hash tree's
//! referenced trees). Whatever is not reached may be deleted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, Storage};
use crate::format::version::FileVersion;
use crate::id::{ObjectId, VersionId};
use crate::store::Store;

/// Records and objects a dry-run merge would write, seen instead of (or beside) the store's.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    versions: HashMap<VersionId, Arc<FileVersion>>,
    /// New objects and what each references.
    objects: HashMap<ObjectId, Vec<ObjectId>>,
}

impl Overlay {
    /// Adds a record that is not written yet.
    pub(crate) fn add_version(&mut self, v: FileVersion) {
        self.versions.insert(v.id, Arc::new(v));
    }

    /// Adds an envelope object that is not written yet, and the objects it references (a
    /// complete signature or tree none; a run-encoded signature its base; a map its data
    /// objects).
    pub(crate) fn add_object(&mut self, id: ObjectId, refs: Vec<ObjectId>) {
        self.objects.insert(id, refs);
    }
}

/// A file the walk needed to read and could not (damaged, or of a newer format).
#[derive(Debug)]
pub(crate) struct Unreadable {
    /// What it is (`file version 1a2b3c4d`, `signature object ...`).
    pub what: String,
    /// Why it could not be read.
    pub error: Error,
}

/// The outcome of one step of the walk.
type Walked = std::result::Result<(), Unreadable>;

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
    /// newer format) stops the walk: what it references cannot be known.
    pub(crate) fn from_snapshots(
        store: &Store,
        snapshots: &[Arc<Snapshot>],
        overlay: &Overlay,
    ) -> std::result::Result<Reachable, Unreadable> {
        let mut r = Reachable::default();
        for s in snapshots {
            for e in &s.entries {
                let Some(c) = e.content else { continue };
                match c.storage {
                    Storage::Whole => {
                        r.objects.insert(c.version.as_object());
                    }
                    Storage::Chain => r.version(store, overlay, c.version)?,
                }
            }
        }
        Ok(r)
    }

    /// Keeps going after a missing file, stops on any other error.
    fn tolerate_missing(&mut self, what: impl FnOnce() -> String, result: Result<()>) -> Walked {
        match result {
            Err(Error::Missing { .. }) => {
                self.missing.push(what());
                Ok(())
            }
            Err(error) => Err(Unreadable { what: what(), error }),
            Ok(()) => Ok(()),
        }
    }

    fn version(&mut self, store: &Store, overlay: &Overlay, id: VersionId) -> Walked {
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            if !self.versions.insert(id) {
                continue;
            }
            let v = match overlay
                .versions
                .get(&id)
                .map_or_else(|| store.version(&id), |v| Ok(Arc::clone(v)))
            {
                Ok(v) => v,
                Err(e) => {
                    self.tolerate_missing(|| format!("file version {}", id.short()), Err(e))?;
                    continue;
                }
            };
            todo.extend(v.base);
            todo.push(v.full);
            self.signature(store, overlay, v.signature)?;
            self.objects.extend(v.literal);
            if let Some(m) = v.map_checkpoint
                && self.objects.insert(m)
            {
                let res = match overlay.objects.get(&m) {
                    Some(refs) => {
                        self.objects.extend(refs.iter().copied());
                        Ok(())
                    }
                    None => store
                        .map_checkpoint(&m)
                        .map(|map| self.objects.extend(map.objects().iter().copied())),
                };
                self.tolerate_missing(|| format!("extent-map object {}", m.short()), res)?;
            }
            if let Some(t) = v.hash_tree {
                self.tree(store, overlay, t)?;
            }
        }
        Ok(())
    }

    fn signature(&mut self, store: &Store, overlay: &Overlay, id: ObjectId) -> Walked {
        let mut at = Some(id);
        while let Some(id) = at.take() {
            if !self.objects.insert(id) {
                break;
            }
            if let Some(refs) = overlay.objects.get(&id) {
                at = refs.first().copied();
                continue;
            }
            let res = store.signature_record(&id).map(|rec| at = rec.base);
            self.tolerate_missing(|| format!("signature object {}", id.short()), res)?;
        }
        Ok(())
    }

    fn tree(&mut self, store: &Store, overlay: &Overlay, id: ObjectId) -> Walked {
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            if !self.objects.insert(id) {
                continue;
            }
            if let Some(refs) = overlay.objects.get(&id) {
                todo.extend(refs.iter().copied());
                continue;
            }
            let res = store.tree_table(&id).map(|t| todo.extend(t.refs.iter().copied()));
            self.tolerate_missing(|| format!("hash-tree object {}", id.short()), res)?;
        }
        Ok(())
    }
}
