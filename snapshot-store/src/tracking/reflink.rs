//! The reflink change source (XFS with reflink, btrfs): at every backup each large file is cloned
//! (FICLONE) into a reference directory on its own filesystem. The clone is the frozen copy the
//! backup reads — the file may keep changing, the snapshot cannot tear — and, after the commit,
//! the file's new reference. Comparing the physical extents of the previous reference and the new
//! clone (FIEMAP, synced) gives exactly the ranges written since, whatever wrote them (buffered,
//! O_DIRECT, mmap, O_APPEND, loop devices, hole punching), even while backup-fs was not running.
//!
//! References are immutable (`chattr +i`) and recorded in the store with the identity (device,
//! inode, birth time) of the file they copy and the version they hold; a reference whose file or
//! version does not match is not used (the file is compared).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, IoContext, Result};
use crate::failpoint::{self, Point};
use crate::format::envelope::{self, Kind};
use crate::format::reftable::{FileIdentity, RefEntry, RefTable};
use crate::format::snapshot::{EntryKind, Metadata, PrevEntry, Snapshot};
use crate::id::VersionId;
use crate::os::clone::{clone_into, identity, remove_immutable, set_immutable};
use crate::os::fiemap::{FLAG_SYNC, extents};
use crate::os::file as fsio;
use crate::store::Store;
use crate::tracking::extent_diff::changed_ranges;
use crate::tracking::{ChangeProvider, ChangeSource, TrackedChanges, TrackedInput};

/// Name of the reference directory created at the top of a source directory.
pub const REF_DIR_NAME: &str = ".backup-fs-refs";

#[derive(Debug)]
struct Pending {
    rel: String,
    name: String,
    temp: PathBuf,
    identity: FileIdentity,
    size: u64,
    version: Option<VersionId>,
}

/// The reflink change source for one source tree.
pub struct ReflinkProvider {
    store_root: PathBuf,
    table_path: PathBuf,
    tmp_dir: PathBuf,
    ref_dir: PathBuf,
    is_dir_source: bool,
    table: Mutex<RefTable>,
    pending: Mutex<Vec<Pending>>,
    disabled: AtomicBool,
    note: Mutex<Option<String>>,
}

impl ReflinkProvider {
    /// The reflink source for backups of `source` into `store`: references live in
    /// `SOURCE/.backup-fs-refs/<store id>` (next to a single-file source), recorded in the store.
    pub fn open(store: &Store, source: &Path) -> Result<ReflinkProvider> {
        let source = fs::canonicalize(source).at(source)?;
        let table_path = store
            .root()
            .join("tracking")
            .join(format!("{}.refs", crate::tracking::source_key(&source)));
        let store_id = store.config().short_id();
        let is_dir_source = source.is_dir();
        let top = if is_dir_source {
            source.clone()
        } else {
            source.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
        };
        let default_dir = top.join(REF_DIR_NAME).join(store_id);
        let (ref_dir, table) = match fs::read(&table_path) {
            Ok(bytes) => {
                let what = format!("reference table ({})", table_path.display());
                let payload = envelope::open(Kind::RefTable, &bytes, &what)?;
                let (dir, table) = RefTable::decode(&payload, &what)?;
                (if dir.as_os_str().is_empty() { default_dir } else { dir }, table)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (default_dir, RefTable::default()),
            Err(e) => return Err(Error::io(&table_path, e)),
        };
        Ok(ReflinkProvider {
            store_root: store.root().to_path_buf(),
            table_path,
            tmp_dir: store.tmp_dir(),
            ref_dir,
            is_dir_source,
            table: Mutex::new(table),
            pending: Mutex::new(Vec::new()),
            disabled: AtomicBool::new(false),
            note: Mutex::new(None),
        })
    }

    /// The reference directory.
    pub fn ref_dir(&self) -> &Path {
        &self.ref_dir
    }

    fn new_dir(&self) -> PathBuf {
        self.ref_dir.join(".new")
    }

    fn disable(&self, why: String) {
        self.disabled.store(true, Ordering::Relaxed);
        let mut n = self.note.lock();
        if n.is_none() {
            *n = Some(why);
        }
    }

    /// Clones `path` into a new reference; `None` (and this source disabled) where the
    /// filesystem cannot clone.
    fn clone_file(&self, path: &Path, rel: &str) -> Option<(File, PathBuf, String, FileIdentity)> {
        let live = File::open(path).ok()?;
        let ident = identity(&live).ok()?;
        let name = blake3::hash(rel.as_bytes()).to_hex()[..32].to_string();
        if let Err(e) = fs::create_dir_all(self.new_dir()) {
            self.disable(format!(
                "cannot create the reference directory {}: {e}",
                self.ref_dir.display()
            ));
            return None;
        }
        let temp = self.new_dir().join(&name);
        let _ = fs::remove_file(&temp);
        let dst = OpenOptions::new().write(true).create_new(true).open(&temp).ok()?;
        let cloned = clone_into(&dst, &live);
        drop(dst);
        if let Err(e) = cloned {
            let _ = fs::remove_file(&temp);
            self.disable(format!(
                "the filesystem of {} cannot make reflink copies ({e})",
                path.display()
            ));
            return None;
        }
        let frozen = File::open(&temp).ok()?;
        Some((frozen, temp, name, ident))
    }
}

impl ChangeProvider for ReflinkProvider {
    fn changes(&self, path: &Path, rel: &str, meta: &Metadata, prev: Option<&PrevEntry>) -> Option<TrackedInput> {
        if self.disabled.load(Ordering::Relaxed) {
            return None;
        }
        let (frozen, temp, name, ident) = self.clone_file(path, rel)?;
        // The previous reference holds the previous version of this very file: compare extents.
        let old = self.table.lock().entries.get(rel).cloned();
        let changes = match (old, prev) {
            (Some(old), Some(prev)) if old.identity == ident && old.version == prev.content.version => {
                let old_file = File::open(self.ref_dir.join(&old.name)).ok();
                old_file.and_then(|o| {
                    let a = extents(&o, FLAG_SYNC).ok()?;
                    let b = extents(&frozen, FLAG_SYNC).ok()?;
                    Some(TrackedChanges {
                        source: ChangeSource::Reflink,
                        ranges: changed_ranges(&a, &b, old.size.max(meta.size)),
                    })
                })
            }
            _ => None,
        };
        self.pending.lock().push(Pending {
            rel: rel.to_string(),
            name,
            temp,
            identity: ident,
            size: meta.size,
            version: None,
        });
        Some(TrackedInput {
            changes,
            data: Some(frozen),
        })
    }

