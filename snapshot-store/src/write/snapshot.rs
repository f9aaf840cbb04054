//! Recording one snapshot: the walk, the files' writes, the collection of their outcomes into
//! the tree, and the commit.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::snapshot::{EntryKind, FileContent, Metadata, Snapshot, SnapshotId, SnapshotStats};
use crate::os::meta::{hostname, os_bytes};
use crate::store::Store;
use crate::store::staging::{Staging, next_id};
use crate::tracking::Tracking;
use crate::tracking::reflink::REF_DIR_NAME;
use crate::write::outcome::{Decision, Failure, FileOutcome};
use crate::write::progress::WriteProgress;
use crate::write::walk::{Job, Walk, walk};
use crate::write::writer::FileWriter;
use crate::write::{EntryError, FileReport, WriteOptions, WriteSummary};

/// Files at least this large are written one at a time with all cores.
const LARGE_FILE: u64 = 8 << 20;

/// What the files' writes gave, collected.
#[derive(Default)]
struct Collected {
    reports: Vec<FileReport>,
    contents: HashMap<usize, FileContent>,
    bytes_read: u64,
    files_new: u64,
    files_changed: u64,
    files_unchanged: u64,
    /// Versions stored as incremental deltas (their chains get merge requests).
    incremental: Vec<crate::id::VersionId>,
}

/// Records a snapshot of `source` into `store`, asking `tracking`'s change sources (if any) for
/// changed ranges before comparing files.
pub fn write_snapshot(
    store: &Store,
    source: &Path,
    opts: &WriteOptions,
    tracking: Option<&Tracking>,
    progress: &WriteProgress,
) -> Result<WriteSummary> {
    let source = canonical_source(source)?;
    let start_ns = opts.time_ns.unwrap_or_else(crate::format::time::now_ns);
    let lock = store.lock_writer(opts.wait_for_lock)?;
    store.clean_tmp(&lock)?;
    // A merge a crash interrupted is finished before any record is read.
    store.finish_replacements(&lock)?;
    // Listed once: no other writer, forget or prune changes the list while the lock is held.
    let ids = store.snapshot_ids()?;
    if opts.time_ns.is_some() {
        check_later_than_newest(store, &ids, start_ns)?;
    }
    let parent = previous_snapshot(store, &ids, &source)?;
    let exclude = excluded(store, &source, &opts.exclude, tracking);
    let mut walk = walk(store, &source, parent.as_deref(), &exclude, &opts.filter, progress)?;
    progress.files_total.store(walk.jobs.len() as u64, Ordering::Relaxed);
    progress
        .bytes_total
        .store(walk.jobs.iter().map(|j| j.size).sum(), Ordering::Relaxed);

    let staging = Staging::with_progress(store, &lock, Arc::clone(&progress.upload))?;
    let policy = if store.config().retention.delta_merge {
        opts.policy.for_delta_merge()
    } else {
        opts.policy
    };
    let writer = FileWriter {
        store,
        staging: &staging,
        policy: &policy,
        progress,
        tracking,
    };
    let results = run_jobs(&writer, &walk.jobs, progress);
    let collected = match collect(results, &mut walk, tracking) {
        Ok(c) => c,
        Err(e) => {
            staging.abandon();
            notify(tracking, |p| p.abandoned());
            return Err(e);
        }
    };
    link_hard_links(&mut walk, &collected.contents);
    let Collected {
        mut reports,
        incremental,
        ..
    } = collected;
    reports.sort_by(|a, b| a.path.cmp(&b.path));
    let entries = walk.tree.finish();
    let mut stats = SnapshotStats {
        files_new: collected.files_new,
        files_changed: collected.files_changed,
        files_unchanged: collected.files_unchanged,
        bytes_read: collected.bytes_read,
        errors: walk.errors.len() as u64,
        stored_bytes: staging.bytes(),
        ..SnapshotStats::default()
    };
    for e in &entries {
        match e.kind {
            EntryKind::File => {
                stats.files += 1;
                stats.bytes += e.meta.size;
            }
            EntryKind::Dir => stats.dirs += 1,
            _ => stats.others += 1,
        }
    }
    let snapshot = Snapshot {
        id: new_snapshot_id(&ids, start_ns)?,
        time_ns: start_ns,
        source: os_bytes(source.as_os_str()),
        host: hostname(),
        stats,
        entries,
    };
    let committed_copy = tracking.map(|_| snapshot.clone());
    let (id, manifest_len) = match staging.commit(snapshot) {
        Ok(r) => r,
        Err(e) => {
            let _ = store.clean_tmp(&lock);
            notify(tracking, |p| p.abandoned());
            return Err(e);
        }
    };
    let mut notes: Vec<String> = match (tracking, committed_copy) {
        (Some(t), Some(snap)) => t.providers.iter().filter_map(|p| p.committed(&snap)).collect(),
        _ => Vec::new(),
    };
    if store.config().retention.delta_merge
        && let Err(e) = queue_merges(store, &lock, &incremental, start_ns)
    {
        notes.push(format!(
            "the merge requests of this snapshot were not queued ({e}); the next prune finds the chains anyway"
        ));
    }
    stats.stored_bytes += manifest_len;
    drop(lock);
    Ok(WriteSummary {
        snapshot: id,
        stats,
        files: reports,
        errors: walk.errors,
        parent: parent.map(|p| p.id.clone()),
        excluded: walk.excluded,
        notes,
    })
}

