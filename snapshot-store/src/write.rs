//! Recording one snapshot of a source directory (or single file).
//!
//! The tree is walked first (metadata only), so unchanged files are known before anything is
//! read and the amount to read is known for progress. Changed files are then written: large ones
//! one at a time, each using every core; small ones several at a time. Unreadable entries are
//! reported and left out; store errors abort the write and leave the store as it was.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::filewrite::{Decision, Failure, FileOutcome, FileWriter, PrevEntry};
use crate::meta;
use crate::policy::Policy;
use crate::progress::WriteProgress;
use crate::snapshot::{
    Entry, EntryKind, FileContent, Metadata, Snapshot, SnapshotId, SnapshotStats, Storage, TreeBuilder,
};
use crate::staging::{Staging, next_id};
use crate::store::Store;
use crate::tracked::{ChangeSource, Tracking};

/// Files at least this large are written one at a time with all cores.
const LARGE_FILE: u64 = 8 << 20;
/// A previous entry whose mtime or ctime is this close to (or after) the start of its snapshot
/// may have been read in the same timestamp tick as a later change, which would leave its
/// metadata unchanged: it is read again ("racily clean", as git calls it).
const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// Options of one write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The policy for this write (the store default with per-run overrides applied).
    pub policy: Policy,
    /// Wait for another writer to finish instead of failing.
    pub wait_for_lock: bool,
    /// Paths not to back up (absolute).
    pub exclude: Vec<PathBuf>,
}

/// What happened to one file that was read.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// Path relative to the snapshot root.
    pub path: String,
    /// What was stored.
    pub decision: Decision,
    /// Why a full was stored, when it was.
    pub reason: Option<String>,
    /// Size of the file.
    pub size: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// New (literal) bytes of the version before compression.
    pub delta_bytes: u64,
    /// Bytes added to the store for it.
    pub stored_bytes: u64,
    /// The content was already in the store.
    pub deduplicated: bool,
    /// With change tracking on: where the changed ranges came from (`None`: compared).
    pub change_source: Option<ChangeSource>,
}

