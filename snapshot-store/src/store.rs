//! A store directory: its layout, configuration, writer lock, and cached access to everything in
//! it. `Store` is cheap to clone and safe to share between threads; all caches are shared.
//!
//! ```text
//! STORE/
//!   config                  store id and default policy (envelope kind "conf")
//!   lock                    the writer lock (an OS file lock; holds the writer's pid)
//!   snapshots/<id>          snapshot manifests (kind "snap")
//!   versions/<xx>/<hex>     file version records, named by the content's blake3 (kind "vers")
//!   objects/<xx>/<hex>      data objects ("BKFSdata"), signatures ("sign"), extent maps ("xmap")
//!   xattrs                  empty marker: some snapshot records extended attributes
//!   tmp/                    files being written; anything here is garbage after a crash
//! ```

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

use crate::cache::ByteLru;
use crate::codec::{Decoder, Encoder};
use crate::envelope::{self, Kind};
use crate::error::{Error, IoContext, Result};
use crate::extent::ExtentMap;
use crate::fsio;
use crate::hashtree::{self, LeafBlock, TreeHeader, TreeTable};
use crate::id::{ObjectId, VersionId};

/// Name of the marker file created before the first snapshot with extended attributes commits.
const XATTRS_MARKER: &str = "xattrs";
use crate::object::{Access, DataObject};
use crate::policy::Policy;
use crate::signature::{Signature, SignatureRecord};
use crate::snapshot::{FileContent, Snapshot, SnapshotId, Storage};
use crate::version::FileVersion;

/// Default bytes of decoded frames kept in memory.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;
/// Open data objects kept.
const OPEN_OBJECTS: usize = 512;

/// The store's configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Unique id of this store (blake3 of its path, the creating process and the time).
    pub store_id: [u8; 16],
    /// Creation time, ns since the epoch.
    pub created_ns: i64,
    /// The default policy for `write`.
    pub policy: Policy,
}

