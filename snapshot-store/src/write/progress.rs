//! Progress counters of a running write, updated by the writer and polled by a front end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::store::UploadProgress;

/// Shared progress of one `write`. All counters only grow.
#[derive(Debug, Default)]
pub struct WriteProgress {
    /// Files the write will read (known once the tree walk ends).
    pub files_total: AtomicU64,
    /// Bytes the write will read (known once the tree walk ends).
    pub bytes_total: AtomicU64,
    /// Files done.
    pub files_done: AtomicU64,
    /// Bytes read so far.
    pub bytes_done: AtomicU64,
    /// Entries seen by the tree walk.
    pub entries_scanned: AtomicU64,
    /// The file being read now.
    pub current: Mutex<String>,
    /// Bytes queued for and acknowledged by a remote store.
    pub upload: Arc<UploadProgress>,
}

impl WriteProgress {
    /// Adds `n` bytes read.
    pub fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
