//! Flattened extent maps: where every byte of a file version lives.
//!
//! A map is a sorted list of extents covering the version without gaps, each pointing into
//! exactly one data object (a full version's data or a delta's literals) or a hole. It is composed
//! from the chain's op lists when a version is first opened ([`ExtentMap::compose`]) and may be
//! stored as a checkpoint object, so that reading any offset costs one binary search and one
//! object read per extent, whatever the chain depth.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::format::codec::{Decoder, Encoder};
use crate::format::delta::DeltaOp;
use crate::format::magic;
use crate::id::ObjectId;

/// The id of an extent-map object with this payload.
pub fn map_object_id(payload: &[u8]) -> ObjectId {
    magic::keyed_id(magic::EXTENT_MAP_CONTEXT, payload)
}

/// `Extent::object` value of a hole.
pub const HOLE: u32 = u32::MAX;

/// One extent: from `start` to the next extent's start (or the file size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file version.
    pub start: u64,
    /// Index into [`ExtentMap::objects`], or [`HOLE`].
    pub object: u32,
    /// Offset in the object's logical stream (0 for holes).
    pub offset: u64,
}

/// A piece of a read: `len` bytes at `file_offset`, from an object or zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Offset in the file version.
    pub file_offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// The object and offset in it, or `None` for zeros.
    pub source: Option<(ObjectId, u64)>,
}

/// A version's complete extent map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtentMap {
    size: u64,
    objects: Vec<ObjectId>,
    extents: Vec<Extent>,
}

/// Builds a map extent by extent, merging contiguous neighbours.
#[derive(Debug, Default)]
struct Builder {
    map: ExtentMap,
    interned: HashMap<ObjectId, u32>,
    /// Where the last extent's source continues (object, offset), for merging.
    next_source: Option<(u32, u64)>,
}

impl Builder {
    fn intern(&mut self, id: ObjectId) -> u32 {
        *self.interned.entry(id).or_insert_with(|| {
            self.map.objects.push(id);
            (self.map.objects.len() - 1) as u32
        })
    }

    fn push(&mut self, object: u32, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let start = self.map.size;
        self.map.size += len;
        let continues = match self.next_source {
            Some((o, off)) => o == object && (object == HOLE || off == offset),
            None => false,
        };
        self.next_source = Some((object, if object == HOLE { 0 } else { offset + len }));
        if !continues {
            self.map.extents.push(Extent {
                start,
                object,
                offset: if object == HOLE { 0 } else { offset },
            });
        }
    }
}

impl ExtentMap {
    /// The data objects the map's extents point into.
    pub fn objects(&self) -> &[ObjectId] {
        &self.objects
    }

    /// A map made of `pieces` in file order: each a length and its source (an object and the
    /// offset in it) or `None` for zeros. Neighbours that continue each other are merged.
    pub fn from_pieces(pieces: impl IntoIterator<Item = (u64, Option<(ObjectId, u64)>)>) -> Self {
        let mut b = Builder::default();
        for (len, source) in pieces {
            match source {
                Some((id, offset)) => {
                    let o = b.intern(id);
                    b.push(o, offset, len);
                }
                None => b.push(HOLE, 0, len),
            }
        }
        b.map
    }

    /// The map of a version stored whole in one object.
    pub fn whole(object: ObjectId, size: u64) -> Self {
        let mut b = Builder::default();
        let o = b.intern(object);
        b.push(o, 0, size);
        b.map
    }

    /// Composes the map of a version from its ops, its literal object, and its base's map.
    /// `what` names the version in errors.
    pub fn compose(ops: &[DeltaOp], literal: Option<ObjectId>, base: Option<&ExtentMap>, what: &str) -> Result<Self> {
        let mut b = Builder::default();
        b.map
            .extents
            .reserve(ops.len() + base.map_or(0, |m| m.extents.len()).min(ops.len() * 2));
        let mut lit_off = 0u64;
        let lit_index = literal.map(|id| b.intern(id));
        // The base's object indexes, translated to this map's once each (not hashed per piece).
        let mut from_base: Vec<Option<u32>> = vec![None; base.map_or(0, |m| m.objects.len())];
        for op in ops {
            match *op {
                DeltaOp::Literal { len } => {
                    let o = lit_index.ok_or_else(|| Error::corrupt(what, "literal op without literal data"))?;
                    b.push(o, lit_off, len);
                    lit_off += len;
                }
                DeltaOp::Hole { len } => b.push(HOLE, 0, len),
                DeltaOp::Copy { base_offset, len } => {
                    let base = base.ok_or_else(|| Error::corrupt(what, "copy op without a base"))?;
                    let end = base_offset
                        .checked_add(len)
                        .filter(|&e| e <= base.size)
                        .ok_or_else(|| Error::corrupt(what, "copy past the end of the base"))?;
                    let mut pos = base_offset;
                    let mut i = base.find(pos);
                    while pos < end {
                        let ext = base
                            .extents
                            .get(i)
                            .ok_or_else(|| Error::corrupt(what, "base map ends early"))?;
                        let ext_end = base.extent_end(i);
                        let take = end.min(ext_end) - pos;
                        if ext.object == HOLE {
                            b.push(HOLE, 0, take);
                        } else {
                            let (Some(slot), Some(&id)) = (
                                from_base.get_mut(ext.object as usize),
                                base.objects.get(ext.object as usize),
                            ) else {
                                return Err(Error::corrupt(what, "base map names no such object"));
                            };
                            let o = *slot.get_or_insert_with(|| b.intern(id));
                            b.push(o, ext.offset + (pos - ext.start), take);
                        }
                        pos += take;
                        i += 1;
                    }
                }
            }
        }
        Ok(b.map)
    }

