//! The writer lock: one writer per store at a time (an OS file lock on `STORE/lock`); readers
//! never take it.

use std::fs;
use std::io::{Read, Seek, Write};

use super::Store;
use crate::error::{Error, IoContext, Result};

impl Store {
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
#[derive(Debug)]
pub struct WriterLock {
    _file: fs::File,
}
