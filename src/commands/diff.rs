//! `backup-fs diff SNAP1 SNAP2 [PATH]`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use snapshot_store::{Change, Error, Store, diff_snapshots};

use super::entries::{JsonArray, kind_name, path_text};
use super::path_arg;
use crate::human;

pub fn run(store: &Store, older: &str, newer: &str, path: Option<&str>, json: bool) -> Result<ExitCode> {
    let (ia, ib) = (store.resolve_snapshot(older)?, store.resolve_snapshot(newer)?);
    let (a, b) = (store.snapshot(&ia)?, store.snapshot(&ib)?);
    let sub = path_arg(path.unwrap_or_default());
    let (at_a, at_b) = (a.lookup(&sub), b.lookup(&sub));
    if at_a.is_none() && at_b.is_none() {
        return Err(Error::PathNotFound {
            snapshot: format!("{ia} or {ib}"),
            path: path.unwrap_or_default().to_string(),
        }
        .into());
    }
    // A path only one snapshot has is all added or all removed.
    let none = u32::MAX;
    let d = diff_snapshots(&a, at_a.unwrap_or(none), &b, at_b.unwrap_or(none));
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let t = &d.totals;
    if json {
        // {"older": .., "newer": .., "changes": [..], "totals": {..}}, the changes streamed.
        write!(
            out,
            "{{\"older\": {}, \"newer\": {}, \"changes\": ",
            json!(ia.as_str()),
            json!(ib.as_str())
        )?;
        let mut a = JsonArray::new(&mut out)?;
        for c in &d.changes {
            a.push(&change_json(c))?;
        }
        a.finish()?;
        let totals = json!({
            "added": t.added,
            "removed": t.removed,
            "modified": t.modified,
            "kind_changed": t.kind_changed,
            "metadata": t.metadata,
            "bytes_added": t.bytes_added,
            "bytes_removed": t.bytes_removed,
        });
        writeln!(out, ", \"totals\": {totals}}}")?;
    } else {
        for c in &d.changes {
            writeln!(out, "{}  {}", c.kind.mark(), path_text(&c.path))?;
        }
        writeln!(
            out,
            "\n{} added, {} removed, {} modified, {} changed kind, {} metadata only; {} added, {} removed",
            t.added,
            t.removed,
            t.modified,
            t.kind_changed,
            t.metadata,
            human::size(t.bytes_added),
            human::size(t.bytes_removed)
        )?;
    }
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}

fn change_json(c: &Change) -> serde_json::Value {
    json!({
        "change": c.kind.as_str(),
        "path": path_text(&c.path),
        "kind_before": c.before.map(kind_name),
        "kind_after": c.after.map(kind_name),
        "size_before": c.size_before,
        "size_after": c.size_after,
    })
}
