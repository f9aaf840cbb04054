//! The writer lock: one writer per store at a time (an OS file lock on `STORE/lock` for a
//! directory, a refreshed lock object for a bucket); readers never take it.

use std::fs;
use std::sync::Arc;

use super::Store;
use super::backend::LockHold;
use crate::error::{IoContext, Result};

impl Store {
    /// Takes the writer lock, waiting for another writer to finish if `wait`; then settles the
    /// cache epoch (see `epoch`), so that nothing cached before a `forget` or `prune` that ran
    /// since the store was opened is trusted by the writer.
    pub fn lock_writer(&self, wait: bool) -> Result<WriterLock> {
        let lock = WriterLock {
            hold: Arc::from(self.backend().lock(wait)?),
        };
        self.settle_epoch(&lock)?;
        Ok(lock)
    }

    /// Removes temporary files left by interrupted writers, and has the backend abandon what
    /// they left in the store long ago (call with the writer lock held).
    pub(crate) fn clean_tmp(&self, _lock: &WriterLock) -> Result<u64> {
        self.backend().tidy();
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
#[derive(Debug, Clone)]
pub struct WriterLock {
    hold: Arc<dyn LockHold>,
}

impl WriterLock {
    /// Confirms the lock is still held, just before a commit
    /// ([`Error::LockLost`](crate::Error::LockLost) if another writer took it over).
    pub(crate) fn check(&self) -> Result<()> {
        self.hold.check()
    }
}
