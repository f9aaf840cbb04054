//! Local copies of a remote store's small files (manifests, version records, signatures,
//! extent maps, hash trees), so that what was read or written once is not fetched again: a
//! daily write finds yesterday's manifest, records and signatures here. Larger files and data
//! objects (whose frames the frame cache keeps) get a marker (`<name>.present`), so that their
//! existence is not asked again.
//!
//! Every entry is the file's bytes followed by the blake3 of its key and bytes; an entry that
//! does not match is deleted and fetched again, so a damaged or misplaced cache file is never
//! used. Entries are added only after the remote store acknowledged the file (a file that is
//! cached exists remotely), and the whole directory may be deleted at any time.
//!
//! Entries live in a directory named by the store's cache epoch (`<dir>/<epoch>/<key>`), which
//! `forget` and `prune` make odd before they delete or replace any store file and even again
//! when done: an entry is made and used only at an even epoch, and only in the directory of the
//! epoch that was current when the remote store was asked, so no entry vouches for a file
//! deleted or replaced since. Until the epoch is known ([`Backend::observe_epoch`]), and while
//! it is odd, nothing is cached; a new one removes the entries of the others.

use std::fs;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use super::{Access, Backend, Blob, Key, LockHold, PutOutcome, ReaderHold, RemoteStats, Staged};
use crate::error::{Error, Result};
use crate::format::magic;
use crate::os::file as fsio;
use crate::store::LiveReader;

/// Files up to this size are kept (data objects never: see [`DiskCache::store`]). Signatures
/// grow with their files (about 5 MiB for 1 GiB of mail), and a daily write needs each changed
/// file's: those of files up to about 50 GiB are kept.
const SMALL: u64 = 256 << 20;
/// Bytes after an entry's content: blake3(key, content).
const CHECK: usize = 32;

/// A remote backend with a cache directory in front.
#[derive(Debug)]
pub(crate) struct DiskCache {
    inner: Box<dyn Backend>,
    dir: PathBuf,
    /// The directory of the entries of the store's current epoch, while it is known and even.
    current: RwLock<Option<PathBuf>>,
}

impl DiskCache {
    /// `inner` with its small files cached in `dir` (created when needed), once the store's
    /// epoch is observed.
    pub(crate) fn new(inner: Box<dyn Backend>, dir: PathBuf) -> DiskCache {
        DiskCache {
            inner,
            dir,
            current: RwLock::new(None),
        }
    }

    /// Store file `key` open, from the cache when it holds it; `small` is the length the
    /// caller expects at most, if it knows one.
    fn open_expecting(&self, key: &Key, small: Option<u64>) -> Result<Option<Box<dyn Blob>>> {
        if let Some(bytes) = self.load(key) {
            return Ok(Some(Box::new(MemoryBlob(bytes))));
        }
        let dir = self.dir_now();
        let blob = match small {
            Some(len) => self.inner.open_small(key, len)?,
            None => self.inner.open(key)?,
        };
        match blob.as_ref().map(|b| b.whole()) {
            Some(Some(whole)) => self.store(&dir, key, whole),
            Some(None) => self.mark(&dir, key),
            None => {}
        }
        Ok(blob)
    }

    /// True for the files kept: those written once and never changed in place (manifests,
    /// version records, objects); never `config`, locks or prune's state.
    fn cacheable(key: &Key) -> bool {
        ["snapshots/", "versions/", "objects/"]
            .iter()
            .any(|d| key.as_str().starts_with(d))
    }

    /// The directory of the current epoch's entries, while it is known and even.
    fn dir_now(&self) -> Option<PathBuf> {
        self.current.read().clone()
    }

    /// Where the entry of `key` is in the current epoch's directory.
    fn entry_path(&self, key: &Key) -> Option<PathBuf> {
        Some(entry_in(&self.dir_now()?, key))
    }

    /// True while `dir` is still the current epoch's directory: what was learnt while it was
    /// may be kept there.
    fn still(&self, dir: &Option<PathBuf>) -> Option<PathBuf> {
        dir.clone().filter(|d| self.current.read().as_ref() == Some(d))
    }

    /// The cached bytes of `key`, if a valid entry is there (an invalid one is removed).
    fn load(&self, key: &Key) -> Option<Vec<u8>> {
        if !DiskCache::cacheable(key) {
            return None;
        }
        let path = self.entry_path(key)?;
        let mut bytes = fs::read(&path).ok()?;
        let split = bytes.len().checked_sub(CHECK)?;
        if bytes.get(split..) == Some(&check(key, &bytes[..split])[..]) {
            bytes.truncate(split);
            return Some(bytes);
        }
        let _ = fs::remove_file(&path);
        None
    }

