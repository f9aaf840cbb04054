//! `backup-fs track`: a daemon that records, with fanotify pre-content events (Linux 6.14+),
//! which ranges of which files under a source are written, into the store's change log, so that
//! change-tracked backups of filesystems without reflink (ext4) read only changed ranges.
//!
//! It is deliberately conservative. fanotify's pre-content event is the same for reads and writes;
//! an access counts as a read, and is not recorded, only when the blocked thread's system call
//! proves it (see `access`). Every recorded event also marks the file from its size at that moment
//! to the end (O_APPEND writes report
//! the wrong offset; truncation followed by growth leaves zeros), a file born after the epoch began
//! is marked whole, and a zero-length range means the whole file. What fanotify cannot see —
//! descriptors opened before the mark, stores into shared writable mappings, writes through loop
//! devices — is found by scanning /proc and /sys when the tracker starts and at every cut, and
//! those files are marked whole. A queue overflow taints the epoch; stopping taints the log. A
//! tainted or interrupted log is never used: the backup compares instead.
#![warn(missing_docs)]

#[cfg(target_os = "linux")]
mod access;
#[cfg(target_os = "linux")]
mod daemon;
#[cfg(target_os = "linux")]
mod fanotify;
#[cfg(target_os = "linux")]
mod scan;

#[cfg(target_os = "linux")]
pub use daemon::{TrackerError, run};
