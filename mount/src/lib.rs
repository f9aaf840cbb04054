//! Filesystem front ends over `snapshot-store`'s read API: every snapshot of a store as a
//! read-only directory.
//!
//! [`View`] is the namespace (inodes, attributes, paged listings, reads) and knows nothing of any
//! filesystem API; its errors are [`ViewError`]s, each of a neutral [`ErrorClass`]. A front end
//! is a thin adapter over the view with one table from class to its own error codes: [`fuse`]
//! adapts it to FUSE through fuser (Linux, macOS with macFUSE) with an errno table; [`webdav`]
//! serves it over HTTP (every platform) with a table of HTTP statuses; [`dokan`] adapts it to
//! Dokan (Windows) with a table of NTSTATUS values. This crate does not know how
//! deltas are encoded: it only opens versions and reads them at offsets.
#![warn(missing_docs)]

pub mod dokan;
mod error;
pub mod view;
pub mod webdav;

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub mod fuse;

pub use error::{ErrorClass, ViewError, ViewResult};
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub use fuse::session::{MountError, MountOptions, Mounted, mount};
pub use view::{View, XattrPolicy};
pub use webdav::{Credentials, ServeError, TlsFiles, WebdavOptions, WebdavServer};
