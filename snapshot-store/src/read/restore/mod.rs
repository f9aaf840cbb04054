//! Restoring a snapshot, a subtree or one file to a target path: content (holes kept), mode,
//! mtime, symbolic links, hard links, `user.*` extended attributes, and owners when run as root.
//! By default nothing existing is overwritten; [`Overwrite`] allows replacing what differs, or
//! everything. A [`PathFilter`] picks what to restore; a dry run only plans.
//!
//! The tree is laid out first (directories, links, special files), then the regular files are
//! written — small ones several at a time (more for a remote store, whose reads wait on the
//! network), large ones one by one, each with every core — then
//! hard links are made and everything is flushed with one call, and the directories get their
//! metadata last, deepest first.

mod content;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::{Entry, EntryKind, Snapshot};
use crate::id::VersionId;
use crate::os::file::sync_filesystem;
use crate::os::meta::{self, path_from_bytes};
use crate::select::{PathFilter, PathVerdict};
use crate::store::Store;

/// Files at least this large are restored one at a time (each decoded by several threads).
const LARGE_FILE: u64 = 8 << 20;

/// What a restore does where the target already holds something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Nothing: a tree restores only into a missing or empty directory, a file only to a path
    /// that does not exist.
    #[default]
    Never,
    /// Replace what differs from the snapshot: another kind, size, content (a file's blake3 is
    /// compared with the version id) or link target. What is equal stays, its metadata set.
    IfChanged,
    /// Replace everything the snapshot holds.
    Always,
}

/// Options of a restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Set owners and groups (needs root; on by default when running as root).
    pub owners: bool,
    /// Check each file's content against its blake3 while restoring.
    pub verify: bool,
    /// What to do with what already exists.
    pub overwrite: Overwrite,
    /// What to restore (paths relative to the snapshot root).
    pub filter: PathFilter,
    /// Only plan: change nothing, list what would be done in [`RestoreSummary::planned`].
    pub dry_run: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            owners: meta::is_root(),
            verify: true,
            overwrite: Overwrite::Never,
            filter: PathFilter::default(),
            dry_run: false,
        }
    }
}

/// What a restore does with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreAction {
    /// Nothing is there: it is created.
    Create,
    /// Something else is there: it is replaced.
    Replace,
    /// An equal entry (or, for a directory, a directory) is there: it stays, its metadata set.
    Keep,
}

impl RestoreAction {
    /// The name used in output: `create`, `replace`, `keep`.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreAction::Create => "create",
            RestoreAction::Replace => "replace",
            RestoreAction::Keep => "keep",
        }
    }
}

/// One entry a restore writes (or, in a dry run, would write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEntry {
    /// Its path relative to the snapshot root.
    pub path: Vec<u8>,
    /// Where it goes.
    pub dest: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Its size (regular files; 0 for others).
    pub size: u64,
    /// What is done.
    pub action: RestoreAction,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreSummary {
    /// Regular files written (hard links excluded).
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks, hard links, pipes, devices created.
    pub others: u64,
    /// Content bytes restored.
    pub bytes: u64,
    /// Entries that replaced something at the target.
    pub replaced: u64,
    /// Entries left in place because they were equal (metadata set).
    pub kept: u64,
    /// Entries the filter left out.
    pub filtered: u64,
    /// In a dry run, every entry that would be written, in tree order.
    pub planned: Vec<PlannedEntry>,
    /// Entries that could not be restored, with the reason.
    pub errors: Vec<(PathBuf, String)>,
}

