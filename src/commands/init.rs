//! `backup-fs init`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use snapshot_store::{Policy, Retention, Store};

use crate::cli::{KeepArgs, PolicyArgs, RetentionArgs};

pub fn run(dir: &Path, args: &PolicyArgs, keep: &KeepArgs, retention: &RetentionArgs) -> Result<ExitCode> {
    let policy = Policy::default().with(&args.overrides());
    let retention = super::policy::retention_with(Retention::default(), keep, retention);
    Store::init_with(dir, policy, retention).with_context(|| format!("cannot create a store in {}", dir.display()))?;
    eprintln!("created store {} ({policy}; retention: {retention})", dir.display());
    Ok(ExitCode::SUCCESS)
}
