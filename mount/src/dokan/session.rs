//! Mounting with Dokan (Windows only): on a drive letter (`X:`) or an empty NTFS folder,
//! write-protected, until a stop flag is set (the CLI sets it on Ctrl-C) or the volume is
//! unmounted from outside (Explorer's eject, `dokanctl /u`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dokan::{FileSystemMountError, FileSystemMounter, MountFlags, MountOptions};
use snapshot_store::Store;
use widestring::U16CString;

use super::handler::Handler;
use crate::view::{View, XattrPolicy, follow_prunes};

/// Why mounting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DokanError {
    /// The mount point cannot be a Windows path.
    #[error("mount point {0:?} is not a valid Windows path")]
    BadMountPoint(String),
    /// The Dokan driver is missing or of another version.
    #[error(
        "Dokan is not available ({0}): install the Dokan 2 driver from \
         https://github.com/dokan-dev/dokany/releases (DokanSetup.exe, version 2.0.6 or later 2.x)"
    )]
    Driver(FileSystemMountError),
    /// Mounting failed.
    #[error("cannot mount at {at}: {source} (a drive letter in use, or a folder that is not empty or not on NTFS)")]
    Mount {
        /// The mount point.
        at: String,
        /// Dokan's error.
        source: FileSystemMountError,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::ViewError),
}

/// Mounts `store` read-only at `mount_point` and serves until `stop` is set or the volume is
/// unmounted from outside; `mounted` is called once it serves. The versions index is kept
/// under `cache_dir`, if given.
pub fn mount_and_wait(
    store: Store,
    mount_point: &str,
    cache_dir: Option<&std::path::Path>,
    stop: Arc<AtomicBool>,
    mounted: impl FnOnce(usize),
) -> Result<(), DokanError> {
    let wide = U16CString::from_str(mount_point).map_err(|_| DokanError::BadMountPoint(mount_point.into()))?;
    let volume_name = format!("backup-fs {}", store.short_name());
    let view = Arc::new(View::new(store, 0, 0, XattrPolicy::Off)?.with_cache_dir(cache_dir));
    let snapshots = view.snapshot_count();
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watch = follow_prunes(Arc::clone(&view), "backup-fs mount", Arc::clone(&stop_watch), |_| {});
    let handler = Handler { view, volume_name };
    let options = MountOptions {
        flags: MountFlags::WRITE_PROTECT | MountFlags::MOUNT_MANAGER,
        timeout: Duration::from_secs(120),
        ..Default::default()
    };
    dokan::init();
    let result = (|| {
        // Dokan keeps pointers into the mounter: it lives until the file system is dropped.
        let mut mounter = FileSystemMounter::new(&handler, &wide, &options);
        let fs = mounter.mount().map_err(|source| match source {
            FileSystemMountError::DriverInstall | FileSystemMountError::Version | FileSystemMountError::Start => {
                DokanError::Driver(source)
            }
            source => DokanError::Mount {
                at: mount_point.into(),
                source,
            },
        })?;
        mounted(snapshots);
        let unmounter = {
            let (wide, stop) = (wide.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                // False when it is gone already (unmounted from outside).
                let _ = dokan::unmount(&wide);
            })
        };
        // Blocks until the volume is unmounted, by the thread above or from outside.
        drop(fs);
        stop.store(true, Ordering::Relaxed);
        let _ = unmounter.join();
        Ok(())
    })();
    dokan::shutdown();
    stop_watch.store(true, Ordering::Relaxed);
    let _ = watch.join();
    result
}