/// Restores entry `path` of `snap` to `target`. A directory goes to `target` itself (missing or,
/// unless overwriting, an empty directory); anything else goes to `target`, or into it when
/// `target` is an existing directory.
pub fn restore(
    store: &Store,
    snap: &Snapshot,
    path: &[u8],
    target: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
    let index = snap.lookup(path).ok_or_else(|| Error::PathNotFound {
        snapshot: snap.id.to_string(),
        path: String::from_utf8_lossy(path).into_owned(),
    })?;
    let entry = snap
        .entry(index)
        .ok_or_else(|| Error::corrupt(format!("snapshot {}", snap.id), "entry out of range"))?;
    let (selected, filtered) = select(snap, index, &opts.filter);
    let mut r = Restorer {
        store,
        snap,
        opts,
        selected,
        summary: RestoreSummary {
            filtered,
            ..RestoreSummary::default()
        },
        files: Vec::new(),
        keep_meta: Vec::new(),
        firsts: HashMap::new(),
        links: Vec::new(),
        dirs: Vec::new(),
    };
    if entry.kind == EntryKind::Dir {
        let action = prepare_target_dir(target, opts.overwrite)?;
        r.plan(index, target, action);
        r.summary.dirs += u64::from(action == RestoreAction::Create);
        r.dirs.push((target.to_path_buf(), index));
        if !opts.dry_run && action == RestoreAction::Create {
            fs::create_dir_all(target).at(target)?;
        }
        r.lay_out_children(index, target);
    } else if r
        .selected
        .as_ref()
        .is_some_and(|sel| sel.get(index as usize) != Some(&true))
    {
        // The one file asked for is filtered out: nothing to do.
    } else {
        let dest = if target.is_dir() {
            target.join(path_from_bytes(&entry.name))
        } else {
            target.to_path_buf()
        };
        if opts.overwrite == Overwrite::Never && fs::symlink_metadata(&dest).is_ok() {
            return Err(Error::TargetExists { path: dest });
        }
        r.lay_out(index, &dest);
    }
    if opts.dry_run {
        r.summary.errors.sort();
        return Ok(r.summary);
    }
    r.write_files();
    r.make_links();
    let written: Vec<PathBuf> = r.files.iter().map(|f| f.dest.clone()).collect();
    sync_filesystem(target, &written)?;
    for (index, dest) in std::mem::take(&mut r.keep_meta) {
        if let Some(e) = snap.entry(index)
            && let Err(err) = r.apply_meta(&dest, e)
        {
            r.summary.errors.push((dest, err.to_string()));
        }
    }
    // Directory metadata last (deepest first), so writing into them did not change their mtime.
    while let Some((dir, index)) = r.dirs.pop() {
        if let Some(e) = snap.entry(index)
            && let Err(err) = r.apply_meta(&dir, e)
        {
            r.summary.errors.push((dir, err.to_string()));
        }
    }
    r.summary.errors.sort();
    Ok(r.summary)
}

/// Which entries under `at` the filter keeps (by entry index; `None` when it keeps all), and
/// how many it leaves out. Decided top-down as git does: nothing under an excluded directory is
/// kept; with include patterns, a directory is kept when it, or a directory above it, matched
/// one, or when it holds something kept. A directory restored as the target is always kept.
fn select(snap: &Snapshot, at: u32, filter: &PathFilter) -> (Option<Vec<bool>>, u64) {
    if filter.is_empty() {
        return (None, 0);
    }
    let n = snap.entries.len();
    let mut keep = vec![false; n];
    let subtree = 1 + snap.walk(at).count() as u64;
    let path = |i: u32| path_from_bytes(&snap.path_of(i));
    // The directories above `at` (the root aside), top-down, decide how it starts.
    let mut above = Vec::new();
    let mut i = snap.entry(at).map_or(Snapshot::ROOT, |e| e.parent);
    while at != Snapshot::ROOT && i != Snapshot::ROOT && above.len() < n {
        above.push(i);
        i = snap.entry(i).map_or(Snapshot::ROOT, |e| e.parent);
    }
    let mut included = !filter.has_includes();
    for &d in above.iter().rev() {
        match filter.verdict(&path(d), true, included) {
            PathVerdict::Excluded(_) => return (Some(keep), subtree),
            PathVerdict::Included => included = true,
            PathVerdict::Undecided => {}
        }
    }
    // Pre-order over the subtree: (entry, its directory was included).
    let mut stack: Vec<(u32, bool)> = if at == Snapshot::ROOT {
        snap.children_indexes(at).rev().map(|c| (c, included)).collect()
    } else {
        vec![(at, included)]
    };
    let mut order: Vec<u32> = Vec::new();
    while let Some((i, parent_included)) = stack.pop() {
        let Some(e) = snap.entry(i) else { continue };
        let is_dir = e.kind == EntryKind::Dir;
        let verdict = filter.verdict(&path(i), is_dir, parent_included);
        if let PathVerdict::Excluded(_) = verdict {
            continue;
        }
        let included = verdict == PathVerdict::Included;
        if let Some(k) = keep.get_mut(i as usize) {
            *k = included;
        }
        if is_dir {
            stack.extend(snap.children_indexes(i).rev().map(|c| (c, included)));
        }
        order.push(i);
    }
    // Children before their directories: a directory holding something kept is kept.
    for &i in order.iter().rev() {
        if i != at
            && keep.get(i as usize) == Some(&true)
            && let Some(parent) = snap.entry(i).map(|e| e.parent)
            && let Some(p) = keep.get_mut(parent as usize)
        {
            *p = true;
        }
    }
    if snap.entry(at).is_some_and(|e| e.kind == EntryKind::Dir)
        && let Some(k) = keep.get_mut(at as usize)
    {
        *k = true;
    }
    let kept = keep.iter().filter(|k| **k).count() as u64;
    (Some(keep), subtree.saturating_sub(kept))
}

