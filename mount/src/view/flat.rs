//! The namespace as front ends without symbolic links show it (WebDAV, Explorer): `latest` in
//! the root is the newest snapshot's directory itself, and symbolic links and special files
//! inside snapshots are left out. Paths are lists of names from the root.

use super::{Attr, Kind, LATEST, ROOT_INO, View};
use crate::error::ViewResult;

/// True for what these front ends show: directories and regular files.
pub fn shown(a: &Attr) -> bool {
    matches!(a.kind, Kind::Dir | Kind::File)
}

impl View {
    /// The root's child `name` with `latest` as the newest snapshot's directory.
    pub fn root_child(&self, name: &[u8]) -> ViewResult<Option<Attr>> {
        if name == LATEST {
            return match self.snapshots()?.last() {
                Some(id) => self.lookup(ROOT_INO, id.as_str().as_bytes()),
                None => Ok(None),
            };
        }
        self.lookup(ROOT_INO, name)
    }

    /// What `path` names (each name matched in either Unicode normalization), or `None` when
    /// nothing by that path is shown.
    pub fn resolve(&self, path: &[Vec<u8>]) -> ViewResult<Option<Attr>> {
        let mut at = self.getattr(ROOT_INO)?;
        for (i, name) in path.iter().enumerate() {
            if at.kind != Kind::Dir {
                return Ok(None);
            }
            let child = if i == 0 {
                self.root_child(name)?
            } else {
                self.lookup_any_form(at.ino, name)?
            };
            match child {
                Some(a) if shown(&a) => at = a,
                _ => return Ok(None),
            }
        }
        Ok(Some(at))
    }

    /// The shown entries of directory `dir` (without `.` and `..`), in the view's order.
    pub fn shown_children(&self, dir: &Attr) -> ViewResult<Vec<(Vec<u8>, Attr)>> {
        let listing = self.open_dir(dir.ino)?;
        let mut out = Vec::new();
        self.list(dir.ino, &listing, 2, |e| {
            out.push((e.name, e.attr));
            true
        })?;
        if dir.ino == ROOT_INO
            && let Some(i) = out.iter().position(|(n, _)| n == LATEST)
        {
            match self.root_child(LATEST)? {
                Some(a) => out[i].1 = a,
                None => {
                    out.remove(i);
                }
            }
        }
        out.retain(|(_, a)| shown(a));
        Ok(out)
    }
}
