//! The merge queue (`queue/<hex>`, format version 2): one request per chain, named by the
//! chain's full version, holding the snapshot time it was made (decimal ns). `write` queues the
//! chains it added incremental deltas to; `prune` takes every chain it can merge, queued or not,
//! and keeps the requests its merge interval defers, so that no request is lost in a crash.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::{Store, WriterLock};
use crate::error::{Error, IoContext, Result};
use crate::id::VersionId;
use crate::os::file as fsio;

/// The queue's directory.
const QUEUE_DIR: &str = "queue";

impl Store {
    fn queue_dir(&self) -> PathBuf {
        self.root().join(QUEUE_DIR)
    }

    /// Adds requests for the chains of `fulls` (writer lock held); existing ones stay.
    pub(crate) fn queue_merges(&self, _lock: &WriterLock, fulls: &[VersionId], time_ns: i64) -> Result<()> {
        if fulls.is_empty() {
            return Ok(());
        }
        let dir = self.queue_dir();
        fsio::ensure_dir(&dir)?;
        for f in fulls {
            let path = dir.join(f.to_hex());
            if !path.exists() {
                fsio::write_atomic(&path, &self.tmp_dir(), format!("{time_ns}\n").as_bytes())?;
            }
        }
        fsio::sync_dir(&dir)
    }

    /// The queued requests: each chain's full and the time it was requested.
    pub(crate) fn merge_requests(&self) -> Result<Vec<(VersionId, i64)>> {
        let dir = self.queue_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.at(&dir)?;
            if let Some(id) = e.file_name().to_str().and_then(VersionId::from_hex) {
                let time = fs::read_to_string(e.path())
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
                out.push((id, time));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the request of the chain of `full`, if any.
    pub(crate) fn drop_merge_request(&self, _lock: &WriterLock, full: &VersionId) -> Result<()> {
        let path = self.queue_dir().join(full.to_hex());
        match fs::remove_file(&path) {
            Ok(()) => fsio::sync_dir(&self.queue_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}
