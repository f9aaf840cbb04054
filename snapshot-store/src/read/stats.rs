//! What snapshots hold and what they cost, from manifests, version records and the store's
//! listing alone: no content is read.
//!
//! Three byte counts answer three questions. *Logical* bytes are what restoring the snapshots
//! would write (every regular file's size, once per snapshot). *Deduplicated* bytes count each
//! distinct content once (files with equal version ids are one). *Stored* bytes are the store
//! files the snapshots need (their manifests, the version records and objects reachable from
//! them: data, signatures, extent maps, hash trees), as the store holds them, compressed: what
//! would remain if only these snapshots were kept and the store pruned.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::snapshot::{EntryKind, Snapshot, SnapshotId, Storage};
use crate::format::version::VersionKind;
use crate::id::VersionId;
use crate::store::Store;
use crate::store::backend::Key;
use crate::store::reach::{Overlay, Reachable};

/// Regular files by how their content is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageCounts {
    /// Stored whole (below the minimum delta size).
    pub whole: u64,
    /// Full versions of a chain.
    pub full: u64,
    /// Fulls made by delta merging.
    pub merged: u64,
    /// Incremental deltas.
    pub incremental: u64,
    /// Differential deltas.
    pub differential: u64,
}

impl StorageCounts {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.whole + self.full + self.merged + self.incremental + self.differential
    }

    fn add(&mut self, kind: Option<VersionKind>) {
        match kind {
            None => self.whole += 1,
            Some(VersionKind::Full) => self.full += 1,
            Some(VersionKind::Merged) => self.merged += 1,
            Some(VersionKind::Incremental) => self.incremental += 1,
            Some(VersionKind::Differential) => self.differential += 1,
        }
    }
}

/// Entries other than regular files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtherCounts {
    /// Directories (snapshot roots not counted).
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Devices, pipes and sockets.
    pub special: u64,
}

/// The statistics of a set of snapshots.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// The snapshots counted (readable ones).
    pub snapshots: Vec<SnapshotId>,
    /// Sizes of every regular file of every snapshot counted.
    pub logical_bytes: u64,
    /// Sizes of the distinct contents among them.
    pub deduplicated_bytes: u64,
    /// Bytes of the store files these snapshots need.
    pub stored_bytes: u64,
    /// Of those, the snapshots' manifests.
    pub manifest_bytes: u64,
    /// Of those, version records.
    pub record_bytes: u64,
    /// Bytes of every file of the store (config and bookkeeping aside); the part the snapshots
    /// counted do not need is what forgetting the others and pruning would free, or what a
    /// prune has yet to delete.
    pub store_bytes: u64,
    /// Regular-file entries of every snapshot, by how their content is stored.
    pub files: StorageCounts,
    /// Distinct contents, by how they are stored.
    pub versions: StorageCounts,
    /// Other entries of every snapshot.
    pub others: OtherCounts,
    /// Distinct chain versions (not whole files) by chain depth: 0 for fulls.
    pub depths: BTreeMap<u32, u64>,
    /// Snapshots whose manifest could not be read, with the reason; not counted.
    pub damaged: Vec<(SnapshotId, Error)>,
    /// Store files the counted snapshots need that are not there (see `verify`).
    pub missing: Vec<String>,
}

impl StoreStats {
    /// The deepest chain among the distinct versions (0 when there are none).
    pub fn max_depth(&self) -> u32 {
        self.depths.keys().next_back().copied().unwrap_or(0)
    }

    /// The mean chain depth of the distinct chain versions.
    pub fn mean_depth(&self) -> f64 {
        let n: u64 = self.depths.values().sum();
        let sum: u64 = self.depths.iter().map(|(d, c)| u64::from(*d) * c).sum();
        if n == 0 { 0.0 } else { sum as f64 / n as f64 }
    }
}

/// The statistics of the snapshots `ids` of `store` (every snapshot when empty).
pub fn stats(store: &Store, ids: &[SnapshotId]) -> Result<StoreStats> {
    let ids = super::chosen_snapshots(store, ids)?;
    let mut out = StoreStats::default();
    let mut snaps: Vec<Arc<Snapshot>> = Vec::with_capacity(ids.len());
    for id in ids {
        match store.snapshot(&id) {
            Ok(s) => snaps.push(s),
            Err(e) => out.damaged.push((id, e)),
        }
    }

    // Entries and contents, from the manifests and the records of their versions.
    let mut kinds: HashMap<VersionId, Option<VersionKind>> = HashMap::new();
    for snap in &snaps {
        out.snapshots.push(snap.id.clone());
        for e in snap.entries.iter().skip(1) {
            match e.kind {
                EntryKind::Dir => out.others.dirs += 1,
                EntryKind::Symlink => out.others.symlinks += 1,
                EntryKind::File => {}
                _ => out.others.special += 1,
            }
            let Some(c) = e.content.filter(|_| e.kind == EntryKind::File) else {
                continue;
            };
            out.logical_bytes += e.meta.size;
            let kind = match kinds.get(&c.version) {
                Some(k) => *k,
                None => {
                    let k = match c.storage {
                        Storage::Whole => None,
                        Storage::Chain => {
                            let v = store.version(&c.version)?;
                            out.depths.entry(v.depth).and_modify(|n| *n += 1).or_insert(1);
                            Some(v.kind)
                        }
                    };
                    out.deduplicated_bytes += e.meta.size;
                    out.versions.add(k);
                    kinds.insert(c.version, k);
                    k
                }
            };
            out.files.add(kind);
        }
    }

    // Bytes, from the store's listing of what they reach.
    let reach = Reachable::from_snapshots(store, &snaps, &Overlay::default()).map_err(|u| u.error)?;
    out.missing = reach.missing;
    let listing = |dir: &str| -> Result<HashMap<Key, u64>> { Ok(store.backend().list(dir)?.into_iter().collect()) };
    let (objects, records, manifests) = (listing("objects")?, listing("versions")?, listing("snapshots")?);
    out.store_bytes = [&objects, &records, &manifests].iter().flat_map(|m| m.values()).sum();
    out.manifest_bytes = snaps.iter().filter_map(|s| manifests.get(&Key::snapshot(&s.id))).sum();
    out.record_bytes = reach
        .versions
        .iter()
        .filter_map(|v| records.get(&Key::version(v)))
        .sum();
    let object_bytes: u64 = reach.objects.iter().filter_map(|o| objects.get(&Key::object(o))).sum();
    out.stored_bytes = out.manifest_bytes + out.record_bytes + object_bytes;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depths_summarise() {
        let mut s = StoreStats::default();
        assert_eq!((s.max_depth(), s.mean_depth()), (0, 0.0));
        s.depths.insert(0, 2);
        s.depths.insert(3, 2);
        assert_eq!(s.max_depth(), 3);
        assert!((s.mean_depth() - 1.5).abs() < 1e-9);
    }

    #[test]
    fn counts_add_by_kind() {
        let mut c = StorageCounts::default();
        for k in [
            None,
            Some(VersionKind::Full),
            Some(VersionKind::Incremental),
            Some(VersionKind::Incremental),
        ] {
            c.add(k);
        }
        assert_eq!((c.whole, c.full, c.incremental, c.total()), (1, 1, 2, 4));
    }
}
