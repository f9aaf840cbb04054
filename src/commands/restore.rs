//! `backup-fs restore`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use snapshot_store::{RestoreOptions, Store, restore};

use super::path_arg;
use crate::human;

pub fn run(store: &Store, snapshot: &str, target: &Path, path: Option<&str>) -> Result<ExitCode> {
    let id = store.resolve_snapshot(snapshot)?;
    let snap = store.snapshot(&id)?;
    let started = Instant::now();
    let sub = path.map(path_arg).unwrap_or_default();
    let summary = restore(store, &snap, &sub, target, RestoreOptions::default())
        .with_context(|| format!("cannot restore snapshot {id} to {}", target.display()))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "restored {} files ({}), {} directories, {} other entries from {id} to {} in {}",
        summary.files,
        human::size(summary.bytes),
        summary.dirs,
        summary.others,
        target.display(),
        human::duration(secs)
    );
    for (p, e) in &summary.errors {
        eprintln!("backup-fs: could not restore {}: {e}", p.display());
    }
    if summary.errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(crate::EXIT_PARTIAL))
    }
}
