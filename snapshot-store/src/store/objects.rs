//! Data objects of the store: opened once and kept (up to a bound), and their frames decoded
//! through the cache shared by every reader. A remote store's objects are read through their
//! mirrors in the on-disk frame cache, when it has one: an object whose mirror is there is
//! opened without a request, and only the frames the mirror lacks are fetched. A remote
//! file's objects are opened ahead, all at once, when it is opened; one object is never opened
//! by two threads at a time.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use lru::LruCache;
use parking_lot::{Condvar, Mutex};

use super::{Inner, Store};
use crate::error::{Error, Result};
use crate::format::object as layout;
use crate::id::ObjectId;
use crate::store::backend::{Access, Blob, Key};
use crate::store::object::DataObject;

impl Store {
    /// Opens (or returns the cached) data object `id`.
    pub(crate) fn data_object(&self, id: &ObjectId) -> Result<Arc<DataObject>> {
        self.data_object_expecting(id, None)
    }

    /// [`data_object`](Store::data_object) for an object holding `logical` bytes (a whole
    /// file's): a small one is fetched from a remote store with one request.
    pub(crate) fn data_object_of_len(&self, id: &ObjectId, logical: u64) -> Result<Arc<DataObject>> {
        self.data_object_expecting(id, Some(layout::stored_len_bound(logical)))
    }

    fn data_object_expecting(&self, id: &ObjectId, small: Option<u64>) -> Result<Arc<DataObject>> {
        let opening = match self.inner.objects.claim(id) {
            Claim::Open(o) => return Ok(o),
            Claim::Mine(opening) => opening,
        };
        let o = Arc::new(self.open_data_object(id, true, small)?);
        opening.done(&o);
        Ok(o)
    }

    /// Starts opening, on a thread of its own, the data objects of `ids` that are not open yet
    /// when the store is remote: each open waits a round trip for the object's index, so a
    /// reader that has them opened ahead waits for its frames only. A read that needs an object
    /// being opened waits for that open; a failure is reported by the read, not here.
    pub(crate) fn open_ahead(&self, ids: &[ObjectId]) {
        if !self.is_remote() {
            return;
        }
        let todo: Vec<ObjectId> = (ids.iter())
            .filter(|id| !self.inner.objects.is_open(id))
            .take(OPEN_AHEAD_MAX)
            .copied()
            .collect();
        if todo.is_empty() {
            return;
        }
        let store = self.clone();
        // Without a thread (none to be had) the objects open on their first reads.
        let _ = std::thread::Builder::new()
            .name("open-ahead".into())
            .spawn(move || store.open_objects(&todo));
    }

    /// Opens the data objects of `ids`, several at once (each open is two GETs in flight: the
    /// object's end and its start).
    fn open_objects(&self, ids: &[ObjectId]) {
        let workers = (self.options().remote.small_reads() / 2).clamp(1, ids.len().max(1));
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let _ = self.data_object(id);
                    }
                });
            }
        });
    }

    /// Data object `id` opened from the store itself, never from a local copy (what `verify`
    /// checks).
    pub(crate) fn data_object_in_store(&self, id: &ObjectId) -> Result<DataObject> {
        self.open_data_object(id, false, None)
    }

    /// Opens data object `id`, from its mirror when `mirrored` and it has one; `small` is the
    /// most bytes it can take, when known.
    fn open_data_object(&self, id: &ObjectId, mirrored: bool, small: Option<u64>) -> Result<DataObject> {
        let key = Key::object(id);
        let what = format!("data object {} ({})", id.short(), self.backend().describe(&key));
        let cache = self.inner.frame_cache.as_ref().filter(|_| mirrored);
        if let Some(cache) = cache
            && let Some((mirror, index, len)) = cache.open(&key, &what)
        {
            let blob = LazyBlob {
                store: Arc::downgrade(&self.inner),
                key,
                len,
                blob: OnceLock::new(),
            };
            return Ok(DataObject::from_mirror(*id, Box::new(blob), what, mirror, index));
        }
        let blob = match small {
            Some(len) => self.backend().open_small(&key, len)?,
            None => self.backend().open(&key)?,
        };
        let blob = blob.ok_or_else(|| missing(&what))?;
        match cache {
            Some(cache) => DataObject::from_blob_mirrored(*id, blob, what, cache),
            None => DataObject::from_blob(*id, blob, what),
        }
    }

    /// Frame `frame` of data object `obj`, decoded and verified, from the shared cache (read
    /// from disk as `access` says on a miss).
    pub(crate) fn frame(&self, obj: &DataObject, frame: u32, access: Access) -> Result<Arc<Vec<u8>>> {
        self.inner.frames.get_or_try_insert((obj.id(), frame), || {
            let data = obj.read_frame(frame as usize, access)?;
            let n = data.len();
            Ok((data, n))
        })
    }

    /// Brings frames `first..end` of `obj` into the shared cache, those it lacks fetched with
    /// one read (see [`DataObject::read_frames`]).
    pub(crate) fn fetch_frames(&self, obj: &DataObject, first: u32, end: u32, access: Access) -> Result<()> {
        let Some(lo) = (first..end).find(|&i| !self.frame_cached(obj, i)) else {
            return Ok(());
        };
        let hi = (lo..end).rev().find(|&i| !self.frame_cached(obj, i)).unwrap_or(lo);
        obj.read_frames(lo as usize, hi as usize + 1, access, |i, data| {
            let n = data.len();
            self.inner.frames.insert((obj.id(), i as u32), Arc::new(data), n);
        })
    }

    /// True when frame `frame` of `obj` is in the shared cache.
    pub(crate) fn frame_cached(&self, obj: &DataObject, frame: u32) -> bool {
        self.inner.frames.contains(&(obj.id(), frame))
    }
}

