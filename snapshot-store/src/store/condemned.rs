//! Prune's list of condemned files (`prune/condemned`): loaded by `prune` (to carry over when
//! each file was condemned) and `verify` (to tell files waiting for deletion from leftovers).

use std::path::PathBuf;

use super::backend::Key;
use super::{Store, WriterLock};
use crate::error::Result;
use crate::format::FormatVersion;
use crate::format::condemned::{CondemnedList, StoreFile};
use crate::format::envelope::{self, Kind};

/// The list's key.
const CONDEMNED_KEY: &str = "prune/condemned";

impl Store {
    /// The path of a condemned file, relative to the store (for messages).
    pub(crate) fn store_file_path(&self, file: &StoreFile) -> PathBuf {
        PathBuf::from(store_file_key(file).as_str())
    }

    /// The condemned list, if there is one.
    pub(crate) fn condemned_list(&self) -> Result<Option<CondemnedList>> {
        let key = Key::new(CONDEMNED_KEY);
        let Some(bytes) = self.backend().read_current(&key)? else {
            return Ok(None);
        };
        let what = format!("condemned list ({})", self.backend().describe(&key));
        CondemnedList::decode(&envelope::open(Kind::Condemned, &bytes, &what)?, &what).map(Some)
    }

    /// Replaces the condemned list (atomically), or removes it when `list` has no entries.
    pub(crate) fn write_condemned_list(&self, _lock: &WriterLock, list: &CondemnedList) -> Result<()> {
        let key = Key::new(CONDEMNED_KEY);
        if list.entries.is_empty() {
            self.backend().delete(&key)?;
            return self.backend().flush_deletes("prune");
        }
        let sealed = envelope::seal_as(Kind::Condemned, FormatVersion::V2, &list.encode());
        self.backend().replace(&key, &sealed)
    }
}

/// The key of a condemned file.
pub(crate) fn store_file_key(file: &StoreFile) -> Key {
    match file {
        StoreFile::Version(v) => Key::version(v),
        StoreFile::Object(o) => Key::object(o),
    }
}
