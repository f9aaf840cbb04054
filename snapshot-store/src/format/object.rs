//! The layout of a data object: a byte stream (a whole small file, a full version's non-hole
//! data, or a delta's literal bytes) stored as independently compressed frames with an index, so
//! that a read at any offset decompresses at most one frame.
//!
//! ```text
//! offset        size  field
//! 0             8     magic "BKFSdata"
//! 8             2     format version, u16 LE
//! 10            2     reserved, zero
//! 12            4     frame size: uncompressed bytes per frame (the last frame may be shorter)
//! 16            16    reserved, zero
//! 32            ...   frames, back to back, each stored raw or as one zstd frame
//! index_offset  17*n  per frame: codec u8 (0 raw, 1 zstd), stored length u32, raw length u32,
//!                     xxh3-64 of the stored bytes u64
//! end-64        8     index_offset u64
//! end-56        8     frame count n u64
//! end-48        8     logical (uncompressed) length u64
//! end-40        32    blake3 of header (32 bytes) ‖ index ‖ the three fields above
//! end-8         8     magic "BKFSdEND"
//! ```
//!
//! The object's id is the blake3 of its logical stream. Every read checks the frame's stored
//! bytes against the index's xxh3, and zstd frames carry zstd's own content checksum of the
//! decoded bytes, so a damaged frame is an error, never wrong bytes. This module turns bytes into
//! the index and frames into data; `store::object` does the file I/O.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::format::codec::Decoder;
use crate::format::envelope::hex8;
use crate::format::{FormatVersion, magic};

/// Magic at the start of a data object.
pub const MAGIC: &[u8; 8] = magic::DATA;
/// Magic at the end of a data object.
pub const END_MAGIC: &[u8; 8] = magic::DATA_END;
/// Bytes before the first frame.
pub const HEADER_LEN: u64 = 32;
/// Bytes of one index entry.
pub const INDEX_ENTRY_LEN: u64 = 17;
/// Bytes of the trailer.
pub const TRAILER_LEN: u64 = 64;
/// Uncompressed bytes per frame written by this build.
pub const FRAME_SIZE: u32 = 32 << 10;
/// The largest frame size a reader accepts.
pub const MAX_FRAME_SIZE: u32 = 64 << 20;
/// Codec value of a frame stored as is.
pub const CODEC_RAW: u8 = 0;
/// Codec value of a frame stored as one zstd frame.
pub const CODEC_ZSTD: u8 = 1;

/// The most bytes a data object of `logical` bytes written by this build takes: its frames
/// stored raw (a frame is compressed only when that makes it shorter), index and trailer.
pub fn stored_len_bound(logical: u64) -> u64 {
    HEADER_LEN + logical + INDEX_ENTRY_LEN * logical.div_ceil(u64::from(FRAME_SIZE)) + TRAILER_LEN
}

/// The 32-byte header of a data object with frames of `frame_size` bytes.
pub fn header(frame_size: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    let (m, rest) = h.split_at_mut(MAGIC.len());
    m.copy_from_slice(MAGIC);
    let (version, rest) = rest.split_at_mut(2);
    version.copy_from_slice(&FormatVersion::V1.number().to_le_bytes());
    let (_reserved, rest) = rest.split_at_mut(2);
    let (size, _reserved) = rest.split_at_mut(4);
    size.copy_from_slice(&frame_size.to_le_bytes());
    h
}

/// One frame's place in the object file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the stored bytes in the file.
    pub stored_offset: u64,
    /// Length of the stored bytes.
    pub stored_len: u32,
    /// Length once decoded.
    pub raw_len: u32,
    /// [`CODEC_RAW`] or [`CODEC_ZSTD`].
    pub codec: u8,
    /// xxh3-64 of the stored bytes.
    pub checksum: u64,
}

/// What the header and trailer of an object say, before its index is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Uncompressed bytes per frame.
    pub frame_size: u32,
    /// Where the index starts in the file.
    pub index_offset: u64,
    /// Bytes of the index.
    pub index_len: u64,
    /// Number of frames.
    pub frame_count: u64,
    /// Length of the logical stream.
    pub logical_len: u64,
}

/// The frame index of an object, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Uncompressed bytes per frame.
    pub frame_size: u32,
    /// Length of the logical stream.
    pub logical_len: u64,
    /// The frames in stream order.
    pub frames: Vec<Frame>,
}

