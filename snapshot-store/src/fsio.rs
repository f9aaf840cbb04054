//! Durable file operations: write to a temporary name, flush, rename into place, flush the
//! directory. A crash at any instant leaves either the old state or the new one, never a torn file
//! under its final name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoContext, Result};

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
            Err(e) => return Err(crate::Error::io(path, e.into())),
        }
    }
    match fs::hard_link(tmp, path) {
        Ok(()) => {
            fs::remove_file(tmp).at(tmp)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(crate::Error::io(path, e)),
    }
}

/// Reads a whole file, naming it in errors.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).at(path)
}

/// Creates `dir` and its parents.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).at(dir)
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
