//! Mounting in the foreground: check the mountpoint and FUSE, mount, wait for a stop flag (the
//! CLI sets it on Ctrl-C, SIGTERM and SIGHUP) or an external `fusermount3 -u`, then unmount
//! (lazily if busy) and return. A killed process would leave a dead mount behind; a signal never
//! does.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};
use snapshot_store::Store;

use super::BackupFs;
use crate::view::{View, XattrPolicy};

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Threads serving requests (Linux; other platforms use one).
    pub threads: usize,
    /// Let other users access the mount (permissions of the backed-up files still apply).
    pub allow_other: bool,
    /// Kernel readahead of the mount in KiB (needs root). Requests are at most 1 MiB, so 4 MiB
    /// keeps four in flight, decoded on several threads. `None` leaves the kernel's default
    /// (128 KiB requests, one at a time).
    pub readahead_kb: Option<u32>,
    /// Whether to serve extended attributes.
    pub xattrs: XattrPolicy,
    /// macOS: tell macFUSE not to look for AppleDouble `._name` files (which also hides the
    /// backed-up ones).
    pub no_apple_double: bool,
    /// macOS: tell macFUSE to hide Apple's own extended attributes (`com.apple.*`).
    pub no_apple_xattr: bool,
    /// Where to keep the versions index between mounts (`None`: memory only).
    pub cache_dir: Option<PathBuf>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            threads: 4,
            allow_other: false,
            readahead_kb: Some(4096),
            xattrs: XattrPolicy::Auto,
            no_apple_double: false,
            no_apple_xattr: false,
            cache_dir: None,
        }
    }
}

/// Why mounting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// The mountpoint does not exist.
    #[error("mountpoint {} does not exist; create an empty directory first", .0.display())]
    MountpointMissing(PathBuf),
    /// The mountpoint is not a directory.
    #[error("mountpoint {} is not a directory", .0.display())]
    MountpointNotDirectory(PathBuf),
    /// The mountpoint is not empty.
    #[error("mountpoint {} is not empty; mount on an empty directory", .0.display())]
    MountpointNotEmpty(PathBuf),
    /// The mountpoint is a dead FUSE mount.
    #[error(
        "mountpoint {} is a dead mount left by a killed process; unmount it first: fusermount3 -u {}  (or umount -l)",
        .0.display(),
        .0.display()
    )]
    StaleMount(PathBuf),
    /// FUSE is missing or not usable.
    #[error("FUSE is not available: {0}")]
    FuseUnavailable(String),
    /// The mount itself failed.
    #[error("cannot mount at {}: {source}", path.display())]
    Mount {
        /// The mountpoint.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::ViewError),
}

/// A mounted store: returned by [`mount`] once the filesystem is serving requests.
pub struct Mounted {
    session: fuser::BackgroundSession,
    path: PathBuf,
    /// Snapshots shown when it started serving.
    snapshots: usize,
    /// Stops the thread that follows prunes.
    stop_watch: Arc<AtomicBool>,
    watch: Option<std::thread::JoinHandle<()>>,
}

/// Follows prunes: the view drops what it cached of changed records (so that the prune may
/// delete what it condemned), and the kernel forgets the names of forgotten snapshots.
fn watch_prunes(view: Arc<View>, notifier: fuser::Notifier, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    crate::view::follow_prunes(view, "backup-fs mount", stop, move |gone| {
        for id in gone {
            let _ = notifier.inval_entry(fuser::INodeNo(crate::view::ROOT_INO), std::ffi::OsStr::new(id.as_str()));
        }
    })
}

