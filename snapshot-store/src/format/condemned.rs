//! Prune's list of condemned files (`prune/condemned`, format version 2): version records and
//! objects that no kept snapshot reaches, waiting until no registered reader can still use
//! them. Entries name files by kind and id only, so a damaged list can never name a path
//! outside `versions/` and `objects/`.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::{Error, Result};
use crate::format::codec::{Decoder, Encoder};
use crate::id::{ObjectId, VersionId};

/// A file of the store that can be condemned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreFile {
    /// `versions/<xx>/<hex>`.
    Version(VersionId),
    /// `objects/<xx>/<hex>`.
    Object(ObjectId),
}

/// One condemned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condemned {
    /// The file.
    pub file: StoreFile,
    /// Its size when it was condemned.
    pub size: u64,
    /// The prune generation that condemned it: readers that caught up with this generation no
    /// longer need it.
    pub generation: u64,
    /// When it was first condemned (wall clock, ns since the epoch), for the grace period.
    pub since_ns: i64,
}

/// The whole list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CondemnedList {
    /// The prune generation when the list was written.
    pub generation: u64,
    /// The files, sorted by file.
    pub entries: Vec<Condemned>,
}

/// Bytes of one encoded entry at least (kind, id, and four one-byte varints or more).
const MIN_ENTRY: usize = 1 + 32 + 1 + 8 + 8;

impl CondemnedList {
    /// Encodes the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u64(self.generation);
        e.varint(self.entries.len() as u64);
        for c in &self.entries {
            match c.file {
                StoreFile::Version(v) => {
                    e.u8(0);
                    e.version_id(&v);
                }
                StoreFile::Object(o) => {
                    e.u8(1);
                    e.object_id(&o);
                }
            }
            e.varint(c.size);
            e.u64(c.generation);
            e.i64(c.since_ns);
        }
        e.into_bytes()
    }

    /// Decodes a payload; `what` names it in errors.
    pub fn decode(payload: &[u8], what: &str) -> Result<CondemnedList> {
        let mut d = Decoder::new(payload, what);
        let generation = d.u64()?;
        let n = d.count(MIN_ENTRY)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let file = match d.u8()? {
                0 => StoreFile::Version(d.version_id()?),
                1 => StoreFile::Object(d.object_id()?),
                k => return Err(d.error(format!("unknown file kind {k}"))),
            };
            let size = d.varint()?;
            let condemned_at = d.u64()?;
            if condemned_at > generation {
                return Err(d.error("an entry is newer than the list"));
            }
            let since_ns = d.i64()?;
            entries.push(Condemned {
                file,
                size,
                generation: condemned_at,
                since_ns,
            });
        }
        d.finish()?;
        if entries.windows(2).any(|w| matches!(w, [a, b] if a.file >= b.file)) {
            return Err(Error::corrupt(what, "entries are not sorted and unique"));
        }
        Ok(CondemnedList { generation, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> CondemnedList {
        CondemnedList {
            generation: 7,
            entries: vec![
                Condemned {
                    file: StoreFile::Version(VersionId([3; 32])),
                    size: 200,
                    generation: 7,
                    since_ns: 1_800_000_000_000_000_000,
                },
                Condemned {
                    file: StoreFile::Object(ObjectId([1; 32])),
                    size: 1 << 40,
                    generation: 2,
                    since_ns: -1,
                },
            ],
        }
    }

    #[test]
    fn roundtrip_truncation_and_order() {
        let l = sample();
        let p = l.encode();
        assert_eq!(CondemnedList::decode(&p, "l").unwrap(), l);
        for cut in 0..p.len() {
            assert!(CondemnedList::decode(&p[..cut], "l").is_err(), "cut {cut}");
        }
        let mut swapped = l.clone();
        swapped.entries.reverse();
        assert!(CondemnedList::decode(&swapped.encode(), "l").is_err());
        let mut newer = l;
        newer.entries[0].generation = 8;
        assert!(CondemnedList::decode(&newer.encode(), "l").is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data: Vec<u8>) {
            let _ = CondemnedList::decode(&data, "g");
        }
    }
}
