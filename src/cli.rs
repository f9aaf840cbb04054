//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use snapshot_store::{BlockSize, DeltaMode, KeepRules, Percent, PolicyOverrides, Span, parse_optional, parse_size};

/// backup-fs: backups of big, slowly changing files as full copies plus delta chains.
#[derive(Debug, Parser)]
#[command(name = "backup-fs", version, about, long_about = None)]
pub struct Cli {
    /// The store: a directory, or a bucket prefix of an S3-compatible object store,
    /// s3:https://HOST[:PORT]/BUCKET[/PREFIX] (credentials from AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or the AWS config files).
    #[arg(long, global = true, env = "BACKUP_FS_STORE", value_name = "STORE")]
    pub store: Option<PathBuf>,

    #[command(flatten)]
    pub remote: RemoteArgs,

    /// Where to keep data that can be rebuilt from the store (the versions index of mounts and
    /// servers; for a store in an object store, its upload spool and local state); default: $XDG_CACHE_HOME/backup-fs (~/.cache/backup-fs; on Windows
    /// %LOCALAPPDATA%\backup-fs). Safe to delete at any time.
    #[arg(long, global = true, env = "BACKUP_FS_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// How to reach a store in an object store (ignored for a directory).
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Uploads and large reads in flight at once (a restore fetches 8N small files at once).
    #[arg(long, global = true, value_name = "N", default_value_t = snapshot_store::DEFAULT_CONNECTIONS, env = "BACKUP_FS_CONNECTIONS")]
    pub connections: usize,
    /// Send the store over plain http to a host other than loopback (unencrypted: anyone on
    /// the path can read and change it).
    #[arg(long, global = true)]
    pub allow_http: bool,
    /// Bucket addressing: `auto` (virtual-host for AWS, path-style elsewhere), `path`
    /// (HOST/BUCKET) or `virtual` (BUCKET.HOST).
    #[arg(long, global = true, value_enum, value_name = "STYLE", default_value_t = AddressingArg::Auto)]
    pub s3_addressing: AddressingArg,
    /// Write to a server that ignores conditional writes (If-None-Match, If-Match), which the
    /// writer lock and the commit rely on: safe only while the store never has two writers.
    #[arg(long, global = true)]
    pub unsafe_no_conditional_writes: bool,
    /// Attempts after the first for an object-store request that failed in a way a retry may
    /// mend (dropped connection, throttling, server error).
    #[arg(
        long,
        global = true,
        value_name = "N",
        default_value_t = 6,
        env = "BACKUP_FS_RETRIES"
    )]
    pub retries: u32,
    /// Seconds the writer lock of a remote store stays valid without a refresh.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 120,
        env = "BACKUP_FS_LOCK_TTL",
        hide = true
    )]
    pub lock_ttl: u64,
    /// Disk space the frame cache of a remote store may take in the cache directory (frames
    /// read once are not fetched again; the least recently used objects go first); 0 keeps no
    /// frames on disk.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size, default_value = "4GiB", env = "BACKUP_FS_DISK_CACHE_SIZE")]
    pub disk_cache_size: u64,
}

/// Bucket addressing of an S3 store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AddressingArg {
    /// Virtual-host for AWS endpoints, path-style for others.
    Auto,
    /// `HOST/BUCKET/KEY`.
    Path,
    /// `BUCKET.HOST/KEY`.
    Virtual,
}