impl StoreConfig {
    fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.raw(&self.store_id);
        e.i64(self.created_ns);
        self.policy.encode(&mut e);
        e.into_bytes()
    }

    fn decode(payload: &[u8], what: &str) -> Result<Self> {
        let mut d = Decoder::new(payload, what);
        let mut store_id = [0u8; 16];
        store_id.copy_from_slice(d.take(16)?);
        let created_ns = d.i64()?;
        let policy = Policy::decode(&mut d)?;
        d.finish()?;
        Ok(StoreConfig {
            store_id,
            created_ns,
            policy,
        })
    }
}

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
    /// Creates a store in `root` (which must be missing or empty) with `policy` as its default.
    pub fn init(root: &Path, policy: Policy) -> Result<Store> {
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
        let seed = format!("{:?}{}{}", root, std::process::id(), crate::timefmt::now_ns());
        store_id.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..16]);
        let config = StoreConfig {
            store_id,
            created_ns: crate::timefmt::now_ns(),
            policy,
        };
        let sealed = envelope::seal(Kind::Config, &config.encode());
        fsio::write_atomic(&root.join("config"), &root.join("tmp"), &sealed)?;
        fsio::sync_dir(root)?;
        Store::open(root)
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
        let config = StoreConfig::decode(&envelope::open(Kind::Config, &bytes, &what)?, &what)?;
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
        Ok(Store {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                config,
                frames: ByteLru::new(options.cache_bytes),
                objects: Mutex::new(LruCache::new(n(OPEN_OBJECTS))),
                versions: ByteLru::new((options.cache_bytes / 8).max(8 << 20)),
                maps: ByteLru::new((options.cache_bytes / 2).max(16 << 20)),
                signatures: ByteLru::new(256 << 20),
                trees: ByteLru::new(256 << 20),
                signature_chains: Mutex::new(std::collections::HashMap::new()),
                snapshots: ByteLru::new((options.cache_bytes / 2).max(32 << 20)),
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
    pub fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    /// Path of an object.
    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        let hex = id.to_hex();
        self.inner.root.join("objects").join(&hex[..2]).join(hex)
    }

    /// Path of a version record.
    pub fn version_path(&self, id: &VersionId) -> PathBuf {
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
    pub fn has_object(&self, id: &ObjectId) -> bool {
        self.object_path(id).exists()
    }

    /// True when version record `id` is in the store.
    pub fn has_version(&self, id: &VersionId) -> bool {
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
            many => Err(Error::InvalidArgument(format!(
                "snapshot {name:?} is ambiguous: it matches {} snapshots ({} … {})",
                many.len(),
                many.first().map(|s| s.as_str()).unwrap_or_default(),
                many.last().map(|s| s.as_str()).unwrap_or_default()
            ))),
        }
    }

    /// Loads (or returns the cached) snapshot `id`.
    pub fn snapshot(&self, id: &SnapshotId) -> Result<Arc<Snapshot>> {
        if let Some(s) = self.inner.snapshots.get(id) {
            return Ok(s);
        }
        let path = self.snapshot_path(id);
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::SnapshotNotFound { id: id.to_string() }
            } else {
                Error::io(&path, e)
            }
        })?;
        let what = format!("snapshot {id} ({})", path.display());
        let snap = Snapshot::decode(&envelope::open(Kind::Snapshot, &bytes, &what)?, &what)?;
        if snap.id != *id {
            return Err(Error::corrupt(
                what,
                format!("manifest says it is snapshot {}", snap.id),
            ));
        }
        let size = snap.memory_bytes();
        Ok(self.inner.snapshots.insert(id.clone(), Arc::new(snap), size))
    }

    /// Loads (or returns the cached) version record `id`.
    pub fn version(&self, id: &VersionId) -> Result<Arc<FileVersion>> {
        if let Some(v) = self.inner.versions.get(id) {
            return Ok(v);
        }
        let path = self.version_path(id);
        let what = format!("file version {} ({})", id.short(), path.display());
        let bytes = fs::read(&path).map_err(|e| missing_or_io(&path, e, &what, "a snapshot or a later version"))?;
        let v = FileVersion::decode(&envelope::open(Kind::Version, &bytes, &what)?, id, &what)?;
        let size = v.memory_bytes();
        Ok(self.inner.versions.insert(*id, Arc::new(v), size))
    }

    /// Reads and opens an envelope object (signature or extent map) `id` of `kind`.
    fn envelope_object(&self, id: &ObjectId, kind: Kind) -> Result<(Vec<u8>, String)> {
        let path = self.object_path(id);
        let what = format!("{} {} ({})", kind.noun(), id.short(), path.display());
        let bytes = fs::read(&path).map_err(|e| missing_or_io(&path, e, &what, "a file version"))?;
        Ok((envelope::open(kind, &bytes, &what)?, what))
    }

    /// Loads signature record `id` without resolving runs.
    pub fn signature_record(&self, id: &ObjectId) -> Result<SignatureRecord> {
        let (payload, what) = self.envelope_object(id, Kind::Signature)?;
        SignatureRecord::decode(&payload, &what)
    }

    /// Loads (or returns the cached) complete signature `id`, following run-encoded bases.
    pub fn signature(&self, id: &ObjectId) -> Result<Arc<Signature>> {
        if let Some(s) = self.inner.signatures.get(id) {
            return Ok(s);
        }
        // Walk down to a cached or self-contained signature, then resolve upwards.
        let mut chain = Vec::new();
        let mut at = *id;
        let mut base: Option<Arc<Signature>> = None;
        loop {
            if let Some(s) = self.inner.signatures.get(&at) {
                base = Some(s);
                break;
            }
            let rec = self.signature_record(&at)?;
            self.inner.signature_chains.lock().insert(at, rec.chain);
            let next = rec.base;
            chain.push((at, rec));
            match next {
                Some(b) if chain.len() <= u16::MAX as usize => at = b,
                Some(_) => {
                    return Err(Error::corrupt(format!("signature {}", id.short()), "base chain loops"));
                }
                None => break,
            }
        }
        // The runs of every level are composed first and each block is copied once, so a long
        // chain costs no more than a short one; only the requested signature is kept (cached).
        let Some((_, top)) = chain.first() else {
            return base.ok_or_else(|| Error::corrupt(format!("signature {}", id.short()), "empty chain"));
        };
        let (block_size, file_size) = (top.block_size, top.file_size);
        let what = format!("signature object {}", id.short());
        let bottom = base.as_ref().map(|b| b.blocks.as_slice());
        let mut levels: Vec<_> = chain.into_iter().map(|(_, rec)| rec.runs).collect();
        let blocks = match levels.len() {
            // One level: its runs resolve by moving the new blocks, not copying them.
            1 => crate::runs::resolve_runs(levels.pop().unwrap_or_default(), bottom, &what)?,
            _ => crate::runs::resolve_chain(&levels, bottom, &what)?,
        };
        drop(levels);
        let sig = Signature::new(block_size, blocks);
        if sig.file_size() != file_size {
            return Err(Error::corrupt(what, "block lengths do not add up to the file size"));
        }
        let size = sig.memory_bytes();
        Ok(self.inner.signatures.insert(*id, Arc::new(sig), size))
    }

    /// The `chain` field of signature `id` (run-encoded levels above a complete signature),
    /// remembered from an earlier [`Store::signature`] call where possible.
    pub fn signature_chain(&self, id: &ObjectId) -> Result<u16> {
        if let Some(&c) = self.inner.signature_chains.lock().get(id) {
            return Ok(c);
        }
        let chain = self.signature_record(id)?.chain;
        self.inner.signature_chains.lock().insert(*id, chain);
        Ok(chain)
    }

    /// Loads (or returns the cached) table of hash tree `id`: its header, references and regions,
    /// read without its leaf blocks, checked by merging the region values to the version id the
    /// header names (callers compare that id with their version's).
    pub fn tree_table(&self, id: &ObjectId) -> Result<Arc<TreeTable>> {
        if let Some(t) = self.inner.trees.get(id) {
            return Ok(t);
        }
        let path = self.object_path(id);
        let what = format!("{} {} ({})", Kind::HashTree.noun(), id.short(), path.display());
        let file = fs::File::open(&path).map_err(|e| missing_or_io(&path, e, &what, "a file version"))?;
        let file_len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let base = envelope::PAYLOAD_OFFSET;
        let head = read_exact(&file, &path, 0, (base + hashtree::TREE_HEADER) as usize, &what)?;
        let (env, tree) = head.split_at(base as usize);
        let payload_len = envelope::open_header(Kind::HashTree, env, file_len, &what)?;
        let header = TreeHeader::decode(tree, &what)?;
        if header.payload_len() != payload_len {
            return Err(Error::corrupt(&what, "payload length disagrees with its header"));
        }
        let table = read_exact(
            &file,
            &path,
            base + header.table_offset(),
            header.table_len() as usize,
            &what,
        )?;
        let mut table = TreeTable::decode(*id, header, &table, &what)?;
        if let Some(r) = hashtree::root_block(table.leaf_count()) {
            let block = self.leaf_block(&table, r, &what)?;
            table.root_leaves = Some((r, block));
        }
        let root = table.root(table.root_leaves.as_ref().map(|(_, b)| b));
        if root.is_some_and(|r| r != header.version) {
            return Err(Error::ChecksumMismatch {
                what: format!("{what}: its regions"),
                expected: header.version.short(),
                got: root.map(|r| r.short()).unwrap_or_default(),
            });
        }
        let size = table.regions.len() * 40 + table.refs.len() * 32 + 256;
        Ok(self.inner.trees.insert(*id, Arc::new(table), size))
    }

    /// The leaf values of region `r` of a tree, from whichever tree object holds them; a full
    /// region's block is checked against the region's value.
    pub fn tree_block(&self, table: &TreeTable, r: u64) -> Result<LeafBlock> {
        if let Some((root_r, block)) = &table.root_leaves
            && *root_r == r
        {
            return Ok(*block);
        }
        let what = format!("{} {}", Kind::HashTree.noun(), table.id.short());
        if !table.is_full(r) {
            return Err(Error::corrupt(what, format!("region {r} is not a full region")));
        }
        self.leaf_block(table, r, &what)
    }

    fn leaf_block(&self, table: &TreeTable, r: u64, what: &str) -> Result<LeafBlock> {
        let (oid, slot) = table
            .location(r)
            .ok_or_else(|| Error::corrupt(what, format!("no region {r}")))?;
        let path = self.object_path(&oid);
        let bwhat = format!(
            "{} {} ({}), block {slot}",
            Kind::HashTree.noun(),
            oid.short(),
            path.display()
        );
        let referrer = format!("hash-tree object {}", table.id.short());
        let file = fs::File::open(&path).map_err(|e| missing_or_io(&path, e, &bwhat, &referrer))?;
        let at = envelope::PAYLOAD_OFFSET + hashtree::TREE_HEADER + u64::from(slot) * hashtree::BLOCK_BYTES;
        let bytes = read_exact(&file, &path, at, hashtree::BLOCK_BYTES as usize, &bwhat)?;
        let block = hashtree::decode_block(&bytes).ok_or_else(|| Error::corrupt(&bwhat, "short block"))?;
        if table.is_full(r) {
            let expected = table.regions.get(r as usize).map(|e| e.cv).unwrap_or_default();
            if hashtree::region_cv(&block) != expected {
                return Err(Error::ChecksumMismatch {
                    what: format!("{bwhat}: region {r} of hash-tree object {}", table.id.short()),
                    expected: crate::envelope::hex8(&expected),
                    got: crate::envelope::hex8(&hashtree::region_cv(&block)),
                });
            }
        }
        Ok(block)
    }

    /// Opens (or returns the cached) data object `id`.
    pub fn data_object(&self, id: &ObjectId) -> Result<Arc<DataObject>> {
        if let Some(o) = self.inner.objects.lock().get(id) {
            return Ok(Arc::clone(o));
        }
        let o = Arc::new(DataObject::open(*id, &self.object_path(id))?);
        self.inner.objects.lock().put(*id, Arc::clone(&o));
        Ok(o)
    }

    /// Frame `frame` of data object `obj`, decoded and verified, from the shared cache (read
    /// from disk as `access` says on a miss).
    pub fn frame(&self, obj: &DataObject, frame: u32, access: Access) -> Result<Arc<Vec<u8>>> {
        self.inner.frames.get_or_try_insert((obj.id(), frame), || {
            let data = obj.read_frame(frame as usize, access)?;
            let n = data.len();
            Ok((data, n))
        })
    }

    /// True when frame `frame` of `obj` is in the shared cache.
    pub fn frame_cached(&self, obj: &DataObject, frame: u32) -> bool {
        self.inner.frames.contains(&(obj.id(), frame))
    }

    /// Loads an extent-map checkpoint object.
    pub fn map_checkpoint(&self, id: &ObjectId) -> Result<ExtentMap> {
        let (payload, what) = self.envelope_object(id, Kind::ExtentMap)?;
        ExtentMap::decode(&payload, &what)
    }

    /// The flattened extent map of chain version `id`, composed from the nearest checkpoint or
    /// full along its base links, and cached.
    pub fn extent_map(&self, id: &VersionId) -> Result<Arc<ExtentMap>> {
        if let Some(m) = self.inner.maps.get(id) {
            return Ok(m);
        }
        let mut chain: Vec<Arc<FileVersion>> = Vec::new();
        let mut at = *id;
        let mut base_map: Option<Arc<ExtentMap>> = None;
        loop {
            if let Some(m) = self.inner.maps.get(&at) {
                base_map = Some(m);
                break;
            }
            let v = self.version(&at)?;
            if let Some(cp) = v.map_checkpoint {
                let map = self.map_checkpoint(&cp)?;
                if map.size() != v.size {
                    return Err(Error::corrupt(
                        format!("extent-map object {}", cp.short()),
                        "size disagrees with its version",
                    ));
                }
                let size = map.memory_bytes();
                base_map = Some(self.inner.maps.insert(at, Arc::new(map), size));
                break;
            }
            let next = v.base;
            chain.push(v);
            match next {
                Some(b) if chain.len() <= 1 << 20 => at = b,
                Some(_) => {
                    return Err(Error::corrupt(
                        format!("file version {}", id.short()),
                        "base chain loops",
                    ));
                }
                None => break,
            }
        }
        while let Some(v) = chain.pop() {
            let what = format!("file version {}", v.id.short());
            if let Some(b) = &base_map
                && v.base.is_some()
                && v.ops.iter().any(
                    |op| matches!(op, crate::delta::DeltaOp::Copy { base_offset, len } if base_offset + len > b.size()),
                )
            {
                return Err(Error::corrupt(what, "copies past the end of its base"));
            }
            let map = ExtentMap::compose(&v.ops, v.literal, base_map.as_deref(), &what)?;
            let size = map.memory_bytes();
            base_map = Some(self.inner.maps.insert(v.id, Arc::new(map), size));
        }
        base_map.ok_or_else(|| Error::corrupt(format!("file version {}", id.short()), "empty chain"))
    }

    /// The extent map of a regular file's content of `size` bytes.
    pub fn content_map(&self, content: &FileContent, size: u64) -> Result<Arc<ExtentMap>> {
        let map = match content.storage {
            Storage::Whole => {
                let obj = self.data_object(&content.version.as_object())?;
                if obj.logical_len() != size {
                    return Err(Error::corrupt(
                        obj.describe(),
                        format!("holds {} bytes, but the file has {size}", obj.logical_len()),
                    ));
                }
                Arc::new(ExtentMap::whole(content.version.as_object(), size))
            }
            Storage::Chain => self.extent_map(&content.version)?,
        };
        if map.size() != size {
            return Err(Error::corrupt(
                format!("file version {}", content.version.short()),
                format!("has {} bytes, but the snapshot entry says {size}", map.size()),
            ));
        }
        Ok(map)
    }

    /// Opens a regular file's content for reading.
    pub fn open_content(&self, content: &FileContent, size: u64) -> Result<crate::read::FileReader> {
        Ok(crate::read::FileReader::new(
            self.clone(),
            content.version,
            self.content_map(content, size)?,
        ))
    }

    /// Cache statistics: (frame hits, frame misses, frame bytes cached).
    pub fn cache_stats(&self) -> (u64, u64, usize) {
        let (h, m) = self.inner.frames.stats();
        (h, m, self.inner.frames.bytes())
    }

    /// Takes the writer lock, waiting for another writer to finish if `wait` is set.
    pub fn lock_writer(&self, wait: bool) -> Result<WriterLock> {
        let path = self.inner.root.join("lock");
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                if !wait {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    return Err(Error::Locked {
                        path: self.inner.root.clone(),
                        holder: Some(holder.trim().to_string()).filter(|h| !h.is_empty()),
                    });
                }
                file.lock().at(&path)?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {}", std::process::id());
        let _ = file.flush();
        Ok(WriterLock { _file: file })
    }

    /// Removes temporary files left by interrupted writers (call with the writer lock held).
    pub fn clean_tmp(&self, _lock: &WriterLock) -> Result<u64> {
        let dir = self.tmp_dir();
        let mut n = 0;
        for e in fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            if fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Proof that this process is the store's only writer; released on drop.
#[derive(Debug)]
pub struct WriterLock {
    _file: fs::File,
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
    let got = crate::source::read_full_at(file, &mut buf, offset).map_err(|e| Error::io(path, e))?;
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