    fn excluded(&self) -> Vec<PathBuf> {
        if self.is_dir_source {
            vec![
                self.ref_dir
                    .parent()
                    .map_or_else(|| self.ref_dir.clone(), Path::to_path_buf),
            ]
        } else {
            Vec::new()
        }
    }

    fn written(&self, rel: &str, version: VersionId) {
        if let Some(p) = self.pending.lock().iter_mut().find(|p| p.rel == rel) {
            p.version = Some(version);
        }
    }

    fn committed(&self, snapshot: &Snapshot) -> Option<String> {
        let pending = std::mem::take(&mut *self.pending.lock());
        let mut table = self.table.lock();
        for p in pending {
            let Some(version) = p.version else {
                let _ = fs::remove_file(&p.temp);
                continue;
            };
            let dest = self.ref_dir.join(&p.name);
            let _ = remove_immutable(&dest);
            if fs::rename(&p.temp, &dest).is_err() {
                let _ = fs::remove_file(&p.temp);
                table.entries.remove(&p.rel);
                continue;
            }
            set_immutable(&dest, true);
            table.entries.insert(
                p.rel,
                RefEntry {
                    name: p.name,
                    identity: p.identity,
                    version,
                    size: p.size,
                },
            );
        }
        // References of files that are gone from the snapshot are dropped.
        let gone: Vec<String> = table
            .entries
            .keys()
            .filter(|rel| {
                snapshot
                    .lookup(rel.as_bytes())
                    .and_then(|i| snapshot.entry(i))
                    .is_none_or(|e| e.kind != EntryKind::File)
            })
            .cloned()
            .collect();
        for rel in gone {
            if let Some(e) = table.entries.remove(&rel) {
                let _ = remove_immutable(&self.ref_dir.join(e.name));
            }
        }
        let payload = table.encode(&self.ref_dir);
        let sealed = envelope::seal(Kind::RefTable, &payload);
        let _ = fs::remove_dir(self.new_dir());
        // Failing closed: the old table names the versions the references held before, which
        // no longer match the files' previous versions, so the next write compares them.
        let written = self
            .table_path
            .parent()
            .map_or(Ok(()), fsio::ensure_dir)
            .and_then(|()| failpoint::check(Point::RefTableWrite, &self.store_root).at(&self.table_path))
            .and_then(|()| fsio::write_atomic(&self.table_path, &self.tmp_dir, &sealed));
        written.err().map(|e| {
            format!(
                "the reflink reference table was not updated ({e}); the next change-tracked write compares these files"
            )
        })
    }

    fn abandoned(&self) {
        for p in std::mem::take(&mut *self.pending.lock()) {
            let _ = fs::remove_file(&p.temp);
        }
    }

    fn note(&self) -> Option<String> {
        self.note.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failpoint::{Action, arm, disarm};
    use crate::{Policy, Tracking, WriteOptions, WriteProgress, write_snapshot};

    #[test]
    fn a_reference_table_that_cannot_be_written_is_reported_and_the_snapshot_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("big"), vec![7u8; 200_000]).unwrap();
        let policy = Policy {
            min_delta_size: 64 << 10,
            change_tracking: true,
            ..Policy::default()
        };
        let store = Store::init(&dir.path().join("store"), policy).unwrap();
        let opts = WriteOptions {
            policy,
            ..WriteOptions::default()
        };
        let write = || {
            let tracking = Tracking {
                providers: vec![Box::new(ReflinkProvider::open(&store, &src).unwrap())],
                verify_sample: 0,
            };
            write_snapshot(&store, &src, &opts, Some(&tracking), &WriteProgress::default()).unwrap()
        };
        arm(Point::RefTableWrite, store.root(), Action::Error, 1);
        let first = write();
        assert!(!disarm(store.root()), "the table write was attempted");
        assert_eq!(first.notes.len(), 1, "{:?}", first.notes);
        assert!(first.notes[0].contains("reference table"), "{:?}", first.notes);
        assert_eq!(store.snapshot_ids().unwrap(), vec![first.snapshot.clone()]);
        // The next write writes it, and says nothing.
        let second = write();
        assert!(second.notes.is_empty(), "{:?}", second.notes);
        let key = crate::tracking::source_key(&fs::canonicalize(&src).unwrap());
        assert!(store.root().join("tracking").join(format!("{key}.refs")).is_file());
    }
}
