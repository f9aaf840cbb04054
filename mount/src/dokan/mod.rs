//! The Dokan front end (Windows): Explorer sees every snapshot as a read-only drive or folder.
//!
//! The translation is platform-neutral and tested everywhere: names through the view's Windows
//! name encoder ([`crate::view::names`]), error classes as NTSTATUS ([`ntstatus`]), POSIX
//! attributes as Windows attributes and FILETIMEs ([`attributes`]), and which opens a
//! write-protected volume allows ([`access`]). The `FileSystemHandler` over the view and the
//! mount session are built for Windows only.

pub mod access;
pub mod attributes;
pub mod ntstatus;

#[cfg(windows)]
mod handler;
#[cfg(windows)]
mod session;

#[cfg(windows)]
pub use session::{DokanError, mount_and_wait};
