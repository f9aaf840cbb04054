//! The write layer: recording one snapshot of a source.
//!
//! The tree is walked first (`walk`, metadata only), so unchanged files are known before anything
//! is read. Changed files are then written (`file`): large ones one at a time, each using every
//! core; small ones several at a time. Each file takes one of two paths: the compare path
//! (`compare`: read it whole, match it against its base's signature) or, when a change source
//! knows its changed ranges completely, the tracked path (`tracked`: read only those). Both build
//! the same records (`assemble`). Everything goes to the store's staging area and is committed at
//! the end; unreadable entries are reported and left out; store errors abort the write and leave
//! the store as it was.

mod assemble;
mod compare;
mod file;
mod hashing;
pub(crate) mod limits;
mod matcher;
mod outcome;
pub(crate) mod progress;
mod reasons;
mod snapshot;
mod source;
mod tracked;
mod walk;
mod writer;

use std::path::PathBuf;

use crate::format::policy::Policy;
use crate::format::snapshot::{SnapshotId, SnapshotStats};
use crate::select::PathFilter;
use crate::tracking::ChangeSource;

pub use outcome::Decision;
pub use reasons::{Fallback, FullReason};
pub use snapshot::write_snapshot;

/// Options of one write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The policy for this write (the store default with per-run overrides applied).
    pub policy: Policy,
    /// Wait for another writer to finish instead of failing.
    pub wait_for_lock: bool,
    /// Paths not to back up (absolute).
    pub exclude: Vec<PathBuf>,
    /// What else to leave out of the source.
    pub filter: SourceFilter,
    /// Record the snapshot as taken at this time (ns since the epoch) instead of now; it must
    /// be later than the newest snapshot's.
    pub time_ns: Option<i64>,
}

/// What a write leaves out of its source, by rule. The store itself and the change-tracking
/// reference copies are always left out.
#[derive(Debug, Clone, Default)]
pub struct SourceFilter {
    /// Gitignore-style exclude patterns, relative to the source (`--exclude`).
    pub patterns: PathFilter,
    /// Directories holding a `CACHEDIR.TAG` that starts with the Cache Directory Tagging
    /// signature (`--exclude-caches`).
    pub exclude_caches: bool,
    /// Directories holding an entry of one of these names (`--exclude-if-present`).
    pub exclude_if_present: Vec<String>,
    /// Directories on another filesystem than the source are recorded empty
    /// (`--one-file-system`).
    pub one_file_system: bool,
    /// Regular files larger than this many bytes (`--exclude-larger-than`).
    pub exclude_larger_than: Option<u64>,
}

/// How many entries one exclude rule left out of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludeCount {
    /// The rule: a pattern as given, `--exclude-caches`, `--exclude-if-present NAME`,
    /// `--one-file-system` or `--exclude-larger-than SIZE`.
    pub rule: String,
    /// Entries it left out (a directory counts once; what is under it is not looked at).
    pub entries: u64,
}

/// What happened to one file that was read.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// Path relative to the snapshot root.
    pub path: String,
    /// What was stored.
    pub decision: Decision,
    /// Why a full was stored, when it was.
    pub full_reason: Option<FullReason>,
    /// With change tracking on: why the file was compared rather than tracked, when a source or
    /// the tracked path said.
    pub tracking_fallback: Option<Fallback>,
    /// Size of the file.
    pub size: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// New (literal) bytes of the version before compression.
    pub delta_bytes: u64,
    /// Bytes added to the store for it.
    pub stored_bytes: u64,
    /// The content was already in the store.
    pub deduplicated: bool,
    /// With change tracking on: where the changed ranges came from (`None`: compared).
    pub change_source: Option<ChangeSource>,
}

/// An entry that could not be backed up.
#[derive(Debug, Clone)]
pub struct EntryError {
    /// Path relative to the snapshot root.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct WriteSummary {
    /// The new snapshot.
    pub snapshot: SnapshotId,
    /// Its totals.
    pub stats: SnapshotStats,
    /// Every file that was read (new or changed metadata).
    pub files: Vec<FileReport>,
    /// Entries left out.
    pub errors: Vec<EntryError>,
    /// The snapshot this one was compared with.
    pub parent: Option<SnapshotId>,
    /// Entries each exclude rule left out, in rule order (rules that matched nothing too).
    pub excluded: Vec<ExcludeCount>,
    /// What the user should know that is not an error of an entry (e.g. change tracking could
    /// not record this snapshot, so the next write compares more).
    pub notes: Vec<String>,
}

impl FileReport {
    /// The reason the reports give: why a full was stored and why change tracking did not
    /// give the file's changes, e.g. `first version; change tracking: no complete record of
    /// changes for this file`.
    pub fn reason(&self) -> Option<String> {
        reasons::describe(self.full_reason.as_ref(), self.tracking_fallback.as_ref())
    }
}
