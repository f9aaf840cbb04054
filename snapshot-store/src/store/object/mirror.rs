//! The on-disk frame cache of a remote store: for each data object read, a sparse local file
//! with the object's bytes at their own offsets (the header, index and trailer at once, each
//! frame once it was read), so that a frame read once, in any process, is not fetched again.
//!
//! A mirror is `<dir>/<xx>/<hex>`: `stored_len` bytes laid out as the object (never-read frames
//! are holes), then `u64 stored_len` and `blake3(key, 0x00, header, index, trailer)`. A mirror
//! whose tail does not match its name and parts is deleted; a frame is used only when its bytes
//! match the checksum the (matching) index gives, as when read from the store, so a damaged or
//! misplaced file is never believed. The directory is kept under a size bound by deleting the
//! mirrors least recently opened.

use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::object::{self as layout, HEADER_LEN, Index, TRAILER_LEN};
use crate::os::file::{self as fsio, read_exact_at, write_all_at};
use crate::store::backend::Key;

/// Bytes after a mirror's copy of the object: its length and the tag.
const TAIL: u64 = 8 + 32;

/// The frame cache of one store.
#[derive(Debug)]
pub(crate) struct FrameCache {
    dir: PathBuf,
    /// Bytes the mirrors may occupy on disk.
    limit: u64,
    /// Bytes they occupy (counted once, on the first write, then kept up to date).
    used: OnceLock<AtomicU64>,
}

/// The local copy of one data object.
#[derive(Debug)]
pub(crate) struct Mirror {
    file: File,
    cache: std::sync::Weak<FrameCache>,
}

impl FrameCache {
    /// A cache in `dir` (created when needed) of at most `limit` bytes.
    pub(crate) fn new(dir: PathBuf, limit: u64) -> FrameCache {
        FrameCache {
            dir,
            limit,
            used: OnceLock::new(),
        }
    }

    fn path(&self, key: &Key) -> PathBuf {
        let name = key.file_name();
        self.dir.join(name.get(..2).unwrap_or(name)).join(name)
    }

