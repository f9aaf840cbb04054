//! The one error type of this crate.
//!
//! Every variant names the thing at fault (a path, an object, a snapshot) so that a message shown to
//! a user says what to look at. Front ends map these to exit codes or errno values in one place.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading or writing a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Stored data does not parse: truncated, bad magic, out-of-range field.
    #[error("{what} is corrupt: {reason}")]
    Corrupt {
        /// The object or file at fault, e.g. `data object 3fa2c1d0 (objects/3f/3fa2…)`.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// Stored data parses but its checksum does not match: it was altered after it was written.
    #[error("{what} is corrupt: checksum mismatch (expected {expected}, got {got})")]
    ChecksumMismatch {
        /// The object or file at fault.
        what: String,
        /// The checksum recorded when it was written.
        expected: String,
        /// The checksum of what is there now.
        got: String,
    },
    /// A stored file was written by a newer backup-fs with a format this build cannot read.
    #[error(
        "{what} has format version {found}, but this backup-fs reads up to version {supported}; \
         upgrade backup-fs to read this store"
    )]
    UnsupportedVersion {
        /// The file at fault.
        what: String,
        /// The version found in the file.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// Something the store references is not there.
    #[error("{what} is missing (referenced by {referenced_by})")]
    Missing {
        /// The missing object, version or snapshot.
        what: String,
        /// Who referenced it.
        referenced_by: String,
    },
    /// The directory is not a backup-fs store.
    #[error("{} is not a backup-fs store (no config file; create one with `backup-fs init`)", path.display())]
    NotAStore {
        /// The directory that was given.
        path: PathBuf,
    },
    /// `init` on a directory that already holds a store or other files.
    #[error("{} already exists and is not empty; refusing to create a store there", path.display())]
    AlreadyExists {
        /// The directory that was given.
        path: PathBuf,
    },
    /// Another process holds the writer lock.
    #[error("store {} is locked by another writer{}", path.display(), holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// What the lock file says about its holder, if anything.
        holder: Option<String>,
    },
    /// No snapshot has this id.
    #[error("no snapshot {id} in the store (see `backup-fs list`)")]
    SnapshotNotFound {
        /// The id that was asked for.
        id: String,
    },
    /// The path does not exist in the snapshot.
    #[error("{path}: no such file or directory in snapshot {snapshot}")]
    PathNotFound {
        /// The snapshot searched.
        snapshot: String,
        /// The path, relative to the snapshot root.
        path: String,
    },
    /// A name or path pattern does not parse.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The path exists but is not the kind of entry the operation needs.
    #[error("{path} in snapshot {snapshot} is {actual}, not {expected}")]
    WrongKind {
        /// The snapshot searched.
        snapshot: String,
        /// The path, relative to the snapshot root.
        path: String,
        /// What the operation needed, e.g. "a regular file".
        expected: &'static str,
        /// What the entry is.
        actual: &'static str,
    },
    /// A snapshot name that is the prefix of several snapshot ids.
    #[error("snapshot {name:?} is ambiguous: it matches {count} snapshots ({first} … {last})")]
    AmbiguousSnapshot {
        /// The name that was given.
        name: String,
        /// How many ids it matches.
        count: usize,
        /// The oldest of them.
        first: String,
        /// The newest of them.
        last: String,
    },
    /// Every snapshot id of one second is taken (`-01` … `-99`).
    #[error("more than 99 snapshots within the second {second}; wait a second and retry")]
    SnapshotIdsExhausted {
        /// The second, as an id stamp.
        second: String,
    },
    /// A restore would overwrite something.
    #[error("{} already exists; not overwriting it", path.display())]
    TargetExists {
        /// What exists.
        path: PathBuf,
    },
    /// A tree is restored only into a new or empty directory.
    #[error("{} exists and is not empty; restore into a new or empty directory (or choose --overwrite)", path.display())]
    TargetNotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// Overwriting would delete a directory that holds something.
    #[error("{} is a directory that is not empty where the snapshot has no directory; not deleting it", path.display())]
    DirectoryInTheWay {
        /// The directory.
        path: PathBuf,
    },
    /// An entry this build records but cannot recreate here (a socket, a device on Windows).
    #[error("{what} cannot be restored")]
    NotRestorable {
        /// What it is, e.g. "a socket".
        what: String,
    },
    /// `write --time` at or before the newest snapshot.
    #[error("the snapshot time {time} is not later than the newest snapshot {newest} ({newest_time})")]
    TimeNotAfter {
        /// The time asked for (RFC 3339).
        time: String,
        /// The newest snapshot.
        newest: String,
        /// Its time (RFC 3339).
        newest_time: String,
    },
    /// `forget` with neither keep rules nor snapshots, in a store without a stored policy.
    #[error(
        "no keep rules given and the store has no retention policy: give --keep-* rules or \
         snapshot ids, or store a policy with `backup-fs policy set`"
    )]
    NoKeepRules,
    /// `prune` cannot know what something needs, so it deletes nothing.
    #[error("cannot prune: {what}: {reason}; nothing was deleted")]
    PruneRefused {
        /// What could not be read.
        what: String,
        /// Why that stops the prune.
        reason: String,
    },
    /// A request to the object store holding the store failed (after retries where a retry
    /// could help).
    #[error("{what}: {reason}")]
    Remote {
        /// The request and the store file it was about, e.g. `GET s3:…/snapshots/2026-…`.
        what: String,
        /// What kind of failure it was.
        kind: RemoteFailure,
        /// What the server or the network said.
        reason: String,
    },
    /// No credentials for an object store were found, or they are incomplete.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A store in an object store needs a local directory for its spool and cache.
    #[error(
        "store {store} is remote and needs a local cache directory for its spool: give --cache-dir DIR \
         or set BACKUP_FS_CACHE_DIR (or HOME)"
    )]
    NoCacheDir {
        /// The store.
        store: String,
    },
    /// This process lost the writer lock of a remote store (another writer took it over after
    /// its refreshes failed), so it committed nothing.
    #[error("lost the writer lock of store {store}: {reason}; nothing was committed")]
    LockLost {
        /// The store.
        store: String,
        /// How it was lost.
        reason: String,
    },
    /// A part of backup-fs failed in a way it never should (a bug); nothing was stored.
    #[error("internal error: {what}; nothing was stored (please report this)")]
    Internal {
        /// What failed.
        what: String,
    },
}

