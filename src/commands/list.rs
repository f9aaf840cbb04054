//! `backup-fs list`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use serde_json::{Value, json};
use snapshot_store::{Error, Snapshot, SnapshotId, Store, rfc3339};

use crate::human;

/// A snapshot as `list` shows it: readable (with the bytes it added), or damaged.
enum Row {
    Readable(Arc<Snapshot>, u64),
    Damaged(SnapshotId, Error),
}

pub fn run(store: &Store, json: bool) -> Result<ExitCode> {
    let rows: Vec<Row> = store
        .snapshot_ids()?
        .into_iter()
        .map(|id| match store.snapshot(&id) {
            Ok(snap) => {
                // What the snapshot added: its new objects and versions, plus its own manifest.
                let manifest = store.manifest_stamp(&id).map_or(0, |(size, _)| size);
                let stored = snap.stats.stored_bytes + manifest;
                Row::Readable(snap, stored)
            }
            Err(e) => Row::Damaged(id, e),
        })
        .collect();
    let damaged = rows.iter().filter(|r| matches!(r, Row::Damaged(..))).count();
    if json {
        let out: Vec<Value> = rows.iter().map(json_row).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if rows.is_empty() {
        eprintln!("no snapshots yet (record one with `backup-fs write SOURCE`)");
    } else {
        print_table(&rows);
    }
    for row in &rows {
        if let Row::Damaged(id, e) = row {
            eprintln!("backup-fs: snapshot {id} cannot be read: {e}");
        }
    }
    if damaged > 0 {
        eprintln!("backup-fs: {damaged} damaged snapshots (see `backup-fs verify`); the others are listed");
        return Ok(ExitCode::from(crate::EXIT_PARTIAL));
    }
    Ok(ExitCode::SUCCESS)
}

fn json_row(row: &Row) -> Value {
    match row {
        Row::Readable(s, stored) => json!({
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
        }),
        Row::Damaged(id, e) => json!({
            "id": id.as_str(),
            "time": rfc3339(id.time_ns()),
            "damaged": e.to_string(),
        }),
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<24} {:<21} {:>9} {:>12} {:>12}  SOURCE",
        "ID", "TIME (UTC)", "FILES", "SIZE", "STORED"
    );
    for row in rows {
        match row {
            Row::Readable(s, stored) => println!(
                "{:<24} {:<21} {:>9} {:>12} {:>12}  {}",
                s.id.as_str(),
                rfc3339(s.time_ns),
                s.stats.files,
                human::size(s.stats.bytes),
                human::size(*stored),
                String::from_utf8_lossy(&s.source)
            ),
            Row::Damaged(id, _) => println!(
                "{:<24} {:<21} {:>9} {:>12} {:>12}  (damaged: cannot be read)",
                id.as_str(),
                rfc3339(id.time_ns()),
                "-",
                "-",
                "-"
            ),
        }
    }
}
