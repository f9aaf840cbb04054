//! Verifying the records: every snapshot manifest, and every version record reachable from them
//! through base and full links, with the depths and sizes they state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{Roots, Verifier, Versions};
use crate::error::Result;
use crate::format::snapshot::{EntryKind, Storage};
use crate::format::version::{FileVersion, VersionKind};
use crate::id::VersionId;

impl Verifier<'_> {
    /// Loads every snapshot and collects what its files reference.
    pub(super) fn snapshots(&mut self) -> Result<Roots> {
        let mut roots = Roots::default();
        let marked_xattrs = self.store.records_xattrs();
        for id in self.store.snapshot_ids()? {
            self.report.snapshots += 1;
            let snap = match self.store.snapshot(&id) {
                Ok(s) => s,
                Err(e) => {
                    self.problem(format!("snapshot {id}"), &e);
                    continue;
                }
            };
            if !marked_xattrs && snap.entries.iter().any(|e| !e.meta.xattrs.is_empty()) {
                self.found(
                    format!("snapshot {id}"),
                    "records extended attributes but the store has no `xattrs` marker \
                     (mounts would hide them); create an empty file named xattrs in the store",
                );
            }
            for e in snap.entries.iter().filter(|e| e.kind == EntryKind::File) {
                match e.content {
                    Some(c) if c.storage == Storage::Whole => {
                        roots.whole.insert((c.version.as_object(), e.meta.size));
                    }
                    Some(c) => {
                        roots.chains.insert((c.version, e.meta.size));
                    }
                    None => self.found(format!("snapshot {id}"), "a file entry has no content"),
                }
            }
        }
        Ok(roots)
    }

    /// Loads every version record reachable from the snapshots' chains, and checks that depths
    /// follow their bases and sizes agree with the snapshots.
    pub(super) fn version_records(&mut self, roots: &Roots) -> Versions {
        let mut all: Vec<Arc<FileVersion>> = Vec::new();
        let mut seen: HashSet<VersionId> = HashSet::new();
        let mut todo: Vec<VersionId> = roots.chains.iter().map(|(v, _)| *v).collect();
        while let Some(v) = todo.pop() {
            if !seen.insert(v) {
                continue;
            }
            match self.store.version(&v) {
                Ok(rec) => {
                    todo.extend(rec.base);
                    todo.push(rec.full);
                    all.push(rec);
                }
                Err(e) => self.problem(format!("file version {}", v.short()), &e),
            }
        }
        let by_id: HashMap<VersionId, Arc<FileVersion>> = all.iter().map(|v| (v.id, Arc::clone(v))).collect();
        // Until an interrupted merge is finished, old and new records are mixed: each reads the
        // same bytes, but depths and fulls do not follow each other yet.
        let merging = self.store.replacements_pending();
        if merging {
            self.report.pending.push(
                "a merge was interrupted: its new records are committed, not all in place \
                 (the next `backup-fs prune` or `write` finishes it)"
                    .to_string(),
            );
        }
        for v in all.iter().filter(|_| !merging) {
            if let Some(b) = v.base.and_then(|b| by_id.get(&b)) {
                if v.full != b.full {
                    self.found(
                        format!("file version {}", v.id.short()),
                        format!(
                            "names full {} but its base {} belongs to the chain of {}",
                            v.full.short(),
                            b.id.short(),
                            b.full.short()
                        ),
                    );
                }
                let expect = if v.kind == VersionKind::Differential {
                    1
                } else {
                    b.depth + 1
                };
                if v.depth != expect {
                    self.found(
                        format!("file version {}", v.id.short()),
                        format!("depth {} does not follow its base's depth {}", v.depth, b.depth),
                    );
                }
            }
        }
        for (v, size) in &roots.chains {
            if let Some(rec) = by_id.get(v)
                && rec.size != *size
            {
                self.found(
                    format!("file version {}", v.short()),
                    format!("has {} bytes but a snapshot says {size}", rec.size),
                );
            }
        }
        Versions { all, by_id, seen }
    }
}
