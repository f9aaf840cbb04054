//! Restoring a snapshot, a subtree or one file to a target path: content (holes kept), mode,
//! mtime, symbolic links, hard links, `user.*` extended attributes, and owners when run as root.
//! Existing files are never overwritten.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::{Entry, EntryKind, Snapshot};
use crate::hash::block::{for_zeros, is_zero};
use crate::os::file::write_all_at;
use crate::os::meta::{self, path_from_bytes};
use crate::read::reader::FileReader;
use crate::read::stream::Window;
use crate::store::Store;

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
        links: HashMap::new(),
        dirs: Vec::new(),
    };
    if entry.kind == EntryKind::Dir {
        match fs::read_dir(target) {
            Ok(mut it) => {
                if it.next().is_some() {
                    return Err(Error::TargetNotEmpty {
                        path: target.to_path_buf(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(target).at(target)?;
            }
            Err(e) => return Err(Error::io(target, e)),
        }
        r.dirs.push((target.to_path_buf(), index));
        r.summary.dirs += 1;
        r.restore_children(index, target);
    } else {
        let dest = if target.is_dir() {
            target.join(path_from_bytes(&entry.name))
        } else {
            target.to_path_buf()
        };
        if fs::symlink_metadata(&dest).is_ok() {
            return Err(Error::TargetExists { path: dest });
        }
        r.restore_entry(index, &dest);
    }
    // Directory metadata last (deepest first), so writing into them did not change their mtime.
    while let Some((dir, index)) = r.dirs.pop() {
        if let Some(e) = snap.entry(index)
            && let Err(err) = r.apply_meta(&dir, e)
        {
            r.summary.errors.push((dir, err.to_string()));
        }
    }
    Ok(r.summary)
}

struct Restorer<'a> {
    store: &'a Store,
    snap: &'a Snapshot,
    opts: RestoreOptions,
    summary: RestoreSummary,
    links: HashMap<u32, PathBuf>,
    dirs: Vec<(PathBuf, u32)>,
}

impl Restorer<'_> {
    fn restore_children(&mut self, dir: u32, at: &Path) {
        let Some(d) = self.snap.entry(dir) else {
            return;
        };
        for child in d.children.clone() {
            let Some(e) = self.snap.entry(child) else {
                continue;
            };
            let dest = at.join(path_from_bytes(&e.name));
            self.restore_entry(child, &dest);
        }
    }

    fn restore_entry(&mut self, index: u32, dest: &Path) {
        let Some(e) = self.snap.entry(index) else {
            return;
        };
        if let Err(err) = self.restore_one(index, e, dest) {
            self.summary.errors.push((dest.to_path_buf(), err.to_string()));
        }
    }

    fn restore_one(&mut self, index: u32, e: &Entry, dest: &Path) -> Result<()> {
        match e.kind {
            EntryKind::Dir => {
                fs::create_dir(dest).at(dest)?;
                meta::set_mode(dest, 0o700)?;
                self.summary.dirs += 1;
                self.dirs.push((dest.to_path_buf(), index));
                self.restore_children(index, dest);
                return Ok(());
            }
            EntryKind::File => {
                if e.hardlink != 0 {
                    if let Some(first) = self.links.get(&e.hardlink) {
                        fs::hard_link(first, dest).at(dest)?;
                        self.summary.others += 1;
                        return Ok(());
                    }
                    self.links.insert(e.hardlink, dest.to_path_buf());
                }
                self.write_file(e, dest)?;
                self.summary.files += 1;
                self.summary.bytes += e.meta.size;
            }
            EntryKind::Symlink => {
                let target = e.target.as_deref().unwrap_or_default();
                meta::symlink(target, dest)?;
                self.summary.others += 1;
                if self.opts.owners {
                    meta::set_owner(dest, e.meta.uid, e.meta.gid)?;
                }
                return meta::set_mtime(dest, e.meta.mtime_ns);
            }
            EntryKind::Fifo | EntryKind::CharDevice | EntryKind::BlockDevice => {
                meta::make_node(e.kind, e.meta.rdev, dest)?;
                self.summary.others += 1;
            }
            EntryKind::Socket => {
                return Err(Error::NotRestorable {
                    what: "a socket (sockets are recorded but not restored)".into(),
                });
            }
        }
        self.apply_meta(dest, e)
    }

    fn write_file(&mut self, e: &Entry, dest: &Path) -> Result<()> {
        let content = e
            .content
            .ok_or_else(|| Error::corrupt(format!("snapshot {}", self.snap.id), "file entry without content"))?;
        let reader = FileReader::open(self.store, &content, e.meta.size)?;
        let file = OpenOptions::new().write(true).create_new(true).open(dest).at(dest)?;
        // Keep holes: the map's holes are never written; zero blocks of a sparse original neither.
        let sparse = e.meta.blocks.saturating_mul(512) < e.meta.size;
        let mut hasher = self.opts.verify.then(blake3::Hasher::new);
        reader.stream(|window| {
            match window {
                Window::Hole { len, .. } => {
                    if let Some(h) = hasher.as_mut() {
                        hash_zeros(h, len);
                    }
                }
                Window::Data { offset, bytes } => {
                    if let Some(h) = hasher.as_mut() {
                        h.update(bytes);
                    }
                    write_sparse(&file, bytes, offset, sparse).at(dest)?;
                }
            }
            Ok(())
        })?;
        file.set_len(reader.size()).at(dest)?;
        if let Some(h) = hasher {
            reader.check_hash(h).map_err(|e| match e {
                Error::ChecksumMismatch { what, expected, got } => Error::ChecksumMismatch {
                    what: format!("{what} (restoring {})", dest.display()),
                    expected,
                    got,
                },
                other => other,
            })?;
        }
        file.sync_all().at(dest)?;
        drop(file);
        Ok(())
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

/// Writes `data` at `offset`, skipping aligned all-zero 4 KiB blocks when `sparse`.
fn write_sparse(file: &File, data: &[u8], offset: u64, sparse: bool) -> std::io::Result<()> {
    if !sparse {
        return write_all_at(file, data, offset);
    }
    const BLOCK: usize = 4096;
    let mut i = 0usize;
    while i < data.len() {
        let abs = offset + i as u64;
        let to_boundary = BLOCK - (abs % BLOCK as u64) as usize;
        let n = to_boundary.min(data.len() - i);
        let chunk = &data[i..i + n];
        if !(n == BLOCK && is_zero(chunk)) {
            write_all_at(file, chunk, abs)?;
        }
        i += n;
    }
    Ok(())
}

fn hash_zeros(h: &mut blake3::Hasher, n: u64) {
    for_zeros(n, |z| {
        h.update(z);
    });
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
