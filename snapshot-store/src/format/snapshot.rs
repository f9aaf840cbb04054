//! The snapshot model: an immutable tree of entries with their metadata, each regular file
//! pointing to a file version, and the ids that name snapshots.
//!
//! Entries are kept breadth-first: entry 0 is the root directory, and the children of every
//! directory are one contiguous run sorted by name, so a path resolves with one binary search
//! per component and a directory lists without sorting. The bytes of a manifest are in
//! `format::manifest`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::fmt;
use std::ops::Range;

use crate::id::VersionId;
pub use crate::os::meta::{EntryKind, Metadata};
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
        let stamp = crate::format::time::id_stamp(time_ns);
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

    /// The time the id names (second resolution), ns since the epoch.
    pub fn time_ns(&self) -> i64 {
        crate::format::time::parse_id_stamp(&self.0).unwrap_or(0)
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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

impl Entry {
    /// An entry named `name` of `kind` with `meta` and nothing else yet: no content, target,
    /// hard-link group or children.
    pub(crate) fn new(name: Vec<u8>, kind: EntryKind, meta: Metadata) -> Entry {
        Entry {
            name,
            kind,
            meta,
            content: None,
            target: None,
            hardlink: 0,
            children: 0..0,
            parent: 0,
        }
    }
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

    /// The children of directory `dir`, in name order (empty for any other entry).
    pub fn children(&self, dir: u32) -> &[Entry] {
        self.entry(dir)
            .filter(|d| d.kind == EntryKind::Dir)
            .and_then(|d| self.entries.get(d.children.start as usize..d.children.end as usize))
            .unwrap_or_default()
    }

    /// The indexes of the children of directory `dir` (empty for any other entry).
    pub fn children_indexes(&self, dir: u32) -> Range<u32> {
        let n = self.children(dir).len() as u32;
        let start = self.entry(dir).map_or(0, |d| d.children.start);
        start..start + n
    }

    /// Everything under directory `dir` as a depth-first walk lists it: each directory right
    /// before what it holds, names in order. Yields entry indexes.
    pub fn walk(&self, dir: u32) -> Walk<'_> {
        let first = self
            .entry(dir)
            .filter(|d| d.kind == EntryKind::Dir)
            .map_or(0..0, |d| d.children.clone());
        Walk {
            snap: self,
            stack: vec![first],
        }
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
}

/// A depth-first walk of a directory's subtree; see [`Snapshot::walk`].
#[derive(Debug)]
pub struct Walk<'s> {
    snap: &'s Snapshot,
    /// The children still to visit at each level.
    stack: Vec<Range<u32>>,
}

impl Iterator for Walk<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        // A damaged manifest could hold a cycle: no walk is deeper than the entry count.
        while let Some(top) = self.stack.last_mut() {
            let Some(index) = top.next() else {
                self.stack.pop();
                continue;
            };
            if let Some(e) = self.snap.entry(index)
                && e.kind == EntryKind::Dir
                && !e.children.is_empty()
                && self.stack.len() < self.snap.entries.len()
            {
                self.stack.push(e.children.clone());
            }
            return Some(index);
        }
        None
    }
}

/// A regular file's entry as an earlier snapshot recorded it: what a write compares against.
#[derive(Debug, Clone)]
pub struct PrevEntry {
    /// Its content.
    pub content: FileContent,
    /// Its metadata then.
    pub meta: Metadata,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(b.time_ns(), 1_000_000_000_000_000_000);
    }

    #[test]
    fn a_walk_lists_each_directory_before_what_it_holds() {
        let mut t = crate::format::tree_builder::TreeBuilder::new(Metadata::default());
        let dir = |name: &str| Entry::new(name.into(), EntryKind::Dir, Metadata::default());
        let file = |name: &str| Entry::new(name.into(), EntryKind::File, Metadata::default());
        let b = t.add(0, dir("b"));
        t.add(b, file("z"));
        let a = t.add(0, dir("a"));
        let aa = t.add(a, dir("a"));
        t.add(aa, file("deep"));
        t.add(a, file("f"));
        t.add(0, file("c"));
        let snap = Snapshot {
            id: SnapshotId::at(0, 0),
            time_ns: 0,
            source: Vec::new(),
            host: String::new(),
            stats: SnapshotStats::default(),
            entries: t.finish(),
        };
        let paths: Vec<String> = snap
            .walk(Snapshot::ROOT)
            .map(|i| String::from_utf8_lossy(&snap.path_of(i)).into_owned())
            .collect();
        assert_eq!(paths, ["a", "a/a", "a/a/deep", "a/f", "b", "b/z", "c"]);
        let a = snap.lookup(b"a").expect("a");
        assert_eq!(snap.walk(a).count(), 3);
        assert_eq!(snap.children(a).len(), 2);
        assert_eq!(snap.walk(snap.lookup(b"c").expect("c")).count(), 0);
    }
}
