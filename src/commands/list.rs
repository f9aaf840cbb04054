//! `backup-fs list`.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use snapshot_store::{Store, rfc3339};

use crate::human;

pub fn run(store: &Store, json: bool) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for id in store.snapshot_ids()? {
        let snap = store.snapshot(&id)?;
        // What the snapshot added: its new objects and versions, plus its own manifest.
        let manifest = std::fs::metadata(store.snapshot_path(&id)).map_or(0, |m| m.len());
        let stored = snap.stats.stored_bytes + manifest;
        rows.push((snap, stored));
    }
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|(s, stored)| {
                json!({
                    "id": s.id.as_str(),
                    "time": rfc3339(s.time_ns),
                    "source": String::from_utf8_lossy(&s.source),
                    "host": s.host,
                    "files": s.stats.files,
                    "dirs": s.stats.dirs,
                    "bytes": s.stats.bytes,
                    "stored_bytes": stored,
                    "files_new": s.stats.files_new,
                    "files_changed": s.stats.files_changed,
                    "files_unchanged": s.stats.files_unchanged,
                    "errors": s.stats.errors,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        eprintln!("no snapshots yet (record one with `backup-fs write SOURCE`)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<21} {:>9} {:>12} {:>12}  SOURCE",
        "ID", "TIME (UTC)", "FILES", "SIZE", "STORED"
    );
    for (s, stored) in rows {
        println!(
            "{:<24} {:<21} {:>9} {:>12} {:>12}  {}",
            s.id.as_str(),
            rfc3339(s.time_ns),
            s.stats.files,
            human::size(s.stats.bytes),
            human::size(stored),
            String::from_utf8_lossy(&s.source)
        );
    }
    Ok(ExitCode::SUCCESS)
}
