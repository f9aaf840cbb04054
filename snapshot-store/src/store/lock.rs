//! The writer lock: one writer per store at a time (an OS file lock on `STORE/lock` for a
//! directory, a refreshed lock object for a bucket); readers never take it.

use std::fs;
use std::sync::Arc;

use super::Store;
use super::backend::LockHold;
use crate::error::{IoContext, Result};

impl Store {
    /// Takes the writer lock, waiting for another writer to finish if `wait`; then catches up
    /// with a prune that ran since the store was opened, so that nothing cached from before it
    /// is trusted by the writer.
    pub fn lock_writer(&self, wait: bool) -> Result<WriterLock> {
        let lock = WriterLock {
            hold: Arc::from(self.backend().lock(wait)?),
        };
        self.catch_up(self.generation()?)?;
        Ok(lock)
    }

    /// Removes temporary files left by interrupted writers (call with the writer lock held).
    pub(crate) fn clean_tmp(&self, _lock: &WriterLock) -> Result<u64> {
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
