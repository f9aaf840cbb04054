//! snapshot-store: backups of files as full copies plus chains of deltas, in a store directory
//! that any number of readers use while one writer adds snapshots.
//!
//! # Layers
//!
//! The folders are the layers, top-down; a module uses only modules of its own layer or below
//! (and `error`), never one above:
//!
//! | Layer | Owns |
//! |---|---|
//! | `retention/` | forgetting snapshots by keep rules, merging delta chains, and deleting what no kept snapshot needs, beside running readers and safe at any crash |
//! | `write/` | recording a snapshot: the tree walk, reading sources, the matcher, the compare path, the tracked path, building a version's records |
//! | `read/` | random-access reads of any version, streaming, restore, a file's history, what changed between snapshots, finding entries by name, what snapshots hold and cost, `verify` |
//! | `tracking/` | change sources (reflink references, the fanotify change log, outside lists); feeds `write/` only |
//! | `store/` | the store: open and init, the writer lock, caches, staging and the commit protocol, loading records, signatures, hash trees and extent maps, data objects; `store/backend/` is where its files live (a directory, or an S3 bucket prefix behind a disk cache) |
//! | `format/` | bytes to structs and back for every file kind, the magic and derive-key table, [`FormatVersion`]; no file I/O |
//! | `hash/` | the rolling weak hash, block hashes, BLAKE3 as a tree of leaf values |
//! | `os/` | the one place for platform `cfg`: durable and positioned file I/O, entry metadata, sparse files, FIEMAP, clones |
//!
//! Beside them, `error` (the one error type), `id` (typed ids) and `select` (gitignore-style
//! path filters, for what a write leaves out and a restore brings back) are used by every layer.
//!
//! `docs/FORMAT.md` is the normative description of the bytes `format/` reads and writes.
//!
//! # The write path
//!
//! [`write_snapshot`] takes the writer lock, empties `tmp/`, finds the newest snapshot of the
//! same source and walks the source (metadata only): a regular file whose size, mtime, ctime and
//! inode are unchanged reuses its previous content unread. Every other file is planned by the
//! [`Policy`] (stored whole below the minimum delta size; else a full, or an incremental or
//! differential delta), then written by one of two paths:
//!
//! * the **compare path** reads the file once; a matcher finds its base's blocks at any offset
//!   through the base's stored signature (never its content), while another thread computes
//!   the content hash — the version id — and, with change tracking, its hash tree;
//! * the **tracked path**, when a change source knows the changed ranges completely, reads only
//!   those (and a random sample of the rest, re-checked against the signature); the version id
//!   comes from merging new and stored leaf values of the hash tree.
//!
//! Both produce a data object of literal bytes, a signature, a hash tree, an extent-map
//! checkpoint every 16 depths, and a version record, all written to `tmp/`. The commit flushes
//! and renames them into place without replacing anything, flushes the directories, and writes
//! the snapshot manifest last: its rename is the commit point. A crash at any instant leaves
//! the store as it was, plus unreferenced files that `verify` lists.
//!
//! # Where the files are
//!
//! Everything above `store/backend/` names store files by key (`snapshots/<id>`,
//! `objects/ab/ab…`) and goes through one small interface: whole and ranged reads, publish if
//! absent, replace, delete, list, the writer lock and reader registrations. A directory store
//! is today's code behind it (rename without replacing, `fsync`, `flock`); an S3 store does the
//! same with conditional PUTs, a lock object and refreshed registration objects, and reads
//! through a local cache of metadata (kept per cache epoch, `store/epoch`, so nothing deleted or
//! replaced since is trusted) and an on-disk frame cache of the data read
//! (`store/object/mirror`).
//!
//! # The read path
//!
//! A version's extent map — sorted extents, each a hole or a range of one data object — is
//! composed from the chain's op lists (from the nearest checkpoint or full) the first time the
//! version is opened, and cached. A [`FileReader`] then serves any offset with one binary search
//! and one frame decode per extent, whatever the chain depth; decoded frames are shared by all
//! readers through one byte-bounded cache. Everything read is checked: envelopes by their blake3,
//! frames by their xxh3 and zstd checksum, whole files (on `cat`, restore, `verify --read-data`)
//! by their version id. Damage is an error naming the file, never wrong bytes.
//!
//! # Who may run beside whom
//!
//! | | writer | reader | tracker |
//! |---|---|---|---|
//! | **writer** (`write`) | no: the second waits for the lock, or fails with `--no-wait` | yes | yes |
//! | **reader** (`list`, `log`, `cat`, `ls`, `diff`, `find`, `stats`, `restore`, `verify`, `mount`) | yes: readers never lock and see a snapshot once its manifest is in place | yes | yes |
//! | **tracker** (`backup-fs track`) | yes: writers ask it for a cut over its socket | yes | one per source |
//!
//! Everything a reader can reach is immutable once committed, so readers need no lock; a
//! [`Store`] is cheap to clone and may be shared by any number of threads.
#![warn(missing_docs)]

