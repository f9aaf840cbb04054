//! Opens a data object and reads verified frames from it.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{CODEC_RAW, CODEC_ZSTD, END_MAGIC, HEADER_LEN, INDEX_ENTRY_LEN, MAGIC, TRAILER_LEN};
use crate::codec::Decoder;
use crate::envelope::{FORMAT_VERSION, hex8};
use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;

/// One frame's place in the object file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the stored bytes in the file.
    pub stored_offset: u64,
    /// Length of the stored bytes.
    pub stored_len: u32,
    /// Length once decoded.
    pub raw_len: u32,
    /// [`super::CODEC_RAW`] or [`super::CODEC_ZSTD`].
    pub codec: u8,
    /// xxh3-64 of the stored bytes.
    pub checksum: u64,
}

/// How a caller reads frames, which decides whether the kernel may read ahead in the object file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading on from here (streams, large requests): the kernel's readahead helps.
    Sequential,
    /// An isolated small read: fetch this frame's stored bytes from disk and nothing more. The
    /// kernel would otherwise read ahead 64-128 KiB for each, which makes cold random reads
    /// wait longer.
    Random,
}

/// Objects smaller than this are read through their one file whatever the access (readahead
/// cannot overshoot much, and a second descriptor per small file would be wasted).
const RANDOM_FILE_MIN: u64 = 256 << 10;

/// An open data object: its file and frame index.
#[derive(Debug)]
pub struct DataObject {
    id: ObjectId,
    path: PathBuf,
    file: File,
    /// A second open file of the same object without kernel readahead, for [`Access::Random`]
    /// (readahead state belongs to an open file, so sequential readers keep theirs). Opened on
    /// first use; `None` if that failed (the main file is used then).
    random_file: OnceLock<Option<File>>,
    frame_size: u32,
    logical_len: u64,
    stored_len: u64,
    frames: Vec<Frame>,
}

