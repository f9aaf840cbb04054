//! Copy-on-write clones (FICLONE), file identity (device, inode, birth time) and the immutable
//! flag: what the reflink change source needs from the platform (Linux; elsewhere every call
//! says "unsupported" and the source disables itself).

use std::fs::File;
use std::path::Path;

/// The identity of a file: a reference copy is used only for the file it was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Birth time, ns since the epoch (0 where the filesystem has none).
    pub btime_ns: i64,
}

/// The identity of the open file `f`.
pub fn identity(f: &File) -> std::io::Result<FileIdentity> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{AtFlags, StatxFlags, statx};
        let x = statx(f, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS | StatxFlags::BTIME)?;
        let btime_ns = if x.stx_mask & StatxFlags::BTIME.bits() != 0 {
            x.stx_btime.tv_sec * 1_000_000_000 + i64::from(x.stx_btime.tv_nsec)
        } else {
            0
        };
        Ok(FileIdentity {
            dev: rustix::fs::makedev(x.stx_dev_major, x.stx_dev_minor),
            ino: x.stx_ino,
            btime_ns,
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = f;
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// Makes `dst` (an empty file) a copy-on-write clone of `src`.
pub fn clone_into(dst: &File, src: &File) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::ioctl_ficlone(dst, src).map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (dst, src);
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// Sets or clears the immutable flag (best effort: it needs CAP_LINUX_IMMUTABLE).
pub fn set_immutable(path: &Path, on: bool) {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
        if let Ok(f) = File::open(path)
            && let Ok(flags) = ioctl_getflags(&f)
        {
            let want = if on {
                flags | IFlags::IMMUTABLE
            } else {
                flags - IFlags::IMMUTABLE
            };
            if want != flags {
                let _ = ioctl_setflags(&f, want);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (path, on);
}

/// Deletes a file that may carry the immutable flag.
pub fn remove_immutable(path: &Path) -> std::io::Result<()> {
    set_immutable(path, false);
    std::fs::remove_file(path)
}
