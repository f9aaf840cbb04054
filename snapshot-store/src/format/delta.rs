//! Delta op lists: how a new version's bytes map onto literal data and onto its base version.
//!
//! Ops cover the new version in order, without gaps. Each is a literal range (the next bytes of
//! the version's literal stream), a hole (zeros, nothing stored), or a copy of a range of the base
//! version at any offset (so insertions and deletions shift offsets for free). A full version is
//! the special case with no copies.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::Result;
use crate::format::codec::{Decoder, Encoder};

/// One op of a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOp {
    /// The next `len` bytes of this version's literal stream.
    Literal {
        /// Length in bytes.
        len: u64,
    },
    /// `len` zero bytes.
    Hole {
        /// Length in bytes.
        len: u64,
    },
    /// `len` bytes of the base version starting at `base_offset`.
    Copy {
        /// Offset in the base version.
        base_offset: u64,
        /// Length in bytes.
        len: u64,
    },
}

impl DeltaOp {
    /// Length of the range this op produces.
    pub fn len(&self) -> u64 {
        match *self {
            DeltaOp::Literal { len } | DeltaOp::Hole { len } | DeltaOp::Copy { len, .. } => len,
        }
    }

    /// True for a zero-length op (never stored).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends ops, merging neighbours that continue each other.
#[derive(Debug, Default, Clone)]
pub struct OpsBuilder {
    ops: Vec<DeltaOp>,
    total: u64,
}

impl OpsBuilder {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `op`, merged into the last op when contiguous.
    pub fn push(&mut self, op: DeltaOp) {
        if op.is_empty() {
            return;
        }
        self.total += op.len();
        if let Some(last) = self.ops.last_mut() {
            match (last, op) {
                (DeltaOp::Literal { len }, DeltaOp::Literal { len: more })
                | (DeltaOp::Hole { len }, DeltaOp::Hole { len: more }) => {
                    *len += more;
                    return;
                }
                (
                    DeltaOp::Copy { base_offset, len },
                    DeltaOp::Copy {
                        base_offset: next,
                        len: more,
                    },
                ) if *base_offset + *len == next => {
                    *len += more;
                    return;
                }
                _ => {}
            }
        }
        self.ops.push(op);
    }

