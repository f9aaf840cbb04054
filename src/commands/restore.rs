//! `backup-fs restore`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;
use snapshot_store::{Overwrite, PathFilter, RestoreAction, RestoreOptions, RestoreSummary, Store, restore};

use super::entries::{kind_letter, kind_name, path_text};
use super::path_arg;
use crate::cli::{OverwriteArg, RestoreSelect};
use crate::human;

pub fn run(
    store: &Store,
    snapshot: &str,
    target: &Path,
    path: Option<&str>,
    select: &RestoreSelect,
) -> Result<ExitCode> {
    let id = store.resolve_snapshot(snapshot)?;
    let snap = store.snapshot(&id)?;
    let started = Instant::now();
    let sub = path.map(path_arg).unwrap_or_default();
    let opts = RestoreOptions {
        overwrite: match select.overwrite {
            OverwriteArg::Never => Overwrite::Never,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Always => Overwrite::Always,
        },
        filter: PathFilter::new(&select.exclude, &select.include)?,
        dry_run: select.dry_run,
        ..RestoreOptions::default()
    };
    let summary = restore(store, &snap, &sub, target, &opts)
        .with_context(|| format!("cannot restore snapshot {id} to {}", target.display()))?;
    let secs = started.elapsed().as_secs_f64();
    if select.json {
        let v = json!({
            "snapshot": id.as_str(),
            "target": target.to_string_lossy(),
            "dry_run": select.dry_run,
            "files": summary.files,
            "dirs": summary.dirs,
            "others": summary.others,
            "bytes": summary.bytes,
            "replaced": summary.replaced,
            "kept": summary.kept,
            "filtered": summary.filtered,
            "seconds": secs,
            "planned": summary.planned.iter().map(|p| json!({
                "path": path_text(&p.path),
                "dest": p.dest.to_string_lossy(),
                "kind": kind_name(p.kind),
                "size": p.size,
                "action": p.action.as_str(),
            })).collect::<Vec<_>>(),
            "errors": summary.errors.iter().map(|(p, e)| json!({ "path": p.to_string_lossy(), "error": e })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if select.dry_run {
        print_plan(&summary);
    }
    if !select.json && !select.dry_run {
        let mut also = Vec::new();
        if summary.replaced > 0 {
            also.push(format!("{} replaced", summary.replaced));
        }
        if summary.kept > 0 {
            also.push(format!("{} kept as they were", summary.kept));
        }
        if summary.filtered > 0 {
            also.push(format!("{} left out by the patterns", summary.filtered));
        }
        let also = if also.is_empty() {
            String::new()
        } else {
            format!(" ({})", also.join(", "))
        };
        eprintln!(
            "restored {} files ({}), {} directories, {} other entries from {id} to {} in {}{also}",
            summary.files,
            human::size(summary.bytes),
            summary.dirs,
            summary.others,
            target.display(),
            human::duration(secs)
        );
    }
    for (p, e) in &summary.errors {
        eprintln!("backup-fs: could not restore {}: {e}", p.display());
    }
    if summary.errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(crate::EXIT_PARTIAL))
    }
}

/// A dry run's plan: one line an entry (action, kind, size, where it goes), then the totals.
fn print_plan(s: &RestoreSummary) {
    let mut files = 0u64;
    let mut bytes = 0u64;
    for p in &s.planned {
        let size = if p.kind == snapshot_store::EntryKind::File {
            human::size(p.size)
        } else {
            String::new()
        };
        println!(
            "{:<8} {} {:>10}  {}",
            p.action.as_str(),
            kind_letter(p.kind),
            size,
            p.dest.display()
        );
        if p.kind == snapshot_store::EntryKind::File && p.action != RestoreAction::Keep {
            files += 1;
            bytes += p.size;
        }
    }
    println!(
        "\nwould write {files} files ({}): {} entries to create, {} to replace, {} to keep; {} left out by the patterns",
        human::size(bytes),
        s.planned.iter().filter(|p| p.action == RestoreAction::Create).count(),
        s.replaced,
        s.kept,
        s.filtered
    );
}
