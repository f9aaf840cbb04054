//! Filesystem front ends over `snapshot-store`'s read API: every snapshot of a store as a
//! read-only directory.
//!
//! [`view::View`] is the namespace (inodes, attributes, listings, reads) and knows nothing of any
//! filesystem API; [`fuse`] adapts it to FUSE through fuser (Linux, macOS with macFUSE). Another
//! front end (Dokan on Windows, WebDAV, NFS) is one more adapter over the same view. This crate
//! does not know how deltas are encoded: it only opens versions and reads them at offsets.
#![warn(missing_docs)]

pub mod errno;
pub mod view;

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub mod fuse;
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub mod session;

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub use session::{MountError, MountOptions, Mounted, mount};
pub use view::XattrPolicy;
