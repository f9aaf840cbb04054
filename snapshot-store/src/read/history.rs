//! The history of one file across snapshots: in which snapshots it exists, with which content,
//! how each version is stored, and what it cost — computed from manifests and version records
//! alone, without reading any content.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::format::snapshot::{EntryKind, FileContent, SnapshotId, Storage};
use crate::id::VersionId;
use crate::store::Store;

/// How a snapshot's version of the file relates to the store and to the snapshot before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// Stored whole (smaller than the minimum delta size).
    Whole,
    /// A full version of a chain.
    Full,
    /// An incremental delta.
    Incremental,
    /// A differential delta.
    Differential,
    /// A full made by delta merging.
    Merged,
    /// The same content as in the snapshot before.
    Unchanged,
}

impl VersionState {
    /// The name used in output: `whole`, `full`, `incremental`, `differential`, `merged`,
    /// `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Whole => "whole",
            VersionState::Full => "full",
            VersionState::Incremental => "incremental",
            VersionState::Differential => "differential",
            VersionState::Merged => "merged",
            VersionState::Unchanged => "unchanged",
        }
    }
}

/// The file as one snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// When the snapshot was taken, ns since the epoch.
    pub time_ns: i64,
    /// The file's size.
    pub size: u64,
    /// Its modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Its content.
    pub content: FileContent,
    /// How that content is stored, or that it did not change.
    pub state: VersionState,
    /// Its chain depth (0 for a full or a whole file).
    pub depth: u32,
    /// Bytes its version added to the store when written; 0 where an earlier snapshot of the
    /// history already showed that version.
    pub stored_bytes: u64,
}

/// The history of one path: every snapshot that holds a regular file there, oldest first, and
/// the snapshots that could not be read.
#[derive(Debug, Default)]
pub struct FileHistory {
    /// The snapshots holding a regular file at the path, oldest first.
    pub entries: Vec<HistoryEntry>,
    /// Snapshots whose manifest could not be read, with the reason.
    pub damaged: Vec<(SnapshotId, Error)>,
}

impl FileHistory {
    /// The distinct versions in the order they first appear: runs of identical content
    /// collapse into their first snapshot.
    pub fn versions(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.entries.iter().filter(|e| e.state != VersionState::Unchanged)
    }
}

/// The history of the regular file at `path` (relative to the snapshot root) in every snapshot
/// of `store`. A damaged manifest is listed in [`FileHistory::damaged`], never fatal; a damaged
/// version record is an error.
pub fn file_history(store: &Store, path: &[u8]) -> Result<FileHistory> {
    let mut history = FileHistory::default();
    let mut previous: Option<VersionId> = None;
    let mut seen: HashSet<VersionId> = HashSet::new();
    for id in store.snapshot_ids()? {
        let snap = match store.snapshot(&id) {
            Ok(s) => s,
            Err(e) => {
                history.damaged.push((id, e));
                previous = None;
                continue;
            }
        };
        let Some(e) = snap.lookup(path).and_then(|i| snap.entry(i)) else {
            previous = None;
            continue;
        };
        let Some(content) = e.content.filter(|_| e.kind == EntryKind::File) else {
            previous = None;
            continue;
        };
        let first_time = seen.insert(content.version);
        let (state, depth, stored) = match content.storage {
            Storage::Whole => {
                let stored = if first_time {
                    store.data_object(&content.version.as_object())?.stored_len()
                } else {
                    0
                };
                (VersionState::Whole, 0, stored)
            }
            Storage::Chain => {
                let v = store.version(&content.version)?;
                let state = match v.kind {
                    crate::format::version::VersionKind::Full => VersionState::Full,
                    crate::format::version::VersionKind::Merged => VersionState::Merged,
                    crate::format::version::VersionKind::Incremental => VersionState::Incremental,
                    crate::format::version::VersionKind::Differential => VersionState::Differential,
                };
                (state, v.depth, if first_time { v.stored_bytes } else { 0 })
            }
        };
        let state = if previous == Some(content.version) {
            VersionState::Unchanged
        } else {
            state
        };
        previous = Some(content.version);
        history.entries.push(HistoryEntry {
            snapshot: id,
            time_ns: snap.time_ns,
            size: e.meta.size,
            mtime_ns: e.meta.mtime_ns,
            content,
            state,
            depth,
            stored_bytes: stored,
        });
    }
    Ok(history)
}
