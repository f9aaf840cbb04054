//! Snapshot manifests: an immutable tree of entries with their metadata, each regular file
//! pointing to a file version.
//!
//! Entries are stored breadth-first: entry 0 is the root directory, and the children of every
//! directory are one contiguous run sorted by name, so a path resolves with one binary search
//! per component and a directory lists without sorting.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::fmt;
use std::ops::Range;

use crate::codec::{Decoder, Encoder};
use crate::error::{Error, Result};
use crate::id::VersionId;

/// A snapshot's id: `2026-11-22T07-15-03Z`, with `-NN` appended when several snapshots are
/// written within one second. Ids sort by time and are valid file names on every platform.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(String);

impl SnapshotId {
    /// Parses an id, checking its shape.
    pub fn parse(s: &str) -> Option<SnapshotId> {
        let b = s.as_bytes();
        let digits = |r: Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        let base_ok = b.len() >= 20
            && digits(0..4)
            && b.get(4) == Some(&b'-')
            && digits(5..7)
            && b.get(7) == Some(&b'-')
            && digits(8..10)
            && b.get(10) == Some(&b'T')
            && digits(11..13)
            && b.get(13) == Some(&b'-')
            && digits(14..16)
            && b.get(16) == Some(&b'-')
            && digits(17..19)
            && b.get(19) == Some(&b'Z');
        let suffix_ok = b.len() == 20 || (b.len() == 23 && b.get(20) == Some(&b'-') && digits(21..23));
        (base_ok && suffix_ok).then(|| SnapshotId(s.to_string()))
    }

    /// The id for a snapshot taken at `time_ns`, the `n`th in that second (n = 0 has no suffix).
    pub fn at(time_ns: i64, n: u32) -> SnapshotId {
        let stamp = crate::timefmt::id_stamp(time_ns);
        if n == 0 {
            SnapshotId(stamp)
        } else {
            SnapshotId(format!("{stamp}-{n:02}"))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A Unix socket (recorded, not restored).
    Socket,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::Dir => 0,
            EntryKind::File => 1,
            EntryKind::Symlink => 2,
            EntryKind::Fifo => 3,
            EntryKind::CharDevice => 4,
            EntryKind::BlockDevice => 5,
            EntryKind::Socket => 6,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => EntryKind::Dir,
            1 => EntryKind::File,
            2 => EntryKind::Symlink,
            3 => EntryKind::Fifo,
            4 => EntryKind::CharDevice,
            5 => EntryKind::BlockDevice,
            6 => EntryKind::Socket,
            _ => return None,
        })
    }

    /// "a directory", "a regular file", ... for messages.
    pub fn noun(self) -> &'static str {
        match self {
            EntryKind::Dir => "a directory",
            EntryKind::File => "a regular file",
            EntryKind::Symlink => "a symbolic link",
            EntryKind::Fifo => "a named pipe",
            EntryKind::CharDevice => "a character device",
            EntryKind::BlockDevice => "a block device",
            EntryKind::Socket => "a socket",
        }
    }
}

/// How a regular file's content is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// One data object whose id equals the version id (files below the minimum delta size).
    Whole,
    /// A file version record (`versions/`), full or delta.
    Chain,
}

/// A regular file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileContent {
    /// blake3 of the content.
    pub version: VersionId,
    /// Where it is stored.
    pub storage: Storage,
}

/// The metadata of an entry, as read from the source with `lstat`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Status change time, ns since the epoch (used to detect changes, not restored).
    pub ctime_ns: i64,
    /// Device of the source file (change detection).
    pub dev: u64,
    /// Inode of the source file (change detection).
    pub ino: u64,
    /// Hard link count at backup time.
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// Allocated 512-byte blocks (shows holes to `du`).
    pub blocks: u64,
    /// Device number of device nodes.
    pub rdev: u64,
    /// `user.*` extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name (raw bytes); empty for the root.
    pub name: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Its metadata.
    pub meta: Metadata,
    /// Content of a regular file.
    pub content: Option<FileContent>,
    /// Target of a symbolic link.
    pub target: Option<Vec<u8>>,
    /// Hard-link group (entries with the same non-zero group are links to one file).
    pub hardlink: u32,
    /// Children of a directory: indexes into the snapshot's entries.
    pub children: Range<u32>,
    /// The parent directory (the root is its own parent).
    pub parent: u32,
}

