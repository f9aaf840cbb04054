//! The store layer: a store directory, its layout and configuration, the writer lock, the
//! commit protocol, and cached, checked access to everything in it. `Store` is cheap to clone
//! and safe to share between threads; all caches are shared.
//!
//! ```text
//! STORE/
//!   config                  store id and default policy (envelope kind "conf")
//!   lock                    the writer lock (an OS file lock; holds the writer's pid)
//!   snapshots/<id>          snapshot manifests (kind "snap")
//!   versions/<xx>/<hex>     file version records, named by the content's blake3 (kind "vers")
//!   objects/<xx>/<hex>      data objects ("BKFSdata"), signatures ("sign"), extent maps
//!                           ("xmap"), hash trees ("tree")
//!   xattrs                  empty marker: some snapshot records extended attributes
//!   tmp/                    files being written; anything here is garbage after a crash
//!   tracking/               change tracking (reference tables, change logs)
//! ```

pub(crate) mod cache;
mod condemned;
mod credentials;
mod journal;
mod location;
mod lock;
mod maps;
pub(crate) mod object;
mod objects;
mod queue;
pub(crate) mod readers;
mod records;
pub(crate) mod staging;
mod trees;

use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use crate::error::{Error, IoContext, Result};
use crate::format::FormatVersion;
use crate::format::config::StoreConfig;
use crate::format::envelope::{self, Kind};
use crate::format::extent::ExtentMap;
use crate::format::hashtree::TreeTable;
use crate::format::policy::Policy;
use crate::format::retention::Retention;
use crate::format::signature::Signature;
use crate::format::snapshot::{Snapshot, SnapshotId};
use crate::format::version::FileVersion;
use crate::id::{ObjectId, VersionId};
use crate::os::file as fsio;
use crate::store::cache::ByteLru;
use crate::store::object::DataObject;

pub use credentials::{CredentialsError, S3Credentials, find_credentials};
pub use location::{LocationError, S3Location, StoreLocation};
pub use lock::WriterLock;
pub use readers::LiveReader;

/// Name of the marker file created before the first snapshot with extended attributes commits.
const XATTRS_MARKER: &str = "xattrs";
/// Default bytes of decoded frames kept in memory.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;
/// Open data objects kept.
const OPEN_OBJECTS: usize = 512;

/// Tuning for an opened store.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Bytes of decoded frames cached (shared by all readers). Extent maps and snapshot manifests
    /// may use up to half of this again each, version records an eighth: memory stays bounded by
    /// this one number whatever is read.
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

struct Inner {
    root: PathBuf,
    options: StoreOptions,
    config: StoreConfig,
    frames: ByteLru<(ObjectId, u32), Vec<u8>>,
    objects: Mutex<LruCache<ObjectId, Arc<DataObject>>>,
    versions: ByteLru<VersionId, FileVersion>,
    maps: ByteLru<VersionId, ExtentMap>,
    signatures: ByteLru<ObjectId, Signature>,
    trees: ByteLru<ObjectId, TreeTable>,
    /// How many run-encoded levels each signature seen so far sits above a complete one.
    signature_chains: Mutex<std::collections::HashMap<ObjectId, u16>>,
    snapshots: ByteLru<SnapshotId, Snapshot>,
    /// This process's reader registration, once [`Store::register_reader`] made one.
    registration: Mutex<Option<readers::Registration>>,
    /// The prune generation the caches are known to be at least as new as.
    seen_generation: std::sync::atomic::AtomicU64,
}

/// An open store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.inner.root).finish()
    }
}

const SUBDIRS: [&str; 4] = ["snapshots", "versions", "objects", "tmp"];

impl Store {
    /// Creates a store in `root` (which must be missing or empty) with `policy` as its default
    /// and no retention policy.
    pub fn init(root: &Path, policy: Policy) -> Result<Store> {
        Store::init_with(root, policy, Retention::default())
    }

