//! The read layer: random-access reads of any version (`reader`), streaming whole versions
//! (`stream`), restoring trees (`restore`), a file's history across snapshots (`history`), what
//! changed between two snapshots (`diff`), finding entries by name (`find`), what snapshots
//! hold and cost (`stats`) and checking a whole store (`verify`). Readers never lock the store
//! and never write to it.

pub(crate) mod diff;
pub(crate) mod find;
pub(crate) mod history;
pub(crate) mod reader;
pub(crate) mod restore;
pub(crate) mod stats;
pub(crate) mod stream;
pub(crate) mod verify;

use crate::error::Result;
use crate::format::snapshot::SnapshotId;
use crate::store::Store;

/// The snapshots a command asked for, sorted and each once: `ids`, or every snapshot of
/// `store` when it is empty.
fn chosen_snapshots(store: &Store, ids: &[SnapshotId]) -> Result<Vec<SnapshotId>> {
    let mut ids = if ids.is_empty() {
        store.snapshot_ids()?
    } else {
        ids.to_vec()
    };
    ids.sort();
    ids.dedup();
    Ok(ids)
}
