//! Checking a store: every snapshot, version record and object it references parses and passes
//! its checksum; with `read_data`, every file version is rebuilt and checked against its blake3
//! and its signature, and every data object against its id.
//!
//! The checks run in layers — manifests (`records`), version records and the objects they name
//! (`objects`), every version's content rebuilt through the read path (`content`) — and end with
//! the files nothing references (`unreferenced`). Each problem is recorded and the checks go on.

mod content;
mod objects;
mod records;
mod unreferenced;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::version::FileVersion;
use crate::id::{ObjectId, VersionId};
use crate::store::Store;

/// What `verify` checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Rebuild every version and check its content hash (reads all data).
    pub read_data: bool,
}

/// One thing wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is at fault.
    pub what: String,
    /// What is wrong with it.
    pub error: String,
}

/// The result of `verify`.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// File versions (chain records and whole files) checked.
    pub versions: u64,
    /// Objects checked.
    pub objects: u64,
    /// Bytes of content rebuilt and hashed (with `read_data`).
    pub bytes_read: u64,
    /// Everything wrong, sorted.
    pub problems: Vec<Problem>,
    /// Files in the store no snapshot references that prune did not condemn (leftovers of
    /// interrupted writes or prunes; harmless, the next prune deletes them).
    pub unreferenced: Vec<String>,
    /// Files prune condemned, waiting until no registered reader can need them.
    pub condemned: Vec<String>,
    /// Condemned files that a snapshot uses again (a write reused them); the next prune keeps
    /// them.
    pub reused: Vec<String>,
    /// Work an interrupted prune left for the next one (not a problem).
    pub pending: Vec<String>,
}

/// What the snapshots reference.
#[derive(Debug, Default)]
struct Roots {
    /// Files stored whole: their data object and size.
    whole: BTreeSet<(ObjectId, u64)>,
    /// Files stored in chains: their version and size.
    chains: BTreeSet<(VersionId, u64)>,
}

/// The version records reachable from the snapshots.
struct Versions {
    /// Every record loaded.
    all: Vec<Arc<FileVersion>>,
    /// The same, by id.
    by_id: HashMap<VersionId, Arc<FileVersion>>,
    /// Every version id reached (loaded or not).
    seen: HashSet<VersionId>,
}

/// The state of one `verify`: the store, what to check, and what was found.
struct Verifier<'a> {
    store: &'a Store,
    opts: VerifyOptions,
    report: VerifyReport,
    problems: Vec<Problem>,
}

impl Verifier<'_> {
    /// Records `e` as a problem of `what`.
    fn problem(&mut self, what: String, e: &Error) {
        self.problems.push(Problem {
            what,
            error: e.to_string(),
        });
    }

    /// Records a problem of `what` described by `error`.
    fn found(&mut self, what: String, error: impl Into<String>) {
        self.problems.push(Problem {
            what,
            error: error.into(),
        });
    }
}

/// Checks `store`.
pub fn verify(store: &Store, opts: VerifyOptions) -> Result<VerifyReport> {
    let mut v = Verifier {
        store,
        opts,
        report: VerifyReport::default(),
        problems: Vec::new(),
    };
    let roots = v.snapshots()?;
    let versions = v.version_records(&roots);
    v.report.versions = (versions.all.len() + roots.whole.len()) as u64;
    let referenced = v.version_objects(&roots, &versions);
    v.rebuild_all(&roots, &versions);
    let unreferenced = unreferenced::list(store, &referenced, &versions.seen)?;
    v.report.unreferenced = unreferenced.leftovers;
    v.report.condemned = unreferenced.condemned;
    v.report.reused = unreferenced.reused;
    let mut problems = std::mem::take(&mut v.problems);
    problems.sort_by(|a, b| (&a.what, &a.error).cmp(&(&b.what, &b.error)));
    problems.dedup();
    v.report.problems = problems;
    Ok(v.report)
}
