//! `backup-fs track`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use snapshot_store::Store;

#[cfg(target_os = "linux")]
pub fn run(store: &Store, source: &Path) -> Result<ExitCode> {
    use tracker::TrackerError;

    let stop = super::stop_on_signals()?;
    let shown = source.display().to_string();
    let result = tracker::run(store.root(), source, stop, || {
        eprintln!(
            "tracking changes under {shown} for {}; back up with `backup-fs write {shown} --change-tracking`; \
             Ctrl-C or SIGTERM stops (the next backup then compares)",
            store.root().display()
        );
    });
    match result {
        Ok(()) => {
            eprintln!("stopped tracking {shown}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ TrackerError::Unavailable(_)) => {
            eprintln!("backup-fs: error: {e}");
            Ok(ExitCode::from(crate::EXIT_UNAVAILABLE))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn run(_store: &Store, _source: &Path) -> Result<ExitCode> {
    anyhow::bail!("track needs Linux (fanotify pre-content events); use reflink filesystems or --changed-ranges")
}
