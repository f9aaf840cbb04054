//! `backup-fs find PATTERN...`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use snapshot_store::{NamePattern, Store, find, rfc3339};

use super::entries::{JsonArray, entry_json, long_line};

pub fn run(
    store: &Store,
    patterns: &[String],
    snapshots: &[String],
    ignore_case: bool,
    json: bool,
) -> Result<ExitCode> {
    let patterns = patterns
        .iter()
        .map(|p| NamePattern::new(p, ignore_case))
        .collect::<snapshot_store::Result<Vec<_>>>()?;
    let ids = snapshots
        .iter()
        .map(|s| store.resolve_snapshot(s))
        .collect::<snapshot_store::Result<Vec<_>>>()?;
    let report = find(store, &patterns, &ids)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if json {
        let mut a = JsonArray::new(&mut out)?;
        for m in &report.snapshots {
            for f in &m.found {
                let mut v = entry_json(&f.path, f.kind, &f.meta, None);
                if let Some(o) = v.as_object_mut() {
                    o.insert("snapshot".into(), m.snapshot.as_str().into());
                    o.insert("snapshot_time".into(), rfc3339(m.time_ns).into());
                }
                a.push(&v)?;
            }
        }
        a.finish()?;
    } else {
        for (n, m) in report.snapshots.iter().enumerate() {
            let s = if m.found.len() == 1 { "" } else { "es" };
            if n > 0 {
                writeln!(out)?;
            }
            writeln!(out, "snapshot {} ({} match{s}):", m.snapshot, m.found.len())?;
            for f in &m.found {
                writeln!(out, "  {}", long_line(&f.path, f.kind, &f.meta, None))?;
            }
        }
    }
    out.flush().context("writing to standard output")?;
    if report.snapshots.is_empty() && !json {
        eprintln!("no entry matches in the snapshots searched");
    }
    for (id, e) in &report.damaged {
        eprintln!("backup-fs: snapshot {id} cannot be read: {e}");
    }
    Ok(if report.damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_PARTIAL)
    })
}
