//! What changed between two snapshots, from their manifests alone: entries added, removed,
//! with other content, of another kind, or with other metadata only. No content is read: two
//! regular files differ in content exactly when their version ids (the blake3 of the content)
//! differ.

use crate::format::snapshot::{Entry, EntryKind, Snapshot};

/// How an entry differs between the older and the newer snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Only in the newer snapshot.
    Added,
    /// Only in the older snapshot.
    Removed,
    /// The same kind, other content: a file's version id, a link's target or a device number.
    Modified,
    /// Another kind of entry under the same name (a file that became a directory, ...).
    KindChanged,
    /// The same content, other metadata (permissions, owner, group, modification time,
    /// extended attributes).
    Metadata,
}

impl ChangeKind {
    /// The name used in output: `added`, `removed`, `modified`, `kind`, `metadata`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::KindChanged => "kind",
            ChangeKind::Metadata => "metadata",
        }
    }

    /// The one-character mark of text output, as restic prints it: `+`, `-`, `M`, `T`, `U`.
    pub fn mark(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::KindChanged => 'T',
            ChangeKind::Metadata => 'U',
        }
    }
}

/// One entry that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// How it differs.
    pub kind: ChangeKind,
    /// Its path relative to the snapshot root, components joined by `/`.
    pub path: Vec<u8>,
    /// What it was in the older snapshot (`None` when added).
    pub before: Option<EntryKind>,
    /// What it is in the newer snapshot (`None` when removed).
    pub after: Option<EntryKind>,
    /// Its size in the older snapshot (0 when absent or not a regular file).
    pub size_before: u64,
    /// Its size in the newer snapshot (0 when absent or not a regular file).
    pub size_after: u64,
}

/// Totals of a diff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffTotals {
    /// Entries added.
    pub added: u64,
    /// Entries removed.
    pub removed: u64,
    /// Entries with other content.
    pub modified: u64,
    /// Entries of another kind.
    pub kind_changed: u64,
    /// Entries with other metadata only.
    pub metadata: u64,
    /// Bytes of regular files in the newer snapshot that are added, modified or changed kind.
    pub bytes_added: u64,
    /// Bytes of regular files in the older snapshot that are removed, modified or changed kind.
    pub bytes_removed: u64,
}

/// The differences between two snapshots, in path order (a directory before what is in it).
#[derive(Debug, Clone, Default)]
pub struct SnapshotDiff {
    /// Every entry that differs.
    pub changes: Vec<Change>,
    /// Their totals.
    pub totals: DiffTotals,
}

/// What the newer snapshot `b` changed from the older `a` under the entries `at_a` of `a` and
/// `at_b` of `b` (the same path in both; their roots for whole snapshots). Directories present in
/// both are compared entry by entry; everything under an added or removed directory is listed.
/// The two entries themselves are compared too unless they are the roots of the snapshots.
pub fn diff_snapshots(a: &Snapshot, at_a: u32, b: &Snapshot, at_b: u32) -> SnapshotDiff {
    let mut d = Differ {
        a,
        b,
        out: SnapshotDiff::default(),
        path: Vec::new(),
    };
    match (a.entry(at_a), b.entry(at_b)) {
        (Some(ea), Some(eb)) => {
            if at_a != Snapshot::ROOT || at_b != Snapshot::ROOT {
                d.path = b.path_of(at_b);
                d.pair(ea, eb);
            } else {
                d.dirs(ea, eb);
            }
        }
        (Some(ea), None) => {
            d.path = a.path_of(at_a);
            d.whole(Side::Removed, a, ea);
        }
        (None, Some(eb)) => {
            d.path = b.path_of(at_b);
            d.whole(Side::Added, b, eb);
        }
        (None, None) => {}
    }
    d.out
}

/// Which snapshot a one-sided subtree is in.
#[derive(Clone, Copy)]
enum Side {
    Added,
    Removed,
}

struct Differ<'s> {
    a: &'s Snapshot,
    b: &'s Snapshot,
    out: SnapshotDiff,
    /// The path of the entry being compared.
    path: Vec<u8>,
}