/// Totals recorded with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotStats {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Other entries (symlinks, devices, pipes).
    pub others: u64,
    /// Logical bytes of all regular files.
    pub bytes: u64,
    /// Bytes of new objects and version records this snapshot added to the store (its own
    /// manifest is not included; `list` and `write` add the manifest's size).
    pub stored_bytes: u64,
    /// Files without a previous version.
    pub files_new: u64,
    /// Files whose content changed.
    pub files_changed: u64,
    /// Files reused unread or with identical content.
    pub files_unchanged: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Entries that could not be read and are missing from the snapshot.
    pub errors: u64,
}

/// A snapshot: its header and tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its id.
    pub id: SnapshotId,
    /// When it was taken, ns since the epoch.
    pub time_ns: i64,
    /// The absolute source path that was backed up (raw bytes).
    pub source: Vec<u8>,
    /// Host name of the machine that wrote it.
    pub host: String,
    /// Totals.
    pub stats: SnapshotStats,
    /// The tree; entry 0 is the root directory.
    pub entries: Vec<Entry>,
}

impl Snapshot {
    /// The root directory's index.
    pub const ROOT: u32 = 0;

    /// Bytes of memory this snapshot holds (for cache accounting).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .entries
                .iter()
                .map(|e| {
                    std::mem::size_of::<Entry>()
                        + e.name.len()
                        + e.target.as_ref().map_or(0, Vec::len)
                        + e.meta.xattrs.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>()
                })
                .sum::<usize>()
    }

    /// The entry at `index`.
    pub fn entry(&self, index: u32) -> Option<&Entry> {
        self.entries.get(index as usize)
    }

    /// The child of directory `dir` named `name`.
    pub fn child(&self, dir: u32, name: &[u8]) -> Option<u32> {
        let d = self.entry(dir)?;
        let kids = self.entries.get(d.children.start as usize..d.children.end as usize)?;
        kids.binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| d.children.start + i as u32)
    }

    /// Resolves a `/`-separated path relative to the root (`""`, `.` and `/` are the root).
    pub fn lookup(&self, path: &[u8]) -> Option<u32> {
        let mut at = Self::ROOT;
        for comp in path.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => at = self.entry(at)?.parent,
                name => at = self.child(at, name)?,
            }
        }
        Some(at)
    }

    /// The path of entry `index` relative to the root, components joined by `/`.
    pub fn path_of(&self, mut index: u32) -> Vec<u8> {
        let mut parts = Vec::new();
        while index != Self::ROOT && parts.len() < self.entries.len() {
            let Some(e) = self.entry(index) else { break };
            parts.push(e.name.as_slice());
            index = e.parent;
        }
        parts.reverse();
        parts.join(&b'/')
    }

    /// Encodes the manifest payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.str(self.id.as_str());
        e.i64(self.time_ns);
        e.bytes(&self.source);
        e.str(&self.host);
        let s = &self.stats;
        for v in [
            s.files,
            s.dirs,
            s.others,
            s.bytes,
            s.stored_bytes,
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            s.bytes_read,
            s.errors,
        ] {
            e.varint(v);
        }
        e.varint(self.entries.len() as u64);
        for entry in &self.entries {
            encode_entry(&mut e, entry);
        }
        e.into_bytes()
    }

    /// Decodes and validates a manifest payload; `what` names it in errors.
    pub fn decode(payload: &[u8], what: &str) -> Result<Snapshot> {
        let mut d = Decoder::new(payload, what);
        let id_text = d.str()?;
        let id = SnapshotId::parse(id_text).ok_or_else(|| d.error(format!("bad snapshot id {id_text:?}")))?;
        let time_ns = d.i64()?;
        let source = d.bytes()?.to_vec();
        let host = d.str()?.to_string();
        let mut v = [0u64; 10];
        for slot in &mut v {
            *slot = d.varint()?;
        }
        let [
            files,
            dirs,
            others,
            bytes,
            stored_bytes,
            files_new,
            files_changed,
            files_unchanged,
            bytes_read,
            errors,
        ] = v;
        let stats = SnapshotStats {
            files,
            dirs,
            others,
            bytes,
            stored_bytes,
            files_new,
            files_changed,
            files_unchanged,
            bytes_read,
            errors,
        };
        let n = d.count(8)?;
        if n == 0 || n > u32::MAX as usize {
            return Err(d.error("entry count out of range"));
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(decode_entry(&mut d, n as u32)?);
        }
        d.finish()?;
        link_parents(&mut entries, what)?;
        Ok(Snapshot {
            id,
            time_ns,
            source,
            host,
            stats,
            entries,
        })
    }
}

