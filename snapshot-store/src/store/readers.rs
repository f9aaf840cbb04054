//! Reader registrations and the prune generation: how `prune` knows whether a reader may still
//! use a file it condemned.
//!
//! `prune/generation` holds a number that `prune` raises each time it condemns files (after
//! making them unreachable). A reader registers by creating `readers/<pid>-<nonce>` holding an
//! OS file lock on it for its lifetime, and writing there the generation it read *before*
//! reading anything else; a reader that drops its caches and re-reads the generation (a mount
//! does, within a second of a prune) writes the new one. A file condemned at generation `g` can
//! be deleted once no live reader shows a generation below `g`: every reader either started or
//! refreshed after the file became unreachable. A registration whose lock can be taken belongs to
//! a reader that is gone.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::Store;
use crate::error::{Error, IoContext, Result};
use crate::os::file as fsio;

/// Directory of reader registrations.
pub(crate) const READERS_DIR: &str = "readers";
/// Directory of prune's state.
pub(crate) const PRUNE_DIR: &str = "prune";
/// The prune generation's file inside [`PRUNE_DIR`].
const GENERATION_FILE: &str = "generation";
/// Bytes of a registration: 20 decimal digits and a newline, rewritten in place.
const REGISTRATION_LEN: usize = 21;

/// This process's registration as a reader; removed when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    file: File,
    path: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A registered reader as `prune` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveReader {
    /// Its registration's file name (`<pid>-<nonce>`).
    pub name: String,
    /// The generation it last caught up with.
    pub generation: u64,
}

impl Store {
    /// Path of the prune generation file.
    fn generation_path(&self) -> PathBuf {
        self.root().join(PRUNE_DIR).join(GENERATION_FILE)
    }

    /// The current prune generation (0 before the first prune that condemned anything).
    pub fn generation(&self) -> Result<u64> {
        read_generation(self.root())
    }

    /// Raises the prune generation to `generation` (writer lock held).
    pub(crate) fn set_generation(&self, _lock: &super::WriterLock, generation: u64) -> Result<()> {
        let dir = self.root().join(PRUNE_DIR);
        fsio::ensure_dir(&dir)?;
        fsio::write_atomic(
            &self.generation_path(),
            &self.tmp_dir(),
            format!("{generation}\n").as_bytes(),
        )?;
        fsio::sync_dir(&dir)
    }

    /// Registers this process as a reader of the store (see the module doc), so that `prune`
    /// keeps what it reads until it lets go. Call before reading anything; a store that cannot
    /// be written to (read-only media) is read unregistered. Idempotent.
    pub fn register_reader(&self) -> Result<()> {
        let mut slot = self.inner.registration.lock();
        if slot.is_some() {
            return Ok(());
        }
        match register(self) {
            Ok(r) => *slot = Some(r),
            Err(e)
                if matches!(
                    e.io_kind(),
                    Some(io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem)
                ) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// For a long-running reader: if a prune condemned files since this store was opened or
    /// last refreshed, drops every cached record, map, signature, tree and manifest (so what is
    /// read next comes from the store as it is now) and, when registered, tells `prune` so.
    /// Returns true when it did. Readers holding an extent map from before keep reading through
    /// it; the objects it names stay readable while they are open, and others may be gone.
    pub fn refresh_after_prune(&self) -> Result<bool> {
        let now = self.generation()?;
        let slot = self.inner.registration.lock();
        if self.inner.seen_generation.load(Ordering::Acquire) >= now {
            return Ok(false);
        }
        self.drop_record_caches();
        if let Some(reg) = slot.as_ref() {
            write_generation(&reg.file, &reg.path, now)?;
        }
        self.inner.seen_generation.store(now, Ordering::Release);
        Ok(true)
    }

    /// The registered readers that are still running (with the writer lock held); removes the
    /// registrations of readers that are gone.
    pub(crate) fn live_readers(&self, _lock: &super::WriterLock) -> Result<Vec<LiveReader>> {
        let dir = self.root().join(READERS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let own = self.inner.registration.lock().as_ref().map(|r| r.path.clone());
        let mut live = Vec::new();
        for e in entries {
            let e = e.at(&dir)?;
            let path = e.path();
            if own.as_ref() == Some(&path) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(file) = fs::OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            match file.try_lock() {
                Ok(()) => {
                    // Its reader is gone: nobody holds the lock.
                    let _ = fs::remove_file(&path);
                }
                Err(fs::TryLockError::WouldBlock) if !name.starts_with('.') => {
                    let text = fs::read_to_string(&path).unwrap_or_default();
                    // An unreadable number counts as 0: that reader holds everything back.
                    let generation = text.trim().parse().unwrap_or(0);
                    live.push(LiveReader { name, generation });
                }
                // A reader still registering: it will read the generation after this prune's
                // files became unreachable, so it cannot need them.
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        live.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(live)
    }
}

/// The prune generation of the store at `root` (0 before the first prune that condemned
/// anything).
pub(crate) fn read_generation(root: &Path) -> Result<u64> {
    let path = root.join(PRUNE_DIR).join(GENERATION_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::corrupt(
                format!("prune generation ({})", path.display()),
                format!("not a number: {:?}", text.trim()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Creates, locks and fills a registration under a hidden name, then gives it its real name,
/// so that `prune` never sees an unlocked registration of a live reader.
fn register(store: &Store) -> Result<Registration> {
    let dir = store.root().join(READERS_DIR);
    fsio::ensure_dir(&dir)?;
    let nonce = blake3::hash(
        format!(
            "{} {} {:?}",
            std::process::id(),
            crate::format::time::now_ns(),
            std::thread::current().id()
        )
        .as_bytes(),
    );
    let name = format!("{}-{}", std::process::id(), &nonce.to_hex()[..16]);
    let hidden = dir.join(format!(".{name}"));
    let path = dir.join(&name);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&hidden)
        .at(&hidden)?;
    file.lock().at(&hidden)?;
    // What this store has cached is at least as new as the generation it last saw.
    let generation = store.inner.seen_generation.load(Ordering::Acquire);
    let result = write_generation(&file, &hidden, generation).and_then(|()| fs::rename(&hidden, &path).at(&path));
    if let Err(e) = result {
        let _ = fs::remove_file(&hidden);
        return Err(e);
    }
    Ok(Registration { file, path })
}

/// Writes `generation` over a registration's content.
fn write_generation(file: &File, path: &Path, generation: u64) -> Result<()> {
    let text = format!("{generation:020}\n");
    debug_assert_eq!(text.len(), REGISTRATION_LEN);
    fsio::write_all_at(file, text.as_bytes(), 0).at(path)
}