/// Queues a merge request for the chain of each of `versions` (just committed).
fn queue_merges(
    store: &Store,
    lock: &crate::store::WriterLock,
    versions: &[crate::id::VersionId],
    time_ns: i64,
) -> Result<()> {
    let mut fulls = Vec::new();
    for v in versions {
        fulls.push(store.version(v)?.full);
    }
    fulls.sort();
    fulls.dedup();
    store.queue_merges(lock, &fulls, time_ns)
}

/// The canonical path of the source, or an error naming it.
fn canonical_source(source: &Path) -> Result<PathBuf> {
    fs::canonicalize(source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::io(source, std::io::Error::new(e.kind(), "source does not exist"))
        } else {
            Error::io(source, e)
        }
    })
}

/// Paths never backed up: those asked for, the store itself, change tracking's reference copies
/// (of any store) and whatever the change sources own.
fn excluded(store: &Store, source: &Path, asked: &[PathBuf], tracking: Option<&Tracking>) -> Vec<PathBuf> {
    let canonical = |p: PathBuf| fs::canonicalize(&p).unwrap_or(p);
    let mut exclude = asked.to_vec();
    exclude.push(canonical(store.root().to_path_buf()));
    exclude.push(canonical(source.join(REF_DIR_NAME)));
    if let Some(t) = tracking {
        exclude.extend(t.providers.iter().flat_map(|p| p.excluded()).map(canonical));
    }
    exclude
}

/// Writes every job: large files one at a time (each using every core), small ones in parallel.
fn run_jobs(
    writer: &FileWriter<'_>,
    jobs: &[Job],
    progress: &WriteProgress,
) -> Vec<(usize, std::result::Result<FileOutcome, Failure>)> {
    let (large, small): (Vec<&Job>, Vec<&Job>) = jobs.iter().partition(|j| j.size >= LARGE_FILE);
    let run = |job: &Job| {
        *progress.current.lock() = job.rel.clone();
        let r = writer.write(&job.path, &job.rel, job.prev.as_ref());
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        (job.node, r)
    };
    let mut results: Vec<_> = large.into_iter().map(run).collect();
    results.extend(small.par_iter().map(|j| run(j)).collect::<Vec<_>>());
    results
}