/// Checks an object's 32-byte header and its 64-byte trailer (from a file of `file_len` bytes;
/// `what` names it in errors) and says where its index lies.
pub fn read_bounds(head: &[u8], trailer: &[u8], file_len: u64, what: &str) -> Result<Bounds> {
    if file_len < HEADER_LEN + TRAILER_LEN {
        return Err(Error::corrupt(what, format!("truncated ({file_len} bytes)")));
    }
    let mut d = Decoder::new(head, what);
    if d.take(8)? != MAGIC {
        return Err(Error::corrupt(what, "not a data object (bad magic)"));
    }
    FormatVersion::check(d.u16()?, what)?;
    let reserved = d.u16()?;
    let frame_size = d.u32()?;
    if reserved != 0 || d.take(16)?.iter().any(|&b| b != 0) {
        return Err(Error::corrupt(what, "damaged header (reserved bytes are not zero)"));
    }
    if frame_size == 0 || frame_size > MAX_FRAME_SIZE {
        return Err(Error::corrupt(what, format!("frame size {frame_size} out of range")));
    }
    let mut t = Decoder::new(trailer, what);
    let index_offset = t.u64()?;
    let frame_count = t.u64()?;
    let logical_len = t.u64()?;
    t.take(32)?;
    if t.take(8)? != END_MAGIC {
        return Err(Error::corrupt(what, "truncated or damaged (no end marker)"));
    }
    let index_len = frame_count
        .checked_mul(INDEX_ENTRY_LEN)
        .filter(|&l| index_offset >= HEADER_LEN && index_offset.checked_add(l) == Some(file_len - TRAILER_LEN))
        .ok_or_else(|| Error::corrupt(what, "index position disagrees with the file size"))?;
    Ok(Bounds {
        frame_size,
        index_offset,
        index_len,
        frame_count,
        logical_len,
    })
}

/// Checks the trailer's checksum over `head`, `index` and `trailer`, and every index entry.
pub fn read_index(bounds: &Bounds, head: &[u8], index: &[u8], trailer: &[u8], what: &str) -> Result<Index> {
    let mut h = blake3::Hasher::new();
    h.update(head);
    h.update(index);
    h.update(trailer.get(..24).unwrap_or_default());
    let got = h.finalize();
    let sum = trailer.get(24..56).unwrap_or_default();
    if got.as_bytes() != sum {
        return Err(Error::ChecksumMismatch {
            what: what.to_string(),
            expected: hex8(sum),
            got: hex8(got.as_bytes()),
        });
    }
    let frame_size = bounds.frame_size;
    let mut frames = Vec::with_capacity(bounds.frame_count.min(1 << 24) as usize);
    let mut d = Decoder::new(index, what);
    let mut offset = HEADER_LEN;
    let mut total: u64 = 0;
    for i in 0..bounds.frame_count {
        let codec = d.u8()?;
        let stored = d.u32()?;
        let raw_len = d.u32()?;
        let checksum = d.u64()?;
        let last = i + 1 == bounds.frame_count;
        if codec != CODEC_RAW && codec != CODEC_ZSTD
            || (codec == CODEC_RAW && stored != raw_len)
            || raw_len == 0
            || raw_len > frame_size
            || (!last && raw_len != frame_size)
        {
            return Err(Error::corrupt(what, format!("bad index entry for frame {i}")));
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
    if offset != bounds.index_offset || total != bounds.logical_len {
        return Err(Error::corrupt(what, "frame lengths disagree with the index"));
    }
    Ok(Index {
        frame_size,
        logical_len: bounds.logical_len,
        frames,
    })
}

/// Appends the index entry of a stored frame to `index`.
pub fn push_index_entry(index: &mut Vec<u8>, frame: &StoredFrame) {
    index.push(frame.codec);
    index.extend_from_slice(&(frame.bytes.len() as u32).to_le_bytes());
    index.extend_from_slice(&frame.raw_len.to_le_bytes());
    index.extend_from_slice(&frame.checksum.to_le_bytes());
}

/// The trailer of an object whose header is `head` and index `index`.
pub fn trailer(head: &[u8], index: &[u8], index_offset: u64, frame_count: u64, logical_len: u64) -> Vec<u8> {
    let mut trailer = Vec::with_capacity(TRAILER_LEN as usize);
    trailer.extend_from_slice(&index_offset.to_le_bytes());
    trailer.extend_from_slice(&frame_count.to_le_bytes());
    trailer.extend_from_slice(&logical_len.to_le_bytes());
    let mut sum = blake3::Hasher::new();
    sum.update(head);
    sum.update(index);
    sum.update(&trailer);
    trailer.extend_from_slice(sum.finalize().as_bytes());
    trailer.extend_from_slice(END_MAGIC);
    trailer
}

/// A frame as stored: its codec, raw length, checksum and bytes.
#[derive(Debug)]
pub struct StoredFrame {
    /// [`CODEC_RAW`] or [`CODEC_ZSTD`].
    pub codec: u8,
    /// Length once decoded.
    pub raw_len: u32,
    /// xxh3-64 of `bytes`.
    pub checksum: u64,
    /// The bytes written to the file.
    pub bytes: Vec<u8>,
}

/// Stores a frame, compressed at zstd `level` (content checksum on) when that saves at least
/// 1/32 of it (`None`: raw).
pub fn compress_frame(raw: Vec<u8>, level: Option<i32>) -> StoredFrame {
    let raw_len = raw.len() as u32;
    let (codec, bytes) = match level.and_then(|l| zstd_compress(&raw, l)) {
        Some(c) if c.len() < raw.len() - raw.len() / 32 => (CODEC_ZSTD, c),
        _ => (CODEC_RAW, raw),
    };
    StoredFrame {
        codec,
        raw_len,
        checksum: xxhash_rust::xxh3::xxh3_64(&bytes),
        bytes,
    }
}

/// Checks frame `i`'s stored bytes against its index entry (`what` names the object).
pub fn check_stored(f: &Frame, i: usize, stored: &[u8], what: &str) -> Result<()> {
    let got = xxhash_rust::xxh3::xxh3_64(stored);
    if got != f.checksum {
        return Err(Error::ChecksumMismatch {
            what: format!("{what} frame {i}"),
            expected: format!("{:016x}", f.checksum),
            got: format!("{got:016x}"),
        });
    }
    Ok(())
}

/// Decodes frame `i` (stored bytes checked) into a new buffer.
pub fn decode_frame(f: &Frame, i: usize, stored: &[u8], what: &str) -> Result<Vec<u8>> {
    if f.codec == CODEC_RAW {
        return Ok(stored.to_vec());
    }
    let out = zstd_decompress_vec(stored, f.raw_len as usize)
        .map_err(|e| Error::corrupt(what, format!("frame {i} does not decompress: {e}")))?;
    if out.len() != f.raw_len as usize {
        return Err(Error::corrupt(what, format!("frame {i} has the wrong length")));
    }
    Ok(out)
}

/// Decodes frame `i` (stored bytes checked) into `out`, which must be exactly its length.
pub fn decode_frame_into(f: &Frame, i: usize, stored: &[u8], out: &mut [u8], what: &str) -> Result<()> {
    if out.len() != f.raw_len as usize {
        return Err(Error::corrupt(
            what,
            format!("frame {i} read into a buffer of the wrong size"),
        ));
    }
    if f.codec == CODEC_RAW {
        out.copy_from_slice(stored);
        return Ok(());
    }
    let n = zstd_decompress_into(stored, out)
        .map_err(|e| Error::corrupt(what, format!("frame {i} does not decompress: {e}")))?;
    if n != out.len() {
        return Err(Error::corrupt(what, format!("frame {i} has the wrong length")));
    }
    Ok(())
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses one frame with zstd (content checksum on) on this thread's reused context.
fn zstd_compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let mut c = zstd::bulk::Compressor::new(level).ok()?;
            c.include_checksum(true).ok()?;
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut()?;
        c.compress(raw).ok()
    })
}

