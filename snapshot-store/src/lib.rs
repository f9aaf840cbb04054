//! snapshot-store: backups of files as full copies plus chains of deltas.
#![warn(missing_docs)]

pub mod cache;
pub mod changelog;
pub mod codec;
pub mod delta;
pub mod envelope;
pub mod error;
pub mod extent;
pub mod fiemap;
pub mod filewrite;
pub mod fsio;
pub mod hashtree;
pub mod id;
pub mod matcher;
pub mod meta;
pub mod object;
pub mod policy;
pub mod progress;
pub mod ranges;
pub mod read;
pub mod reflink;
pub mod restore;
pub mod rolling;
pub mod runs;
pub mod signature;
pub mod snapshot;
pub mod source;
pub mod staging;
pub mod store;
pub mod timefmt;
pub mod tracked;
pub mod verify;
pub mod version;
pub mod write;

pub use error::{Error, Result};
pub use id::{ObjectId, VersionId};
