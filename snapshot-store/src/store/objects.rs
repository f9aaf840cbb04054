//! Data objects of the store: opened once and kept (up to a bound), and their frames decoded
//! through the cache shared by every reader. A remote store's objects are read through their
//! mirrors in the on-disk frame cache, when it has one: an object whose mirror is there is
//! opened without a request, and only the frames the mirror lacks are fetched.

use std::sync::{Arc, OnceLock, Weak};

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
        if let Some(o) = self.inner.objects.lock().get(id) {
            return Ok(Arc::clone(o));
        }
        let o = Arc::new(self.open_data_object(id, true, small)?);
        self.inner.objects.lock().put(*id, Arc::clone(&o));
        Ok(o)
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

    /// True when frame `frame` of `obj` is in the shared cache.
    pub(crate) fn frame_cached(&self, obj: &DataObject, frame: u32) -> bool {
        self.inner.frames.contains(&(obj.id(), frame))
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
