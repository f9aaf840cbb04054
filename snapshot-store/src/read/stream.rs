//! Streaming a whole version in order (restore, `cat`, `verify --read-data`): data windows
//! decoded ahead on other threads, holes passed on as lengths.

use std::io::Write;
use std::sync::{Arc, mpsc};

use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::read::reader::FileReader;
use crate::store::object::{Access, DataObject};

impl FileReader {
    /// Reads `[offset, offset + out.len())`, which holds no hole, decoding frames through a
    /// private cache (sequential reads leave the shared cache to random readers).
    fn read_window(&self, offset: u64, out: &mut [u8], local: &StreamFrames) -> Result<()> {
        let mut done = 0usize;
        for piece in self.map.pieces(offset, out.len() as u64) {
            let dest = &mut out[done..done + piece.len as usize];
            match piece.source {
                None => dest.fill(0),
                Some((id, off)) => {
                    let obj = self.store.data_object(&id)?;
                    self.check_range(&obj, off, dest.len())?;
                    copy_frames(&obj, off, dest, |i| local.get(&obj, i))?;
                }
            }
            done += piece.len as usize;
        }
        Ok(())
    }

    /// Streams the whole content in order: data windows of up to [`WINDOW`] bytes, decoded ahead
    /// on other threads, and holes as lengths. `f` sees every byte range exactly once.
    ///
    /// A version whose data fits in one window is decoded on the calling thread (a small file
    /// costs no thread). The decoding threads of larger ones are this call's own (not rayon's),
    /// so `stream` may be called from inside a rayon task without starving the pool.
    pub fn stream(&self, mut f: impl FnMut(Window<'_>) -> Result<()>) -> Result<()> {
        self.open_ahead_once();
        let tasks = self.windows();
        let data_tasks: Vec<(u64, u64)> = tasks.iter().filter(|t| t.2).map(|t| (t.0, t.1)).collect();
        let frames = StreamFrames::new();
        if data_tasks.len() <= 1 {
            let mut buf = Vec::new();
            for &(offset, len, is_data) in &tasks {
                if is_data {
                    buf.resize(len as usize, 0);
                    self.read_window(offset, &mut buf, &frames)?;
                    f(Window::Data { offset, bytes: &buf })?;
                } else {
                    f(Window::Hole { offset, len })?;
                }
            }
            return Ok(());
        }
        let threads = decoders().min(data_tasks.len());
        let frames = &frames;
        let data_tasks = &data_tasks;
        std::thread::scope(|scope| {
            // Decoder k handles data windows k, k + threads, ...; each has its own queue, read in
            // turn, so windows arrive in order.
            let mut queues = Vec::with_capacity(threads);
            for k in 0..threads {
                let (tx, rx) = mpsc::sync_channel::<Result<Vec<u8>>>(2);
                let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
                queues.push((rx, recycle_tx));
                scope.spawn(move || {
                    for &(off, len) in data_tasks.iter().skip(k).step_by(threads) {
                        let mut buf = recycle_rx.try_recv().unwrap_or_default();
                        buf.resize(len as usize, 0);
                        let r = self.read_window(off, &mut buf, frames).map(|()| buf);
                        if tx.send(r).is_err() {
                            return;
                        }
                    }
                });
            }
            let mut next = 0usize;
            for &(offset, len, is_data) in &tasks {
                if !is_data {
                    f(Window::Hole { offset, len })?;
                    continue;
                }
                let (rx, recycle) = &queues[next % threads];
                next += 1;
                let buf = rx
                    .recv()
                    .map_err(|_| Error::corrupt("reader", "a decoding thread stopped"))??;
                f(Window::Data { offset, bytes: &buf })?;
                let _ = recycle.send(buf);
            }
            Ok(())
        })
    }

    /// The version cut into (offset, length, is data) pieces: runs of data of at most [`WINDOW`]
    /// bytes and whole holes.
    fn windows(&self) -> Vec<(u64, u64, bool)> {
        let mut out: Vec<(u64, u64, bool)> = Vec::new();
        for p in self.map.pieces(0, self.size()) {
            let is_data = p.source.is_some();
            let mut off = p.file_offset;
            let end = p.file_offset + p.len;
            while off < end {
                match out.last_mut() {
                    Some(last) if last.2 == is_data && (!is_data || last.1 < WINDOW) && last.0 + last.1 == off => {
                        let take = if is_data {
                            (WINDOW - last.1).min(end - off)
                        } else {
                            end - off
                        };
                        last.1 += take;
                        off += take;
                    }
                    _ => {
                        let take = if is_data { WINDOW.min(end - off) } else { end - off };
                        out.push((off, take, is_data));
                        off += take;
                    }
                }
            }
        }
        out
    }

    /// Writes the whole content to `w` in order; with `verify`, checks it against the version's
    /// blake3 and fails (after writing) if it differs. Returns the bytes written.
    pub fn copy_to(&self, w: &mut dyn Write, verify: bool) -> Result<u64> {
        let mut hasher = verify.then(blake3::Hasher::new);
        let mut written = 0u64;
        self.stream(|window| {
            match window {
                Window::Data { bytes, .. } => {
                    if let Some(h) = hasher.as_mut() {
                        h.update(bytes);
                    }
                    w.write_all(bytes).at("output")?;
                    written += bytes.len() as u64;
                }
                Window::Hole { mut len, .. } => {
                    while len > 0 {
                        let n = len.min(1 << 20) as usize;
                        let z = crate::hash::block::zeros(n);
                        if let Some(h) = hasher.as_mut() {
                            h.update(z);
                        }
                        w.write_all(z).at("output")?;
                        written += n as u64;
                        len -= n as u64;
                    }
                }
            }
            Ok(())
        })?;
        if let Some(h) = hasher {
            self.check_hash(h)?;
        }
        Ok(written)
    }
}

/// Threads decoding one stream: the cores, from 1 to 4 (asked once: the answer reads cgroup
/// files).
fn decoders() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4))
}

