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

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprint!("{}", report(&err));
            ExitCode::FAILURE
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

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<snapshot_store::Error>()
                .and_then(snapshot_store::Error::io_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}
