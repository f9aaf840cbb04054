//! `backup-fs ls SNAPSHOT [PATH]`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use snapshot_store::{Entry, EntryKind, Error, Snapshot, Store};

use super::entries::{JsonArray, entry_json, long_line, path_text};
use super::path_arg;

/// What `ls` prints.
pub struct Options {
    /// `ls -l` lines.
    pub long: bool,
    /// Everything under the path, not only what it holds.
    pub recursive: bool,
    /// A JSON array.
    pub json: bool,
}

pub fn run(store: &Store, snapshot: &str, path: Option<&str>, o: &Options) -> Result<ExitCode> {
    let id = store.resolve_snapshot(snapshot)?;
    let snap = store.snapshot(&id)?;
    let at = snap
        .lookup(&path_arg(path.unwrap_or_default()))
        .ok_or_else(|| Error::PathNotFound {
            snapshot: id.to_string(),
            path: path.unwrap_or_default().to_string(),
        })?;
    // A directory lists what it holds; anything else lists itself.
    let listed: Box<dyn Iterator<Item = u32>> = match snap.entry(at).map(|e| e.kind) {
        Some(EntryKind::Dir) if o.recursive => Box::new(snap.walk(at)),
        Some(EntryKind::Dir) => Box::new(snap.children_indexes(at)),
        _ => Box::new(std::iter::once(at)),
    };
    let out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    print(&snap, listed, o, out).context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}

fn print(snap: &Snapshot, listed: impl Iterator<Item = u32>, o: &Options, mut out: impl Write) -> std::io::Result<()> {
    let with = |i: u32| snap.entry(i).map(|e| (snap.path_of(i), e));
    if o.json {
        let mut a = JsonArray::new(out)?;
        for (path, e) in listed.filter_map(with) {
            a.push(&entry_json(&path, e.kind, &e.meta, target(e)))?;
        }
        a.finish()?;
        return Ok(());
    }
    for (path, e) in listed.filter_map(with) {
        if o.long {
            writeln!(out, "{}", long_line(&path, e.kind, &e.meta, target(e)))?;
        } else if e.kind == EntryKind::Dir {
            writeln!(out, "{}/", path_text(&path))?;
        } else {
            writeln!(out, "{}", path_text(&path))?;
        }
    }
    out.flush()
}

fn target(e: &Entry) -> Option<&[u8]> {
    e.target.as_deref().filter(|_| e.kind == EntryKind::Symlink)
}
