//! Where a file's data and holes are (`SEEK_DATA` / `SEEK_HOLE`), so that holes are not read.

use std::fs::File;

/// The next data range at or after `pos`: `(start, end)`, with `start == end == size` when the
/// rest of the file is a hole.
pub fn data_extent(file: &File, pos: u64, size: u64) -> std::io::Result<(u64, u64)> {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "macos"
    ))]
    {
        use rustix::fs::{SeekFrom, seek};
        let start = match seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s.min(size),
            Err(rustix::io::Errno::NXIO) => return Ok((size, size)),
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOTSUP) => {
                return Ok((pos, size));
            }
            Err(e) => return Err(e.into()),
        };
        let end = match seek(file, SeekFrom::Hole(start)) {
            Ok(e) => e.min(size),
            Err(rustix::io::Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        Ok((start, end.max(start)))
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "macos"
    )))]
    {
        let _ = file;
        Ok((pos, size))
    }
}