/// Readies `target` for a tree: creates nothing yet, but checks that it is missing, an empty
/// directory, or (when overwriting) any directory.
fn prepare_target_dir(target: &Path, overwrite: Overwrite) -> Result<RestoreAction> {
    match fs::read_dir(target) {
        Ok(mut it) => match (it.next(), overwrite) {
            (Some(_), Overwrite::Never) => Err(Error::TargetNotEmpty {
                path: target.to_path_buf(),
            }),
            _ => Ok(RestoreAction::Keep),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RestoreAction::Create),
        Err(_) if fs::symlink_metadata(target).is_ok_and(|m| !m.is_dir()) => Err(Error::TargetExists {
            path: target.to_path_buf(),
        }),
        Err(e) => Err(Error::io(target, e)),
    }
}

/// A regular file to write.
struct FileJob {
    index: u32,
    dest: PathBuf,
    /// Something is at `dest`: write beside it and rename over it.
    replace: bool,
}

struct Restorer<'a> {
    store: &'a Store,
    snap: &'a Snapshot,
    opts: &'a RestoreOptions,
    /// The entries to restore, by index (`None`: all).
    selected: Option<Vec<bool>>,
    summary: RestoreSummary,
    /// Regular files to write.
    files: Vec<FileJob>,
    /// Entries left in place whose metadata is set at the end: entry index and path.
    keep_meta: Vec<(u32, PathBuf)>,
    /// The destination of the first entry of each hard-link group.
    firsts: HashMap<u32, PathBuf>,
    /// Hard links to make once the files are written: destination, group.
    links: Vec<(PathBuf, u32)>,
    /// Directories made or kept, in order (their metadata is applied last).
    dirs: Vec<(PathBuf, u32)>,
}

