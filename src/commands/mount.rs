//! `backup-fs mount`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::MountArgs;

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub fn run(store_dir: &super::StoreArg, args: &MountArgs, cache_dir: Option<&Path>) -> Result<ExitCode> {
    use anyhow::Context;
    use mount::{MountError, MountOptions, XattrPolicy};

    use crate::cli::XattrsArg;

    let mountpoint = &args.mountpoint;
    if !cfg!(target_os = "macos") && (args.noappledouble || args.noapplexattr) {
        anyhow::bail!("--noappledouble and --noapplexattr are macFUSE options: macOS only");
    }
    let store = store_dir.open_serving(args.cache_size)?;
    let opts = MountOptions {
        threads: args.threads,
        allow_other: args.allow_other,
        xattrs: match args.xattrs {
            XattrsArg::Auto => XattrPolicy::Auto,
            XattrsArg::On => XattrPolicy::On,
            XattrsArg::Off => XattrPolicy::Off,
        },
        no_apple_double: args.noappledouble,
        no_apple_xattr: args.noapplexattr,
        cache_dir: cache_dir.map(Path::to_path_buf),
        ..MountOptions::default()
    };
    let mounted = match mount::mount(store, mountpoint, &opts) {
        Ok(m) => m,
        Err(e @ MountError::FuseUnavailable(_)) => {
            eprintln!("backup-fs: error: {e}");
            return Ok(ExitCode::from(crate::EXIT_UNAVAILABLE));
        }
        Err(e) => return Err(e.into()),
    };
    let at = mounted.path().display().to_string();
    eprintln!(
        "mounted {} snapshots of {} at {at} (read-only); press Ctrl-C or run `fusermount3 -u {at}` to unmount",
        mounted.snapshots(),
        store_dir.describe()
    );
    let stop = super::stop_on_signals()?;
    mounted.wait(&stop).with_context(|| format!("unmounting {at}"))?;
    eprintln!("unmounted {at}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(windows)]
pub fn run(store_dir: &super::StoreArg, args: &MountArgs, cache_dir: Option<&Path>) -> Result<ExitCode> {
    use mount::dokan::DokanError;

    if args.noappledouble || args.noapplexattr || args.allow_other {
        anyhow::bail!("--noappledouble, --noapplexattr and --allow-other are FUSE options (Linux, macOS)");
    }
    let store = store_dir.open_serving(args.cache_size)?;
    let at = args.mountpoint.display().to_string();
    let stop = super::stop_on_signals()?;
    let shown = at.clone();
    let result = mount::dokan::mount_and_wait(store, &at, cache_dir, stop, |snapshots| {
        eprintln!(
            "mounted {snapshots} snapshots of {} at {shown} (read-only); press Ctrl-C to unmount",
            store_dir.describe()
        );
    });
    match result {
        Ok(()) => {
            eprintln!("unmounted {at}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ DokanError::Driver(_)) => {
            eprintln!("backup-fs: error: {e}");
            Ok(ExitCode::from(crate::EXIT_UNAVAILABLE))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd", windows)))]
pub fn run(_store_dir: &super::StoreArg, _args: &MountArgs, _cache_dir: Option<&Path>) -> Result<ExitCode> {
    anyhow::bail!("mount is not supported on this platform (use serve --webdav)")
}
