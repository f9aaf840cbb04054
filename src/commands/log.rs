//! `backup-fs log PATH`.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::json;
use snapshot_store::{EntryKind, Storage, Store, VersionId, rfc3339};

use crate::human;

struct Row {
    snapshot: String,
    time: String,
    size: u64,
    kind: &'static str,
    depth: u32,
    stored: u64,
    version: String,
}

pub fn run(store: &Store, path: &str, json: bool) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut previous: Option<VersionId> = None;
    let mut seen: HashSet<VersionId> = HashSet::new();
    for id in store.snapshot_ids()? {
        let snap = store.snapshot(&id)?;
        let Some(e) = snap.lookup(path.as_bytes()).and_then(|i| snap.entry(i)) else {
            previous = None;
            continue;
        };
        if e.kind != EntryKind::File {
            previous = None;
            continue;
        }
        let Some(c) = e.content else { continue };
        let first_time = seen.insert(c.version);
        let (kind, depth, stored) = match c.storage {
            Storage::Whole => {
                let stored = if first_time {
                    store.data_object(&c.version.as_object())?.stored_len()
                } else {
                    0
                };
                ("whole", 0, stored)
            }
            Storage::Chain => {
                let v = store.version(&c.version)?;
                (v.kind.as_str(), v.depth, if first_time { v.stored_bytes } else { 0 })
            }
        };
        let kind = if previous == Some(c.version) { "unchanged" } else { kind };
        previous = Some(c.version);
        rows.push(Row {
            snapshot: id.to_string(),
            time: rfc3339(snap.time_ns),
            size: e.meta.size,
            kind,
            depth,
            stored,
            version: c.version.to_hex(),
        });
    }
    if rows.is_empty() {
        bail!("{path}: no regular file at this path in any snapshot");
    }
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "snapshot": r.snapshot,
                    "time": r.time,
                    "size": r.size,
                    "kind": r.kind,
                    "depth": r.depth,
                    "stored_bytes": r.stored,
                    "version": r.version,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:<24} {:>12} {:<13} {:>5} {:>12}",
            "SNAPSHOT", "SIZE", "KIND", "DEPTH", "STORED"
        );
        for r in rows {
            println!(
                "{:<24} {:>12} {:<13} {:>5} {:>12}",
                r.snapshot,
                human::size(r.size),
                r.kind,
                r.depth,
                human::size(r.stored)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