fn encode_entry(e: &mut Encoder, entry: &Entry) {
    let m = &entry.meta;
    e.bytes(&entry.name);
    e.u8(entry.kind.code());
    e.varint(u64::from(m.mode));
    e.varint(u64::from(m.uid));
    e.varint(u64::from(m.gid));
    e.varint_signed(m.mtime_ns);
    e.varint_signed(m.ctime_ns);
    e.varint(m.dev);
    e.varint(m.ino);
    e.varint(u64::from(m.nlink));
    e.varint(m.size);
    e.varint(m.blocks);
    match entry.kind {
        EntryKind::Dir => {
            e.varint(u64::from(entry.children.start));
            e.varint(u64::from(entry.children.end - entry.children.start));
        }
        EntryKind::File => {
            let c = entry.content.unwrap_or(FileContent {
                version: VersionId([0; 32]),
                storage: Storage::Whole,
            });
            e.version_id(&c.version);
            e.u8(match c.storage {
                Storage::Whole => 0,
                Storage::Chain => 1,
            });
            e.varint(u64::from(entry.hardlink));
        }
        EntryKind::Symlink => e.bytes(entry.target.as_deref().unwrap_or_default()),
        EntryKind::CharDevice | EntryKind::BlockDevice => e.varint(m.rdev),
        EntryKind::Fifo | EntryKind::Socket => {}
    }
    e.varint(m.xattrs.len() as u64);
    for (k, v) in &m.xattrs {
        e.bytes(k);
        e.bytes(v);
    }
}

fn decode_entry(d: &mut Decoder<'_>, n: u32) -> Result<Entry> {
    let name = d.bytes()?.to_vec();
    let kind = EntryKind::from_code(d.u8()?).ok_or_else(|| d.error("unknown entry kind"))?;
    let mut meta = Metadata {
        mode: d.varint_u32()?,
        uid: d.varint_u32()?,
        gid: d.varint_u32()?,
        mtime_ns: d.varint_signed()?,
        ctime_ns: d.varint_signed()?,
        dev: d.varint()?,
        ino: d.varint()?,
        nlink: d.varint_u32()?,
        size: d.varint()?,
        blocks: d.varint()?,
        ..Metadata::default()
    };
    let mut entry = Entry {
        name,
        kind,
        meta: Metadata::default(),
        content: None,
        target: None,
        hardlink: 0,
        children: 0..0,
        parent: 0,
    };
    match kind {
        EntryKind::Dir => {
            let start = d.varint_u32()?;
            let count = d.varint_u32()?;
            let end = start.checked_add(count).filter(|&e| e <= n);
            entry.children = start..end.ok_or_else(|| d.error("children out of range"))?;
        }
        EntryKind::File => {
            let version = d.version_id()?;
            let storage = match d.u8()? {
                0 => Storage::Whole,
                1 => Storage::Chain,
                s => return Err(d.error(format!("unknown storage {s}"))),
            };
            entry.content = Some(FileContent { version, storage });
            entry.hardlink = d.varint_u32()?;
        }
        EntryKind::Symlink => entry.target = Some(d.bytes()?.to_vec()),
        EntryKind::CharDevice | EntryKind::BlockDevice => meta.rdev = d.varint()?,
        EntryKind::Fifo | EntryKind::Socket => {}
    }
    let nx = d.count(2)?;
    for _ in 0..nx {
        let k = d.bytes()?.to_vec();
        let v = d.bytes()?.to_vec();
        meta.xattrs.push((k, v));
    }
    entry.meta = meta;
    Ok(entry)
}

