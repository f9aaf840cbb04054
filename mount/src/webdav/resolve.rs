//! What a request path names: the view's namespace without symbolic links
//! ([`View::resolve`]), plus what WebDAV clients need in the root: `.metadata_never_index`, an
//! empty file whose presence keeps Spotlight from indexing the share, and fast 404s for the
//! files Finder and Explorer look for in every folder they open.

use crate::error::ViewResult;
use crate::view::{Attr, Kind, View};

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

/// Names of the files Finder and Explorer probe for; a store root never has them, so they are
/// answered there without a look at the store (inside snapshots they are looked up: a backup
/// may hold them).
fn is_probe(name: &[u8]) -> bool {
    name.starts_with(b"._")
        || matches!(
            name,
            b".DS_Store" | b".localized" | b"desktop.ini" | b"Desktop.ini" | b"Thumbs.db" | b".hidden"
        )
}

/// What `path` (names from the root) names, or `None` when nothing by that path is shown.
pub(super) fn resolve(view: &View, path: &[Vec<u8>]) -> ViewResult<Option<Attr>> {
    match path {
        [only] if only == NEVER_INDEX => Ok(Some(never_index())),
        [first, ..] if is_probe(first) => Ok(None),
        _ => view.resolve(path),
    }
}