    /// Total length covered so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The finished list.
    pub fn finish(self) -> Vec<DeltaOp> {
        self.ops
    }
}

const TAG_LITERAL: u64 = 0;
const TAG_HOLE: u64 = 1;
const TAG_COPY: u64 = 2;

/// Encodes ops: a count, then per op `varint(len << 2 | tag)`, and for a copy the zigzag varint
/// distance of its base offset from the end of the previous copy.
pub fn encode_ops(ops: &[DeltaOp], e: &mut Encoder) {
    e.varint(ops.len() as u64);
    let mut expected: u64 = 0;
    for op in ops {
        match *op {
            DeltaOp::Literal { len } => e.varint((len << 2) | TAG_LITERAL),
            DeltaOp::Hole { len } => e.varint((len << 2) | TAG_HOLE),
            DeltaOp::Copy { base_offset, len } => {
                e.varint((len << 2) | TAG_COPY);
                e.varint_signed(base_offset.wrapping_sub(expected) as i64);
                expected = base_offset + len;
            }
        }
    }
}

/// Decodes ops written by [`encode_ops`], checking that they cover exactly `size` bytes and that
/// copies stay within `base_size` (when given).
pub fn decode_ops(d: &mut Decoder<'_>, size: u64, base_size: Option<u64>) -> Result<Vec<DeltaOp>> {
    let n = d.count(1)?;
    let mut ops = Vec::with_capacity(n);
    let mut expected: u64 = 0;
    let mut total: u64 = 0;
    for _ in 0..n {
        let v = d.varint()?;
        let len = v >> 2;
        if len == 0 {
            return Err(d.error("zero-length op"));
        }
        let op = match v & 3 {
            TAG_LITERAL => DeltaOp::Literal { len },
            TAG_HOLE => DeltaOp::Hole { len },
            TAG_COPY => {
                let dist = d.varint_signed()?;
                let base_offset = expected.wrapping_add(dist as u64);
                let end = base_offset
                    .checked_add(len)
                    .ok_or_else(|| d.error("copy range overflows"))?;
                match base_size {
                    Some(bs) if end > bs => {
                        return Err(d.error(format!("copy {base_offset}+{len} past the base's end {bs}")));
                    }
                    None => return Err(d.error("copy op in a version without a base")),
                    _ => {}
                }
                expected = end;
                DeltaOp::Copy { base_offset, len }
            }
            t => return Err(d.error(format!("unknown op tag {t}"))),
        };
        total = total.checked_add(len).ok_or_else(|| d.error("op lengths overflow"))?;
        ops.push(op);
    }
    if total != size {
        return Err(d.error(format!("ops cover {total} bytes but the version has {size}")));
    }
    Ok(ops)
}

/// Sum of the literal lengths of `ops`.
pub fn literal_len(ops: &[DeltaOp]) -> u64 {
    ops.iter()
        .map(|op| match op {
            DeltaOp::Literal { len } => *len,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op_strategy() -> impl Strategy<Value = DeltaOp> {
        prop_oneof![
            (1u64..1 << 40).prop_map(|len| DeltaOp::Literal { len }),
            (1u64..1 << 40).prop_map(|len| DeltaOp::Hole { len }),
            (0u64..1 << 40, 1u64..1 << 30).prop_map(|(base_offset, len)| DeltaOp::Copy { base_offset, len }),
        ]
    }

    proptest! {
        #[test]
        fn ops_roundtrip(ops in proptest::collection::vec(op_strategy(), 0..50)) {
            let size: u64 = ops.iter().map(DeltaOp::len).sum();
            let mut e = Encoder::new();
            encode_ops(&ops, &mut e);
            let b = e.into_bytes();
            let mut d = Decoder::new(&b, "ops");
            let back = decode_ops(&mut d, size, Some(u64::MAX)).unwrap();
            prop_assert_eq!(back, ops);
        }

        #[test]
        fn decode_garbage_never_panics(data: Vec<u8>, size: u64) {
            let mut d = Decoder::new(&data, "g");
            let _ = decode_ops(&mut d, size, Some(size));
        }
    }

    #[test]
    fn builder_merges_neighbours() {
        let mut b = OpsBuilder::new();
        b.push(DeltaOp::Literal { len: 3 });
        b.push(DeltaOp::Literal { len: 4 });
        b.push(DeltaOp::Copy {
            base_offset: 10,
            len: 5,
        });
        b.push(DeltaOp::Copy {
            base_offset: 15,
            len: 5,
        });
        b.push(DeltaOp::Copy { base_offset: 0, len: 5 });
        b.push(DeltaOp::Hole { len: 0 });
        assert_eq!(b.total(), 22);
        assert_eq!(
            b.finish(),
            vec![
                DeltaOp::Literal { len: 7 },
                DeltaOp::Copy {
                    base_offset: 10,
                    len: 10
                },
                DeltaOp::Copy { base_offset: 0, len: 5 }
            ]
        );
    }

    #[test]
    fn copy_past_base_is_rejected() {
        let mut e = Encoder::new();
        encode_ops(
            &[DeltaOp::Copy {
                base_offset: 5,
                len: 10,
            }],
            &mut e,
        );
        let b = e.into_bytes();
        assert!(decode_ops(&mut Decoder::new(&b, "o"), 10, Some(12)).is_err());
        assert!(decode_ops(&mut Decoder::new(&b, "o"), 10, Some(15)).is_ok());
        assert!(decode_ops(&mut Decoder::new(&b, "o"), 10, None).is_err());
    }
}