impl<'s> Differ<'s> {
    /// Compares the children of two directories, merging their sorted runs by name.
    fn dirs(&mut self, da: &'s Entry, db: &'s Entry) {
        let ka = children(self.a, da);
        let kb = children(self.b, db);
        let (mut i, mut j) = (0, 0);
        while i < ka.len() || j < kb.len() {
            let order = match (ka.get(i), kb.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let mark = self.path.len();
            let name = match order {
                std::cmp::Ordering::Less => &ka[i].name,
                _ => &kb[j].name,
            };
            if !self.path.is_empty() {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(name);
            match order {
                std::cmp::Ordering::Less => {
                    self.whole(Side::Removed, self.a, &ka[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.whole(Side::Added, self.b, &kb[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    self.pair(&ka[i], &kb[j]);
                    i += 1;
                    j += 1;
                }
            }
            self.path.truncate(mark);
        }
    }

    /// Compares one entry present in both snapshots at the current path.
    fn pair(&mut self, ea: &'s Entry, eb: &'s Entry) {
        if ea.kind != eb.kind {
            self.push(ChangeKind::KindChanged, Some(ea), Some(eb));
            // What was under the old directory is gone; what is under the new one is new.
            if ea.kind == EntryKind::Dir {
                self.under(Side::Removed, self.a, ea);
            }
            if eb.kind == EntryKind::Dir {
                self.under(Side::Added, self.b, eb);
            }
            return;
        }
        if content_differs(ea, eb) {
            self.push(ChangeKind::Modified, Some(ea), Some(eb));
        } else if metadata_differs(ea, eb) {
            self.push(ChangeKind::Metadata, Some(ea), Some(eb));
        }
        if ea.kind == EntryKind::Dir {
            self.dirs(ea, eb);
        }
    }

    /// Lists an entry only one snapshot has, and everything under it.
    fn whole(&mut self, side: Side, snap: &'s Snapshot, e: &'s Entry) {
        match side {
            Side::Added => self.push(ChangeKind::Added, None, Some(e)),
            Side::Removed => self.push(ChangeKind::Removed, Some(e), None),
        }
        self.under(side, snap, e);
    }

    /// Lists everything under directory `e` of one side.
    fn under(&mut self, side: Side, snap: &'s Snapshot, e: &'s Entry) {
        if e.kind != EntryKind::Dir {
            return;
        }
        for child in children(snap, e) {
            let mark = self.path.len();
            if !self.path.is_empty() {
                self.path.push(b'/');
            }
            self.path.extend_from_slice(&child.name);
            self.whole(side, snap, child);
            self.path.truncate(mark);
        }
    }

    fn push(&mut self, kind: ChangeKind, before: Option<&Entry>, after: Option<&Entry>) {
        let size = |e: Option<&Entry>| e.filter(|e| e.kind == EntryKind::File).map_or(0, |e| e.meta.size);
        let (size_before, size_after) = (size(before), size(after));
        let t = &mut self.out.totals;
        match kind {
            ChangeKind::Added => t.added += 1,
            ChangeKind::Removed => t.removed += 1,
            ChangeKind::Modified => t.modified += 1,
            ChangeKind::KindChanged => t.kind_changed += 1,
            ChangeKind::Metadata => t.metadata += 1,
        }
        if kind != ChangeKind::Metadata {
            t.bytes_added += size_after;
            t.bytes_removed += size_before;
        }
        self.out.changes.push(Change {
            kind,
            path: self.path.clone(),
            before: before.map(|e| e.kind),
            after: after.map(|e| e.kind),
            size_before,
            size_after,
        });
    }
}

/// The children of directory `e` (empty for any other entry or a damaged range).
fn children<'s>(snap: &'s Snapshot, e: &Entry) -> &'s [Entry] {
    if e.kind != EntryKind::Dir {
        return &[];
    }
    snap.entries
        .get(e.children.start as usize..e.children.end as usize)
        .unwrap_or_default()
}

/// True when two entries of one kind hold other content.
fn content_differs(a: &Entry, b: &Entry) -> bool {
    match a.kind {
        EntryKind::File => a.content.map(|c| c.version) != b.content.map(|c| c.version),
        EntryKind::Symlink => a.target != b.target,
        EntryKind::CharDevice | EntryKind::BlockDevice => a.meta.rdev != b.meta.rdev,
        EntryKind::Dir | EntryKind::Fifo | EntryKind::Socket => false,
    }
}

/// True when two entries differ in the metadata a restore applies.
fn metadata_differs(a: &Entry, b: &Entry) -> bool {
    let (x, y) = (&a.meta, &b.meta);
    x.mode != y.mode || x.uid != y.uid || x.gid != y.gid || x.mtime_ns != y.mtime_ns || x.xattrs != y.xattrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::{FileContent, Metadata, SnapshotId, SnapshotStats, Storage};
    use crate::format::tree_builder::TreeBuilder;
    use crate::id::VersionId;

    /// An entry to build: kind, metadata, content.
    type Spec = (EntryKind, Metadata, Option<FileContent>);

    fn file(version: u8, size: u64, mtime_ns: i64) -> Spec {
        let meta = Metadata {
            mode: 0o644,
            size,
            mtime_ns,
            ..Metadata::default()
        };
        let content = FileContent {
            version: VersionId([version; 32]),
            storage: Storage::Whole,
        };
        (EntryKind::File, meta, Some(content))
    }

    fn dir() -> Spec {
        let meta = Metadata {
            mode: 0o755,
            ..Metadata::default()
        };
        (EntryKind::Dir, meta, None)
    }

    /// A snapshot of `paths` (parents before children).
    fn snap(paths: &[(&str, Spec)]) -> Snapshot {
        let mut t = TreeBuilder::new(dir().1);
        let mut handles: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (p, (kind, meta, content)) in paths {
            let (parent, name) = match p.rsplit_once('/') {
                Some((parent, name)) => (handles[parent], name),
                None => (0, *p),
            };
            let mut entry = Entry::new(name.as_bytes().to_vec(), *kind, meta.clone());
            entry.content = *content;
            handles.insert(p, t.add(parent, entry));
        }
        Snapshot {
            id: SnapshotId::at(0, 0),
            time_ns: 0,
            source: b"/src".to_vec(),
            host: "h".into(),
            stats: SnapshotStats::default(),
            entries: t.finish(),
        }
    }

    fn changes(d: &SnapshotDiff) -> Vec<(char, String)> {
        d.changes
            .iter()
            .map(|c| (c.kind.mark(), String::from_utf8_lossy(&c.path).into_owned()))
            .collect()
    }

    #[test]
    fn lists_every_kind_of_change_in_path_order() {
        let a = snap(&[
            ("docs", dir()),
            ("docs/a.txt", file(1, 10, 1)),
            ("docs/b.txt", file(2, 20, 1)),
            ("gone", dir()),
            ("gone/x", file(3, 30, 1)),
            ("same", file(4, 40, 1)),
            ("touched", file(5, 50, 1)),
            ("was_file", file(6, 60, 1)),
        ]);
        let b = snap(&[
            ("docs", dir()),
            ("docs/a.txt", file(9, 11, 2)),
            ("docs/b.txt", file(2, 20, 1)),
            ("docs/c.txt", file(7, 70, 1)),
            ("same", file(4, 40, 1)),
            ("touched", file(5, 50, 5)),
            ("was_file", dir()),
            ("was_file/inner", file(8, 80, 1)),
        ]);
        let d = diff_snapshots(&a, Snapshot::ROOT, &b, Snapshot::ROOT);
        assert_eq!(
            changes(&d),
            [
                ('M', "docs/a.txt"),
                ('+', "docs/c.txt"),
                ('-', "gone"),
                ('-', "gone/x"),
                ('U', "touched"),
                ('T', "was_file"),
                ('+', "was_file/inner"),
            ]
            .map(|(m, p)| (m, p.to_string()))
        );
        let t = d.totals;
        assert_eq!(
            (t.added, t.removed, t.modified, t.kind_changed, t.metadata),
            (2, 2, 1, 1, 1)
        );
        assert_eq!(t.bytes_added, 11 + 70 + 80);
        assert_eq!(t.bytes_removed, 10 + 30 + 60);
        let reverse = diff_snapshots(&b, Snapshot::ROOT, &a, Snapshot::ROOT);
        assert_eq!(reverse.totals.added, 2);
        assert_eq!(reverse.totals.bytes_added, t.bytes_removed);
    }

    #[test]
    fn a_snapshot_does_not_differ_from_itself_and_a_subtree_is_compared_alone() {
        let a = snap(&[("d", dir()), ("d/f", file(1, 1, 1)), ("e", file(2, 2, 2))]);
        assert!(
            diff_snapshots(&a, Snapshot::ROOT, &a, Snapshot::ROOT)
                .changes
                .is_empty()
        );
        let b = snap(&[("d", dir()), ("d/f", file(3, 1, 1)), ("e", file(4, 2, 2))]);
        let (da, db) = (a.lookup(b"d").expect("d"), b.lookup(b"d").expect("d"));
        let d = diff_snapshots(&a, da, &b, db);
        assert_eq!(changes(&d), [('M', "d/f".to_string())]);
    }
}
