//! Entry metadata of the platform: what an entry is and the metadata recorded for it, reading
//! them from a source, applying them on restore, special files, symbolic links, and names as raw
//! bytes.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A Unix socket (recorded, not restored).
    Socket,
}

impl EntryKind {
    /// "a directory", "a regular file", ... for messages.
    pub fn noun(self) -> &'static str {
        match self {
            EntryKind::Dir => "a directory",
            EntryKind::File => "a regular file",
            EntryKind::Symlink => "a symbolic link",
            EntryKind::Fifo => "a named pipe",
            EntryKind::CharDevice => "a character device",
            EntryKind::BlockDevice => "a block device",
            EntryKind::Socket => "a socket",
        }
    }
}

/// The metadata of an entry, as read from the source with `lstat`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Status change time, ns since the epoch (used to detect changes, not restored).
    pub ctime_ns: i64,
    /// Device of the source file (change detection).
    pub dev: u64,
    /// Inode of the source file (change detection).
    pub ino: u64,
    /// Hard link count at backup time.
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// Allocated 512-byte blocks (shows holes to `du`).
    pub blocks: u64,
    /// Device number of device nodes.
    pub rdev: u64,
    /// `user.*` extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The kind of entry a file type is.
pub fn kind_of(ft: &fs::FileType) -> EntryKind {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return EntryKind::Fifo;
        }
        if ft.is_char_device() {
            return EntryKind::CharDevice;
        }
        if ft.is_block_device() {
            return EntryKind::BlockDevice;
        }
        if ft.is_socket() {
            return EntryKind::Socket;
        }
    }
    if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::File
    }
}

/// Metadata of `path` from `md` (an `lstat` result), plus its `user.*` extended attributes.
pub fn capture(path: &Path, md: &fs::Metadata) -> Metadata {
    let mut m = from_stat(md);
    m.xattrs = user_xattrs(path);
    m
}

/// The stat fields of `md` (no extended attributes).
pub fn from_stat(md: &fs::Metadata) -> Metadata {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Metadata {
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime_ns: md.mtime().saturating_mul(1_000_000_000).saturating_add(md.mtime_nsec()),
            ctime_ns: md.ctime().saturating_mul(1_000_000_000).saturating_add(md.ctime_nsec()),
            dev: md.dev(),
            ino: md.ino(),
            nlink: u32::try_from(md.nlink()).unwrap_or(u32::MAX),
            size: md.size(),
            blocks: md.blocks(),
            rdev: md.rdev(),
            xattrs: Vec::new(),
        }
    }
    #[cfg(not(unix))]
    {
        let mtime_ns = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Metadata {
            mode: if md.permissions().readonly() { 0o444 } else { 0o644 },
            mtime_ns,
            ctime_ns: mtime_ns,
            size: md.len(),
            blocks: md.len().div_ceil(512),
            nlink: 1,
            ..Metadata::default()
        }
    }
}

/// True when this entry's content may have changed: the fields of Decision 8 differ.
pub fn changed(a: &Metadata, b: &Metadata) -> bool {
    a.size != b.size || a.mtime_ns != b.mtime_ns || a.ctime_ns != b.ctime_ns || a.ino != b.ino
}

/// The `user.*` extended attributes of `path` (not following symlinks), sorted by name.
pub fn user_xattrs(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{lgetxattr, llistxattr};
        let mut names = vec![0u8; 4096];
        let n = loop {
            match llistxattr(path, &mut names) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) if names.len() < 1 << 20 => names.resize(names.len() * 4, 0),
                Err(_) => return Vec::new(),
            }
        };
        let mut out = Vec::new();
        for name in names[..n].split(|&b| b == 0).filter(|n| n.starts_with(b"user.")) {
            let mut value = vec![0u8; 4096];
            loop {
                match lgetxattr(path, name, &mut value) {
                    Ok(len) => {
                        value.truncate(len);
                        out.push((name.to_vec(), value));
                        break;
                    }
                    Err(rustix::io::Errno::RANGE) if value.len() < 1 << 20 => value.resize(value.len() * 4, 0),
                    Err(_) => break,
                }
            }
        }
        out.sort();
        out
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = path;
        Vec::new()
    }
}

