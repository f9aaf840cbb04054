//! The cache epoch (`prune/epoch`): a counter that is odd while `forget` or `prune` deletes or
//! replaces store files, and even otherwise. Caches of a remote store keep what they learn per
//! even epoch and nothing at an odd one, so an entry is never used after its file was deleted
//! or replaced, from whichever machine. A change that stopped half-way (a crash, a failed
//! request) leaves the epoch odd; the next writer finishes any merge journal and makes it even.

use std::sync::atomic::Ordering;

use super::backend::Key;
use super::{Store, WriterLock};
use crate::error::{Error, Result};

/// The epoch's key.
const EPOCH_KEY: &str = "prune/epoch";

impl Store {
    /// The store's cache epoch (0 when it has none).
    pub(crate) fn epoch(&self) -> Result<u64> {
        read_epoch(self.backend())
    }

    /// Makes the epoch odd before store files are deleted or replaced (writer lock held).
    pub(crate) fn begin_changes(&self, _lock: &WriterLock) -> Result<()> {
        let e = self.epoch()?;
        if !e.is_multiple_of(2) {
            return Ok(());
        }
        self.set_epoch(e + 1)
    }

    /// Makes the epoch even again once the changes are done (writer lock held).
    pub(crate) fn end_changes(&self, _lock: &WriterLock) -> Result<()> {
        let e = self.epoch()?;
        if e.is_multiple_of(2) {
            return Ok(());
        }
        self.set_epoch(e + 1)
    }

    /// With the writer lock just taken: finishes what a change that stopped half-way left
    /// (an odd epoch), and drops what this process cached if the epoch moved since it opened
    /// the store.
    pub(crate) fn settle_epoch(&self, lock: &WriterLock) -> Result<()> {
        let e = self.epoch()?;
        if !e.is_multiple_of(2) {
            self.finish_replacements(lock)?;
            self.drop_record_caches();
            return self.set_epoch(e + 1);
        }
        self.observe_epoch(e);
        Ok(())
    }

    /// Drops what this process cached if the epoch is not `e` any more, and follows it.
    pub(crate) fn observe_epoch(&self, e: u64) {
        if self.inner.seen_epoch.swap(e, Ordering::AcqRel) != e {
            self.drop_record_caches();
        }
        self.backend().observe_epoch(e);
    }

    fn set_epoch(&self, e: u64) -> Result<()> {
        self.backend()
            .replace(&Key::new(EPOCH_KEY), format!("{e}\n").as_bytes())?;
        self.observe_epoch(e);
        Ok(())
    }
}

/// The cache epoch in `backend` (0 when it has none).
pub(crate) fn read_epoch(backend: &dyn super::backend::Backend) -> Result<u64> {
    let key = Key::new(EPOCH_KEY);
    let Some(bytes) = backend.read_current(&key)? else {
        return Ok(0);
    };
    let text = String::from_utf8_lossy(&bytes);
    text.trim().parse().map_err(|_| {
        Error::corrupt(
            format!("cache epoch ({})", backend.describe(&key)),
            format!("not a number: {:?}", text.trim()),
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::format::policy::Policy;
    use crate::store::Store;

    #[test]
    fn a_change_left_half_way_is_settled_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(dir.path(), Policy::default()).unwrap();
        assert_eq!(store.epoch().unwrap(), 0);
        let lock = store.lock_writer(false).unwrap();
        store.begin_changes(&lock).unwrap();
        store.begin_changes(&lock).unwrap();
        assert_eq!(store.epoch().unwrap(), 1, "odd while changes are under way");
        drop(lock); // stopped half-way: never ended
        let other = Store::open(dir.path()).unwrap();
        let lock = other.lock_writer(false).unwrap();
        assert_eq!(other.epoch().unwrap(), 2, "the next writer makes it even");
        other.end_changes(&lock).unwrap();
        assert_eq!(other.epoch().unwrap(), 2);
        other.begin_changes(&lock).unwrap();
        other.end_changes(&lock).unwrap();
        assert_eq!(other.epoch().unwrap(), 4);
    }
}
