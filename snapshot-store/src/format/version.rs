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
use crate::format::FormatVersion;
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
    /// The versions under `base` down to the first a chain can be rebuilt from (a full, a
    /// merged full or one with a map checkpoint), nearest first, as the writer knew them
    /// (format version 3): a hint that lets a reader fetch the chain's records at once rather
    /// than one base link after another. Empty for fulls, when `base` is such a version, and in
    /// records of older formats.
    pub lineage: Vec<VersionId>,
}

/// The most versions a record's lineage may name.
pub const LINEAGE_MAX: usize = 4096;

impl FileVersion {
    /// Bytes of memory this record holds (for cache accounting).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.ops.len() * std::mem::size_of::<DeltaOp>()
    }

    /// True for the versions a chain can be rebuilt from without their bases: fulls, merged
    /// fulls and versions with a map checkpoint.
    pub fn starts_a_map(&self) -> bool {
        self.kind.is_full() || self.map_checkpoint.is_some()
    }

    /// The lineage of a new delta whose base is `base`: `base`'s base and the versions under
    /// it (`base`'s own lineage), or none when `base` starts a map. Bounded by [`LINEAGE_MAX`].
    pub fn lineage_above(base: &FileVersion) -> Vec<VersionId> {
        match (base.starts_a_map(), base.base) {
            (false, Some(b)) => std::iter::once(b)
                .chain(base.lineage.iter().copied())
                .take(LINEAGE_MAX)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The format version whose layout the record has: 3 with a lineage, 2 for a merged full,
    /// else 1.
    pub fn format_version(&self) -> FormatVersion {
        if !self.lineage.is_empty() {
            FormatVersion::V3
        } else if self.kind == VersionKind::Merged {
            FormatVersion::V2
        } else {
            FormatVersion::V1
        }
    }

    /// Encodes the record's payload, in the layout of [`FileVersion::format_version`].
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
        if !self.lineage.is_empty() {
            e.varint(self.lineage.len() as u64);
            for id in &self.lineage {
                e.version_id(id);
            }
        }
        e.into_bytes()
    }

    /// Decodes a record of format `format` (its envelope's version); `expected` is the id it is
    /// stored under, `what` names it in errors.
    pub fn decode(payload: &[u8], format: FormatVersion, expected: &VersionId, what: &str) -> Result<Self> {
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
        let mut lineage = Vec::new();
        if format >= FormatVersion::V3 {
            let n = d.varint()?;
            if n == 0 || n > LINEAGE_MAX as u64 || base.is_none() {
                return Err(d.error(format!("a lineage of {n} versions (1 to {LINEAGE_MAX}, deltas only)")));
            }
            for _ in 0..n {
                let v = d.version_id()?;
                if v == id || Some(v) == base {
                    return Err(d.error("its lineage names the version itself or its base"));
                }
                lineage.push(v);
            }
        }
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
            lineage,
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
            lineage: Vec::new(),
        }
    }

    /// Decodes `v`'s payload as its envelope would say.
    fn roundtrip(v: &FileVersion) -> Result<FileVersion> {
        FileVersion::decode(&v.encode(), v.format_version(), &v.id, "v")
    }

    #[test]
    fn roundtrip_and_id_check() {
        let v = sample();
        let p = v.encode();
        assert_eq!(FileVersion::decode(&p, v.format_version(), &v.id, "v").unwrap(), v);
        assert!(FileVersion::decode(&p, v.format_version(), &VersionId([9; 32]), "v").is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            for format in [FormatVersion::V1, FormatVersion::V2, FormatVersion::V3] {
                let _ = FileVersion::decode(&data, format, &VersionId([1; 32]), "g");
            }
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
        assert_eq!(
            FileVersion::decode(&p, merged.format_version(), &merged.id, "m").unwrap(),
            merged
        );
        for cut in 0..p.len() {
            assert!(
                FileVersion::decode(&p[..cut], merged.format_version(), &merged.id, "m").is_err(),
                "cut {cut}"
            );
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
            assert!(
                FileVersion::decode(&b.encode(), b.format_version(), &b.id, "m").is_err(),
                "{b:?}"
            );
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
        let with_lineage = FileVersion {
            lineage: vec![VersionId([7; 32]), VersionId([2; 32])],
            ..sample()
        };
        for v in [sample(), full, with_lineage] {
            let p = v.encode();
            assert_eq!(FileVersion::decode(&p, v.format_version(), &v.id, "t").unwrap(), v);
            for cut in 0..p.len() {
                let r = FileVersion::decode(&p[..cut], v.format_version(), &v.id, "t");
                assert!(matches!(r, Err(crate::Error::Corrupt { .. })), "cut {cut}: {r:?}");
            }
        }
    }

    #[test]
    fn a_lineage_is_format_3_and_checked() {
        let v = FileVersion {
            lineage: vec![VersionId([7; 32]), VersionId([2; 32])],
            ..sample()
        };
        assert_eq!(v.format_version(), FormatVersion::V3);
        assert_eq!(sample().format_version(), FormatVersion::V1);
        assert_eq!(roundtrip(&v).unwrap(), v);
        // The same payload read as an older format has bytes left over; a version-1 payload
        // read as version 3 lacks its lineage.
        assert!(FileVersion::decode(&v.encode(), FormatVersion::V2, &v.id, "v").is_err());
        assert!(FileVersion::decode(&sample().encode(), FormatVersion::V3, &v.id, "v").is_err());
        for bad in [
            vec![v.id],
            vec![VersionId([3; 32])],
            vec![VersionId([5; 32]); LINEAGE_MAX + 1],
        ] {
            let b = FileVersion {
                lineage: bad,
                ..v.clone()
            };
            assert!(roundtrip(&b).is_err(), "{:?}", &b.lineage[..1]);
        }
        // A full has none: its payload read as version 3 is refused.
        let full = FileVersion {
            kind: VersionKind::Full,
            depth: 0,
            deltas_since_full: 0,
            full: VersionId([1; 32]),
            base: None,
            ops: vec![DeltaOp::Literal { len: 30 }],
            ..sample()
        };
        let mut p = full.encode();
        p.push(1);
        p.extend_from_slice(&[7; 32]);
        assert!(FileVersion::decode(&p, FormatVersion::V3, &full.id, "f").is_err());
    }

    #[test]
    fn the_lineage_of_a_new_delta_reaches_down_to_where_a_map_starts() {
        let id = |n: u8| VersionId([n; 32]);
        let full = FileVersion {
            id: id(10),
            kind: VersionKind::Full,
            depth: 0,
            base: None,
            ..sample()
        };
        let d1 = FileVersion {
            id: id(11),
            depth: 1,
            base: Some(id(10)),
            ..sample()
        };
        assert_eq!(
            FileVersion::lineage_above(&full),
            vec![],
            "a delta on a full needs none"
        );
        let l2 = FileVersion::lineage_above(&d1);
        assert_eq!(l2, vec![id(10)]);
        let d2 = FileVersion {
            id: id(12),
            depth: 2,
            base: Some(id(11)),
            lineage: l2,
            ..sample()
        };
        assert_eq!(FileVersion::lineage_above(&d2), vec![id(11), id(10)]);
        let checkpointed = FileVersion {
            map_checkpoint: Some(ObjectId([9; 32])),
            ..d2.clone()
        };
        assert_eq!(
            FileVersion::lineage_above(&checkpointed),
            vec![],
            "a checkpoint starts a map"
        );
        let old = FileVersion {
            lineage: Vec::new(),
            ..d2
        };
        assert_eq!(
            FileVersion::lineage_above(&old),
            vec![id(11)],
            "an older record gives what it can"
        );
    }
}
