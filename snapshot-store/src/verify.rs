//! Checking a store: every snapshot, version record and object it references parses and passes
//! its checksum; with `read_data`, every file version is rebuilt and checked against its blake3
//! and its signature, and every data object against its id.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::envelope::{self, Kind};
use crate::error::{Error, Result};
use crate::id::{ObjectId, VersionId};
use crate::matcher::block_sig;
use crate::object::Access;
use crate::read::Window;
use crate::rolling::Roller;
use crate::snapshot::{EntryKind, Storage};
use crate::store::Store;
use crate::version::{FileVersion, VersionKind};

/// What `verify` checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Rebuild every version and check its content hash (reads all data).
    pub read_data: bool,
}

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is at fault.
    pub what: String,
    /// What is wrong with it.
    pub error: String,
}

/// The result of `verify`.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// File versions (chain records and whole files) checked.
    pub versions: u64,
    /// Objects checked.
    pub objects: u64,
    /// Bytes of content rebuilt and hashed (with `read_data`).
    pub bytes_read: u64,
    /// Everything wrong, sorted.
    pub problems: Vec<Problem>,
    /// Files in the store no snapshot references (garbage of interrupted writes; harmless).
    pub unreferenced: Vec<String>,
}

/// Checks `store`.
pub fn verify(store: &Store, opts: VerifyOptions) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut problems = Vec::new();
    let mut whole: BTreeSet<(ObjectId, u64)> = BTreeSet::new();
    let mut chain_roots: BTreeSet<(VersionId, u64)> = BTreeSet::new();
    let marked_xattrs = store.records_xattrs();
    for id in store.snapshot_ids()? {
        report.snapshots += 1;
        let snap = match store.snapshot(&id) {
            Ok(s) => s,
            Err(e) => {
                problems.push(problem(format!("snapshot {id}"), &e));
                continue;
            }
        };
        if !marked_xattrs && snap.entries.iter().any(|e| !e.meta.xattrs.is_empty()) {
            problems.push(Problem {
                what: format!("snapshot {id}"),
                error: "records extended attributes but the store has no `xattrs` marker \
                        (mounts would hide them); create an empty file named xattrs in the store"
                    .into(),
            });
        }
        for e in snap.entries.iter().filter(|e| e.kind == EntryKind::File) {
            match e.content {
                Some(c) if c.storage == Storage::Whole => {
                    whole.insert((c.version.as_object(), e.meta.size));
                }
                Some(c) => {
                    chain_roots.insert((c.version, e.meta.size));
                }
                None => problems.push(Problem {
                    what: format!("snapshot {id}"),
                    error: "a file entry has no content".into(),
                }),
            }
        }
    }

    // Version records: follow base and full links.
    let mut versions: Vec<Arc<FileVersion>> = Vec::new();
    let mut seen: HashSet<VersionId> = HashSet::new();
    let mut todo: Vec<VersionId> = chain_roots.iter().map(|(v, _)| *v).collect();
    while let Some(v) = todo.pop() {
        if !seen.insert(v) {
            continue;
        }
        match store.version(&v) {
            Ok(rec) => {
                if let Some(b) = rec.base {
                    todo.push(b);
                }
                todo.push(rec.full);
                versions.push(rec);
            }
            Err(e) => problems.push(problem(format!("file version {}", v.short()), &e)),
        }
    }
    let by_id: std::collections::HashMap<VersionId, Arc<FileVersion>> =
        versions.iter().map(|v| (v.id, Arc::clone(v))).collect();
    for v in &versions {
        if let Some(b) = v.base.and_then(|b| by_id.get(&b)) {
            let expect = if v.kind == VersionKind::Differential {
                1
            } else {
                b.depth + 1
            };
            if v.depth != expect {
                problems.push(Problem {
                    what: format!("file version {}", v.id.short()),
                    error: format!("depth {} does not follow its base's depth {}", v.depth, b.depth),
                });
            }
        }
    }
    for (v, size) in &chain_roots {
        if let Some(rec) = by_id.get(v)
            && rec.size != *size
        {
            problems.push(Problem {
                what: format!("file version {}", v.short()),
                error: format!("has {} bytes but a snapshot says {size}", rec.size),
            });
        }
    }
    report.versions = (versions.len() + whole.len()) as u64;

    // Objects referenced by versions, and the envelope objects checked by loading them.
    let mut data_objects: BTreeSet<ObjectId> = whole.iter().map(|(o, _)| *o).collect();
    let mut referenced: HashSet<ObjectId> = data_objects.iter().copied().collect();
    for v in &versions {
        if let Some(l) = v.literal {
            data_objects.insert(l);
            referenced.insert(l);
        }
        referenced.insert(v.signature);
        let what = format!("file version {}", v.id.short());
        match store.signature(&v.signature) {
            Ok(sig) if sig.file_size() != v.size => problems.push(Problem {
                what: format!("signature object {}", v.signature.short()),
                error: format!("describes {} bytes, but its version has {}", sig.file_size(), v.size),
            }),
            Ok(sig) if sig.block_size != v.block_size => problems.push(Problem {
                what: what.clone(),
                error: format!(
                    "block size {} differs from its signature's {}",
                    v.block_size, sig.block_size
                ),
            }),
            Ok(_) => {}
            Err(e) => problems.push(problem(format!("signature object {}", v.signature.short()), &e)),
        }
        if let Err(e) = check_object_name(store, &v.signature, Kind::Signature) {
            problems.push(problem(format!("signature object {}", v.signature.short()), &e));
        }
        let literal_len = crate::delta::literal_len(&v.ops);
        match v.literal {
            None if literal_len > 0 => problems.push(Problem {
                what: what.clone(),
                error: "has literal ops but no literal data object".into(),
            }),
            Some(l) => {
                if let Ok(obj) = store.data_object(&l)
                    && obj.logical_len() != literal_len
                {
                    problems.push(Problem {
                        what: what.clone(),
                        error: format!(
                            "its ops use {literal_len} literal bytes, but data object {} holds {}",
                            l.short(),
                            obj.logical_len()
                        ),
                    });
                }
            }
            None => {}
        }
        let mut sig_at = store.signature_record(&v.signature).ok().and_then(|r| r.base);
        while let Some(s) = sig_at {
            if !referenced.insert(s) {
                break;
            }
            sig_at = store.signature_record(&s).ok().and_then(|r| r.base);
        }
        if let Some(t) = v.hash_tree {
            referenced.insert(t);
            if let Err(e) = check_tree(store, v, &t) {
                problems.push(problem(format!("hash-tree object {}", t.short()), &e));
            }
            if let Ok(table) = store.tree_table(&t) {
                referenced.extend(table.refs.iter().copied());
            }
        }
        if let Some(cp) = v.map_checkpoint {
            referenced.insert(cp);
            let checked = store
                .map_checkpoint(&cp)
                .and_then(|_| check_object_name(store, &cp, Kind::ExtentMap));
            if let Err(e) = checked {
                problems.push(problem(format!("extent-map object {}", cp.short()), &e));
            }
        }
    }
    let object_results: Vec<(ObjectId, Result<u64>)> = data_objects
        .par_iter()
        .map(|id| (*id, check_data_object(store, id, opts.read_data)))
        .collect();
    for (id, r) in object_results {
        report.objects += 1;
        match r {
            Ok(n) => report.bytes_read += n,
            Err(e) => problems.push(problem(format!("data object {}", id.short()), &e)),
        }
    }
    report.objects += (referenced.len() - data_objects.len()) as u64;

    // Rebuild every version through the read path: every chain record (snapshot sizes were
    // checked against the records above) and every whole file.
    let rebuild: Vec<(VersionId, Storage, u64)> = versions
        .iter()
        .map(|v| (v.id, Storage::Chain, v.size))
        .chain(whole.iter().map(|(o, s)| (VersionId(o.0), Storage::Whole, *s)))
        .collect();
    let rebuilt: Vec<(VersionId, Result<()>)> = rebuild
        .par_iter()
        .map(|&(v, storage, size)| {
            let r = check_version(store, v, storage, size, opts.read_data, by_id.get(&v));
            (v, r)
        })
        .collect();
    for (v, r) in rebuilt {
        if let Err(e) = r {
            problems.push(problem(format!("file version {}", v.short()), &e));
        }
    }

    report.unreferenced = unreferenced(store, &referenced, &seen)?;
    problems.sort_by(|a, b| (&a.what, &a.error).cmp(&(&b.what, &b.error)));
    problems.dedup();
    report.problems = problems;
    Ok(report)
}

