//! Random-access reads of a file version: one binary search in its extent map, then one object
//! read per extent through the shared frame cache. Cost does not depend on chain depth.

use std::io::Write;
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::extent::ExtentMap;
use crate::id::{ObjectId, VersionId};
use crate::store::Store;

/// An open file version. `Send + Sync`: share it between threads and call `read_at` concurrently.
#[derive(Clone)]
pub struct FileReader {
    store: Store,
    version: VersionId,
    map: Arc<ExtentMap>,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("version", &self.version)
            .field("size", &self.map.size())
            .finish()
    }
}

impl FileReader {
    pub(crate) fn new(store: Store, version: VersionId, map: Arc<ExtentMap>) -> Self {
        FileReader {
            store,
            version,
            map,
        }
    }

    /// The version's size.
    pub fn size(&self) -> u64 {
        self.map.size()
    }

    /// The version's id (blake3 of its content).
    pub fn version(&self) -> VersionId {
        self.version
    }

    /// The version's extent map.
    pub fn map(&self) -> &ExtentMap {
        &self.map
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns the count (0 at or past the end).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let mut done = 0usize;
        for piece in self.map.pieces(offset, buf.len() as u64) {
            let out = &mut buf[done..done + piece.len as usize];
            match piece.source {
                None => out.fill(0),
                Some((obj, off)) => self.read_object(&obj, off, out)?,
            }
            done += piece.len as usize;
        }
        Ok(done)
    }

    fn read_object(&self, id: &ObjectId, mut off: u64, out: &mut [u8]) -> Result<()> {
        let obj = self.store.data_object(id)?;
        if off + out.len() as u64 > obj.logical_len() {
            return Err(Error::corrupt(
                obj.describe(),
                format!(
                    "file version {} reads {} bytes at {off}, past the object's end {}",
                    self.version.short(),
                    out.len(),
                    obj.logical_len()
                ),
            ));
        }
        let fs = u64::from(obj.frame_size());
        let mut done = 0usize;
        while done < out.len() {
            let frame = self.store.frame(&obj, (off / fs) as u32)?;
            let within = (off % fs) as usize;
            let n = (frame.len() - within).min(out.len() - done);
            out[done..done + n].copy_from_slice(&frame[within..within + n]);
            done += n;
            off += n as u64;
        }
        Ok(())
    }

    /// Writes the whole content to `w` in order; with `verify`, checks it against the version's
    /// blake3 and fails (after writing) if it differs. Returns the bytes written.
    pub fn copy_to(&self, w: &mut dyn Write, verify: bool) -> Result<u64> {
        const CHUNK: usize = 4 << 20;
        let mut buf = vec![0u8; CHUNK.min(self.size() as usize).max(1)];
        let mut hasher = verify.then(blake3::Hasher::new);
        let mut off = 0u64;
        while off < self.size() {
            let n = self.read_at(off, &mut buf)?;
            let chunk = &buf[..n];
            if let Some(h) = hasher.as_mut() {
                h.update(chunk);
            }
            w.write_all(chunk).at("output")?;
            off += n as u64;
        }
        if let Some(h) = hasher {
            let got = VersionId::from(h.finalize());
            if got != self.version {
                return Err(Error::ChecksumMismatch {
                    what: format!("file version {}", self.version.short()),
                    expected: self.version.short(),
                    got: got.short(),
                });
            }
        }
        Ok(off)
    }
}
