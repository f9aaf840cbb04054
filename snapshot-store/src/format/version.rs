//! File version records: one state of one file, its place in a chain, and how to rebuild it.
//!
//! A record is named by its [`VersionId`] (the blake3 of the file's content), stored at
//! `versions/<first two hex digits>/<id>`. Deltas reference their base *version*, not physical
//! objects, so that delta merging can store a version as a *merged full* (its content an extent
//! map over existing data objects, format version 2) under the same id, and every version that
//! uses it as a base still reads the same bytes.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::fmt;

use crate::error::Result;
use crate::format::codec::{Decoder, Encoder};
use crate::format::delta::{DeltaOp, decode_ops, encode_ops};
use crate::id::{ObjectId, VersionId};

/// How a version is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionKind {
    /// Complete: literal data and holes only.
    Full,
    /// A delta against the previous version of the file.
    Incremental,
    /// A delta against the chain's full version.
    Differential,
    /// A full made by delta merging (format version 2): no ops; its content is its extent map
    /// (`map_checkpoint`) over data objects of the chain it replaced.
    Merged,
}

impl VersionKind {
    fn code(self) -> u8 {
        match self {
            VersionKind::Full => 0,
            VersionKind::Incremental => 1,
            VersionKind::Differential => 2,
            VersionKind::Merged => 3,
        }
    }

    /// The name used in output: `full`, `incremental`, `differential`, `merged`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionKind::Full => "full",
            VersionKind::Incremental => "incremental",
            VersionKind::Differential => "differential",
            VersionKind::Merged => "merged",
        }
    }

    /// True for the kinds that start a chain (no base).
    pub fn is_full(self) -> bool {
        matches!(self, VersionKind::Full | VersionKind::Merged)
    }
}

impl fmt::Display for VersionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One file version of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    /// blake3 of the whole content.
    pub id: VersionId,
    /// Size in bytes.
    pub size: u64,
    /// Full or delta kind.
    pub kind: VersionKind,
    /// Number of base links to follow to reach the full (0 for a full, 1 for a differential).
    pub depth: u32,
    /// Deltas written since the chain's full, this one included (the "No. of delta" counter).
    pub deltas_since_full: u32,
    /// The chain's full version (this version's own id for a full).
    pub full: VersionId,
    /// The version the ops' copies refer to (deltas only).
    pub base: Option<VersionId>,
    /// The signature object of this version.
    pub signature: ObjectId,
    /// Block size of the signature.
    pub block_size: u32,
    /// The data object holding the literal bytes, if any.
    pub literal: Option<ObjectId>,
    /// The ops covering the version.
    pub ops: Vec<DeltaOp>,
    /// A stored flattened extent map of this version, if one was checkpointed.
    pub map_checkpoint: Option<ObjectId>,
    /// The version's content hash tree (written when change tracking is on), which lets the next
    /// change-tracked version get its id without reading unchanged data.
    pub hash_tree: Option<ObjectId>,
    /// Stored (compressed) bytes of the literal object.
    pub literal_stored: u64,
    /// Bytes this version added to the store when written (objects it created).
    pub stored_bytes: u64,
    /// When it was written, nanoseconds since the Unix epoch.
    pub time_ns: i64,
}

impl FileVersion {
    /// Bytes of memory this record holds (for cache accounting).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.ops.len() * std::mem::size_of::<DeltaOp>()
    }

    /// Encodes the record's payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.version_id(&self.id);
        e.u64(self.size);
        e.u8(self.kind.code());
        e.u32(self.depth);
        e.u32(self.deltas_since_full);
        e.version_id(&self.full);
        opt_version(&mut e, self.base.as_ref());
        e.object_id(&self.signature);
        e.u32(self.block_size);
        opt_object(&mut e, self.literal.as_ref());
        opt_object(&mut e, self.map_checkpoint.as_ref());
        opt_object(&mut e, self.hash_tree.as_ref());
        e.u64(self.literal_stored);
        e.u64(self.stored_bytes);
        e.i64(self.time_ns);
        encode_ops(&self.ops, &mut e);
        e.into_bytes()
    }

    /// Decodes a record; `expected` is the id it is stored under, `what` names it in errors.
    pub fn decode(payload: &[u8], expected: &VersionId, what: &str) -> Result<Self> {
        let mut d = Decoder::new(payload, what);
        let id = d.version_id()?;
        if id != *expected {
            return Err(d.error(format!("record is for version {}", id.short())));
        }
        let size = d.u64()?;
        let kind = match d.u8()? {
            0 => VersionKind::Full,
            1 => VersionKind::Incremental,
            2 => VersionKind::Differential,
            3 => VersionKind::Merged,
            k => return Err(d.error(format!("unknown version kind {k}"))),
        };
        let depth = d.u32()?;
        let deltas_since_full = d.u32()?;
        let full = d.version_id()?;
        let base = read_opt(&mut d, |d| d.version_id())?;
        let signature = d.object_id()?;
        let block_size = d.u32()?;
        let literal = read_opt(&mut d, |d| d.object_id())?;
        let map_checkpoint = read_opt(&mut d, |d| d.object_id())?;
        let hash_tree = read_opt(&mut d, |d| d.object_id())?;
        let literal_stored = d.u64()?;
        let stored_bytes = d.u64()?;
        let time_ns = d.i64()?;
        if kind.is_full() != base.is_none() || kind.is_full() != (depth == 0) {
            return Err(d.error("kind, base and depth disagree"));
        }
        if kind.is_full() && full != id {
            return Err(d.error("a full version must be its own chain's full"));
        }
        if kind == VersionKind::Merged && (map_checkpoint.is_none() || literal.is_some() || deltas_since_full != 0) {
            return Err(d.error("a merged full needs an extent map and has no literal data"));
        }
        let base_size = if base.is_some() { Some(u64::MAX) } else { None };
        // A merged full's content is its extent map: its op list is empty.
        let ops = if kind == VersionKind::Merged {
            if d.u8()? != 0 {
                return Err(d.error("a merged full has no ops"));
            }
            Vec::new()
        } else {
            decode_ops(&mut d, size, base_size)?
        };
        d.finish()?;
        Ok(FileVersion {
            id,
            size,
            kind,
            depth,
            deltas_since_full,
            full,
            base,
            signature,
            block_size,
            literal,
            ops,
            map_checkpoint,
            hash_tree,
            literal_stored,
            stored_bytes,
            time_ns,
        })
    }
}

