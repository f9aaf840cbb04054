//! The tree walk of a write: metadata only, so that unchanged files are known (and reused) before
//! anything is read, and the amount to read is known for progress.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::error::{IoContext, Result};
use crate::format::snapshot::{Entry, EntryKind, Metadata, PrevEntry, Snapshot, Storage};
use crate::format::tree_builder::TreeBuilder;
use crate::os::meta::{self, os_bytes};
use crate::select::PathVerdict;
use crate::store::Store;
use crate::write::progress::WriteProgress;
use crate::write::{EntryError, ExcludeCount, SourceFilter};

/// A previous entry whose mtime or ctime is this close to (or after) the start of its snapshot
/// may have been read in the same timestamp tick as a later change, which would leave its
/// metadata unchanged: it is read again ("racily clean", as git calls it).
const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// A regular file that must be read.
pub(crate) struct Job {
    /// Its node in the tree.
    pub node: usize,
    pub path: PathBuf,
    /// Its path relative to the snapshot root.
    pub rel: String,
    /// Its entry in the previous snapshot.
    pub prev: Option<PrevEntry>,
    pub size: u64,
}

/// What the walk found.
pub(crate) struct Walk {
    pub tree: TreeBuilder,
    pub jobs: Vec<Job>,
    /// (link node, first node, link path) for hard links to a file already seen.
    pub links: Vec<(usize, usize, String)>,
    pub errors: Vec<EntryError>,
    /// Files reused from the previous snapshot unread.
    pub unchanged: u64,
    /// Entries each rule of the filter left out.
    pub excluded: Vec<ExcludeCount>,
}

/// The signature a `CACHEDIR.TAG` must start with (the Cache Directory Tagging Specification).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// The rules of a filter, in the order their counts are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Pattern(usize),
    Caches,
    IfPresent(usize),
    OtherFilesystem,
    LargerThan,
}

/// A directory still to list: its path, its node, its entry in the previous snapshot.
type PendingDir = (PathBuf, usize, Option<u32>);

/// One entry found by the walk, before it is added to the tree.
struct Found<'a> {
    /// The directory node it goes into.
    parent: usize,
    /// The directory's entry in the previous snapshot.
    prev_dir: Option<u32>,
    path: &'a Path,
    name: Vec<u8>,
    md: &'a fs::Metadata,
    /// The directory's path relative to the snapshot root.
    rel_dir: &'a str,
}

struct Walker<'a> {
    store: &'a Store,
    source: &'a Path,
    prev: Option<&'a Snapshot>,
    /// Files changed at or after this time (less a window) may have changed again unseen
    /// after the previous snapshot read them.
    racy_since_ns: i64,
    exclude: &'a [PathBuf],
    filter: &'a SourceFilter,
    /// The source's device, with `--one-file-system`.
    source_dev: Option<u64>,
    /// The filter's rules, in report order, and the entries each left out.
    rules: Vec<Rule>,
    counts: Vec<u64>,
    progress: &'a WriteProgress,
    walk: Walk,
    seen_inodes: HashMap<(u64, u64), usize>,
    stack: Vec<PendingDir>,
}

/// When snapshot `p` finished reading its files: its manifest's modification time (a snapshot
/// written with `--time` carries another time), else its recorded time.
fn written_ns(store: &Store, p: &Snapshot) -> i64 {
    fs::metadata(store.snapshot_path(&p.id))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(p.time_ns)
}

