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

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("backup-fs: error: {err}");
            let mut source = err.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
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
