//! Deterministic fail points: named places in the write and commit paths where a unit test can
//! make the code fail as a crash or a failing system call would, for one store only (the key is
//! the store's root, so tests running in parallel do not see each other's points). In builds
//! other than the crate's own tests every check compiles to nothing.

use std::path::Path;

/// A place where a test can inject a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    /// In the thread hashing a version's content, for each segment.
    HashSegment,
    /// After each staged file is flushed (`fsync`) at commit.
    StagedFsync,
    /// After each staged file is renamed into place.
    StagedRename,
    /// After each directory that received files is flushed.
    DirFsync,
    /// After the manifest is written and flushed to `tmp/`.
    ManifestWrite,
    /// After the manifest is renamed into `snapshots/`, before `snapshots/` is flushed.
    ManifestRename,
    /// Before the reflink reference table is written, after a commit.
    RefTableWrite,
    /// Before the change log's state file is written, after a commit.
    #[cfg(unix)]
    ChangeLogStateWrite,
    /// After each manifest `forget` deletes.
    ForgetDelete,
    /// After prune writes its condemned list, before it raises the generation.
    CondemnedWrite,
    /// After prune raises the generation, before it deletes anything.
    GenerationWrite,
    /// After each file prune deletes.
    PruneDelete,
    /// After replacement records are staged in the journal, before its commit marker.
    JournalStaged,
    /// After the journal's commit marker, before any record is renamed.
    JournalCommit,
    /// After each replacement record is renamed into place.
    JournalRename,
    /// After a merge's new objects are committed, before its records are replaced.
    MergeObjects,
    /// After each part of a multipart upload to an object store is acknowledged.
    PartUploaded,
}

/// What an armed point does.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Return an I/O error, as a failing system call would.
    Error,
    /// Panic: the code after the point does not run, as if the process were killed there.
    Panic,
}

#[cfg(test)]
pub(crate) use armed::{arm, disarm};

/// Passes `point` for the store at `root`: an error or a panic if a test armed it.
#[cfg(test)]
pub(crate) fn check(point: Point, root: &Path) -> std::io::Result<()> {
    match armed::fire(point, root) {
        None => Ok(()),
        Some(Action::Error) => Err(std::io::Error::other(format!("fail point {point:?}"))),
        Some(Action::Panic) => panic!("fail point {point:?}"),
    }
}

/// Passes `point` (nothing is ever armed outside the crate's tests).
#[cfg(not(test))]
#[inline(always)]
pub(crate) fn check(_point: Point, _root: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod armed {
    use super::{Action, Point};
    use parking_lot::Mutex;
    use std::path::{Path, PathBuf};

    /// (point, store root, action, hits left before it fires)
    static ARMED: Mutex<Vec<(Point, PathBuf, Action, u32)>> = Mutex::new(Vec::new());

    /// Arms `point` for the store at `root`: the `nth` hit (1 = the first) does `action`, once.
    pub(crate) fn arm(point: Point, root: &Path, action: Action, nth: u32) {
        ARMED.lock().push((point, root.to_path_buf(), action, nth.max(1)));
    }

    /// Disarms every point of the store at `root`; true if one was still armed (had not fired).
    pub(crate) fn disarm(root: &Path) -> bool {
        let mut armed = ARMED.lock();
        let before = armed.len();
        armed.retain(|(_, r, _, _)| r != root);
        armed.len() != before
    }

    pub(super) fn fire(point: Point, root: &Path) -> Option<Action> {
        let mut armed = ARMED.lock();
        let i = armed
            .iter()
            .position(|(p, r, _, _)| *p == point && root.starts_with(r))?;
        let entry = armed.get_mut(i)?;
        entry.3 -= 1;
        if entry.3 > 0 {
            return None;
        }
        let (_, _, action, _) = armed.remove(i);
        Some(action)
    }
}