/// Walks `source` (a directory or a single file), comparing with the previous snapshot `prev`
/// of the same source and leaving out the paths in `exclude` and what `filter` excludes.
pub(crate) fn walk(
    store: &Store,
    source: &Path,
    prev: Option<&Snapshot>,
    exclude: &[PathBuf],
    filter: &SourceFilter,
    progress: &WriteProgress,
) -> Result<Walk> {
    let top = fs::symlink_metadata(source).at(source)?;
    let rules = rules(filter);
    let mut w = Walker {
        store,
        source,
        prev,
        racy_since_ns: prev.map_or(0, |p| written_ns(store, p)),
        exclude,
        filter,
        source_dev: filter.one_file_system.then(|| meta::capture(source, &top).dev),
        rules: rules.iter().map(|(r, _)| *r).collect(),
        counts: vec![0; rules.len()],
        progress,
        walk: Walk {
            tree: TreeBuilder::new(Metadata::default()),
            jobs: Vec::new(),
            links: Vec::new(),
            errors: Vec::new(),
            unchanged: 0,
            excluded: Vec::new(),
        },
        seen_inodes: HashMap::new(),
        stack: Vec::new(),
    };
    let prev_root = prev.map(|_| Snapshot::ROOT);
    if top.is_dir() {
        if let Some(root) = w.walk.tree.entry_mut(0) {
            root.meta = meta::capture(source, &top);
        }
        w.stack.push((source.to_path_buf(), 0, prev_root));
    } else {
        let parent = source.parent().unwrap_or(Path::new("/"));
        if let (Some(root), Ok(md)) = (w.walk.tree.entry_mut(0), fs::symlink_metadata(parent)) {
            root.meta = meta::capture(parent, &md);
        }
        let name = source.file_name().map(os_bytes).unwrap_or_default();
        w.add(Found {
            parent: 0,
            prev_dir: prev_root,
            path: source,
            name,
            md: &top,
            rel_dir: "",
        });
    }
    while let Some(dir) = w.stack.pop() {
        w.list(dir);
    }
    w.walk.excluded = rules
        .iter()
        .zip(&w.counts)
        .map(|((_, rule), n)| ExcludeCount {
            rule: rule.clone(),
            entries: *n,
        })
        .collect();
    Ok(w.walk)
}

/// Every rule of `filter` with how it is named in reports, in report order.
fn rules(filter: &SourceFilter) -> Vec<(Rule, String)> {
    let mut out: Vec<(Rule, String)> = Vec::new();
    for i in 0..filter.patterns.exclude_count() {
        let line = filter.patterns.rule(i);
        if !line.trim().is_empty() && !line.starts_with('#') {
            out.push((Rule::Pattern(i), line.to_string()));
        }
    }
    if filter.exclude_caches {
        out.push((Rule::Caches, "--exclude-caches".into()));
    }
    for (i, name) in filter.exclude_if_present.iter().enumerate() {
        out.push((Rule::IfPresent(i), format!("--exclude-if-present {name}")));
    }
    if filter.one_file_system {
        out.push((Rule::OtherFilesystem, "--one-file-system".into()));
    }
    if let Some(n) = filter.exclude_larger_than {
        out.push((Rule::LargerThan, format!("--exclude-larger-than {n}")));
    }
    out
}

