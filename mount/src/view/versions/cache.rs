//! The versions index on disk, in the cache directory (never in the store): read by the next
//! mount or server instead of every manifest, and never trusted blindly. It is used only when
//! its checksum holds, it names this store, its snapshots are the oldest ones the store lists
//! now, and each of their manifest files has the size and modification time it had when folded
//! (a snapshot forgotten and written again under the same id is noticed). Otherwise it is
//! ignored and built again. Deleting it at any time is safe. On Unix the file is private to its
//! user (0600 in a 0700 folder) and is ignored unless that user owns it and nobody else may
//! write it: another user could otherwise make a mount list false attributes.
//!
//! ```text
//! "BKFSvidx" | version u32 | store id [16] | payload length u64 | blake3(payload) [32] | payload
//! payload: snapshots u32, each: id length u16, id, manifest size u64, manifest mtime i64
//!          nodes u32, each: name length u32, name, parent u32, dir u8, seen i64, runs u32, each:
//!            first u32, last u32, content [32], inode entry u32, size u64, blocks u64,
//!            perm u16, nlink u32, uid u32, gid u32, mtime i64
//! ```
//! All integers little-endian. Nodes are in number order (their inodes) and parents come first.

use std::io;
use std::path::Path;

use snapshot_store::{SnapshotId, Store, VersionId};

use super::{Node, Run, Tree};
use crate::view::View;
use crate::view::attr::{Attr, Kind};
use crate::view::inode::ino_of;

const MAGIC: &[u8; 8] = b"BKFSvidx";
const VERSION: u32 = 1;

/// A manifest file's size and modification time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Stamp {
    size: u64,
    mtime_ns: i64,
}