/// Why no credentials were found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// Nothing anywhere.
    #[error(
        "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile {profile:?} \
         aws_access_key_id and aws_secret_access_key in {}",
        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" or ")
    )]
    Missing {
        /// The profile looked for.
        profile: String,
        /// The files looked in.
        files: Vec<PathBuf>,
    },
    /// One of the two keys without the other.
    #[error("{found} is set but {missing} is not")]
    Half {
        /// What was found (a variable, or a file and key).
        found: String,
        /// What is missing.
        missing: String,
    },
    /// A file that cannot be read (other than missing).
    #[error("cannot read {}: {why}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// The kinds of [`Error::Remote`], each with its own exit code at the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteFailure {
    /// The endpoint cannot be reached (refused, no such host, timed out, connection dropped).
    Unreachable,
    /// The server refused the credentials or the request (403): wrong keys, clock skew, no
    /// permission.
    Denied,
    /// The bucket does not exist.
    NoSuchBucket,
    /// The server kept asking to slow down (429, 503 SlowDown) through every retry.
    Throttled,
    /// The server kept failing (5xx) through every retry.
    Server,
    /// The server answered something an S3 server should not (bad status, unparsable body,
    /// wrong length, ignored conditions).
    Protocol,
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`Error::Corrupt`] about `what`.
    pub fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// True when the error means stored data is damaged (as opposed to missing or unreadable).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::ChecksumMismatch { .. } | Error::Missing { .. }
        )
    }

    /// The `io::ErrorKind` of an I/O error, if this is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// Attaches a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Maps the error to [`Error::Io`] naming `path`.
    fn at(self, path: impl AsRef<std::path::Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<std::path::Path>) -> Result<T> {
        self.map_err(|e| Error::io(path.as_ref(), e))
    }
}