fn opt_version(e: &mut Encoder, v: Option<&VersionId>) {
    match v {
        Some(id) => {
            e.u8(1);
            e.version_id(id);
        }
        None => e.u8(0),
    }
}

fn opt_object(e: &mut Encoder, v: Option<&ObjectId>) {
    match v {
        Some(id) => {
            e.u8(1);
            e.object_id(id);
        }
        None => e.u8(0),
    }
}

fn read_opt<'a, T>(d: &mut Decoder<'a>, f: impl FnOnce(&mut Decoder<'a>) -> Result<T>) -> Result<Option<T>> {
    match d.u8()? {
        0 => Ok(None),
        1 => f(d).map(Some),
        t => Err(d.error(format!("bad option flag {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> FileVersion {
        FileVersion {
            id: VersionId([1; 32]),
            size: 30,
            kind: VersionKind::Incremental,
            depth: 3,
            deltas_since_full: 3,
            full: VersionId([2; 32]),
            base: Some(VersionId([3; 32])),
            signature: ObjectId([4; 32]),
            block_size: 4096,
            literal: Some(ObjectId([5; 32])),
            ops: vec![
                DeltaOp::Copy {
                    base_offset: 7,
                    len: 20,
                },
                DeltaOp::Literal { len: 10 },
            ],
            map_checkpoint: None,
            hash_tree: Some(ObjectId([6; 32])),
            literal_stored: 9,
            stored_bytes: 100,
            time_ns: 1_700_000_000_000_000_000,
        }
    }

    #[test]
    fn roundtrip_and_id_check() {
        let v = sample();
        let p = v.encode();
        assert_eq!(FileVersion::decode(&p, &v.id, "v").unwrap(), v);
        assert!(FileVersion::decode(&p, &VersionId([9; 32]), "v").is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let _ = FileVersion::decode(&data, &VersionId([1; 32]), "g");
        }

    }

    #[test]
    fn a_merged_full_has_a_map_and_no_ops() {
        let merged = FileVersion {
            kind: VersionKind::Merged,
            depth: 0,
            deltas_since_full: 0,
            full: VersionId([1; 32]),
            base: None,
            literal: None,
            ops: Vec::new(),
            map_checkpoint: Some(ObjectId([8; 32])),
            ..sample()
        };
        let p = merged.encode();
        assert_eq!(FileVersion::decode(&p, &merged.id, "m").unwrap(), merged);
        for cut in 0..p.len() {
            assert!(FileVersion::decode(&p[..cut], &merged.id, "m").is_err(), "cut {cut}");
        }
        let bad = [
            FileVersion {
                map_checkpoint: None,
                ..merged.clone()
            },
            FileVersion {
                literal: Some(ObjectId([5; 32])),
                ..merged.clone()
            },
            FileVersion {
                ops: vec![DeltaOp::Literal { len: 30 }],
                ..merged.clone()
            },
            FileVersion {
                base: Some(VersionId([3; 32])),
                depth: 1,
                ..merged.clone()
            },
        ];
        for b in bad {
            assert!(FileVersion::decode(&b.encode(), &b.id, "m").is_err(), "{b:?}");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let full = FileVersion {
            kind: VersionKind::Full,
            depth: 0,
            deltas_since_full: 0,
            full: VersionId([1; 32]),
            base: None,
            ops: vec![DeltaOp::Literal { len: 10 }, DeltaOp::Hole { len: 20 }],
            map_checkpoint: Some(ObjectId([8; 32])),
            ..sample()
        };
        for v in [sample(), full] {
            let p = v.encode();
            assert_eq!(FileVersion::decode(&p, &v.id, "t").unwrap(), v);
            for cut in 0..p.len() {
                let r = FileVersion::decode(&p[..cut], &v.id, "t");
                assert!(matches!(r, Err(crate::Error::Corrupt { .. })), "cut {cut}: {r:?}");
            }
        }
    }
}
