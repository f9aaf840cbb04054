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

pub(crate) mod backend;
pub(crate) mod cache;
pub(crate) mod condemned;
mod credentials;
mod epoch;
mod journal;
mod location;
mod lock;
mod maps;
pub(crate) mod object;
mod objects;
mod queue;
pub(crate) mod reach;
pub(crate) mod readers;
mod records;
pub(crate) mod staging;
mod trees;
mod uploader;

use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
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
use crate::store::backend::{Access, Backend, Blob, DiskCache, Key, LocalBackend, S3Backend};
pub use crate::store::backend::{DEFAULT_CONNECTIONS, RemoteOptions, RemoteStats};
use crate::store::cache::ByteLru;
use crate::store::object::FrameCache;

pub use credentials::{CredentialsError, S3Credentials, find_credentials};
pub use location::{LocationError, S3Location, StoreLocation};
pub use lock::WriterLock;
pub use readers::LiveReader;
pub use uploader::UploadProgress;

/// Name of the marker file created before the first snapshot with extended attributes commits.
const XATTRS_MARKER: &str = "xattrs";
/// Default bytes of decoded frames kept in memory.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;
/// Open data objects kept.
const OPEN_OBJECTS: usize = 512;
/// Files at least this long are looked for in a remote store before they are uploaded: a
/// smaller one costs about a request's round trip to send again, and a rerun of an interrupted
/// write must send again only that little of what was already there.
const ASK_BEFORE_UPLOAD: u64 = 64 << 10;
/// Default bytes of a remote store's on-disk frame cache.
pub const DEFAULT_FRAME_CACHE_BYTES: u64 = 4 << 30;

/// Tuning for an opened store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bytes of decoded frames cached (shared by all readers). Extent maps and snapshot manifests
    /// may use up to half of this again each, version records an eighth: memory stays bounded by
    /// this one number whatever is read.
    pub cache_bytes: usize,
    /// The local cache directory (`--cache-dir`): a remote store keeps its spool and local
    /// state in `<cache_dir>/<store id>/`. Needed for remote stores only.
    pub cache_dir: Option<PathBuf>,
    /// How to talk to an object store.
    pub remote: RemoteOptions,
    /// Bytes a remote store's on-disk frame cache (in its local state directory) may occupy;
    /// 0 keeps no frames on disk.
    pub frame_cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            cache_dir: None,
            remote: RemoteOptions::default(),
            frame_cache_bytes: DEFAULT_FRAME_CACHE_BYTES,
        }
    }
}