impl Walker<'_> {
    /// Lists one directory and adds its entries, sorted by name.
    fn list(&mut self, (dir, node, prev_dir): PendingDir) {
        let rel_dir = rel_path(self.source, &dir);
        let cannot_list = |e: std::io::Error| EntryError {
            path: display_rel(&rel_dir),
            error: format!("cannot list directory: {e}"),
        };
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) => {
                self.walk.errors.push(cannot_list(e));
                return;
            }
        };
        let mut children: Vec<fs::DirEntry> = Vec::new();
        for entry in read {
            match entry {
                Ok(e) => children.push(e),
                Err(e) => self.walk.errors.push(cannot_list(e)),
            }
        }
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let path = child.path();
            if self.exclude.contains(&path) {
                continue;
            }
            self.progress.entries_scanned.fetch_add(1, Ordering::Relaxed);
            let md = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.walk.errors.push(EntryError {
                        path: rel_path(self.source, &path),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            let name = os_bytes(&child.file_name());
            if let Some(rule) = self.excluded_by(&join_rel(&rel_dir, &name), &path, &md) {
                self.count(rule);
                continue;
            }
            self.add(Found {
                parent: node,
                prev_dir,
                path: &path,
                name,
                md: &md,
                rel_dir: &rel_dir,
            });
        }
    }

    /// The rule of the filter that leaves out the entry at `path` (`rel` from the source),
    /// if one does. Patterns come first, then the tags of a directory, then a file's size.
    fn excluded_by(&self, rel: &str, path: &Path, md: &fs::Metadata) -> Option<Rule> {
        let f = self.filter;
        let is_dir = md.is_dir();
        if let PathVerdict::Excluded(i) = f.patterns.verdict(Path::new(rel), is_dir, true) {
            return Some(Rule::Pattern(i));
        }
        if is_dir {
            if f.exclude_caches && is_cache_dir(path) {
                return Some(Rule::Caches);
            }
            if let Some(i) = (f.exclude_if_present.iter()).position(|n| fs::symlink_metadata(path.join(n)).is_ok()) {
                return Some(Rule::IfPresent(i));
            }
        }
        match f.exclude_larger_than {
            Some(limit) if md.is_file() && md.len() > limit => Some(Rule::LargerThan),
            _ => None,
        }
    }

    /// Counts one entry left out by `rule`.
    fn count(&mut self, rule: Rule) {
        let at = self.rules.iter().position(|r| *r == rule);
        if let Some(n) = at.and_then(|i| self.counts.get_mut(i)) {
            *n += 1;
        }
    }

    /// Adds one entry to the tree: a hard link to a file already seen, an unchanged file reused
    /// from the previous snapshot, a file to read (a job), or a directory to list.
    fn add(&mut self, f: Found<'_>) {
        let kind = meta::kind_of(&f.md.file_type());
        let rel = join_rel(f.rel_dir, &f.name);
        let prev = self.prev;
        let prev_entry = match (prev, f.prev_dir) {
            (Some(p), Some(d)) => p.child(d, &f.name).map(|i| (i, p)),
            _ => None,
        };
        let mut entry = Entry::new(f.name, kind, meta::capture(f.path, f.md));
        match kind {
            EntryKind::Symlink => match fs::read_link(f.path) {
                Ok(t) => entry.target = Some(os_bytes(t.as_os_str())),
                Err(e) => {
                    self.walk.errors.push(EntryError {
                        path: rel,
                        error: format!("cannot read symbolic link: {e}"),
                    });
                    return;
                }
            },
            EntryKind::File if entry.meta.nlink > 1 => {
                if let Some(&first) = self.seen_inodes.get(&(entry.meta.dev, entry.meta.ino)) {
                    self.add_link(f.parent, entry, first, rel);
                    return;
                }
            }
            _ => {}
        }
        let is_file = kind == EntryKind::File;
        let (dev_ino, nlink, size) = ((entry.meta.dev, entry.meta.ino), entry.meta.nlink, entry.meta.size);
        let prev_same_kind = prev_entry.filter(|(i, p)| p.entry(*i).is_some_and(|e| e.kind == kind));
        let reuse = prev_same_kind
            .filter(|_| is_file)
            .and_then(|(i, p)| self.reusable(p, i, &entry.meta));
        if let Some(c) = reuse {
            entry.content = Some(c);
            self.walk.unchanged += 1;
        }
        let node = self.walk.tree.add(f.parent, entry);
        if is_file && nlink > 1 {
            self.seen_inodes.insert(dev_ino, node);
        }
        match kind {
            // Another filesystem's directory is recorded, empty (`--one-file-system`).
            EntryKind::Dir if self.source_dev.is_some_and(|d| d != dev_ino.0) => self.count(Rule::OtherFilesystem),
            EntryKind::Dir => self
                .stack
                .push((f.path.to_path_buf(), node, prev_same_kind.map(|(i, _)| i))),
            EntryKind::File if reuse.is_none() => self.walk.jobs.push(Job {
                node,
                path: f.path.to_path_buf(),
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

    /// Adds a hard link to the file first seen as node `first`.
    fn add_link(&mut self, parent: usize, mut entry: Entry, first: usize, rel: String) {
        let group = match self.walk.tree.entry_mut(first) {
            Some(f) if f.hardlink != 0 => f.hardlink,
            Some(f) => {
                f.hardlink = first as u32;
                f.hardlink
            }
            None => 0,
        };
        entry.hardlink = group;
        let node = self.walk.tree.add(parent, entry);
        self.walk.links.push((node, first, rel));
    }

    /// The content of entry `i` of the previous snapshot `p`, if a file whose metadata is now
    /// `now` can reuse it unread: still in the store, not racily clean, metadata unchanged.
    fn reusable(&self, p: &Snapshot, i: u32, now: &Metadata) -> Option<crate::format::snapshot::FileContent> {
        let e = p.entry(i)?;
        let c = e.content?;
        let present = match c.storage {
            Storage::Whole => self.store.has_object(&c.version.as_object()),
            Storage::Chain => self.store.has_version(&c.version),
        }
        // A store that cannot answer gets the file read again: never reuse what may be gone.
        .unwrap_or(false);
        let racy = e.meta.mtime_ns.max(e.meta.ctime_ns) >= self.racy_since_ns.saturating_sub(RACY_WINDOW_NS);
        (present && !racy && !meta::changed(&e.meta, now)).then_some(c)
    }
}

/// True when directory `dir` holds a `CACHEDIR.TAG` file starting with the specification's
/// signature (a tag with another start does not count, as the specification says).
fn is_cache_dir(dir: &Path) -> bool {
    use std::io::Read;
    let tag = dir.join("CACHEDIR.TAG");
    if !fs::symlink_metadata(&tag).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    fs::File::open(&tag).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == CACHEDIR_SIGNATURE
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
