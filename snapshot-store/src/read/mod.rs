//! The read layer: random-access reads of any version (`reader`), streaming whole versions
//! (`stream`), restoring trees (`restore`), a file's history across snapshots (`history`) and
//! checking a whole store (`verify`). Readers never lock the store and never write to it.

pub(crate) mod history;
pub(crate) mod reader;
pub(crate) mod restore;
pub(crate) mod stream;
pub(crate) mod verify;