struct Inner {
    /// The local directory of the store's local state (the store directory itself for a
    /// directory store).
    root: PathBuf,
    /// Where the store's files are.
    backend: Box<dyn Backend>,
    /// Where the store is, as it was opened.
    location: StoreLocation,
    options: StoreOptions,
    config: StoreConfig,
    frames: ByteLru<(ObjectId, u32), Vec<u8>>,
    /// The on-disk frame cache under `frames` (remote stores only).
    frame_cache: Option<Arc<FrameCache>>,
    objects: objects::OpenObjects,
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
    /// When a remote store was last asked for its generation by
    /// [`Store::refresh_after_prune`].
    generation_polled: Mutex<Option<std::time::Instant>>,
    /// The cache epoch what this process caches was learnt at.
    seen_epoch: std::sync::atomic::AtomicU64,
    /// Manifest sizes from the last listing of `snapshots/`.
    listed: Mutex<std::collections::HashMap<SnapshotId, u64>>,
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
        let config = new_config(&format!("{root:?}"), policy, retention);
        write_config(&LocalBackend::new(root), &config)?;
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
        write_config(self.backend(), config)?;
        Store::open_at(&self.inner.location, self.inner.options.clone())
    }

    /// Opens the store in `root` with default options.
    pub fn open(root: &Path) -> Result<Store> {
        Store::open_with(root, StoreOptions::default())
    }

    /// Opens the store in `root`.
    pub fn open_with(root: &Path, options: StoreOptions) -> Result<Store> {
        let backend = LocalBackend::new(root);
        let Some(config) = read_config(&backend)? else {
            return Err(match fs::metadata(root) {
                Ok(_) => Error::NotAStore {
                    path: root.to_path_buf(),
                },
                Err(e) => Error::io(root, e),
            });
        };
        for d in SUBDIRS {
            // A store copied from a bucket has no empty directories: they are made again.
            let p = root.join(d);
            if !p.is_dir() && fs::create_dir(&p).is_err() {
                return Err(Error::corrupt(
                    format!("store {}", root.display()),
                    format!("directory {d}/ is missing"),
                ));
            }
        }
        let location = StoreLocation::Local(root.to_path_buf());
        let seen = Seen::read(&backend)?;
        Store::assemble(
            Box::new(backend),
            root.to_path_buf(),
            location,
            options,
            config,
            None,
            seen,
        )
    }

    /// Opens the store at `location`: a directory, or a bucket prefix (credentials from the
    /// environment and the AWS configuration files; spool and local state under
    /// `options.cache_dir`).
    pub fn open_at(location: &StoreLocation, options: StoreOptions) -> Result<Store> {
        let at = match location {
            StoreLocation::Local(dir) => return Store::open_with(dir, options),
            StoreLocation::S3(at) => at,
        };
        let mut backend = remote_backend(at, &options)?;
        // The config and prune's files as last read here are kept under a name of the
        // location, and used while the server's ETag is the same. They are read at once: an
        // open waits for one round trip.
        if let Some(cache) = &options.cache_dir {
            let name = blake3::hash(at.to_string().as_bytes()).to_hex();
            let dir = cache.join("locations").join(&name.as_str()[..32]);
            if dir.is_file() {
                // Where an older build kept the config alone.
                let _ = fs::remove_file(&dir);
            }
            backend.set_kept_dir(dir);
        }
        let key = Key::new(Key::CONFIG);
        let (bytes, generation, epoch) = std::thread::scope(|scope| {
            let generation = scope.spawn(|| readers::read_generation(&backend));
            let epoch = scope.spawn(|| epoch::read_epoch(&backend));
            let bytes = backend.read_current(&key);
            let joined = |h: std::thread::ScopedJoinHandle<'_, Result<u64>>| {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            };
            (bytes, joined(generation), joined(epoch))
        });
        let bytes = bytes?;
        let Some(bytes) = bytes else {
            backend.check_bucket()?;
            return Err(Error::NotAStore {
                path: PathBuf::from(at.to_string()),
            });
        };
        let config = match (decode_config(&bytes, &backend.describe(&key)), backend.kept_copy(&key)) {
            (Ok(c), _) => c,
            // A damaged local copy is dropped and the config read again.
            (Err(_), Some(copy)) if fs::remove_file(&copy).is_ok() => {
                let bytes = backend.read(&key)?.ok_or_else(|| Error::NotAStore {
                    path: PathBuf::from(at.to_string()),
                })?;
                decode_config(&bytes, &backend.describe(&key))?
            }
            (Err(e), _) => return Err(e),
        };
        let seen = Seen {
            generation: generation?,
            epoch: epoch?,
        };
        let root = local_state_dir(at, &options, &config)?;
        backend.set_local_dir(&root);
        let backend = DiskCache::new(Box::new(backend), root.join("files"));
        let frames = (options.frame_cache_bytes > 0)
            .then(|| Arc::new(FrameCache::new(root.join("frames"), options.frame_cache_bytes)));
        Store::assemble(Box::new(backend), root, location.clone(), options, config, frames, seen)
    }

    /// Creates a store at `location` (a missing or empty directory; an empty bucket prefix, in
    /// a bucket that exists or, with `create_bucket`, is created) and opens it.
    pub fn init_at(
        location: &StoreLocation,
        policy: Policy,
        retention: Retention,
        options: StoreOptions,
        create_bucket: bool,
    ) -> Result<Store> {
        let at = match location {
            StoreLocation::Local(dir) => {
                Store::init_with(dir, policy, retention)?;
                return Store::open_with(dir, options);
            }
            StoreLocation::S3(at) => at,
        };
        let backend = remote_backend(at, &options)?;
        backend.prepare_empty(create_bucket)?;
        let config = new_config(&at.to_string(), policy, retention);
        let sealed = envelope::seal_as(Kind::Config, config.format, &config.encode());
        if backend.create(&Key::new(Key::CONFIG), &sealed)? == backend::PutOutcome::Exists {
            return Err(Error::AlreadyExists {
                path: PathBuf::from(at.to_string()),
            });
        }
        Store::open_at(location, options)
    }

    /// The store around `backend` with `config` read from it, local state in `root`.
    fn assemble(
        backend: Box<dyn Backend>,
        root: PathBuf,
        location: StoreLocation,
        options: StoreOptions,
        config: StoreConfig,
        frame_cache: Option<Arc<FrameCache>>,
        seen: Seen,
    ) -> Result<Store> {
        let n = |v| NonZeroUsize::new(v).unwrap_or(NonZeroUsize::MIN);
        let Seen {
            generation: seen_generation,
            epoch: seen_epoch,
        } = seen;
        backend.observe_epoch(seen_epoch);
        let cache_bytes = options.cache_bytes;
        Ok(Store {
            inner: Arc::new(Inner {
                root,
                backend,
                location,
                options,
                config,
                frames: ByteLru::new(cache_bytes),
                frame_cache,
                objects: objects::OpenObjects::new(n(OPEN_OBJECTS)),
                versions: ByteLru::new((cache_bytes / 8).max(8 << 20)),
                maps: ByteLru::new((cache_bytes / 2).max(16 << 20)),
                signatures: ByteLru::new(256 << 20),
                trees: ByteLru::new(256 << 20),
                signature_chains: Mutex::new(std::collections::HashMap::new()),
                snapshots: ByteLru::new((cache_bytes / 2).max(32 << 20)),
                registration: Mutex::new(None),
                seen_generation: std::sync::atomic::AtomicU64::new(seen_generation),
                generation_polled: Mutex::new(None),
                seen_epoch: std::sync::atomic::AtomicU64::new(seen_epoch),
                listed: Mutex::new(std::collections::HashMap::new()),
            }),
        })
    }

    /// The directory of the store's local state: the store directory itself, or for a remote
    /// store its directory in the cache (spool, change tracking).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the store's files are.
    pub(crate) fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    /// What to call the store in messages: its directory or its URL.
    pub fn location(&self) -> String {
        self.inner.backend.location()
    }

    /// A short name for the store in volume labels: the last part of its directory, or of its
    /// bucket prefix (the bucket for a whole bucket).
    pub fn short_name(&self) -> String {
        let name = match &self.inner.location {
            StoreLocation::Local(dir) => dir.file_name().map(|n| n.to_string_lossy().into_owned()),
            StoreLocation::S3(at) => at
                .prefix
                .rsplit('/')
                .next()
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        };
        name.unwrap_or_else(|| match &self.inner.location {
            StoreLocation::S3(at) => at.bucket.clone(),
            StoreLocation::Local(_) => "store".into(),
        })
    }

    /// True when the store is in an object store rather than a local directory.
    pub fn is_remote(&self) -> bool {
        matches!(self.inner.location, StoreLocation::S3(_))
    }

    /// Requests and bytes sent to and received from the object store so far (`None` for a
    /// local store).
    pub fn remote_stats(&self) -> Option<RemoteStats> {
        self.inner.backend.remote_stats()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Where temporary files go.
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.inner.backend.spool_dir().to_path_buf()
    }

    /// Path of an object in a store directory.
    #[cfg(test)]
    pub(crate) fn object_path(&self, id: &ObjectId) -> PathBuf {
        let hex = id.to_hex();
        self.inner.root.join("objects").join(&hex[..2]).join(hex)
    }

    /// Path of a snapshot manifest in a store directory.
    pub(crate) fn snapshot_path(&self, id: &SnapshotId) -> PathBuf {
        self.inner.root.join("snapshots").join(id.as_str())
    }

    /// True when some snapshot of the store may record extended attributes: writers create the
    /// `xattrs` marker before committing the first such snapshot, so `false` promises that no
    /// snapshot committed before this call holds any.
    pub fn records_xattrs(&self) -> bool {
        self.backend().exists(&Key::new(XATTRS_MARKER)).unwrap_or(true)
    }

    /// True when object `id` is in the store.
    pub(crate) fn has_object(&self, id: &ObjectId) -> Result<bool> {
        self.backend().exists(&Key::object(id))
    }

    /// True when version record `id` is in the store.
    pub(crate) fn has_version(&self, id: &VersionId) -> Result<bool> {
        self.backend().exists(&Key::version(id))
    }

    /// Whether a file of `len` bytes named `key` need not be staged because the store has it:
    /// asked of a remote store only for files large enough that uploading one that is there
    /// would cost more than a request (a smaller one is published, which keeps what is there).
    pub(crate) fn has_for_staging(&self, key: &Key, len: u64) -> bool {
        match self.backend().known(key) {
            Some(known) => known,
            None if len < ASK_BEFORE_UPLOAD => false,
            None => self.backend().exists(key).unwrap_or(false),
        }
    }

    /// All snapshot ids, oldest first.
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let listed: std::collections::HashMap<SnapshotId, u64> = (self.backend().list("snapshots")?.iter())
            .filter_map(|(key, size)| Some((SnapshotId::parse(key.file_name())?, *size)))
            .collect();
        let mut ids: Vec<SnapshotId> = listed.keys().cloned().collect();
        ids.sort();
        *self.inner.listed.lock() = listed;
        Ok(ids)
    }

    /// The size and modification time (ns since the epoch) of snapshot `id`'s manifest file,
    /// which change if it is replaced: from the file for a store directory; for a remote store
    /// the size its last listing gave and time 0 (remote manifests are never replaced).
    pub fn manifest_stamp(&self, id: &SnapshotId) -> Option<(u64, i64)> {
        if self.is_remote() {
            return self.inner.listed.lock().get(id).map(|&size| (size, 0));
        }
        let md = fs::metadata(self.snapshot_path(id)).ok()?;
        let ns = match md.modified().ok()?.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).ok()?,
            Err(e) => -i64::try_from(e.duration().as_nanos()).ok()?,
        };
        Some((md.len(), ns))
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