/// An entry that could not be backed up.
#[derive(Debug, Clone)]
pub struct EntryError {
    /// Path relative to the snapshot root.
    pub path: String,
    /// What went wrong.
    pub error: String,
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct WriteSummary {
    /// The new snapshot.
    pub snapshot: SnapshotId,
    /// Its totals.
    pub stats: SnapshotStats,
    /// Every file that was read (new or changed metadata).
    pub files: Vec<FileReport>,
    /// Entries left out.
    pub errors: Vec<EntryError>,
    /// The snapshot this one was compared with.
    pub parent: Option<SnapshotId>,
}

struct Job {
    node: usize,
    path: PathBuf,
    rel: String,
    prev: Option<PrevEntry>,
    size: u64,
}

struct Walk {
    tree: TreeBuilder,
    jobs: Vec<Job>,
    /// (link node, first node, link path) for hard links to a file already seen.
    links: Vec<(usize, usize, String)>,
    errors: Vec<EntryError>,
    unchanged: u64,
}

/// Records a snapshot of `source` into `store`, asking `tracking`'s change sources (if any) for
/// changed ranges before comparing files.
pub fn write_snapshot(
    store: &Store,
    source: &Path,
    opts: &WriteOptions,
    tracking: Option<&Tracking>,
    progress: &WriteProgress,
) -> Result<WriteSummary> {
    let source = fs::canonicalize(source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::io(source, std::io::Error::new(e.kind(), "source does not exist"))
        } else {
            Error::io(source, e)
        }
    })?;
    let start_ns = crate::timefmt::now_ns();
    let lock = store.lock_writer(opts.wait_for_lock)?;
    store.clean_tmp(&lock)?;
    let parent = previous_snapshot(store, &source)?;
    let mut exclude = opts.exclude.clone();
    exclude.push(fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_path_buf()));
    // Change tracking's reference copies (of any store) are never part of a snapshot.
    let refs = source.join(crate::reflink::REF_DIR_NAME);
    exclude.push(fs::canonicalize(&refs).unwrap_or(refs));
    for p in tracking
        .map(|t| t.providers.iter().flat_map(|p| p.excluded()).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        exclude.push(fs::canonicalize(&p).unwrap_or(p));
    }

    let mut walk = walk(store, &source, parent.as_deref(), &exclude, progress)?;
    progress.files_total.store(walk.jobs.len() as u64, Ordering::Relaxed);
    progress
        .bytes_total
        .store(walk.jobs.iter().map(|j| j.size).sum(), Ordering::Relaxed);

    let staging = Staging::new(store, &lock);
    let writer = FileWriter {
        store,
        staging: &staging,
        policy: &opts.policy,
        progress,
        tracking,
    };
    let (large, small): (Vec<&Job>, Vec<&Job>) = walk.jobs.iter().partition(|j| j.size >= LARGE_FILE);
    let run = |job: &Job| -> (usize, std::result::Result<FileOutcome, Failure>) {
        *progress.current.lock() = job.rel.clone();
        let r = writer.write(&job.path, &job.rel, job.prev.as_ref());
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        (job.node, r)
    };
    let mut results: Vec<(usize, std::result::Result<FileOutcome, Failure>)> = large.into_iter().map(run).collect();
    results.extend(small.par_iter().map(|j| run(j)).collect::<Vec<_>>());

    let rel_of: HashMap<usize, &Job> = walk.jobs.iter().map(|j| (j.node, j)).collect();
    let mut reports = Vec::new();
    let mut contents: HashMap<usize, FileContent> = HashMap::new();
    let mut bytes_read = 0u64;
    let (mut files_new, mut files_changed, mut unchanged) = (0u64, 0u64, walk.unchanged);
    for (node, result) in results {
        let job = rel_of[&node];
        match result {
            Ok(o) => {
                bytes_read += o.bytes_read;
                if let Some(t) = tracking {
                    t.providers.iter().for_each(|p| p.written(&job.rel, o.content.version));
                }
                let same_as_before = job
                    .prev
                    .as_ref()
                    .is_some_and(|p| p.content.version == o.content.version);
                if same_as_before {
                    unchanged += 1;
                } else if job.prev.is_some() {
                    files_changed += 1;
                } else {
                    files_new += 1;
                }
                reports.push(FileReport {
                    path: job.rel.clone(),
                    decision: if same_as_before {
                        Decision::Unchanged
                    } else {
                        o.decision
                    },
                    reason: o.reason.clone(),
                    size: o.meta.size,
                    bytes_read: o.bytes_read,
                    delta_bytes: o.literal_bytes,
                    stored_bytes: o.stored_bytes,
                    deduplicated: o.deduplicated && !same_as_before,
                    change_source: o.change_source,
                });
                contents.insert(node, o.content);
                if let Some(e) = walk.tree.entry_mut(node) {
                    let xattrs = std::mem::take(&mut e.meta.xattrs);
                    e.meta = Metadata { xattrs, ..o.meta };
                }
            }
            Err(Failure::Source(e)) => {
                walk.errors.push(EntryError {
                    path: job.rel.clone(),
                    error: e.to_string(),
                });
                walk.tree.remove(node);
            }
            Err(Failure::Store(e)) => {
                staging.abandon();
                if let Some(t) = tracking {
                    t.providers.iter().for_each(|p| p.abandoned());
                }
                return Err(e);
            }
        }
    }
    for (node, content) in &contents {
        if let Some(e) = walk.tree.entry_mut(*node) {
            e.content = Some(*content);
        }
    }
    for (link, first, rel) in &walk.links {
        match contents
            .get(first)
            .copied()
            .or_else(|| walk.tree.entry_mut(*first).and_then(|e| e.content))
        {
            Some(c) => {
                if let Some(e) = walk.tree.entry_mut(*link) {
                    e.content = Some(c);
                }
            }
            None => {
                walk.tree.remove(*link);
                walk.errors.push(EntryError {
                    path: rel.clone(),
                    error: "hard link to a file that could not be backed up".into(),
                });
            }
        }
    }
    reports.sort_by(|a, b| a.path.cmp(&b.path));

    let entries = walk.tree.finish();
    let mut stats = SnapshotStats {
        files_new,
        files_changed,
        files_unchanged: unchanged,
        bytes_read,
        errors: walk.errors.len() as u64,
        ..SnapshotStats::default()
    };
    for e in &entries {
        match e.kind {
            EntryKind::File => {
                stats.files += 1;
                stats.bytes += e.meta.size;
            }
            EntryKind::Dir => stats.dirs += 1,
            _ => stats.others += 1,
        }
    }
    stats.stored_bytes = staging.bytes();
    let id = new_snapshot_id(store, start_ns)?;
    let snapshot = Snapshot {
        id,
        time_ns: start_ns,
        source: path_bytes(&source),
        host: hostname(),
        stats,
        entries,
    };
    let committed_copy = tracking.map(|_| snapshot.clone());
    let (id, manifest_len) = match staging.commit(snapshot) {
        Ok(r) => r,
        Err(e) => {
            let _ = store.clean_tmp(&lock);
            if let Some(t) = tracking {
                t.providers.iter().for_each(|p| p.abandoned());
            }
            return Err(e);
        }
    };
    if let (Some(t), Some(snap)) = (tracking, committed_copy) {
        t.providers.iter().for_each(|p| p.committed(&snap));
    }
    stats.stored_bytes += manifest_len;
    drop(lock);
    Ok(WriteSummary {
        snapshot: id,
        stats,
        files: reports,
        errors: walk.errors,
        parent: parent.map(|p| p.id.clone()),
    })
}

