//! One module per subcommand; `run` dispatches.

mod cat;
mod forget;
mod init;
mod list;
mod log;
pub mod mount;
mod policy;
mod prune;
mod restore;
mod serve;
mod track;
mod verify;
mod write;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, anyhow};
use snapshot_store::Store;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let store_dir = cli.store;
    let cache_dir = cli.cache_dir.or_else(default_cache_dir);
    match cli.command {
        Command::Init {
            policy,
            keep,
            retention,
        } => init::run(&store_path(store_dir)?, &policy, &keep, &retention),
        Command::Write {
            source,
            policy,
            json,
            no_wait,
            changed_ranges,
            verify_sample,
            time,
        } => write::run(
            &open(store_dir)?,
            &source,
            &policy,
            write::Tracking {
                changed_ranges,
                verify_sample,
            },
            write::Run {
                json,
                wait: !no_wait,
                time_ns: time,
            },
        ),
        Command::Forget {
            snapshots,
            keep,
            prune,
            dry_run,
            json,
            no_wait,
        } => forget::run(
            &open(store_dir)?,
            &forget::Args {
                snapshots: &snapshots,
                keep: &keep,
                prune,
                dry_run,
                json,
                wait: !no_wait,
            },
        ),
        Command::Prune { dry_run, json, no_wait } => prune::run(&open(store_dir)?, dry_run, json, !no_wait),
        Command::Policy { action } => policy::run(&open(store_dir)?, &action),
        Command::List { json } => list::run(&open_reader(store_dir)?, json),
        Command::Log { path, json } => log::run(&open_reader(store_dir)?, &path, json),
        Command::Cat { snapshot, path } => cat::run(&open_reader(store_dir)?, &snapshot, &path),
        Command::Restore { snapshot, target, path } => {
            restore::run(&open_reader(store_dir)?, &snapshot, &target, path.as_deref())
        }
        Command::Verify { read_data, json } => verify::run(&open_reader(store_dir)?, read_data, json),
        Command::Track { source } => track::run(&open(store_dir)?, &source),
        Command::Mount(args) => mount::run(&store_path(store_dir)?, &args, cache_dir.as_deref()),
        Command::Serve(args) => serve::run(&store_path(store_dir)?, &args, cache_dir.as_deref()),
    }
}

/// A flag set by SIGINT, SIGTERM or SIGHUP (Ctrl-C on Windows), for commands that run until
/// told to stop.
fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    #[cfg(unix)]
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&stop))?;
    Ok(stop)
}

/// The platform's cache directory for backup-fs, if the environment names one.
fn default_cache_dir() -> Option<PathBuf> {
    let base = if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA").map(PathBuf::from)
    } else {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
    };
    base.map(|b| b.join("backup-fs"))
}

fn store_path(dir: Option<PathBuf>) -> Result<PathBuf> {
    let dir = dir.ok_or_else(|| anyhow!("no store given: pass --store DIR or set BACKUP_FS_STORE"))?;
    let Some(text) = dir.to_str() else {
        return Ok(dir);
    };
    match snapshot_store::StoreLocation::parse(text, false)? {
        snapshot_store::StoreLocation::Local(_) => Ok(dir),
        snapshot_store::StoreLocation::S3(at) => anyhow::bail!(
            "store {at} is an S3 location (bucket {} at {}); this build of backup-fs keeps stores \
             in local directories only",
            at.bucket,
            at.endpoint()
        ),
    }
}

/// Opens the store named on the command line.
pub fn open(dir: Option<PathBuf>) -> Result<Store> {
    let dir = store_path(dir)?;
    Store::open(&dir).with_context(|| format!("cannot open store {}", dir.display()))
}

/// Opens the store at `dir` for a long-running reader (mount, serve) with `cache_size` bytes of
/// decoded data kept in memory.
pub fn open_serving(dir: &std::path::Path, cache_size: u64) -> Result<Store> {
    let opts = snapshot_store::StoreOptions {
        cache_bytes: usize::try_from(cache_size).unwrap_or(usize::MAX),
    };
    Store::open_with(dir, opts).with_context(|| format!("cannot open store {}", dir.display()))
}

/// Opens the store named on the command line and registers this process as a reader, so that
/// a prune running meanwhile keeps what it reads.
pub fn open_reader(dir: Option<PathBuf>) -> Result<Store> {
    let store = open(dir)?;
    if let Err(e) = store.register_reader() {
        // Reading goes on unregistered: a prune then keeps what it needs only for its grace period.
        eprintln!(
            "backup-fs: note: cannot register as a reader of {} ({e}); a prune running meanwhile may remove what this reads after its grace period",
            store.root().display()
        );
    }
    Ok(store)
}

/// A snapshot path argument as bytes (`/` separated, relative to the snapshot root).
pub fn path_arg(p: &str) -> Vec<u8> {
    p.as_bytes().to_vec()
}
