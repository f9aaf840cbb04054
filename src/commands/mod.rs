//! One module per subcommand; `run` dispatches.

mod cat;
mod init;
mod list;
mod log;
pub mod mount;
mod restore;
mod track;
mod verify;
mod write;

use std::path::PathBuf;
use std::process::ExitCode;
#[cfg(unix)]
use std::sync::Arc;
#[cfg(unix)]
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, anyhow};
use snapshot_store::Store;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let store_dir = cli.store;
    match cli.command {
        Command::Init { policy } => init::run(&store_path(store_dir)?, &policy),
        Command::Write {
            source,
            policy,
            json,
            no_wait,
            changed_ranges,
            verify_sample,
        } => write::run(
            &open(store_dir)?,
            &source,
            &policy,
            write::Tracking {
                changed_ranges,
                verify_sample,
            },
            json,
            !no_wait,
        ),
        Command::List { json } => list::run(&open(store_dir)?, json),
        Command::Log { path, json } => log::run(&open(store_dir)?, &path, json),
        Command::Cat { snapshot, path } => cat::run(&open(store_dir)?, &snapshot, &path),
        Command::Restore { snapshot, target, path } => {
            restore::run(&open(store_dir)?, &snapshot, &target, path.as_deref())
        }
        Command::Verify { read_data, json } => verify::run(&open(store_dir)?, read_data, json),
        Command::Track { source } => track::run(&open(store_dir)?, &source),
        Command::Mount(args) => mount::run(&store_path(store_dir)?, &args),
    }
}

/// A flag set by SIGINT, SIGTERM or SIGHUP, for commands that run until told to stop.
#[cfg(unix)]
fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

fn store_path(dir: Option<PathBuf>) -> Result<PathBuf> {
    dir.ok_or_else(|| anyhow!("no store given: pass --store DIR or set BACKUP_FS_STORE"))
}

/// Opens the store named on the command line.
pub fn open(dir: Option<PathBuf>) -> Result<Store> {
    let dir = store_path(dir)?;
    Store::open(&dir).with_context(|| format!("cannot open store {}", dir.display()))
}

/// A snapshot path argument as bytes (`/` separated, relative to the snapshot root).
pub fn path_arg(p: &str) -> Vec<u8> {
    p.as_bytes().to_vec()
}
