//! The merge queue (`queue/<hex>`, format version 2): one request per chain, named by the
//! chain's full version, holding the snapshot time it was made (decimal ns). `write` queues the
//! chains it added incremental deltas to; `prune` takes every chain it can merge, queued or not,
//! and keeps the requests its merge interval defers, so that no request is lost in a crash.

use super::backend::Key;
use super::{Store, WriterLock};
use crate::error::Result;
use crate::id::VersionId;

/// The queue's directory.
const QUEUE_DIR: &str = "queue";

fn request_key(full: &VersionId) -> Key {
    Key::new(format!("{QUEUE_DIR}/{}", full.to_hex()))
}

impl Store {
    /// Adds requests for the chains of `fulls` (writer lock held); existing ones stay.
    pub(crate) fn queue_merges(&self, _lock: &WriterLock, fulls: &[VersionId], time_ns: i64) -> Result<()> {
        for f in fulls {
            let key = request_key(f);
            if !self.backend().exists(&key)? {
                self.backend().create(&key, format!("{time_ns}\n").as_bytes())?;
            }
        }
        Ok(())
    }

    /// The queued requests: each chain's full and the time it was requested.
    pub(crate) fn merge_requests(&self) -> Result<Vec<(VersionId, i64)>> {
        let mut out = Vec::new();
        for (key, _) in self.backend().list(QUEUE_DIR)? {
            if let Some(id) = VersionId::from_hex(key.file_name()) {
                let time = (self.backend().read_current(&key)?)
                    .and_then(|t| String::from_utf8_lossy(&t).trim().parse().ok())
                    .unwrap_or(0);
                out.push((id, time));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the request of the chain of `full`, if any.
    pub(crate) fn drop_merge_request(&self, _lock: &WriterLock, full: &VersionId) -> Result<()> {
        self.backend().delete(&request_key(full))?;
        self.backend().flush_deletes(QUEUE_DIR)
    }
}
