//! Opens a data object and reads verified frames from it (the layout is `format::object`).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::sync::Arc;

use super::mirror::{FrameCache, Mirror};
use crate::error::{Error, Result};
use crate::format::object::{self as layout, Frame, HEADER_LEN, Index, TRAILER_LEN};
use crate::id::ObjectId;
pub use crate::store::backend::Access;
use crate::store::backend::{Blob, Key};

/// The most stored bytes [`DataObject::read_frames`] reads at once.
const MAX_SPAN: u64 = 16 << 20;

/// An open data object: its file and frame index.
#[derive(Debug)]
pub struct DataObject {
    id: ObjectId,
    /// What to call it in messages: `data object <id> (<where>)`.
    what: String,
    blob: Box<dyn Blob>,
    frame_size: u32,
    logical_len: u64,
    stored_len: u64,
    frames: Vec<Frame>,
    /// Its local copy in the frame cache of a remote store.
    mirror: Option<Mirror>,
}

/// The parts of an object read at open: header, index and trailer bytes, and the index.
struct Parts {
    head: [u8; HEADER_LEN as usize],
    index: Vec<u8>,
    trailer: [u8; TRAILER_LEN as usize],
    checked: Index,
}

impl DataObject {
    /// Reads and checks the header and index of object `id` in `blob`.
    pub(crate) fn from_blob(id: ObjectId, blob: Box<dyn Blob>, what: String) -> Result<Self> {
        let parts = read_parts(blob.as_ref(), &what)?;
        Ok(Self::assemble(id, blob, what, parts.checked, None))
    }

    /// [`from_blob`](Self::from_blob), starting the object's mirror in `cache`.
    pub(crate) fn from_blob_mirrored(
        id: ObjectId,
        blob: Box<dyn Blob>,
        what: String,
        cache: &Arc<FrameCache>,
    ) -> Result<Self> {
        let parts = read_parts(blob.as_ref(), &what)?;
        let mirror = cache.create(&Key::object(&id), blob.len(), &parts.head, &parts.index, &parts.trailer);
        Ok(Self::assemble(id, blob, what, parts.checked, mirror))
    }

    /// Object `id` from its mirror (its index, checked) and `blob`, the object in the store, read
    /// only for the frames the mirror lacks.
    pub(crate) fn from_mirror(id: ObjectId, blob: Box<dyn Blob>, what: String, mirror: Mirror, index: Index) -> Self {
        Self::assemble(id, blob, what, index, Some(mirror))
    }

    fn assemble(id: ObjectId, blob: Box<dyn Blob>, what: String, index: Index, mirror: Option<Mirror>) -> Self {
        DataObject {
            id,
            what,
            stored_len: blob.len(),
            blob,
            frame_size: index.frame_size,
            logical_len: index.logical_len,
            frames: index.frames,
            mirror,
        }
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
        self.what.clone()
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

    /// Reads, decodes and checks frames `first..end`, which lie one after another in the
    /// object, with one read of the store for those its mirror lacks (one round trip for a
    /// remote store instead of one per frame); hands each frame to `each` with its number.
    pub fn read_frames(
        &self,
        first: usize,
        end: usize,
        access: Access,
        mut each: impl FnMut(usize, Vec<u8>),
    ) -> Result<()> {
        let mut missing = Vec::new();
        for i in first..end {
            let f = self.frame_entry(i)?;
            let mut stored = vec![0u8; f.stored_len as usize];
            match &self.mirror {
                Some(m) if m.load(&f, i, &mut stored, &self.what) => {
                    each(i, layout::decode_frame(&f, i, &stored, &self.what)?);
                }
                _ => missing.push((i, f)),
            }
        }
        let (Some(&(_, lo)), Some(&(_, hi))) = (missing.first(), missing.last()) else {
            return Ok(());
        };
        let start = lo.stored_offset;
        let span = (hi.stored_offset + u64::from(hi.stored_len))
            .checked_sub(start)
            .filter(|&n| n <= MAX_SPAN)
            .ok_or_else(|| Error::corrupt(self.describe(), format!("frames {first}..{end} are out of order")))?;
        let mut all = vec![0u8; span as usize];
        self.blob.read_exact_at(&mut all, start, access, &self.what)?;
        for (i, f) in missing {
            let at = (f.stored_offset - start) as usize;
            let stored = all
                .get(at..at + f.stored_len as usize)
                .ok_or_else(|| Error::corrupt(self.describe(), format!("frame {i} is out of order")))?;
            layout::check_stored(&f, i, stored, &self.what)?;
            if let Some(m) = &self.mirror {
                m.keep(&f, stored);
            }
            each(i, layout::decode_frame(&f, i, stored, &self.what)?);
        }
        Ok(())
    }

    /// Reads frame `i`'s stored bytes into a per-thread scratch buffer (nothing is allocated per
    /// frame), checks them against the index, and hands them to `decode`.
    fn with_stored<R>(&self, i: usize, access: Access, decode: impl FnOnce(&Frame, &[u8]) -> Result<R>) -> Result<R> {
        let f = self.frame_entry(i)?;
        SCRATCH.with(|cell| {
            let mut stored = cell.borrow_mut();
            stored.clear();
            stored.resize(f.stored_len as usize, 0);
            if let Some(m) = &self.mirror
                && m.load(&f, i, &mut stored, &self.what)
            {
                return decode(&f, &stored);
            }
            self.blob
                .read_exact_at(&mut stored, f.stored_offset, access, &self.what)?;
            layout::check_stored(&f, i, &stored, &self.what)?;
            if let Some(m) = &self.mirror {
                m.keep(&f, &stored);
            }
            decode(&f, &stored)
        })
    }

    fn frame_entry(&self, i: usize) -> Result<Frame> {
        self.frames
            .get(i)
            .copied()
            .ok_or_else(|| Error::corrupt(self.describe(), format!("no frame {i}")))
    }
}

/// Reads and checks the header, trailer and index of the object in `blob`.
fn read_parts(blob: &dyn Blob, what: &str) -> Result<Parts> {
    let stored_len = blob.len();
    let mut head = [0u8; HEADER_LEN as usize];
    let mut trailer = [0u8; TRAILER_LEN as usize];
    if stored_len >= HEADER_LEN + TRAILER_LEN {
        blob.read_exact_at(&mut head, 0, Access::Random, what)?;
        blob.read_exact_at(&mut trailer, stored_len - TRAILER_LEN, Access::Random, what)?;
    }
    let bounds = layout::read_bounds(&head, &trailer, stored_len, what)?;
    let mut index = vec![0u8; bounds.index_len as usize];
    blob.read_exact_at(&mut index, bounds.index_offset, Access::Random, what)?;
    let checked = layout::read_index(&bounds, &head, &index, &trailer, what)?;
    Ok(Parts {
        head,
        index,
        trailer,
        checked,
    })
}

thread_local! {
    /// Stored bytes of the frame being read, reused.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
mod tests {
    use super::super::DataObjectWriter;
    use crate::store::backend::Backend;
    use std::path::{Path, PathBuf};

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

    /// Opens the object file at `path` as object `id`.
    fn open_at(id: ObjectId, path: &Path) -> Result<DataObject> {
        let dir = crate::store::backend::LocalBackend::new(path.parent().unwrap());
        let key = Key::new(path.file_name().unwrap().to_str().unwrap());
        let blob = dir.open(&key)?.expect("the object file exists");
        DataObject::from_blob(id, blob, format!("data object {}", id.short()))
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
            let obj = open_at(id, &path).unwrap();
            assert_eq!(obj.logical_len(), n as u64);
            let mut back = Vec::new();
            for i in 0..obj.frames().len() {
                back.extend(obj.read_frame(i, Access::Sequential).unwrap());
            }
            assert!(back == data);
        }
    }

    #[test]
    fn an_object_never_takes_more_than_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FRAME_SIZE as usize;
        for n in [0usize, 1, 100, fs - 1, fs, fs + 1, 5 * fs + 7, 1 << 20] {
            for data in [crate::testdata::pseudo(n, n as u64), sample(n)] {
                let (_, path) = write_object(dir.path(), &data);
                let stored = std::fs::metadata(&path).unwrap().len();
                let bound = crate::format::object::stored_len_bound(n as u64);
                assert!(stored <= bound, "{n} bytes stored in {stored}, above the bound {bound}");
            }
        }
    }

