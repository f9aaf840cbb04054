//! The fanotify change source of a write: the changes `backup-fs track` recorded since the cut
//! of the last change-tracked snapshot, when the log proves them complete (Unix: the tracker is
//! reached through a Unix socket).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::format::changelog::CutPoint;
use crate::format::snapshot::{Metadata, PrevEntry, Snapshot};
use crate::store::Store;
use crate::tracking::changelog::{Changes, LogPaths, changes_between, read_state, write_state};
use crate::tracking::ranges::RangeSet;
use crate::tracking::{ChangeProvider, ChangeSource, TrackedChanges, TrackedInput};

/// The fanotify change source of a write: the changes recorded by `backup-fs track` since the
/// cut of the last change-tracked snapshot, when the log proves them complete.
pub struct FanotifyProvider {
    paths: LogPaths,
    tmp_dir: PathBuf,
    cut: Option<CutPoint>,
    changes: std::result::Result<Changes, String>,
    stream: parking_lot::Mutex<Option<UnixStream>>,
}

impl FanotifyProvider {
    /// Asks the tracker of `source` (canonical) for a cut now. Never fails: an unavailable
    /// tracker or an incomplete log only means files are compared (see [`ChangeProvider::note`]).
    pub fn open(store: &Store, source: &Path) -> FanotifyProvider {
        let paths = LogPaths::new(store.root(), source);
        let mut provider = FanotifyProvider {
            tmp_dir: store.tmp_dir(),
            cut: None,
            changes: Err(String::new()),
            stream: parking_lot::Mutex::new(None),
            paths,
        };
        provider.changes = provider.request_cut().and_then(|cut| {
            provider.cut = Some(cut);
            let (_, from) = read_state(&provider.paths).ok_or("no earlier change-tracked backup")?;
            changes_between(&provider.paths, &from, &cut)
        });
        provider
    }

    fn request_cut(&self) -> std::result::Result<CutPoint, String> {
        use std::io::{BufRead, BufReader, Write};
        let not_running =
            |e: std::io::Error| format!("the tracker is not running ({e}); start `backup-fs track SOURCE`");
        let stream = UnixStream::connect(&self.paths.socket).map_err(not_running)?;
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
        let mut w = stream.try_clone().map_err(not_running)?;
        writeln!(w, "CUT {}", std::process::id()).map_err(not_running)?;
        let mut line = String::new();
        BufReader::new(stream.try_clone().map_err(not_running)?)
            .read_line(&mut line)
            .map_err(not_running)?;
        let cut = match line.trim().split_once(' ') {
            Some(("OK", rest)) => CutPoint::from_text(rest).ok_or("the tracker sent a malformed cut")?,
            _ => return Err(format!("the tracker refused the cut: {}", line.trim())),
        };
        *self.stream.lock() = Some(stream);
        Ok(cut)
    }

    fn done(&self) {
        use std::io::Write;
        if let Some(mut s) = self.stream.lock().take() {
            let _ = writeln!(s, "DONE {}", std::process::id());
        }
    }
}

impl ChangeProvider for FanotifyProvider {
    fn changes(&self, _path: &Path, _rel: &str, meta: &Metadata, prev: Option<&PrevEntry>) -> Option<TrackedInput> {
        let changes = self.changes.as_ref().ok()?;
        let prev = prev?;
        if meta.dev != prev.meta.dev || meta.ino != prev.meta.ino {
            return None;
        }
        let ranges = match changes.files.get(&(meta.dev, meta.ino)) {
            Some(r) => r.clone(),
            // Changed, yet not one access was recorded: written in a way fanotify does not see
            // (a loop device between two looks, a descriptor older than the tracker). Compare.
            None if meta.ctime_ns != prev.meta.ctime_ns || meta.mtime_ns != prev.meta.mtime_ns => return None,
            None => RangeSet::new(),
        };
        Some(TrackedInput {
            changes: Some(TrackedChanges {
                source: ChangeSource::Fanotify,
                ranges,
            }),
            data: None,
        })
    }

    fn committed(&self, snapshot: &Snapshot) {
        if let Some(cut) = &self.cut {
            let _ = write_state(&self.paths, &self.tmp_dir, snapshot.id.as_str(), cut);
        }
        self.done();
    }

    fn abandoned(&self) {
        self.done();
    }

    fn note(&self) -> Option<String> {
        self.changes.as_ref().err().filter(|e| !e.is_empty()).cloned()
    }
}
