//! Data objects of the store: opened once and kept (up to a bound), and their frames decoded
//! through the cache shared by every reader.

use std::sync::Arc;

use super::Store;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::backend::Key;
use crate::store::object::{Access, DataObject};

impl Store {
    /// Opens (or returns the cached) data object `id`.
    pub(crate) fn data_object(&self, id: &ObjectId) -> Result<Arc<DataObject>> {
        if let Some(o) = self.inner.objects.lock().get(id) {
            return Ok(Arc::clone(o));
        }
        let o = DataObject::open(*id, self.backend())?.ok_or_else(|| Error::Missing {
            what: format!(
                "data object {} ({})",
                id.short(),
                self.backend().describe(&Key::object(id))
            ),
            referenced_by: "the store".into(),
        })?;
        let o = Arc::new(o);
        self.inner.objects.lock().put(*id, Arc::clone(&o));
        Ok(o)
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
