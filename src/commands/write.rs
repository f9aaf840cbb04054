//! `backup-fs write`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use snapshot_store::{
    FileReport, PathFilter, SourceFilter, Store, WriteOptions, WriteProgress, WriteSummary, write_snapshot,
};

use crate::cli::{ExcludeArgs, PolicyArgs};
use crate::human;
use crate::progress::ProgressView;

/// The change-tracking options of `write`.
pub struct Tracking {
    pub changed_ranges: Option<PathBuf>,
    pub verify_sample: u32,
}

/// How one `write` runs.
pub struct Run {
    pub json: bool,
    pub wait: bool,
    pub time_ns: Option<i64>,
}

pub fn run(
    store: &Store,
    source: &Path,
    args: &PolicyArgs,
    excludes: &ExcludeArgs,
    tracking: Tracking,
    run: Run,
) -> Result<ExitCode> {
    let Run { json, wait, time_ns } = run;
    let mut policy = store.config().policy.with(&args.overrides());
    if tracking.changed_ranges.is_some() {
        policy.change_tracking = true;
    }
    if store.config().retention.delta_merge {
        policy = policy.for_delta_merge();
    }
    let opts = WriteOptions {
        policy,
        wait_for_lock: wait,
        exclude: Vec::new(),
        filter: source_filter(excludes)?,
        time_ns,
    };
    let sources = if policy.change_tracking {
        Some(crate::tracking::sources(
            store,
            source,
            tracking.changed_ranges.as_deref(),
            tracking.verify_sample,
        )?)
    } else {
        None
    };
    let progress = Arc::new(WriteProgress::default());
    let view = ProgressView::start(Arc::clone(&progress), !json);
    let started = Instant::now();
    let summary = write_snapshot(store, source, &opts, sources.as_ref(), &progress)
        .with_context(|| format!("backup of {} failed; the store is unchanged", source.display()));
    drop(view);
    let summary = summary?;
    let secs = started.elapsed().as_secs_f64();
    if !json {
        print_summary(&summary, secs);
    }
    let retention = auto_prune(store, wait, json)?;
    if json {
        let mut out = report(&summary, source, &opts, secs);
        out["retention"] = retention.unwrap_or(Value::Null);
        out["remote"] = store.remote_stats().map_or(Value::Null, |r| super::remote_json(&r));
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if summary.errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        if !json {
            eprintln!(
                "backup-fs: {} entries could not be backed up; the rest of the snapshot was recorded",
                summary.errors.len()
            );
        }
        Ok(ExitCode::from(crate::EXIT_PARTIAL))
    }
}

/// The filter of `--exclude`, `--exclude-file` and the other exclude options: the files' lines
/// first, in the order given, then the patterns.
fn source_filter(a: &ExcludeArgs) -> Result<SourceFilter> {
    let mut lines = Vec::new();
    for file in &a.exclude_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read exclude file {}", file.display()))?;
        lines.extend(text.lines().map(|l| l.trim_end_matches('\r').to_string()));
    }
    lines.extend(a.exclude.iter().cloned());
    Ok(SourceFilter {
        patterns: PathFilter::new(&lines, &[])?,
        exclude_caches: a.exclude_caches,
        exclude_if_present: a.exclude_if_present.clone(),
        one_file_system: a.one_file_system,
        exclude_larger_than: a.exclude_larger_than,
    })
}

/// With `--auto-prune on` stored: forgets by the stored keep rules (if any) and prunes, after
/// the snapshot is committed; returns the JSON report of both (printed unless `json`).
fn auto_prune(store: &Store, wait: bool, json: bool) -> Result<Option<Value>> {
    let retention = store.config().retention;
    if !retention.auto_prune {
        return Ok(None);
    }
    let mut out = json!({});
    if !retention.keep.is_empty() {
        let opts = snapshot_store::ForgetOptions {
            rules: None,
            snapshots: Vec::new(),
            dry_run: false,
            wait_for_lock: wait,
        };
        let r = snapshot_store::forget(store, &opts, &jiff::tz::TimeZone::system())
            .context("the snapshot was recorded, but forgetting by the stored keep rules failed")?;
        if !json {
            eprintln!("forgot {} snapshots ({})", r.removed.len(), r.rules);
        }
        out["forget"] = super::forget::forget_json(&r);
    }
    let opts = snapshot_store::PruneOptions {
        wait_for_lock: wait,
        ..snapshot_store::PruneOptions::default()
    };
    let r = snapshot_store::prune(store, &opts).context("the snapshot was recorded, but the prune after it failed")?;
    if !json {
        super::prune::print_prune(&r);
    }
    out["prune"] = super::prune::prune_json(&r);
    Ok(Some(out))
}

