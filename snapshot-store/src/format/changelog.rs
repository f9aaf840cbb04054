//! The bytes of the change log written by `backup-fs track`: epoch headers, hash-chained
//! records and cut points (see `tracking::changelog` for the files and the proof of
//! completeness).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::{Error, Result};
use crate::format::codec::{Decoder, Encoder};
use crate::format::{FormatVersion, magic};

/// Magic of an epoch file.
pub const MAGIC: &[u8; 8] = magic::CHANGE_LOG;
/// Bytes of an epoch file's header.
pub const HEADER_LEN: usize = 96;
/// Bytes of one record.
pub const RECORD_LEN: usize = 96;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// Bytes `offset..offset + length` may have changed.
    Range,
    /// The whole file may have changed.
    Whole,
    /// Everything from `offset` to the end may have changed.
    FromOffset,
    /// Changes may have been missed (queue overflow, tracker stopping): nothing in this epoch
    /// or earlier can be trusted.
    Taint,
    /// The end of the epoch: a writer is about to read.
    Cut,
}

impl RecordKind {
    fn code(self) -> u8 {
        match self {
            RecordKind::Range => 1,
            RecordKind::Whole => 2,
            RecordKind::FromOffset => 3,
            RecordKind::Taint => 4,
            RecordKind::Cut => 5,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => RecordKind::Range,
            2 => RecordKind::Whole,
            3 => RecordKind::FromOffset,
            4 => RecordKind::Taint,
            5 => RecordKind::Cut,
            _ => return None,
        })
    }
}

/// The identity of a tracked file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FileKey {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Inode generation where the filesystem has one (else 0).
    pub generation: u32,
    /// Birth time, ns since the epoch (else 0).
    pub btime_ns: i64,
}

/// One record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Sequence number (consecutive over the whole session).
    pub seq: u64,
    /// What it says.
    pub kind: RecordKind,
    /// The file (zero for taints and cuts).
    pub file: FileKey,
    /// Offset.
    pub offset: u64,
    /// Length (ranges).
    pub length: u64,
}

/// An epoch file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochHeader {
    /// `/proc/sys/kernel/random/boot_id` when the tracker started.
    pub boot: [u8; 16],
    /// Random id of the tracker run.
    pub session: [u8; 16],
    /// Epoch number (consecutive within a session, from 0).
    pub epoch: u64,
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// Hash the chain continues from (the previous epoch's last hash; zeros for epoch 0).
    pub prev_hash: [u8; 32],
}

impl EpochHeader {
    /// Encodes the header (fixed length).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.raw(MAGIC);
        e.u16(FormatVersion::V1.number());
        e.raw(&[0u8; 6]);
        e.raw(&self.boot);
        e.raw(&self.session);
        e.u64(self.epoch);
        e.u64(self.first_seq);
        e.raw(&self.prev_hash);
        let mut b = e.into_bytes();
        b.resize(HEADER_LEN, 0);
        b
    }

    /// Decodes a header (its first [`HEADER_LEN`] bytes); `what` names the file in errors.
    pub fn decode(bytes: &[u8], what: &str) -> Result<EpochHeader> {
        let mut d = Decoder::new(bytes, what);
        if d.take(8)? != MAGIC {
            return Err(d.error("not a change log (bad magic)"));
        }
        FormatVersion::check(d.u16()?, what)?;
        d.take(6)?;
        let mut boot = [0u8; 16];
        boot.copy_from_slice(d.take(16)?);
        let mut session = [0u8; 16];
        session.copy_from_slice(d.take(16)?);
        let epoch = d.u64()?;
        let first_seq = d.u64()?;
        let mut prev_hash = [0u8; 32];
        prev_hash.copy_from_slice(d.take(32)?);
        Ok(EpochHeader {
            boot,
            session,
            epoch,
            first_seq,
            prev_hash,
        })
    }
}

/// Encodes `r` chained to `prev` (the previous record's hash); returns the bytes and the new hash.
pub fn encode_record(r: &Record, prev: &[u8; 32]) -> (Vec<u8>, [u8; 32]) {
    let mut e = Encoder::new();
    e.u64(r.seq);
    e.u8(r.kind.code());
    e.raw(&[0u8; 3]);
    e.u32(r.file.generation);
    e.u64(r.file.dev);
    e.u64(r.file.ino);
    e.i64(r.file.btime_ns);
    e.u64(r.offset);
    e.u64(r.length);
    e.raw(&[0u8; 8]);
    let body = e.into_bytes();
    debug_assert_eq!(body.len() + 32, RECORD_LEN);
    let hash: [u8; 32] = *blake3::Hasher::new().update(prev).update(&body).finalize().as_bytes();
    let mut out = body;
    out.extend_from_slice(&hash);
    (out, hash)
}