/// Checks the tree's shape (every entry but the root has exactly one parent that comes before
/// it, children sorted and named safely) and fills in `parent`.
fn link_parents(entries: &mut [Entry], what: &str) -> Result<()> {
    let bad = |reason: &str| Error::corrupt(what, reason.to_string());
    if entries.first().map(|e| e.kind) != Some(EntryKind::Dir) {
        return Err(bad("the root is not a directory"));
    }
    let mut next_child: u32 = 1;
    for i in 0..entries.len() {
        let Some(e) = entries.get(i) else { break };
        if e.kind != EntryKind::Dir {
            continue;
        }
        let range = e.children.clone();
        if range.is_empty() {
            continue;
        }
        if range.start != next_child || range.start as usize <= i {
            return Err(bad("directory children are not stored breadth-first"));
        }
        next_child = range.end;
        let kids = entries
            .get(range.start as usize..range.end as usize)
            .ok_or_else(|| bad("children out of range"))?;
        for pair in kids.windows(2) {
            if let [a, b] = pair
                && a.name >= b.name
            {
                return Err(bad("directory children are not sorted by name"));
            }
        }
        if kids.iter().any(|k| {
            k.name.is_empty() || k.name == b"." || k.name == b".." || k.name.contains(&b'/') || k.name.contains(&0)
        }) {
            return Err(bad("an entry has an unsafe name"));
        }
        for k in range {
            if let Some(child) = entries.get_mut(k as usize) {
                child.parent = i as u32;
            }
        }
    }
    if next_child as usize != entries.len() {
        return Err(bad("some entries belong to no directory"));
    }
    Ok(())
}

/// Builds the breadth-first entry list from a tree of nodes.
#[derive(Debug, Default)]
pub struct TreeBuilder {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    entry: Entry,
    children: Vec<usize>,
    removed: bool,
}

impl TreeBuilder {
    /// A tree whose root has `meta`.
    pub fn new(root_meta: Metadata) -> Self {
        TreeBuilder {
            nodes: vec![Node {
                entry: Entry {
                    name: Vec::new(),
                    kind: EntryKind::Dir,
                    meta: root_meta,
                    content: None,
                    target: None,
                    hardlink: 0,
                    children: 0..0,
                    parent: 0,
                },
                children: Vec::new(),
                removed: false,
            }],
        }
    }

    /// The root node's handle.
    pub fn root(&self) -> usize {
        0
    }

