//! `backup-fs stats [SNAPSHOT...]`.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};
use snapshot_store::{StorageCounts, Store, StoreStats, stats};

use crate::human;

pub fn run(store: &Store, snapshots: &[String], json: bool) -> Result<ExitCode> {
    let ids = snapshots
        .iter()
        .map(|s| store.resolve_snapshot(s))
        .collect::<snapshot_store::Result<Vec<_>>>()?;
    let s = stats(store, &ids)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&to_json(&s))?);
    } else {
        print_text(&s);
    }
    for (id, e) in &s.damaged {
        eprintln!("backup-fs: snapshot {id} cannot be read (not counted): {e}");
    }
    for m in &s.missing {
        eprintln!("backup-fs: {m} is missing from the store (see `backup-fs verify`)");
    }
    Ok(if s.damaged.is_empty() && s.missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_PARTIAL)
    })
}

fn counts_json(c: &StorageCounts) -> Value {
    json!({
        "whole": c.whole,
        "full": c.full,
        "merged": c.merged,
        "incremental": c.incremental,
        "differential": c.differential,
        "total": c.total(),
    })
}

fn to_json(s: &StoreStats) -> Value {
    let histogram: serde_json::Map<String, Value> = s.depths.iter().map(|(d, n)| (d.to_string(), json!(n))).collect();
    json!({
        "snapshots": s.snapshots.iter().map(|id| id.as_str()).collect::<Vec<_>>(),
        "logical_bytes": s.logical_bytes,
        "deduplicated_bytes": s.deduplicated_bytes,
        "stored_bytes": s.stored_bytes,
        "manifest_bytes": s.manifest_bytes,
        "record_bytes": s.record_bytes,
        "store_bytes": s.store_bytes,
        "files": counts_json(&s.files),
        "versions": counts_json(&s.versions),
        "dirs": s.others.dirs,
        "symlinks": s.others.symlinks,
        "special": s.others.special,
        "chain_depth": {
            "max": s.max_depth(),
            "mean": s.mean_depth(),
            "versions_by_depth": histogram,
        },
        "damaged": s.damaged.iter().map(|(id, e)| json!({ "id": id.as_str(), "error": e.to_string() })).collect::<Vec<_>>(),
        "missing": s.missing,
    })
}

fn counts_text(c: &StorageCounts) -> String {
    let parts: Vec<String> = [
        (c.whole, "whole"),
        (c.full, "full"),
        (c.merged, "merged"),
        (c.incremental, "incremental"),
        (c.differential, "differential"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        c.total().to_string()
    } else {
        format!("{} ({})", c.total(), parts.join(", "))
    }
}

fn print_text(s: &StoreStats) {
    let range = match (s.snapshots.first(), s.snapshots.last()) {
        (Some(a), Some(b)) if a != b => format!(" ({a} to {b})"),
        (Some(a), _) => format!(" ({a})"),
        _ => String::new(),
    };
    println!("snapshots           {}{range}", s.snapshots.len());
    println!(
        "logical size        {:>10}  what restoring them would write",
        human::size(s.logical_bytes)
    );
    println!(
        "deduplicated size   {:>10}  each distinct content once",
        human::size(s.deduplicated_bytes)
    );
    println!(
        "stored size         {:>10}  the store files they need (manifests {}, version records {})",
        human::size(s.stored_bytes),
        human::size(s.manifest_bytes),
        human::size(s.record_bytes)
    );
    println!(
        "store size          {:>10}  everything in the store",
        human::size(s.store_bytes)
    );
    println!("files               {}", counts_text(&s.files));
    println!("distinct contents   {}", counts_text(&s.versions));
    println!(
        "other entries       {} directories, {} symbolic links, {} special",
        s.others.dirs, s.others.symlinks, s.others.special
    );
    let chained: u64 = s.depths.values().sum();
    if chained > 0 {
        println!(
            "chain depth         max {}, mean {:.1} (of {chained} chain versions)",
            s.max_depth(),
            s.mean_depth()
        );
    }
}
