//! POSIX attributes as Windows sees them: file attribute bits, FILETIME times and file
//! indexes. Platform-neutral (tested on every platform).

use crate::view::{Attr, Kind};

/// `FILE_ATTRIBUTE_READONLY`.
pub const READONLY: u32 = 0x1;
/// `FILE_ATTRIBUTE_DIRECTORY`.
pub const DIRECTORY: u32 = 0x10;
/// `FILE_ATTRIBUTE_SPARSE_FILE`.
pub const SPARSE_FILE: u32 = 0x200;

/// 100 ns intervals between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

/// The `FILE_ATTRIBUTE_*` bits of a node: everything is read-only; directories are
/// directories; a file with holes (fewer allocated blocks than its size) is sparse.
pub fn file_attributes(a: &Attr) -> u32 {
    match a.kind {
        Kind::Dir => DIRECTORY | READONLY,
        _ if a.blocks.saturating_mul(512) < a.size => READONLY | SPARSE_FILE,
        _ => READONLY,
    }
}

/// A time in ns since the Unix epoch as a FILETIME (100 ns since 1601).
pub fn filetime(ns: i64) -> u64 {
    let ticks = i128::from(ns).div_euclid(100) + i128::from(FILETIME_UNIX_EPOCH);
    ticks.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn attr(kind: Kind, size: u64, blocks: u64) -> Attr {
        Attr {
            ino: 7,
            kind,
            size,
            blocks,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            rdev: 0,
            immutable: true,
            content: None,
        }
    }

    #[test]
    fn attributes_and_times_translate() {
        assert_eq!(file_attributes(&attr(Kind::Dir, 0, 0)), 0x11);
        assert_eq!(file_attributes(&attr(Kind::File, 4096, 8)), 0x1);
        assert_eq!(file_attributes(&attr(Kind::File, 1 << 30, 8)), 0x201);
        assert_eq!(file_attributes(&attr(Kind::File, 0, 0)), 0x1);
        assert_eq!(filetime(0), FILETIME_UNIX_EPOCH);
        // 2026-11-21T07:15:00Z.
        assert_eq!(filetime(1_795_245_300_000_000_000), 134_397_189_000_000_000);
        // The earliest ns time (1677) is after FILETIME's epoch.
        assert_eq!(filetime(i64::MIN), 24_211_015_631_452_241);
        assert_eq!(filetime(-100), FILETIME_UNIX_EPOCH - 1);
        let before = Attr {
            mtime_ns: -1_000_000_000,
            ..attr(Kind::File, 0, 0)
        };
        assert_eq!(before.mtime(), UNIX_EPOCH - Duration::from_secs(1));
    }
}
