//! The bytes of a snapshot manifest (`snapshots/<id>`): header, totals and the breadth-first
//! entry list, and the checks a reader makes of the tree's shape.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::{Error, Result};
use crate::format::codec::{Decoder, Encoder};
use crate::format::snapshot::{Entry, EntryKind, FileContent, Metadata, Snapshot, SnapshotId, SnapshotStats, Storage};
use crate::id::VersionId;

impl Snapshot {
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
    e.u8(kind_code(entry.kind));
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
    let kind = kind_from_code(d.u8()?).ok_or_else(|| d.error("unknown entry kind"))?;
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
    let mut entry = Entry::new(name, kind, Metadata::default());
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

/// The code of an entry kind in a manifest.
fn kind_code(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Dir => 0,
        EntryKind::File => 1,
        EntryKind::Symlink => 2,
        EntryKind::Fifo => 3,
        EntryKind::CharDevice => 4,
        EntryKind::BlockDevice => 5,
        EntryKind::Socket => 6,
    }
}

/// The entry kind of a code in a manifest.
fn kind_from_code(c: u8) -> Option<EntryKind> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree_builder::TreeBuilder;
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
        let r = 0;
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