impl Restorer<'_> {
    fn lay_out_children(&mut self, dir: u32, at: &Path) {
        let Some(d) = self.snap.entry(dir) else {
            return;
        };
        for child in d.children.clone() {
            let Some(e) = self.snap.entry(child) else {
                continue;
            };
            if let Some(sel) = &self.selected
                && sel.get(child as usize) != Some(&true)
            {
                continue;
            }
            let dest = at.join(path_from_bytes(&e.name));
            self.lay_out(child, &dest);
        }
    }

    /// Makes entry `index` at `dest`, or notes it for later (regular files, hard links).
    fn lay_out(&mut self, index: u32, dest: &Path) {
        let Some(e) = self.snap.entry(index) else {
            return;
        };
        if let Err(err) = self.lay_out_one(index, e, dest) {
            self.summary.errors.push((dest.to_path_buf(), err.to_string()));
        }
    }

    /// Records what is done with entry `index` at `dest` (in a dry run, lists it).
    fn plan(&mut self, index: u32, dest: &Path, action: RestoreAction) {
        match action {
            RestoreAction::Replace => self.summary.replaced += 1,
            RestoreAction::Keep => self.summary.kept += 1,
            RestoreAction::Create => {}
        }
        if self.opts.dry_run
            && let Some(e) = self.snap.entry(index)
        {
            self.summary.planned.push(PlannedEntry {
                path: self.snap.path_of(index),
                dest: dest.to_path_buf(),
                kind: e.kind,
                size: if e.kind == EntryKind::File { e.meta.size } else { 0 },
                action,
            });
        }
    }

    /// What to do with entry `e` at `dest`, given what is there.
    fn action(&self, e: &Entry, dest: &Path) -> Result<RestoreAction> {
        let Ok(there) = fs::symlink_metadata(dest) else {
            return Ok(RestoreAction::Create);
        };
        if self.opts.overwrite == Overwrite::Never {
            return Err(Error::TargetExists {
                path: dest.to_path_buf(),
            });
        }
        let ft = there.file_type();
        if ft.is_dir() {
            if e.kind == EntryKind::Dir {
                return Ok(RestoreAction::Keep);
            }
            // Only an empty directory is removed for something else: a tree of the user's is
            // never deleted.
            let empty = fs::read_dir(dest).at(dest)?.next().is_none();
            return if empty {
                Ok(RestoreAction::Replace)
            } else {
                Err(Error::DirectoryInTheWay {
                    path: dest.to_path_buf(),
                })
            };
        }
        let equal = self.opts.overwrite == Overwrite::IfChanged
            && match e.kind {
                EntryKind::File => ft.is_file() && there.len() == e.meta.size && same_content(e, dest)?,
                EntryKind::Symlink => {
                    ft.is_symlink() && fs::read_link(dest).ok().map(|t| meta::os_bytes(t.as_os_str())) == e.target
                }
                _ => false,
            };
        Ok(if equal {
            RestoreAction::Keep
        } else {
            RestoreAction::Replace
        })
    }

    fn lay_out_one(&mut self, index: u32, e: &Entry, dest: &Path) -> Result<()> {
        // A hard link's action is decided when the links are made.
        if e.kind == EntryKind::File && e.hardlink != 0 && self.firsts.contains_key(&e.hardlink) {
            let action = self.link_action(dest)?;
            self.plan(index, dest, action);
            self.links.push((dest.to_path_buf(), e.hardlink));
            return Ok(());
        }
        let action = self.action(e, dest)?;
        self.plan(index, dest, action);
        if e.kind == EntryKind::File && e.hardlink != 0 {
            self.firsts.insert(e.hardlink, dest.to_path_buf());
        }
        if self.opts.dry_run {
            if e.kind == EntryKind::Dir {
                self.lay_out_children(index, dest);
            }
            return Ok(());
        }
        // A file is written beside what it replaces and renamed over it, which needs no
        // removal unless a directory is in the way.
        if action == RestoreAction::Replace && (e.kind != EntryKind::File || dest.is_dir()) {
            remove_in_the_way(dest)?;
        }
        match e.kind {
            EntryKind::Dir => {
                if action == RestoreAction::Keep {
                    // Writable while restoring into it; its own mode is set last.
                    meta::set_mode(dest, 0o700)?;
                } else {
                    fs::create_dir(dest).at(dest)?;
                    meta::set_mode(dest, 0o700)?;
                    self.summary.dirs += 1;
                }
                self.dirs.push((dest.to_path_buf(), index));
                self.lay_out_children(index, dest);
                Ok(())
            }
            EntryKind::File => {
                match action {
                    RestoreAction::Keep => self.keep_meta.push((index, dest.to_path_buf())),
                    _ => self.files.push(FileJob {
                        index,
                        dest: dest.to_path_buf(),
                        replace: action == RestoreAction::Replace,
                    }),
                }
                Ok(())
            }
            EntryKind::Symlink => {
                if action != RestoreAction::Keep {
                    let target = e.target.as_deref().unwrap_or_default();
                    meta::symlink(target, dest)?;
                    self.summary.others += 1;
                }
                if self.opts.owners {
                    meta::set_owner(dest, e.meta.uid, e.meta.gid)?;
                }
                meta::set_mtime(dest, e.meta.mtime_ns)
            }
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                meta::make_node(e.kind, e.meta.rdev, dest)?;
                self.summary.others += 1;
                self.apply_meta(dest, e)
            }
            EntryKind::Socket => Err(Error::NotRestorable {
                what: "a socket (sockets are recorded but not restored)".into(),
            }),
        }
    }

    /// What making a hard link at `dest` does, given what is there.
    fn link_action(&self, dest: &Path) -> Result<RestoreAction> {
        match fs::symlink_metadata(dest) {
            Err(_) => Ok(RestoreAction::Create),
            Ok(_) if self.opts.overwrite == Overwrite::Never => Err(Error::TargetExists {
                path: dest.to_path_buf(),
            }),
            Ok(m) if m.is_dir() => Err(Error::DirectoryInTheWay {
                path: dest.to_path_buf(),
            }),
            Ok(_) => Ok(RestoreAction::Replace),
        }
    }

    /// Writes every regular file with its metadata: small ones in parallel, then large ones.
    fn write_files(&mut self) {
        let this = &*self;
        let one = |job: &FileJob| -> (u64, Option<(PathBuf, String)>) {
            let Some(e) = this.snap.entry(job.index) else {
                return (0, None);
            };
            match this.write_job(e, job).and_then(|()| this.apply_meta(&job.dest, e)) {
                Ok(()) => (e.meta.size, None),
                Err(err) => (0, Some((job.dest.clone(), err.to_string()))),
            }
        };
        let size = |job: &&FileJob| this.snap.entry(job.index).map_or(0, |e| e.meta.size);
        let (large, small): (Vec<_>, Vec<_>) = this.files.iter().partition(|f| size(f) >= LARGE_FILE);
        // From a remote store each small file waits a round trip for its one GET: run as many
        // at once as the store allows small reads in flight.
        let pool = (this.store.is_remote())
            .then(|| {
                let threads = this
                    .store
                    .options()
                    .remote
                    .small_reads()
                    .max(rayon::current_num_threads());
                rayon::ThreadPoolBuilder::new().num_threads(threads).build().ok()
            })
            .flatten();
        let run = || small.par_iter().map(|f| one(f)).collect::<Vec<_>>();
        let mut results: Vec<(u64, Option<(PathBuf, String)>)> = match &pool {
            Some(p) => p.install(run),
            None => run(),
        };
        results.extend(large.into_iter().map(one));
        for (bytes, err) in results {
            match err {
                None => {
                    self.summary.files += 1;
                    self.summary.bytes += bytes;
                }
                Some(e) => self.summary.errors.push(e),
            }
        }
    }

    /// Writes one file: new, or beside what it replaces and then renamed over it, so that an
    /// interrupted restore never leaves a file half replaced.
    fn write_job(&self, e: &Entry, job: &FileJob) -> Result<()> {
        if !job.replace {
            return self.write_file(e, &job.dest);
        }
        let name = job
            .dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let beside = job
            .dest
            .with_file_name(format!(".{name}.backup-fs-restore-{}", std::process::id()));
        let _ = fs::remove_file(&beside);
        let written = self
            .write_file(e, &beside)
            .and_then(|()| fs::rename(&beside, &job.dest).at(&job.dest));
        if written.is_err() {
            let _ = fs::remove_file(&beside);
        }
        written
    }

    /// Makes the hard links to the files written first.
    fn make_links(&mut self) {
        for (dest, group) in std::mem::take(&mut self.links) {
            let made = match self.firsts.get(&group) {
                Some(first) if fs::symlink_metadata(&dest).is_ok() => {
                    remove_in_the_way(&dest).and_then(|()| fs::hard_link(first, &dest).at(&dest))
                }
                Some(first) => fs::hard_link(first, &dest).at(&dest),
                None => Err(Error::corrupt(
                    format!("snapshot {}", self.snap.id),
                    "a hard link without its file",
                )),
            };
            match made {
                Ok(()) => self.summary.others += 1,
                Err(e) => self.summary.errors.push((dest, e.to_string())),
            }
        }
    }

    fn apply_meta(&self, path: &Path, e: &Entry) -> Result<()> {
        if !e.meta.xattrs.is_empty() {
            meta::set_user_xattrs(path, &e.meta.xattrs)?;
        }
        if self.opts.owners {
            meta::set_owner(path, e.meta.uid, e.meta.gid)?;
        }
        meta::set_mode(path, e.meta.mode)?;
        meta::set_mtime(path, e.meta.mtime_ns)
    }
}