/// Checks a version's hash tree: its name, its version and size, that its regions merge to the
/// version id, and that every full region's leaf block (wherever it is stored) merges to the
/// region's value (no data is read).
fn check_tree(store: &Store, v: &FileVersion, id: &ObjectId) -> Result<()> {
    check_object_name(store, id, Kind::HashTree)?;
    let table = store.tree_table(id)?;
    let what = format!("hash-tree object {}", id.short());
    if table.header.version != v.id || table.header.file_size != v.size {
        return Err(Error::corrupt(
            what,
            format!(
                "it is the tree of version {} ({} bytes)",
                table.header.version.short(),
                table.header.file_size
            ),
        ));
    }
    for r in 0..table.regions.len() as u64 {
        if table.is_full(r) {
            store.tree_block(&table, r)?;
        }
    }
    Ok(())
}

/// Checks that an envelope object's name is the hash of its payload.
fn check_object_name(store: &Store, id: &ObjectId, kind: Kind) -> Result<()> {
    let path = store.object_path(id);
    let what = format!("{} {}", kind.noun(), id.short());
    let payload = envelope::open(kind, &crate::fsio::read_file(&path)?, &what)?;
    let got = match kind {
        Kind::Signature => crate::signature::SignatureRecord::decode(&payload, &what)?.encode().0,
        Kind::HashTree => crate::hashtree::tree_object_id(&payload),
        _ => crate::filewrite::map_object_id(&payload),
    };
    if got != *id {
        return Err(Error::ChecksumMismatch {
            what,
            expected: id.short(),
            got: got.short(),
        });
    }
    Ok(())
}

