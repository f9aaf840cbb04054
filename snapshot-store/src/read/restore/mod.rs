//! Restoring a snapshot, a subtree or one file to a target path: content (holes kept), mode,
//! mtime, symbolic links, hard links, `user.*` extended attributes, and owners when run as root.
//! Existing files are never overwritten.
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
use crate::os::file::sync_filesystem;
use crate::os::meta::{self, path_from_bytes};
use crate::store::Store;

/// Files at least this large are restored one at a time (each decoded by several threads).
const LARGE_FILE: u64 = 8 << 20;

/// Options of a restore.
#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    /// Set owners and groups (needs root; on by default when running as root).
    pub owners: bool,
    /// Check each file's content against its blake3 while restoring.
    pub verify: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            owners: meta::is_root(),
            verify: true,
        }
    }
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
    /// Entries that could not be restored, with the reason.
    pub errors: Vec<(PathBuf, String)>,
}

/// Restores entry `path` of `snap` to `target`. A directory goes to `target` itself (which must
/// be missing or an empty directory); anything else goes to `target`, or into it when `target`
/// is an existing directory.
pub fn restore(
    store: &Store,
    snap: &Snapshot,
    path: &[u8],
    target: &Path,
    opts: RestoreOptions,
) -> Result<RestoreSummary> {
    let index = snap.lookup(path).ok_or_else(|| Error::PathNotFound {
        snapshot: snap.id.to_string(),
        path: String::from_utf8_lossy(path).into_owned(),
    })?;
    let entry = snap
        .entry(index)
        .ok_or_else(|| Error::corrupt(format!("snapshot {}", snap.id), "entry out of range"))?;
    let mut r = Restorer {
        store,
        snap,
        opts,
        summary: RestoreSummary::default(),
        files: Vec::new(),
        firsts: HashMap::new(),
        links: Vec::new(),
        dirs: Vec::new(),
    };
    if entry.kind == EntryKind::Dir {
        prepare_target_dir(target)?;
        r.dirs.push((target.to_path_buf(), index));
        r.summary.dirs += 1;
        r.lay_out_children(index, target);
    } else {
        let dest = if target.is_dir() {
            target.join(path_from_bytes(&entry.name))
        } else {
            target.to_path_buf()
        };
        if fs::symlink_metadata(&dest).is_ok() {
            return Err(Error::TargetExists { path: dest });
        }
        r.lay_out(index, &dest);
    }
    r.write_files();
    r.make_links();
    let written: Vec<PathBuf> = r.files.iter().map(|(_, p)| p.clone()).collect();
    sync_filesystem(target, &written)?;
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

/// Creates `target` for a tree, or checks that it is an empty directory.
fn prepare_target_dir(target: &Path) -> Result<()> {
    match fs::read_dir(target) {
        Ok(mut it) => match it.next() {
            Some(_) => Err(Error::TargetNotEmpty {
                path: target.to_path_buf(),
            }),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(target).at(target),
        Err(e) => Err(Error::io(target, e)),
    }
}

struct Restorer<'a> {
    store: &'a Store,
    snap: &'a Snapshot,
    opts: RestoreOptions,
    summary: RestoreSummary,
    /// Regular files to write: entry index and destination.
    files: Vec<(u32, PathBuf)>,
    /// The destination of the first entry of each hard-link group.
    firsts: HashMap<u32, PathBuf>,
    /// Hard links to make once the files are written: destination, group.
    links: Vec<(PathBuf, u32)>,
    /// Directories made, in creation order (their metadata is applied last).
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

    fn lay_out_one(&mut self, index: u32, e: &Entry, dest: &Path) -> Result<()> {
        match e.kind {
            EntryKind::Dir => {
                fs::create_dir(dest).at(dest)?;
                meta::set_mode(dest, 0o700)?;
                self.summary.dirs += 1;
                self.dirs.push((dest.to_path_buf(), index));
                self.lay_out_children(index, dest);
                Ok(())
            }
            EntryKind::File => {
                if e.hardlink != 0 {
                    if self.firsts.contains_key(&e.hardlink) {
                        self.links.push((dest.to_path_buf(), e.hardlink));
                        return Ok(());
                    }
                    self.firsts.insert(e.hardlink, dest.to_path_buf());
                }
                self.files.push((index, dest.to_path_buf()));
                Ok(())
            }
            EntryKind::Symlink => {
                let target = e.target.as_deref().unwrap_or_default();
                meta::symlink(target, dest)?;
                self.summary.others += 1;
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

    /// Writes every regular file with its metadata: small ones in parallel, then large ones.
    fn write_files(&mut self) {
        let this = &*self;
        let one = |(index, dest): &(u32, PathBuf)| -> (u64, Option<(PathBuf, String)>) {
            let Some(e) = this.snap.entry(*index) else {
                return (0, None);
            };
            match this.write_file(e, dest).and_then(|()| this.apply_meta(dest, e)) {
                Ok(()) => (e.meta.size, None),
                Err(err) => (0, Some((dest.clone(), err.to_string()))),
            }
        };
        let size = |(index, _): &&(u32, PathBuf)| this.snap.entry(*index).map_or(0, |e| e.meta.size);
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

    /// Makes the hard links to the files written first.
    fn make_links(&mut self) {
        for (dest, group) in std::mem::take(&mut self.links) {
            let made = match self.firsts.get(&group) {
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
        let err = restore(&store, &snap, b"", &target, opts).unwrap_err();
        assert!(
            matches!(&err, Error::TargetNotEmpty { path } if *path == target),
            "{err:?}"
        );
        fs::write(target.join("a"), b"mine").unwrap();
        let err = restore(&store, &snap, b"a", &target, opts).unwrap_err();
        assert!(
            matches!(&err, Error::TargetExists { path } if *path == target.join("a")),
            "{err:?}"
        );
        assert_eq!(fs::read(target.join("a")).unwrap(), b"mine");
        let err = restore(&store, &snap, b"nope", &target, opts).unwrap_err();
        assert!(matches!(err, Error::PathNotFound { .. }), "{err:?}");
    }
}
