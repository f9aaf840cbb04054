//! The fanotify change source of a write: the changes `backup-fs track` recorded since the cut
//! of the last change-tracked snapshot, when the log proves them complete (Unix: the tracker is
//! reached through a Unix socket).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::error::IoContext;
use crate::failpoint::{self, Point};
use crate::format::changelog::CutPoint;
use crate::format::snapshot::{Metadata, PrevEntry, Snapshot};
use crate::store::Store;
use crate::tracking::changelog::{Changes, LogPaths, changes_between, read_state, write_state};
use crate::tracking::ranges::RangeSet;
use crate::tracking::{ChangeProvider, ChangeSource, TrackedChanges, TrackedInput};

/// The fanotify change source of a write: the changes recorded by `backup-fs track` since the
/// cut of the last change-tracked snapshot, when the log proves them complete.
pub struct FanotifyProvider {
    store_root: PathBuf,
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
            store_root: store.root().to_path_buf(),
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

    fn committed(&self, snapshot: &Snapshot) -> Option<String> {
        // Failing closed: an old state names an older cut, so the next write reads a larger
        // part of the log (or compares, if the tracker was restarted meanwhile).
        let note = self.cut.as_ref().and_then(|cut| {
            failpoint::check(Point::ChangeLogStateWrite, &self.store_root)
                .at(&self.paths.state)
                .and_then(|()| write_state(&self.paths, &self.tmp_dir, snapshot.id.as_str(), cut))
                .err()
                .map(|e| format!("the change-log state was not updated ({e}); the next change-tracked write reads more of the log"))
        });
        self.done();
        note
    }

    fn abandoned(&self) {
        self.done();
    }

    fn note(&self) -> Option<String> {
        self.changes.as_ref().err().filter(|e| !e.is_empty()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::failpoint::{Action, arm, disarm};
    use crate::{Policy, Tracking, WriteOptions, WriteProgress, write_snapshot};

    /// Answers one writer's `CUT` with `cut`, as the tracker does, then waits for its `DONE`.
    fn fake_tracker(socket: &Path, cut: CutPoint) -> std::thread::JoinHandle<String> {
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let listener = UnixListener::bind(socket).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut w = stream.try_clone().unwrap();
            let mut lines = BufReader::new(stream).lines();
            let request = lines.next().unwrap().unwrap();
            assert!(request.starts_with("CUT "), "{request}");
            writeln!(w, "OK {}", cut.to_text()).unwrap();
            lines.next().map(|l| l.unwrap()).unwrap_or_default()
        })
    }

    #[test]
    fn a_state_file_that_cannot_be_written_is_reported_and_the_snapshot_kept() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("a"), b"x").unwrap();
        let policy = Policy {
            change_tracking: true,
            ..Policy::default()
        };
        let store = Store::init(&dir.path().join("store"), policy).unwrap();
        let paths = LogPaths::new(store.root(), &std::fs::canonicalize(&src).unwrap());
        let cut = CutPoint {
            boot: [1; 16],
            session: [2; 16],
            epoch: 0,
            seq: 1,
            hash: [3; 32],
        };
        let tracker = fake_tracker(&paths.socket, cut);
        let provider = FanotifyProvider::open(&store, &std::fs::canonicalize(&src).unwrap());
        let tracking = Tracking {
            providers: vec![Box::new(provider)],
            verify_sample: 0,
        };
        let opts = WriteOptions {
            policy,
            ..WriteOptions::default()
        };
        arm(Point::ChangeLogStateWrite, store.root(), Action::Error, 1);
        let s = write_snapshot(&store, &src, &opts, Some(&tracking), &WriteProgress::default()).unwrap();
        assert!(!disarm(store.root()), "the state write was attempted");
        assert_eq!(s.notes.len(), 1, "{:?}", s.notes);
        assert!(s.notes[0].contains("change-log state"), "{:?}", s.notes);
        assert!(!paths.state.exists(), "no state was written");
        assert!(
            tracker.join().unwrap().starts_with("DONE "),
            "the tracker was told the write ended"
        );
    }
}
