//! `backup-fs cat SNAPSHOT PATH`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use snapshot_store::{EntryKind, Error, FileReader, Store};

use super::path_arg;

pub fn run(store: &Store, snapshot: &str, path: &str) -> Result<ExitCode> {
    let id = store.resolve_snapshot(snapshot)?;
    let snap = store.snapshot(&id)?;
    let entry = snap
        .lookup(&path_arg(path))
        .and_then(|i| snap.entry(i))
        .ok_or_else(|| Error::PathNotFound {
            snapshot: id.to_string(),
            path: path.to_string(),
        })?;
    if entry.kind != EntryKind::File {
        return Err(Error::WrongKind {
            snapshot: id.to_string(),
            path: path.to_string(),
            expected: "a regular file",
            actual: entry.kind.noun(),
        }
        .into());
    }
    let content = entry
        .content
        .ok_or_else(|| Error::corrupt(format!("snapshot {id}"), format!("{path} has no content")))?;
    let reader = FileReader::open(store, &content, entry.meta.size)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    reader
        .copy_to(&mut out, true)
        .with_context(|| format!("cannot read {path} of snapshot {id}"))?;
    out.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
