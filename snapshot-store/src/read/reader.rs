//! Random-access reads of a file version: one binary search in its extent map, then one object
//! read per extent through the shared frame cache. Cost does not depend on chain depth.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::format::extent::ExtentMap;
use crate::format::snapshot::FileContent;
use crate::id::{ObjectId, VersionId};
use crate::store::Store;
use crate::store::object::{Access, DataObject};

/// Reads shorter than this are random reads (see [`FileReader::read_at`]). The kernel's own
/// readahead requests through a mount are 128 KiB and more; a 4 KiB `pread` arrives as 4-8 KiB.
pub const RANDOM_READ_MAX: usize = 64 << 10;

/// An open file version. `Send + Sync`: share it between threads and call `read_at` concurrently.
#[derive(Clone)]
pub struct FileReader {
    pub(super) store: Store,
    pub(super) version: VersionId,
    pub(super) map: Arc<ExtentMap>,
    /// Set once the objects of `map` were opened ahead ([`Store::open_ahead`]).
    pub(super) opened_ahead: Arc<AtomicBool>,
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
    /// Opens a regular file's content (of `size` bytes, as its snapshot entry says) for reading.
    pub fn open(store: &Store, content: &FileContent, size: u64) -> Result<FileReader> {
        Ok(FileReader {
            store: store.clone(),
            version: content.version,
            map: store.content_map(content, size)?,
            opened_ahead: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The version's size.
    pub fn size(&self) -> u64 {
        self.map.size()
    }

    /// The version's id (blake3 of its content).
    pub fn version(&self) -> VersionId {
        self.version
    }

    /// The first offset at or after `offset` that holds data (`SEEK_DATA`); `None` when there
    /// is none before the end.
    pub fn next_data(&self, offset: u64) -> Option<u64> {
        self.map.next_data(offset)
    }

    /// The first offset at or after `offset` that is a hole, the end of the version counting as
    /// one (`SEEK_HOLE`); `None` when `offset` is at or past the end.
    pub fn next_hole(&self, offset: u64) -> Option<u64> {
        self.map.next_hole(offset)
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns the count (0 at or past the end).
    ///
    /// A read shorter than [`RANDOM_READ_MAX`] is taken for an isolated one: the object files are
    /// read without kernel readahead for it, so a cold read waits for its own frames only.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let access = if buf.len() < RANDOM_READ_MAX {
            Access::Random
        } else {
            Access::Sequential
        };
        if access == Access::Random && self.store.is_remote() {
            self.fetch_at_once(offset, buf.len() as u64)?;
        }
        let mut done = 0usize;
        for piece in self.map.pieces(offset, buf.len() as u64) {
            let out = &mut buf[done..done + piece.len as usize];
            match piece.source {
                None => out.fill(0),
                Some((obj, off)) => self.read_object(&obj, off, out, access)?,
            }
            done += piece.len as usize;
        }
        // The first read opens what it needs itself, on the connections already open; the
        // other objects open after it.
        self.open_ahead_once();
        Ok(done)
    }

    /// In a remote store, starts opening every data object the version reads from (once per
    /// open file), so that the first read in each waits for its frames only.
    pub(super) fn open_ahead_once(&self) {
        // A load first: this runs on every read, and only the first may write the flag.
        if !self.opened_ahead.load(Ordering::Relaxed) && !self.opened_ahead.swap(true, Ordering::Relaxed) {
            self.store.open_ahead(self.map.objects());
        }
    }

    /// Fetches the frames a short read of a remote store needs, when it needs more than one
    /// (it straddles frames or extents): each object's run of frames with one request, the
    /// objects in parallel, so the read waits one round trip rather than one per frame.
    fn fetch_at_once(&self, offset: u64, len: u64) -> Result<()> {
        let mut runs: Vec<(Arc<DataObject>, u32, u32)> = Vec::new();
        for piece in self.map.pieces(offset, len) {
            let Some((id, off)) = piece.source else { continue };
            let obj = self.store.data_object(&id)?;
            self.check_range(&obj, off, piece.len as usize)?;
            let fs = u64::from(obj.frame_size());
            let (first, end) = ((off / fs) as u32, (off + piece.len).div_ceil(fs) as u32);
            match runs.last_mut() {
                Some((o, _, e)) if o.id() == id && first <= *e => *e = (*e).max(end),
                _ => runs.push((obj, first, end)),
            }
        }
        let wanted = |(o, first, end): &(Arc<DataObject>, u32, u32)| {
            (*first..*end).filter(|&i| !self.store.frame_cached(o, i)).count()
        };
        runs.retain(|r| wanted(r) > 0);
        match runs.as_slice() {
            [] => Ok(()),
            [one] if wanted(one) < 2 => Ok(()),
            [(o, first, end)] => self.store.fetch_frames(o, *first, *end, Access::Random),
            _ => std::thread::scope(|scope| {
                let fetches: Vec<_> = (runs.iter())
                    .map(|(o, first, end)| {
                        scope.spawn(move || self.store.fetch_frames(o, *first, *end, Access::Random))
                    })
                    .collect();
                fetches
                    .into_iter()
                    .try_for_each(|f| f.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            }),
        }
    }

    fn read_object(&self, id: &ObjectId, off: u64, out: &mut [u8], access: Access) -> Result<()> {
        let obj = self.store.data_object(id)?;
        self.check_range(&obj, off, out.len())?;
        let fs = u64::from(obj.frame_size());
        let mut done = 0usize;
        let mut pos = off;
        while done < out.len() {
            let index = (pos / fs) as u32;
            let within = (pos % fs) as usize;
            let frame_len = obj.frames().get(index as usize).map_or(0, |f| f.raw_len as usize);
            let n = (frame_len - within.min(frame_len)).min(out.len() - done);
            if within == 0 && n == frame_len && frame_len > 0 && !self.store.frame_cached(&obj, index) {
                // The read covers the whole frame: decode straight into the caller's buffer (a
                // sequential reader would not come back to it).
                obj.read_frame_into(index as usize, &mut out[done..done + n], access)?;
            } else {
                let frame = self.store.frame(&obj, index, access)?;
                let avail = frame.len().saturating_sub(within).min(n);
                if avail == 0 {
                    return Err(Error::corrupt(
                        obj.describe(),
                        format!("frame {index} is shorter than its index says"),
                    ));
                }
                out[done..done + avail].copy_from_slice(&frame[within..within + avail]);
                done += avail;
                pos += avail as u64;
                continue;
            }
            done += n;
            pos += n as u64;
        }
        Ok(())
    }

    pub(super) fn check_range(&self, obj: &DataObject, off: u64, len: usize) -> Result<()> {
        if off + len as u64 > obj.logical_len() {
            return Err(Error::corrupt(
                obj.describe(),
                format!(
                    "file version {} reads {len} bytes at {off}, past the object's end {}",
                    self.version.short(),
                    obj.logical_len()
                ),
            ));
        }
        Ok(())
    }

    /// Fails unless `h` (fed the whole content) equals the version id.
    pub fn check_hash(&self, h: blake3::Hasher) -> Result<()> {
        let got = VersionId::from(h.finalize());
        if got != self.version {
            return Err(Error::ChecksumMismatch {
                what: format!("file version {}", self.version.short()),
                expected: self.version.short(),
                got: got.short(),
            });
        }
        Ok(())
    }
}
