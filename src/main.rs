//! The `backup-fs` command line. All logic lives in `snapshot-store`; this is the adapter.

mod cli;
mod commands;
mod human;
mod progress;
mod tracking;

use std::process::ExitCode;

use clap::Parser;

/// Exit status when the command finished but some entries could not be handled (skipped files,
/// restore errors, problems found by verify).
pub const EXIT_PARTIAL: u8 = 3;

/// Exit status when what the command needs is not available on this machine (FUSE for `mount`,
/// fanotify pre-content events for `track`).
pub const EXIT_UNAVAILABLE: u8 = 4;

/// Exit statuses of failures to reach or recognise a store, one each, for scripts:
/// credentials missing or refused.
pub const EXIT_CREDENTIALS: u8 = 10;
/// The object store's endpoint cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 11;
/// The bucket does not exist.
pub const EXIT_NO_BUCKET: u8 = 12;
/// The directory or bucket prefix is not a store.
pub const EXIT_NOT_A_STORE: u8 = 13;
/// The store was written by a newer backup-fs.
pub const EXIT_NEWER_FORMAT: u8 = 14;
/// The object store kept throttling requests through every retry.
pub const EXIT_THROTTLED: u8 = 15;
/// The object store kept failing, or answered what an S3 server should not.
pub const EXIT_SERVER: u8 = 16;
/// Another writer took the remote store's writer lock over; nothing was committed.
pub const EXIT_LOCK_LOST: u8 = 17;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprint!("{}", report(&err));
            ExitCode::from(exit_status(&err))
        }
    }
}

/// The error and its causes, one a line, each said once: a cause whose text its effect's
/// message already ends with (`/x: No such file or directory` and then `No such file or
/// directory`) is left out.
fn report(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut last = String::new();
    for (i, cause) in err.chain().enumerate() {
        let text = cause.to_string();
        if i > 0 && last.ends_with(&text) {
            continue;
        }
        let prefix = if i == 0 { "backup-fs: error: " } else { "  caused by: " };
        out.push_str(prefix);
        out.push_str(&text);
        out.push('\n');
        last = text;
    }
    out
}

/// The exit status of a failed command: the one its store error has, else 1.
fn exit_status(err: &anyhow::Error) -> u8 {
    use snapshot_store::{Error, RemoteFailure};
    let Some(e) = err.chain().find_map(|e| e.downcast_ref::<Error>()) else {
        return 1;
    };
    match e {
        Error::Credentials(_) => EXIT_CREDENTIALS,
        Error::NotAStore { .. } => EXIT_NOT_A_STORE,
        Error::UnsupportedVersion { .. } => EXIT_NEWER_FORMAT,
        Error::LockLost { .. } => EXIT_LOCK_LOST,
        Error::Remote { kind, .. } => match kind {
            RemoteFailure::Denied => EXIT_CREDENTIALS,
            RemoteFailure::Unreachable => EXIT_UNREACHABLE,
            RemoteFailure::NoSuchBucket => EXIT_NO_BUCKET,
            RemoteFailure::Throttled => EXIT_THROTTLED,
            _ => EXIT_SERVER,
        },
        _ => 1,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<snapshot_store::Error>()
                .and_then(snapshot_store::Error::io_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}
