//! `prune`: deleting what no snapshot needs, without ever pulling a file from under a reader.
//!
//! Under the writer lock: every manifest is loaded (a damaged one stops the prune: what it
//! references cannot be known), everything they reach is marked, and every other version
//! record and object is *condemned*: listed in `prune/condemned` with the prune generation that
//! condemned it, after which the generation is raised. A condemned file is deleted once every
//! registered reader has caught up with its generation (so started, or dropped its caches,
//! after the file became unreachable), or once it has waited the grace period; prune waits a
//! moment for readers to catch up and otherwise leaves the rest for the next prune. Files are
//! deleted referrers first (see `order`), and each prune recomputes what is reachable, so a
//! condemned file that a write reused in the meantime is kept. The cache epoch is odd while
//! files are deleted or replaced (see `store::epoch`).

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::merge::{Merges, merge_chains};
use super::order::deletion_order;
use crate::error::{Error, IoContext, Result};
use crate::failpoint::{self, Point};
use crate::format::FormatVersion;
use crate::format::condemned::{Condemned, CondemnedList, StoreFile};
use crate::format::snapshot::Snapshot;
use crate::id::{ObjectId, VersionId};
use crate::store::condemned::store_file_key;
use crate::store::reach::{Overlay, Reachable};
use crate::store::{LiveReader, Store, WriterLock};

/// How long prune waits for registered readers to catch up before it leaves their files for
/// the next prune.
pub const DEFAULT_READER_WAIT: Duration = Duration::from_secs(2);
/// The least prune waits for the readers of a remote store (they poll every 5 s, then rewrite
/// their registration).
const REMOTE_READER_WAIT: Duration = Duration::from_secs(7);

/// How prune runs.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Report what would be freed; change nothing.
    pub dry_run: bool,
    /// Wait for another writer instead of failing.
    pub wait_for_lock: bool,
    /// How long to wait for registered readers to catch up.
    pub reader_wait: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            wait_for_lock: true,
            reader_wait: DEFAULT_READER_WAIT,
        }
    }
}

/// Files and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    /// Files.
    pub files: u64,
    /// Bytes (file sizes).
    pub bytes: u64,
}

impl Amount {
    fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
}

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// Snapshots in the store (all kept: `forget` removes snapshots).
    pub snapshots: u64,
    /// Version records and objects the snapshots need.
    pub needed: Amount,
    /// Deleted now (dry run: what would be deleted if no reader held anything back).
    pub freed: Amount,
    /// Condemned, waiting for readers to catch up.
    pub deferred: Amount,
    /// The readers still behind, when anything was deferred.
    pub waiting_for: Vec<LiveReader>,
    /// References to files already missing (their snapshots are damaged; see `verify`).
    pub missing: Vec<String>,
    /// The chains merged (with delta merging on).
    pub merges: Merges,
    /// The store was upgraded from format version 1.
    pub upgraded: bool,
    /// What the user should know that did not fail the prune (a file that could not be deleted
    /// yet, left for the next prune).
    pub notes: Vec<String>,
    /// Nothing was changed.
    pub dry_run: bool,
}

/// Prunes `store`: see the module doc.
pub fn prune(store: &Store, opts: &PruneOptions) -> Result<PruneReport> {
    let lock = store.lock_writer(opts.wait_for_lock)?;
    prune_locked(store, &lock, opts)
}

