//! What a request path names in the view. WebDAV has no symbolic links, so `latest` in the
//! root is the newest snapshot's directory itself, and symbolic links and special files inside
//! snapshots are not shown. The root also holds `.metadata_never_index`, an empty file whose
//! presence keeps Spotlight from indexing the share.

use crate::error::ViewResult;
use crate::view::{Attr, Kind, LATEST, ROOT_INO, View};

/// The file in the root that tells Spotlight not to index the volume.
pub(super) const NEVER_INDEX: &[u8] = b".metadata_never_index";

/// `/.metadata_never_index`: empty, made up, numbered outside the view's inodes.
fn never_index() -> Attr {
    Attr {
        ino: 3,
        kind: Kind::File,
        size: 0,
        blocks: 0,
        perm: 0o444,
        nlink: 1,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        rdev: 0,
        immutable: true,
        content: None,
    }
}

/// Names of the files Finder and Explorer look for in every folder they open; a store root
/// never has them, so they are answered there without a look at the store.
fn is_probe(name: &[u8]) -> bool {
    name.starts_with(b"._")
        || matches!(
            name,
            b".DS_Store" | b".localized" | b"desktop.ini" | b"Desktop.ini" | b"Thumbs.db" | b".hidden"
        )
}

/// Shown over WebDAV: directories and regular files.
pub(super) fn shown(a: &Attr) -> bool {
    matches!(a.kind, Kind::Dir | Kind::File)
}

/// The root's child `name` as WebDAV shows it (`latest` as a directory).
pub(super) fn root_child(view: &View, name: &[u8]) -> ViewResult<Option<Attr>> {
    if name == LATEST {
        return match view.snapshots()?.last() {
            Some(id) => view.lookup(ROOT_INO, id.as_str().as_bytes()),
            None => Ok(None),
        };
    }
    if is_probe(name) {
        return Ok(None);
    }
    view.lookup(ROOT_INO, name)
}

/// What `path` (names from the root) names, or `None` when nothing by that path is shown.
pub(super) fn resolve(view: &View, path: &[Vec<u8>]) -> ViewResult<Option<Attr>> {
    let mut at = view.getattr(ROOT_INO)?;
    for (i, name) in path.iter().enumerate() {
        if at.kind != Kind::Dir {
            return Ok(None);
        }
        let child = if i == 0 {
            if name == NEVER_INDEX && path.len() == 1 {
                return Ok(Some(never_index()));
            }
            root_child(view, name)?
        } else {
            view.lookup_any_form(at.ino, name)?
        };
        match child {
            Some(a) if shown(&a) => at = a,
            _ => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// The shown entries of directory `dir` (without `.` and `..`), in the view's order; in the
/// root, `latest` is the newest snapshot's directory.
pub(super) fn children(view: &View, dir: &Attr) -> ViewResult<Vec<(Vec<u8>, Attr)>> {
    let listing = view.open_dir(dir.ino)?;
    let mut out = Vec::new();
    view.list(dir.ino, &listing, 2, |e| {
        out.push((e.name, e.attr));
        true
    })?;
    if dir.ino == ROOT_INO
        && let Some(i) = out.iter().position(|(n, _)| n == LATEST)
    {
        match root_child(view, LATEST)? {
            Some(a) => out[i].1 = a,
            None => {
                out.remove(i);
            }
        }
    }
    out.retain(|(_, a)| shown(a));
    Ok(out)
}