/// True when the regular file at `dest` holds exactly the content of file entry `e` (its
/// blake3 is the version id).
fn same_content(e: &Entry, dest: &Path) -> Result<bool> {
    use std::io::Read;
    let Some(content) = e.content else {
        return Ok(false);
    };
    let mut file = fs::File::open(dest).at(dest)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).at(dest)?;
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        h.update_rayon(chunk);
    }
    Ok(VersionId::from(h.finalize()) == content.version)
}

/// Removes a file, link or empty directory that stands where an entry goes.
fn remove_in_the_way(dest: &Path) -> Result<()> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.is_dir() => fs::remove_dir(dest).at(dest),
        Ok(_) => fs::remove_file(dest).at(dest),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, WriteOptions, WriteProgress, write_snapshot};

    #[test]
    fn a_restore_never_overwrites_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("a"), b"one").unwrap();
        let store = Store::init(&dir.path().join("store"), Policy::default()).unwrap();
        let s = write_snapshot(&store, &src, &WriteOptions::default(), None, &WriteProgress::default()).unwrap();
        let snap = store.snapshot(&s.snapshot).unwrap();
        let opts = RestoreOptions::default();
        let target = dir.path().join("out");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"mine").unwrap();
        let err = restore(&store, &snap, b"", &target, &opts).unwrap_err();
        assert!(
            matches!(&err, Error::TargetNotEmpty { path } if *path == target),
            "{err:?}"
        );
        fs::write(target.join("a"), b"mine").unwrap();
        let err = restore(&store, &snap, b"a", &target, &opts).unwrap_err();
        assert!(
            matches!(&err, Error::TargetExists { path } if *path == target.join("a")),
            "{err:?}"
        );
        assert_eq!(fs::read(target.join("a")).unwrap(), b"mine");
        let err = restore(&store, &snap, b"nope", &target, &opts).unwrap_err();
        assert!(matches!(err, Error::PathNotFound { .. }), "{err:?}");
    }
}
