//! The files of a store that nothing references: garbage of interrupted writes, harmless.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::id::{ObjectId, VersionId};
use crate::store::Store;

/// Every file in `objects/` and `versions/` not in `objects` or `versions`, and everything in
/// `tmp/`, relative to the store, sorted.
pub(super) fn list(store: &Store, objects: &HashSet<ObjectId>, versions: &HashSet<VersionId>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let root = store.root();
    for (dir, is_object) in [("objects", true), ("versions", false)] {
        for path in list_files(&root.join(dir))? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let known = if is_object {
                ObjectId::from_hex(name).is_some_and(|id| objects.contains(&id))
            } else {
                VersionId::from_hex(name).is_some_and(|id| versions.contains(&id))
            };
            if !known {
                out.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
            }
        }
    }
    for path in list_files(&root.join("tmp"))? {
        out.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
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
