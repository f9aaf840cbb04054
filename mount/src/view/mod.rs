//! The read-only namespace every front end serves, independent of any filesystem API.
//!
//! ```text
//! /                         ROOT_INO
//!   latest -> <newest id>   LATEST_INO, a symbolic link
//!   versions/               every distinct version of each file, side by side (`versions`)
//!   <snapshot id>/          the snapshot's tree, one directory per snapshot
//! ```
//!
//! Inode numbers are stable for the life of a mount (`inode`); entries of one hard-link group
//! share the inode of the group's first entry. Snapshot directories carry synthesised attributes
//! (read-only, owned by the mounting user, timed at the snapshot) so that listing hundreds of
//! snapshots loads no manifest; everything inside is the tree as backed up (`attr`). Listings
//! are paged (`listing`). New snapshots appear as soon as the store has them. Every error is a
//! [`ViewError`] with a neutral [`ErrorClass`](crate::ErrorClass) that front ends map once.

mod attr;
pub mod flat;
mod inode;
mod listing;
pub mod names;
mod open;
mod versions;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use snapshot_store::{Entry, EntryKind, FileReader, Snapshot, SnapshotId, Store};

use attr::LinkGroups;
pub use attr::{Attr, Kind};
pub use inode::{LATEST_INO, ROOT_INO, VERSIONS_INO};
use inode::{Node, node_of};
pub use listing::{DirEntry, DirListing};
pub use open::{OpenFile, PRUNE_POLL, follow_prunes};
pub use versions::{VERSIONS, version_name};

use crate::error::{ViewError, ViewResult};

/// Name of the symbolic link to the newest snapshot.
pub const LATEST: &[u8] = b"latest";
/// How often the root re-reads the store's snapshot list when asked about an unknown name.
const REFRESH: Duration = Duration::from_millis(500);
/// The same for a store in an object store, where each listing is a request.
const REFRESH_REMOTE: Duration = Duration::from_secs(5);

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
    versions: Mutex<versions::Tree>,
    /// Where the versions index is kept between mounts.
    versions_cache: Option<std::path::PathBuf>,
    uid: u32,
    gid: u32,
    serve_xattrs: bool,
    /// Set once the user was told that new snapshots' attributes stay hidden until a remount.
    hidden_xattrs_told: AtomicBool,
}

impl View {
    /// A view of `store`, registered as its reader (so that a prune keeps what it serves);
    /// synthesised nodes are owned by `uid`/`gid`. The registration, the snapshot list and
    /// whether the store records extended attributes are asked for at once (for a remote
    /// store: one round trip).
    pub fn new(store: Store, uid: u32, gid: u32, xattrs: XattrPolicy) -> ViewResult<View> {
        let (registered, records_xattrs, listed) = std::thread::scope(|scope| {
            let registered = scope.spawn(|| store.register_reader());
            let records = (xattrs == XattrPolicy::Auto).then(|| scope.spawn(|| store.records_xattrs()));
            let listed = store.snapshot_ids();
            let records = records.map(joined);
            (joined(registered), records, listed)
        });
        registered?;
        let serve_xattrs = match xattrs {
            XattrPolicy::Auto => records_xattrs.unwrap_or(true),
            XattrPolicy::On => true,
            XattrPolicy::Off => false,
        };
        let view = View {
            store,
            table: RwLock::new(SnapshotTable::default()),
            links: Mutex::new(HashMap::new()),
            versions: Mutex::new(versions::Tree::default()),
            versions_cache: None,
            uid,
            gid,
            serve_xattrs,
            hidden_xattrs_told: AtomicBool::new(serve_xattrs || xattrs == XattrPolicy::Off),
        };
        view.take_listing(listed?);
        Ok(view)
    }

    /// Keeps the versions index under `dir` (in a folder named after the store's id), so that
    /// the next view of this store reads it instead of every manifest. `None`: memory only.
    pub fn with_cache_dir(mut self, dir: Option<&std::path::Path>) -> View {
        self.versions_cache = dir.map(|d| d.join(self.store.config().short_id()).join("versions-index"));
        self
    }

    /// True when the mount serves extended attributes; fixed for the life of the mount.
    pub fn serves_xattrs(&self) -> bool {
        self.serve_xattrs
    }

