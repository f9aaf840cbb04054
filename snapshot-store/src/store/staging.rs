//! Staging of new store files during a write, and the atomic commit.
//!
//! Everything a write produces goes to the backend's spool directory first (`tmp/` of a store
//! directory). `commit` then (1) publishes every staged file (durably in place, never replacing an
//! existing file: see [`Backend::publish`](crate::store::backend::Backend::publish)), and only
//! after all of them are acknowledged (2) publishes the snapshot manifest the same way, last. A
//! crash before (2) leaves the store as it was plus unreferenced files; the manifest's creation is
//! the commit point.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, IoContext, Result};
use crate::format::envelope::{self, Kind};
use crate::format::snapshot::{Snapshot, SnapshotId};
use crate::format::version::FileVersion;
use crate::id::{ObjectId, VersionId};
use crate::os::file as fsio;
use crate::store::backend::{Key, PutOutcome, Staged};
use crate::store::object::FinishedObject;
use crate::store::uploader::{UploadProgress, Uploader};
use crate::store::{Store, WriterLock, XATTRS_MARKER};

#[derive(Debug, Default)]
struct State {
    pending: Vec<Staged>,
    objects: HashSet<ObjectId>,
    versions: HashSet<VersionId>,
    bytes: u64,
}

/// Files written by one snapshot write, waiting for the commit.
#[derive(Debug)]
pub struct Staging {
    store: Store,
    lock: WriterLock,
    state: Mutex<State>,
    /// For a remote store: the threads uploading staged files while the write goes on.
    uploader: Option<Uploader>,
}

impl Staging {
    /// Starts staging for `store` (the writer lock proves exclusive access).
    pub fn new(store: &Store, lock: &WriterLock) -> Result<Self> {
        Staging::with_progress(store, lock, Arc::default())
    }

    /// [`Staging::new`], counting uploads to a remote store (which start while the write
    /// goes on) into `upload`.
    pub fn with_progress(store: &Store, lock: &WriterLock, upload: Arc<UploadProgress>) -> Result<Self> {
        let uploader = match store.is_remote() {
            true => Some(Uploader::start(store, store.options().remote.connections, upload)?),
            false => None,
        };
        Ok(Staging {
            store: store.clone(),
            lock: lock.clone(),
            state: Mutex::new(State::default()),
            uploader,
        })
    }

    /// Hands a staged file to the uploader, or keeps it for the commit.
    fn enqueue(&self, file: Staged, len: u64) {
        match &self.uploader {
            Some(u) => u.push(file, len),
            None => self.state.lock().pending.push(file),
        }
    }

    /// True when version `id` exists in the store or is staged (false when the store cannot
    /// say).
    pub fn has_version(&self, id: &VersionId) -> bool {
        self.state.lock().versions.contains(id) || self.store.has_version(id).unwrap_or(false)
    }

    /// Bytes staged so far.
    pub fn bytes(&self) -> u64 {
        self.state.lock().bytes
    }

    /// Stages a finished data object; returns the bytes it adds (0 when the object already
    /// exists, in which case the temporary file is deleted).
    pub fn add_data_object(&self, obj: FinishedObject) -> Result<u64> {
        // The store is asked without the staging lock held: for a remote store that is a
        // request, which must not hold up the other threads.
        let known = self.state.lock().objects.contains(&obj.id)
            || (self.store).has_for_staging(&Key::object(&obj.id), obj.stored_len);
        let mut st = self.state.lock();
        if known || !st.objects.insert(obj.id) {
            drop(st);
            fs::remove_file(&obj.temp).at(&obj.temp)?;
            return Ok(0);
        }
        st.bytes += obj.stored_len;
        drop(st);
        let key = Key::object(&obj.id);
        self.enqueue(Staged { temp: obj.temp, key }, obj.stored_len);
        Ok(obj.stored_len)
    }

    /// Stages an envelope object (signature, extent map) named `id`; returns the bytes added.
    pub fn add_envelope_object(&self, id: ObjectId, kind: Kind, payload: &[u8]) -> Result<u64> {
        if self.state.lock().objects.contains(&id)
            || self.store.has_for_staging(&Key::object(&id), payload.len() as u64)
        {
            return Ok(0);
        }
        let sealed = envelope::seal(kind, payload);
        self.stage_sealed(&sealed, Key::object(&id), |st| st.objects.insert(id))
    }

    /// Stages a version record; returns the bytes added (0 if that version exists).
    pub fn add_version(&self, v: &FileVersion) -> Result<u64> {
        let key = Key::version(&v.id);
        if self.state.lock().versions.contains(&v.id) || self.store.has_for_staging(&key, 0) {
            return Ok(0);
        }
        let sealed = envelope::seal_as(Kind::Version, v.format_version(), &v.encode());
        self.stage_sealed(&sealed, Key::version(&v.id), |st| st.versions.insert(v.id))
    }

