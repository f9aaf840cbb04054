//! Opens a data object and reads verified frames from it (the layout is `format::object`).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, IoContext, Result};
use crate::format::object::{self as layout, Frame, HEADER_LEN, TRAILER_LEN};
use crate::id::ObjectId;
use crate::os::file::{open_without_readahead, read_exact_at};

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
        let mut head = [0u8; HEADER_LEN as usize];
        let mut trailer = [0u8; TRAILER_LEN as usize];
        if stored_len >= HEADER_LEN + TRAILER_LEN {
            read_exact_at(&file, &mut head, 0).at(path)?;
            read_exact_at(&file, &mut trailer, stored_len - TRAILER_LEN).at(path)?;
        }
        let bounds = layout::read_bounds(&head, &trailer, stored_len, &what)?;
        let mut index = vec![0u8; bounds.index_len as usize];
        read_exact_at(&file, &mut index, bounds.index_offset).at(path)?;
        let index = layout::read_index(&bounds, &head, &index, &trailer, &what)?;
        Ok(DataObject {
            id,
            path: path.to_path_buf(),
            file,
            random_file: OnceLock::new(),
            frame_size: index.frame_size,
            logical_len: index.logical_len,
            stored_len,
            frames: index.frames,
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
            layout::decode_frame(f, i, stored, &self.describe())
        })
    }

    /// Reads, decodes and checks frame `i` into `out`, which must be exactly the frame's length.
    pub fn read_frame_into(&self, i: usize, out: &mut [u8], access: Access) -> Result<()> {
        self.with_stored(i, access, |f, stored| {
            layout::decode_frame_into(f, i, stored, out, &self.describe())
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
            layout::check_stored(&f, i, &stored, &self.describe())?;
            decode(&f, &stored)
        })
    }

    /// The object's file opened a second time with readahead off (`None` where that fails or
    /// the platform has no such advice).
    fn random_file(&self) -> Option<&File> {
        self.random_file
            .get_or_init(|| open_without_readahead(&self.path))
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
    /// Stored bytes of the frame being read, reused.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn describe(id: &ObjectId, path: &Path) -> String {
    format!("data object {} ({})", id.short(), path.display())
}

#[cfg(test)]
mod tests {
    use super::super::DataObjectWriter;
    use super::*;
    use crate::format::object::{END_MAGIC, FRAME_SIZE, header};

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
        let fs = FRAME_SIZE as usize;
        for n in [0usize, 1, fs - 1, fs, fs + 1, 3 * fs, 1_000_000] {
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
        assert!(obj.frames().len() > 3, "{} frames", obj.frames().len());
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
            for bytes in [data.clone(), [&header(FRAME_SIZE)[..], &data, &tail, END_MAGIC].concat()] {
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
