//! FIEMAP: the physical extents of a file (Linux; elsewhere "unsupported", and the flags below are
//! only compared, never received).
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::fs::File;

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

#[cfg(test)]
impl FiemapExtent {
    /// An extent of `length` bytes at `logical` in the file and `physical` on the device.
    pub fn new(logical: u64, physical: u64, length: u64, flags: u32) -> Self {
        FiemapExtent {
            logical,
            physical,
            length,
            flags,
            ..FiemapExtent::default()
        }
    }
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