/// Mounts `store` read-only at `mountpoint` and returns once it serves requests.
pub fn mount(store: Store, mountpoint: &Path, opts: &MountOptions) -> Result<Mounted, MountError> {
    check_mountpoint(mountpoint)?;
    check_fuse()?;
    let path = std::fs::canonicalize(mountpoint).map_err(|source| MountError::Mount {
        path: mountpoint.to_path_buf(),
        source,
    })?;
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    raise_open_file_limit();
    let view = Arc::new(View::new(store, uid, gid, opts.xattrs)?.with_cache_dir(opts.cache_dir.as_deref()));
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("backup-fs".into()),
        MountOption::Subtype("backup-fs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    cfg.mount_options.extend(macos_options(&view, opts));
    cfg.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    #[cfg(target_os = "linux")]
    {
        cfg.n_threads = Some(opts.threads.max(1));
        cfg.clone_fd = true;
    }
    let session = fuser::spawn_mount(BackupFs::new(Arc::clone(&view)), &path, &cfg).map_err(|source| {
        match source.raw_os_error() {
            Some(libc::EPERM) => MountError::FuseUnavailable(
                "mounting needs root, or the fusermount3 helper for unprivileged users \
             (Debian/Ubuntu: apt-get install fuse3)"
                    .into(),
            ),
            Some(libc::ENOENT) | Some(libc::ENODEV) => MountError::FuseUnavailable(
                "the kernel has no FUSE support (load it with modprobe fuse; Debian/Ubuntu: apt-get install fuse3)"
                    .into(),
            ),
            _ => MountError::Mount {
                path: path.clone(),
                source,
            },
        }
    })?;
    if let Some(kb) = opts.readahead_kb {
        set_readahead(&path, kb);
    }
    let stop_watch = Arc::new(AtomicBool::new(false));
    let snapshots = view.snapshot_count();
    let watch = Some(watch_prunes(view, session.notifier(), Arc::clone(&stop_watch)));
    Ok(Mounted {
        session,
        path,
        snapshots,
        stop_watch,
        watch,
    })
}

impl Mounted {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many snapshots it showed when it started serving.
    pub fn snapshots(&self) -> usize {
        self.snapshots
    }

    /// Serves until `stop` is set (then unmounts; the CLI sets it on SIGINT, SIGTERM and SIGHUP)
    /// or until someone unmounts it.
    pub fn wait(mut self, stop: &AtomicBool) -> io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            if self.session.guard.is_finished() {
                // Unmounted from outside (fusermount3 -u, umount).
                self.stop_watching();
                return self.session.join();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.unmount()
    }

    /// Unmounts (lazily when files are still open) and waits for the serving threads.
    pub fn unmount(mut self) -> io::Result<()> {
        self.stop_watching();
        unmount_path(&self.path)?;
        self.session.join()
    }

    fn stop_watching(&mut self) {
        self.stop_watch.store(true, Ordering::Relaxed);
        if let Some(w) = self.watch.take() {
            let _ = w.join();
        }
    }
}

/// macFUSE's options: the volume's name in Finder (the last part of the store's directory or bucket prefix), and the
/// opt-in AppleDouble switches. None elsewhere.
fn macos_options(view: &View, opts: &MountOptions) -> Vec<MountOption> {
    if !cfg!(target_os = "macos") {
        return Vec::new();
    }
    let name = view.store().short_name();
    // Commas separate mount options.
    let mut out = vec![MountOption::CUSTOM(format!(
        "volname=backup-fs {}",
        name.replace(',', "_")
    ))];
    if opts.no_apple_double {
        out.push(MountOption::CUSTOM("noappledouble".into()));
    }
    if opts.no_apple_xattr {
        out.push(MountOption::CUSTOM("noapplexattr".into()));
    }
    out
}

fn unmount_path(path: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::mount::{UnmountFlags, unmount};
        match unmount(path, UnmountFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::BUSY) => {
                return unmount(path, UnmountFlags::DETACH).map_err(io::Error::from);
            }
            Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Not root: the setuid helper.
    for helper in ["fusermount3", "fusermount"] {
        if let Ok(status) = std::process::Command::new(helper)
            .arg("-u")
            .arg("-z")
            .arg(path)
            .status()
            && status.success()
        {
            return Ok(());
        }
    }
    #[cfg(target_os = "macos")]
    {
        if let Ok(status) = std::process::Command::new("umount").arg(path).status()
            && status.success()
        {
            return Ok(());
        }
    }
    Err(io::Error::other(format!("could not unmount {}", path.display())))
}

fn check_mountpoint(path: &Path) -> Result<(), MountError> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MountError::MountpointMissing(path.into()));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Err(MountError::StaleMount(path.into())),
        Err(source) => {
            return Err(MountError::Mount {
                path: path.into(),
                source,
            });
        }
    };
    if !md.is_dir() {
        return Err(MountError::MountpointNotDirectory(path.into()));
    }
    let mut entries = std::fs::read_dir(path).map_err(|source| MountError::Mount {
        path: path.into(),
        source,
    })?;
    if entries.next().is_some() {
        return Err(MountError::MountpointNotEmpty(path.into()));
    }
    Ok(())
}

fn check_fuse() -> Result<(), MountError> {
    #[cfg(target_os = "linux")]
    {
        match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(MountError::FuseUnavailable(
                "/dev/fuse does not exist; load the kernel module (modprobe fuse) and install FUSE \
                 (Debian/Ubuntu: apt-get install fuse3)"
                    .into(),
            )),
            Err(e) => Err(MountError::FuseUnavailable(format!(
                "/dev/fuse cannot be opened ({e}); install fuse3 (Debian/Ubuntu: apt-get install fuse3) \
                 or run as root"
            ))),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(())
    }
}

/// Raises the soft limit on open files to the hard limit (at most 65536): the store keeps up to
/// 512 data objects open, each with a second descriptor once read at random. Best effort.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = limit.maximum.map_or(65536, |max| max.min(65536));
    if limit.current.is_some_and(|cur| cur < want) {
        limit.current = Some(want);
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// Raises the mount's readahead (the size of the kernel's read requests) to `kb` KiB. Best
/// effort: needs root and sysfs.
fn set_readahead(path: &Path, kb: u32) {
    #[cfg(target_os = "linux")]
    {
        let Ok(st) = rustix::fs::stat(path) else {
            return;
        };
        let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
        let file = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
        let _ = std::fs::write(file, kb.to_string());
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (path, kb);
}
