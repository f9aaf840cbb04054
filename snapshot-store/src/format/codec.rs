//! Little-endian and LEB128 encoding primitives for every on-disk structure.
//!
//! [`Encoder`] appends to a byte vector; [`Decoder`] reads from a slice and returns
//! [`Error::Corrupt`] naming the structure on any truncation or out-of-range value. Decoding never
//! panics, whatever the input (see the property tests).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::{Error, Result};
use crate::id::{ObjectId, VersionId};

/// Appends encoded values to a buffer.
#[derive(Default, Debug, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes encoded so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// Little-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Little-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Little-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Little-endian i64.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Unsigned LEB128.
    pub fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    /// Signed value as zigzag LEB128.
    pub fn varint_signed(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Raw bytes, no length.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Varint length followed by the bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.buf.extend_from_slice(bytes);
    }

    /// A UTF-8 string as [`Encoder::bytes`].
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// 32 raw bytes.
    pub fn object_id(&mut self, id: &ObjectId) {
        self.buf.extend_from_slice(&id.0);
    }

    /// 32 raw bytes.
    pub fn version_id(&mut self, id: &VersionId) {
        self.buf.extend_from_slice(&id.0);
    }
}

/// Reads encoded values from a slice, naming `what` in every error.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'a str,
}

impl<'a> Decoder<'a> {
    /// Starts reading `data`; errors name `what` (e.g. "snapshot 2026-11-22T07-15-03Z").
    pub fn new(data: &'a [u8], what: &'a str) -> Self {
        Decoder { data, pos: 0, what }
    }

    /// An error naming this structure.
    pub fn error(&self, reason: impl Into<String>) -> Error {
        Error::corrupt(self.what, format!("{} (at byte {})", reason.into(), self.pos))
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.error(format!("{} unexpected trailing bytes", self.remaining())))
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| self.error(format!("truncated: needs {n} more bytes")))?;
        let out = self.data.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// Little-endian u16.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Little-endian u32.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Little-endian u64.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Little-endian i64.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// Unsigned LEB128 of at most 10 bytes that fits in u64.
    pub fn varint(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = self.u8()?;
            let part = u64::from(byte & 0x7f);
            if shift == 63 && part > 1 {
                return Err(self.error("varint overflows 64 bits"));
            }
            value |= part << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// A varint that must fit in `u32`.
    pub fn varint_u32(&mut self) -> Result<u32> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.error(format!("value {v} out of range")))
    }

    /// A varint used as a count or length of items still to come; bounded by the bytes left so
    /// that a corrupt count cannot make a caller allocate without limit.
    pub fn count(&mut self, min_item_size: usize) -> Result<usize> {
        let v = self.varint()?;
        let n = usize::try_from(v).map_err(|_| self.error(format!("count {v} out of range")))?;
        if n.saturating_mul(min_item_size.max(1)) > self.remaining() {
            return Err(self.error(format!("count {n} exceeds the data left")));
        }
        Ok(n)
    }

    /// Signed zigzag varint.
    pub fn varint_signed(&mut self) -> Result<i64> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Varint length then that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.count(1)?;
        self.take(n)
    }

    /// A UTF-8 string written by [`Encoder::str`].
    pub fn str(&mut self) -> Result<&'a str> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.error("string is not UTF-8"))
    }

    /// 32 raw bytes as an object id.
    pub fn object_id(&mut self) -> Result<ObjectId> {
        Ok(ObjectId(self.array()?))
    }

    /// 32 raw bytes as a version id.
    pub fn version_id(&mut self) -> Result<VersionId> {
        Ok(VersionId(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_roundtrip(v: u64, s: i64) {
            let mut e = Encoder::new();
            e.varint(v);
            e.varint_signed(s);
            let bytes = e.into_bytes();
            let mut d = Decoder::new(&bytes, "test");
            prop_assert_eq!(d.varint().unwrap(), v);
            prop_assert_eq!(d.varint_signed().unwrap(), s);
            prop_assert!(d.finish().is_ok());
        }

        #[test]
        fn decoding_garbage_never_panics(data: Vec<u8>) {
            let mut d = Decoder::new(&data, "garbage");
            let _ = d.varint();
            let _ = d.bytes();
            let _ = d.u64();
            let _ = d.str();
            let _ = d.count(8);
            let _ = d.object_id();
        }
    }

    #[test]
    fn truncation_is_an_error_naming_the_structure() {
        let mut d = Decoder::new(&[1, 2, 3], "snapshot X");
        let err = d.u64().unwrap_err();
        assert!(err.to_string().contains("snapshot X"), "{err}");
        let mut d = Decoder::new(&[0xff; 11], "v");
        assert!(d.varint().is_err());
        let mut d = Decoder::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], "v");
        assert!(d.varint().is_err(), "bit 64 set must overflow");
    }

    #[test]
    fn huge_count_is_rejected_before_allocation() {
        let mut e = Encoder::new();
        e.varint(u64::MAX / 2);
        let b = e.into_bytes();
        assert!(Decoder::new(&b, "x").count(1).is_err());
    }
}