/// Prune's generation and the cache epoch as an open read them.
#[derive(Debug, Clone, Copy)]
struct Seen {
    generation: u64,
    epoch: u64,
}

impl Seen {
    /// Both, read one after the other from `backend`.
    fn read(backend: &dyn Backend) -> Result<Seen> {
        Ok(Seen {
            generation: readers::read_generation(backend)?,
            epoch: epoch::read_epoch(backend)?,
        })
    }
}

/// The configuration of a new store at `place` (a new random id, this format version).
fn new_config(place: &str, policy: Policy, retention: Retention) -> StoreConfig {
    let mut store_id = [0u8; 16];
    let seed = format!("{place}{}{}", std::process::id(), crate::format::time::now_ns());
    store_id.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
    StoreConfig {
        store_id,
        created_ns: crate::format::time::now_ns(),
        policy,
        retention,
        format: FormatVersion::CURRENT,
    }
}

/// The store's configuration, checked, or `None` when it has none.
fn read_config(backend: &dyn Backend) -> Result<Option<StoreConfig>> {
    let key = Key::new(Key::CONFIG);
    let Some(bytes) = backend.read(&key)? else {
        return Ok(None);
    };
    decode_config(&bytes, &backend.describe(&key)).map(Some)
}

/// The configuration in `bytes`, read from the store file named `place`.
fn decode_config(bytes: &[u8], place: &str) -> Result<StoreConfig> {
    let what = format!("store config ({place})");
    let (format, payload) = envelope::open_versioned(Kind::Config, bytes, &what)?;
    StoreConfig::decode(&payload, format, &what)
}