impl DataObject {
    /// Opens the object `id` stored at `path`, reading and checking its header and index.
    pub fn open(id: ObjectId, path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Missing {
                    what: format!("data object {} ({})", id.short(), path.display()),
                    referenced_by: "the store".into(),
                }
            } else {
                Error::io(path, e)
            }
        })?;
        let what = describe(&id, path);
        let stored_len = file.metadata().at(path)?.len();
        if stored_len < HEADER_LEN + TRAILER_LEN {
            return Err(Error::corrupt(&what, format!("truncated ({stored_len} bytes)")));
        }
        let mut head = [0u8; HEADER_LEN as usize];
        read_exact_at(&file, &mut head, 0).at(path)?;
        let mut d = Decoder::new(&head, &what);
        if d.take(8)? != MAGIC {
            return Err(Error::corrupt(&what, "not a data object (bad magic)"));
        }
        let version = d.u16()?;
        if version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                what,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let reserved = d.u16()?;
        let frame_size = d.u32()?;
        if reserved != 0 || head.get(16..).is_some_and(|r| r.iter().any(|&b| b != 0)) {
            return Err(Error::corrupt(&what, "damaged header (reserved bytes are not zero)"));
        }
        if frame_size == 0 || frame_size > 64 << 20 {
            return Err(Error::corrupt(&what, format!("frame size {frame_size} out of range")));
        }
        let mut trailer = [0u8; TRAILER_LEN as usize];
        read_exact_at(&file, &mut trailer, stored_len - TRAILER_LEN).at(path)?;
        let mut t = Decoder::new(&trailer, &what);
        let index_offset = t.u64()?;
        let frame_count = t.u64()?;
        let logical_len = t.u64()?;
        let sum = t.take(32)?;
        if t.take(8)? != END_MAGIC {
            return Err(Error::corrupt(&what, "truncated or damaged (no end marker)"));
        }
        let index_len = frame_count
            .checked_mul(INDEX_ENTRY_LEN)
            .filter(|&l| index_offset >= HEADER_LEN && index_offset.checked_add(l) == Some(stored_len - TRAILER_LEN))
            .ok_or_else(|| Error::corrupt(&what, "index position disagrees with the file size"))?;
        let mut index = vec![0u8; index_len as usize];
        read_exact_at(&file, &mut index, index_offset).at(path)?;
        let mut h = blake3::Hasher::new();
        h.update(&head);
        h.update(&index);
        h.update(trailer.get(..24).unwrap_or_default());
        let got = h.finalize();
        if got.as_bytes() != sum {
            return Err(Error::ChecksumMismatch {
                what: what.clone(),
                expected: hex8(sum),
                got: hex8(got.as_bytes()),
            });
        }
        let mut frames = Vec::with_capacity(frame_count as usize);
        let mut d = Decoder::new(&index, &what);
        let mut offset = HEADER_LEN;
        let mut total: u64 = 0;
        for i in 0..frame_count {
            let codec = d.u8()?;
            let stored = d.u32()?;
            let raw_len = d.u32()?;
            let checksum = d.u64()?;
            let last = i + 1 == frame_count;
            if codec != CODEC_RAW && codec != CODEC_ZSTD
                || (codec == CODEC_RAW && stored != raw_len)
                || raw_len == 0
                || raw_len > frame_size
                || (!last && raw_len != frame_size)
            {
                return Err(Error::corrupt(&what, format!("bad index entry for frame {i}")));
            }
            frames.push(Frame {
                stored_offset: offset,
                stored_len: stored,
                raw_len,
                codec,
                checksum,
            });
            offset += u64::from(stored);
            total += u64::from(raw_len);
        }
        if offset != index_offset || total != logical_len {
            return Err(Error::corrupt(&what, "frame lengths disagree with the index"));
        }
        Ok(DataObject {
            id,
            path: path.to_path_buf(),
            file,
            random_file: OnceLock::new(),
            frame_size,
            logical_len,
            stored_len,
            frames,
        })
    }

    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// Length of the logical stream.
    pub fn logical_len(&self) -> u64 {
        self.logical_len
    }

    /// Size of the file on disk.
    pub fn stored_len(&self) -> u64 {
        self.stored_len
    }

    /// Uncompressed bytes per frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// The frame index.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// What to call this object in messages.
    pub fn describe(&self) -> String {
        describe(&self.id, &self.path)
    }

    /// Reads, decodes and checks frame `i` into a new buffer (filled by the decoder, never
    /// zeroed first).
    pub fn read_frame(&self, i: usize, access: Access) -> Result<Vec<u8>> {
        self.with_stored(i, access, |f, stored| {
            if f.codec == CODEC_RAW {
                return Ok(stored.to_vec());
            }
            let out = zstd_decompress_vec(stored, f.raw_len as usize)
                .map_err(|e| Error::corrupt(self.describe(), format!("frame {i} does not decompress: {e}")))?;
            if out.len() != f.raw_len as usize {
                return Err(Error::corrupt(
                    self.describe(),
                    format!("frame {i} has the wrong length"),
                ));
            }
            Ok(out)
        })
    }

    /// Reads, decodes and checks frame `i` into `out`, which must be exactly the frame's length.
    pub fn read_frame_into(&self, i: usize, out: &mut [u8], access: Access) -> Result<()> {
        self.with_stored(i, access, |f, stored| {
            if out.len() != f.raw_len as usize {
                return Err(Error::corrupt(
                    self.describe(),
                    format!("frame {i} read into a buffer of the wrong size"),
                ));
            }
            if f.codec == CODEC_RAW {
                out.copy_from_slice(stored);
                return Ok(());
            }
            let n = zstd_decompress_into(stored, out)
                .map_err(|e| Error::corrupt(self.describe(), format!("frame {i} does not decompress: {e}")))?;
            if n != out.len() {
                return Err(Error::corrupt(
                    self.describe(),
                    format!("frame {i} has the wrong length"),
                ));
            }
            Ok(())
        })
    }

    /// Reads frame `i`'s stored bytes into a per-thread scratch buffer (nothing is allocated per
    /// frame), checks them against the index, and hands them to `decode`.
    fn with_stored<R>(&self, i: usize, access: Access, decode: impl FnOnce(&Frame, &[u8]) -> Result<R>) -> Result<R> {
        let f = self.frame_entry(i)?;
        let file = match access {
            Access::Random if self.stored_len >= RANDOM_FILE_MIN => self.random_file().unwrap_or(&self.file),
            _ => &self.file,
        };
        SCRATCH.with(|cell| {
            let mut stored = cell.borrow_mut();
            stored.clear();
            stored.resize(f.stored_len as usize, 0);
            read_exact_at(file, &mut stored, f.stored_offset).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Error::corrupt(self.describe(), "truncated")
                } else {
                    Error::io(&self.path, e)
                }
            })?;
            let got = xxhash_rust::xxh3::xxh3_64(&stored);
            if got != f.checksum {
                return Err(Error::ChecksumMismatch {
                    what: format!("{} frame {i}", self.describe()),
                    expected: format!("{:016x}", f.checksum),
                    got: format!("{got:016x}"),
                });
            }
            decode(&f, &stored)
        })
    }

    /// The object's file opened a second time with readahead off (`None` where that fails or
    /// the platform has no such advice).
    fn random_file(&self) -> Option<&File> {
        self.random_file
            .get_or_init(|| {
                #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
                {
                    let file = File::open(&self.path).ok()?;
                    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random).ok()?;
                    Some(file)
                }
                #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
                None
            })
            .as_ref()
    }

    fn frame_entry(&self, i: usize) -> Result<Frame> {
        self.frames
            .get(i)
            .copied()
            .ok_or_else(|| Error::corrupt(self.describe(), format!("no frame {i}")))
    }
}

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    /// Stored bytes of the frame being read, reused.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Decodes one zstd frame (checking its content checksum) into a new buffer of `capacity` bytes
/// on this thread's reused context.
fn zstd_decompress_vec(stored: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(stored, capacity),
            None => Err(std::io::ErrorKind::Other.into()),
        }
    })
}