/// [`prune`] with the writer lock held.
pub(crate) fn prune_locked(store: &Store, lock: &WriterLock, opts: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..PruneReport::default()
    };
    let upgraded;
    let store = if store.config().format < FormatVersion::V2 && !opts.dry_run {
        let mut config = store.config().clone();
        config.format = FormatVersion::V2;
        upgraded = store.replace_config(lock, &config)?;
        report.upgraded = true;
        &upgraded
    } else {
        store
    };
    if !opts.dry_run {
        store.clean_tmp(lock)?;
        store.finish_replacements(lock)?;
        store.discard_journal()?;
    }
    let snapshots = load_all(store)?;
    report.snapshots = snapshots.len() as u64;
    let retention = store.config().retention;
    let overlay = if retention.delta_merge {
        let (merges, overlay) = merge_chains(store, lock, &snapshots, &retention, opts.dry_run)?;
        report.merges = merges;
        overlay
    } else {
        Overlay::default()
    };
    // What cannot be read cannot be known not to need anything: nothing is deleted.
    let reach = Reachable::from_snapshots(store, &snapshots, &overlay).map_err(|u| Error::PruneRefused {
        what: u.what,
        reason: format!("{} (run `backup-fs verify`)", u.error),
    })?;
    report.missing = reach.missing.clone();
    let garbage = sweep(store, &reach, &mut report.needed)?;
    if opts.dry_run {
        for size in garbage.values() {
            report.freed.add(*size);
        }
        return Ok(report);
    }
    let list = condemn(store, lock, &garbage)?;
    delete(store, lock, list, opts, &mut report)?;
    store.end_changes(lock)?;
    Ok(report)
}

/// Every manifest; a damaged one stops the prune.
fn load_all(store: &Store) -> Result<Vec<Arc<Snapshot>>> {
    store
        .snapshot_ids()?
        .iter()
        .map(|id| {
            store.snapshot(id).map_err(|e| match e {
                Error::SnapshotNotFound { .. } | Error::Io { .. } => e,
                e => Error::PruneRefused {
                    what: format!("snapshot {id}"),
                    reason: format!("{e}; forget it (`backup-fs forget {id}`) to prune without it"),
                },
            })
        })
        .collect()
}

/// Every version record and object not in `reach`, with its size; counts the others in
/// `needed`. Names that are not ids are not backup-fs files and are left alone.
fn sweep(store: &Store, reach: &Reachable, needed: &mut Amount) -> Result<BTreeMap<StoreFile, u64>> {
    let mut garbage = BTreeMap::new();
    type Parse = fn(&str, &Reachable) -> Option<(StoreFile, bool)>;
    let version: Parse = |hex, r| VersionId::from_hex(hex).map(|v| (StoreFile::Version(v), r.versions.contains(&v)));
    let object: Parse = |hex, r| ObjectId::from_hex(hex).map(|o| (StoreFile::Object(o), r.objects.contains(&o)));
    for (dir, parse) in [("versions", version), ("objects", object)] {
        for (key, size) in store.backend().list(dir)? {
            // Only `dir/xx/<hex>`: anything else is not a backup-fs file.
            let Some((file, reached)) = parse(key.file_name(), reach).filter(|(f, _)| store_file_key(f) == key) else {
                continue;
            };
            if reached {
                needed.add(size);
            } else {
                garbage.insert(file, size);
            }
        }
    }
    Ok(garbage)
}

/// Writes the condemned list for `garbage` (entries already condemned keep their generation
/// and time; new ones get the next generation) and raises the generation.
fn condemn(store: &Store, lock: &WriterLock, garbage: &BTreeMap<StoreFile, u64>) -> Result<CondemnedList> {
    // A damaged list only loses when its files were condemned: they count as condemned now.
    let old: BTreeMap<StoreFile, Condemned> = store
        .condemned_list()
        .unwrap_or_default()
        .map(|l| l.entries.into_iter().map(|c| (c.file, c)).collect())
        .unwrap_or_default();
    let current = store.generation()?;
    let fresh = garbage.keys().any(|f| !old.contains_key(f));
    let generation = if fresh { current + 1 } else { current };
    let now = crate::format::time::now_ns();
    let entries = garbage
        .iter()
        .map(|(file, size)| {
            old.get(file).copied().unwrap_or(Condemned {
                file: *file,
                size: *size,
                generation,
                since_ns: now,
            })
        })
        .collect();
    let list = CondemnedList { generation, entries };
    store.write_condemned_list(lock, &list)?;
    failpoint::check(Point::CondemnedWrite, store.root()).at(store.root())?;
    if generation != current {
        store.set_generation(lock, generation)?;
    }
    failpoint::check(Point::GenerationWrite, store.root()).at(store.root())?;
    Ok(list)
}