    /// Creates a store in `root` (which must be missing or empty) with `policy` and `retention`
    /// as its defaults, in the current format version.
    pub fn init_with(root: &Path, policy: Policy, retention: Retention) -> Result<Store> {
        match fs::read_dir(root) {
            Ok(mut it) => {
                if it.next().is_some() {
                    return Err(Error::AlreadyExists {
                        path: root.to_path_buf(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fsio::ensure_dir(root)?,
            Err(e) => return Err(Error::io(root, e)),
        }
        for d in SUBDIRS {
            fsio::ensure_dir(&root.join(d))?;
        }
        let mut store_id = [0u8; 16];
        let seed = format!("{:?}{}{}", root, std::process::id(), crate::format::time::now_ns());
        store_id.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
        let config = StoreConfig {
            store_id,
            created_ns: crate::format::time::now_ns(),
            policy,
            retention,
            format: FormatVersion::CURRENT,
        };
        write_config(root, &config)?;
        Store::open(root)
    }

    /// Replaces `config` (written to `tmp/`, flushed, renamed over, the store directory
    /// flushed) with `config`, upgrading the store to `config.format`, and returns the store
    /// reopened with it. Needs the writer lock.
    pub fn replace_config(&self, _lock: &WriterLock, config: &StoreConfig) -> Result<Store> {
        if config.store_id != self.inner.config.store_id || config.format < self.inner.config.format {
            return Err(Error::corrupt(
                format!("store {}", self.inner.root.display()),
                "a config may not change the store id or lower the format version",
            ));
        }
        write_config(&self.inner.root, config)?;
        Store::open_with(&self.inner.root, self.inner.options)
    }

    /// Opens the store in `root` with default options.
    pub fn open(root: &Path) -> Result<Store> {
        Store::open_with(root, StoreOptions::default())
    }

    /// Opens the store in `root`.
    pub fn open_with(root: &Path, options: StoreOptions) -> Result<Store> {
        let config_path = root.join("config");
        let bytes = match fs::read(&config_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if root.exists() {
                    Error::NotAStore {
                        path: root.to_path_buf(),
                    }
                } else {
                    Error::io(root, e)
                });
            }
            Err(e) => return Err(Error::io(&config_path, e)),
        };
        let what = format!("store config ({})", config_path.display());
        let (format, payload) = envelope::open_versioned(Kind::Config, &bytes, &what)?;
        let config = StoreConfig::decode(&payload, format, &what)?;
        for d in SUBDIRS {
            let p = root.join(d);
            if !p.is_dir() {
                return Err(Error::corrupt(
                    format!("store {}", root.display()),
                    format!("directory {d}/ is missing"),
                ));
            }
        }
        let n = |v| NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN);
        let seen_generation = readers::read_generation(root)?;
        Ok(Store {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                options,
                config,
                frames: ByteLru::new(options.cache_bytes),
                objects: Mutex::new(LruCache::new(n(OPEN_OBJECTS))),
                versions: ByteLru::new((options.cache_bytes / 8).max(8 << 20)),
                maps: ByteLru::new((options.cache_bytes / 2).max(16 << 20)),
                signatures: ByteLru::new(256 << 20),
                trees: ByteLru::new(256 << 20),
                signature_chains: Mutex::new(std::collections::HashMap::new()),
                snapshots: ByteLru::new((options.cache_bytes / 2).max(32 << 20)),
                registration: Mutex::new(None),
                seen_generation: std::sync::atomic::AtomicU64::new(seen_generation),
            }),
        })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Where temporary files go.
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    /// Path of an object.
    pub(crate) fn object_path(&self, id: &ObjectId) -> PathBuf {
        let hex = id.to_hex();
        self.inner.root.join("objects").join(&hex[..2]).join(hex)
    }

    /// Path of a version record.
    pub(crate) fn version_path(&self, id: &VersionId) -> PathBuf {
        let hex = id.to_hex();
        self.inner.root.join("versions").join(&hex[..2]).join(hex)
    }

    /// Path of a snapshot manifest.
    pub fn snapshot_path(&self, id: &SnapshotId) -> PathBuf {
        self.inner.root.join("snapshots").join(id.as_str())
    }

    /// Path of the marker that some snapshot records extended attributes.
    pub(crate) fn xattrs_marker_path(&self) -> PathBuf {
        self.inner.root.join(XATTRS_MARKER)
    }

    /// True when some snapshot of the store may record extended attributes: writers create the
    /// `xattrs` marker before committing the first such snapshot, so `false` promises that no
    /// snapshot committed before this call holds any.
    pub fn records_xattrs(&self) -> bool {
        self.xattrs_marker_path().exists()
    }

    /// True when object `id` is in the store.
    pub(crate) fn has_object(&self, id: &ObjectId) -> bool {
        self.object_path(id).exists()
    }

    /// True when version record `id` is in the store.
    pub(crate) fn has_version(&self, id: &VersionId) -> bool {
        self.version_path(id).exists()
    }

    /// All snapshot ids, oldest first.
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let dir = self.inner.root.join("snapshots");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            if let Some(id) = entry.file_name().to_str().and_then(SnapshotId::parse) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Resolves `latest`, a full id, or a unique prefix of one.
    pub fn resolve_snapshot(&self, name: &str) -> Result<SnapshotId> {
        let ids = self.snapshot_ids()?;
        let not_found = || Error::SnapshotNotFound { id: name.to_string() };
        if name == "latest" {
            return ids.last().cloned().ok_or_else(not_found);
        }
        if let Some(id) = ids.iter().find(|id| id.as_str() == name) {
            return Ok(id.clone());
        }
        let matching: Vec<&SnapshotId> = ids.iter().filter(|id| id.as_str().starts_with(name)).collect();
        match matching.as_slice() {
            [one] if !name.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(not_found()),
            many => Err(Error::AmbiguousSnapshot {
                name: name.to_string(),
                count: many.len(),
                first: many.first().map(|s| s.to_string()).unwrap_or_default(),
                last: many.last().map(|s| s.to_string()).unwrap_or_default(),
            }),
        }
    }

    /// Forgets every cached manifest, version record, extent map, signature and hash tree (not
    /// decoded frames or open data objects: those are named by their content).
    pub(crate) fn drop_record_caches(&self) {
        self.inner.snapshots.clear();
        self.inner.versions.clear();
        self.inner.maps.clear();
        self.inner.signatures.clear();
        self.inner.trees.clear();
        self.inner.signature_chains.lock().clear();
    }

    /// Cache statistics: (frame hits, frame misses, frame bytes cached).
    pub fn cache_stats(&self) -> (u64, u64, usize) {
        let (h, m) = self.inner.frames.stats();
        (h, m, self.inner.frames.bytes())
    }
}

/// Writes `config` atomically into the store at `root`, sealed with its format version.
pub(crate) fn write_config(root: &Path, config: &StoreConfig) -> Result<()> {
    let sealed = envelope::seal_as(Kind::Config, config.format, &config.encode());
    fsio::write_atomic(&root.join("config"), &root.join("tmp"), &sealed)?;
    fsio::sync_dir(root)
}

/// A file that is not there is `Missing` (naming what refers to it); other failures are I/O errors.
fn missing_or_io(path: &Path, e: io::Error, what: &str, referenced_by: &str) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::Missing {
            what: what.to_string(),
            referenced_by: referenced_by.to_string(),
        }
    } else {
        Error::io(path, e)
    }
}

