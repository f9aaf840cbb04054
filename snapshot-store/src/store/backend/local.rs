//! A store in a local directory: files are written to `tmp/`, flushed, renamed into place
//! without replacing (`renameat2(RENAME_NOREPLACE)`, or link and unlink), and their directories
//! flushed; reads are positioned reads of open files.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;

use super::{Access, Backend, Blob, Key, LockHold, PutOutcome, ReaderHold, Staged, local_readers};
use crate::error::{Error, IoContext, Result};
use crate::failpoint::{self, Point};
use crate::os::file::{self as fsio, open_without_readahead, read_exact_at};
use crate::store::LiveReader;

/// Directory of reader registrations.
const READERS_DIR: &str = "readers";

/// Files smaller than this are read through their one open file whatever the access (readahead
/// cannot overshoot much, and a second descriptor per small file would be wasted).
const RANDOM_FILE_MIN: u64 = 256 << 10;

/// Parallel `fsync` calls at publication (they are bound by the device's latency).
const SYNC_THREADS: usize = 8;

/// A store directory.
#[derive(Debug)]
pub(crate) struct LocalBackend {
    root: PathBuf,
    tmp: PathBuf,
}

impl LocalBackend {
    /// The store in directory `root` (its spool is `root/tmp`).
    pub(crate) fn new(root: &Path) -> LocalBackend {
        LocalBackend {
            root: root.to_path_buf(),
            tmp: root.join("tmp"),
        }
    }

    /// The path of store file `key`.
    pub(crate) fn path(&self, key: &Key) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(key.as_str().split('/'));
        p
    }
}

/// The writer lock of a store directory: an OS lock on its `lock` file, which names the
/// holder's pid for a writer that finds it taken.
#[derive(Debug)]
struct FileLock {
    _file: File,
}