/// The `--json` report of a write.
fn report(summary: &WriteSummary, source: &Path, opts: &WriteOptions, secs: f64) -> Value {
    let tracked = opts.policy.change_tracking;
    let s = &summary.stats;
    let files: Vec<_> = summary.files.iter().map(|f| file_report(f, tracked)).collect();
    let errors: Vec<_> = summary
        .errors
        .iter()
        .map(|e| json!({ "path": e.path, "error": e.error }))
        .collect();
    json!({
        "snapshot": summary.snapshot.as_str(),
        "parent": summary.parent.as_ref().map(|p| p.as_str()),
        "source": source.display().to_string(),
        "policy": opts.policy.to_string(),
        "files_total": s.files,
        "files_new": s.files_new,
        "files_changed": s.files_changed,
        "files_unchanged": s.files_unchanged,
        "bytes_total": s.bytes,
        "bytes_read": s.bytes_read,
        "bytes_stored": s.stored_bytes,
        "duration_seconds": secs,
        "files": files,
        "errors": errors,
        "notes": summary.notes,
        "excluded": summary.excluded.iter().map(|c| json!({ "rule": c.rule, "entries": c.entries })).collect::<Vec<_>>(),
        "change_tracking": tracked.then(|| change_tracking_totals(&summary.files)),
    })
}

/// One file of the `--json` report (`change_source` only with change tracking on).
fn file_report(f: &FileReport, tracked: bool) -> Value {
    json!({
        "path": f.path,
        "decision": f.decision.as_str(),
        "reason": f.reason(),
        "size": f.size,
        "bytes_read": f.bytes_read,
        "delta_bytes": f.delta_bytes,
        "stored_bytes": f.stored_bytes,
        "deduplicated": f.deduplicated,
        "change_source": tracked.then(|| f.change_source.map_or("compare", |c| c.as_str())),
    })
}

/// Files and bytes read per change source.
fn change_tracking_totals(files: &[FileReport]) -> Value {
    let by = |source: Option<&str>| {
        let fs: Vec<_> = files
            .iter()
            .filter(|f| f.change_source.map(|c| c.as_str()) == source)
            .collect();
        json!({ "files": fs.len(), "bytes_read": fs.iter().map(|f| f.bytes_read).sum::<u64>() })
    };
    json!({
        "reflink": by(Some("reflink")),
        "fanotify": by(Some("fanotify")),
        "list": by(Some("list")),
        "compare": by(None),
    })
}

/// The id on standard output, a summary line and the skipped entries on standard error.
fn print_summary(summary: &WriteSummary, secs: f64) {
    let s = &summary.stats;
    println!("{}", summary.snapshot);
    eprintln!(
        "snapshot {}: {} files ({}), {} new, {} changed, {} unchanged; read {} ({}), stored {} in {}",
        summary.snapshot,
        s.files,
        human::size(s.bytes),
        s.files_new,
        s.files_changed,
        s.files_unchanged,
        human::size(s.bytes_read),
        human::rate(s.bytes_read, secs),
        human::size(s.stored_bytes),
        human::duration(secs),
    );
    let left_out: Vec<String> = (summary.excluded.iter())
        .filter(|c| c.entries > 0)
        .map(|c| format!("{} by {}", c.entries, c.rule))
        .collect();
    if !left_out.is_empty() {
        eprintln!("left out: {}", left_out.join(", "));
    }
    for e in &summary.errors {
        eprintln!("backup-fs: skipped {}: {}", e.path, e.error);
    }
    for n in &summary.notes {
        eprintln!("backup-fs: note: {n}");
    }
}
