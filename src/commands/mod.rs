//! One module per subcommand; `run` dispatches.

mod cat;
mod diff;
mod entries;
mod find;
mod forget;
mod generate;
mod init;
mod list;
mod log;
mod ls;
pub mod mount;
mod policy;
mod prune;
mod restore;
mod serve;
mod stats;
mod track;
mod verify;
mod write;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use snapshot_store::{RemoteOptions, Store, StoreLocation, StoreOptions};

use crate::cli::{AddressingArg, Cli, Command, RemoteArgs};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let cache_dir = cli.cache_dir.or_else(default_cache_dir);
    let store_dir = StoreArg {
        given: cli.store,
        allow_http: cli.remote.allow_http,
        options: store_options(&cli.remote, cache_dir.clone()),
    };
    let store_dir = &store_dir;
    match cli.command {
        Command::Init {
            create_bucket,
            policy,
            keep,
            retention,
        } => init::run(store_dir, create_bucket, &policy, &keep, &retention),
        Command::Write {
            source,
            policy,
            excludes,
            json,
            no_wait,
            changed_ranges,
            verify_sample,
            time,
        } => write::run(
            &store_dir.open()?,
            &source,
            &policy,
            &excludes,
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
            &store_dir.open()?,
            &forget::Args {
                snapshots: &snapshots,
                keep: &keep,
                prune,
                dry_run,
                json,
                wait: !no_wait,
            },
        ),
        Command::Prune { dry_run, json, no_wait } => prune::run(&store_dir.open()?, dry_run, json, !no_wait),
        Command::Policy { action } => policy::run(&store_dir.open()?, &action),
        Command::List { json } => list::run(&store_dir.open_reader()?, json),
        Command::Log { path, json } => log::run(&store_dir.open_reader()?, &path, json),
        Command::Cat { snapshot, path } => cat::run(&store_dir.open_reader()?, &snapshot, &path),
        Command::Ls {
            snapshot,
            path,
            long,
            recursive,
            json,
        } => ls::run(
            &store_dir.open_reader()?,
            &snapshot,
            path.as_deref(),
            &ls::Options { long, recursive, json },
        ),
        Command::Diff {
            older,
            newer,
            path,
            json,
        } => diff::run(&store_dir.open_reader()?, &older, &newer, path.as_deref(), json),
        Command::Find {
            patterns,
            snapshots,
            ignore_case,
            json,
        } => find::run(&store_dir.open_reader()?, &patterns, &snapshots, ignore_case, json),
        Command::Completions { shell } => generate::completions(shell),
        Command::Man { dir } => generate::man(dir.as_deref()),
        Command::Stats { snapshots, json } => stats::run(&store_dir.open_reader()?, &snapshots, json),
        Command::Restore {
            snapshot,
            target,
            path,
            select,
        } => restore::run(&store_dir.open_reader()?, &snapshot, &target, path.as_deref(), &select),
        Command::Verify { read_data, json } => verify::run(&store_dir.open_reader()?, read_data, json),
        Command::Track { source } => track::run(&store_dir.open()?, &source),
        Command::Mount(args) => mount::run(store_dir, &args, cache_dir.as_deref()),
        Command::Serve(args) => serve::run(store_dir, &args, cache_dir.as_deref()),
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

/// The store the command line names, and how to open it.
pub struct StoreArg {
    /// `--store` or `BACKUP_FS_STORE`.
    given: Option<PathBuf>,
    /// `--allow-http`.
    allow_http: bool,
    /// Options for opening it.
    options: StoreOptions,
}

/// The store options the remote arguments and the cache directory give.
fn store_options(remote: &RemoteArgs, cache_dir: Option<PathBuf>) -> StoreOptions {
    StoreOptions {
        cache_dir,
        remote: RemoteOptions {
            connections: remote.connections.max(1),
            retries: remote.retries,
            virtual_host: match remote.s3_addressing {
                AddressingArg::Auto => None,
                AddressingArg::Path => Some(false),
                AddressingArg::Virtual => Some(true),
            },
            lock_ttl: Duration::from_secs(remote.lock_ttl.max(1)),
            unsafe_no_conditional_writes: remote.unsafe_no_conditional_writes,
            ..RemoteOptions::default()
        },
        frame_cache_bytes: remote.disk_cache_size,
        ..StoreOptions::default()
    }
}

impl StoreArg {
    /// Where the store is.
    pub fn location(&self) -> Result<StoreLocation> {
        let dir =
            (self.given.as_ref()).ok_or_else(|| anyhow!("no store given: pass --store DIR or set BACKUP_FS_STORE"))?;
        let Some(text) = dir.to_str() else {
            return Ok(StoreLocation::Local(dir.clone()));
        };
        Ok(StoreLocation::parse(text, self.allow_http)?)
    }

    /// The store's name in messages.
    pub fn describe(&self) -> String {
        match self.location() {
            Ok(StoreLocation::Local(dir)) => dir.display().to_string(),
            Ok(StoreLocation::S3(at)) => at.to_string(),
            Err(_) => self.given.as_deref().unwrap_or(Path::new("")).display().to_string(),
        }
    }

    /// The options to open it with.
    pub fn options(&self) -> StoreOptions {
        self.options.clone()
    }

    /// Opens the store.
    pub fn open(&self) -> Result<Store> {
        self.open_with(self.options())
    }

    fn open_with(&self, options: StoreOptions) -> Result<Store> {
        let location = self.location()?;
        Store::open_at(&location, options).with_context(|| format!("cannot open store {}", self.describe()))
    }

    /// Opens the store for a long-running reader (mount, serve) with `cache_size` bytes of
    /// decoded data kept in memory.
    pub fn open_serving(&self, cache_size: u64) -> Result<Store> {
        self.open_with(StoreOptions {
            cache_bytes: usize::try_from(cache_size).unwrap_or(usize::MAX),
            ..self.options()
        })
    }

    /// Opens the store and registers this process as a reader, so that a prune running
    /// meanwhile keeps what it reads.
    pub fn open_reader(&self) -> Result<Store> {
        let store = self.open()?;
        if let Err(e) = store.register_reader() {
            // Reading goes on unregistered: a prune then keeps what it needs only for its grace period.
            eprintln!(
                "backup-fs: note: cannot register as a reader of {} ({e}); a prune running meanwhile may remove what this reads after its grace period",
                store.location()
            );
        }
        Ok(store)
    }
}

/// The `remote` object of `--json` reports: requests by kind, body bytes each way, retries.
pub fn remote_json(r: &snapshot_store::RemoteStats) -> serde_json::Value {
    serde_json::json!({
        "list": r.list,
        "head": r.head,
        "get": r.get,
        "put": r.put,
        "delete": r.delete,
        "bytes_up": r.bytes_up,
        "bytes_down": r.bytes_down,
        "retries": r.retries,
    })
}

/// A snapshot path argument as bytes (`/` separated, relative to the snapshot root).
pub fn path_arg(p: &str) -> Vec<u8> {
    p.as_bytes().to_vec()
}
