//! What the golden-store tests share: test data, and every entry of a snapshot described as the
//! expectations files record it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::{Value, json};
use snapshot_store::{EntryKind, FileReader, Snapshot, Store};

/// Text-like bytes (compressible, as mail is).
pub fn text(n: usize, seed: u64) -> Vec<u8> {
    let words = [
        &b"backup "[..],
        b"delta ",
        b"chain ",
        b"frame ",
        b"version ",
        b"store\n",
    ];
    let mut out = Vec::with_capacity(n + 16);
    let mut x = seed | 1;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize]);
    }
    out.truncate(n);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every entry of a snapshot as the test compares it, by path.
pub fn describe(store: &Store, id: &snapshot_store::SnapshotId) -> BTreeMap<String, Value> {
    let snap: std::sync::Arc<Snapshot> = store.snapshot(id).unwrap();
    let mut out = BTreeMap::new();
    for (i, e) in snap.entries.iter().enumerate() {
        let path = String::from_utf8(snap.path_of(i as u32)).unwrap();
        let mut v = json!({
            "kind": e.kind.noun(),
            "mode": format!("{:o}", e.meta.mode),
            "mtime_ns": e.meta.mtime_ns,
            "xattrs": e.meta.xattrs.iter().map(|(k, v)| json!([String::from_utf8_lossy(k), hex(v)])).collect::<Vec<_>>(),
        });
        match e.kind {
            EntryKind::File => {
                let r = FileReader::open(store, &e.content.unwrap(), e.meta.size).unwrap();
                let mut data = Vec::new();
                r.copy_to(&mut data, true).unwrap();
                v["size"] = json!(e.meta.size);
                v["blake3"] = json!(blake3::hash(&data).to_hex().to_string());
                v["hard_linked"] = json!(e.hardlink != 0);
                let holes = (r.next_hole(0).unwrap_or(e.meta.size) < e.meta.size).then_some(true);
                v["has_holes"] = json!(holes.unwrap_or(false));
            }
            EntryKind::Symlink => v["target"] = json!(String::from_utf8_lossy(e.target.as_deref().unwrap())),
            _ => {}
        }
        out.insert(if path.is_empty() { ".".into() } else { path }, v);
    }
    out
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A golden fixture opened for a test: its expectations, and a copy of its store (the fixture
/// itself is never written to; git keeps no empty directory, so `tmp/` is recreated).
pub struct Opened {
    /// The parsed `expected.json`.
    pub want: Value,
    /// Holds the copy.
    pub dir: tempfile::TempDir,
    /// The copy's root.
    pub root: std::path::PathBuf,
    /// The copy, opened.
    pub store: Store,
}

/// Opens a copy of the golden fixture in `fixture`.
pub fn open_copy(fixture: &Path) -> Opened {
    let want: Value = serde_json::from_str(&fs::read_to_string(fixture.join("expected.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    copy_tree(&fixture.join("store"), &root);
    fs::create_dir_all(root.join("tmp")).unwrap();
    let store = Store::open(&root).unwrap();
    Opened { want, dir, root, store }
}