/// Decodes one record chained to `prev`, checking its hash; returns it with its hash.
pub fn decode_record(bytes: &[u8], prev: &[u8; 32], what: &str) -> Result<(Record, [u8; 32])> {
    let mut d = Decoder::new(bytes, what);
    let body = bytes.get(..RECORD_LEN - 32).unwrap_or_default();
    let seq = d.u64()?;
    let kind = RecordKind::from_code(d.u8()?).ok_or_else(|| d.error("unknown record kind"))?;
    d.take(3)?;
    let generation = d.u32()?;
    let file = FileKey {
        dev: d.u64()?,
        ino: d.u64()?,
        generation,
        btime_ns: d.i64()?,
    };
    let offset = d.u64()?;
    let length = d.u64()?;
    d.take(8)?;
    let stored = d.take(32)?;
    let hash: [u8; 32] = *blake3::Hasher::new().update(prev).update(body).finalize().as_bytes();
    if stored != hash {
        return Err(Error::corrupt(what, format!("hash chain broken at record {seq}")));
    }
    Ok((
        Record {
            seq,
            kind,
            file,
            offset,
            length,
        },
        hash,
    ))
}

/// Where one epoch ended: what the next writer proves continuity from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutPoint {
    /// Boot of the tracker run.
    pub boot: [u8; 16],
    /// The tracker run.
    pub session: [u8; 16],
    /// The epoch the cut ended.
    pub epoch: u64,
    /// Sequence number of the cut record.
    pub seq: u64,
    /// Hash of the cut record.
    pub hash: [u8; 32],
}

impl CutPoint {
    /// Encodes as text (for the tracker's socket and the state file).
    pub fn to_text(&self) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        format!(
            "{} {} {} {} {}",
            hex(&self.boot),
            hex(&self.session),
            self.epoch,
            self.seq,
            hex(&self.hash)
        )
    }

    /// Parses [`CutPoint::to_text`].
    pub fn from_text(s: &str) -> Option<CutPoint> {
        let mut it = s.split_whitespace();
        let mut bytes = |n: usize| -> Option<Vec<u8>> {
            let t = it.next()?;
            if t.len() != 2 * n {
                return None;
            }
            (0..n)
                .map(|i| u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok())
                .collect()
        };
        let boot: [u8; 16] = bytes(16)?.try_into().ok()?;
        let session: [u8; 16] = bytes(16)?.try_into().ok()?;
        let epoch = it.next()?.parse().ok()?;
        let seq = it.next()?.parse().ok()?;
        let t = it.next()?;
        let hash: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        Some(CutPoint {
            boot,
            session,
            epoch,
            seq,
            hash: hash.try_into().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_chain_and_headers_roundtrip() {
        let r = Record {
            seq: 7,
            kind: RecordKind::Range,
            file: FileKey {
                dev: 1,
                ino: 2,
                generation: 3,
                btime_ns: 4,
            },
            offset: 4096,
            length: 100,
        };
        let (bytes, h) = encode_record(&r, &[9; 32]);
        assert_eq!(bytes.len(), RECORD_LEN);
        assert_eq!(decode_record(&bytes, &[9; 32], "r").unwrap(), (r, h));
        assert!(decode_record(&bytes, &[8; 32], "r").is_err(), "another chain");
        let header = EpochHeader {
            boot: [1; 16],
            session: [2; 16],
            epoch: 3,
            first_seq: 4,
            prev_hash: [5; 32],
        };
        let b = header.encode();
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(EpochHeader::decode(&b, "h").unwrap(), header);
        let mut newer = b.clone();
        newer[8] = 9;
        assert!(matches!(
            EpochHeader::decode(&newer, "h"),
            Err(Error::UnsupportedVersion { .. })
        ));
        let cut = CutPoint {
            boot: [1; 16],
            session: [2; 16],
            epoch: 3,
            seq: 4,
            hash: [5; 32],
        };
        assert_eq!(CutPoint::from_text(&cut.to_text()), Some(cut));
        assert_eq!(CutPoint::from_text("1 2 3"), None);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data: Vec<u8>, text: String) {
            let _ = EpochHeader::decode(&data, "g");
            let _ = decode_record(&data, &[0; 32], "g");
            let _ = CutPoint::from_text(&text);
        }
    }
}