/// Bytes per data window of [`FileReader::stream`].
pub const WINDOW: u64 = 4 << 20;

/// One piece of [`FileReader::stream`]'s output.
#[derive(Debug)]
pub enum Window<'a> {
    /// Content bytes at `offset`.
    Data {
        /// Offset in the version.
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// `len` zero bytes at `offset` that are a hole of the version.
    Hole {
        /// Offset in the version.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
}

/// Copies `out.len()` bytes at logical offset `off` of `obj`, getting decoded frames from `frame`.
fn copy_frames(
    obj: &DataObject,
    mut off: u64,
    out: &mut [u8],
    mut frame: impl FnMut(u32) -> Result<Arc<Vec<u8>>>,
) -> Result<()> {
    let fs = u64::from(obj.frame_size());
    let mut done = 0usize;
    while done < out.len() {
        let f = frame((off / fs) as u32)?;
        let f = f.as_slice();
        let within = (off % fs) as usize;
        let n = (f.len() - within).min(out.len() - done);
        out[done..done + n].copy_from_slice(&f[within..within + n]);
        done += n;
        off += n as u64;
    }
    Ok(())
}

/// Recently decoded frames of one sequential stream, shared by its window tasks and private
/// to it (a stream leaves the store's shared cache to random readers). A version's extents visit
/// each object's frames in increasing order, so a few frames per object suffice however extents
/// of many objects (a deep chain) interleave. Decoding happens outside the lock.
struct StreamFrames {
    frames: parking_lot::Mutex<lru::LruCache<FrameKey, Arc<Vec<u8>>>>,
}

/// A frame of a data object.
type FrameKey = (ObjectId, u32);

impl StreamFrames {
    /// Frames remembered (at most this many times the frame size in memory).
    const CAPACITY: usize = 128;

    fn new() -> Self {
        StreamFrames {
            frames: parking_lot::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(Self::CAPACITY).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        }
    }

    fn get(&self, obj: &DataObject, frame: u32) -> Result<Arc<Vec<u8>>> {
        let key = (obj.id(), frame);
        if let Some(f) = self.frames.lock().get(&key) {
            return Ok(Arc::clone(f));
        }
        let data = Arc::new(obj.read_frame(frame as usize, Access::Sequential)?);
        self.frames.lock().put(key, Arc::clone(&data));
        Ok(data)
    }
}
