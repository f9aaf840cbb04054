//! Reading a source file as data segments and holes, with a read-ahead thread, and detecting
//! changes made while it is read.

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use crate::error::{Error, IoContext, Result};
use crate::meta;
use crate::snapshot::Metadata;

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

    /// Reads the whole file (its size when opened) as segments, handing each to `f` in order,
    /// while a second thread reads ahead. Returns the bytes read from disk.
    pub fn read_segments(&self, mut f: impl FnMut(Segment) -> Result<()>) -> Result<u64> {
        let size = self.meta.size;
        let (tx, rx) = mpsc::sync_channel::<Result<Segment>>(2);
        // Buffers go back to the reader once used, so they are allocated and zeroed only once.
        let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut pos = 0u64;
                while pos < size {
                    let (data_start, data_end) = match data_extent(&self.file, pos, size) {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = tx.send(Err(Error::io(&self.path, e)));
                            return;
                        }
                    };
                    if data_start > pos && tx.send(Ok(Segment::Hole(data_start - pos))).is_err() {
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
                                let _ = tx.send(Err(Error::io(&self.path, e)));
                                return;
                            }
                        };
                        if got < n {
                            // Shrunk while reading: report what was read; the caller sees the change.
                            buf.truncate(got);
                            let _ = tx.send(Ok(chunk(buf)));
                            let _ = tx.send(Err(Error::io(
                                &self.path,
                                std::io::Error::other("file shrank while being read"),
                            )));
                            return;
                        }
                        if tx.send(Ok(chunk(buf))).is_err() {
                            return;
                        }
                        pos += n as u64;
                    }
                }
            });
            let mut read = 0u64;
            for seg in rx {
                let seg = seg?;
                if let Segment::Data(d) = &seg {
                    read += d.len() as u64;
                }
                f(seg)?;
            }
            Ok(read)
        })
    }
}

/// The next data range at or after `pos`: `(start, end)`, with `start == end == size` when the
/// rest of the file is a hole.
fn data_extent(file: &File, pos: u64, size: u64) -> std::io::Result<(u64, u64)> {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "macos"
    ))]
    {
        use rustix::fs::{SeekFrom, seek};
        let start = match seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s.min(size),
            Err(rustix::io::Errno::NXIO) => return Ok((size, size)),
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOTSUP) => {
                return Ok((pos, size));
            }
            Err(e) => return Err(e.into()),
        };
        let end = match seek(file, SeekFrom::Hole(start)) {
            Ok(e) => e.min(size),
            Err(rustix::io::Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        Ok((start, end.max(start)))
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "macos"
    )))]
    {
        let _ = file;
        Ok((pos, size))
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        #[cfg(unix)]
        let n = {
            use std::os::unix::fs::FileExt;
            file.read_at(&mut buf[done..], offset + done as u64)
        };
        #[cfg(windows)]
        let n = {
            use std::os::windows::fs::FileExt;
            file.seek_read(&mut buf[done..], offset + done as u64)
        };
        match n {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
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
            .read_segments(|s| {
                match s {
                    Segment::Data(d) => rebuilt.extend_from_slice(&d),
                    Segment::Hole(n) => {
                        holes += n;
                        rebuilt.extend(std::iter::repeat_n(0u8, n as usize));
                    }
                }
                Ok(())
            })
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
