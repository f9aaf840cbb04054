//! The reflink reference table (`tracking/<key>.refs`): for each file of a source, the reference
//! copy that holds its previous version and the identity of the file it copies.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::format::codec::{Decoder, Encoder};
use crate::id::VersionId;
pub use crate::os::clone::FileIdentity;
use crate::os::meta::{os_bytes, path_from_bytes};

/// One reference copy: the file it copies and the version it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEntry {
    /// The reference copy's file name in the reference directory.
    pub name: String,
    /// The identity of the file it copies.
    pub identity: FileIdentity,
    /// The version it holds.
    pub version: VersionId,
    /// Its size.
    pub size: u64,
}

/// The reference table of one source.
#[derive(Debug, Default)]
pub struct RefTable {
    /// Entries by path relative to the source.
    pub entries: BTreeMap<String, RefEntry>,
}

impl RefTable {
    /// Encodes the payload, recording the reference directory `ref_dir`.
    pub fn encode(&self, ref_dir: &Path) -> Vec<u8> {
        let mut e = Encoder::new();
        e.bytes(&os_bytes(ref_dir.as_os_str()));
        e.varint(self.entries.len() as u64);
        for (rel, r) in &self.entries {
            e.str(rel);
            e.str(&r.name);
            e.varint(r.identity.dev);
            e.varint(r.identity.ino);
            e.i64(r.identity.btime_ns);
            e.version_id(&r.version);
            e.varint(r.size);
        }
        e.into_bytes()
    }

    /// Decodes a payload written by [`RefTable::encode`]; `what` names it in errors.
    pub fn decode(payload: &[u8], what: &str) -> Result<(PathBuf, RefTable)> {
        let mut d = Decoder::new(payload, what);
        let dir = path_from_bytes(d.bytes()?);
        let n = d.count(40)?;
        let mut entries = BTreeMap::new();
        for _ in 0..n {
            let rel = d.str()?.to_string();
            let name = d.str()?.to_string();
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(d.error("bad reference name"));
            }
            let identity = FileIdentity {
                dev: d.varint()?,
                ino: d.varint()?,
                btime_ns: d.i64()?,
            };
            let version = d.version_id()?;
            let size = d.varint()?;
            entries.insert(
                rel,
                RefEntry {
                    name,
                    identity,
                    version,
                    size,
                },
            );
        }
        d.finish()?;
        Ok((dir, RefTable { entries }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> RefTable {
        let mut t = RefTable::default();
        t.entries.insert(
            "vm/disk.img".into(),
            RefEntry {
                name: "0123456789abcdef0123456789abcdef".into(),
                identity: FileIdentity {
                    dev: 2049,
                    ino: 77,
                    btime_ns: -5,
                },
                version: VersionId([3; 32]),
                size: 1 << 30,
            },
        );
        t
    }

    #[test]
    #[cfg(unix)]
    fn a_non_utf8_reference_directory_roundtrips() {
        use std::os::unix::ffi::OsStrExt;
        let dir = Path::new(std::ffi::OsStr::from_bytes(b"/src/caf\xe9/.backup-fs-refs/00"));
        let (back, table) = RefTable::decode(&sample().encode(dir), "r").unwrap();
        assert_eq!(back, dir);
        assert_eq!(table.entries, sample().entries);
    }

    #[test]
    fn roundtrip_and_truncation() {
        let t = sample();
        let p = t.encode(Path::new("/src/.backup-fs-refs/00"));
        let (dir, back) = RefTable::decode(&p, "r").unwrap();
        assert_eq!(dir, Path::new("/src/.backup-fs-refs/00"));
        assert_eq!(back.entries, t.entries);
        for cut in 0..p.len() {
            assert!(RefTable::decode(&p[..cut], "r").is_err(), "cut {cut}");
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data: Vec<u8>) {
            let _ = RefTable::decode(&data, "g");
        }

        #[test]
        fn flipped_bytes_never_panic(i in 0usize..200, bit in 0u8..8) {
            let mut p = sample().encode(Path::new("/src"));
            let i = i % p.len();
            p[i] ^= 1 << bit;
            let _ = RefTable::decode(&p, "f");
        }
    }
}
