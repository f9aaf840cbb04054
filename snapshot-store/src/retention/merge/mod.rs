//! Delta merging: shortening chains so that what no kept snapshot needs can be freed, while
//! every kept version reads the same bytes.
//!
//! For each chain whose kept versions all descend from a version above its full (`plan`), that
//! version becomes a *merged full* whose content is an extent map over data objects the chain
//! already has, and the versions above it get records that no longer name anything below it
//! (`rebuild`). Only the objects the merged full uses partly are rewritten (`repack`), so a
//! merge costs I/O in proportion to what changed, not to the file's size. New objects are
//! committed first (named by content, nothing is replaced); then the records are replaced
//! through the store's journal (same id, same content). Chains are merged one at a time, each
//! at most once per merge interval of snapshot time; a deferred chain keeps its request in the
//! queue.

mod plan;
pub(crate) mod rebuild;
mod repack;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::error::{IoContext, Result};
use crate::failpoint::{self, Point};
use crate::format::envelope::Kind;
use crate::format::retention::Retention;
use crate::format::snapshot::Snapshot;
use crate::format::version::{FileVersion, VersionKind};
use crate::id::VersionId;
use crate::store::reach::Overlay;
use crate::store::staging::Staging;
use crate::store::{Store, WriterLock};

/// One chain a prune merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeReport {
    /// A path of the file (in the newest snapshot that has it), relative to the snapshot root.
    pub path: String,
    /// The chain's full before.
    pub from: VersionId,
    /// The version that is now the chain's (merged) full.
    pub to: VersionId,
    /// Versions below it that no kept snapshot needs any more.
    pub absorbed: u32,
    /// Version records replaced (the merged full and the versions above it).
    pub rewritten: u32,
    /// Bytes of data copied into a repacked object.
    pub copied: u64,
    /// Bytes of new objects written (maps, signatures, trees, repacked data).
    pub written: u64,
}

/// What the merges of one prune did.
#[derive(Debug, Clone, Default)]
pub struct Merges {
    /// Chains merged.
    pub merged: Vec<MergeReport>,
    /// Chains that could be merged but were merged less than a merge interval ago (in
    /// snapshot time); their requests stay queued.
    pub deferred: Vec<String>,
}

/// Merges every chain of `snapshots` that can be merged and whose interval allows it. With
/// `dry_run` nothing is written or copied: the returned overlay holds the records and objects a
/// real run would write, for estimating what the prune frees.
pub(crate) fn merge_chains(
    store: &Store,
    lock: &WriterLock,
    snapshots: &[Arc<Snapshot>],
    retention: &Retention,
    dry_run: bool,
) -> Result<(Merges, Overlay)> {
    let mut out = Merges::default();
    let mut overlay = Overlay::default();
    let Some(now_ns) = snapshots.iter().map(|s| s.time_ns).max() else {
        return Ok((out, overlay));
    };
    let plan = plan::plan(store, snapshots)?;
    let interval_ns = i64::try_from(retention.merge_interval_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000_000);
    let requests = store.merge_requests()?;
    let mut deferred = Vec::new();
    for chain in &plan.chains {
        let full = plan.records.get(&chain.full);
        let last_merge = full.filter(|f| f.kind == VersionKind::Merged).map(|f| f.time_ns);
        if last_merge.is_some_and(|t| now_ns.saturating_sub(t) < interval_ns) {
            out.deferred.push(chain.path.clone());
            deferred.push(chain.full);
            if !dry_run {
                store.queue_merges(lock, &[chain.full], now_ns)?;
            }
            continue;
        }
        let mut report = MergeReport {
            path: chain.path.clone(),
            from: chain.full,
            to: chain.root,
            absorbed: chain.absorbed,
            rewritten: chain.members.len() as u32,
            copied: 0,
            written: 0,
        };
        let rebuilt = rebuild::rebuild(store, &plan, chain, retention.max_unused, now_ns, dry_run)?;
        report.copied = rebuilt.repacked.as_ref().map_or(0, |r| r.copied);
        if dry_run {
            for o in rebuilt.envelopes {
                debug_assert!(matches!(o.kind, Kind::Signature | Kind::HashTree | Kind::ExtentMap));
                overlay.add_object(o.id, o.refs);
            }
            for v in rebuilt.records {
                overlay.add_version(v);
            }
        } else {
            report.written = commit(store, lock, rebuilt)?;
            store.drop_merge_request(lock, &chain.full)?;
        }
        out.merged.push(report);
    }
    // Requests for chains that no longer exist, or have nothing to merge, are done.
    if !dry_run {
        for (full, _) in requests {
            if !deferred.contains(&full) {
                store.drop_merge_request(lock, &full)?;
            }
        }
    }
    Ok((out, overlay))
}

/// Commits a rebuilt chain: objects first, then the records through the journal. Returns the
/// bytes of new objects.
fn commit(store: &Store, lock: &WriterLock, rebuilt: rebuild::Rebuilt) -> Result<u64> {
    let staging = Staging::new(store, lock)?;
    let mut written = 0;
    let staged = (|| {
        if let Some(object) = rebuilt.repacked.and_then(|r| r.object) {
            written += staging.add_data_object(object)?;
        }
        for o in &rebuilt.envelopes {
            written += staging.add_envelope_object(o.id, o.kind, &o.payload)?;
        }
        Ok::<_, crate::error::Error>(())
    })();
    if let Err(e) = staged {
        staging.abandon();
        return Err(e);
    }
    staging.commit_objects()?;
    failpoint::check(Point::MergeObjects, store.root()).at(store.root())?;
    let records: Vec<FileVersion> = rebuilt
        .records
        .into_iter()
        .map(|mut v| {
            if v.kind == VersionKind::Merged {
                v.stored_bytes = written;
            }
            v
        })
        .collect();
    store.replace_versions(lock, &records)?;
    Ok(written)
}