/// Runs `f` with this thread's reused decompression context.
fn with_decompressor<R>(
    f: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<R>,
) -> std::io::Result<R> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => f(d),
            None => Err(std::io::ErrorKind::Other.into()),
        }
    })
}

/// Decodes one zstd frame (checking its content checksum) into a new buffer of `capacity` bytes.
fn zstd_decompress_vec(stored: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    with_decompressor(|d| d.decompress(stored, capacity))
}

/// Decodes one zstd frame (checking its content checksum) into `out`; returns the bytes written.
fn zstd_decompress_into(stored: &[u8], out: &mut [u8]) -> std::io::Result<usize> {
    with_decompressor(|d| d.decompress_to_buffer(stored, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let h = header(FRAME_SIZE);
        assert_eq!(&h[..8], MAGIC);
        assert_eq!(u16::from_le_bytes([h[8], h[9]]), 1);
        assert_eq!(&h[12..16], &FRAME_SIZE.to_le_bytes());
        assert!(h[10..12].iter().chain(&h[16..]).all(|&b| b == 0));
    }

    #[test]
    fn frames_roundtrip_and_damage_is_detected() {
        let raw: Vec<u8> = (0..FRAME_SIZE).map(|i| (i % 7) as u8).collect();
        let stored = compress_frame(raw.clone(), Some(3));
        assert_eq!(stored.codec, CODEC_ZSTD);
        let f = Frame {
            stored_offset: HEADER_LEN,
            stored_len: stored.bytes.len() as u32,
            raw_len: stored.raw_len,
            codec: stored.codec,
            checksum: stored.checksum,
        };
        check_stored(&f, 0, &stored.bytes, "o").unwrap();
        assert_eq!(decode_frame(&f, 0, &stored.bytes, "o").unwrap(), raw);
        let mut bad = stored.bytes.clone();
        bad[3] ^= 1;
        assert!(matches!(
            check_stored(&f, 0, &bad, "o"),
            Err(Error::ChecksumMismatch { .. })
        ));
        // Bytes that pass the xxh3 (it is recomputed) but not zstd's own checksum.
        assert!(decode_frame(&f, 0, &bad, "o").is_err());
    }
}
