//! The read-only namespace every front end serves, independent of any filesystem API.
//!
//! ```text
//! /                         ROOT_INO
//!   latest -> <newest id>   LATEST_INO, a symbolic link
//!   <snapshot id>/          the snapshot's tree, one directory per snapshot
//! ```
//!
//! Inode numbers are stable for the life of a mount: snapshot `n` (numbered in the order this
//! view first saw it) and entry `i` of its manifest give `(n + 1) << 32 | i`; entries of one
//! hard-link group share the inode of the group's first entry. Snapshot directories carry
//! synthesised attributes (read-only, owned by the mounting user, timed at the snapshot) so that
//! listing hundreds of snapshots loads no manifest; everything inside is the tree as backed up.
//! New snapshots appear as soon as the store has them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use snapshot_store::{Entry, EntryKind, Error, FileReader, Result, Snapshot, SnapshotId, Store};

/// Inode of the mount's root directory.
pub const ROOT_INO: u64 = 1;
/// Inode of the `latest` symbolic link.
pub const LATEST_INO: u64 = 2;
/// Name of the symbolic link to the newest snapshot.
pub const LATEST: &[u8] = b"latest";
/// How often the root re-reads the store's snapshot list when asked about an unknown name.
const REFRESH: Duration = Duration::from_millis(500);

/// Hands entries `offset..total` of a listing to `add` until it returns false (reply full);
/// `entry(i)` gives entry `i`'s name and attributes, or `None` to skip it.
fn page(
    offset: u64,
    total: usize,
    add: &mut impl FnMut(DirEntry) -> bool,
    mut entry: impl FnMut(usize) -> Result<Option<(Vec<u8>, Attr)>>,
) -> Result<()> {
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
}

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

/// What an inode number designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Root,
    Latest,
    Entry { snap: u32, index: u32 },
}

fn node_of(ino: u64) -> Option<Node> {
    match ino {
        ROOT_INO => Some(Node::Root),
        LATEST_INO => Some(Node::Latest),
        _ if ino >> 32 >= 1 => Some(Node::Entry {
            snap: ((ino >> 32) - 1) as u32,
            index: ino as u32,
        }),
        _ => None,
    }
}

fn ino_of(snap: u32, index: u32) -> u64 {
    ((u64::from(snap) + 1) << 32) | u64::from(index)
}

/// Hard-link groups of one snapshot: group → (first entry, number of entries).
type LinkGroups = HashMap<u32, (u32, u32)>;

#[derive(Default)]
struct SnapshotTable {
    /// Ids by snapshot number (never shrinks during a mount).
    by_number: Vec<SnapshotId>,
    numbers: HashMap<SnapshotId, u32>,
    /// Ids currently in the store, sorted (oldest first).
    listed: Arc<Vec<SnapshotId>>,
    refreshed: Option<Instant>,
}

/// Whether a mount serves extended attributes.
///
/// Serving them costs one round trip to the mount per file and attribute name asked (`ls -l`
/// asks every entry for `security.selinux`, and the kernel never caches a "no such attribute"
/// answer); a mount that has none says so once and the kernel stops asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrPolicy {
    /// Serve them when the store records any when mounted (its `xattrs` marker exists).
    #[default]
    Auto,
    /// Always serve them (snapshots written while mounted show theirs too).
    On,
    /// Never: the mount has no extended attributes.
    Off,
}

/// The read-only view of a store.
pub struct View {
    store: Store,
    table: RwLock<SnapshotTable>,
    links: Mutex<HashMap<u32, Arc<LinkGroups>>>,
    uid: u32,
    gid: u32,
    serve_xattrs: bool,
    /// Set once the user was told that new snapshots' attributes stay hidden until a remount.
    hidden_xattrs_told: AtomicBool,
}

