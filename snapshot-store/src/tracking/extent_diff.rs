//! Which ranges of two reflinked copies of a file no longer share physical extents.
//!
//! Two copies made with FICLONE share physical extents until one is written; copy-on-write then
//! gives the written range new extents. So comparing the physical address at every offset of
//! an old and a new copy gives exactly the changed ranges, for every kind of writer.

use crate::os::fiemap::{EXTENT_OPAQUE, EXTENT_UNWRITTEN, FiemapExtent};
use crate::tracking::ranges::RangeSet;

/// What is at an offset of a file according to its extents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Reads as zeros (a hole or an unwritten extent).
    Zeros,
    /// Data at this physical address.
    Data(u64),
    /// Data without a usable address.
    Opaque,
}

fn at(e: Option<&FiemapExtent>, off: u64) -> At {
    match e {
        None => At::Zeros,
        Some(e) if e.flags & EXTENT_OPAQUE != 0 => At::Opaque,
        Some(e) if e.flags & EXTENT_UNWRITTEN != 0 => At::Zeros,
        Some(e) => At::Data(e.physical + (off - e.logical)),
    }
}

/// The ranges of `[0, size)` where two copies' extents differ: data in one and zeros in the other,
/// different physical addresses, or extents without a usable address.
pub fn changed_ranges(old: &[FiemapExtent], new: &[FiemapExtent], size: u64) -> RangeSet {
    let mut cuts: Vec<u64> = Vec::with_capacity(2 * (old.len() + new.len()) + 2);
    cuts.push(0);
    cuts.push(size);
    for e in old.iter().chain(new) {
        cuts.push(e.logical.min(size));
        cuts.push(e.logical.saturating_add(e.length).min(size));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let find = |list: &[FiemapExtent], off: u64| -> Option<FiemapExtent> {
        let i = list.partition_point(|e| e.logical.saturating_add(e.length) <= off);
        list.get(i).filter(|e| e.logical <= off).copied()
    };
    let mut changed = Vec::new();
    for w in cuts.windows(2) {
        let (Some(&a), Some(&b)) = (w.first(), w.get(1)) else {
            continue;
        };
        if a >= b {
            continue;
        }
        let (o, n) = (find(old, a), find(new, a));
        let same = match (at(o.as_ref(), a), at(n.as_ref(), a)) {
            (At::Zeros, At::Zeros) => true,
            (At::Data(x), At::Data(y)) => x == y,
            _ => false,
        };
        if !same {
            changed.push(a..b);
        }
    }
    RangeSet::from_ranges(changed)
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of ranges with one range
mod tests {
    use super::*;
    use crate::os::fiemap::{EXTENT_ENCODED, EXTENT_LAST};

    fn ext(logical: u64, physical: u64, length: u64, flags: u32) -> FiemapExtent {
        FiemapExtent::new(logical, physical, length, flags)
    }

    #[test]
    fn differences_between_two_copies() {
        // Old: one extent. New: the middle 4 KiB rewritten elsewhere, a tail appended.
        let old = [ext(0, 1 << 20, 16384, EXTENT_LAST)];
        let new = [
            ext(0, 1 << 20, 4096, 0),
            ext(4096, 9 << 20, 4096, 0),
            ext(8192, (1 << 20) + 8192, 8192, 0),
            ext(16384, 5 << 20, 4096, EXTENT_LAST),
        ];
        assert_eq!(changed_ranges(&old, &new, 20480).ranges(), &[4096..8192, 16384..20480]);
        // A hole against an unwritten extent reads the same; opaque extents always differ.
        let old = [ext(0, 7, 4096, EXTENT_UNWRITTEN)];
        assert!(changed_ranges(&old, &[], 4096).is_empty());
        let enc = [ext(0, 7, 4096, EXTENT_ENCODED)];
        assert_eq!(changed_ranges(&enc, &enc, 4096).ranges(), &[0..4096]);
    }
}
