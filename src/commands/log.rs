//! `backup-fs log PATH`.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::json;
use snapshot_store::{Store, file_history, rfc3339};

use crate::human;

pub fn run(store: &Store, path: &str, json: bool) -> Result<ExitCode> {
    let history = file_history(store, path.as_bytes())?;
    if history.entries.is_empty() && history.damaged.is_empty() {
        bail!("{path}: no regular file at this path in any snapshot");
    }
    if json {
        let out: Vec<_> = history
            .entries
            .iter()
            .map(|e| {
                json!({
                    "snapshot": e.snapshot.as_str(),
                    "time": rfc3339(e.time_ns),
                    "size": e.size,
                    "kind": e.state.as_str(),
                    "depth": e.depth,
                    "stored_bytes": e.stored_bytes,
                    "version": e.content.version.to_hex(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:<24} {:>12} {:<13} {:>5} {:>12}",
            "SNAPSHOT", "SIZE", "KIND", "DEPTH", "STORED"
        );
        for e in &history.entries {
            println!(
                "{:<24} {:>12} {:<13} {:>5} {:>12}",
                e.snapshot.as_str(),
                human::size(e.size),
                e.state.as_str(),
                e.depth,
                human::size(e.stored_bytes)
            );
        }
    }
    for (id, e) in &history.damaged {
        eprintln!("backup-fs: snapshot {id} cannot be read: {e}");
    }
    Ok(if history.damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_PARTIAL)
    })
}