impl LockHold for FileLock {
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

impl Backend for LocalBackend {
    fn lock(&self, wait: bool) -> Result<Box<dyn LockHold>> {
        use std::io::{Read, Seek, Write};
        let path = self.root.join("lock");
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                if !wait {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    return Err(Error::Locked {
                        path: self.root.clone(),
                        holder: Some(holder.trim().to_string()).filter(|h| !h.is_empty()),
                    });
                }
                file.lock().at(&path)?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {}", std::process::id());
        let _ = file.flush();
        Ok(Box::new(FileLock { _file: file }))
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn describe(&self, key: &Key) -> String {
        self.path(key).display().to_string()
    }

    fn spool_dir(&self) -> &Path {
        &self.tmp
    }

    fn read(&self, key: &Key) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn open(&self, key: &Key) -> Result<Option<Box<dyn Blob>>> {
        let path = self.path(key);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let len = file.metadata().at(&path)?.len();
        Ok(Some(Box::new(LocalBlob {
            path,
            file,
            random_file: OnceLock::new(),
            len,
        })))
    }

    fn exists(&self, key: &Key) -> Result<bool> {
        let path = self.path(key);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn list(&self, dir: &str) -> Result<Vec<(Key, u64)>> {
        let mut out = Vec::new();
        list_into(&self.path(&Key::new(dir)), dir, &mut out)?;
        Ok(out)
    }

    fn publish(&self, files: &[Staged]) -> Result<()> {
        let root = &self.root;
        // (1) Flush contents. fsync calls are I/O-bound: run several at once.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(SYNC_THREADS)
            .build()
            .map_err(|e| Error::io("fsync pool", io::Error::other(e)))?;
        pool.install(|| {
            files.par_iter().try_for_each(|p| {
                File::open(&p.temp)
                    .and_then(|f| f.sync_all())
                    .and_then(|()| failpoint::check(Point::StagedFsync, root))
                    .at(&p.temp)
            })
        })?;
        // (2) Move into place.
        let mut dirs: HashSet<PathBuf> = HashSet::new();
        for p in files {
            let dest = self.path(&p.key);
            let parent = dest.parent().unwrap_or(Path::new("."));
            if dirs.insert(parent.to_path_buf()) && !parent.exists() {
                fsio::ensure_dir(parent)?;
                if let Some(grand) = parent.parent() {
                    dirs.insert(grand.to_path_buf());
                }
            }
            if !fsio::rename_noreplace(&p.temp, &dest)? {
                fs::remove_file(&p.temp).at(&p.temp)?;
            }
            failpoint::check(Point::StagedRename, root).at(&dest)?;
        }
        // (3) Flush the directories that received files.
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        pool.install(|| {
            dirs.par_iter().try_for_each(|d| {
                fsio::sync_dir(d)?;
                failpoint::check(Point::DirFsync, root).at(d)
            })
        })
    }

    fn publish_one(&self, file: &Staged) -> Result<PutOutcome> {
        File::open(&file.temp).and_then(|f| f.sync_all()).at(&file.temp)?;
        failpoint::check(Point::ManifestWrite, &self.root).at(&file.temp)?;
        let dest = self.path(&file.key);
        let dir = dest.parent().unwrap_or(Path::new("."));
        if !dir.exists() {
            fsio::ensure_dir(dir)?;
        }
        if fsio::rename_noreplace(&file.temp, &dest)? {
            failpoint::check(Point::ManifestRename, &self.root).at(&dest)?;
            fsio::sync_dir(dir)?;
            Ok(PutOutcome::Created)
        } else {
            fs::remove_file(&file.temp).at(&file.temp)?;
            Ok(PutOutcome::Exists)
        }
    }

    fn create(&self, key: &Key, bytes: &[u8]) -> Result<PutOutcome> {
        let (mut f, temp) = fsio::create_temp(&self.tmp, "create")?;
        let written = std::io::Write::write_all(&mut f, bytes).at(&temp);
        drop(f);
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        let staged = Staged { temp, key: key.clone() };
        let outcome = self.publish_one(&staged);
        if outcome.is_err() {
            let _ = fs::remove_file(&staged.temp);
        }
        outcome
    }

    fn replace(&self, key: &Key, bytes: &[u8]) -> Result<()> {
        let dest = self.path(key);
        if let Some(dir) = dest.parent()
            && !dir.exists()
        {
            fsio::ensure_dir(dir)?;
        }
        fsio::write_atomic(&dest, &self.tmp, bytes)
    }

    fn delete(&self, key: &Key) -> Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn flush_deletes(&self, dir: &str) -> Result<()> {
        let path = self.path(&Key::new(dir));
        if path.is_dir() { fsio::sync_dir(&path) } else { Ok(()) }
    }

    fn register_reader(&self, generation: u64) -> Result<Box<dyn ReaderHold>> {
        Ok(Box::new(local_readers::register(
            &self.root.join(READERS_DIR),
            generation,
        )?))
    }

    fn live_readers(&self, own: Option<&str>) -> Result<Vec<LiveReader>> {
        local_readers::live(&self.root.join(READERS_DIR), own)
    }
}

/// Adds every file under `path` (store directory `dir`) to `out`.
fn list_into(path: &Path, dir: &str, out: &mut Vec<(Key, u64)>) -> Result<()> {
    let entries = match fs::read_dir(path) {
        Ok(it) => it,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    for entry in entries {
        let entry = entry.at(path)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let kind = entry.file_type().at(entry.path())?;
        let key = format!("{dir}/{name}");
        if kind.is_dir() {
            list_into(&entry.path(), &key, out)?;
        } else if kind.is_file() {
            let len = entry.metadata().at(entry.path())?.len();
            out.push((Key::new(key), len));
        }
    }
    Ok(())
}

/// An open store file.
#[derive(Debug)]
struct LocalBlob {
    path: PathBuf,
    file: File,
    /// The same file opened a second time with readahead off, for [`Access::Random`]
    /// (readahead state belongs to an open file, so sequential readers keep theirs). Opened on
    /// first use; `None` if that failed (the main file is used then).
    random_file: OnceLock<Option<File>>,
    len: u64,
}

impl Blob for LocalBlob {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64, access: Access, what: &str) -> Result<()> {
        let file = match access {
            Access::Random if self.len >= RANDOM_FILE_MIN => self
                .random_file
                .get_or_init(|| open_without_readahead(&self.path))
                .as_ref()
                .unwrap_or(&self.file),
            _ => &self.file,
        };
        read_exact_at(file, buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::corrupt(
                    what,
                    format!("truncated (ends before byte {})", offset + buf.len() as u64),
                )
            } else {
                Error::io(&self.path, e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_reads_of_a_large_file_use_a_second_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..RANDOM_FILE_MIN as usize + 10).map(|i| (i * 7) as u8).collect();
        std::fs::write(dir.path().join("big"), &data).unwrap();
        let path = dir.path().join("big");
        let blob = LocalBlob {
            file: File::open(&path).unwrap(),
            path,
            random_file: OnceLock::new(),
            len: data.len() as u64,
        };
        let mut buf = [0u8; 10];
        blob.read_exact_at(&mut buf, 1000, Access::Sequential, "big").unwrap();
        assert!(blob.random_file.get().is_none());
        blob.read_exact_at(&mut buf, 5000, Access::Random, "big").unwrap();
        assert_eq!(&buf[..], &data[5000..5010]);
        #[cfg(target_os = "linux")]
        assert!(
            matches!(blob.random_file.get(), Some(Some(_))),
            "a second file was opened"
        );
        let err = blob
            .read_exact_at(&mut buf, data.len() as u64 - 5, Access::Random, "file big")
            .unwrap_err();
        assert!(err.to_string().contains("file big is corrupt: truncated"), "{err}");
    }
}