/// Decodes one zstd frame (checking its content checksum) into `out` on this thread's reused
/// context; returns the bytes written.
fn zstd_decompress_into(stored: &[u8], out: &mut [u8]) -> std::io::Result<usize> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress_to_buffer(stored, out),
            None => Err(std::io::ErrorKind::Other.into()),
        }
    })
}

fn describe(id: &ObjectId, path: &Path) -> String {
    format!("data object {} ({})", id.short(), path.display())
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{DataObjectWriter, header};
    use super::*;

    fn write_object(dir: &Path, data: &[u8]) -> (ObjectId, PathBuf) {
        let mut w = DataObjectWriter::create(dir, 3).unwrap();
        for chunk in data.chunks(100_000) {
            w.write(chunk).unwrap();
        }
        let f = w.finish().unwrap();
        (f.id, f.temp)
    }

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 31) ^ (i >> 9)) as u8).collect()
    }

    #[test]
    fn frames_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0usize, 1, 131072, 131073, 1_000_000] {
            let data = sample(n);
            let (id, path) = write_object(dir.path(), &data);
            assert_eq!(id, ObjectId::from(blake3::hash(&data)));
            let obj = DataObject::open(id, &path).unwrap();
            assert_eq!(obj.logical_len(), n as u64);
            let mut back = Vec::new();
            for i in 0..obj.frames().len() {
                back.extend(obj.read_frame(i, Access::Sequential).unwrap());
            }
            assert!(back == data);
        }
    }

    #[test]
    fn random_access_reads_the_same_frames_through_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        // Incompressible, so the object is large enough for a second file.
        let mut x: u64 = 7;
        let data: Vec<u8> = (0..600_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (id, path) = write_object(dir.path(), &data);
        let obj = DataObject::open(id, &path).unwrap();
        assert!(obj.stored_len() >= RANDOM_FILE_MIN);
        for i in (0..obj.frames().len()).rev() {
            let random = obj.read_frame(i, Access::Random).unwrap();
            assert!(random == obj.read_frame(i, Access::Sequential).unwrap(), "frame {i}");
            let mut into = vec![0u8; random.len()];
            obj.read_frame_into(i, &mut into, Access::Random).unwrap();
            assert!(into == random);
        }
        #[cfg(target_os = "linux")]
        assert!(
            matches!(obj.random_file.get(), Some(Some(_))),
            "a second file was opened"
        );

        // A damaged frame read at random is an error as well, never other bytes.
        let mut bad = std::fs::read(&path).unwrap();
        let f = obj.frames()[3];
        bad[f.stored_offset as usize + 100] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let obj = DataObject::open(id, &path).unwrap();
        assert!(obj.read_frame(3, Access::Random).is_err());
    }

    #[test]
    fn every_flipped_byte_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample(300_000);
        let (id, path) = write_object(dir.path(), &data);
        let good = std::fs::read(&path).unwrap();
        // Every byte outside the frames' payload, and a sample inside.
        let step = 997;
        for i in (0..good.len()).filter(|i| *i < 64 || *i + 400 > good.len() || i % step == 0) {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            let result = DataObject::open(id, &path)
                .and_then(|o| (0..o.frames().len()).try_for_each(|f| o.read_frame(f, Access::Sequential).map(|_| ())));
            assert!(result.is_err(), "flip at {i} not detected");
        }
    }

    proptest::proptest! {
        #[test]
        fn garbage_files_never_panic(data: Vec<u8>, tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("o");
            // Garbage alone, and garbage with a valid-looking header and end magic.
            for bytes in [data.clone(), [&header(131072)[..], &data, &tail, END_MAGIC].concat()] {
                std::fs::write(&path, &bytes).unwrap();
                if let Ok(o) = DataObject::open(ObjectId([0; 32]), &path) {
                    for f in 0..o.frames().len() {
                        let _ = o.read_frame(f, Access::Sequential);
                    }
                }
            }
        }
    }

    #[test]
    fn truncation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (id, path) = write_object(dir.path(), &sample(200_000));
        let good = std::fs::read(&path).unwrap();
        for cut in [0, 10, 40, good.len() / 2, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            let err = DataObject::open(id, &path).unwrap_err();
            assert!(err.is_corruption(), "cut {cut}: {err}");
        }
    }
}