impl View {
    /// A view of `store`; synthesised nodes are owned by `uid`/`gid`.
    pub fn new(store: Store, uid: u32, gid: u32, xattrs: XattrPolicy) -> Result<View> {
        let serve_xattrs = match xattrs {
            XattrPolicy::Auto => store.records_xattrs(),
            XattrPolicy::On => true,
            XattrPolicy::Off => false,
        };
        let view = View {
            store,
            table: RwLock::new(SnapshotTable::default()),
            links: Mutex::new(HashMap::new()),
            uid,
            gid,
            serve_xattrs,
            hidden_xattrs_told: AtomicBool::new(serve_xattrs || xattrs == XattrPolicy::Off),
        };
        view.refresh()?;
        Ok(view)
    }

    /// True when the mount serves extended attributes; fixed for the life of the mount.
    pub fn serves_xattrs(&self) -> bool {
        self.serve_xattrs
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Re-reads the store's snapshot list (new snapshots get the next numbers).
    pub fn refresh(&self) -> Result<Arc<Vec<SnapshotId>>> {
        let ids = self.store.snapshot_ids()?;
        let mut t = self.table.write();
        let known = t.by_number.len();
        for id in &ids {
            if !t.numbers.contains_key(id) {
                let n = t.by_number.len() as u32;
                t.by_number.push(id.clone());
                t.numbers.insert(id.clone(), n);
            }
        }
        if known > 0
            && t.by_number.len() > known
            && !self.hidden_xattrs_told.load(Ordering::Relaxed)
            && self.store.records_xattrs()
            && !self.hidden_xattrs_told.swap(true, Ordering::Relaxed)
        {
            eprintln!(
                "backup-fs mount: snapshots written since the mount record extended attributes; \
                 this mount does not show them (remount, or mount with --xattrs on)"
            );
        }
        t.listed = Arc::new(ids);
        t.refreshed = Some(Instant::now());
        Ok(Arc::clone(&t.listed))
    }

    /// The snapshots now in the store, oldest first (refreshed at most every half second).
    pub fn snapshots(&self) -> Result<Arc<Vec<SnapshotId>>> {
        {
            let t = self.table.read();
            if t.refreshed.is_some_and(|r| r.elapsed() < REFRESH) {
                return Ok(Arc::clone(&t.listed));
            }
        }
        self.refresh()
    }

    fn number(&self, id: &SnapshotId) -> Option<u32> {
        self.table.read().numbers.get(id).copied()
    }

    fn id_of(&self, snap: u32) -> Result<SnapshotId> {
        self.table
            .read()
            .by_number
            .get(snap as usize)
            .cloned()
            .ok_or_else(|| Error::SnapshotNotFound { id: format!("#{snap}") })
    }

    fn snapshot(&self, snap: u32) -> Result<(SnapshotId, Arc<Snapshot>)> {
        let id = self.id_of(snap)?;
        let s = self.store.snapshot(&id)?;
        Ok((id, s))
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

    fn root_attr(&self) -> Result<Attr> {
        let ids = self.snapshots()?;
        Ok(Attr {
            ino: ROOT_INO,
            kind: Kind::Dir,
            size: 0,
            blocks: 0,
            perm: 0o555,
            nlink: 2 + ids.len() as u32,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: ids.last().map_or(0, snapshot_time),
            rdev: 0,
            immutable: false,
        })
    }

    fn latest_attr(&self) -> Result<Option<Attr>> {
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
            mtime_ns: snapshot_time(id),
            rdev: 0,
            immutable: false,
        }))
    }

    fn snapshot_dir_attr(&self, snap: u32, id: &SnapshotId) -> Attr {
        Attr {
            ino: ino_of(snap, Snapshot::ROOT),
            kind: Kind::Dir,
            size: 0,
            blocks: 0,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: snapshot_time(id),
            rdev: 0,
            immutable: true,
        }
    }

    fn entry_attr(&self, snap: u32, id: &SnapshotId, s: &Snapshot, index: u32) -> Result<Attr> {
        if index == Snapshot::ROOT {
            return Ok(self.snapshot_dir_attr(snap, id));
        }
        let e = s.entry(index).ok_or_else(|| not_found(id, "no such inode"))?;
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
        })
    }

    /// The attributes of inode `ino`.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        match node_of(ino).ok_or_else(|| bad_inode(ino))? {
            Node::Root => self.root_attr(),
            Node::Latest => self.latest_attr()?.ok_or_else(|| bad_inode(ino)),
            Node::Entry { snap, index } => {
                let (id, s) = self.snapshot(snap)?;
                self.entry_attr(snap, &id, &s, index)
            }
        }
    }

    /// The child `name` of directory `parent`. `Ok(None)` when there is no such entry.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Option<Attr>> {
        match node_of(parent).ok_or_else(|| bad_inode(parent))? {
            Node::Root => {
                if name == LATEST {
                    return self.latest_attr();
                }
                let Some(id) = std::str::from_utf8(name).ok().and_then(SnapshotId::parse) else {
                    return Ok(None);
                };
                let mut known = self.snapshots()?.binary_search(&id).is_ok();
                if !known {
                    // Perhaps written a moment ago.
                    known = self.refresh()?.binary_search(&id).is_ok();
                }
                match (known, self.number(&id)) {
                    (true, Some(n)) => Ok(Some(self.snapshot_dir_attr(n, &id))),
                    _ => Ok(None),
                }
            }
            Node::Latest => Err(not_a_directory(b"latest")),
            Node::Entry { snap, index } => {
                let (id, s) = self.snapshot(snap)?;
                let e = s.entry(index).ok_or_else(|| bad_inode(parent))?;
                if e.kind != EntryKind::Dir {
                    return Err(not_a_directory(&s.path_of(index)));
                }
                match s.child(index, name) {
                    Some(child) => self.entry_attr(snap, &id, &s, child).map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// The target of symbolic link `ino`.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        match node_of(ino).ok_or_else(|| bad_inode(ino))? {
            Node::Latest => self
                .snapshots()?
                .last()
                .map(|id| id.as_str().as_bytes().to_vec())
                .ok_or_else(|| bad_inode(ino)),
            Node::Entry { snap, index } => {
                let (_, s) = self.snapshot(snap)?;
                match s.entry(index) {
                    Some(Entry {
                        kind: EntryKind::Symlink,
                        target: Some(t),
                        ..
                    }) => Ok(t.clone()),
                    _ => Err(Error::InvalidArgument(format!("inode {ino} is not a symbolic link"))),
                }
            }
            Node::Root => Err(Error::InvalidArgument("the root is not a symbolic link".into())),
        }
    }

    /// A stable listing of directory `ino` for paging (taken when the directory is opened).
    pub fn open_dir(&self, ino: u64) -> Result<DirListing> {
        match node_of(ino).ok_or_else(|| bad_inode(ino))? {
            Node::Root => Ok(DirListing::Root(self.snapshots()?)),
            Node::Latest => Err(not_a_directory(b"latest")),
            Node::Entry { snap, index } => {
                let (_, s) = self.snapshot(snap)?;
                match s.entry(index) {
                    Some(e) if e.kind == EntryKind::Dir => Ok(DirListing::Snapshot { snap, index }),
                    _ => Err(not_a_directory(&s.path_of(index))),
                }
            }
        }
    }

    /// Lists `dir` from `offset` (0 to start, else a `next` value returned earlier), handing
    /// entries to `add` until it returns false (reply buffer full). `.` and `..` come first.
    pub fn list(&self, ino: u64, dir: &DirListing, offset: u64, mut add: impl FnMut(DirEntry) -> bool) -> Result<()> {
        match dir {
            DirListing::Root(ids) => {
                let root = self.root_attr()?;
                let latest = if ids.is_empty() { None } else { self.latest_attr()? };
                let fixed: Vec<(Vec<u8>, Attr)> = [
                    Some((b".".to_vec(), root)),
                    Some((b"..".to_vec(), root)),
                    latest.map(|a| (LATEST.to_vec(), a)),
                ]
                .into_iter()
                .flatten()
                .collect();
                page(offset, fixed.len() + ids.len(), &mut add, |i| {
                    Ok(match fixed.get(i) {
                        Some((n, a)) => Some((n.clone(), *a)),
                        None => {
                            let id = &ids[i - fixed.len()];
                            self.number(id)
                                .map(|n| (id.as_str().as_bytes().to_vec(), self.snapshot_dir_attr(n, id)))
                        }
                    })
                })
            }
            DirListing::Snapshot { snap, index } => {
                let (id, s) = self.snapshot(*snap)?;
                let me = self.entry_attr(*snap, &id, &s, *index)?;
                let parent = if *index == Snapshot::ROOT {
                    self.root_attr()?
                } else {
                    let p = s.entry(*index).map_or(Snapshot::ROOT, |e| e.parent);
                    self.entry_attr(*snap, &id, &s, p)?
                };
                let e = s.entry(*index).ok_or_else(|| bad_inode(ino))?;
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

    /// Opens regular file `ino` for reading.
    pub fn open(&self, ino: u64) -> Result<FileReader> {
        let Some(Node::Entry { snap, index }) = node_of(ino) else {
            return Err(Error::InvalidArgument(format!("inode {ino} is not a regular file")));
        };
        let (id, s) = self.snapshot(snap)?;
        let e = s.entry(index).ok_or_else(|| bad_inode(ino))?;
        let Some(content) = e.content.filter(|_| e.kind == EntryKind::File) else {
            return Err(Error::WrongKind {
                snapshot: id.to_string(),
                path: String::from_utf8_lossy(&s.path_of(index)).into_owned(),
                expected: "a regular file",
                actual: e.kind.noun(),
            });
        };
        FileReader::open(&self.store, &content, e.meta.size)
    }

    /// `snapshot/path` of inode `ino`, for messages.
    pub fn describe(&self, ino: u64) -> String {
        match node_of(ino) {
            Some(Node::Root) => "/".into(),
            Some(Node::Latest) => "latest".into(),
            Some(Node::Entry { snap, index }) => match self.snapshot(snap) {
                Ok((id, s)) => format!("{id}/{}", String::from_utf8_lossy(&s.path_of(index))),
                Err(_) => format!("inode {ino}"),
            },
            None => format!("inode {ino}"),
        }
    }

    /// The `user.*` extended attributes of inode `ino`.
    pub fn xattrs(&self, ino: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        match node_of(ino) {
            Some(Node::Entry { snap, index }) if index != Snapshot::ROOT => {
                let (_, s) = self.snapshot(snap)?;
                Ok(s.entry(index).map(|e| e.meta.xattrs.clone()).unwrap_or_default())
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// A directory opened for listing.
#[derive(Debug, Clone)]
pub enum DirListing {
    /// The root: the snapshot ids when it was opened (offsets stay stable while new ones appear).
    Root(Arc<Vec<SnapshotId>>),
    /// A directory of a snapshot (immutable).
    Snapshot {
        /// Snapshot number.
        snap: u32,
        /// Entry index of the directory.
        index: u32,
    },
}

/// Number of child directories of `e` (for the link count of a directory).
fn subdirs(s: &Snapshot, e: &Entry) -> u32 {
    e.children
        .clone()
        .filter(|&c| s.entry(c).is_some_and(|k| k.kind == EntryKind::Dir))
        .count() as u32
}

/// The time of a snapshot from its id (second resolution).
pub fn snapshot_time(id: &SnapshotId) -> i64 {
    id.time_ns()
}

fn bad_inode(ino: u64) -> Error {
    Error::PathNotFound {
        snapshot: "-".into(),
        path: format!("inode {ino}"),
    }
}

fn not_found(id: &SnapshotId, what: &str) -> Error {
    Error::PathNotFound {
        snapshot: id.to_string(),
        path: what.to_string(),
    }
}

fn not_a_directory(path: &[u8]) -> Error {
    Error::WrongKind {
        snapshot: "-".into(),
        path: String::from_utf8_lossy(path).into_owned(),
        expected: "a directory",
        actual: "not a directory",
    }
}