/// Arguments of `mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// An empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Memory for decoded data shared by all readers (manifests and maps may use as much
    /// again).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256MiB")]
    pub cache_size: u64,
    /// Threads serving requests.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub threads: usize,
    /// Let other users see the mount (the backed-up permissions still apply).
    #[arg(long)]
    pub allow_other: bool,
    /// Serve extended attributes: `auto` when the store records any at mount time (a store
    /// without them lists faster: `ls -l` asks every file for one), `on`, or `off`.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = XattrsArg::Auto)]
    pub xattrs: XattrsArg,
    /// macOS: macFUSE's `noappledouble` (no `._name` lookups; hides backed-up `._*` files).
    #[arg(long)]
    pub noappledouble: bool,
    /// macOS: macFUSE's `noapplexattr` (hides `com.apple.*` attributes).
    #[arg(long)]
    pub noapplexattr: bool,
}

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve WebDAV on ADDR, e.g. 127.0.0.1:8080 (port 0 picks a free one). Addresses other than
    /// loopback also need --listen-any, a password and TLS.
    #[arg(long, value_name = "ADDR")]
    pub webdav: std::net::SocketAddr,
    /// Allow an address other than loopback.
    #[arg(long)]
    pub listen_any: bool,
    /// The user name clients log in with when a password is set.
    #[arg(long, value_name = "NAME", default_value = "backup-fs")]
    pub user: String,
    /// Require this password (the file's first line); or set BACKUP_FS_WEBDAV_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Memory for decoded data shared by all readers.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256MiB")]
    pub cache_size: u64,
    /// Threads serving connections (reads run on threads of their own).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub threads: usize,
}

