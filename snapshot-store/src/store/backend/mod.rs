//! Where a store's files live: the one small storage interface the rest of the store is written
//! against, as restic, kopia and borg 2 have theirs.
//!
//! A store is a set of files named by [`Key`]s (`config`, `snapshots/<id>`, `objects/ab/ab…`):
//! the same names in a directory ([`LocalBackend`]) and under a bucket prefix (the S3 backend),
//! so a store copied from one to the other with any tool stays a store. The interface has only
//! what the commit protocol needs, and nothing that an object store cannot do atomically:
//!
//! - whole reads of small files, random-access reads of large ones ([`Blob`]);
//! - [`Backend::publish`]: files finished in a local spool directory become store files
//!   *if absent* (an existing file is kept: every file but `config` is content-addressed or
//!   written once), durably, before the call returns;
//! - [`Backend::publish_one`], the same for one file with the outcome, which makes the
//!   manifest's creation the commit point;
//! - [`Backend::replace`] for the few mutable files (`config`, prune's state);
//! - [`Backend::delete`] for what `forget` and `prune` remove;
//! - reader registrations ([`Backend::register_reader`]), which tell `prune` what a running
//!   reader may still need.
//!
//! The local backend is the directory code the store always had: temporary files in `tmp/`,
//! `fsync`, `renameat2(RENAME_NOREPLACE)`, directory `fsync`.

mod disk_cache;
mod local;
mod local_readers;
mod s3;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub(crate) use disk_cache::DiskCache;
pub(crate) use local::LocalBackend;
pub(crate) use s3::S3Backend;
pub use s3::{DEFAULT_CONNECTIONS, RemoteOptions, RemoteStats};

use crate::error::Result;
use crate::format::snapshot::SnapshotId;
use crate::id::{ObjectId, VersionId};
use crate::store::LiveReader;

/// The name of one store file: a relative path with `/` separators.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key(String);

impl Key {
    /// The store's configuration.
    pub(crate) const CONFIG: &'static str = "config";

    /// A key from its text (a relative path with `/` separators, no `.` or `..` parts).
    pub(crate) fn new(s: impl Into<String>) -> Key {
        Key(s.into())
    }

    /// The key of object `id` (data objects, signatures, extent maps, hash trees).
    pub(crate) fn object(id: &ObjectId) -> Key {
        fanned("objects", &id.to_hex())
    }

    /// The key of version record `id`.
    pub(crate) fn version(id: &VersionId) -> Key {
        fanned("versions", &id.to_hex())
    }

    /// The key of snapshot manifest `id`.
    pub(crate) fn snapshot(id: &SnapshotId) -> Key {
        Key(format!("snapshots/{}", id.as_str()))
    }

    /// The key's text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The last part of the key (a file name).
    pub(crate) fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `dir/xx/hex` for a content-addressed file.
fn fanned(dir: &str, hex: &str) -> Key {
    Key(format!("{dir}/{}/{hex}", hex.get(..2).unwrap_or(hex)))
}

/// How a caller reads a [`Blob`], which decides whether read-ahead helps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading on from here (streams, large requests): read-ahead helps.
    Sequential,
    /// An isolated small read: fetch these bytes and nothing more. The kernel would otherwise
    /// read ahead 64-128 KiB for each, which makes cold random reads wait longer.
    Random,
}

/// A store file open for random-access reads.
pub(crate) trait Blob: Send + Sync + fmt::Debug {
    /// The file's length in bytes.
    fn len(&self) -> u64;

    /// Fills `buf` from `offset`; a file that ends first is reported as corrupt (truncated),
    /// naming `what`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64, access: Access, what: &str) -> Result<()>;

    /// The whole file, when it is already in memory (a small remote file fetched whole).
    fn whole(&self) -> Option<&[u8]> {
        None
    }
}

/// A file finished in the spool directory, to become store file `key`.
#[derive(Debug)]
pub(crate) struct Staged {
    /// The finished file in [`Backend::spool_dir`].
    pub temp: PathBuf,
    /// Its name in the store.
    pub key: Key,
}

/// What [`Backend::publish_one`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutOutcome {
    /// The file is now in the store, with the bytes given.
    Created,
    /// A file of that name was there already and was kept (the spooled file is deleted).
    Exists,
}

/// Proof that this process holds a store's writer lock, until dropped.
pub(crate) trait LockHold: Send + Sync + fmt::Debug {
    /// Confirms the lock is still held (a remote lock is refreshed now), or
    /// [`Error::LockLost`](crate::Error::LockLost).
    fn check(&self) -> Result<()>;
}

/// A reader's registration with its store, which keeps what the reader may need from being
/// deleted by `prune`; removed when dropped.
pub(crate) trait ReaderHold: Send + Sync + fmt::Debug {
    /// The registration's name, as [`Backend::live_readers`] reports it.
    fn name(&self) -> &str;