fn problem(what: String, e: &Error) -> Problem {
    Problem {
        what,
        error: e.to_string(),
    }
}

/// Opens a data object (checking its index); with `read_data`, reads every frame and checks the
/// stream's blake3 against the id. Returns bytes read.
fn check_data_object(store: &Store, id: &ObjectId, read_data: bool) -> Result<u64> {
    let obj = store.data_object(id)?;
    if !read_data {
        return Ok(0);
    }
    let mut h = blake3::Hasher::new();
    for i in 0..obj.frames().len() {
        h.update(&obj.read_frame(i, Access::Sequential)?);
    }
    let got = ObjectId::from(h.finalize());
    if got != *id {
        return Err(Error::ChecksumMismatch {
            what: obj.describe(),
            expected: id.short(),
            got: got.short(),
        });
    }
    Ok(obj.logical_len())
}

/// Composes the version's map; with `read_data`, rebuilds the content and checks its blake3 and
/// (for chain versions) every block of its signature.
fn check_version(
    store: &Store,
    v: VersionId,
    storage: Storage,
    size: u64,
    read_data: bool,
    rec: Option<&Arc<FileVersion>>,
) -> Result<()> {
    let content = crate::snapshot::FileContent { version: v, storage };
    let reader = store.open_content(&content, size)?;
    if !read_data {
        return Ok(());
    }
    let sig = match rec {
        Some(r) => Some(store.signature(&r.signature)?),
        None => None,
    };
    let roller = sig.as_ref().map(|s| Roller::new(s.block_size as usize));
    let mut hasher = blake3::Hasher::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut block = 0usize;
    let mut feed = |chunk: &[u8]| -> Result<()> {
        hasher.update(chunk);
        let (Some(sig), Some(roller)) = (&sig, &roller) else {
            return Ok(());
        };
        pending.extend_from_slice(chunk);
        let mut used = 0usize;
        while let Some(b) = sig.blocks.get(block) {
            let len = b.len as usize;
            if pending.len() - used < len {
                break;
            }
            if block_sig(roller, &pending[used..used + len]) != *b {
                return Err(Error::corrupt(
                    format!(
                        "signature object {}",
                        rec.map(|r| r.signature.short()).unwrap_or_default()
                    ),
                    format!("block {block} does not match the content of version {}", v.short()),
                ));
            }
            used += len;
            block += 1;
        }
        pending.drain(..used);
        Ok(())
    };
    reader.stream(|window| match window {
        Window::Data { bytes, .. } => feed(bytes),
        Window::Hole { mut len, .. } => {
            while len > 0 {
                let n = len.min(1 << 20);
                feed(crate::matcher::zeros(n as usize))?;
                len -= n;
            }
            Ok(())
        }
    })?;
    let got = VersionId::from(hasher.finalize());
    if got != v {
        return Err(Error::ChecksumMismatch {
            what: format!("file version {} (rebuilt content)", v.short()),
            expected: v.short(),
            got: got.short(),
        });
    }
    Ok(())
}

fn unreferenced(store: &Store, objects: &HashSet<ObjectId>, versions: &HashSet<VersionId>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let root = store.root();
    for (dir, is_object) in [("objects", true), ("versions", false)] {
        for path in list_files(&root.join(dir))? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let known = if is_object {
                ObjectId::from_hex(name).is_some_and(|id| objects.contains(&id))
            } else {
                VersionId::from_hex(name).is_some_and(|id| versions.contains(&id))
            };
            if !known {
                out.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
            }
        }
    }
    for path in list_files(&root.join("tmp"))? {
        out.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
    }
    out.sort();
    Ok(out)
}

fn list_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match fs::read_dir(&d) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&d, e)),
        };
        for e in rd {
            let e = e.map_err(|err| Error::io(&d, err))?;
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    Ok(out)
}