    /// Writes `sealed` to a temporary file and stages it for `dest`, unless `claim` (run under
    /// the lock) says another thread staged the same name meanwhile: then the temporary file is
    /// deleted and 0 bytes are added.
    fn stage_sealed(&self, sealed: &[u8], key: Key, claim: impl FnOnce(&mut State) -> bool) -> Result<u64> {
        let temp = write_temp(&self.store.tmp_dir(), sealed)?;
        let mut st = self.state.lock();
        if !claim(&mut st) {
            drop(st);
            fs::remove_file(&temp).at(&temp)?;
            return Ok(0);
        }
        st.bytes += sealed.len() as u64;
        drop(st);
        self.enqueue(Staged { temp, key }, sealed.len() as u64);
        Ok(sealed.len() as u64)
    }

    /// Deletes every staged file (the write is abandoned).
    pub fn abandon(self) {
        if let Some(u) = self.uploader {
            u.abandon();
        }
        for p in self.state.into_inner().pending {
            let _ = fs::remove_file(&p.temp);
        }
    }

    /// Publishes every staged file: waits for the uploader's acknowledgements, then publishes
    /// what was kept for the commit. On error, the files not published are deleted.
    fn publish_all(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.state.lock().pending);
        let uploaded = match self.uploader.take() {
            Some(u) => u.finish(),
            None => Ok(()),
        };
        let result = uploaded.and_then(|()| self.store.backend().publish(&pending));
        if result.is_err() {
            for p in &pending {
                let _ = fs::remove_file(&p.temp);
            }
        }
        result
    }

    /// Makes the staged files durable and in place (steps 1 to 3 of the commit protocol) without
    /// a manifest: for prune, whose new objects become reachable when it replaces records.
    pub fn commit_objects(mut self) -> Result<()> {
        self.publish_all()
    }

    /// Makes the staged files durable and in place, then writes `snapshot` as the commit point.
    /// The snapshot's id may be bumped (`-NN`) if another snapshot took it; the final id and the
    /// manifest's size are returned.
    pub fn commit(mut self, mut snapshot: Snapshot) -> Result<(SnapshotId, u64)> {
        let store = self.store.clone();
        self.publish_all()?;
        if snapshot.entries.iter().any(|e| !e.meta.xattrs.is_empty()) {
            mark_xattrs(&store)?;
        }
        // The manifest: the commit point, made only while the lock is surely still held.
        for _ in 0..100 {
            self.lock.check()?;
            let sealed = envelope::seal(Kind::Snapshot, &snapshot.encode());
            let manifest = Staged {
                temp: write_temp(&store.tmp_dir(), &sealed)?,
                key: Key::snapshot(&snapshot.id),
            };
            match store.backend().publish_one(&manifest) {
                Ok(PutOutcome::Created) => return Ok((snapshot.id, sealed.len() as u64)),
                Ok(PutOutcome::Exists) => snapshot.id = next_id(&snapshot.id)?,
                Err(e) => {
                    let _ = fs::remove_file(&manifest.temp);
                    return Err(e);
                }
            }
        }
        Err(Error::SnapshotIdsExhausted {
            second: snapshot.id.as_str().get(..20).unwrap_or_default().to_string(),
        })
    }
}

/// Creates the store's `xattrs` marker (durably) unless it exists, so that readers deciding
/// whether to serve extended attributes see it before the manifest that needs it.
fn mark_xattrs(store: &Store) -> Result<()> {
    // Only a sure "it exists" skips it: publishing is if-absent, so doing it again is harmless.
    if store.backend().exists(&Key::new(XATTRS_MARKER)).unwrap_or(false) {
        return Ok(());
    }
    let marker = Staged {
        temp: write_temp(&store.tmp_dir(), b"")?,
        key: Key::new(XATTRS_MARKER),
    };
    store.backend().publish(std::slice::from_ref(&marker))
}

/// The id after `id` within the same second (`-01`, `-02`, ...).
pub(crate) fn next_id(id: &SnapshotId) -> Result<SnapshotId> {
    let s = id.as_str();
    let (stamp, n) = match s.len() {
        20 => (s, 0),
        _ => (&s[..20], s[21..].parse::<u32>().unwrap_or(0)),
    };
    if n >= 99 {
        return Err(Error::SnapshotIdsExhausted {
            second: stamp.to_string(),
        });
    }
    SnapshotId::parse(&format!("{stamp}-{:02}", n + 1)).ok_or_else(|| Error::Internal {
        what: format!("the id after {s} does not parse"),
    })
}

