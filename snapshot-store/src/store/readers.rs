//! Reader registrations and the prune generation: how `prune` knows whether a reader may still
//! use a file it condemned.
//!
//! `prune/generation` holds a number that `prune` raises each time it condemns files (after
//! making them unreachable). A reader
//! registers with the store's backend (a locked file `readers/<pid>-<nonce>` in a directory, a
//! refreshed object `readers/<host>-<pid>-<nonce>` in a bucket) with the generation it read
//! *before* reading anything else; a reader that drops its caches and re-reads the generation (a
//! mount does, within a second of a prune; over an object store within a few seconds) records
//! the new one. A file condemned at generation `g` can be deleted once no live reader shows a
//! generation below `g`: every reader either started or refreshed after the file became
//! unreachable.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Store;
use super::backend::{Key, ReaderHold};
use crate::error::{Error, Result};

/// The prune generation's key.
const GENERATION_KEY: &str = "prune/generation";
/// How often a long-running reader of a remote store asks for the generation (each time costs
/// a request).
const REMOTE_POLL: Duration = Duration::from_secs(5);

/// This process's registration as a reader; removed when dropped.
pub(crate) type Registration = Box<dyn ReaderHold>;

/// A registered reader as `prune` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveReader {
    /// Its registration's name (`<pid>-<nonce>`, or `<host>-<pid>-<nonce>` in a bucket).
    pub name: String,
    /// The generation it last caught up with.
    pub generation: u64,
}

impl Store {
    /// The current prune generation (0 before the first prune that condemned anything).
    pub fn generation(&self) -> Result<u64> {
        read_generation(self.backend())
    }

    /// Raises the prune generation to `generation` (writer lock held).
    pub(crate) fn set_generation(&self, _lock: &super::WriterLock, generation: u64) -> Result<()> {
        (self.backend()).replace(&Key::new(GENERATION_KEY), format!("{generation}\n").as_bytes())?;
        Ok(())
    }

    /// Registers this process as a reader of the store (see the module doc), so that `prune`
    /// keeps what it reads until it lets go. Call before reading anything; a store that cannot
    /// be written to (read-only media) is read unregistered. Idempotent.
    pub fn register_reader(&self) -> Result<()> {
        let mut slot = self.inner.registration.lock();
        if slot.is_some() {
            return Ok(());
        }
        // What this store has cached is at least as new as the generation it last saw.
        let generation = self.inner.seen_generation.load(Ordering::Acquire);
        match self.backend().register_reader(generation) {
            Ok(r) => *slot = Some(r),
            Err(e)
                if matches!(
                    e.io_kind(),
                    Some(std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem)
                ) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// For a long-running reader: if a prune condemned files since this store was opened or
    /// last refreshed, drops every cached record, map, signature, tree and manifest (so what is
    /// read next comes from the store as it is now) and, when registered, tells `prune` so.
    /// Returns true when it did. Readers holding an extent map from before keep reading through
    /// it; the objects it names stay readable while they are open, and others may be gone. A
    /// remote store is asked at most every few seconds.
    pub fn refresh_after_prune(&self) -> Result<bool> {
        if self.is_remote() {
            let mut last = self.inner.generation_polled.lock();
            if last.is_some_and(|t| t.elapsed() < REMOTE_POLL) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        self.catch_up(self.generation()?)
    }

    /// Catches up with generation `now` if this store has seen an older one (see
    /// [`refresh_after_prune`](Store::refresh_after_prune)).
    pub(crate) fn catch_up(&self, now: u64) -> Result<bool> {
        let slot = self.inner.registration.lock();
        if self.inner.seen_generation.load(Ordering::Acquire) >= now {
            return Ok(false);
        }
        self.drop_record_caches();
        // Whatever a prune deleted or replaced since, the disk cache lets go of too.
        self.observe_epoch(self.epoch()?);
        if let Some(reg) = slot.as_ref() {
            reg.set_generation(now)?;
        }
        self.inner.seen_generation.store(now, Ordering::Release);
        Ok(true)
    }

    /// The registered readers that are still running (with the writer lock held); removes the
    /// registrations of readers that are gone.
    pub(crate) fn live_readers(&self, _lock: &super::WriterLock) -> Result<Vec<LiveReader>> {
        let own = self.inner.registration.lock().as_ref().map(|r| r.name().to_string());
        let mut live = self.backend().live_readers(own.as_deref())?;
        live.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(live)
    }
}

/// The prune generation in `backend` (0 before the first prune that condemned anything).
pub(crate) fn read_generation(backend: &dyn super::backend::Backend) -> Result<u64> {
    let key = Key::new(GENERATION_KEY);
    let Some(bytes) = backend.read_current(&key)? else {
        return Ok(0);
    };
    let place = backend.describe(&key);
    let text = String::from_utf8_lossy(&bytes);
    text.trim().parse().map_err(|_| {
        Error::corrupt(
            format!("prune generation ({place})"),
            format!("not a number: {:?}", text.trim()),
        )
    })
}