    /// Records that the reader has caught up with prune generation `generation`.
    fn set_generation(&self, generation: u64) -> Result<()>;
}

/// The storage under a store: a directory or a bucket prefix.
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    /// What to call the whole store in messages: its directory, or its `s3:` URL.
    fn location(&self) -> String;

    /// What to call store file `key` in messages (its path, or its key under the URL).
    fn describe(&self, key: &Key) -> String;

    /// A local directory for files being written (on the store's filesystem for a directory
    /// store, so that publishing is a rename).
    fn spool_dir(&self) -> &Path;

    /// The whole of store file `key`, or `None` when there is none.
    fn read(&self, key: &Key) -> Result<Option<Vec<u8>>>;

    /// Store file `key` open for random-access reads, or `None` when there is none.
    fn open(&self, key: &Key) -> Result<Option<Box<dyn Blob>>>;

    /// [`open`](Backend::open) for a store file the caller expects to hold at most `len`
    /// bytes: a remote store then fetches all of it with one request (a longer file still
    /// opens, and reads its start when asked).
    fn open_small(&self, key: &Key, len: u64) -> Result<Option<Box<dyn Blob>>> {
        let _ = len;
        self.open(key)
    }

    /// True when store file `key` exists.
    fn exists(&self, key: &Key) -> Result<bool>;

    /// Whether store file `key` exists, if that is known without asking a remote store
    /// (`None`: unknown; then publishing it is how to find out, as publication keeps an
    /// existing file).
    fn known(&self, key: &Key) -> Option<bool> {
        self.exists(key).ok()
    }

    /// Every store file whose key starts with `dir` + `/`, at any depth, with its length, in no
    /// particular order. A missing directory lists nothing.
    fn list(&self, dir: &str) -> Result<Vec<(Key, u64)>>;

    /// Makes each staged file the store file of its key unless that exists (then the existing
    /// one is kept), durably before returning, and removes the spooled files. On error, some
    /// may have been published and the rest are left in the spool.
    fn publish(&self, files: &[Staged]) -> Result<()>;

    /// [`publish`](Backend::publish) for one file, saying whether it was created or found.
    fn publish_one(&self, file: &Staged) -> Result<PutOutcome>;

    /// Writes `bytes` as store file `key` unless it exists, durably.
    fn create(&self, key: &Key, bytes: &[u8]) -> Result<PutOutcome>;

    /// Takes the store's writer lock, waiting for its holder to let go if `wait`
    /// ([`Error::Locked`](crate::Error::Locked) otherwise).
    fn lock(&self, wait: bool) -> Result<Box<dyn LockHold>>;

    /// Requests and bytes exchanged with a remote store so far; `None` for a local one.
    fn remote_stats(&self) -> Option<RemoteStats> {
        None
    }

    /// Writes `bytes` as store file `key`, replacing what is there, durably and atomically
    /// (readers see the old bytes or the new, never a mix).
    fn replace(&self, key: &Key, bytes: &[u8]) -> Result<()>;

    /// The whole of store file `key` as it is now, for the files that change (prune's state):
    /// never from a cache the store has not just confirmed. `None` when there is none.
    fn read_current(&self, key: &Key) -> Result<Option<Vec<u8>>> {
        self.read(key)
    }

    /// The first `len` bytes of store file `key` (fewer if it is shorter), or `None` when there
    /// is none.
    fn read_head(&self, key: &Key, len: usize) -> Result<Option<Vec<u8>>> {
        let Some(blob) = self.open(key)? else {
            return Ok(None);
        };
        let mut head = vec![0u8; len.min(usize::try_from(blob.len()).unwrap_or(usize::MAX))];
        blob.read_exact_at(&mut head, 0, Access::Random, &self.describe(key))?;
        Ok(Some(head))
    }

    /// Deletes store file `key`; a missing one is not an error. Not durable by itself: see
    /// [`flush_deletes`](Backend::flush_deletes).
    fn delete(&self, key: &Key) -> Result<()>;

    /// Makes the deletions of files directly under `dir` durable (a directory is flushed; an
    /// object store's deletions already are).
    fn flush_deletes(&self, _dir: &str) -> Result<()> {
        Ok(())
    }

    /// Registers this process as a reader that has caught up with prune generation
    /// `generation`.
    fn register_reader(&self, generation: u64) -> Result<Box<dyn ReaderHold>>;

    /// The registered readers still running, but for the one named `own`; registrations of
    /// readers that are gone are removed.
    fn live_readers(&self, own: Option<&str>) -> Result<Vec<LiveReader>>;

    /// Abandons what interrupted writes left in the store that no later write finished (an
    /// object store's unfinished uploads older than a week); best effort. Writer lock held.
    fn tidy(&self) {}

    /// Tells a cache in front of the store that the store is now at cache epoch `epoch` (see
    /// `store::epoch`): what it learnt at another epoch is no longer taken on trust, and at an
    /// odd one nothing is.
    fn observe_epoch(&self, _epoch: u64) {}
}
