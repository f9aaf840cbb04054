//! Directory listings of the view: stable while open (offsets do not move as snapshots
//! appear), handed out in pages from any offset, `.` and `..` first.

use std::sync::Arc;

use snapshot_store::{EntryKind, Snapshot, SnapshotId};

use super::attr::Attr;
use super::inode::{Node, node_of};
use super::{LATEST, VERSIONS, View};
use crate::error::{ViewError, ViewResult};

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name.
    pub name: Vec<u8>,
    /// Its attributes.
    pub attr: Attr,
    /// The offset to pass to continue listing after this entry.
    pub next: u64,
}

/// A directory opened for listing.
#[derive(Debug, Clone)]
pub enum DirListing {
    /// The root: the snapshot ids when it was opened (offsets stay stable while new ones appear).
    Root(Arc<Vec<SnapshotId>>),
    /// A directory of the versions tree: its entries when it was opened.
    Versions(Arc<Vec<(Vec<u8>, Attr)>>),
    /// A directory of a snapshot (immutable).
    Snapshot {
        /// Snapshot number.
        snap: u32,
        /// Entry index of the directory.
        index: u32,
    },
}

/// Hands entries `offset..total` of a listing to `add` until it returns false (reply full);
/// `entry(i)` gives entry `i`'s name and attributes, or `None` to skip it.
fn page(
    offset: u64,
    total: usize,
    add: &mut impl FnMut(DirEntry) -> bool,
    mut entry: impl FnMut(usize) -> ViewResult<Option<(Vec<u8>, Attr)>>,
) -> ViewResult<()> {
    for i in offset as usize..total {
        let Some((name, attr)) = entry(i)? else { continue };
        if !add(DirEntry {
            name,
            attr,
            next: i as u64 + 1,
        }) {
            break;
        }
    }
    Ok(())
}

impl View {
    /// A stable listing of directory `ino` for paging (taken when the directory is opened).
    pub fn open_dir(&self, ino: u64) -> ViewResult<DirListing> {
        match node_of(ino).ok_or(ViewError::NoSuchInode(ino))? {
            Node::Root => Ok(DirListing::Root(self.snapshots()?)),
            Node::Latest => Err(ViewError::NotADirectory("latest".into())),
            Node::Versions { node } => Ok(DirListing::Versions(Arc::new(self.list_versions(node)?))),
            Node::Entry { snap, index } => {
                let (id, s) = self.snapshot(snap)?;
                match s.entry(index) {
                    Some(e) if e.kind == EntryKind::Dir => Ok(DirListing::Snapshot { snap, index }),
                    Some(_) => Err(ViewError::NotADirectory(describe(&id, &s, index))),
                    None => Err(ViewError::NoSuchInode(ino)),
                }
            }
        }
    }

    /// Lists `dir` from `offset` (0 to start, else a `next` value returned earlier), handing
    /// entries to `add` until it returns false (reply buffer full). `.` and `..` come first.
    pub fn list(
        &self,
        ino: u64,
        dir: &DirListing,
        offset: u64,
        mut add: impl FnMut(DirEntry) -> bool,
    ) -> ViewResult<()> {
        match dir {
            DirListing::Root(ids) => self.list_root(ids, offset, &mut add),
            DirListing::Versions(entries) => page(offset, entries.len(), &mut add, |i| Ok(entries.get(i).cloned())),
            DirListing::Snapshot { snap, index } => {
                let (id, s) = self.snapshot(*snap)?;
                let me = self.entry_attr(*snap, &id, &s, *index)?;
                let parent = if *index == Snapshot::ROOT {
                    self.root_attr()?
                } else {
                    let p = s.entry(*index).map_or(Snapshot::ROOT, |e| e.parent);
                    self.entry_attr(*snap, &id, &s, p)?
                };
                let e = s.entry(*index).ok_or(ViewError::NoSuchInode(ino))?;
                let children = e.children.clone();
                page(offset, 2 + children.len(), &mut add, |i| {
                    Ok(Some(match i {
                        0 => (b".".to_vec(), me),
                        1 => (b"..".to_vec(), parent),
                        _ => {
                            let child = children.start + (i - 2) as u32;
                            let name = s.entry(child).map(|c| c.name.clone()).unwrap_or_default();
                            (name, self.entry_attr(*snap, &id, &s, child)?)
                        }
                    }))
                })
            }
        }
    }

    /// Lists the root: `.`, `..`, `latest` (when there is a snapshot), `versions` and one
    /// directory per snapshot in `ids`.
    fn list_root(&self, ids: &[SnapshotId], offset: u64, add: &mut impl FnMut(DirEntry) -> bool) -> ViewResult<()> {
        let root = self.root_attr()?;
        let latest = if ids.is_empty() { None } else { self.latest_attr()? };
        let fixed: Vec<(Vec<u8>, Attr)> = [
            Some((b".".to_vec(), root)),
            Some((b"..".to_vec(), root)),
            latest.map(|a| (LATEST.to_vec(), a)),
            Some((VERSIONS.to_vec(), self.versions_attr(0)?)),
        ]
        .into_iter()
        .flatten()
        .collect();
        page(offset, fixed.len() + ids.len(), add, |i| {
            Ok(match fixed.get(i) {
                Some((n, a)) => Some((n.clone(), *a)),
                None => ids.get(i - fixed.len()).and_then(|id| {
                    self.number(id)
                        .map(|n| (id.as_str().as_bytes().to_vec(), self.snapshot_dir_attr(n, id)))
                }),
            })
        })
    }
}

/// `snapshot/path` of entry `index`, for messages.
pub(super) fn describe(id: &SnapshotId, s: &Snapshot, index: u32) -> String {
    format!("{id}/{}", String::from_utf8_lossy(&s.path_of(index)))
}
