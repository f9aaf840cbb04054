//! Replacing version records in place (format version 2, delta merging): a record keeps its id
//! and its content, and only how it is stored changes. The new records are first written
//! durably as `prune/merge/<hex>`; creating `prune/merge/COMMIT` (durably) is the commit point;
//! then each replaces `versions/<xx>/<hex>` and the journal is removed, marker last. A crash
//! before the marker leaves every old record; after it, the next writer or prune finishes the
//! replacements (`finish_replacements`) before it reads any record. Any mix of old and new
//! records reads the same bytes, because prune deletes nothing an old record needs until no
//! reader can hold one (see `readers`). The same keys work in a directory (each replacement
//! a rename) and in a bucket (each a `PUT`).

use super::backend::Key;
use super::{Store, WriterLock};
use crate::error::{IoContext, Result};
use crate::failpoint::{self, Point};
use crate::format::envelope::{self, Kind};
use crate::format::version::FileVersion;
use crate::id::VersionId;

/// The journal's directory.
const MERGE_DIR: &str = "prune/merge";

fn commit_key() -> Key {
    Key::new(format!("{MERGE_DIR}/COMMIT"))
}

fn staged_key(id: &VersionId) -> Key {
    Key::new(format!("{MERGE_DIR}/{}", id.to_hex()))
}

impl Store {
    /// True when a replacement committed but not finished is waiting (a crash interrupted it).
    pub(crate) fn replacements_pending(&self) -> bool {
        self.backend().exists(&commit_key()).unwrap_or(true)
    }

    /// Replaces the records of `records` (which must exist, with the same ids) as described in
    /// the module doc. Each is sealed as the format version of its layout
    /// ([`FileVersion::format_version`]).
    pub(crate) fn replace_versions(&self, lock: &WriterLock, records: &[FileVersion]) -> Result<()> {
        self.finish_replacements(lock)?;
        self.discard_journal()?;
        self.begin_changes(lock)?;
        for v in records {
            let sealed = envelope::seal_as(Kind::Version, v.format_version(), &v.encode());
            self.backend().replace(&staged_key(&v.id), &sealed)?;
        }
        let dir = self.root().join("prune").join("merge");
        failpoint::check(Point::JournalStaged, self.root()).at(&dir)?;
        self.backend().replace(&commit_key(), b"")?;
        failpoint::check(Point::JournalCommit, self.root()).at(dir.join("COMMIT"))?;
        self.finish_replacements(lock)?;
        Ok(())
    }

    /// Finishes a committed replacement (installs what is left, removes the journal) and
    /// returns how many records it installed; does nothing when none is committed. Call with the
    /// writer lock held, before reading records.
    pub(crate) fn finish_replacements(&self, _lock: &WriterLock) -> Result<usize> {
        if !self.backend().exists(&commit_key())? {
            return Ok(0);
        }
        let mut installed = 0;
        for (staged, _) in self.backend().list(MERGE_DIR)? {
            let Some(id) = VersionId::from_hex(staged.file_name()) else {
                continue;
            };
            // A staged record is installed only if it reads back as the record it replaces:
            // otherwise the old one stays, which reads the same bytes.
            let what = format!("staged record {}", self.backend().describe(&staged));
            let valid = (self.backend().read_current(&staged)?).filter(|bytes| {
                envelope::open_versioned(Kind::Version, bytes, &what)
                    .and_then(|(format, p)| FileVersion::decode(&p, format, &id, &what))
                    .is_ok()
            });
            let dest = Key::version(&id);
            if let Some(bytes) = valid
                && self.backend().exists(&dest)?
            {
                self.backend().replace(&dest, &bytes)?;
                installed += 1;
                let path = self.root().join(dest.as_str());
                failpoint::check(Point::JournalRename, self.root()).at(&path)?;
            }
            self.backend().delete(&staged)?;
        }
        // The records are in place: drop what this process cached of the old ones.
        self.drop_record_caches();
        self.backend().flush_deletes(MERGE_DIR)?;
        self.backend().delete(&commit_key())?;
        self.backend().flush_deletes(MERGE_DIR)?;
        Ok(installed)
    }

    /// Removes what an uncommitted replacement left (prune does, before staging a new one).
    pub(crate) fn discard_journal(&self) -> Result<()> {
        if self.backend().exists(&commit_key())? {
            return Ok(()); // committed: finish_replacements installs it
        }
        for (key, _) in self.backend().list(MERGE_DIR)? {
            self.backend().delete(&key)?;
        }
        self.backend().flush_deletes(MERGE_DIR)
    }
}
