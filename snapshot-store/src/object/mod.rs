//! Data objects: a byte stream (a whole small file, a full version's non-hole data, or a delta's
//! literal bytes) stored as independently compressed frames with an index, so that a read at any
//! offset decompresses at most one frame.
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
//! The object's id is the blake3 of its logical stream; `verify --read-data` checks it. Every read
//! checks the frame's stored bytes against the index's xxh3, and zstd frames carry zstd's own
//! content checksum of the decoded bytes, so a damaged frame is an error, never wrong bytes.

mod reader;
mod writer;

pub use reader::{Access, DataObject, Frame};
pub use writer::{DataObjectWriter, FinishedObject};

/// Magic at the start of a data object. On disk: do not modify.
pub const MAGIC: &[u8; 8] = b"BKFSdata";
/// Magic at the end of a data object. On disk: do not modify.
pub const END_MAGIC: &[u8; 8] = b"BKFSdEND";
/// Bytes before the first frame.
pub const HEADER_LEN: u64 = 32;
/// Bytes of one index entry.
pub const INDEX_ENTRY_LEN: u64 = 17;
/// Bytes of the trailer.
pub const TRAILER_LEN: u64 = 64;
/// Uncompressed bytes per frame written by this build.
pub const FRAME_SIZE: u32 = 32 << 10;
/// Codec value of a frame stored as is.
pub const CODEC_RAW: u8 = 0;
/// Codec value of a frame stored as one zstd frame.
pub const CODEC_ZSTD: u8 = 1;

/// The 32-byte header of a data object with frames of `frame_size` bytes.
pub(crate) fn header(frame_size: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..10].copy_from_slice(&crate::envelope::FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&frame_size.to_le_bytes());
    h
}
