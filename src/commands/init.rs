//! `backup-fs init`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use snapshot_store::{Policy, Store};

use crate::cli::PolicyArgs;

pub fn run(dir: &Path, args: &PolicyArgs) -> Result<ExitCode> {
    let policy = Policy::default().with(&args.overrides());
    Store::init(dir, policy).with_context(|| format!("cannot create a store in {}", dir.display()))?;
    eprintln!("created store {} ({policy})", dir.display());
    Ok(ExitCode::SUCCESS)
}
