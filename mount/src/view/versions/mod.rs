//! The versions tree: every distinct version of each file, side by side.
//!
//! ```text
//! versions/                         VERSIONS_INO
//!   <path>/                         the union of every snapshot's directories
//!     <file>/                       one directory per file name
//!       <stem>.<snapshot id><ext>   one regular file per run of identical content
//! ```
//!
//! A run is a sequence of consecutive snapshots in which the file has the same content id; it is
//! shown under its first snapshot's id and *is* that snapshot's file (same inode, attributes and
//! bytes). A snapshot without the file ends a run, so content A, B, A gives three entries. Only
//! regular files have versions.
//!
//! Listing a file's versions must not load every manifest each time, so the tree is an index:
//! built on first use by reading each manifest once, extended by each new snapshot's manifest,
//! and re-folded after a prune removed snapshots. Its directory numbers (inodes) never change
//! during a mount. With a cache directory the index is also kept on disk (`cache`), so that
//! the next mount or server reads it instead of every manifest.

mod cache;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use snapshot_store::{EntryKind, Snapshot, SnapshotId, VersionId};

use super::attr::{Attr, Kind};
use super::inode::versions_ino;
use super::{ROOT_INO, View};
use crate::error::{ViewError, ViewResult};

/// The most manifests of a remote store read at once while the index is built (so that a
/// few hundred snapshots of a large tree do not all sit in memory).
const MANIFESTS_AT_ONCE: usize = 16;

/// Name of the versions tree's directory in the root.
pub const VERSIONS: &[u8] = b"versions";

/// One run of identical content.
struct Run {
    /// Number of the run's first snapshot.
    snap: u32,
    /// Position (in [`Tree::folded`]) of its first snapshot.
    first: u32,
    /// Position (in [`Tree::folded`]) of its last snapshot.
    last: u32,
    content: VersionId,
    /// The first snapshot's file (its inode, shared).
    attr: Attr,
}

/// A directory of the versions tree: a directory of some snapshot, or a file's versions, or
/// both (a name that was a directory in some snapshots and a file in others).
struct Node {
    name: Box<[u8]>,
    parent: u32,
    children: BTreeMap<Box<[u8]>, u32>,
    /// A directory in at least one folded snapshot.
    dir: bool,
    runs: Vec<Run>,
    /// Time of the newest folded snapshot that has the name.
    seen_ns: i64,
}

impl Node {
    fn new(name: &[u8], parent: u32) -> Node {
        Node {
            name: name.into(),
            parent,
            children: BTreeMap::new(),
            dir: false,
            runs: Vec::new(),
            seen_ns: 0,
        }
    }

    /// True when some folded snapshot has it (a forgotten one's names stay, hidden).
    fn shown(&self) -> bool {
        self.dir || !self.runs.is_empty()
    }
}

/// The index behind the versions tree.
pub(super) struct Tree {
    /// Snapshots folded in, oldest first: a prefix of the store's list, or stale.
    folded: Vec<SnapshotId>,
    /// What each folded snapshot's manifest file looked like (size, mtime): a cached index is
    /// used only while they still match.
    stamps: Vec<cache::Stamp>,
    /// Where the index is kept between mounts, if anywhere; tried once.
    file: Option<PathBuf>,
    loaded: bool,
    /// The list `folded` was last checked against.
    checked: Option<Arc<Vec<SnapshotId>>>,
    nodes: Vec<Node>,
}

impl Default for Tree {
    fn default() -> Tree {
        Tree {
            folded: Vec::new(),
            stamps: Vec::new(),
            file: None,
            loaded: false,
            checked: None,
            nodes: vec![Node {
                dir: true,
                ..Node::new(VERSIONS, 0)
            }],
        }
    }
}

impl Tree {
    /// Directory `node`, if some folded snapshot has it.
    fn shown(&self, node: u32) -> ViewResult<&Node> {
        self.nodes
            .get(node as usize)
            .filter(|n| n.shown())
            .ok_or(ViewError::NoSuchInode(versions_ino(node)))
    }

    fn child_or_insert(&mut self, parent: u32, name: &[u8]) -> u32 {
        if let Some(&n) = self.nodes[parent as usize].children.get(name) {
            return n;
        }
        let n = self.nodes.len() as u32;
        self.nodes.push(Node::new(name, parent));
        self.nodes[parent as usize].children.insert(name.into(), n);
        n
    }