/// Puts the files' outcomes into the tree and the report; a file that could not be read is left
/// out and listed; a store failure aborts the write.
fn collect(
    results: Vec<(usize, std::result::Result<FileOutcome, Failure>)>,
    walk: &mut Walk,
    tracking: Option<&Tracking>,
) -> Result<Collected> {
    let jobs: HashMap<usize, (String, Option<FileContent>)> = walk
        .jobs
        .iter()
        .map(|j| (j.node, (j.rel.clone(), j.prev.as_ref().map(|p| p.content))))
        .collect();
    let mut c = Collected {
        files_unchanged: walk.unchanged,
        ..Collected::default()
    };
    for (node, result) in results {
        let Some((rel, prev)) = jobs.get(&node) else { continue };
        let o = match result {
            Ok(o) => o,
            Err(Failure::Source(e)) => {
                walk.errors.push(EntryError {
                    path: rel.clone(),
                    error: e.to_string(),
                });
                walk.tree.remove(node);
                continue;
            }
            Err(Failure::Store(e)) => return Err(e),
        };
        c.bytes_read += o.bytes_read;
        notify(tracking, |p| p.written(rel, o.content.version));
        let same_as_before = prev.is_some_and(|p| p.version == o.content.version);
        if same_as_before {
            c.files_unchanged += 1;
        } else if prev.is_some() {
            c.files_changed += 1;
        } else {
            c.files_new += 1;
        }
        c.reports.push(FileReport {
            path: rel.clone(),
            decision: if same_as_before {
                Decision::Unchanged
            } else {
                o.decision
            },
            full_reason: o.full_reason.clone(),
            tracking_fallback: o.fallback.clone(),
            size: o.meta.size,
            bytes_read: o.bytes_read,
            delta_bytes: o.literal_bytes,
            stored_bytes: o.stored_bytes,
            deduplicated: o.deduplicated && !same_as_before,
            change_source: o.change_source,
        });
        if !same_as_before && o.decision == Decision::Incremental {
            c.incremental.push(o.content.version);
        }
        c.contents.insert(node, o.content);
        if let Some(e) = walk.tree.entry_mut(node) {
            let xattrs = std::mem::take(&mut e.meta.xattrs);
            e.meta = Metadata { xattrs, ..o.meta };
            e.content = Some(o.content);
        }
    }
    Ok(c)
}

/// Gives every hard link its first link's content; a link to a file that could not be backed up
/// is left out and listed.
fn link_hard_links(walk: &mut Walk, contents: &HashMap<usize, FileContent>) {
    for (link, first, rel) in std::mem::take(&mut walk.links) {
        let content = contents
            .get(&first)
            .copied()
            .or_else(|| walk.tree.entry_mut(first).and_then(|e| e.content));
        match content {
            Some(c) => {
                if let Some(e) = walk.tree.entry_mut(link) {
                    e.content = Some(c);
                }
            }
            None => {
                walk.tree.remove(link);
                walk.errors.push(EntryError {
                    path: rel,
                    error: "hard link to a file that could not be backed up".into(),
                });
            }
        }
    }
}

/// Tells every change source something.
fn notify(tracking: Option<&Tracking>, f: impl Fn(&dyn crate::tracking::ChangeProvider)) {
    if let Some(t) = tracking {
        t.providers.iter().for_each(|p| f(p.as_ref()));
    }
}

/// The newest readable snapshot of the same source, if any (a damaged manifest does not stop
/// backups: `verify` and `list` report it).
fn previous_snapshot(store: &Store, ids: &[SnapshotId], source: &Path) -> Result<Option<Arc<Snapshot>>> {
    let want = os_bytes(source.as_os_str());
    for id in ids.iter().rev() {
        match store.snapshot(id) {
            Ok(snap) if snap.source == want => return Ok(Some(snap)),
            Ok(_) => {}
            Err(e) if e.is_corruption() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Refuses a given snapshot time at or before the newest snapshot's (its manifest's time, or
/// its id's second where the manifest cannot be read).
fn check_later_than_newest(store: &Store, ids: &[SnapshotId], time_ns: i64) -> Result<()> {
    let Some(newest) = ids.last().cloned() else {
        return Ok(());
    };
    let newest_ns = match store.snapshot(&newest) {
        Ok(s) => s.time_ns,
        Err(_) => crate::format::time::parse_id_stamp(newest.as_str()).unwrap_or(i64::MAX),
    };
    if time_ns <= newest_ns || SnapshotId::at(time_ns, 0).as_str()[..20] < newest.as_str()[..20] {
        return Err(Error::TimeNotAfter {
            time: crate::format::time::rfc3339(time_ns),
            newest: newest.to_string(),
            newest_time: crate::format::time::rfc3339(newest_ns),
        });
    }
    Ok(())
}

/// A fresh id at `time_ns` that sorts after every snapshot of `ids`.
fn new_snapshot_id(ids: &[SnapshotId], time_ns: i64) -> Result<SnapshotId> {
    let mut id = SnapshotId::at(time_ns, 0);
    if let Some(last) = ids.last() {
        if id.as_str()[..20] < last.as_str()[..20] {
            // The clock went back: keep ids sorted by continuing after the newest.
            id = last.clone();
        }
        while id <= *last {
            id = next_id(&id)?;
        }
    }
    Ok(id)
}
