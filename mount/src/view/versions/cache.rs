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
//! "BKFSvidx" | version u32 (2) | store id [16] | payload length u64 | blake3(payload) [32] | payload
//! payload: snapshots n, each: id str, manifest size u64, manifest mtime i64
//!          nodes n, each: name bytes, parent u32, dir u8, seen i64, runs n, each:
//!            first u32, last u32, content [32], inode entry u32, size u64, blocks u64,
//!            perm u16, nlink u32, uid u32, gid u32, mtime i64
//! ```
//! Written with the store's own codec ([`Encoder`]): integers little-endian, `n` a LEB128
//! count, `bytes` and `str` a LEB128 length and the bytes. Nodes are in number order (their
//! inodes) and parents come first.

use std::io;
use std::path::Path;

use snapshot_store::{Decoder, Encoder, SnapshotId, Store};

use super::{Node, Run, Tree};
use crate::view::View;
use crate::view::attr::{Attr, Kind};
use crate::view::inode::ino_of;

const MAGIC: &[u8; 8] = b"BKFSvidx";
const VERSION: u32 = 2;

/// A manifest file's size and modification time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Stamp {
    size: u64,
    mtime_ns: i64,
}

/// The stamp of snapshot `id`'s manifest file, if it can be read.
pub(super) fn stamp(store: &Store, id: &SnapshotId) -> Option<Stamp> {
    let (size, mtime_ns) = store.manifest_stamp(id)?;
    Some(Stamp { size, mtime_ns })
}

fn encode(tree: &Tree) -> Vec<u8> {
    let mut e = Encoder::new();
    e.varint(tree.folded.len() as u64);
    for (id, st) in tree.folded.iter().zip(&tree.stamps) {
        e.str(id.as_str());
        e.u64(st.size);
        e.i64(st.mtime_ns);
    }
    e.varint(tree.nodes.len() as u64);
    for n in &tree.nodes {
        e.bytes(&n.name);
        e.u32(n.parent);
        e.u8(u8::from(n.dir));
        e.i64(n.seen_ns);
        e.varint(n.runs.len() as u64);
        for r in &n.runs {
            let a = &r.attr;
            e.u32(r.first);
            e.u32(r.last);
            e.version_id(&r.content);
            e.u32(a.ino as u32);
            e.u64(a.size);
            e.u64(a.blocks);
            e.u16(a.perm);
            e.u32(a.nlink);
            e.u32(a.uid);
            e.u32(a.gid);
            e.i64(a.mtime_ns);
        }
    }
    e.into_bytes()
}

/// Writes `tree` to `file` (through a temporary file and a rename: a reader sees the old index
/// or the new one).
pub(super) fn save(tree: &Tree, store: &Store, file: &Path) -> io::Result<()> {
    let payload = encode(tree);
    let mut out = Encoder::new();
    out.raw(MAGIC);
    out.u32(VERSION);
    out.raw(&store.config().store_id);
    out.u64(payload.len() as u64);
    out.raw(blake3::hash(&payload).as_bytes());
    out.raw(&payload);
    let out = out.into_bytes();
    if let Some(dir) = file.parent() {
        private_dir(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    write_private(&tmp, &out)?;
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
    let mut r = Decoder::new(bytes, "versions index");
    if r.take(8).ok()? != MAGIC || r.u32().ok()? != VERSION || r.take(16).ok()? != view.store.config().store_id {
        return None;
    }
    let len = usize::try_from(r.u64().ok()?).ok()?;
    let sum = r.take(32).ok()?;
    let payload = r.take(len).ok()?;
    if blake3::hash(payload).as_bytes() != sum || r.finish().is_err() {
        return None;
    }
    decode_payload(view, tree, &mut Decoder::new(payload, "versions index"), listed).ok()?
}

/// The payload into `tree`: `Ok(None)` when it does not describe this store's snapshots now.
fn decode_payload(
    view: &View,
    tree: &mut Tree,
    r: &mut Decoder<'_>,
    listed: &[SnapshotId],
) -> snapshot_store::Result<Option<()>> {
    // Smallest encodings: a snapshot 37 bytes, a node 15, a run 82.
    let folded_len = r.count(37)?;
    if folded_len > listed.len() {
        return Ok(None);
    }
    let mut folded = Vec::with_capacity(folded_len);
    let mut stamps = Vec::with_capacity(folded_len);
    let mut numbers = Vec::with_capacity(folded_len);
    for want in &listed[..folded_len] {
        let id = SnapshotId::parse(r.str()?);
        let st = Stamp {
            size: r.u64()?,
            mtime_ns: r.i64()?,
        };
        let (Some(id), Some(number)) = (id, view.number(want)) else {
            return Ok(None);
        };
        if id != *want || stamp(&view.store, &id) != Some(st) {
            return Ok(None);
        }
        numbers.push(number);
        folded.push(id);
        stamps.push(st);
    }
    let node_count = r.count(15)?;
    let mut nodes: Vec<Node> = Vec::with_capacity(node_count);
    for i in 0..node_count {
        let name = r.bytes()?.to_vec();
        let parent = r.u32()?;
        if (i > 0 && parent as usize >= i) || (i == 0 && parent != 0) {
            return Ok(None);
        }
        let mut node = Node::new(&name, parent);
        node.dir = r.u8()? != 0;
        node.seen_ns = r.i64()?;
        for _ in 0..r.count(82)? {
            let first = r.u32()?;
            let last = r.u32()?;
            let content = r.version_id()?;
            let owner = r.u32()?;
            let Some(&snap) = numbers.get(first as usize) else {
                return Ok(None);
            };
            if last < first || last as usize >= folded_len {
                return Ok(None);
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
        if let Some(p) = nodes.get_mut(parent as usize).filter(|_| i > 0) {
            p.children.insert(name.into(), i as u32);
        }
        nodes.push(node);
    }
    r.finish()?;
    if nodes.is_empty() {
        return Ok(None);
    }
    tree.folded = folded;
    tree.stamps = stamps;
    tree.nodes = nodes;
    Ok(Some(()))
}
