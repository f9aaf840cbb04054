//! The envelope shared by every metadata file kind: magic, format version, payload, checksum.
//!
//! ```text
//! offset  size  field
//! 0       8     magic: "BKFS" + 4-byte kind tag ("conf", "snap", "vers", "sign", "xmap", "tree", "refs")
//! 8       2     format version, u16 LE (see `FormatVersion`)
//! 10      1     payload codec: 0 = stored as is, 1 = one zstd frame (hash trees: always 0)
//! 11      5     reserved, zero
//! 16      8     decoded payload length, u64 LE
//! 24      n     payload as stored
//! 24+n    32    blake3 of bytes [0, 24+n)
//! ```
//!
//! Data objects (file contents) have their own framed layout, see `format::object`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use super::codec::Decoder;
use super::{FormatVersion, magic};
use crate::error::{Error, Result};

const HEADER_LEN: usize = 24;
const CHECKSUM_LEN: usize = 32;
/// Payloads smaller than this are not worth compressing.
const COMPRESS_MIN: usize = 128;
/// The largest decoded payload a reader accepts (guards allocation on a damaged length field).
const MAX_PAYLOAD: u64 = 1 << 36;

/// The metadata file kinds, each with its magic bytes (see [`magic`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The store's configuration (`config`).
    Config,
    /// A snapshot manifest (`snapshots/<id>`).
    Snapshot,
    /// A file version record (`versions/<xx>/<id>`).
    Version,
    /// A signature object (`objects/<xx>/<id>`).
    Signature,
    /// A flattened extent-map checkpoint object (`objects/<xx>/<id>`).
    ExtentMap,
    /// A content hash tree object (`objects/<xx>/<id>`).
    HashTree,
    /// The reflink reference table of a source (`tracking/<key>.refs`).
    RefTable,
    /// Prune's list of files waiting for deletion (`prune/condemned`).
    Condemned,
}

impl Kind {
    /// The 8 magic bytes that start every file of this kind.
    pub const fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Config => magic::CONFIG,
            Kind::Snapshot => magic::SNAPSHOT,
            Kind::Version => magic::VERSION,
            Kind::Signature => magic::SIGNATURE,
            Kind::ExtentMap => magic::EXTENT_MAP,
            Kind::HashTree => magic::HASH_TREE,
            Kind::RefTable => magic::REF_TABLE,
            Kind::Condemned => magic::CONDEMNED,
        }
    }

    /// What to call a file of this kind in messages.
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Config => "store config",
            Kind::Snapshot => "snapshot",
            Kind::Version => "file version",
            Kind::Signature => "signature object",
            Kind::ExtentMap => "extent-map object",
            Kind::HashTree => "hash-tree object",
            Kind::RefTable => "reference table",
            Kind::Condemned => "condemned list",
        }
    }
}

/// Wraps `payload` in an envelope of `kind` marked format version 1 (every kind whose layout
/// version 1 defines), zstd-compressing it when that makes it smaller.
pub fn seal(kind: Kind, payload: &[u8]) -> Vec<u8> {
    seal_as(kind, FormatVersion::V1, payload)
}

