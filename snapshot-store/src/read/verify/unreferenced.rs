//! The files of a store that nothing references: files prune condemned, waiting until no
//! reader needs them, and leftovers of interrupted writes or prunes (harmless; the next prune
//! deletes them).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::condemned::StoreFile;
use crate::id::{ObjectId, VersionId};
use crate::store::Store;

/// What nothing references, relative to the store, sorted.
pub(super) struct Unreferenced {
    /// Files in prune's condemned list.
    pub condemned: Vec<String>,
    /// Every other file in `objects/` and `versions/`, and everything in `tmp/`.
    pub leftovers: Vec<String>,
    /// Files in the condemned list that a snapshot references again (a write reused them;
    /// the next prune keeps them).
    pub reused: Vec<String>,
}

/// Sorts every file of `objects/`, `versions/` and `tmp/` that is not in `objects` or
/// `versions` into condemned files and leftovers.
pub(super) fn list(store: &Store, objects: &HashSet<ObjectId>, versions: &HashSet<VersionId>) -> Result<Unreferenced> {
    let condemned: HashSet<StoreFile> = store
        .condemned_list()?
        .map(|l| l.entries.into_iter().map(|c| c.file).collect())
        .unwrap_or_default();
    let rel = |p: &Path| p.strip_prefix(store.root()).unwrap_or(p).display().to_string();
    let mut reused: Vec<String> = condemned
        .iter()
        .filter(|f| match f {
            StoreFile::Version(v) => versions.contains(v),
            StoreFile::Object(o) => objects.contains(o),
        })
        .map(|f| rel(&store.store_file_path(f)))
        .collect();
    reused.sort();
    let mut out = Unreferenced {
        condemned: Vec::new(),
        leftovers: list_leftovers(store, objects, versions)?,
        reused,
    };
    let (waiting, leftovers): (Vec<String>, Vec<String>) = out.leftovers.drain(..).partition(|p| {
        let name = Path::new(p).file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let file = if p.starts_with("versions") {
            VersionId::from_hex(name).map(StoreFile::Version)
        } else {
            ObjectId::from_hex(name).map(StoreFile::Object)
        };
        file.is_some_and(|f| condemned.contains(&f))
    });
    out.condemned = waiting;
    out.leftovers = leftovers;
    Ok(out)
}

/// Every file in `objects/` and `versions/` not in `objects` or `versions`, and everything in
/// `tmp/`, relative to the store, sorted.
fn list_leftovers(store: &Store, objects: &HashSet<ObjectId>, versions: &HashSet<VersionId>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (dir, is_object) in [("objects", true), ("versions", false)] {
        for (key, _) in store.backend().list(dir)? {
            let name = key.file_name();
            let known = if is_object {
                ObjectId::from_hex(name).is_some_and(|id| objects.contains(&id))
            } else {
                VersionId::from_hex(name).is_some_and(|id| versions.contains(&id))
            };
            if !known {
                out.push(key.as_str().to_string());
            }
        }
    }
    let spool = store.tmp_dir();
    for path in list_files(&spool)? {
        let rel = path.strip_prefix(&spool).unwrap_or(&path).display().to_string();
        out.push(format!("tmp/{rel}"));
    }
    out.sort();
    Ok(out)
}

/// Every file under `dir`, recursively (none when it does not exist).
fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match fs::read_dir(&d) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&d, e)),
        };
        for e in rd {
            let e = e.map_err(|err| Error::io(&d, err))?;
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    Ok(out)
}