/// The newest snapshot of the same source, if any.
fn previous_snapshot(store: &Store, source: &Path) -> Result<Option<Arc<Snapshot>>> {
    let want = path_bytes(source);
    for id in store.snapshot_ids()?.iter().rev() {
        let snap = store.snapshot(id)?;
        if snap.source == want {
            return Ok(Some(snap));
        }
    }
    Ok(None)
}

/// A fresh id at `time_ns` that sorts after every existing snapshot.
fn new_snapshot_id(store: &Store, time_ns: i64) -> Result<SnapshotId> {
    let mut id = SnapshotId::at(time_ns, 0);
    if let Some(last) = store.snapshot_ids()?.last() {
        if id.as_str()[..20] < last.as_str()[..20] {
            // The clock went back: keep ids sorted by continuing after the newest.
            id = last.clone();
        }
        while id <= *last {
            id = next_id(&id)?;
        }
    }
    Ok(id)
}

fn walk(
    store: &Store,
    source: &Path,
    prev: Option<&Snapshot>,
    exclude: &[PathBuf],
    progress: &WriteProgress,
) -> Result<Walk> {
    let top = fs::symlink_metadata(source).at(source)?;
    let mut w = Walk {
        tree: TreeBuilder::new(Metadata::default()),
        jobs: Vec::new(),
        links: Vec::new(),
        errors: Vec::new(),
        unchanged: 0,
    };
    let mut seen_inodes: HashMap<(u64, u64), usize> = HashMap::new();
    // (directory path, its node, its entry in the previous snapshot)
    let mut stack: Vec<(PathBuf, usize, Option<u32>)> = Vec::new();
    let prev_root = prev.map(|_| Snapshot::ROOT);
    if top.is_dir() {
        if let Some(root) = w.tree.entry_mut(0) {
            root.meta = meta::capture(source, &top);
        }
        stack.push((source.to_path_buf(), 0, prev_root));
    } else {
        let parent = source.parent().unwrap_or(Path::new("/"));
        if let (Some(root), Ok(md)) = (w.tree.entry_mut(0), fs::symlink_metadata(parent)) {
            root.meta = meta::capture(parent, &md);
        }
        let name = source.file_name().map(os_bytes).unwrap_or_default();
        add_entry(
            store,
            &mut w,
            &mut seen_inodes,
            0,
            prev_root,
            prev,
            source,
            name,
            &top,
            "",
            &mut stack,
        );
    }
    while let Some((dir, node, prev_dir)) = stack.pop() {
        let rel_dir = rel_path(source, &dir);
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) => {
                w.errors.push(EntryError {
                    path: display_rel(&rel_dir),
                    error: format!("cannot list directory: {e}"),
                });
                continue;
            }
        };
        let mut children: Vec<fs::DirEntry> = Vec::new();
        for entry in read {
            match entry {
                Ok(e) => children.push(e),
                Err(e) => w.errors.push(EntryError {
                    path: display_rel(&rel_dir),
                    error: format!("cannot list directory: {e}"),
                }),
            }
        }
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let path = child.path();
            if exclude.contains(&path) {
                continue;
            }
            progress.entries_scanned.fetch_add(1, Ordering::Relaxed);
            let md = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    w.errors.push(EntryError {
                        path: rel_path(source, &path),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            let name = os_bytes(&child.file_name());
            add_entry(
                store,
                &mut w,
                &mut seen_inodes,
                node,
                prev_dir,
                prev,
                &path,
                name,
                &md,
                &rel_dir,
                &mut stack,
            );
        }
    }
    Ok(w)
}