    /// The mirror of object `key` with its index and the object's length, if a valid one is
    /// there (an invalid one is removed).
    pub(crate) fn open(self: &std::sync::Arc<Self>, key: &Key, what: &str) -> Option<(Mirror, Index, u64)> {
        let path = self.path(key);
        let file = fs::OpenOptions::new().read(true).write(true).open(&path).ok()?;
        match read_parts(&file, key, what) {
            Some((index, stored_len)) => {
                // Opened now: the last to be evicted.
                let _ = file.set_modified(std::time::SystemTime::now());
                let mirror = Mirror {
                    file,
                    cache: std::sync::Arc::downgrade(self),
                };
                Some((mirror, index, stored_len))
            }
            None => {
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Starts the mirror of object `key` (`stored_len` bytes) with its header, index and
    /// trailer. `None` when the cache cannot be written (reading goes on without it).
    pub(crate) fn create(
        self: &std::sync::Arc<Self>,
        key: &Key,
        stored_len: u64,
        head: &[u8],
        index: &[u8],
        trailer: &[u8],
    ) -> Option<Mirror> {
        let path = self.path(key);
        let dir = path.parent()?;
        fs::create_dir_all(dir).ok()?;
        let (file, temp) = fsio::create_temp(dir, "mirror").ok()?;
        let index_offset = stored_len.checked_sub(TRAILER_LEN + index.len() as u64)?;
        let written = (|| {
            file.set_len(stored_len + TAIL)?;
            write_all_at(&file, head, 0)?;
            write_all_at(&file, index, index_offset)?;
            write_all_at(&file, trailer, stored_len - TRAILER_LEN)?;
            let mut tail = stored_len.to_le_bytes().to_vec();
            tail.extend_from_slice(&tag(key, head, index, trailer));
            write_all_at(&file, &tail, stored_len)?;
            fs::rename(&temp, &path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temp);
            return None;
        }
        self.added(head.len() as u64 + index.len() as u64 + trailer.len() as u64 + TAIL);
        let file = fs::OpenOptions::new().read(true).write(true).open(&path).ok()?;
        Some(Mirror {
            file,
            cache: std::sync::Arc::downgrade(self),
        })
    }

    /// Counts `bytes` more on disk, and evicts when over the limit.
    fn added(&self, bytes: u64) {
        let used = self
            .used
            .get_or_init(|| AtomicU64::new(self.scan().iter().map(|m| m.2).sum()));
        if used.fetch_add(bytes, Ordering::Relaxed) + bytes > self.limit {
            self.evict(used);
        }
    }

    /// Deletes the least recently opened mirrors until at most 80% of the limit is used.
    fn evict(&self, used: &AtomicU64) {
        let mut all = self.scan();
        all.sort_by_key(|m| m.1);
        let mut total: u64 = all.iter().map(|m| m.2).sum();
        let target = self.limit / 10 * 8;
        for (path, _, size) in all {
            if total <= target {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(size);
            }
        }
        used.store(total, Ordering::Relaxed);
    }

    /// Every mirror: its path, when it was last opened, and its size on disk.
    fn scan(&self) -> Vec<(PathBuf, std::time::SystemTime, u64)> {
        let mut out = Vec::new();
        for fan in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            for e in fs::read_dir(fan.path()).into_iter().flatten().flatten() {
                if let Ok(md) = e.metadata()
                    && md.is_file()
                {
                    let when = md.modified().unwrap_or(std::time::UNIX_EPOCH);
                    out.push((e.path(), when, on_disk(&md)));
                }
            }
        }
        out
    }
}

impl Mirror {
    /// The stored bytes of frame `f` (`i`) into `buf`, if the mirror has them.
    pub(crate) fn load(&self, f: &layout::Frame, i: usize, buf: &mut [u8], what: &str) -> bool {
        read_exact_at(&self.file, buf, f.stored_offset).is_ok() && layout::check_stored(f, i, buf, what).is_ok()
    }

    /// Keeps the stored bytes of a frame read from the store (best effort).
    pub(crate) fn keep(&self, f: &layout::Frame, stored: &[u8]) {
        if write_all_at(&self.file, stored, f.stored_offset).is_ok()
            && let Some(cache) = self.cache.upgrade()
        {
            cache.added(stored.len() as u64);
        }
    }
}

/// The index and length of the object a mirror file copies, when its tail matches `key` and
/// its parts.
fn read_parts(file: &File, key: &Key, what: &str) -> Option<(Index, u64)> {
    let len = file.metadata().ok()?.len();
    let stored_len = len.checked_sub(TAIL)?;
    let mut tail = [0u8; TAIL as usize];
    read_exact_at(file, &mut tail, stored_len).ok()?;
    if u64::from_le_bytes(tail[..8].try_into().ok()?) != stored_len || stored_len < HEADER_LEN + TRAILER_LEN {
        return None;
    }
    let mut head = [0u8; HEADER_LEN as usize];
    let mut trailer = [0u8; TRAILER_LEN as usize];
    read_exact_at(file, &mut head, 0).ok()?;
    read_exact_at(file, &mut trailer, stored_len - TRAILER_LEN).ok()?;
    let bounds = layout::read_bounds(&head, &trailer, stored_len, what).ok()?;
    let mut index = vec![0u8; usize::try_from(bounds.index_len).ok()?];
    read_exact_at(file, &mut index, bounds.index_offset).ok()?;
    if tail[8..] != tag(key, &head, &index, &trailer) {
        return None;
    }
    let index = layout::read_index(&bounds, &head, &index, &trailer, what).ok()?;
    Some((index, stored_len))
}

fn tag(key: &Key, head: &[u8], index: &[u8], trailer: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(key.as_str().as_bytes());
    h.update(&[0]);
    h.update(head);
    h.update(index);
    h.update(trailer);
    *h.finalize().as_bytes()
}

/// Bytes a file occupies on disk (its allocated blocks).
fn on_disk(md: &fs::Metadata) -> u64 {
    crate::os::meta::from_stat(md).blocks.saturating_mul(512)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::id::ObjectId;
    use crate::store::backend::{Access, Backend, Blob, LocalBackend};
    use crate::store::object::{DataObject, DataObjectWriter};
    use crate::testdata::pseudo;

    /// A store directory with one object of `data`, published.
    fn object(dir: &std::path::Path, data: &[u8]) -> (LocalBackend, ObjectId) {
        let backend = LocalBackend::new(dir);
        fs::create_dir_all(dir.join("tmp")).unwrap();
        let mut w = DataObjectWriter::create(&dir.join("tmp"), 3).unwrap();
        w.write(data).unwrap();
        let f = w.finish().unwrap();
        let key = Key::object(&f.id);
        backend
            .publish(&[crate::store::backend::Staged { temp: f.temp, key }])
            .unwrap();
        (backend, f.id)
    }

    /// A blob that fails every read: the store is not to be asked.
    #[derive(Debug)]
    struct Unreachable(u64);

    impl Blob for Unreachable {
        fn len(&self) -> u64 {
            self.0
        }
        fn read_exact_at(&self, _: &mut [u8], _: u64, _: Access, what: &str) -> crate::error::Result<()> {
            Err(crate::error::Error::corrupt(what, "the store was asked"))
        }
    }

    fn read_all(o: &DataObject) -> crate::error::Result<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..o.frames().len() {
            out.extend(o.read_frame(i, Access::Sequential)?);
        }
        Ok(out)
    }

    #[test]
    fn frames_read_once_come_from_the_mirror_and_damage_is_never_believed() {
        let dir = tempfile::tempdir().unwrap();
        let data = pseudo(300_000, 3);
        let (backend, id) = object(dir.path(), &data);
        let key = Key::object(&id);
        let cache = Arc::new(FrameCache::new(dir.path().join("frames"), 1 << 30));
        let blob = backend.open(&key).unwrap().unwrap();
        let len = blob.len();
        let first = DataObject::from_blob_mirrored(id, blob, "o".into(), &cache).unwrap();
        assert!(read_all(&first).unwrap() == data);
        // Another process: the index and every frame from the mirror, nothing from the store.
        let (mirror, index, stored) = cache.open(&key, "o").unwrap();
        assert_eq!(stored, len);
        let second = DataObject::from_mirror(id, Box::new(Unreachable(len)), "o".into(), mirror, index);
        assert!(read_all(&second).unwrap() == data);
        // A damaged frame is read from the store again (here: refused, so it shows).
        let path = cache.path(&key);
        let mut bytes = fs::read(&path).unwrap();
        bytes[200_000] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let (mirror, index, _) = cache.open(&key, "o").unwrap();
        let damaged = DataObject::from_mirror(id, Box::new(Unreachable(len)), "o".into(), mirror, index);
        let err = read_all(&damaged).unwrap_err();
        assert!(err.to_string().contains("the store was asked"), "{err}");
        // A mirror under another object's name, or with a damaged index, is removed.
        bytes[200_000] ^= 1;
        let other = Key::object(&ObjectId([7; 32]));
        fs::create_dir_all(cache.path(&other).parent().unwrap()).unwrap();
        fs::write(cache.path(&other), &bytes).unwrap();
        assert!(cache.open(&other, "o").is_none());
        assert!(!cache.path(&other).exists());
        let index_at = usize::try_from(len).unwrap() - 70;
        bytes[index_at] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(cache.open(&key, "o").is_none());
        assert!(!path.exists());
    }

    #[test]
    fn the_cache_stays_within_its_limit_dropping_the_least_recently_opened() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(FrameCache::new(dir.path().join("frames"), 1 << 20));
        let mut keys = Vec::new();
        for seed in 0..6 {
            let (backend, id) = object(&dir.path().join(format!("s{seed}")), &pseudo(300_000, seed));
            let key = Key::object(&id);
            let blob = backend.open(&key).unwrap().unwrap();
            let o = DataObject::from_blob_mirrored(id, blob, "o".into(), &cache).unwrap();
            read_all(&o).unwrap();
            keys.push(key);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let used: u64 = cache.scan().iter().map(|m| m.2).sum();
        assert!(used <= 1 << 20, "{used} bytes on disk");
        assert!(cache.path(keys.last().unwrap()).exists(), "the newest is kept");
        assert!(!cache.path(&keys[0]).exists(), "the oldest went first");
    }
}
