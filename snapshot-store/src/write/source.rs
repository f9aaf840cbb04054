//! Reading a source file as data segments and holes (a read-ahead thread for files larger than
//! a chunk), and detecting changes made while it is read.

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::Metadata;
use crate::os::file::read_full_at;
use crate::os::meta;
use crate::os::sparse::data_extent;

/// Bytes read per chunk.
pub const CHUNK: usize = 4 << 20;

/// Bytes read from a source file. The buffer goes back to the reader when the last holder drops
/// it, so buffers are allocated (and zeroed) only once per file.
#[derive(Debug)]
pub struct Chunk {
    data: Vec<u8>,
    home: mpsc::Sender<Vec<u8>>,
}

impl Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let _ = self.home.send(std::mem::take(&mut self.data));
    }
}

/// A piece of a source file, in order. Cheap to clone (data is shared).
#[derive(Debug, Clone)]
pub enum Segment {
    /// Bytes read from the file.
    Data(Arc<Chunk>),
    /// A hole of this many bytes (reads as zeros, not read).
    Hole(u64),
}

/// An open source file with the metadata it had when opened.
#[derive(Debug)]
pub struct SourceFile {
    file: File,
    path: PathBuf,
    meta: Metadata,
}

impl SourceFile {
    /// Opens `path` for reading and records its metadata (from the open descriptor).
    pub fn open(path: &Path) -> Result<SourceFile> {
        let file = File::open(path).at(path)?;
        let md = file.metadata().at(path)?;
        if !md.is_file() {
            return Err(Error::io(path, std::io::Error::other("not a regular file any more")));
        }
        Ok(SourceFile {
            file,
            path: path.to_path_buf(),
            meta: meta::from_stat(&md),
        })
    }

    /// A frozen copy `file` of the source at `path`, whose metadata (taken before the copy was
    /// made) is `meta`: read instead of the live file, which may keep changing.
    pub fn frozen(file: File, path: &Path, meta: Metadata) -> SourceFile {
        SourceFile {
            file,
            path: path.to_path_buf(),
            meta,
        }
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Metadata when opened.
    pub fn meta(&self) -> &Metadata {
        &self.meta
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file's size, mtime, ctime or inode differ from when it was opened.
    pub fn changed_since_open(&self) -> Result<bool> {
        let now = meta::from_stat(&self.file.metadata().at(&self.path)?);
        Ok(meta::changed(&self.meta, &now))
    }

    /// Reads the whole file (its size when opened) as segments, handing each to `f` in order.
    /// A file larger than one chunk is read ahead by a second thread. Returns the bytes read
    /// from disk, or why reading stopped: the source failed, or `f` said stop.
    pub fn read_segments<E>(
        &self,
        mut f: impl FnMut(Segment) -> std::result::Result<(), E>,
    ) -> std::result::Result<u64, Stopped<E>> {
        let mut read = 0u64;
        let mut consume = |seg: Result<Segment>| -> std::result::Result<(), Stopped<E>> {
            let seg = seg.map_err(Stopped::Source)?;
            if let Segment::Data(d) = &seg {
                read += d.len() as u64;
            }
            f(seg).map_err(Stopped::Consumer)
        };
        if self.meta.size <= CHUNK as u64 {
            let mut stop = None;
            self.produce(|seg| match consume(seg) {
                Ok(()) => true,
                Err(e) => {
                    stop = Some(e);
                    false
                }
            });
            return match stop {
                Some(e) => Err(e),
                None => Ok(read),
            };
        }
        let (tx, rx) = mpsc::sync_channel::<Result<Segment>>(2);
        std::thread::scope(|s| {
            s.spawn(move || self.produce(|seg| tx.send(seg).is_ok()));
            for seg in rx {
                consume(seg)?;
            }
            Ok(())
        })?;
        Ok(read)
    }

    /// Reads the file as segments in order, handing each (or the error that ends the file) to
    /// `emit` until it returns false.
    fn produce(&self, mut emit: impl FnMut(Result<Segment>) -> bool) {
        let size = self.meta.size;
        // Buffers go back to the reader once used, so they are allocated and zeroed only once.
        let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
        let io_error = |e| Err(Error::io(&self.path, e));
        let mut pos = 0u64;
        while pos < size {
            let (data_start, data_end) = match data_extent(&self.file, pos, size) {
                Ok(r) => r,
                Err(e) => {
                    emit(io_error(e));
                    return;
                }
            };
            if data_start > pos && !emit(Ok(Segment::Hole(data_start - pos))) {
                return;
            }
            pos = data_start;
            while pos < data_end {
                let n = (data_end - pos).min(CHUNK as u64) as usize;
                let mut buf = recycle_rx.try_recv().unwrap_or_default();
                buf.resize(n, 0);
                let chunk = |data| {
                    Segment::Data(Arc::new(Chunk {
                        data,
                        home: recycle_tx.clone(),
                    }))
                };
                let got = match read_full_at(&self.file, &mut buf, pos) {
                    Ok(got) => got,
                    Err(e) => {
                        emit(io_error(e));
                        return;
                    }
                };
                if got < n {
                    // Shrunk while reading: report what was read; the caller sees the change.
                    buf.truncate(got);
                    if emit(Ok(chunk(buf))) {
                        emit(io_error(std::io::Error::other("file shrank while being read")));
                    }
                    return;
                }
                if !emit(Ok(chunk(buf))) {
                    return;
                }
                pos += n as u64;
            }
        }
    }
}

/// Why [`SourceFile::read_segments`] stopped before the end.
#[derive(Debug)]
pub enum Stopped<E> {
    /// Reading the source failed (it cannot be read, or it shrank).
    Source(Error),
    /// The consumer said stop.
    Consumer(E),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn sparse_file_reads_as_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        let mut f = File::create(&p).unwrap();
        f.write_all(&[1u8; 5000]).unwrap();
        f.seek(SeekFrom::Start(10 << 20)).unwrap();
        f.write_all(&[2u8; 100]).unwrap();
        drop(f);
        let src = SourceFile::open(&p).unwrap();
        let mut rebuilt = Vec::new();
        let mut holes = 0;
        let read = src
            .read_segments(|s| -> std::result::Result<(), ()> {
                match s {
                    Segment::Data(d) => rebuilt.extend_from_slice(&d),
                    Segment::Hole(n) => {
                        holes += n;
                        rebuilt.extend(std::iter::repeat_n(0u8, n as usize));
                    }
                }
                Ok(())
            })
            .map_err(|_| "stopped")
            .unwrap();
        assert_eq!(rebuilt.len() as u64, (10 << 20) + 100);
        assert_eq!(&rebuilt[..5000], &[1u8; 5000][..]);
        assert_eq!(&rebuilt[10 << 20..], &[2u8; 100][..]);
        // On filesystems that report holes, most of the 10 MiB is not read.
        if holes > 0 {
            assert!(read < 1 << 20, "read {read}");
        }
        assert!(!src.changed_since_open().unwrap());
    }
}