#[allow(clippy::too_many_arguments)]
fn add_entry(
    store: &Store,
    w: &mut Walk,
    seen_inodes: &mut HashMap<(u64, u64), usize>,
    parent: usize,
    prev_dir: Option<u32>,
    prev: Option<&Snapshot>,
    path: &Path,
    name: Vec<u8>,
    md: &fs::Metadata,
    rel_dir: &str,
    stack: &mut Vec<(PathBuf, usize, Option<u32>)>,
) {
    let kind = meta::kind_of(&md.file_type());
    let rel = join_rel(rel_dir, &name);
    let prev_entry = match (prev, prev_dir) {
        (Some(p), Some(d)) => p.child(d, &name).map(|i| (i, p)),
        _ => None,
    };
    let mut entry = Entry {
        name,
        kind,
        meta: meta::capture(path, md),
        content: None,
        target: None,
        hardlink: 0,
        children: 0..0,
        parent: 0,
    };
    match kind {
        EntryKind::Symlink => match fs::read_link(path) {
            Ok(t) => entry.target = Some(os_bytes(t.as_os_str())),
            Err(e) => {
                w.errors.push(EntryError {
                    path: rel,
                    error: format!("cannot read symbolic link: {e}"),
                });
                return;
            }
        },
        EntryKind::File if entry.meta.nlink > 1 => {
            let key = (entry.meta.dev, entry.meta.ino);
            if let Some(&first) = seen_inodes.get(&key) {
                let group = match w.tree.entry_mut(first) {
                    Some(f) if f.hardlink != 0 => f.hardlink,
                    Some(f) => {
                        f.hardlink = first as u32;
                        f.hardlink
                    }
                    None => 0,
                };
                entry.hardlink = group;
                let node = w.tree.add(parent, entry);
                w.links.push((node, first, rel));
                return;
            }
        }
        _ => {}
    }
    let is_file = kind == EntryKind::File;
    let dev_ino = (entry.meta.dev, entry.meta.ino);
    let nlink = entry.meta.nlink;
    let size = entry.meta.size;
    let prev_same_kind = prev_entry.filter(|(i, p)| p.entry(*i).is_some_and(|e| e.kind == kind));
    let reuse = if is_file {
        prev_same_kind.and_then(|(i, p)| {
            let e = p.entry(i)?;
            let c = e.content?;
            let present = match c.storage {
                Storage::Whole => store.has_object(&c.version.as_object()),
                Storage::Chain => store.has_version(&c.version),
            };
            let racy = e.meta.mtime_ns.max(e.meta.ctime_ns) >= p.time_ns.saturating_sub(RACY_WINDOW_NS);
            (present && !racy && !meta::changed(&e.meta, &entry.meta)).then_some(c)
        })
    } else {
        None
    };
    if let Some(c) = reuse {
        entry.content = Some(c);
        w.unchanged += 1;
    }
    let node = w.tree.add(parent, entry);
    if is_file && nlink > 1 {
        seen_inodes.insert(dev_ino, node);
    }
    match kind {
        EntryKind::Dir => stack.push((path.to_path_buf(), node, prev_same_kind.map(|(i, _)| i))),
        EntryKind::File if reuse.is_none() => w.jobs.push(Job {
            node,
            path: path.to_path_buf(),
            rel,
            prev: prev_same_kind.and_then(|(i, p)| {
                let e = p.entry(i)?;
                Some(PrevEntry {
                    content: e.content?,
                    meta: e.meta.clone(),
                })
            }),
            size,
        }),
        _ => {}
    }
}

fn join_rel(dir: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if dir.is_empty() {
        name.into_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn rel_path(source: &Path, path: &Path) -> String {
    path.strip_prefix(source)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_string_lossy().into_owned())
}

fn display_rel(rel: &str) -> String {
    if rel.is_empty() { ".".into() } else { rel.into() }
}

/// The raw bytes of an OS string (lossy on platforms without byte strings).
pub fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        s.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().as_bytes().to_vec()
    }
}

fn path_bytes(p: &Path) -> Vec<u8> {
    os_bytes(p.as_os_str())
}

fn hostname() -> String {
    #[cfg(unix)]
    {
        rustix::system::uname().nodename().to_string_lossy().into_owned()
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_default()
    }
}