/// Sets `user.*` extended attributes on `path` (not following symlinks).
pub fn set_user_xattrs(path: &Path, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    for (k, v) in xattrs {
        rustix::fs::lsetxattr(path, k.as_slice(), v, rustix::fs::XattrFlags::empty())
            .map_err(std::io::Error::from)
            .at(path)?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (path, xattrs);
    Ok(())
}

/// Sets the modification time of `path` (not following symlinks); access time becomes the same.
pub fn set_mtime(path: &Path, mtime_ns: i64) -> Result<()> {
    #[cfg(unix)]
    {
        use rustix::fs::{AtFlags, CWD, Timestamps, utimensat};
        let ts = rustix::fs::Timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000),
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
        };
        utimensat(
            CWD,
            path,
            &Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)
        .at(path)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mtime_ns);
        Ok(())
    }
}

/// Sets owner and group of `path` (not following symlinks).
pub fn set_owner(path: &Path, uid: u32, gid: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use rustix::fs::{AtFlags, CWD, Gid, Uid, chownat};
        chownat(
            CWD,
            path,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)
        .at(path)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, uid, gid);
        Ok(())
    }
}

/// Sets permission bits of `path` (which must not be a symlink).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).at(path)
    }
    #[cfg(not(unix))]
    {
        let mut p = fs::metadata(path).at(path)?.permissions();
        p.set_readonly(mode & 0o222 == 0);
        fs::set_permissions(path, p).at(path)
    }
}

/// True when this process may set owners (it runs as root).
pub fn is_root() -> bool {
    #[cfg(unix)]
    {
        rustix::process::geteuid().is_root()
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Creates a named pipe or device node `kind` with device number `rdev` at `dest` (mode 0600;
/// the entry's mode is applied afterwards).
pub fn make_node(kind: EntryKind, rdev: u64, dest: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let kind_bits = match kind {
            EntryKind::Fifo => libc::S_IFIFO,
            EntryKind::CharDevice => libc::S_IFCHR,
            EntryKind::BlockDevice => libc::S_IFBLK,
            other => {
                return Err(Error::io(
                    dest,
                    std::io::Error::other(format!("{} is not a special file", other.noun())),
                ));
            }
        };
        let c = std::ffi::CString::new(dest.as_os_str().as_bytes())
            .map_err(|_| Error::io(dest, std::io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: `c` is a NUL-terminated path that lives across the call; mknod reads it and
        // takes the mode and device number by value. The device number is narrowed to the
        // platform's dev_t as the kernel reported it when it was backed up.
        let r = unsafe { libc::mknod(c.as_ptr(), kind_bits | 0o600, rdev as libc::dev_t) };
        if r != 0 {
            return Err(Error::io(dest, std::io::Error::last_os_error()));
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = (kind, rdev);
        Err(Error::io(
            dest,
            std::io::Error::new(std::io::ErrorKind::Unsupported, "special files cannot be restored here"),
        ))
    }
}

/// Creates a symbolic link at `dest` pointing to `target` (raw bytes).
pub fn symlink(target: &[u8], dest: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(path_from_bytes(target), dest).at(dest)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::symlink_file(path_from_bytes(target), dest).at(dest)
    }
}

/// The raw bytes of an OS string (UTF-8, lossy, on platforms without byte strings).
pub fn os_bytes(s: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        s.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().as_bytes().to_vec()
    }
}

/// The path whose raw bytes are `b` (the inverse of [`os_bytes`] on Unix).
pub fn path_from_bytes(b: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(OsStr::from_bytes(b))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(b).into_owned())
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        rustix::system::uname().nodename().to_string_lossy().into_owned()
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattrs_roundtrip_where_supported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"x").unwrap();
        let attrs = vec![(b"user.a".to_vec(), b"1".to_vec()), (b"user.b".to_vec(), vec![0, 1, 2])];
        if set_user_xattrs(&p, &attrs).is_ok() {
            assert_eq!(user_xattrs(&p), attrs);
        }
        set_mtime(&p, 1_234_567_890_123_456_789).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            let fifo = dir.path().join("pipe");
            make_node(EntryKind::Fifo, 0, &fifo).unwrap();
            assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
            assert!(make_node(EntryKind::Fifo, 0, &fifo).is_err(), "never replaces");
            assert!(make_node(EntryKind::File, 0, &dir.path().join("x")).is_err());
        }
        let raw = os_bytes(p.as_os_str());
        assert_eq!(path_from_bytes(&raw), p);
        let md = fs::symlink_metadata(&p).unwrap();
        assert_eq!(from_stat(&md).mtime_ns, 1_234_567_890_123_456_789);
    }
}