/// Deletes the condemned files no live reader can need (waiting up to `opts.reader_wait` for
/// readers to catch up) and keeps the rest listed.
fn delete(
    store: &Store,
    lock: &WriterLock,
    list: CondemnedList,
    opts: &PruneOptions,
    report: &mut PruneReport,
) -> Result<()> {
    let grace_ns = i64::try_from(store.config().retention.grace_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000_000);
    let started = Instant::now();
    // Readers of a remote store look for a new generation only every few seconds, and each
    // look at their registrations costs requests.
    let (wait, poll) = if store.is_remote() {
        (opts.reader_wait.max(REMOTE_READER_WAIT), Duration::from_secs(1))
    } else {
        (opts.reader_wait, Duration::from_millis(50))
    };
    let live = loop {
        let live = store.live_readers(lock)?;
        let behind = live.iter().any(|r| r.generation < list.generation);
        if !behind || list.entries.is_empty() || started.elapsed() >= wait {
            break live;
        }
        std::thread::sleep(poll);
    };
    let oldest_seen = live.iter().map(|r| r.generation).min().unwrap_or(u64::MAX);
    let now = crate::format::time::now_ns();
    let (go, stay): (Vec<Condemned>, Vec<Condemned>) = list
        .entries
        .into_iter()
        .partition(|c| c.generation <= oldest_seen || now.saturating_sub(c.since_ns) >= grace_ns);
    let sizes: BTreeMap<StoreFile, u64> = go.iter().map(|c| (c.file, c.size)).collect();
    let order = deletion_order(store, &go.iter().map(|c| c.file).collect::<Vec<_>>());
    if !go.is_empty() {
        store.begin_changes(lock)?;
    }
    let mut deleted = HashSet::new();
    for file in order {
        let key = store_file_key(&file);
        let path = store.root().join(key.as_str());
        match store.backend().delete(&key) {
            Ok(()) => {}
            Err(e) => {
                // Keep what is left listed (what this file references must outlive it, so
                // nothing after it is deleted either); the next prune carries on.
                let remaining: Vec<Condemned> = stay
                    .iter()
                    .copied()
                    .chain(go.iter().copied().filter(|c| !deleted.contains(&c.file)))
                    .collect();
                if e.io_kind() != Some(io::ErrorKind::PermissionDenied) {
                    let _ = rewrite(store, lock, list.generation, remaining);
                    return Err(e);
                }
                // In use (Windows refuses to delete an open file): not an error.
                report.notes.push(format!(
                    "{} is in use and was not deleted ({e}); the next prune deletes it and what it references",
                    store.backend().describe(&key)
                ));
                for c in &remaining {
                    report.deferred.add(c.size);
                }
                return rewrite(store, lock, list.generation, remaining);
            }
        }
        deleted.insert(file);
        report.freed.add(sizes.get(&file).copied().unwrap_or(0));
        failpoint::check(Point::PruneDelete, store.root()).at(&path)?;
    }
    for c in &stay {
        report.deferred.add(c.size);
    }
    if !stay.is_empty() {
        report.waiting_for = live.into_iter().filter(|r| r.generation < list.generation).collect();
    }
    rewrite(store, lock, list.generation, stay)
}

/// Writes the list with `entries` left (sorted), or removes it.
fn rewrite(store: &Store, lock: &WriterLock, generation: u64, mut entries: Vec<Condemned>) -> Result<()> {
    entries.sort_by_key(|c| c.file);
    store.write_condemned_list(lock, &CondemnedList { generation, entries })
}