    /// Adds `entry` under node `parent` and returns its handle.
    pub fn add(&mut self, parent: usize, entry: Entry) -> usize {
        self.nodes.push(Node {
            entry,
            children: Vec::new(),
            removed: false,
        });
        let id = self.nodes.len() - 1;
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.push(id);
        }
        id
    }

    /// Leaves node `id` (and anything below it) out of the finished tree.
    pub fn remove(&mut self, id: usize) {
        if let Some(n) = self.nodes.get_mut(id) {
            n.removed = true;
        }
    }

    /// The entry of node `id`, for updates.
    pub fn entry_mut(&mut self, id: usize) -> Option<&mut Entry> {
        self.nodes.get_mut(id).map(|n| &mut n.entry)
    }

    /// Lays the tree out breadth-first with children sorted by name.
    #[allow(clippy::indexing_slicing)] // node handles are indexes this builder handed out
    pub fn finish(mut self) -> Vec<Entry> {
        for i in 0..self.nodes.len() {
            let mut kids = std::mem::take(&mut self.nodes[i].children);
            kids.retain(|&k| !self.nodes[k].removed);
            kids.sort_by(|&a, &b| self.nodes[a].entry.name.cmp(&self.nodes[b].entry.name));
            self.nodes[i].children = kids;
        }
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut queue = std::collections::VecDeque::from([0usize]);
        while let Some(n) = queue.pop_front() {
            order.push(n);
            queue.extend(self.nodes[n].children.iter().copied());
        }
        let mut position = vec![0u32; self.nodes.len()];
        for (i, &n) in order.iter().enumerate() {
            position[n] = i as u32;
        }
        let mut slots: Vec<Option<Node>> = self.nodes.into_iter().map(Some).collect();
        let mut entries = Vec::with_capacity(order.len());
        for (i, &n) in order.iter().enumerate() {
            let Some(node) = slots[n].take() else {
                continue;
            };
            let mut entry = node.entry;
            if let (Some(&first), Some(&last)) = (node.children.first(), node.children.last()) {
                entry.children = position[first]..position[last] + 1;
            }
            entry.parent = if i == 0 { 0 } else { entry.parent };
            entries.push(entry);
        }
        for i in 0..entries.len() {
            for c in entries[i].children.clone() {
                entries[c as usize].parent = i as u32;
            }
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(name: &str, v: u8) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind: EntryKind::File,
            meta: Metadata {
                mode: 0o644,
                size: 3,
                mtime_ns: -5,
                xattrs: vec![(b"user.k".to_vec(), b"v".to_vec())],
                ..Metadata::default()
            },
            content: Some(FileContent {
                version: VersionId([v; 32]),
                storage: Storage::Whole,
            }),
            target: None,
            hardlink: 0,
            children: 0..0,
            parent: 0,
        }
    }

    fn dir(name: &str) -> Entry {
        Entry {
            kind: EntryKind::Dir,
            content: None,
            ..file(name, 0)
        }
    }

    fn sample() -> Snapshot {
        let mut t = TreeBuilder::new(Metadata::default());
        let r = t.root();
        let b = t.add(r, dir("b"));
        t.add(r, file("a", 1));
        t.add(b, file("z", 2));
        t.add(b, file("y", 3));
        let c = t.add(b, dir("c"));
        t.add(c, file("deep", 4));
        Snapshot {
            id: SnapshotId::at(1_795_331_703_000_000_000, 0),
            time_ns: 1,
            source: b"/src".to_vec(),
            host: "h".into(),
            stats: SnapshotStats::default(),
            entries: t.finish(),
        }
    }

    #[test]
    fn tree_roundtrip_and_lookup() {
        let s = sample();
        let back = Snapshot::decode(&s.encode(), "s").unwrap();
        assert_eq!(back, s);
        let deep = s.lookup(b"b/c/deep").unwrap();
        assert_eq!(s.path_of(deep), b"b/c/deep");
        assert_eq!(
            s.entry(s.lookup(b"/b/./y").unwrap()).unwrap().content.unwrap().version,
            VersionId([3; 32])
        );
        assert_eq!(s.lookup(b"b/c/../z"), s.lookup(b"b/z"));
        assert!(s.lookup(b"b/nope").is_none());
        assert!(s.lookup(b"a/x").is_none());
        assert_eq!(s.lookup(b""), Some(0));
        let names: Vec<_> = s
            .entry(0)
            .unwrap()
            .children
            .clone()
            .map(|i| s.entry(i).unwrap().name.clone())
            .collect();
        assert_eq!(names, vec![b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn unsafe_names_are_rejected() {
        let mut s = sample();
        s.entries[1].name = b"..".to_vec();
        assert!(Snapshot::decode(&s.encode(), "s").is_err());
        let mut s = sample();
        s.entries[1].name = b"x/y".to_vec();
        assert!(Snapshot::decode(&s.encode(), "s").is_err());
    }

    #[test]
    fn ids() {
        assert!(SnapshotId::parse("2026-11-22T07-15-03Z").is_some());
        assert!(SnapshotId::parse("2026-11-22T07-15-03Z-02").is_some());
        assert!(SnapshotId::parse("2026-11-22T07:15:03Z").is_none());
        assert!(SnapshotId::parse("../etc").is_none());
        let a = SnapshotId::at(1_000_000_000_000_000_000, 0);
        let b = SnapshotId::at(1_000_000_000_000_000_000, 1);
        let c = SnapshotId::at(1_000_000_001_000_000_000, 0);
        assert!(a < b && b < c);
    }

    proptest! {
        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let _ = Snapshot::decode(&data, "g");
        }

        #[test]
        fn flipped_payload_byte_never_panics(i in 0usize..400, bit in 0u8..8) {
            let mut p = sample().encode();
            let i = i % p.len();
            p[i] ^= 1 << bit;
            let _ = Snapshot::decode(&p, "f");
        }
    }
}
