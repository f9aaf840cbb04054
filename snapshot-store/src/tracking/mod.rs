//! Change sources: what tells a change-tracked write which ranges of a file changed since its
//! previous version — reflink reference copies, the fanotify change log written by
//! `backup-fs track`, or a list from an outside tracker. Every source errs towards reading more:
//! one that is not sure answers nothing and the file is compared.

#[cfg(unix)]
pub(crate) mod changelog;
pub(crate) mod extent_diff;
#[cfg(unix)]
pub(crate) mod fanotify;
pub(crate) mod list;
pub(crate) mod ranges;
pub(crate) mod reflink;

use std::fs::File;
use std::path::Path;

use crate::format::snapshot::{Metadata, PrevEntry, Snapshot};
use crate::id::VersionId;
use crate::tracking::ranges::RangeSet;

/// Blocks re-read to check that "unchanged" really is unchanged, by default.
pub const DEFAULT_VERIFY_SAMPLE: u32 = 16;

/// The key naming one source's files in `STORE/tracking/`: the first 32 hex digits of the
/// blake3 of its canonical path's raw bytes.
pub(crate) fn source_key(source: &Path) -> String {
    let key = blake3::hash(&crate::os::meta::os_bytes(source.as_os_str()));
    key.to_hex()[..32].to_string()
}

/// Where a file's changed ranges came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// Physical extents no longer shared with a reflinked reference copy.
    Reflink,
    /// The fanotify change log written by `backup-fs track`.
    Fanotify,
    /// A list given by an outside tracker (`--changed-ranges`).
    List,
}

impl ChangeSource {
    /// The name used in reports: `reflink`, `fanotify`, `list`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::Reflink => "reflink",
            ChangeSource::Fanotify => "fanotify",
            ChangeSource::List => "list",
        }
    }
}

/// The complete set of ranges of one file that may have changed since its previous version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedChanges {
    /// Where they came from.
    pub source: ChangeSource,
    /// The ranges (anything outside them is unchanged). Growth past the previous size need not
    /// be listed.
    pub ranges: RangeSet,
}

/// What a change source gives for one file: its changed ranges when it knows them completely,
/// and a frozen point-in-time copy of the file to read instead of the live file, when the source
/// made one (reflink) — used even when the file is compared.
#[derive(Debug, Default)]
pub struct TrackedInput {
    /// The ranges, if this source knows them completely.
    pub changes: Option<TrackedChanges>,
    /// A frozen copy to read, or `None` to read the file itself.
    pub data: Option<File>,
}

/// A source of changed ranges (reflink references, the fanotify log, an outside list).
pub trait ChangeProvider: Send + Sync {
    /// What this source knows of the file at `path` (`rel` relative to the source) whose metadata
    /// is now `meta`, and whose entry in the previous snapshot is `prev`. `None` lets the next
    /// source, or finally a full compare, handle the file.
    fn changes(&self, path: &Path, rel: &str, meta: &Metadata, prev: Option<&PrevEntry>) -> Option<TrackedInput>;

    /// Paths under the source that belong to this change source and must not be backed up.
    fn excluded(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    /// A file this source was asked about was stored as `version`.
    fn written(&self, _rel: &str, _version: VersionId) {}

    /// The snapshot was committed: a source may then advance its references. Returns what the
    /// user should know when that failed (the source must then fail closed: the next write
    /// compares more, never less).
    fn committed(&self, _snapshot: &Snapshot) -> Option<String> {
        None
    }

    /// The write was abandoned.
    fn abandoned(&self) {}

    /// Something the user should know about this source (e.g. why it is unavailable).
    fn note(&self) -> Option<String> {
        None
    }
}

/// Change tracking for one write: the sources to ask, in order, and the verification sample.
pub struct Tracking {
    /// Sources, best first.
    pub providers: Vec<Box<dyn ChangeProvider>>,
    /// Blocks taken as unchanged that are re-read and checked per file.
    pub verify_sample: u32,
}