    /// How many snapshots the store had when last listed.
    pub fn snapshot_count(&self) -> usize {
        self.snapshots_listed().len()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Re-reads the store's snapshot list (new snapshots get the next numbers).
    pub fn refresh(&self) -> ViewResult<Arc<Vec<SnapshotId>>> {
        let ids = self.store.snapshot_ids()?;
        Ok(self.take_listing(ids))
    }

    /// Takes `ids`, the store's snapshot list as just read: new snapshots get the next numbers.
    fn take_listing(&self, ids: Vec<SnapshotId>) -> Arc<Vec<SnapshotId>> {
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
        Arc::clone(&t.listed)
    }

    /// The snapshot list as last read, without reading it again.
    fn snapshots_listed(&self) -> Arc<Vec<SnapshotId>> {
        Arc::clone(&self.table.read().listed)
    }

    /// The snapshots now in the store, oldest first (refreshed at most every half second; every
    /// 5 s for a remote store).
    pub fn snapshots(&self) -> ViewResult<Arc<Vec<SnapshotId>>> {
        let every = if self.store.is_remote() {
            REFRESH_REMOTE
        } else {
            REFRESH
        };
        {
            let t = self.table.read();
            if t.refreshed.is_some_and(|r| r.elapsed() < every) {
                return Ok(Arc::clone(&t.listed));
            }
        }
        self.refresh()
    }

    fn number(&self, id: &SnapshotId) -> Option<u32> {
        self.table.read().numbers.get(id).copied()
    }

    /// Snapshot number `snap` and its manifest.
    fn snapshot(&self, snap: u32) -> ViewResult<(SnapshotId, Arc<Snapshot>)> {
        let id = self.table.read().by_number.get(snap as usize).cloned();
        let id = id.ok_or(ViewError::NoSuchInode(inode::ino_of(snap, Snapshot::ROOT)))?;
        let s = self.store.snapshot(&id)?;
        Ok((id, s))
    }

    /// The entry that inode `ino` designates inside a snapshot, with its snapshot.
    fn entry(&self, ino: u64) -> ViewResult<(SnapshotId, Arc<Snapshot>, u32)> {
        match node_of(ino) {
            Some(Node::Entry { snap, index }) => {
                let (id, s) = self.snapshot(snap)?;
                if s.entry(index).is_none() {
                    return Err(ViewError::NoSuchInode(ino));
                }
                Ok((id, s, index))
            }
            _ => Err(ViewError::NoSuchInode(ino)),
        }
    }

    /// The attributes of inode `ino`.
    pub fn getattr(&self, ino: u64) -> ViewResult<Attr> {
        match node_of(ino).ok_or(ViewError::NoSuchInode(ino))? {
            Node::Root => self.root_attr(),
            Node::Latest => self.latest_attr()?.ok_or(ViewError::NoSuchInode(ino)),
            Node::Versions { node } => self.versions_attr(node),
            Node::Entry { snap, index } => {
                let (id, s) = self.snapshot(snap)?;
                self.entry_attr(snap, &id, &s, index)
            }
        }
    }

    /// The child `name` of directory `parent`. `Ok(None)` when there is no such entry.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> ViewResult<Option<Attr>> {
        match node_of(parent).ok_or(ViewError::NoSuchInode(parent))? {
            Node::Root => self.lookup_in_root(name),
            Node::Latest => Err(ViewError::NotADirectory("latest".into())),
            Node::Versions { node } => self.lookup_version(node, name),
            Node::Entry { snap, index } => {
                let (id, s) = self.snapshot(snap)?;
                let e = s.entry(index).ok_or(ViewError::NoSuchInode(parent))?;
                if e.kind != EntryKind::Dir {
                    return Err(ViewError::NotADirectory(listing::describe(&id, &s, index)));
                }
                match s.child(index, name) {
                    Some(child) => self.entry_attr(snap, &id, &s, child).map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// [`View::lookup`], then, when `name` is not found as sent, in the other Unicode
    /// normalization (macOS sends decomposed names; sources usually hold composed ones).
    pub fn lookup_any_form(&self, parent: u64, name: &[u8]) -> ViewResult<Option<Attr>> {
        if let Some(a) = self.lookup(parent, name)? {
            return Ok(Some(a));
        }
        for other in names::other_normalizations(name) {
            if let Some(a) = self.lookup(parent, &other)? {
                return Ok(Some(a));
            }
        }
        Ok(None)
    }

    /// `latest` or a snapshot directory of the root (perhaps written a moment ago).
    fn lookup_in_root(&self, name: &[u8]) -> ViewResult<Option<Attr>> {
        if name == LATEST {
            return self.latest_attr();
        }
        if name == VERSIONS {
            return self.versions_attr(0).map(Some);
        }
        let Some(id) = std::str::from_utf8(name).ok().and_then(SnapshotId::parse) else {
            return Ok(None);
        };
        let known = self.snapshots()?.binary_search(&id).is_ok() || self.refresh()?.binary_search(&id).is_ok();
        match (known, self.number(&id)) {
            (true, Some(n)) => Ok(Some(self.snapshot_dir_attr(n, &id))),
            _ => Ok(None),
        }
    }

    /// The target of symbolic link `ino`.
    pub fn readlink(&self, ino: u64) -> ViewResult<Vec<u8>> {
        match node_of(ino).ok_or(ViewError::NoSuchInode(ino))? {
            Node::Latest => self
                .snapshots()?
                .last()
                .map(|id| id.as_str().as_bytes().to_vec())
                .ok_or(ViewError::NoSuchInode(ino)),
            Node::Root => Err(ViewError::NotASymlink("/".into())),
            Node::Versions { node } => Err(ViewError::NotASymlink(self.describe_versions(node))),
            Node::Entry { .. } => {
                let (id, s, index) = self.entry(ino)?;
                match s.entry(index) {
                    Some(Entry {
                        kind: EntryKind::Symlink,
                        target: Some(t),
                        ..
                    }) => Ok(t.clone()),
                    _ => Err(ViewError::NotASymlink(listing::describe(&id, &s, index))),
                }
            }
        }
    }

    /// Opens regular file `ino` for reading.
    pub fn open(&self, ino: u64) -> ViewResult<FileReader> {
        match node_of(ino) {
            Some(Node::Root) => return Err(ViewError::IsADirectory("/".into())),
            Some(Node::Latest) => return Err(ViewError::NotAFile("latest".into())),
            Some(Node::Versions { node }) => return Err(ViewError::IsADirectory(self.describe_versions(node))),
            _ => {}
        }
        let (id, s, index) = self.entry(ino)?;
        let e = s.entry(index).ok_or(ViewError::NoSuchInode(ino))?;
        match (e.kind, e.content) {
            (EntryKind::File, Some(content)) => Ok(FileReader::open(&self.store, &content, e.meta.size)?),
            (EntryKind::Dir, _) => Err(ViewError::IsADirectory(listing::describe(&id, &s, index))),
            _ => Err(ViewError::NotAFile(listing::describe(&id, &s, index))),
        }
    }

    /// `snapshot/path` of inode `ino`, for messages.
    pub fn describe(&self, ino: u64) -> String {
        match node_of(ino) {
            Some(Node::Root) => "/".into(),
            Some(Node::Latest) => "latest".into(),
            Some(Node::Versions { node }) => self.describe_versions(node),
            Some(Node::Entry { .. }) => match self.entry(ino) {
                Ok((id, s, index)) => listing::describe(&id, &s, index),
                Err(_) => format!("inode {ino}"),
            },
            None => format!("inode {ino}"),
        }
    }

    /// The `user.*` extended attributes of inode `ino`.
    pub fn xattrs(&self, ino: u64) -> ViewResult<Vec<(Vec<u8>, Vec<u8>)>> {
        match node_of(ino) {
            Some(Node::Entry { snap, index }) if index != Snapshot::ROOT => {
                let (_, s) = self.snapshot(snap)?;
                Ok(s.entry(index).map(|e| e.meta.xattrs.clone()).unwrap_or_default())
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// The result of a scoped thread, its panic passed on.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use snapshot_store::{Policy, WriteOptions, WriteProgress, write_snapshot};

    /// A store with one snapshot of a directory holding a file, a subdirectory, a symbolic link
    /// and a sparse file; the view of it and the snapshot's directory inode.
    fn view() -> (tempfile::TempDir, View, u64) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("file"), b"content").unwrap();
        std::os::unix::fs::symlink("file", src.join("link")).unwrap();
        let sparse = std::fs::File::create(src.join("sparse")).unwrap();
        sparse.set_len(1 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&sparse, &[7; 5000], 300_000).unwrap();
        // Files of 64 KiB and more are stored in chains, which keep holes.
        let policy = Policy {
            min_delta_size: 64 << 10,
            ..Policy::default()
        };
        let store = Store::init(&dir.path().join("store"), policy).unwrap();
        let opts = WriteOptions {
            policy,
            ..WriteOptions::default()
        };
        write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
        let view = View::new(store, 0, 0, XattrPolicy::Auto).unwrap();
        let id = view.snapshots().unwrap()[0].clone();
        let snap = view.lookup(ROOT_INO, id.as_str().as_bytes()).unwrap().unwrap();
        (dir, view, snap.ino)
    }

    fn child(view: &View, dir: u64, name: &str) -> u64 {
        view.lookup(dir, name.as_bytes()).unwrap().unwrap().ino
    }

    #[test]
    fn each_wrong_request_has_its_class() {
        let (_dir, view, snap) = view();
        let (file, sub, link) = (
            child(&view, snap, "file"),
            child(&view, snap, "sub"),
            child(&view, snap, "link"),
        );
        let class = |r: ViewError| r.class();
        assert_eq!(class(view.open(sub).unwrap_err()), ErrorClass::IsADirectory);
        assert_eq!(class(view.open(snap).unwrap_err()), ErrorClass::IsADirectory);
        assert_eq!(class(view.open(ROOT_INO).unwrap_err()), ErrorClass::IsADirectory);
        assert_eq!(class(view.open(link).unwrap_err()), ErrorClass::NotAFile);
        assert_eq!(class(view.lookup(file, b"x").unwrap_err()), ErrorClass::NotADirectory);
        assert_eq!(
            class(view.lookup(LATEST_INO, b"x").unwrap_err()),
            ErrorClass::NotADirectory
        );
        assert_eq!(class(view.open_dir(file).unwrap_err()), ErrorClass::NotADirectory);
        assert_eq!(class(view.readlink(file).unwrap_err()), ErrorClass::NotASymlink);
        assert_eq!(class(view.readlink(ROOT_INO).unwrap_err()), ErrorClass::NotASymlink);
        assert_eq!(class(view.getattr(0).unwrap_err()), ErrorClass::NotFound);
        assert_eq!(
            class(view.getattr(inode::ino_of(99, 0)).unwrap_err()),
            ErrorClass::NotFound
        );
        assert_eq!(
            class(view.getattr(inode::ino_of(0, 999)).unwrap_err()),
            ErrorClass::NotFound
        );
        assert_eq!(view.readlink(link).unwrap(), b"file");
        assert!(view.lookup(snap, b"missing").unwrap().is_none());
        let mut buf = [0u8; 16];
        let n = view.open(file).unwrap().read_at(0, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"content");
    }

    /// Finder froze over restic's FUSE-T mount because every lookup gave a new node id (restic
    /// #4825): a name must keep its inode for the life of a mount, whatever happens meanwhile.
    #[test]
    fn a_name_keeps_its_inode_across_lookups_and_new_snapshots() {
        let (dir, view, snap) = view();
        let first = child(&view, snap, "file");
        let sub = child(&view, snap, "sub");
        let versions = view.lookup(ROOT_INO, VERSIONS).unwrap().unwrap().ino;
        let file_versions = view.lookup(versions, b"file").unwrap().unwrap().ino;
        let src = dir.path().join("src");
        std::fs::write(src.join("file"), b"changed").unwrap();
        let opts = WriteOptions {
            time_ns: Some(1_900_000_000_000_000_000),
            ..WriteOptions::default()
        };
        write_snapshot(view.store(), &src, &opts, None, &WriteProgress::default()).unwrap();
        view.refresh().unwrap();
        for _ in 0..3 {
            assert_eq!(child(&view, snap, "file"), first);
            assert_eq!(child(&view, snap, "sub"), sub);
            assert_eq!(view.lookup(ROOT_INO, VERSIONS).unwrap().unwrap().ino, versions);
            assert_eq!(view.lookup(versions, b"file").unwrap().unwrap().ino, file_versions);
            assert_eq!(view.getattr(first).unwrap().ino, first);
        }
        assert_eq!(view.snapshots().unwrap().len(), 2);
    }

    #[test]
    fn a_reader_finds_the_data_and_holes_of_a_sparse_file() {
        let (_dir, view, snap) = view();
        let r = view.open(child(&view, snap, "sparse")).unwrap();
        // Data starts in the 4 KiB block holding offset 300000 and ends at its block's end.
        let data = r.next_data(0).unwrap();
        assert!((300_000 - 4095..=300_000).contains(&data), "{data}");
        let hole = r.next_hole(data).unwrap();
        assert!((305_000..305_000 + 4096).contains(&hole), "{hole}");
        assert_eq!(r.next_hole(0), Some(0));
        assert_eq!(r.next_data(hole), None);
        assert_eq!(r.next_hole(r.size() - 1), Some(r.size() - 1));
        assert_eq!(r.next_data(r.size()), None);
    }
}