/// When `mount` serves extended attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XattrsArg {
    /// When the store records any.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a store (a new or empty directory, or an empty bucket prefix); the policy given
    /// becomes its default.
    Init {
        /// Create the bucket of an S3 store if it does not exist.
        #[arg(long)]
        create_bucket: bool,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        keep: KeepArgs,
        #[command(flatten)]
        retention: RetentionArgs,
    },
    /// Record one snapshot of SOURCE (a directory or a single file) and print its id.
    Write {
        /// The directory or file to back up.
        source: PathBuf,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        excludes: ExcludeArgs,
        /// Print a JSON summary instead of the id.
        #[arg(long)]
        json: bool,
        /// Fail at once if another write holds the store, instead of waiting for it.
        #[arg(long)]
        no_wait: bool,
        /// Changed ranges from an outside tracker: JSON lines such as
        /// {"path": "vm/disk.img", "ranges": [[0, 4096], [1048576, 65536]]} (offset, length), or
        /// {"path": "...", "whole": true}. Implies --change-tracking for this run.
        #[arg(long, value_name = "FILE")]
        changed_ranges: Option<PathBuf>,
        /// With change tracking: blocks taken as unchanged that are re-read and checked per file.
        #[arg(long, value_name = "N", default_value_t = 16)]
        verify_sample: u32,
        /// Record the snapshot as taken at this time (RFC 3339, e.g. 2026-01-05T03:00:00Z), which
        /// must be later than the newest snapshot: for importing old backups.
        #[arg(long, value_name = "TIMESTAMP", value_parser = parse_time)]
        time: Option<i64>,
    },
    /// Remove snapshots: those named, or those the keep rules (given, else the store's) do not
    /// keep. The newest snapshot of each source is always kept by rules. Data stays until
    /// `prune` (or --prune).
    Forget {
        /// Snapshots to remove (ids, unique prefixes, or `latest`); no rule applies then.
        snapshots: Vec<String>,
        #[command(flatten)]
        keep: KeepArgs,
        /// Prune afterwards.
        #[arg(long)]
        prune: bool,
        /// Show what would be removed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
        /// Fail at once if another write holds the store, instead of waiting for it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete what no snapshot needs and say what was freed. Files a running reader (a mount)
    /// may still use are left for the next prune.
    Prune {
        /// Show what would be freed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
        /// Fail at once if another write holds the store, instead of waiting for it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show or change the store's stored policy (delta and retention).
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// List snapshots, oldest first.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show the history of one file across snapshots.
    Log {
        /// Path relative to the snapshot root.
        path: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Write one file's content of a snapshot to standard output.
    Cat {
        /// Snapshot id (as `list` prints it, a unique prefix of one) or `latest`.
        snapshot: String,
        /// Path relative to the snapshot root.
        path: String,
    },
    /// List what a snapshot holds at a path (its root by default), without mounting it.
    Ls {
        /// Snapshot id (as `list` prints it, a unique prefix of one) or `latest`.
        snapshot: String,
        /// Path relative to the snapshot root; a directory lists what it holds.
        path: Option<String>,
        /// Permissions, owner, group, size and modification time, as `ls -l`.
        #[arg(long, short = 'l')]
        long: bool,
        /// List everything under the path, depth first.
        #[arg(long, short = 'R')]
        recursive: bool,
        /// Print a JSON array (one entry a line).
        #[arg(long)]
        json: bool,
    },
    /// Show what changed from one snapshot to another (added, removed, modified, other kind,
    /// metadata only), from their manifests: no content is read.
    Diff {
        /// The older snapshot (id, unique prefix, or `latest`).
        older: String,
        /// The newer snapshot.
        newer: String,
        /// Compare only this path of both.
        path: Option<String>,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Find entries whose name matches PATTERN in every snapshot (newest first). A pattern is a
    /// shell glob (`*.jpg`, `report-202?.*`); one holding a `/` matches the whole path from the
    /// snapshot root, where `**` crosses directories (`work/**/*.rs`).
    Find {
        /// Glob patterns; an entry matching any is listed.
        #[arg(required = true)]
        patterns: Vec<String>,
        /// Search only this snapshot (repeatable).
        #[arg(long = "snapshot", short = 's', value_name = "SNAPSHOT")]
        snapshots: Vec<String>,
        /// Match letters of either case.
        #[arg(long, short = 'i')]
        ignore_case: bool,
        /// Print a JSON array (one entry a line).
        #[arg(long)]
        json: bool,
    },
    /// Show what snapshots hold and cost: logical, deduplicated and stored bytes, files by how
    /// they are stored, chain depths. Every snapshot when none is named.
    Stats {
        /// Snapshot ids (as `list` prints them, unique prefixes) or `latest`.
        snapshots: Vec<String>,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Restore a snapshot, a subtree or one file.
    Restore {
        /// Snapshot id (as `list` prints it, a unique prefix of one) or `latest`.
        snapshot: String,
        /// Where to restore: a new or empty directory (or a file path for one file).
        target: PathBuf,
        /// Restore only this path of the snapshot.
        #[arg(long, value_name = "SUBPATH")]
        path: Option<String>,
        #[command(flatten)]
        select: RestoreSelect,
    },
    /// Show every snapshot as a read-only directory at MOUNTPOINT until Ctrl-C (or unmount).
    Mount(MountArgs),
    /// Serve every snapshot read-only over WebDAV (Explorer, Finder, rclone, browsers) until
    /// Ctrl-C.
    Serve(ServeArgs),
    /// Record changed ranges under SOURCE (fanotify, Linux 6.14+, root) until Ctrl-C or SIGTERM, so
    /// that change-tracked writes of a filesystem without reflink read only what changed.
    Track {
        /// The directory whose changes to record (backed up with `write SOURCE --change-tracking`).
        source: PathBuf,
    },
    /// Check the store; exits non-zero and lists what is wrong.
    Verify {
        /// Also rebuild every file version and check it against its blake3.
        #[arg(long)]
        read_data: bool,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Print the completion script of a shell (bash: `backup-fs completions bash >
    /// /etc/bash_completion.d/backup-fs`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, or write one page per command into a directory.
    Man {
        /// Write backup-fs.1 and backup-fs-COMMAND.1 for every command here.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// What `write` leaves out of the source.
#[derive(Debug, Args)]
pub struct ExcludeArgs {
    /// Leave out what matches PATTERN, as a `.gitignore` at the source's root would: `*.tmp`,
    /// `/build`, `**/node_modules`, `cache/`; `!PATTERN` keeps what an earlier one left out
    /// (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read exclude patterns from FILE, one a line (`#` starts a comment), before those of
    /// --exclude (repeatable).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Leave out directories holding a valid CACHEDIR.TAG (the Cache Directory Tagging
    /// Specification: the file starts with its signature).
    #[arg(long)]
    pub exclude_caches: bool,
    /// Leave out directories holding an entry named NAME (repeatable).
    #[arg(long, value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Do not cross into other filesystems: their mount points are recorded empty.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Leave out regular files larger than SIZE (e.g. 2GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub exclude_larger_than: Option<u64>,
}

/// What `restore` brings back and what it does with what exists.
#[derive(Debug, Args)]
pub struct RestoreSelect {
    /// Restore only what matches PATTERN (gitignore syntax, paths from the snapshot root:
    /// `*.odt`, `/Documents`, `**/2026/`), with what is under it and the directories leading to
    /// it (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Leave out what matches PATTERN (gitignore syntax; `!PATTERN` brings back what an
    /// earlier one left out; repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// What to do where the target has something already: `never` (refuse a target that is not
    /// empty), `if-changed` (replace what differs in kind, size or content; keep what is equal)
    /// or `always`.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = OverwriteArg::Never)]
    pub overwrite: OverwriteArg,
    /// Change nothing: list what would be created, replaced or kept.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON summary (with `--dry-run`, every entry planned).
    #[arg(long)]
    pub json: bool,
}

/// `restore --overwrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OverwriteArg {
    /// Refuse a target that exists.
    Never,
    /// Replace what differs; keep what is equal.
    IfChanged,
    /// Replace everything.
    Always,
}

/// `policy show` and `policy set`.
#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Print the stored policy.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the given fields of the stored policy (the others stay).
    Set {
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        keep: KeepArgs,
        #[command(flatten)]
        retention: RetentionArgs,
    },
}

/// The keep rules of `forget`, `init` and `policy set`.
#[derive(Debug, Args, Clone, Default)]
pub struct KeepArgs {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", value_parser = parse_keep, allow_negative_numbers = true)]
    pub keep_last: Option<OrOff<u32>>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", value_parser = parse_keep, allow_negative_numbers = true)]
    pub keep_hourly: Option<OrOff<u32>>,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_name = "N", value_parser = parse_keep, allow_negative_numbers = true)]
    pub keep_daily: Option<OrOff<u32>>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N", value_parser = parse_keep, allow_negative_numbers = true)]
    pub keep_weekly: Option<OrOff<u32>>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N", value_parser = parse_keep, allow_negative_numbers = true)]
    pub keep_monthly: Option<OrOff<u32>>,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(long, value_name = "N", value_parser = parse_keep, allow_negative_numbers = true)]
    pub keep_yearly: Option<OrOff<u32>>,
    /// Keep every snapshot newer than the newest minus this span (e.g. 10d, 2w, 1y6m, 36h).
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub keep_within: Option<OrOff<Span>>,
}

impl KeepArgs {
    /// The rules given (`off` counts as given, turning a stored rule off in `policy set`).
    pub fn changes(&self) -> [(&'static str, Option<OrOff<u32>>); 6] {
        [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ]
    }

    /// True when no rule was given.
    pub fn is_empty(&self) -> bool {
        self.changes().iter().all(|(_, c)| c.is_none()) && self.keep_within.is_none()
    }

    /// `base` with the given rules applied (`off` removes one).
    pub fn apply(&self, mut base: KeepRules) -> KeepRules {
        let [l, h, d, w, m, y] = self.changes().map(|(_, c)| c);
        for (slot, change) in [
            (&mut base.last, l),
            (&mut base.hourly, h),
            (&mut base.daily, d),
            (&mut base.weekly, w),
            (&mut base.monthly, m),
            (&mut base.yearly, y),
        ] {
            if let Some(c) = change {
                *slot = c.0;
            }
        }
        if let Some(w) = self.keep_within {
            base.within = w.0;
        }
        base
    }
}

/// The retention switches of `init` and `policy set`.
#[derive(Debug, Args, Clone, Default)]
pub struct RetentionArgs {
    /// Merge incremental deltas no kept snapshot needs into their full at prune (writes then
    /// make incremental deltas only and ignore --max-deltas and --max-delta-ratio)
    /// [store default: off].
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub delta_merge: Option<bool>,
    /// After each write, forget by the stored keep rules and prune [store default: off].
    #[arg(long, value_name = "on|off", value_parser = parse_switch)]
    pub auto_prune: Option<bool>,
    /// Merge one file's chain at most once per this span of snapshot time [store default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub merge_interval: Option<OrOff<Span>>,
    /// Rewrite a data object with only its used bytes once more than this share of it is
    /// unused [store default: 5%].
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub max_unused: Option<Percent>,
    /// Delete files a registered reader may still use after this long even if it has not caught
    /// up [store default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub grace: Option<OrOff<Span>>,
}

fn parse_switch(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(format!("{s:?} is not on or off")),
    }
}

fn parse_keep(s: &str) -> Result<OrOff<u32>, String> {
    parse_optional(s, |v| match v.parse::<i64>() {
        Ok(n) if n >= 1 && n <= i64::from(u32::MAX) => Ok(n as u32),
        Ok(n) => Err(format!(
            "a keep count must be 1 or more (got {n}); leave the rule out to not use it"
        )),
        Err(_) => Err(format!(
            "invalid keep count {v:?}: use a whole number of 1 or more, or off"
        )),
    })
    .map(OrOff)
}

fn parse_span(s: &str) -> Result<OrOff<Span>, String> {
    parse_optional(s, str::parse).map(OrOff)
}

fn parse_percent(s: &str) -> Result<Percent, String> {
    let p: Percent = s.parse()?;
    if p.0 > 10_000 {
        return Err(format!("{s} is over 100%"));
    }
    Ok(p)
}

fn parse_time(s: &str) -> Result<i64, String> {
    let ts: jiff::Timestamp = s
        .parse()
        .map_err(|e| format!("invalid time {s:?} ({e}): use RFC 3339, e.g. 2026-01-05T03:00:00Z"))?;
    i64::try_from(ts.as_nanosecond()).map_err(|_| format!("time {s:?} is out of range"))
}

/// The policy options of `init` and `write`.
#[derive(Debug, Args, Clone, Default)]
pub struct PolicyArgs {
    /// Delta against the previous version (incremental) or the chain's full (differential)
    /// [store default: incremental].
    #[arg(long, value_name = "incremental|differential")]
    pub mode: Option<DeltaMode>,
    /// Signature block size: auto (from the file size) or a size such as 4K [store default:
    /// auto].
    #[arg(long, value_name = "auto|SIZE")]
    pub block_size: Option<BlockSize>,
    /// Files smaller than this are stored whole when they change [store default: 25MiB].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub min_delta_size: Option<u64>,
    /// Start a new full after this many deltas, or off [store default: 100].
    #[arg(long, value_name = "N|off", value_parser = parse_max_deltas)]
    pub max_deltas: Option<OrOff<u32>>,
    /// Start a new full when a delta exceeds this percentage of the full, or off [store default:
    /// 50%].
    #[arg(long, value_name = "PERCENT|off", value_parser = parse_ratio)]
    pub max_delta_ratio: Option<OrOff<Percent>>,
    /// Read only changed ranges where a complete change source exists (reflink references,
    /// `backup-fs track`, --changed-ranges); compare the other files.
    #[arg(long, overrides_with = "no_change_tracking")]
    pub change_tracking: bool,
    /// Compare every file even if the store's default is change tracking.
    #[arg(long)]
    pub no_change_tracking: bool,
}

/// A limit that may be turned off (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrOff<T>(pub Option<T>);

fn parse_max_deltas(s: &str) -> Result<OrOff<u32>, String> {
    parse_optional(s, |v| {
        v.parse::<u32>()
            .map_err(|_| format!("invalid number of deltas {v:?}: use a whole number or off"))
    })
    .map(OrOff)
}

fn parse_ratio(s: &str) -> Result<OrOff<Percent>, String> {
    parse_optional(s, str::parse).map(OrOff)
}

impl PolicyArgs {
    /// The options given, as overrides of a stored policy.
    pub fn overrides(&self) -> PolicyOverrides {
        PolicyOverrides {
            mode: self.mode,
            block_size: self.block_size,
            min_delta_size: self.min_delta_size,
            max_deltas: self.max_deltas.map(|l| l.0),
            max_delta_ratio: self.max_delta_ratio.map(|l| l.0),
            change_tracking: match (self.change_tracking, self.no_change_tracking) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
        }
    }
}
