//! Open files, and what a prune does to them. A file's reader holds the extent map it was
//! opened with; after a prune merged its version, the objects that map names may be gone. A
//! read that finds one missing reopens the file through its current record (same content) and
//! retries; a file of a snapshot that was forgotten meanwhile is stale. Neither is damage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::RwLock;
use snapshot_store::{FileReader, SnapshotId};

use super::View;
use crate::error::{ViewError, ViewResult};

/// An open regular file.
pub struct OpenFile {
    ino: u64,
    reader: RwLock<Arc<FileReader>>,
}

impl OpenFile {
    /// The file's size.
    pub fn size(&self) -> u64 {
        self.reader.read().size()
    }

    /// The reader in use now.
    pub fn reader(&self) -> Arc<FileReader> {
        Arc::clone(&self.reader.read())
    }
}

impl View {
    /// Opens regular file `ino` for reading, with [`View::read`]'s recovery after prunes.
    pub fn open_file(&self, ino: u64) -> ViewResult<OpenFile> {
        Ok(OpenFile {
            ino,
            reader: RwLock::new(Arc::new(self.open(ino)?)),
        })
    }

    /// Reads from `file` at `offset` into `buf` (see the module doc).
    pub fn read(&self, file: &OpenFile, offset: u64, buf: &mut [u8]) -> ViewResult<usize> {
        let reader = file.reader();
        match reader.read_at(offset, buf) {
            Err(snapshot_store::Error::Missing { .. }) => {}
            other => return other.map_err(ViewError::from),
        }
        // Catch up with the prune first: the records cached before it may be the old ones.
        self.after_prune()?;
        let fresh = match self.open(file.ino) {
            Ok(r) => Arc::new(r),
            Err(ViewError::Store(snapshot_store::Error::SnapshotNotFound { .. }) | ViewError::NoSuchInode(_)) => {
                return Err(ViewError::Stale(self.describe(file.ino)));
            }
            Err(e) => return Err(e),
        };
        if fresh.version() != reader.version() {
            return Err(ViewError::Stale(self.describe(file.ino)));
        }
        let n = fresh.read_at(offset, buf)?;
        *file.reader.write() = fresh;
        Ok(n)
    }

    /// Fills `buf` from `file` at `offset` with [`View::read`]; the caller keeps the range
    /// inside the file's size, so a file that ends sooner is damage, never a short answer.
    pub fn read_full(&self, file: &OpenFile, offset: u64, buf: &mut [u8]) -> ViewResult<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.read(file, offset + got as u64, &mut buf[got..])? {
                0 => {
                    return Err(ViewError::Store(snapshot_store::Error::corrupt(
                        self.describe(file.ino),
                        format!("ends at {} of {} bytes", offset + got as u64, file.size()),
                    )));
                }
                n => got += n,
            }
        }
        Ok(())
    }

    /// Catches up with a prune that ran since the last call: drops cached records (so reads go
    /// through the current ones), re-reads the snapshot list, and returns the snapshots that
    /// left the store. Long-running front ends call this about every half second, which also
    /// lets the prune delete what it condemned.
    pub fn after_prune(&self) -> ViewResult<Vec<snapshot_store::SnapshotId>> {
        if !self.store.refresh_after_prune()? {
            return Ok(Vec::new());
        }
        let before = self.snapshots_listed();
        let now = self.refresh()?;
        self.links.lock().clear();
        Ok(before
            .iter()
            .filter(|id| now.binary_search(id).is_err())
            .cloned()
            .collect())
    }
}

/// How often a long-running front end catches up with prunes.
pub const PRUNE_POLL: Duration = Duration::from_millis(500);

/// Follows prunes of `view`'s store on a thread of its own until `stop` is set: catches up
/// every [`PRUNE_POLL`] ([`View::after_prune`]) and hands the snapshots that left to `gone`, so
/// that the front end drops what it holds of them. The first failure is reported once on
/// stderr as `who: ...`.
pub fn follow_prunes(
    view: Arc<View>,
    who: &'static str,
    stop: Arc<AtomicBool>,
    mut gone: impl FnMut(Vec<SnapshotId>) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut told = false;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(PRUNE_POLL);
            match view.after_prune() {
                Ok(left) if !left.is_empty() => gone(left),
                Ok(_) => {}
                Err(e) if !told => {
                    told = true;
                    eprintln!("{who}: cannot follow prunes of the store: {e}");
                }
                Err(_) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;
    use crate::view::{ROOT_INO, XattrPolicy};
    use snapshot_store::{
        ForgetOptions, Percent, Policy, PruneOptions, Retention, Store, WriteOptions, WriteProgress, forget, prune,
        write_snapshot,
    };

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Files opened before a prune: a merged version keeps reading (through its new record)
    /// even when every object its old map named is gone; a file of a forgotten snapshot reads
    /// its bytes or is stale, never damaged.
    #[test]
    fn open_files_survive_a_prune() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let policy = Policy {
            min_delta_size: 64 << 10,
            ..Policy::default()
        };
        // Max unused 0%: every object the merged full uses partly is repacked, so the old map's
        // objects are deleted.
        let retention = Retention {
            delta_merge: true,
            max_unused: Percent(0),
            ..Retention::default()
        };
        let store = Store::init_with(&dir.path().join("store"), policy, retention).unwrap();
        let mut big = bytes(200 << 10, 1);
        let mut contents = Vec::new();
        for day in 0..4i64 {
            big[(day as usize) * 8192..(day as usize) * 8192 + 4096].copy_from_slice(&bytes(4096, 10 + day as u64));
            std::fs::write(src.join("big"), &big).unwrap();
            std::fs::write(src.join("small"), bytes(100, 50 + day as u64)).unwrap();
            let opts = WriteOptions {
                policy,
                time_ns: Some(1_800_000_000_000_000_000 + day * 86_400_000_000_000),
                ..WriteOptions::default()
            };
            write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
            contents.push(big.clone());
        }
        let view = View::new(Store::open(store.root()).unwrap(), 0, 0, XattrPolicy::Auto).unwrap();
        let ids = view.snapshots().unwrap();
        let file_of = |snap: usize, name: &str| {
            let d = view.lookup(ROOT_INO, ids[snap].as_str().as_bytes()).unwrap().unwrap();
            view.open_file(view.lookup(d.ino, name.as_bytes()).unwrap().unwrap().ino)
                .unwrap()
        };
        let kept = file_of(2, "big");
        let newest = file_of(3, "big");
        let forgotten = file_of(0, "small");
        let opts = ForgetOptions {
            snapshots: vec![ids[0].clone(), ids[1].clone()],
            wait_for_lock: true,
            ..ForgetOptions::default()
        };
        forget(&store, &opts, &jiff::tz::TimeZone::UTC).unwrap();
        let r = prune(&store, &PruneOptions::default()).unwrap();
        assert_eq!(r.merges.merged.len(), 1, "{r:?}");
        assert!(r.merges.merged[0].copied > 0);
        for (file, want) in [(&kept, &contents[2]), (&newest, &contents[3])] {
            let mut got = vec![0u8; want.len()];
            assert_eq!(view.read(file, 0, &mut got).unwrap(), got.len());
            assert!(got == *want);
        }
        let mut buf = vec![0u8; 100];
        match view.read(&forgotten, 0, &mut buf) {
            Ok(n) => assert_eq!(buf[..n], bytes(100, 50)[..]),
            Err(e) => assert_eq!(e.class(), ErrorClass::Stale, "{e}"),
        }
        // The view noticed the prune: the forgotten snapshots left its root.
        assert_eq!(view.snapshots().unwrap().len(), 2);
    }
}
