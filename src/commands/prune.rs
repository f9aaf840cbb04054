//! `backup-fs prune`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use snapshot_store::{Amount, PruneOptions, PruneReport, Store, prune};

use crate::human;

pub fn run(store: &Store, dry_run: bool, json: bool, wait: bool) -> Result<ExitCode> {
    let opts = PruneOptions {
        dry_run,
        wait_for_lock: wait,
        ..PruneOptions::default()
    };
    let started = Instant::now();
    let report = prune(store, &opts).context("prune failed")?;
    if json {
        let mut out = prune_json(&report);
        out["duration_seconds"] = json!(started.elapsed().as_secs_f64());
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_prune(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn amount(a: &Amount) -> Value {
    json!({ "files": a.files, "bytes": a.bytes })
}

/// The `--json` report of a prune.
pub fn prune_json(r: &PruneReport) -> Value {
    json!({
        "dry_run": r.dry_run,
        "snapshots": r.snapshots,
        "needed": amount(&r.needed),
        "freed": amount(&r.freed),
        "deferred": amount(&r.deferred),
        "waiting_for": r.waiting_for.iter().map(|w| json!({"reader": w.name, "generation": w.generation})).collect::<Vec<_>>(),
        "missing": r.missing,
        "upgraded": r.upgraded,
        "notes": r.notes,
        "merged": r.merges.merged.iter().map(|m| json!({
            "path": m.path,
            "from": m.from.to_hex(),
            "to": m.to.to_hex(),
            "absorbed": m.absorbed,
            "rewritten": m.rewritten,
            "bytes_copied": m.copied,
            "bytes_written": m.written,
        })).collect::<Vec<_>>(),
        "merges_deferred": r.merges.deferred,
    })
}

/// What a prune freed, in words.
pub fn print_prune(r: &PruneReport) {
    if r.upgraded {
        eprintln!(
            "backup-fs: note: the store was upgraded to format version 2 (older backup-fs builds cannot read it)"
        );
    }
    let verb = if r.dry_run { "would free" } else { "freed" };
    eprintln!(
        "{verb} {} in {} files; {} snapshots need {} in {} files",
        human::size(r.freed.bytes),
        r.freed.files,
        r.snapshots,
        human::size(r.needed.bytes),
        r.needed.files
    );
    for m in &r.merges.merged {
        eprintln!(
            "{} {}: {} versions merged into {} ({} records rewritten, {} copied)",
            if r.dry_run { "would merge" } else { "merged" },
            m.path,
            m.absorbed,
            m.to.short(),
            m.rewritten,
            human::size(m.copied)
        );
    }
    if !r.merges.deferred.is_empty() {
        eprintln!(
            "{} chains wait for their merge interval: {}",
            r.merges.deferred.len(),
            r.merges.deferred.join(", ")
        );
    }
    if r.deferred.files > 0 {
        let readers: Vec<&str> = r.waiting_for.iter().map(|w| w.name.as_str()).collect();
        eprintln!(
            "{} in {} files wait for {} running readers ({}) to move on; the next prune deletes them",
            human::size(r.deferred.bytes),
            r.deferred.files,
            readers.len(),
            readers.join(", ")
        );
    }
    for n in &r.notes {
        eprintln!("backup-fs: note: {n}");
    }
    if !r.missing.is_empty() {
        eprintln!(
            "backup-fs: note: {} referenced files are missing already (see `backup-fs verify`)",
            r.missing.len()
        );
    }
}