/// Reads exactly `len` bytes at `offset` of an object file; a short read means it is truncated.
fn read_exact(file: &fs::File, path: &Path, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let got = fsio::read_full_at(file, &mut buf, offset).map_err(|e| Error::io(path, e))?;
    if got < len {
        return Err(Error::corrupt(
            what,
            format!("truncated (ends before byte {})", offset + len as u64),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_open_and_refuse_nonempty() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let policy = Policy {
            max_deltas: Some(7),
            ..Policy::default()
        };
        Store::init(&root, policy).unwrap();
        let s = Store::open(&root).unwrap();
        assert_eq!(s.config().policy, policy);
        assert!(matches!(Store::init(&root, policy), Err(Error::AlreadyExists { .. })));
        assert!(matches!(Store::open(dir.path()), Err(Error::NotAStore { .. })));
        assert!(matches!(Store::open(&dir.path().join("nope")), Err(Error::Io { .. })));
        assert!(s.snapshot_ids().unwrap().is_empty());
        assert!(matches!(
            s.resolve_snapshot("latest"),
            Err(Error::SnapshotNotFound { .. })
        ));
    }

    #[test]
    fn a_prefix_of_several_ids_is_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::init(dir.path(), Policy::default()).unwrap();
        for name in ["2026-11-22T07-15-03Z", "2026-11-22T07-15-04Z"] {
            fs::write(s.snapshot_path(&SnapshotId::parse(name).unwrap()), b"").unwrap();
        }
        let err = s.resolve_snapshot("2026-11-22T07-15").unwrap_err();
        assert!(matches!(err, Error::AmbiguousSnapshot { count: 2, .. }), "{err:?}");
        assert_eq!(
            s.resolve_snapshot("2026-11-22T07-15-04").unwrap().as_str(),
            "2026-11-22T07-15-04Z"
        );
        assert!(matches!(
            s.resolve_snapshot("2027"),
            Err(Error::SnapshotNotFound { .. })
        ));
    }

    #[test]
    fn second_writer_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::init(dir.path(), Policy::default()).unwrap();
        let lock = s.lock_writer(false).unwrap();
        let other = Store::open(dir.path()).unwrap();
        let err = other.lock_writer(false).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("pid"), "{err}");
        drop(lock);
        other.lock_writer(false).unwrap();
    }
}