    /// Adds snapshot `snap` (number `number`), the newest so far, to the index.
    fn fold(&mut self, view: &View, number: u32, id: &SnapshotId, s: &Snapshot, stamp: cache::Stamp) -> ViewResult<()> {
        let pos = self.folded.len() as u32;
        let time = id.time_ns();
        let mut stack = vec![(Snapshot::ROOT, 0u32)];
        while let Some((dir, node)) = stack.pop() {
            let Some(d) = s.entry(dir) else { continue };
            for child in d.children.clone() {
                let Some(e) = s.entry(child) else { continue };
                let content = match (e.kind, e.content) {
                    (EntryKind::Dir, _) => None,
                    (EntryKind::File, Some(c)) => Some(c.version),
                    _ => continue,
                };
                let n = self.child_or_insert(node, &e.name);
                let at = &mut self.nodes[n as usize];
                at.seen_ns = time;
                match content {
                    None => {
                        at.dir = true;
                        stack.push((child, n));
                    }
                    Some(content) => match at.runs.last_mut() {
                        Some(run) if run.last + 1 == pos && run.content == content => run.last = pos,
                        _ => {
                            let attr = view.entry_attr(number, id, s, child)?;
                            self.nodes[n as usize].runs.push(Run {
                                snap: number,
                                first: pos,
                                last: pos,
                                content,
                                attr,
                            });
                        }
                    },
                }
            }
        }
        self.folded.push(id.clone());
        self.stamps.push(stamp);
        Ok(())
    }

    /// Forgets every snapshot folded in, keeping the names (and so the inode numbers).
    fn clear(&mut self) {
        self.folded.clear();
        self.stamps.clear();
        for n in &mut self.nodes {
            n.dir = false;
            n.runs.clear();
        }
        self.nodes[0].dir = true;
    }
}

/// A version's attributes as the versions tree lists it: not cached for long by front ends,
/// since a prune that removes a run's first snapshot renames the entry.
fn listed(attr: Attr) -> Attr {
    Attr {
        immutable: false,
        ..attr
    }
}

/// `<stem>.<id><ext>`: `ext` is the last extension (none for names without a dot, starting
/// with one, or ending with one).
pub fn version_name(file: &[u8], id: &SnapshotId) -> Vec<u8> {
    let split = file
        .iter()
        .rposition(|&b| b == b'.')
        .filter(|&i| i > 0 && i + 1 < file.len());
    let (stem, ext) = match split {
        Some(i) => file.split_at(i),
        None => (file, &b""[..]),
    };
    let mut name = Vec::with_capacity(file.len() + 24);
    name.extend_from_slice(stem);
    name.push(b'.');
    name.extend_from_slice(id.as_str().as_bytes());
    name.extend_from_slice(ext);
    name
}

impl View {
    /// Brings the index up to date with the store's snapshot list and runs `f` on it. A
    /// snapshot forgotten since the list was read makes it read the list again.
    fn with_tree<T>(&self, f: impl FnOnce(&Tree) -> ViewResult<T>) -> ViewResult<T> {
        let mut listed = self.snapshots()?;
        let mut tree = self.versions.lock();
        let mut again = true;
        while !tree.checked.as_ref().is_some_and(|c| Arc::ptr_eq(c, &listed)) {
            match self.catch_up(&mut tree, &listed) {
                Ok(()) => tree.checked = Some(Arc::clone(&listed)),
                Err(ViewError::Store(snapshot_store::Error::SnapshotNotFound { .. })) if again => {
                    again = false;
                    listed = self.refresh()?;
                }
                Err(e) => return Err(e),
            }
        }
        f(&tree)
    }