/// The stamp of snapshot `id`'s manifest file, if it can be read.
pub(super) fn stamp(store: &Store, id: &SnapshotId) -> Option<Stamp> {
    let md = std::fs::metadata(store.snapshot_path(id)).ok()?;
    let mtime = md.modified().ok()?;
    let ns = match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).ok()?,
        Err(e) => -i64::try_from(e.duration().as_nanos()).ok()?,
    };
    Some(Stamp {
        size: md.len(),
        mtime_ns: ns,
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn encode(tree: &Tree) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.u32(tree.folded.len() as u32);
    for (id, st) in tree.folded.iter().zip(&tree.stamps) {
        w.u16(id.as_str().len() as u16);
        w.bytes(id.as_str().as_bytes());
        w.u64(st.size);
        w.i64(st.mtime_ns);
    }
    w.u32(tree.nodes.len() as u32);
    for n in &tree.nodes {
        w.u32(n.name.len() as u32);
        w.bytes(&n.name);
        w.u32(n.parent);
        w.u8(u8::from(n.dir));
        w.i64(n.seen_ns);
        w.u32(n.runs.len() as u32);
        for r in &n.runs {
            let a = &r.attr;
            w.u32(r.first);
            w.u32(r.last);
            w.bytes(&r.content.0);
            w.u32(a.ino as u32);
            w.u64(a.size);
            w.u64(a.blocks);
            w.u16(a.perm);
            w.u32(a.nlink);
            w.u32(a.uid);
            w.u32(a.gid);
            w.i64(a.mtime_ns);
        }
    }
    w.0
}

/// Writes `tree` to `file` (through a temporary file and a rename: a reader sees the old index
/// or the new one).
pub(super) fn save(tree: &Tree, store: &Store, file: &Path) -> io::Result<()> {
    let payload = encode(tree);
    let mut out = Writer(Vec::with_capacity(payload.len() + 68));
    out.bytes(MAGIC);
    out.u32(VERSION);
    out.bytes(&store.config().store_id);
    out.u64(payload.len() as u64);
    out.bytes(blake3::hash(&payload).as_bytes());
    out.bytes(&payload);
    if let Some(dir) = file.parent() {
        private_dir(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    write_private(&tmp, &out.0)?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    std::fs::write(path, bytes)
}

/// True when nobody but this user can have written `file`.
#[cfg(unix)]
fn owned_and_private(file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata()
        .is_ok_and(|md| md.uid() == rustix::process::geteuid().as_raw() && md.mode() & 0o022 == 0)
}

#[cfg(not(unix))]
fn owned_and_private(_file: &std::fs::File) -> bool {
    true
}

/// Fills the empty `tree` from `file` when the index there can be trusted for the store whose
/// snapshots are `listed` now (see the module doc); leaves it empty otherwise.
pub(super) fn load(view: &View, tree: &mut Tree, file: &Path, listed: &[SnapshotId]) {
    let Ok(mut f) = std::fs::File::open(file) else { return };
    let mut bytes = Vec::new();
    if !owned_and_private(&f) || io::Read::read_to_end(&mut f, &mut bytes).is_err() {
        return;
    }
    if decode(view, tree, &bytes, listed).is_none() {
        *tree = Tree {
            file: tree.file.take(),
            loaded: true,
            ..Tree::default()
        };
    }
}

fn decode(view: &View, tree: &mut Tree, bytes: &[u8], listed: &[SnapshotId]) -> Option<()> {
    let mut r = Reader(bytes);
    if r.take(8)? != MAGIC || r.u32()? != VERSION || r.take(16)? != view.store.config().store_id {
        return None;
    }
    let len = usize::try_from(r.u64()?).ok()?;
    let sum = r.take(32)?;
    let payload = r.take(len)?;
    if blake3::hash(payload).as_bytes() != sum || !r.0.is_empty() {
        return None;
    }
    let mut r = Reader(payload);
    let folded_len = r.u32()? as usize;
    if folded_len > listed.len() {
        return None;
    }
    let mut folded = Vec::with_capacity(folded_len);
    let mut stamps = Vec::with_capacity(folded_len);
    let mut numbers = Vec::with_capacity(folded_len);
    for want in &listed[..folded_len] {
        let n = r.u16()? as usize;
        let id = SnapshotId::parse(std::str::from_utf8(r.take(n)?).ok()?)?;
        let st = Stamp {
            size: r.u64()?,
            mtime_ns: r.i64()?,
        };
        if id != *want || stamp(&view.store, &id) != Some(st) {
            return None;
        }
        numbers.push(view.number(&id)?);
        folded.push(id);
        stamps.push(st);
    }
    let node_count = r.u32()? as usize;
    // A node takes at least 21 bytes: the count cannot ask for more room than the payload has.
    let mut nodes: Vec<Node> = Vec::with_capacity(node_count.min(r.0.len() / 21));
    for i in 0..node_count {
        let n = r.u32()? as usize;
        let name = r.take(n)?.to_vec();
        let parent = r.u32()?;
        if (i > 0 && parent as usize >= i) || (i == 0 && parent != 0) {
            return None;
        }
        let mut node = Node::new(&name, parent);
        node.dir = r.u8()? != 0;
        node.seen_ns = r.i64()?;
        let runs = r.u32()? as usize;
        for _ in 0..runs {
            let first = r.u32()?;
            let last = r.u32()?;
            let content = VersionId(r.take(32)?.try_into().ok()?);
            let owner = r.u32()?;
            let snap = *numbers.get(first as usize)?;
            if last < first || last as usize >= folded_len {
                return None;
            }
            let attr = Attr {
                ino: ino_of(snap, owner),
                kind: Kind::File,
                size: r.u64()?,
                blocks: r.u64()?,
                perm: r.u16()?,
                nlink: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                mtime_ns: r.i64()?,
                rdev: 0,
                immutable: true,
                content: Some(content),
            };
            node.runs.push(Run {
                snap,
                first,
                last,
                content,
                attr,
            });
        }
        if i > 0 {
            nodes[parent as usize].children.insert(name.into(), i as u32);
        }
        nodes.push(node);
    }
    if !r.0.is_empty() || nodes.is_empty() {
        return None;
    }
    tree.folded = folded;
    tree.stamps = stamps;
    tree.nodes = nodes;
    Some(())
}
