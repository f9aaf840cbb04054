//! Writing one restored file's content: holes kept, checked against the version id.

use std::fs::{File, OpenOptions};
use std::path::Path;

use super::Restorer;
use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::Entry;
use crate::hash::block::{for_zeros, is_zero};
use crate::os::file::write_all_at;
use crate::read::reader::FileReader;
use crate::read::stream::Window;

impl Restorer<'_> {
    /// Writes the content of file entry `e` to a new file `dest` (not flushed: the restore
    /// flushes everything at the end).
    pub(super) fn write_file(&self, e: &Entry, dest: &Path) -> Result<()> {
        let content = e
            .content
            .ok_or_else(|| Error::corrupt(format!("snapshot {}", self.snap.id), "file entry without content"))?;
        let reader = FileReader::open(self.store, &content, e.meta.size)?;
        let file = OpenOptions::new().write(true).create_new(true).open(dest).at(dest)?;
        // Keep holes: the map's holes are never written; zero blocks of a sparse original neither.
        let sparse = e.meta.blocks.saturating_mul(512) < e.meta.size;
        let mut hasher = self.opts.verify.then(blake3::Hasher::new);
        reader.stream(|window| {
            match window {
                Window::Hole { len, .. } => {
                    if let Some(h) = hasher.as_mut() {
                        for_zeros(len, |z| {
                            h.update(z);
                        });
                    }
                }
                Window::Data { offset, bytes } => {
                    if let Some(h) = hasher.as_mut() {
                        h.update(bytes);
                    }
                    write_sparse(&file, bytes, offset, sparse).at(dest)?;
                }
            }
            Ok(())
        })?;
        file.set_len(reader.size()).at(dest)?;
        if let Some(h) = hasher {
            reader.check_hash(h).map_err(|e| match e {
                Error::ChecksumMismatch { what, expected, got } => Error::ChecksumMismatch {
                    what: format!("{what} (restoring {})", dest.display()),
                    expected,
                    got,
                },
                other => other,
            })?;
        }
        Ok(())
    }
}

/// Writes `data` at `offset`, skipping aligned all-zero 4 KiB blocks when `sparse`.
fn write_sparse(file: &File, data: &[u8], offset: u64, sparse: bool) -> std::io::Result<()> {
    if !sparse {
        return write_all_at(file, data, offset);
    }
    const BLOCK: usize = 4096;
    let mut i = 0usize;
    while i < data.len() {
        let abs = offset + i as u64;
        let to_boundary = BLOCK - (abs % BLOCK as u64) as usize;
        let n = to_boundary.min(data.len() - i);
        let chunk = &data[i..i + n];
        if !(n == BLOCK && is_zero(chunk)) {
            write_all_at(file, chunk, abs)?;
        }
        i += n;
    }
    Ok(())
}