/// A backend for the bucket prefix `at`, with the credentials the environment names.
fn remote_backend(at: &S3Location, options: &StoreOptions) -> Result<S3Backend> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut credentials = find_credentials(&|k| std::env::var(k).ok(), home.as_deref())?;
    // An AWS regional endpoint names the region requests must be signed for.
    if std::env::var_os("AWS_REGION").is_none()
        && let Some(region) = aws_region_of(&at.host)
    {
        credentials.region = region;
    }
    S3Backend::new(at, &credentials, &options.remote, PathBuf::new())
}

/// The region of an AWS regional endpoint host (`s3.eu-central-1.amazonaws.com`,
/// `s3-eu-west-1.amazonaws.com`, `s3.dualstack.us-west-2.amazonaws.com`).
fn aws_region_of(host: &str) -> Option<String> {
    let rest = host.strip_suffix(".amazonaws.com")?;
    let parts: Vec<&str> = rest.split('.').collect();
    let s3 = parts.iter().rposition(|p| *p == "s3" || p.starts_with("s3-"))?;
    let region = match parts[s3].strip_prefix("s3-") {
        Some(r) => r,
        None => parts.get(s3 + 1..)?.iter().copied().find(|p| *p != "dualstack")?,
    };
    (region.contains('-')
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    .then(|| region.to_string())
}

/// The local directory of remote store `at` (`<cache dir>/<store id>/`, with its spool
/// `tmp/`), created if missing.
fn local_state_dir(at: &S3Location, options: &StoreOptions, config: &StoreConfig) -> Result<PathBuf> {
    let cache = options
        .cache_dir
        .as_ref()
        .ok_or_else(|| Error::NoCacheDir { store: at.to_string() })?;
    let root = cache.join(config.short_id());
    fsio::ensure_dir(&root.join("tmp"))?;
    Ok(root)
}

/// Writes `config` atomically into the store, sealed with its format version.
pub(crate) fn write_config(backend: &dyn Backend, config: &StoreConfig) -> Result<()> {
    let sealed = envelope::seal_as(Kind::Config, config.format, &config.encode());
    backend.replace(&Key::new(Key::CONFIG), &sealed)
}

impl Store {
    /// The whole of store file `key`, which `referenced_by` refers to: `Missing` when it is not
    /// there.
    pub(crate) fn read_referenced(&self, key: &Key, what: &str, referenced_by: &str) -> Result<Vec<u8>> {
        self.backend().read(key)?.ok_or_else(|| Error::Missing {
            what: what.to_string(),
            referenced_by: referenced_by.to_string(),
        })
    }

    /// Store file `key` open for reads, which `referenced_by` refers to: `Missing` when it is
    /// not there.
    pub(crate) fn open_referenced(&self, key: &Key, what: &str, referenced_by: &str) -> Result<Box<dyn Blob>> {
        self.backend().open(key)?.ok_or_else(|| Error::Missing {
            what: what.to_string(),
            referenced_by: referenced_by.to_string(),
        })
    }
}

/// Reads exactly `len` bytes at `offset` of a store file.
fn read_exact(blob: &dyn Blob, offset: u64, len: usize, what: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    blob.read_exact_at(&mut buf, offset, Access::Random, what)?;
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
    fn aws_regional_endpoints_name_their_region() {
        assert_eq!(
            aws_region_of("s3.eu-central-1.amazonaws.com").as_deref(),
            Some("eu-central-1")
        );
        assert_eq!(
            aws_region_of("s3-eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            aws_region_of("s3.dualstack.us-west-2.amazonaws.com").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(aws_region_of("s3.amazonaws.com"), None);
        assert_eq!(aws_region_of("127.0.0.1"), None);
        assert_eq!(aws_region_of("minio.example.org"), None);
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