    /// Size of the version.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The extents, sorted by start.
    #[cfg(test)]
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Bytes of memory held (for cache accounting).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.extents.len() * std::mem::size_of::<Extent>() + self.objects.len() * 32
    }

    /// End offset of extent `i`.
    fn extent_end(&self, i: usize) -> u64 {
        self.extents.get(i + 1).map_or(self.size, |e| e.start)
    }

    /// Index of the extent containing `offset` (offset < size).
    pub fn find(&self, offset: u64) -> usize {
        self.extents.partition_point(|e| e.start <= offset).saturating_sub(1)
    }

    /// The pieces covering `[offset, offset + len)`, clipped to the version's size.
    pub fn pieces(&self, offset: u64, len: u64) -> impl Iterator<Item = Piece> + '_ {
        let end = offset.saturating_add(len).min(self.size);
        let mut pos = offset.min(end);
        let mut i = self.find(pos);
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let ext = self.extents.get(i)?;
            let take = end.min(self.extent_end(i)) - pos;
            let source = if ext.object == HOLE {
                None
            } else {
                Some((*self.objects.get(ext.object as usize)?, ext.offset + (pos - ext.start)))
            };
            let piece = Piece {
                file_offset: pos,
                len: take,
                source,
            };
            pos += take;
            i += 1;
            Some(piece)
        })
    }

    /// The first offset at or after `offset` that holds data (`SEEK_DATA`); `None` when there
    /// is none before the end.
    pub fn next_data(&self, offset: u64) -> Option<u64> {
        if offset >= self.size {
            return None;
        }
        let i = self.find(offset);
        (i..self.extents.len())
            .find(|&k| self.extents.get(k).is_some_and(|e| e.object != HOLE))
            .map(|k| self.extents.get(k).map_or(offset, |e| e.start).max(offset))
    }

    /// The first offset at or after `offset` that is a hole, the end of the version counting as
    /// one (`SEEK_HOLE`); `None` when `offset` is at or past the end.
    pub fn next_hole(&self, offset: u64) -> Option<u64> {
        if offset >= self.size {
            return None;
        }
        let i = self.find(offset);
        Some(
            (i..self.extents.len())
                .find(|&k| self.extents.get(k).is_some_and(|e| e.object == HOLE))
                .map_or(self.size, |k| {
                    self.extents.get(k).map_or(offset, |e| e.start).max(offset)
                }),
        )
    }

    /// Encodes the map as the payload of an extent-map object.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u64(self.size);
        e.varint(self.objects.len() as u64);
        for id in &self.objects {
            e.object_id(id);
        }
        e.varint(self.extents.len() as u64);
        for i in 0..self.extents.len() {
            let Some(ext) = self.extents.get(i) else {
                break;
            };
            e.varint(self.extent_end(i) - ext.start);
            if ext.object == HOLE {
                e.varint(0);
            } else {
                e.varint(u64::from(ext.object) + 1);
                e.varint(ext.offset);
            }
        }
        e.into_bytes()
    }

    /// Decodes a payload written by [`ExtentMap::encode`].
    pub fn decode(payload: &[u8], what: &str) -> Result<Self> {
        let mut d = Decoder::new(payload, what);
        let size = d.u64()?;
        let n_objects = d.count(32)?;
        let mut objects = Vec::with_capacity(n_objects);
        for _ in 0..n_objects {
            objects.push(d.object_id()?);
        }
        let n = d.count(2)?;
        let mut extents = Vec::with_capacity(n);
        let mut start = 0u64;
        for _ in 0..n {
            let len = d.varint()?;
            if len == 0 {
                return Err(d.error("empty extent"));
            }
            let src = d.varint()?;
            let (object, offset) = if src == 0 {
                (HOLE, 0)
            } else {
                let o = u32::try_from(src - 1).ok().filter(|&o| (o as usize) < n_objects);
                (o.ok_or_else(|| d.error("extent names no such object"))?, d.varint()?)
            };
            extents.push(Extent { start, object, offset });
            start = start
                .checked_add(len)
                .ok_or_else(|| d.error("extent lengths overflow"))?;
        }
        d.finish()?;
        if start != size {
            return Err(Error::corrupt(what, "extents do not cover the version"));
        }
        Ok(ExtentMap { size, objects, extents })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 32])
    }

    /// Materialises a map given object contents.
    fn render(map: &ExtentMap, objects: &HashMap<ObjectId, Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        for p in map.pieces(0, map.size()) {
            match p.source {
                None => out.extend(std::iter::repeat_n(0u8, p.len as usize)),
                Some((o, off)) => out.extend_from_slice(&objects[&o][off as usize..(off + p.len) as usize]),
            }
        }
        out
    }

    #[test]
    fn compose_follows_copies_through_the_base() {
        let mut objs = HashMap::new();
        objs.insert(id(1), b"abcdefghij".to_vec());
        objs.insert(id(2), b"XYZ".to_vec());
        let full = ExtentMap::compose(
            &[
                DeltaOp::Literal { len: 5 },
                DeltaOp::Hole { len: 3 },
                DeltaOp::Literal { len: 5 },
            ],
            Some(id(1)),
            None,
            "full",
        )
        .unwrap();
        assert_eq!(render(&full, &objs), b"abcde\0\0\0fghij");
        let delta = ExtentMap::compose(
            &[
                DeltaOp::Copy { base_offset: 3, len: 4 },
                DeltaOp::Literal { len: 3 },
                DeltaOp::Copy { base_offset: 0, len: 2 },
            ],
            Some(id(2)),
            Some(&full),
            "delta",
        )
        .unwrap();
        assert_eq!(render(&delta, &objs), b"de\0\0XYZab");
        let back = ExtentMap::decode(&delta.encode(), "m").unwrap();
        assert_eq!(back, delta);
        assert_eq!(delta.pieces(3, 3).map(|p| p.len).sum::<u64>(), 3);
        assert_eq!(delta.pieces(8, 100).map(|p| p.len).sum::<u64>(), 1);
    }

    #[test]
    fn seek_data_and_hole() {
        let m = ExtentMap::compose(
            &[
                DeltaOp::Hole { len: 10 },
                DeltaOp::Literal { len: 5 },
                DeltaOp::Hole { len: 5 },
            ],
            Some(id(1)),
            None,
            "m",
        )
        .unwrap();
        assert_eq!(m.next_data(0), Some(10));
        assert_eq!(m.next_data(12), Some(12));
        assert_eq!(m.next_data(16), None);
        assert_eq!(m.next_hole(0), Some(0));
        assert_eq!(m.next_hole(11), Some(15));
        assert_eq!(m.next_hole(20), None);
        let full = ExtentMap::compose(&[DeltaOp::Literal { len: 7 }], Some(id(1)), None, "f").unwrap();
        assert_eq!(full.next_hole(3), Some(7), "the end counts as a hole");
    }

    #[test]
    fn merges_contiguous_ranges() {
        let full = ExtentMap::compose(&[DeltaOp::Literal { len: 100 }], Some(id(1)), None, "f").unwrap();
        let d = ExtentMap::compose(
            &[
                DeltaOp::Copy {
                    base_offset: 0,
                    len: 50,
                },
                DeltaOp::Copy {
                    base_offset: 50,
                    len: 50,
                },
            ],
            None,
            Some(&full),
            "d",
        )
        .unwrap();
        assert_eq!(d.extents().len(), 1);
    }

    proptest! {
        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let _ = ExtentMap::decode(&data, "g");
        }

        #[test]
        fn pieces_cover_any_range(lens in proptest::collection::vec(1u64..100, 1..20), off in 0u64..3000, len in 0u64..3000) {
            let ops: Vec<DeltaOp> = lens.iter().enumerate().map(|(i, &l)| if i % 2 == 0 { DeltaOp::Literal { len: l } } else { DeltaOp::Hole { len: l } }).collect();
            let map = ExtentMap::compose(&ops, Some(id(7)), None, "p").unwrap();
            let total: u64 = map.pieces(off, len).map(|p| p.len).sum();
            let expect = off.saturating_add(len).min(map.size()).saturating_sub(off.min(map.size()));
            prop_assert_eq!(total, expect);
        }
    }
}
