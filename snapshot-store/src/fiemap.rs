//! FIEMAP: the physical extents of a file, and which ranges of two reflinked copies no longer
//! share them (Linux).
//!
//! Two copies made with FICLONE share physical extents until one is written; copy-on-write then
//! gives the written range new extents. So comparing the physical address at every offset of
//! an old and a new copy gives exactly the changed ranges, for every kind of writer.

use std::fs::File;

use crate::ranges::RangeSet;

/// One extent as the kernel reports it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FiemapExtent {
    /// Offset in the file.
    pub logical: u64,
    /// Offset on the device.
    pub physical: u64,
    /// Length.
    pub length: u64,
    reserved64: [u64; 2],
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
    reserved: [u32; 3],
}

/// The last extent of the file.
pub const EXTENT_LAST: u32 = 0x1;
/// The extent's location is not known (yet).
pub const EXTENT_UNKNOWN: u32 = 0x2;
/// Delayed allocation: no physical address yet.
pub const EXTENT_DELALLOC: u32 = 0x4;
/// Stored encoded (compressed): the address is not per byte.
pub const EXTENT_ENCODED: u32 = 0x8;
/// Encrypted data.
pub const EXTENT_DATA_ENCRYPTED: u32 = 0x80;
/// Data not block-aligned.
pub const EXTENT_NOT_ALIGNED: u32 = 0x100;
/// Data stored inline with metadata.
pub const EXTENT_DATA_INLINE: u32 = 0x200;
/// Data packed into a tail block.
pub const EXTENT_DATA_TAIL: u32 = 0x400;
/// Allocated but unwritten (reads as zeros).
pub const EXTENT_UNWRITTEN: u32 = 0x800;
/// Flags whose extents have no usable per-byte physical address: always counted as changed.
pub const EXTENT_OPAQUE: u32 = EXTENT_UNKNOWN
    | EXTENT_DELALLOC
    | EXTENT_ENCODED
    | EXTENT_DATA_ENCRYPTED
    | EXTENT_NOT_ALIGNED
    | EXTENT_DATA_INLINE
    | EXTENT_DATA_TAIL;

/// Flush dirty data before mapping (without it a dirty overwrite of a shared extent still shows
/// the old extent and a change would be missed).
pub const FLAG_SYNC: u32 = 0x1;

#[cfg(target_os = "linux")]
mod sys {
    use super::FiemapExtent;
    use rustix::ioctl::{Opcode, Updater, ioctl, opcode};
    use std::os::fd::AsFd;

    #[repr(C)]
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Header {
        pub start: u64,
        pub length: u64,
        pub flags: u32,
        pub mapped_extents: u32,
        pub extent_count: u32,
        pub reserved: u32,
    }

    pub const BATCH: usize = 512;

    #[repr(C)]
    pub struct Buffer {
        pub header: Header,
        pub extents: [FiemapExtent; BATCH],
    }

    /// `_IOWR('f', 11, struct fiemap)`.
    pub const FS_IOC_FIEMAP: Opcode = opcode::read_write::<Header>(b'f', 11);
    const _: () = assert!(FS_IOC_FIEMAP == 0xC020_660B);
    const _: () = assert!(size_of::<FiemapExtent>() == 56 && size_of::<Header>() == 32);

    pub fn call(fd: impl AsFd, buf: &mut Buffer) -> std::io::Result<()> {
        // SAFETY: FS_IOC_FIEMAP reads a `struct fiemap` header and writes at most
        // `fm_extent_count` `struct fiemap_extent`s after it. `Buffer` is #[repr(C)] with exactly
        // that layout (sizes asserted above) and room for BATCH extents, the count the caller
        // passes, so the kernel writes only inside `buf`, which is exclusively borrowed here.
        unsafe { ioctl(fd.as_fd(), Updater::<{ FS_IOC_FIEMAP }, Buffer>::new(buf))? };
        Ok(())
    }
}

/// All extents of `file`, in order (`flags`: e.g. [`FLAG_SYNC`]).
#[cfg(target_os = "linux")]
pub fn extents(file: &File, flags: u32) -> std::io::Result<Vec<FiemapExtent>> {
    let mut out = Vec::new();
    let mut buf = Box::new(sys::Buffer {
        header: sys::Header::default(),
        extents: [FiemapExtent::default(); sys::BATCH],
    });
    let mut start = 0u64;
    loop {
        buf.header = sys::Header {
            start,
            length: u64::MAX - start,
            flags,
            extent_count: sys::BATCH as u32,
            ..sys::Header::default()
        };
        sys::call(file, &mut buf)?;
        let n = (buf.header.mapped_extents as usize).min(sys::BATCH);
        if n == 0 {
            break;
        }
        let got = buf.extents.get(..n).unwrap_or_default();
        out.extend_from_slice(got);
        let Some(last) = got.last().copied() else { break };
        if last.flags & EXTENT_LAST != 0 {
            break;
        }
        start = last.logical + last.length;
    }
    Ok(out)
}

/// FIEMAP is Linux only.
#[cfg(not(target_os = "linux"))]
pub fn extents(_file: &File, _flags: u32) -> std::io::Result<Vec<FiemapExtent>> {
    Err(std::io::ErrorKind::Unsupported.into())
}

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

    fn ext(logical: u64, physical: u64, length: u64, flags: u32) -> FiemapExtent {
        FiemapExtent {
            logical,
            physical,
            length,
            flags,
            ..FiemapExtent::default()
        }
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