    /// Folds the snapshots of `listed` that `tree` lacks (all of them after a prune), starting
    /// from the index kept on disk the first time; saves it again when it grew.
    fn catch_up(&self, tree: &mut Tree, listed: &[SnapshotId]) -> ViewResult<()> {
        if !tree.loaded {
            tree.loaded = true;
            tree.file = self.versions_cache.clone();
            if let Some(file) = tree.file.clone() {
                cache::load(self, tree, &file, listed);
            }
        }
        if tree.folded.len() > listed.len() || listed[..tree.folded.len()] != tree.folded[..] {
            tree.clear();
        }
        let before = tree.folded.len();
        // A remote store's manifests are fetched several at once (each is a round trip), and
        // folded in order.
        let window = match self.store.is_remote() {
            true => self.store.options().remote.small_reads().clamp(1, MANIFESTS_AT_ONCE),
            false => 1,
        };
        for ids in listed[tree.folded.len()..].chunks(window) {
            for (id, s) in ids.iter().zip(self.manifests(ids)) {
                let number = self.number(id).ok_or(ViewError::NoSuchInode(ROOT_INO))?;
                let stamp = cache::stamp(&self.store, id).unwrap_or_default();
                let s = s?;
                tree.fold(self, number, id, &s, stamp)?;
            }
        }
        if tree.folded.len() != before
            && let Some(file) = &tree.file
            && let Err(e) = cache::save(tree, &self.store, file)
        {
            eprintln!(
                "backup-fs: note: cannot keep the versions index in {} ({e}); the next mount builds it again",
                file.display()
            );
            tree.file = None;
        }
        Ok(())
    }

    /// The manifests of `ids`, in their order, read in parallel when there are several.
    fn manifests(&self, ids: &[SnapshotId]) -> Vec<snapshot_store::Result<Arc<Snapshot>>> {
        if let [id] = ids {
            return vec![self.store.snapshot(id)];
        }
        std::thread::scope(|scope| {
            let reads: Vec<_> = (ids.iter())
                .map(|id| scope.spawn(move || self.store.snapshot(id)))
                .collect();
            reads.into_iter().map(super::joined).collect()
        })
    }

    /// The attributes of versions directory `node`. Those of `versions/` itself are made up
    /// without the index, so that listing the root loads no manifest: its link count is 1,
    /// "unknown", as on filesystems that do not count subdirectories.
    pub(super) fn versions_attr(&self, node: u32) -> ViewResult<Attr> {
        if node == 0 {
            return self.versions_root_attr();
        }
        self.with_tree(|t| self.node_attr(t, node))
    }

    fn versions_root_attr(&self) -> ViewResult<Attr> {
        let newest = self.snapshots()?.last().map_or(0, SnapshotId::time_ns);
        Ok(Attr {
            ino: versions_ino(0),
            kind: Kind::Dir,
            size: 0,
            blocks: 0,
            perm: 0o555,
            nlink: 1,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: newest,
            rdev: 0,
            immutable: false,
            content: None,
        })
    }

    fn node_attr(&self, t: &Tree, node: u32) -> ViewResult<Attr> {
        if node == 0 {
            return self.versions_root_attr();
        }
        let n = t.shown(node)?;
        let subdirs = n.children.values().filter(|&&c| t.nodes[c as usize].shown()).count();
        Ok(Attr {
            ino: versions_ino(node),
            kind: Kind::Dir,
            size: 0,
            blocks: 0,
            perm: 0o555,
            nlink: 2 + subdirs as u32,
            uid: self.uid,
            gid: self.gid,
            mtime_ns: n.seen_ns,
            rdev: 0,
            immutable: false,
            content: None,
        })
    }

    /// The child `name` of versions directory `node`: a directory, or a version of the file.
    pub(super) fn lookup_version(&self, node: u32, name: &[u8]) -> ViewResult<Option<Attr>> {
        self.with_tree(|t| {
            let n = t.shown(node)?;
            if let Some(&c) = n.children.get(name)
                && t.nodes[c as usize].shown()
            {
                return self.node_attr(t, c).map(Some);
            }
            let by_number = &self.table.read().by_number;
            Ok(n.runs
                .iter()
                .find(|r| {
                    by_number
                        .get(r.snap as usize)
                        .is_some_and(|id| version_name(&n.name, id) == name)
                })
                .map(|r| listed(r.attr)))
        })
    }