fn write_temp(tmp_dir: &Path, bytes: &[u8]) -> Result<PathBuf> {
    use std::io::Write;
    let (mut f, temp) = fsio::create_temp(tmp_dir, "stage")?;
    if let Err(e) = f.write_all(bytes) {
        drop(f);
        let _ = fs::remove_file(&temp);
        return Err(Error::io(&temp, e));
    }
    Ok(temp)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::path::Path;

    use crate::failpoint::{Action, Point, arm, disarm};
    use crate::testdata::pseudo;
    use crate::{
        EntryKind, FileReader, Policy, Store, VerifyOptions, WriteOptions, WriteProgress, verify, write_snapshot,
    };

    /// Changes the source for write number `n`: the big file (a chain) is edited, two small files
    /// rewritten (the number of files staged stays the same from one write to the next).
    fn change(src: &Path, n: u64) {
        let mut big = std::fs::read(src.join("big")).unwrap_or_else(|_| pseudo(200_000, 7));
        let at = (n as usize * 40_000) % big.len();
        big[at..at + 5000].copy_from_slice(&pseudo(5000, n + 100));
        std::fs::write(src.join("big"), &big).unwrap();
        std::fs::write(src.join("small"), pseudo(3000, n + 200)).unwrap();
        std::fs::write(src.join("other"), pseudo(1000, n + 300)).unwrap();
    }

    /// (snapshot, path) -> blake3 of the content, and snapshot -> manifest bytes.
    type StoreState = (BTreeMap<(String, Vec<u8>), [u8; 32]>, BTreeMap<String, Vec<u8>>);

    /// Every file of every snapshot as its blake3, read back through the store, and the raw bytes
    /// of every manifest.
    fn state(store: &Store) -> StoreState {
        let mut files = BTreeMap::new();
        let mut manifests = BTreeMap::new();
        for id in store.snapshot_ids().unwrap() {
            manifests.insert(id.to_string(), std::fs::read(store.snapshot_path(&id)).unwrap());
            let snap = store.snapshot(&id).unwrap();
            for (i, e) in snap.entries.iter().enumerate() {
                if e.kind != EntryKind::File {
                    continue;
                }
                let r = FileReader::open(store, &e.content.unwrap(), e.meta.size).unwrap();
                let mut out = Vec::new();
                r.copy_to(&mut out, true).unwrap();
                let key = (id.to_string(), snap.path_of(i as u32));
                files.insert(key, *blake3::hash(&out).as_bytes());
            }
        }
        (files, manifests)
    }

    #[test]
    fn ids_within_one_second_run_out_after_99() {
        let id = |s: &str| crate::SnapshotId::parse(s).unwrap();
        assert_eq!(
            super::next_id(&id("2026-11-22T07-15-03Z")).unwrap(),
            id("2026-11-22T07-15-03Z-01")
        );
        assert_eq!(
            super::next_id(&id("2026-11-22T07-15-03Z-41")).unwrap(),
            id("2026-11-22T07-15-03Z-42")
        );
        let err = super::next_id(&id("2026-11-22T07-15-03Z-99")).unwrap_err();
        assert!(
            matches!(&err, crate::Error::SnapshotIdsExhausted { second } if second == "2026-11-22T07-15-03Z"),
            "{err:?}"
        );
    }

    #[test]
    fn a_failure_after_any_commit_step_leaves_earlier_snapshots_intact() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
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
        let write = || write_snapshot(&store, &src, &opts, None, &WriteProgress::default());
        let mut n = 0;
        for _ in 0..2 {
            n += 1;
            change(&src, n);
            write().unwrap();
        }
        let points = [
            (Point::StagedFsync, Action::Error),
            (Point::StagedFsync, Action::Panic),
            (Point::StagedRename, Action::Error),
            (Point::StagedRename, Action::Panic),
            (Point::DirFsync, Action::Error),
            (Point::DirFsync, Action::Panic),
            (Point::ManifestWrite, Action::Error),
            (Point::ManifestWrite, Action::Panic),
            (Point::ManifestRename, Action::Panic),
        ];
        let mut injected = 0;
        for (point, action) in points {
            // Every hit of the point in one write: the first, the second, ... until one write
            // passes the point fewer times than asked (then it committed, and is kept).
            for nth in 1.. {
                n += 1;
                change(&src, n);
                let before = state(&store);
                arm(point, store.root(), action, nth);
                let outcome = catch_unwind(AssertUnwindSafe(write));
                let fired = !disarm(store.root());
                let after = state(&store);
                if !fired {
                    assert!(matches!(outcome, Ok(Ok(_))), "{point:?} #{nth}: {outcome:?}");
                    break;
                }
                injected += 1;
                match (action, &outcome) {
                    (Action::Error, Ok(Err(_))) | (Action::Panic, Err(_)) => {}
                    _ => panic!("{point:?} {action:?} #{nth}: {outcome:?}"),
                }
                if point == Point::ManifestRename {
                    // After the commit point the new snapshot exists; the earlier ones are intact.
                    assert_eq!(after.1.len(), before.1.len() + 1);
                    assert!(before.0.iter().all(|(k, v)| after.0.get(k) == Some(v)));
                    assert!(before.1.iter().all(|(k, v)| after.1.get(k) == Some(v)));
                } else {
                    assert_eq!(before, after, "{point:?} {action:?} #{nth} changed a snapshot");
                }
                let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
                assert!(report.problems.is_empty(), "{point:?} #{nth}: {:?}", report.problems);
            }
        }
        assert!(injected >= 20, "only {injected} failures were injected");
        // And the store takes the next write.
        n += 1;
        change(&src, n);
        write().unwrap();
        let report = verify(&store, VerifyOptions { read_data: true }).unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
