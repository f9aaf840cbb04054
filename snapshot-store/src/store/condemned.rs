//! Prune's list of condemned files (`prune/condemned`): loaded by `prune` (to carry over when
//! each file was condemned) and `verify` (to tell files waiting for deletion from leftovers).

use std::fs;
use std::io;
use std::path::PathBuf;

use super::readers::PRUNE_DIR;
use super::{Store, WriterLock};
use crate::error::{Error, Result};
use crate::format::FormatVersion;
use crate::format::condemned::{CondemnedList, StoreFile};
use crate::format::envelope::{self, Kind};
use crate::os::file as fsio;

/// The list's file name inside [`PRUNE_DIR`].
const CONDEMNED_FILE: &str = "condemned";

impl Store {
    /// Path of the condemned list.
    fn condemned_path(&self) -> PathBuf {
        self.root().join(PRUNE_DIR).join(CONDEMNED_FILE)
    }

    /// The path of a condemned file.
    pub(crate) fn store_file_path(&self, file: &StoreFile) -> PathBuf {
        match file {
            StoreFile::Version(v) => self.version_path(v),
            StoreFile::Object(o) => self.object_path(o),
        }
    }

    /// The condemned list, if there is one.
    pub(crate) fn condemned_list(&self) -> Result<Option<CondemnedList>> {
        let path = self.condemned_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let what = format!("condemned list ({})", path.display());
        CondemnedList::decode(&envelope::open(Kind::Condemned, &bytes, &what)?, &what).map(Some)
    }

    /// Replaces the condemned list (atomically), or removes it when `list` has no entries.
    pub(crate) fn write_condemned_list(&self, _lock: &WriterLock, list: &CondemnedList) -> Result<()> {
        let dir = self.root().join(PRUNE_DIR);
        fsio::ensure_dir(&dir)?;
        let path = self.condemned_path();
        if list.entries.is_empty() {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io(&path, e)),
            }
        } else {
            let sealed = envelope::seal_as(Kind::Condemned, FormatVersion::V2, &list.encode());
            fsio::write_atomic(&path, &self.tmp_dir(), &sealed)?;
        }
        fsio::sync_dir(&dir)
    }
}
