//! `backup-fs init`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use snapshot_store::{Policy, Retention, Store, StoreLocation};

use super::StoreArg;

use crate::cli::{KeepArgs, PolicyArgs, RetentionArgs};

pub fn run(
    store: &StoreArg,
    create_bucket: bool,
    args: &PolicyArgs,
    keep: &KeepArgs,
    retention: &RetentionArgs,
) -> Result<ExitCode> {
    let policy = Policy::default().with(&args.overrides());
    let retention = super::policy::retention_with(Retention::default(), keep, retention);
    let location = store.location()?;
    if create_bucket && matches!(location, StoreLocation::Local(_)) {
        anyhow::bail!("--create-bucket is for stores in an object store (s3:...), not directories");
    }
    Store::init_at(&location, policy, retention, store.options(), create_bucket)
        .with_context(|| format!("cannot create a store in {}", store.describe()))?;
    eprintln!("created store {} ({policy}; retention: {retention})", store.describe());
    Ok(ExitCode::SUCCESS)
}