    /// Every entry of versions directory `node`, `.` and `..` first, then its directories by
    /// name, then the file's versions oldest first.
    pub(super) fn list_versions(&self, node: u32) -> ViewResult<Vec<(Vec<u8>, Attr)>> {
        self.with_tree(|t| {
            let n = t.shown(node)?;
            let up = if node == 0 {
                self.root_attr()?
            } else {
                self.node_attr(t, n.parent)?
            };
            let mut out = Vec::with_capacity(2 + n.children.len() + n.runs.len());
            out.push((b".".to_vec(), self.node_attr(t, node)?));
            out.push((b"..".to_vec(), up));
            for (name, &c) in &n.children {
                if t.nodes[c as usize].shown() {
                    out.push((name.to_vec(), self.node_attr(t, c)?));
                }
            }
            let by_number = &self.table.read().by_number;
            for r in &n.runs {
                if let Some(id) = by_number.get(r.snap as usize) {
                    out.push((version_name(&n.name, id), listed(r.attr)));
                }
            }
            Ok(out)
        })
    }

    /// `versions/<path>` of directory `node`, for messages.
    pub(super) fn describe_versions(&self, node: u32) -> String {
        let t = self.versions.lock();
        let mut parts = Vec::new();
        let mut at = node as usize;
        while at != 0 && parts.len() < t.nodes.len() {
            let Some(n) = t.nodes.get(at) else { break };
            parts.push(String::from_utf8_lossy(&n.name).into_owned());
            at = n.parent as usize;
        }
        parts.push("versions".into());
        parts.reverse();
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{ROOT_INO, VERSIONS_INO, XattrPolicy};
    use snapshot_store::{Store, WriteOptions, WriteProgress, write_snapshot};
    use std::fs;
    use std::path::Path;

    /// Writes one snapshot of `src` a day after the previous one.
    fn snapshot(store: &Store, src: &Path, day: i64) {
        let opts = WriteOptions {
            time_ns: Some(1_800_000_000_000_000_000 + day * 86_400_000_000_000),
            ..WriteOptions::default()
        };
        write_snapshot(store, src, &opts, None, &WriteProgress::default()).unwrap();
    }

    fn names(view: &View, ino: u64) -> Vec<String> {
        let listing = view.open_dir(ino).unwrap();
        let mut out = Vec::new();
        view.list(ino, &listing, 0, |e| {
            out.push(String::from_utf8(e.name).unwrap());
            true
        })
        .unwrap();
        out
    }

    fn lookup(view: &View, path: &str) -> Option<Attr> {
        let mut at = view.getattr(ROOT_INO).unwrap();
        for part in path.split('/') {
            at = view.lookup(at.ino, part.as_bytes()).unwrap()?;
        }
        Some(at)
    }

    /// Content A, A, B, (gone), B, A: four versions (the gap ends a run), each the first
    /// snapshot's own file; directories are the union of all snapshots'; a name that was a
    /// directory and then a file shows both.
    #[test]
    fn versions_collapse_runs_of_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("mail")).unwrap();
        let store = Store::init(&dir.path().join("store"), Default::default()).unwrap();
        let days: [Option<&str>; 6] = [Some("A"), Some("A"), Some("B"), None, Some("B"), Some("A")];
        for (day, content) in days.iter().enumerate() {
            match content {
                Some(c) => fs::write(src.join("mail/inbox.mbox"), c).unwrap(),
                None => fs::remove_file(src.join("mail/inbox.mbox")).unwrap(),
            }
            match day {
                1 => fs::create_dir(src.join("once")).unwrap(),
                2 => {
                    fs::remove_dir(src.join("once")).unwrap();
                    fs::write(src.join("once"), "now a file").unwrap();
                }
                _ => {}
            }
            snapshot(&store, &src, day as i64);
        }
        let view = View::new(Store::open(store.root()).unwrap(), 0, 0, XattrPolicy::Auto).unwrap();
        let ids: Vec<String> = view.snapshots().unwrap().iter().map(|i| i.to_string()).collect();
        assert!(names(&view, ROOT_INO).contains(&"versions".to_string()));
        assert_eq!(names(&view, VERSIONS_INO), [".", "..", "mail", "once"]);
        let mail = lookup(&view, "versions/mail").unwrap();
        assert_eq!(mail.kind, Kind::Dir);
        assert_eq!(names(&view, mail.ino), [".", "..", "inbox.mbox"]);
        let inbox = lookup(&view, "versions/mail/inbox.mbox").unwrap();
        let expect: Vec<String> = [0, 2, 4, 5].iter().map(|&d| format!("inbox.{}.mbox", ids[d])).collect();
        assert_eq!(names(&view, inbox.ino)[2..], expect[..]);
        for (&d, name) in [0usize, 2, 4, 5].iter().zip(&expect) {
            let v = view.lookup(inbox.ino, name.as_bytes()).unwrap().unwrap();
            let own = lookup(&view, &format!("{}/mail/inbox.mbox", ids[d])).unwrap();
            assert_eq!(
                Attr { immutable: true, ..v },
                own,
                "{name} is snapshot {}'s file",
                ids[d]
            );
            assert!(
                !v.immutable,
                "listed versions are not cached for long: a prune renames them"
            );
            let mut buf = [0u8; 8];
            let n = view.open(v.ino).unwrap().read_at(0, &mut buf).unwrap();
            assert_eq!(&buf[..n], days[d].unwrap().as_bytes());
        }
        assert!(
            view.lookup(inbox.ino, format!("inbox.{}.mbox", ids[1]).as_bytes())
                .unwrap()
                .is_none()
        );
        // `once` was a directory on day 1 and a file from day 2 on: both at once.
        let once = lookup(&view, "versions/once").unwrap();
        assert_eq!(names(&view, once.ino)[2..], [format!("once.{}", ids[2])]);
        // Inodes are stable: the same node every time, and getattr agrees with lookup.
        assert_eq!(lookup(&view, "versions/mail/inbox.mbox").unwrap().ino, inbox.ino);
        assert_eq!(view.getattr(inbox.ino).unwrap(), inbox);
        assert_eq!(view.describe(inbox.ino), "versions/mail/inbox.mbox");
        assert_eq!(
            view.open(inbox.ino).unwrap_err().class(),
            crate::ErrorClass::IsADirectory
        );
        // A new snapshot extends the index: A again continues the last run.
        snapshot(&store, &src, 6);
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert_eq!(names(&view, inbox.ino).len(), 2 + 4);
        fs::write(src.join("mail/inbox.mbox"), "C").unwrap();
        snapshot(&store, &src, 7);
        view.refresh().unwrap();
        assert_eq!(names(&view, inbox.ino).len(), 2 + 5);
        assert_eq!(lookup(&view, "versions/mail/inbox.mbox").unwrap().ino, inbox.ino);
        // After a prune the index is folded again from the snapshots left; names keep inodes.
        let opts = snapshot_store::ForgetOptions {
            snapshots: vec![SnapshotId::parse(&ids[2]).unwrap()],
            wait_for_lock: true,
            ..Default::default()
        };
        snapshot_store::forget(&store, &opts, &jiff::tz::TimeZone::UTC).unwrap();
        snapshot_store::prune(&store, &Default::default()).unwrap();
        view.after_prune().unwrap();
        view.refresh().unwrap();
        let left: Vec<String> = names(&view, inbox.ino)[2..].to_vec();
        let want: Vec<String> = [0, 4, 5].iter().map(|&d| format!("inbox.{}.mbox", ids[d])).collect();
        assert_eq!(left[..3], want[..]);
        assert_eq!(left.len(), 4);
        assert_eq!(lookup(&view, "versions/mail/inbox.mbox").unwrap().ino, inbox.ino);
        assert!(lookup(&view, "versions/once").unwrap().kind == Kind::Dir);
    }

    fn id(s: &str) -> SnapshotId {
        SnapshotId::parse(s).unwrap()
    }

    #[test]
    fn version_names_keep_the_last_extension() {
        let at = id("2026-11-21T07-15-00Z");
        let name = |f: &str| String::from_utf8(version_name(f.as_bytes(), &at)).unwrap();
        assert_eq!(name("inbox.mbox"), "inbox.2026-11-21T07-15-00Z.mbox");
        assert_eq!(name("a.tar.gz"), "a.tar.2026-11-21T07-15-00Z.gz");
        assert_eq!(name("Makefile"), "Makefile.2026-11-21T07-15-00Z");
        assert_eq!(name(".bashrc"), ".bashrc.2026-11-21T07-15-00Z");
        assert_eq!(name("trailing."), "trailing..2026-11-21T07-15-00Z");
        assert_eq!(
            String::from_utf8(version_name(b"x.y", &id("2026-11-21T07-15-00Z-01"))).unwrap(),
            "x.2026-11-21T07-15-00Z-01.y"
        );
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::view::{VERSIONS_INO, XattrPolicy};
    use snapshot_store::{Store, WriteOptions, WriteProgress, write_snapshot};
    use std::fs;

    fn listing(view: &View, path: &[&str]) -> Vec<(Vec<u8>, Attr)> {
        let mut at = view.getattr(VERSIONS_INO).unwrap();
        for p in path {
            at = view.lookup(at.ino, p.as_bytes()).unwrap().unwrap();
        }
        view.list_versions((at.ino & 0xffff_ffff) as u32).unwrap()
    }

    /// A second view reads the index kept by the first instead of the manifests (here made
    /// unreadable, with their sizes and times kept); a damaged index file, or one of another
    /// set of snapshots, is built again from the manifests.
    #[test]
    fn the_index_kept_on_disk_replaces_reading_every_manifest_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("d")).unwrap();
        let store = Store::init(&dir.path().join("store"), Default::default()).unwrap();
        for day in 0..4i64 {
            fs::write(src.join("d/f.txt"), format!("v{}", day / 2)).unwrap();
            let opts = WriteOptions {
                time_ns: Some(1_800_000_000_000_000_000 + day * 86_400_000_000_000),
                ..WriteOptions::default()
            };
            write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
        }
        let cache = dir.path().join("cache");
        let open = || {
            View::new(Store::open(store.root()).unwrap(), 0, 0, XattrPolicy::Auto)
                .unwrap()
                .with_cache_dir(Some(&cache))
        };
        let first = listing(&open(), &["d", "f.txt"]);
        assert_eq!(first.len(), 2 + 2);
        let file = cache.join(store.config().short_id()).join("versions-index");
        assert!(file.exists());
        // Manifests unreadable, same sizes and times: only the kept index can answer.
        let manifests: Vec<_> = fs::read_dir(store.root().join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let saved: Vec<(Vec<u8>, std::time::SystemTime)> = manifests
            .iter()
            .map(|p| (fs::read(p).unwrap(), fs::metadata(p).unwrap().modified().unwrap()))
            .collect();
        for (p, (bytes, mtime)) in manifests.iter().zip(&saved) {
            fs::write(p, vec![0u8; bytes.len()]).unwrap();
            fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(*mtime)
                .unwrap();
        }
        assert_eq!(listing(&open(), &["d", "f.txt"]), first);
        // One that others may write is not believed (the manifests are read, and fail here).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
            let v = open();
            let versions = v.getattr(VERSIONS_INO).unwrap();
            assert!(v.lookup(versions.ino, b"d").is_err(), "a world-writable index was used");
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        }
        for (p, (bytes, mtime)) in manifests.iter().zip(&saved) {
            fs::write(p, bytes).unwrap();
            fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(*mtime)
                .unwrap();
        }
        // A flipped byte in the index: ignored, built again, the same answer.
        let mut bytes = fs::read(&file).unwrap();
        let at = bytes.len() - 3;
        bytes[at] ^= 1;
        fs::write(&file, &bytes).unwrap();
        assert_eq!(listing(&open(), &["d", "f.txt"]), first);
        assert_ne!(fs::read(&file).unwrap(), bytes, "written again");
        // A manifest that changed (its time) makes the index stale.
        let t = std::time::SystemTime::now();
        fs::File::options()
            .write(true)
            .open(&manifests[0])
            .unwrap()
            .set_modified(t)
            .unwrap();
        fs::write(&file, vec![1u8; 10]).unwrap();
        assert_eq!(listing(&open(), &["d", "f.txt"]), first);
        let kept = fs::read(&file).unwrap();
        fs::File::options()
            .write(true)
            .open(&manifests[0])
            .unwrap()
            .set_modified(t - std::time::Duration::from_secs(5))
            .unwrap();
        let v = open();
        assert_eq!(listing(&v, &["d", "f.txt"]), first);
        assert_ne!(fs::read(&file).unwrap(), kept, "a stale index is built again");
    }
}