/// [`seal`] for a payload of a layout that format `version` introduced.
pub fn seal_as(kind: Kind, version: FormatVersion, payload: &[u8]) -> Vec<u8> {
    // Hash trees are read piecemeal at fixed offsets (and chaining values do not compress).
    let compressed = if payload.len() >= COMPRESS_MIN && kind != Kind::HashTree {
        zstd::bulk::compress(payload, 3)
            .ok()
            .filter(|c| c.len() < payload.len())
    } else {
        None
    };
    let (codec, stored) = match &compressed {
        Some(c) => (1u8, c.as_slice()),
        None => (0u8, payload),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + stored.len() + CHECKSUM_LEN);
    out.extend_from_slice(kind.magic());
    out.extend_from_slice(&version.number().to_le_bytes());
    out.push(codec);
    out.extend_from_slice(&[0u8; 5]);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(stored);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Reads and checks the magic of `kind` and a supported format version.
fn check_magic_and_version(kind: Kind, d: &mut Decoder<'_>, len: usize, what: &str) -> Result<FormatVersion> {
    let magic = d.take(8).map_err(|_| truncated(kind, what, len))?;
    if magic != kind.magic() {
        return Err(Error::corrupt(
            what,
            format!("not a {} (bad magic {:?})", kind.noun(), String::from_utf8_lossy(magic)),
        ));
    }
    let version = d.u16().map_err(|_| truncated(kind, what, len))?;
    FormatVersion::check(version, what)
}

/// Bytes before an envelope's payload.
pub const PAYLOAD_OFFSET: u64 = HEADER_LEN as u64;

/// Checks the header of an uncompressed envelope read piecemeal (the checksum, which covers the
/// whole file, is not checked: the caller checks what it reads otherwise) and returns the payload
/// length, which must fill the file of `file_len` bytes.
pub fn open_header(kind: Kind, header: &[u8], file_len: u64, what: &str) -> Result<u64> {
    let mut d = Decoder::new(header, what);
    check_magic_and_version(kind, &mut d, header.len(), what)?;
    let codec = d.u8().map_err(|_| truncated(kind, what, header.len()))?;
    if codec != 0 {
        return Err(Error::corrupt(
            what,
            format!("payload codec {codec}, expected 0 (uncompressed)"),
        ));
    }
    if d.take(5)
        .map_err(|_| truncated(kind, what, header.len()))?
        .iter()
        .any(|&b| b != 0)
    {
        return Err(d.error("reserved header bytes are not zero"));
    }
    let raw_len = d.u64().map_err(|_| truncated(kind, what, header.len()))?;
    if raw_len.checked_add((HEADER_LEN + CHECKSUM_LEN) as u64) != Some(file_len) {
        return Err(Error::corrupt(
            what,
            format!("payload length {raw_len} does not fill the file ({file_len} bytes)"),
        ));
    }
    Ok(raw_len)
}

/// Checks magic, version and checksum of an envelope of `kind` and returns its decoded payload.
/// `what` names the file in errors.
pub fn open(kind: Kind, bytes: &[u8], what: &str) -> Result<Vec<u8>> {
    open_versioned(kind, bytes, what).map(|(_, payload)| payload)
}

/// [`open`], also returning the format version the file says.
pub fn open_versioned(kind: Kind, bytes: &[u8], what: &str) -> Result<(FormatVersion, Vec<u8>)> {
    let mut d = Decoder::new(bytes, what);
    let version = check_magic_and_version(kind, &mut d, bytes.len(), what)?;
    if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
        return Err(truncated(kind, what, bytes.len()));
    }
    let body_end = bytes.len() - CHECKSUM_LEN;
    let (body, sum) = bytes.split_at(body_end);
    let got = blake3::hash(body);
    if got.as_bytes() != sum {
        return Err(Error::ChecksumMismatch {
            what: what.to_string(),
            expected: hex8(sum),
            got: hex8(got.as_bytes()),
        });
    }
    let codec = d.u8()?;
    if d.take(5)?.iter().any(|&b| b != 0) {
        return Err(d.error("reserved header bytes are not zero"));
    }
    let raw_len = d.u64()?;
    if raw_len > MAX_PAYLOAD {
        return Err(d.error(format!("payload length {raw_len} is implausible")));
    }
    let stored = body.get(HEADER_LEN..).unwrap_or_default();
    match codec {
        0 => {
            if stored.len() as u64 != raw_len {
                return Err(d.error("stored payload length disagrees with header"));
            }
            Ok((version, stored.to_vec()))
        }
        1 => {
            let out = zstd::bulk::decompress(stored, raw_len as usize)
                .map_err(|e| Error::corrupt(what, format!("payload does not decompress: {e}")))?;
            if out.len() as u64 != raw_len {
                return Err(Error::corrupt(what, "decompressed payload has the wrong length"));
            }
            Ok((version, out))
        }
        other => Err(Error::corrupt(what, format!("unknown payload codec {other}"))),
    }
}

fn truncated(kind: Kind, what: &str, len: usize) -> Error {
    Error::corrupt(what, format!("truncated {} ({len} bytes)", kind.noun()))
}

/// The first 8 hex digits of a checksum, for messages.
pub(crate) fn hex8(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip_small_and_large() {
        for payload in [b"hi".to_vec(), vec![7u8; 10_000]] {
            let sealed = seal(Kind::Snapshot, &payload);
            assert_eq!(open(Kind::Snapshot, &sealed, "s").unwrap(), payload);
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let payload: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
        let sealed = seal(Kind::Version, &payload);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            let err = open(Kind::Version, &bad, "version X").unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::ChecksumMismatch { .. } | Error::Corrupt { .. } | Error::UnsupportedVersion { .. }
                ),
                "byte {i}: {err:?}"
            );
        }
    }

    #[test]
    fn newer_version_is_refused_clearly() {
        let mut sealed = seal(Kind::Config, b"x");
        sealed[8] = 9;
        let err = open(Kind::Config, &sealed, "config").unwrap_err();
        assert!(matches!(err, Error::UnsupportedVersion { found: 9, .. }), "{err:?}");
        assert!(err.to_string().contains("upgrade"));
    }

    #[test]
    fn wrong_kind_is_refused() {
        let sealed = seal(Kind::Config, b"x");
        assert!(open(Kind::Snapshot, &sealed, "s").is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data: Vec<u8>) {
            let _ = open(Kind::Signature, &data, "g");
        }

        #[test]
        fn truncation_is_an_error(payload: Vec<u8>, cut in 0usize..1000) {
            let sealed = seal(Kind::ExtentMap, &payload);
            let cut = cut.min(sealed.len().saturating_sub(1));
            prop_assert!(open(Kind::ExtentMap, &sealed[..cut], "t").is_err());
        }
    }
}
