//! The attributes of the view's nodes: synthesised for the root, `latest` and each snapshot
//! directory (so that listing hundreds of snapshots loads no manifest), as backed up for
//! everything inside a snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use snapshot_store::{Entry, EntryKind, Snapshot, SnapshotId};

use super::View;
use super::inode::{LATEST_INO, ROOT_INO, ino_of};
use crate::error::{ViewError, ViewResult};

/// What a node is: the store's own entry kinds.
pub use snapshot_store::EntryKind as Kind;

/// The attributes of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// What it is.
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Allocated 512-byte blocks (as the source had them: holes show).
    pub blocks: u64,
    /// Permission bits.
    pub perm: u16,
    /// Link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Device number of device nodes.
    pub rdev: u64,
    /// True for nodes that never change (everything inside a snapshot).
    pub immutable: bool,
    /// A regular file's content id (blake3 of its bytes): equal ids, equal bytes.
    pub content: Option<snapshot_store::VersionId>,
}

impl Attr {
    /// The modification time as a `SystemTime` (before 1970 too).
    pub fn mtime(&self) -> std::time::SystemTime {
        let epoch = std::time::UNIX_EPOCH;
        let ns = self.mtime_ns;
        if ns >= 0 {
            epoch + std::time::Duration::from_nanos(ns as u64)
        } else {
            epoch - std::time::Duration::from_nanos(ns.unsigned_abs())
        }
    }
}

/// Hard-link groups of one snapshot: group → (first entry, number of entries).
pub(super) type LinkGroups = HashMap<u32, (u32, u32)>;

impl View {
    pub(super) fn root_attr(&self) -> ViewResult<Attr> {
        let ids = self.snapshots()?;
        Ok(Attr {
            ino: ROOT_INO,
            kind: Kind::Dir,
            size: 0,
            blocks: 0,
            perm: 0o555,
            nlink: 3 + ids.len() as u32,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: ids.last().map_or(0, SnapshotId::time_ns),
            rdev: 0,
            immutable: false,
            content: None,
        })
    }

    pub(super) fn latest_attr(&self) -> ViewResult<Option<Attr>> {
        let ids = self.snapshots()?;
        Ok(ids.last().map(|id| Attr {
            ino: LATEST_INO,
            kind: Kind::Symlink,
            size: id.as_str().len() as u64,
            blocks: 0,
            perm: 0o777,
            nlink: 1,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: id.time_ns(),
            rdev: 0,
            immutable: false,
            content: None,
        }))
    }

    pub(super) fn snapshot_dir_attr(&self, snap: u32, id: &SnapshotId) -> Attr {
        Attr {
            ino: ino_of(snap, Snapshot::ROOT),
            kind: Kind::Dir,
            size: 0,
            blocks: 0,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: id.time_ns(),
            rdev: 0,
            immutable: true,
            content: None,
        }
    }

    pub(super) fn entry_attr(&self, snap: u32, id: &SnapshotId, s: &Snapshot, index: u32) -> ViewResult<Attr> {
        if index == Snapshot::ROOT {
            return Ok(self.snapshot_dir_attr(snap, id));
        }
        let e = s.entry(index).ok_or(ViewError::NoSuchInode(ino_of(snap, index)))?;
        let (ino, nlink) = if e.hardlink != 0 {
            let groups = self.link_groups(snap, s);
            let (first, count) = groups.get(&e.hardlink).copied().unwrap_or((index, 1));
            (ino_of(snap, first), count)
        } else if e.kind == EntryKind::Dir {
            (ino_of(snap, index), 2 + subdirs(s, e))
        } else {
            (ino_of(snap, index), 1)
        };
        Ok(Attr {
            ino,
            kind: e.kind,
            size: if e.kind == EntryKind::Dir { 0 } else { e.meta.size },
            blocks: e.meta.blocks,
            perm: (e.meta.mode & 0o7777) as u16,
            nlink,
            uid: e.meta.uid,
            gid: e.meta.gid,
            mtime_ns: e.meta.mtime_ns,
            rdev: e.meta.rdev,
            immutable: true,
            content: e.content.map(|c| c.version),
        })
    }

    fn link_groups(&self, snap: u32, s: &Snapshot) -> Arc<LinkGroups> {
        if let Some(g) = self.links.lock().get(&snap) {
            return Arc::clone(g);
        }
        let mut groups: LinkGroups = HashMap::new();
        for (i, e) in s.entries.iter().enumerate() {
            if e.hardlink != 0 {
                groups.entry(e.hardlink).or_insert((i as u32, 0)).1 += 1;
            }
        }
        let groups = Arc::new(groups);
        self.links.lock().insert(snap, Arc::clone(&groups));
        groups
    }
}

/// Number of child directories of `e` (for the link count of a directory).
fn subdirs(s: &Snapshot, e: &Entry) -> u32 {
    e.children
        .clone()
        .filter(|&c| s.entry(c).is_some_and(|k| k.kind == EntryKind::Dir))
        .count() as u32
}
