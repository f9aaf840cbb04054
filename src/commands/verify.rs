//! `backup-fs verify`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use snapshot_store::{Store, VerifyOptions, verify};

use crate::human;

pub fn run(store: &Store, read_data: bool, json: bool) -> Result<ExitCode> {
    let started = Instant::now();
    let report = verify(store, VerifyOptions { read_data })?;
    let secs = started.elapsed().as_secs_f64();
    if json {
        let out = json!({
            "ok": report.problems.is_empty(),
            "snapshots": report.snapshots,
            "versions": report.versions,
            "objects": report.objects,
            "bytes_read": report.bytes_read,
            "problems": report.problems.iter().map(|p| json!({"what": p.what, "error": p.error})).collect::<Vec<_>>(),
            "unreferenced": report.unreferenced,
            "condemned": report.condemned,
            "reused": report.reused,
            "pending": report.pending,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for p in &report.problems {
            println!("{}: {}", p.what, p.error);
        }
        eprintln!(
            "checked {} snapshots, {} file versions, {} objects{} in {}",
            report.snapshots,
            report.versions,
            report.objects,
            if read_data {
                format!(", rebuilt and hashed {}", human::size(report.bytes_read))
            } else {
                String::new()
            },
            human::duration(secs)
        );
        if !report.unreferenced.is_empty() {
            eprintln!(
                "{} unreferenced files (left by interrupted writes or prunes; harmless, the next prune deletes them)",
                report.unreferenced.len()
            );
        }
        if !report.condemned.is_empty() {
            eprintln!(
                "{} files wait for deletion until running readers move on (the next prune deletes them)",
                report.condemned.len()
            );
        }
        if !report.reused.is_empty() {
            eprintln!(
                "{} condemned files are used again by a newer snapshot (the next prune keeps them)",
                report.reused.len()
            );
        }
        for p in &report.pending {
            eprintln!("note: {p}");
        }
        if report.problems.is_empty() {
            eprintln!("no problems found");
        } else {
            eprintln!("{} problems found", report.problems.len());
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_PARTIAL)
    })
}