    #[test]
    fn random_access_reads_the_same_frames() {
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
        let obj = open_at(id, &path).unwrap();
        assert!(obj.stored_len() >= (256 << 10));
        for i in (0..obj.frames().len()).rev() {
            let random = obj.read_frame(i, Access::Random).unwrap();
            assert!(random == obj.read_frame(i, Access::Sequential).unwrap(), "frame {i}");
            let mut into = vec![0u8; random.len()];
            obj.read_frame_into(i, &mut into, Access::Random).unwrap();
            assert!(into == random);
        }

        // A damaged frame read at random is an error as well, never other bytes.
        let mut bad = std::fs::read(&path).unwrap();
        assert!(obj.frames().len() > 3, "{} frames", obj.frames().len());
        let f = obj.frames()[3];
        bad[f.stored_offset as usize + 100] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let obj = open_at(id, &path).unwrap();
        assert!(obj.read_frame(3, Access::Random).is_err());
    }

    #[test]
    fn frames_read_together_are_the_frames_read_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        for data in [sample(300_000), crate::testdata::pseudo(300_000, 3)] {
            let (id, path) = write_object(dir.path(), &data);
            let obj = open_at(id, &path).unwrap();
            let n = obj.frames().len();
            assert!(n > 4, "{n} frames");
            for (first, end) in [(0, n), (1, 3), (2, 3), (n - 1, n), (3, 3)] {
                let mut got = Vec::new();
                obj.read_frames(first, end, Access::Random, |i, f| got.push((i, f)))
                    .unwrap();
                let want: Vec<_> = (first..end)
                    .map(|i| (i, obj.read_frame(i, Access::Random).unwrap()))
                    .collect();
                assert!(got == want, "frames {first}..{end}");
            }
            assert!(
                obj.read_frames(n - 1, n + 1, Access::Random, |_, _| {}).is_err(),
                "past the last frame"
            );

            // A flipped byte in any frame read together is an error, never other bytes.
            let good = std::fs::read(&path).unwrap();
            for k in 1..4 {
                let f = obj.frames()[k];
                let mut bad = good.clone();
                bad[(f.stored_offset + u64::from(f.stored_len) / 2) as usize] ^= 0x40;
                std::fs::write(&path, &bad).unwrap();
                let damaged = open_at(id, &path).unwrap();
                assert!(
                    damaged.read_frames(1, 4, Access::Random, |_, _| {}).is_err(),
                    "flip in frame {k}"
                );
            }
        }
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
            let result = open_at(id, &path)
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
                if let Ok(o) = open_at(ObjectId([0; 32]), &path) {
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
            let err = open_at(id, &path).unwrap_err();
            assert!(err.is_corruption(), "cut {cut}: {err}");
        }
    }
}
