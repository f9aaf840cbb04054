//! `backup-fs forget`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use snapshot_store::{ForgetOptions, ForgetReport, PruneOptions, Store, forget, rfc3339};

use crate::cli::KeepArgs;

/// The options of one `forget`.
pub struct Args<'a> {
    pub snapshots: &'a [String],
    pub keep: &'a KeepArgs,
    pub prune: bool,
    pub dry_run: bool,
    pub json: bool,
    pub wait: bool,
}

pub fn run(store: &Store, a: &Args<'_>) -> Result<ExitCode> {
    if !a.snapshots.is_empty() && !a.keep.is_empty() {
        anyhow::bail!("give either snapshots to forget or --keep-* rules, not both");
    }
    let mut snapshots = Vec::new();
    for name in a.snapshots {
        snapshots.push(store.resolve_snapshot(name)?);
    }
    let opts = ForgetOptions {
        rules: (!a.keep.is_empty()).then(|| a.keep.apply(Default::default())),
        snapshots,
        dry_run: a.dry_run,
        wait_for_lock: a.wait,
    };
    let tz = jiff::tz::TimeZone::system();
    let report = forget(store, &opts, &tz).context("forget failed")?;
    let pruned = if a.prune {
        let opts = PruneOptions {
            dry_run: a.dry_run,
            wait_for_lock: a.wait,
            ..PruneOptions::default()
        };
        Some(snapshot_store::prune(store, &opts).context("prune failed")?)
    } else {
        None
    };
    if a.json {
        let mut out = forget_json(&report);
        if let Some(p) = &pruned {
            out["prune"] = super::prune::prune_json(p);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_forget(&report);
        if let Some(p) = &pruned {
            super::prune::print_prune(p);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--json` report of a forget.
pub fn forget_json(r: &ForgetReport) -> Value {
    let snapshots: Vec<Value> = r
        .verdicts
        .iter()
        .map(|v| {
            json!({
                "id": v.snapshot.id.as_str(),
                "time": rfc3339(v.snapshot.time_ns),
                "host": v.snapshot.host,
                "source": v.snapshot.source,
                "keep": v.keep(),
                "reasons": v.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "rules": r.rules.to_string(),
        "dry_run": r.dry_run,
        "snapshots": snapshots,
        "unreadable": r.unreadable.iter().map(|(id, e)| json!({"id": id.as_str(), "error": e})).collect::<Vec<_>>(),
        "removed": r.removed.iter().map(|id| id.as_str()).collect::<Vec<_>>(),
    })
}

/// One line per snapshot: keep or remove, and why.
pub fn print_forget(r: &ForgetReport) {
    let mut source = None;
    for v in &r.verdicts {
        if source != Some((&v.snapshot.host, &v.snapshot.source)) {
            source = Some((&v.snapshot.host, &v.snapshot.source));
            println!("{} on {}:", v.snapshot.source, v.snapshot.host);
        }
        let reasons: Vec<String> = v.reasons.iter().map(ToString::to_string).collect();
        if v.keep() {
            println!("  keep    {}  {}", v.snapshot.id, reasons.join(", "));
        } else {
            println!("  remove  {}", v.snapshot.id);
        }
    }
    for (id, e) in &r.unreadable {
        let what = if r.removed.contains(id) { "remove" } else { "keep  " };
        println!("  {what}  {id}  unreadable: {e}");
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    eprintln!(
        "{verb} {} of {} snapshots ({})",
        r.removed.len(),
        r.verdicts.len() + r.unreadable.len(),
        if r.rules.is_empty() {
            "named".to_string()
        } else {
            r.rules.to_string()
        }
    );
}
