//! Replacing version records in place (format version 2, delta merging): a record keeps its id
//! and its content, and only how it is stored changes. The new records are first written and
//! flushed to `prune/merge/<hex>`; creating `prune/merge/COMMIT` (flushed) is the commit point;
//! then each is renamed over `versions/<xx>/<hex>` and the marker and directory are removed. A
//! crash before the marker leaves every old record; after it, the next writer or prune finishes
//! the renames (`finish_replacements`) before it reads any record. Any mix of old and new records
//! reads the same bytes, because prune deletes nothing an old record needs until no reader can
//! hold one (see `readers`).

use std::fs;
use std::io;
use std::path::PathBuf;

use super::readers::PRUNE_DIR;
use super::{Store, WriterLock};
use crate::error::{Error, IoContext, Result};
use crate::failpoint::{self, Point};
use crate::format::FormatVersion;
use crate::format::envelope::{self, Kind};
use crate::format::version::{FileVersion, VersionKind};
use crate::id::VersionId;
use crate::os::file as fsio;

/// The journal's directory inside [`PRUNE_DIR`].
const MERGE_DIR: &str = "merge";
/// The commit marker inside it.
const COMMIT: &str = "COMMIT";

impl Store {
    fn journal_dir(&self) -> PathBuf {
        self.root().join(PRUNE_DIR).join(MERGE_DIR)
    }

    /// True when a replacement committed but not finished is waiting (a crash interrupted it).
    pub(crate) fn replacements_pending(&self) -> bool {
        self.journal_dir().join(COMMIT).exists()
    }

    /// Replaces the records of `records` (which must exist, with the same ids) as described in
    /// the module doc. A merged full is sealed as format version 2, any other record as 1.
    pub(crate) fn replace_versions(&self, lock: &WriterLock, records: &[FileVersion]) -> Result<()> {
        self.finish_replacements(lock)?;
        let dir = self.journal_dir();
        let _ = fs::remove_dir_all(&dir);
        fsio::ensure_dir(&self.root().join(PRUNE_DIR))?;
        fsio::ensure_dir(&dir)?;
        for v in records {
            let version = if v.kind == VersionKind::Merged {
                FormatVersion::V2
            } else {
                FormatVersion::V1
            };
            let sealed = envelope::seal_as(Kind::Version, version, &v.encode());
            let path = dir.join(v.id.to_hex());
            let file = fs::File::create(&path).at(&path)?;
            fsio::write_all_at(&file, &sealed, 0).at(&path)?;
            file.sync_all().at(&path)?;
        }
        fsio::sync_dir(&dir)?;
        failpoint::check(Point::JournalStaged, self.root()).at(&dir)?;
        let marker = dir.join(COMMIT);
        fs::File::create(&marker).and_then(|f| f.sync_all()).at(&marker)?;
        fsio::sync_dir(&dir)?;
        failpoint::check(Point::JournalCommit, self.root()).at(&marker)?;
        self.finish_replacements(lock)?;
        Ok(())
    }

    /// Finishes a committed replacement (renames what is left, flushes, removes the journal) or
    /// discards an uncommitted one; returns how many records it renamed. Call with the writer
    /// lock held, before reading records.
    pub(crate) fn finish_replacements(&self, _lock: &WriterLock) -> Result<usize> {
        let dir = self.journal_dir();
        if !dir.exists() {
            return Ok(0);
        }
        if !dir.join(COMMIT).exists() {
            fs::remove_dir_all(&dir).at(&dir)?;
            return Ok(0);
        }
        let mut renamed = 0;
        let mut dirs = Vec::new();
        for e in fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let Some(id) = e.file_name().to_str().and_then(VersionId::from_hex) else {
                continue;
            };
            let staged = e.path();
            // A staged record is installed only if it reads back as the record it replaces:
            // otherwise the old one stays, which reads the same bytes.
            let ok = fs::read(&staged).ok().is_some_and(|bytes| {
                let what = format!("staged record {}", staged.display());
                envelope::open(Kind::Version, &bytes, &what)
                    .and_then(|p| FileVersion::decode(&p, &id, &what))
                    .is_ok()
            });
            let dest = self.version_path(&id);
            if ok && dest.exists() {
                fs::rename(&staged, &dest).at(&dest)?;
                renamed += 1;
                if let Some(parent) = dest.parent() {
                    dirs.push(parent.to_path_buf());
                }
                failpoint::check(Point::JournalRename, self.root()).at(&dest)?;
            } else {
                fs::remove_file(&staged).at(&staged)?;
            }
        }
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            fsio::sync_dir(d)?;
        }
        // The records are in place: drop what this process cached of the old ones.
        self.drop_record_caches();
        match fs::remove_file(dir.join(COMMIT)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dir.join(COMMIT), e)),
        }
        fs::remove_dir_all(&dir).at(&dir)?;
        fsio::sync_dir(&self.root().join(PRUNE_DIR))?;
        Ok(renamed)
    }
}