    /// Keeps `bytes` as the entry of `key`, learnt while `dir` was the current epoch's
    /// directory (best effort: a cache that cannot be written is only slower). Data objects are
    /// only marked: their frames have a cache of their own, bounded in size.
    fn store(&self, dir: &Option<PathBuf>, key: &Key, bytes: &[u8]) {
        if bytes.starts_with(magic::DATA) {
            return self.mark(dir, key);
        }
        if bytes.len() as u64 > SMALL || !DiskCache::cacheable(key) {
            return;
        }
        let Some(dir) = self.still(dir) else { return };
        let path = entry_in(&dir, key);
        let Some(dir) = path.parent() else { return };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        let Ok((mut f, temp)) = fsio::create_temp(dir, "entry") else {
            return;
        };
        let written = std::io::Write::write_all(&mut f, bytes)
            .and_then(|()| std::io::Write::write_all(&mut f, &check(key, bytes)));
        drop(f);
        if written.is_err() || fs::rename(&temp, &path).is_err() {
            let _ = fs::remove_file(&temp);
        }
    }

    /// Notes that `key` exists remotely (learnt while `dir` was current), for a file too large
    /// to keep or a data object.
    fn mark(&self, dir: &Option<PathBuf>, key: &Key) {
        if !DiskCache::cacheable(key) {
            return;
        }
        let Some(dir) = self.still(dir) else { return };
        let path = marker_of(entry_in(&dir, key));
        if path.is_file() {
            return;
        }
        if let Some(dir) = path.parent()
            && fs::create_dir_all(dir).is_ok()
        {
            let _ = fs::write(&path, check(key, b""));
        }
    }

    fn marker_path(&self, key: &Key) -> Option<PathBuf> {
        Some(marker_of(self.entry_path(key)?))
    }

    /// True when an entry or a valid marker says `key` exists remotely.
    fn vouches(&self, key: &Key) -> bool {
        let (Some(entry), Some(marker)) = (self.entry_path(key), self.marker_path(key)) else {
            return false;
        };
        DiskCache::cacheable(key) && (entry.is_file() || fs::read(marker).is_ok_and(|m| m == check(key, b"")))
    }

    /// Removes what is cached of `key`.
    fn forget(&self, key: &Key) {
        for path in [self.entry_path(key), self.marker_path(key)].into_iter().flatten() {
            let _ = fs::remove_file(path);
        }
    }

    /// The files of `files` to keep (small, not data objects), read before publication removes
    /// them from the spool.
    fn small_ones(files: &[Staged]) -> Vec<(Key, Vec<u8>)> {
        let keep = |f: &Staged| {
            use std::io::Read;
            let small = fs::metadata(&f.temp).is_ok_and(|m| m.len() <= SMALL);
            let mut head = [0u8; 8];
            let data = fs::File::open(&f.temp)
                .and_then(|mut file| file.read_exact(&mut head))
                .is_ok()
                && &head == magic::DATA;
            small && !data
        };
        (files.iter())
            .filter(|f| keep(f))
            .filter_map(|f| Some((f.key.clone(), fs::read(&f.temp).ok()?)))
            .collect()
    }
}

/// The entry of `key` in directory `dir`.
fn entry_in(dir: &Path, key: &Key) -> PathBuf {
    let mut p = dir.to_path_buf();
    p.extend(key.as_str().split('/'));
    p
}

/// The marker beside entry path `entry`.
fn marker_of(mut entry: PathBuf) -> PathBuf {
    entry.as_mut_os_string().push(".present");
    entry
}

fn check(key: &Key, bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(key.as_str().as_bytes());
    h.update(&[0]);
    h.update(bytes);
    *h.finalize().as_bytes()
}

impl Backend for DiskCache {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn describe(&self, key: &Key) -> String {
        self.inner.describe(key)
    }

    fn spool_dir(&self) -> &Path {
        self.inner.spool_dir()
    }

    fn read(&self, key: &Key) -> Result<Option<Vec<u8>>> {
        if let Some(b) = self.load(key) {
            return Ok(Some(b));
        }
        let dir = self.dir_now();
        let got = self.inner.read(key)?;
        if let Some(b) = &got {
            self.store(&dir, key, b);
        }
        Ok(got)
    }

