//! Data objects in the store: opening one and reading its verified frames, and writing a new
//! one to a temporary file; the local frame cache of a remote store. The byte layout is
//! `format::object`.

mod mirror;
mod reader;
mod writer;

pub(crate) use mirror::FrameCache;
pub(crate) use reader::{Access, DataObject};
pub(crate) use writer::{DataObjectWriter, FinishedObject, LiteralSink};
