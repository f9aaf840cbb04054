//! File I/O with the guarantees the store needs: durable writes (temporary name, flush, rename
//! into place, flush the directory: a crash at any instant leaves the old state or the new one,
//! never a torn file under its final name), positioned reads and writes that retry until done,
//! and reads without kernel readahead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique temporary file name inside `dir` for this process.
pub fn temp_path(dir: &Path, tag: &str) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{tag}-{}-{n}.tmp", std::process::id()))
}

/// Creates a new temporary file in `dir` (never overwriting).
pub fn create_temp(dir: &Path, tag: &str) -> Result<(File, PathBuf)> {
    let path = temp_path(dir, tag);
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .open(&path)
        .at(&path)?;
    Ok((file, path))
}

/// Flushes a directory's entries (renames, creations) to disk. A no-op where directories cannot
/// be opened (Windows), where rename is already durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: temp file in `tmp_dir` (same filesystem),
/// fsync, rename, fsync of the target directory. Replaces an existing file.
pub fn write_atomic(path: &Path, tmp_dir: &Path, bytes: &[u8]) -> Result<()> {
    let (mut file, tmp) = create_temp(tmp_dir, "atomic")?;
    let result = (|| -> Result<()> {
        file.write_all(bytes).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        drop(file);
        fs::rename(&tmp, path).at(path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Renames `tmp` to `path` only if `path` does not exist yet. Returns false (and leaves both as
/// they were) when `path` already exists.
pub fn rename_noreplace(tmp: &Path, path: &Path) -> Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, tmp, CWD, path, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(true),
            Err(rustix::io::Errno::EXIST) => return Ok(false),
            // Filesystems without RENAME_NOREPLACE fall through to link+unlink.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {}
            Err(e) => return Err(Error::io(path, e.into())),
        }
    }
    match fs::hard_link(tmp, path) {
        Ok(()) => {
            fs::remove_file(tmp).at(tmp)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Creates `dir` and its parents.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).at(dir)
}

/// Reads until `buf` is full or end of file; returns the bytes read.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let Some(rest) = buf.get_mut(done..) else { break };
        match pread(file, rest, offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads exactly `buf.len()` bytes at `offset` (`UnexpectedEof` when the file ends first).
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    if read_full_at(file, buf, offset)? < buf.len() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Writes all of `data` at `offset`.
pub fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(data, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while let Some(rest) = data.get(done..).filter(|r| !r.is_empty()) {
            match file.seek_write(rest, offset + done as u64)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => done += n,
            }
        }
        Ok(())
    }
}

/// One positioned read.
fn pread(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        file.seek_read(buf, offset)
    }
}

/// Opens `path` for reading with kernel readahead off (random access), where the platform can
/// say so; `None` otherwise or on failure.
pub fn open_without_readahead(path: &Path) -> Option<File> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        let file = File::open(path).ok()?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random).ok()?;
        Some(file)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let _ = path;
        None
    }
}

/// Flushes everything written to the file system holding `dir` (one call instead of one `fsync`
/// per file where the platform has `syncfs`; elsewhere each of `files` is flushed).
pub fn sync_filesystem(dir: &Path, files: &[PathBuf]) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let _ = files;
        let d = File::open(dir).at(dir)?;
        rustix::fs::syncfs(&d).map_err(io::Error::from).at(dir)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        for f in files {
            File::open(f).and_then(|f| f.sync_all()).at(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_noreplace_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, dir.path(), b"one").unwrap();
        write_atomic(&p, dir.path(), b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");

        let (mut f, tmp) = create_temp(dir.path(), "t").unwrap();
        f.write_all(b"three").unwrap();
        assert!(!rename_noreplace(&tmp, &p).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let q = dir.path().join("g");
        assert!(rename_noreplace(&tmp, &q).unwrap());
        assert_eq!(fs::read(&q).unwrap(), b"three");
        assert!(!tmp.exists());
    }
}
