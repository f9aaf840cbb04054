//! Building the change sources of a change-tracked `write` from the command line.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use snapshot_store::{ChangeProvider, ListProvider, RangeSet, ReflinkProvider, Store, Tracking};

/// The change sources for a write of `source` into `store`, best first: reflink references, the
/// `backup-fs track` change log, then an outside list.
pub fn sources(store: &Store, source: &Path, changed_ranges: Option<&Path>, verify_sample: u32) -> Result<Tracking> {
    let mut providers: Vec<Box<dyn ChangeProvider>> = Vec::new();
    providers.push(Box::new(ReflinkProvider::open(store, source).with_context(|| {
        format!("cannot set up reflink references for {}", source.display())
    })?));
    #[cfg(target_os = "linux")]
    providers.push(Box::new(snapshot_store::change_log::FanotifyProvider::open(
        store,
        &std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf()),
    )));
    if let Some(list) = changed_ranges {
        providers.push(Box::new(read_list(list)?));
    }
    Ok(Tracking {
        providers,
        verify_sample,
    })
}

/// Parses a --changed-ranges file: one JSON object per line with `path` and either `ranges`
/// (`[[offset, length], ...]`) or `"whole": true`.
fn read_list(path: &Path) -> Result<ListProvider> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut files = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let v: Value = serde_json::from_str(line).with_context(at)?;
        let Some(p) = v.get("path").and_then(Value::as_str) else {
            bail!("{}: missing \"path\"", at());
        };
        let ranges = if v.get("whole").and_then(Value::as_bool) == Some(true) {
            RangeSet::one(0..u64::MAX)
        } else {
            let Some(list) = v.get("ranges").and_then(Value::as_array) else {
                bail!("{}: missing \"ranges\" (or \"whole\": true)", at());
            };
            let mut rs = Vec::with_capacity(list.len());
            for r in list {
                let pair = r.as_array().filter(|a| a.len() == 2);
                let (Some(off), Some(len)) = (
                    pair.and_then(|a| a.first()).and_then(Value::as_u64),
                    pair.and_then(|a| a.get(1)).and_then(Value::as_u64),
                ) else {
                    bail!("{}: each range must be [offset, length] with whole numbers", at());
                };
                rs.push(off..off.saturating_add(len));
            }
            RangeSet::from_ranges(rs)
        };
        files.push((p.to_string(), ranges));
    }
    Ok(ListProvider::new(files))
}