mod error;
mod failpoint;
mod format;
mod hash;
mod id;
mod os;
mod read;
mod retention;
mod select;
mod store;
#[cfg(test)]
mod testdata;
mod tracking;
mod write;

pub use error::{Error, RemoteFailure, Result};
pub use format::FormatVersion;
pub use format::codec::{Decoder, Encoder};
pub use format::config::StoreConfig;
pub use format::policy::{
    BlockSize, DeltaMode, Percent, Policy, PolicyOverrides, format_size, parse_optional, parse_size,
};
pub use format::retention::{KeepRules, Retention, Span};
pub use format::snapshot::{
    Entry, EntryKind, FileContent, Metadata, PrevEntry, Snapshot, SnapshotId, SnapshotStats, Storage, Walk,
};
pub use format::time::rfc3339;
pub use id::{ObjectId, VersionId};
pub use read::diff::{Change, ChangeKind, DiffTotals, SnapshotDiff, diff_snapshots};
pub use read::find::{FindReport, Found, NamePattern, SnapshotMatches, find, find_in, path_order};
pub use read::history::{FileHistory, HistoryEntry, VersionState, file_history};
pub use read::reader::FileReader;
pub use read::restore::{Overwrite, PlannedEntry, RestoreAction, RestoreOptions, RestoreSummary, restore};
pub use read::stats::{OtherCounts, StorageCounts, StoreStats, stats};
pub use read::stream::Window;
pub use read::verify::{Problem, VerifyOptions, VerifyReport, verify};
pub use retention::forget::{ForgetOptions, ForgetReport, forget};
pub use retention::keep::{KeepReason, SnapshotInfo, Verdict};
pub use retention::merge::{MergeReport, Merges};
pub use retention::prune::{Amount, DEFAULT_READER_WAIT, PruneOptions, PruneReport, prune};
pub use select::{PathFilter, PathVerdict};
pub use store::{
    CredentialsError, DEFAULT_CACHE_BYTES, DEFAULT_CONNECTIONS, LiveReader, LocationError, RemoteOptions, RemoteStats,
    S3Credentials, S3Location, Store, StoreLocation, StoreOptions, UploadProgress, WriterLock, find_credentials,
};
pub use tracking::list::ListProvider;
pub use tracking::ranges::RangeSet;
pub use tracking::reflink::{REF_DIR_NAME, ReflinkProvider};
pub use tracking::{ChangeProvider, ChangeSource, DEFAULT_VERIFY_SAMPLE, TrackedChanges, TrackedInput, Tracking};
pub use write::progress::WriteProgress;
pub use write::{
    Decision, EntryError, ExcludeCount, Fallback, FileReport, FullReason, SourceFilter, WriteOptions, WriteSummary,
    write_snapshot,
};

/// The change log of `backup-fs track`, for the tracker that writes it (Unix).
#[cfg(unix)]
pub mod change_log {
    pub use crate::format::changelog::{CutPoint, FileKey, RecordKind};
    pub use crate::tracking::changelog::{LogPaths, LogWriter};
    pub use crate::tracking::fanotify::FanotifyProvider;
}