    fn open(&self, key: &Key) -> Result<Option<Box<dyn Blob>>> {
        self.open_expecting(key, None)
    }

    fn open_small(&self, key: &Key, len: u64) -> Result<Option<Box<dyn Blob>>> {
        self.open_expecting(key, Some(len))
    }

    fn exists(&self, key: &Key) -> Result<bool> {
        if self.vouches(key) {
            return Ok(true);
        }
        let dir = self.dir_now();
        let there = self.inner.exists(key)?;
        if there {
            self.mark(&dir, key);
        }
        Ok(there)
    }

    fn known(&self, key: &Key) -> Option<bool> {
        self.vouches(key).then_some(true)
    }

    fn list(&self, dir: &str) -> Result<Vec<(Key, u64)>> {
        self.inner.list(dir)
    }

    fn publish(&self, files: &[Staged]) -> Result<()> {
        let small = DiskCache::small_ones(files);
        let dir = self.dir_now();
        self.inner.publish(files)?;
        for f in files {
            self.mark(&dir, &f.key);
        }
        for (key, bytes) in small {
            self.store(&dir, &key, &bytes);
        }
        Ok(())
    }

    fn publish_one(&self, file: &Staged) -> Result<PutOutcome> {
        let small = DiskCache::small_ones(std::slice::from_ref(file));
        let dir = self.dir_now();
        let outcome = self.inner.publish_one(file)?;
        if outcome == PutOutcome::Created {
            for (key, bytes) in small {
                self.store(&dir, &key, &bytes);
            }
        }
        Ok(outcome)
    }

    fn create(&self, key: &Key, bytes: &[u8]) -> Result<PutOutcome> {
        let dir = self.dir_now();
        let outcome = self.inner.create(key, bytes)?;
        if outcome == PutOutcome::Created {
            self.store(&dir, key, bytes);
        }
        Ok(outcome)
    }

    fn replace(&self, key: &Key, bytes: &[u8]) -> Result<()> {
        self.forget(key);
        self.inner.replace(key, bytes)
    }

    fn read_current(&self, key: &Key) -> Result<Option<Vec<u8>>> {
        self.inner.read_current(key)
    }

    fn read_head(&self, key: &Key, len: usize) -> Result<Option<Vec<u8>>> {
        if let Some(bytes) = self.load(key) {
            return Ok(Some(bytes[..len.min(bytes.len())].to_vec()));
        }
        self.inner.read_head(key, len)
    }

    fn delete(&self, key: &Key) -> Result<()> {
        self.forget(key);
        self.inner.delete(key)
    }

    fn flush_deletes(&self, dir: &str) -> Result<()> {
        self.inner.flush_deletes(dir)
    }

    fn register_reader(&self, generation: u64) -> Result<Box<dyn ReaderHold>> {
        self.inner.register_reader(generation)
    }

    fn live_readers(&self, own: Option<&str>) -> Result<Vec<LiveReader>> {
        self.inner.live_readers(own)
    }

    fn tidy(&self) {
        self.inner.tidy();
    }

    fn observe_epoch(&self, epoch: u64) {
        let dir = epoch.is_multiple_of(2).then(|| self.dir.join(epoch.to_string()));
        if *self.current.read() == dir && dir.is_some() {
            return;
        }
        *self.current.write() = dir;
        // Entries of other epochs (and of caches laid out before epochs) may name files
        // deleted or replaced since.
        let keep = std::ffi::OsString::from(epoch.to_string());
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.file_name() != keep {
                let path = e.path();
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
        self.inner.observe_epoch(epoch);
    }

    fn lock(&self, wait: bool) -> Result<Box<dyn LockHold>> {
        self.inner.lock(wait)
    }

    fn remote_stats(&self) -> Option<RemoteStats> {
        self.inner.remote_stats()
    }
}

/// A cached file, whole in memory.
#[derive(Debug)]
struct MemoryBlob(Vec<u8>);

impl Blob for MemoryBlob {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64, _access: Access, what: &str) -> Result<()> {
        let end = offset as usize + buf.len();
        let src = (self.0.get(offset as usize..end))
            .ok_or_else(|| Error::corrupt(what, format!("truncated (ends before byte {end})")))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn whole(&self) -> Option<&[u8]> {
        Some(&self.0)
    }
}
