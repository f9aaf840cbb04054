//! `forget`: removing snapshots by keep rules or by name. Only manifests are deleted (under the
//! writer lock, so no write sees a snapshot vanish mid-way); what they alone referenced stays
//! until `prune`.

use jiff::tz::TimeZone;

use super::keep::{self, KeepReason, SnapshotInfo, Verdict};
use crate::error::{Error, IoContext, Result};
use crate::failpoint::{self, Point};
use crate::format::retention::KeepRules;
use crate::format::snapshot::SnapshotId;
use crate::store::Store;
use crate::store::backend::Key;

/// What to forget.
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// Keep rules; `None` uses the store's stored rules.
    pub rules: Option<KeepRules>,
    /// Snapshots to forget by name (then no rule applies).
    pub snapshots: Vec<SnapshotId>,
    /// Decide and report, delete nothing.
    pub dry_run: bool,
    /// Wait for another writer instead of failing.
    pub wait_for_lock: bool,
}

/// What `forget` decided and did.
#[derive(Debug, Clone)]
pub struct ForgetReport {
    /// The rules applied (empty when snapshots were named).
    pub rules: KeepRules,
    /// One verdict per snapshot, newest first per source.
    pub verdicts: Vec<Verdict>,
    /// Snapshots whose manifest could not be read, with the error: kept unless named.
    pub unreadable: Vec<(SnapshotId, String)>,
    /// The snapshots removed (or, with `dry_run`, that would be).
    pub removed: Vec<SnapshotId>,
    /// Nothing was deleted.
    pub dry_run: bool,
}

/// Forgets snapshots of `store` by `opts`, with periods in time zone `tz`.
pub fn forget(store: &Store, opts: &ForgetOptions, tz: &TimeZone) -> Result<ForgetReport> {
    let lock = store.lock_writer(opts.wait_for_lock)?;
    let ids = store.snapshot_ids()?;
    for named in &opts.snapshots {
        if !ids.contains(named) {
            return Err(Error::SnapshotNotFound { id: named.to_string() });
        }
    }
    let rules = if opts.snapshots.is_empty() {
        let rules = opts.rules.unwrap_or(store.config().retention.keep);
        if rules.is_empty() {
            return Err(Error::NoKeepRules);
        }
        rules
    } else {
        KeepRules::default()
    };
    let mut infos = Vec::new();
    let mut unreadable = Vec::new();
    for id in &ids {
        match store.snapshot(id) {
            Ok(s) => infos.push(SnapshotInfo {
                id: id.clone(),
                time_ns: s.time_ns,
                host: s.host.clone(),
                source: String::from_utf8_lossy(&s.source).into_owned(),
            }),
            Err(e) if e.is_corruption() || matches!(e, Error::UnsupportedVersion { .. }) => {
                unreadable.push((id.clone(), e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    let verdicts = if opts.snapshots.is_empty() {
        keep::apply(&infos, &rules, tz)
    } else {
        named_verdicts(&infos, &opts.snapshots)
    };
    let mut removed: Vec<SnapshotId> = verdicts
        .iter()
        .filter(|v| !v.keep())
        .map(|v| v.snapshot.id.clone())
        .collect();
    removed.extend(
        unreadable
            .iter()
            .filter(|(id, _)| opts.snapshots.contains(id))
            .map(|(id, _)| id.clone()),
    );
    removed.sort();
    if !opts.dry_run && !removed.is_empty() {
        store.begin_changes(&lock)?;
        delete_manifests(store, &removed)?;
        store.end_changes(&lock)?;
    }
    drop(lock);
    Ok(ForgetReport {
        rules,
        verdicts,
        unreadable,
        removed,
        dry_run: opts.dry_run,
    })
}

/// Verdicts when snapshots are named: those are forgotten, every other is kept.
fn named_verdicts(infos: &[SnapshotInfo], named: &[SnapshotId]) -> Vec<Verdict> {
    let mut v: Vec<Verdict> = infos
        .iter()
        .map(|s| Verdict {
            snapshot: s.clone(),
            reasons: if named.contains(&s.id) {
                Vec::new()
            } else {
                vec![KeepReason::NotNamed]
            },
        })
        .collect();
    v.sort_by(|a, b| b.snapshot.id.cmp(&a.snapshot.id));
    v
}

/// Deletes the manifests of `ids`, then flushes `snapshots/`.
fn delete_manifests(store: &Store, ids: &[SnapshotId]) -> Result<()> {
    for id in ids {
        let key = Key::snapshot(id);
        store.backend().delete(&key)?;
        failpoint::check(Point::ForgetDelete, store.root()).at(store.root().join(key.as_str()))?;
    }
    if !ids.is_empty() {
        store.backend().flush_deletes("snapshots")?;
    }
    Ok(())
}
