//! Writes a data object to a temporary file, compressing frames in parallel batches.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{IoContext, Result};
use crate::format::object::{self as layout, CODEC_RAW, FRAME_SIZE, HEADER_LEN, StoredFrame};
use crate::id::ObjectId;
use crate::os::file as fsio;

/// Frames compressed together in one parallel batch.
const BATCH: usize = 16;
/// After this many frames in a row did not compress, only every [`PROBE_EVERY`]th frame is tried
/// (incompressible data — media, encrypted or already compressed files — is stored raw at disk
/// speed instead of being run through zstd for nothing).
const INCOMPRESSIBLE_STREAK: u32 = 8;
/// See [`INCOMPRESSIBLE_STREAK`].
const PROBE_EVERY: u64 = 16;

/// Receives the literal bytes of a version, in order.
pub trait LiteralSink {
    /// Appends `data` to the literal stream.
    fn write(&mut self, data: &[u8]) -> Result<()>;
}

impl LiteralSink for Vec<u8> {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }
}

/// A data object written to a temporary file, not yet in the store.
#[derive(Debug)]
pub struct FinishedObject {
    /// blake3 of the logical stream.
    pub id: ObjectId,
    /// The temporary file.
    pub temp: PathBuf,
    /// Size of the file on disk.
    pub stored_len: u64,
    /// Length of the logical stream.
    pub logical_len: u64,
}

impl FinishedObject {
    /// Deletes the temporary file (the object is not wanted after all).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Streams bytes into a new data object.
pub struct DataObjectWriter {
    file: File,
    temp: PathBuf,
    level: i32,
    current: Vec<u8>,
    batch: Vec<Vec<u8>>,
    index: Vec<u8>,
    frames: u64,
    hasher: blake3::Hasher,
    logical_len: u64,
    stored_len: u64,
    raw_streak: u32,
}

impl DataObjectWriter {
    /// Starts an object in a new temporary file in `tmp_dir`, compressing at zstd `level`.
    pub fn create(tmp_dir: &Path, level: i32) -> Result<Self> {
        let (mut file, temp) = fsio::create_temp(tmp_dir, "obj")?;
        file.write_all(&layout::header(FRAME_SIZE)).at(&temp)?;
        Ok(DataObjectWriter {
            file,
            temp,
            level,
            current: Vec::with_capacity(FRAME_SIZE as usize),
            batch: Vec::with_capacity(BATCH),
            index: Vec::new(),
            frames: 0,
            hasher: blake3::Hasher::new(),
            logical_len: 0,
            stored_len: HEADER_LEN,
            raw_streak: 0,
        })
    }

    /// Bytes on disk so far (frames still being batched are not counted).
    pub fn stored_len(&self) -> u64 {
        self.stored_len
    }

    /// Appends bytes to the logical stream.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        self.logical_len += data.len() as u64;
        if data.len() >= 1 << 16 {
            self.hasher.update_rayon(data);
        } else {
            self.hasher.update(data);
        }
        while !data.is_empty() {
            let room = FRAME_SIZE as usize - self.current.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.current.extend_from_slice(now);
            data = rest;
            if self.current.len() == FRAME_SIZE as usize {
                let full = std::mem::replace(&mut self.current, Vec::with_capacity(FRAME_SIZE as usize));
                self.batch.push(full);
                if self.batch.len() == BATCH {
                    self.flush_batch()?;
                }
            }
        }
        Ok(())
    }

    /// Appends `n` zero bytes.
    pub fn write_zeros(&mut self, n: u64) -> Result<()> {
        let mut result = Ok(());
        crate::hash::block::for_zeros(n, |z| {
            if result.is_ok() {
                result = self.write(z);
            }
        });
        result
    }

    fn flush_batch(&mut self) -> Result<()> {
        let level = self.level;
        let skipping = self.raw_streak >= INCOMPRESSIBLE_STREAK;
        let first = self.frames;
        let frames: Vec<StoredFrame> = self
            .batch
            .par_drain(..)
            .enumerate()
            .map(|(i, raw)| {
                let probe = (first + i as u64).is_multiple_of(PROBE_EVERY);
                layout::compress_frame(raw, if skipping && !probe { None } else { Some(level) })
            })
            .collect();
        for f in frames {
            if f.codec == CODEC_RAW {
                self.raw_streak = self.raw_streak.saturating_add(1);
            } else {
                self.raw_streak = 0;
            }
            self.file.write_all(&f.bytes).at(&self.temp)?;
            self.stored_len += f.bytes.len() as u64;
            layout::push_index_entry(&mut self.index, &f);
            self.frames += 1;
        }
        Ok(())
    }

    /// Writes the index and trailer and closes the temporary file (not yet synced).
    pub fn finish(mut self) -> Result<FinishedObject> {
        if !self.current.is_empty() {
            let last = std::mem::take(&mut self.current);
            self.batch.push(last);
        }
        self.flush_batch()?;
        let trailer = layout::trailer(
            &layout::header(FRAME_SIZE),
            &self.index,
            self.stored_len,
            self.frames,
            self.logical_len,
        );
        self.file.write_all(&self.index).at(&self.temp)?;
        self.file.write_all(&trailer).at(&self.temp)?;
        self.stored_len += (self.index.len() + trailer.len()) as u64;
        Ok(FinishedObject {
            id: ObjectId::from(self.hasher.finalize()),
            temp: self.temp,
            stored_len: self.stored_len,
            logical_len: self.logical_len,
        })
    }

    /// Deletes the temporary file.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

impl LiteralSink for DataObjectWriter {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        DataObjectWriter::write(self, data)
    }
}