/// The most objects [`Store::open_ahead`] opens for one reader: a map over more (a long merged
/// history) opens the rest on their first reads.
const OPEN_AHEAD_MAX: usize = 64;

/// The data objects open now (the most recently used, up to a bound) and those being opened, so
/// that two readers of one object wait for one open rather than fetch its index twice.
pub(super) struct OpenObjects {
    open: Mutex<LruCache<ObjectId, Arc<DataObject>>>,
    opening: Mutex<HashSet<ObjectId>>,
    opened: Condvar,
}

/// What [`OpenObjects::claim`] found.
enum Claim<'a> {
    /// The object is open.
    Open(Arc<DataObject>),
    /// The caller opens it (no other thread is) and hands it to [`Opening::done`].
    Mine(Opening<'a>),
}

/// A claim to open one object; dropping it (opened or not) wakes the threads waiting for it.
struct Opening<'a> {
    objects: &'a OpenObjects,
    id: ObjectId,
}

impl OpenObjects {
    /// Keeps up to `capacity` objects open.
    pub(super) fn new(capacity: NonZeroUsize) -> OpenObjects {
        OpenObjects {
            open: Mutex::new(LruCache::new(capacity)),
            opening: Mutex::new(HashSet::new()),
            opened: Condvar::new(),
        }
    }

    fn is_open(&self, id: &ObjectId) -> bool {
        self.open.lock().contains(id)
    }

    /// Object `id` if open, else the claim to open it, after waiting for another thread's open
    /// of it to end (the claim then goes to a waiter when that open failed).
    fn claim(&self, id: &ObjectId) -> Claim<'_> {
        if let Some(o) = self.open.lock().get(id) {
            return Claim::Open(Arc::clone(o));
        }
        let mut opening = self.opening.lock();
        loop {
            if let Some(o) = self.open.lock().get(id) {
                return Claim::Open(Arc::clone(o));
            }
            if opening.insert(*id) {
                return Claim::Mine(Opening { objects: self, id: *id });
            }
            self.opened.wait(&mut opening);
        }
    }
}

impl Opening<'_> {
    /// Keeps `object` open for later readers.
    fn done(self, object: &Arc<DataObject>) {
        self.objects.open.lock().put(self.id, Arc::clone(object));
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.objects.opening.lock().remove(&self.id);
        self.objects.opened.notify_all();
    }
}

fn missing(what: &str) -> Error {
    Error::Missing {
        what: what.to_string(),
        referenced_by: "the store".into(),
    }
}

/// A store file opened on its first read (an object whose mirror gave its index and length).
#[derive(Debug)]
struct LazyBlob {
    store: Weak<Inner>,
    key: Key,
    len: u64,
    blob: OnceLock<Box<dyn Blob>>,
}

impl LazyBlob {
    fn get(&self, what: &str) -> Result<&dyn Blob> {
        if let Some(b) = self.blob.get() {
            return Ok(b.as_ref());
        }
        let inner = self.store.upgrade().ok_or_else(|| Error::Internal {
            what: format!("{what} read after its store was closed"),
        })?;
        let blob = inner.backend.open(&self.key)?.ok_or_else(|| missing(what))?;
        if blob.len() != self.len {
            return Err(Error::corrupt(
                what,
                format!("{} bytes in the store, {} in its local copy", blob.len(), self.len),
            ));
        }
        Ok(self.blob.get_or_init(|| blob).as_ref())
    }
}

impl Blob for LazyBlob {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64, access: Access, what: &str) -> Result<()> {
        self.get(what)?.read_exact_at(buf, offset, access, what)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_second_claim_waits_for_the_first_open_and_takes_over_when_it_failed() {
        let objects = OpenObjects::new(NonZeroUsize::new(4).unwrap());
        let id = ObjectId([1; 32]);
        let Claim::Mine(first) = objects.claim(&id) else {
            panic!("nothing is open yet")
        };
        let failed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let second = scope.spawn(|| {
                let mine = matches!(objects.claim(&id), Claim::Mine(_));
                (mine, failed.load(Ordering::SeqCst))
            });
            // The second claim cannot end while the first open is under way.
            std::thread::sleep(Duration::from_millis(50));
            failed.store(true, Ordering::SeqCst);
            drop(first);
            assert_eq!(second.join().unwrap(), (true, true), "it waited, then opened it itself");
        });
        assert!(!objects.is_open(&id));
        assert!(
            matches!(objects.claim(&ObjectId([2; 32])), Claim::Mine(_)),
            "other ids are not held up"
        );
    }
}
