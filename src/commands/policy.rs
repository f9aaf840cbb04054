//! `backup-fs policy show|set`, and the retention fields `init` shares with it.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use snapshot_store::{Retention, Span, Store, StoreConfig};

use crate::cli::{KeepArgs, PolicyAction, PolicyArgs, RetentionArgs};

/// Seconds in a span, for intervals: a month counts 30 days, a year 365.
pub fn span_seconds(s: Span) -> u64 {
    let days = u64::from(s.years) * 365 + u64::from(s.months) * 30 + u64::from(s.days);
    days * 86_400 + u64::from(s.hours) * 3600
}

/// `base` with the retention options given applied.
pub fn retention_with(mut base: Retention, keep: &KeepArgs, r: &RetentionArgs) -> Retention {
    base.keep = keep.apply(base.keep);
    if let Some(v) = r.delta_merge {
        base.delta_merge = v;
    }
    if let Some(v) = r.auto_prune {
        base.auto_prune = v;
    }
    if let Some(v) = r.merge_interval {
        base.merge_interval_s = v.0.map_or(0, span_seconds);
    }
    if let Some(v) = r.max_unused {
        base.max_unused = v;
    }
    if let Some(v) = r.grace {
        base.grace_s = v.0.map_or(0, span_seconds);
    }
    base
}

/// The stored policy as JSON.
pub fn policy_json(c: &StoreConfig) -> Value {
    let r = &c.retention;
    let k = &r.keep;
    json!({
        "format_version": c.format.number(),
        "delta": {
            "mode": c.policy.mode.to_string(),
            "block_size": c.policy.block_size.to_string(),
            "min_delta_size": c.policy.min_delta_size,
            "max_deltas": c.policy.max_deltas,
            "max_delta_ratio": c.policy.max_delta_ratio.map(|p| p.to_string()),
            "change_tracking": c.policy.change_tracking,
        },
        "retention": {
            "keep_last": k.last,
            "keep_hourly": k.hourly,
            "keep_daily": k.daily,
            "keep_weekly": k.weekly,
            "keep_monthly": k.monthly,
            "keep_yearly": k.yearly,
            "keep_within": k.within.map(|w| w.to_string()),
            "delta_merge": r.delta_merge,
            "auto_prune": r.auto_prune,
            "merge_interval_seconds": r.merge_interval_s,
            "max_unused": r.max_unused.to_string(),
            "grace_seconds": r.grace_s,
        },
    })
}

pub fn run(store: &Store, action: &PolicyAction) -> Result<ExitCode> {
    match action {
        PolicyAction::Show { json } => {
            let c = store.config();
            if *json {
                println!("{}", serde_json::to_string_pretty(&policy_json(c))?);
            } else {
                println!("delta:     {}", c.policy);
                println!("retention: {}", c.retention);
                println!("format:    version {}", c.format.number());
            }
        }
        PolicyAction::Set {
            policy,
            keep,
            retention,
        } => set(store, policy, keep, retention)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn set(store: &Store, policy: &PolicyArgs, keep: &KeepArgs, retention: &RetentionArgs) -> Result<()> {
    let lock = store.lock_writer(true).context("cannot change the policy")?;
    let mut config = store.config().clone();
    config.policy = config.policy.with(&policy.overrides());
    config.retention = retention_with(config.retention, keep, retention);
    let upgraded = config.format < snapshot_store::FormatVersion::CURRENT;
    config.format = snapshot_store::FormatVersion::CURRENT;
    let store = store
        .replace_config(&lock, &config)
        .context("cannot change the policy")?;
    if upgraded {
        eprintln!(
            "backup-fs: note: the store was upgraded to format version {} (older backup-fs builds cannot read it)",
            config.format.number()
        );
    }
    eprintln!("delta:     {}", store.config().policy);
    eprintln!("retention: {}", store.config().retention);
    Ok(())
}
