//! The platform layer, and the one place for platform `cfg`: durable and positioned file I/O,
//! entry metadata, sparse files, FIEMAP, clones, other processes. Everything above it is platform-independent.

pub(crate) mod clone;
pub(crate) mod fiemap;
pub(crate) mod file;
pub(crate) mod meta;
pub(crate) mod process;
pub(crate) mod sparse;
