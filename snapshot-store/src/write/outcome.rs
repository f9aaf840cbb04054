//! What writing one file produces and decides, shared by the compare path and the tracked path:
//! the decision, the outcome reported for the file, the files produced (staged only once the
//! file is known not to have changed while read), and the outcome enums of each path.

use std::sync::Arc;

use crate::error::Error;
use crate::format::delta::DeltaOp;
use crate::format::envelope::Kind;
use crate::format::hashtree::TreeLeaves;
use crate::format::signature::{SigRun, Signature};
use crate::format::snapshot::{FileContent, Metadata};
use crate::format::version::{FileVersion, VersionKind};
use crate::id::{ObjectId, VersionId};
use crate::store::object::FinishedObject;
use crate::tracking::ChangeSource;
use crate::write::reasons::{Fallback, FullReason};

/// What was done with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Stored whole (smaller than the minimum delta size).
    Whole,
    /// Stored as a new full version.
    Full,
    /// Stored as an incremental delta.
    Incremental,
    /// Stored as a differential delta.
    Differential,
    /// Not read (metadata unchanged) or identical to the previous version.
    Unchanged,
}

impl Decision {
    /// The name used in reports: `whole`, `full`, `incremental`, `differential`, `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Whole => "whole",
            Decision::Full => "full",
            Decision::Incremental => "incremental",
            Decision::Differential => "differential",
            Decision::Unchanged => "unchanged",
        }
    }

    /// The decision a stored version of `kind` stands for.
    pub(crate) fn of_kind(kind: VersionKind) -> Decision {
        match kind {
            VersionKind::Full | VersionKind::Merged => Decision::Full,
            VersionKind::Incremental => Decision::Incremental,
            VersionKind::Differential => Decision::Differential,
        }
    }
}

/// The result of writing one file.
#[derive(Debug, Clone)]
pub(crate) struct FileOutcome {
    /// The content to record in the snapshot.
    pub content: FileContent,
    /// What was stored.
    pub decision: Decision,
    /// Why a full was written (first version, max deltas, ratio, ...).
    pub full_reason: Option<FullReason>,
    /// Why change tracking did not give the file's changes.
    pub fallback: Option<Fallback>,
    /// The metadata of the file as read.
    pub meta: Metadata,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Literal bytes of the new version before compression (the delta's new data).
    pub literal_bytes: u64,
    /// Bytes added to the store.
    pub stored_bytes: u64,
    /// The content already existed in the store (nothing new was stored).
    pub deduplicated: bool,
    /// Where the changed ranges came from when the file was change-tracked (`None`: compared).
    pub change_source: Option<ChangeSource>,
}

/// Why a file could not be written.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The source file could not be read (skip it, report it).
    Source(Error),
    /// The store could not be written (abort the snapshot).
    Store(Error),
}

/// Everything one file produced, kept aside until the file is known not to have changed.
#[derive(Debug, Default)]
pub(crate) struct Produced {
    pub literal: Option<FinishedObject>,
    pub envelopes: Vec<(ObjectId, Kind, Vec<u8>)>,
    pub version: Option<FileVersion>,
}

impl Produced {
    /// Deletes what was written (the file changed while it was read, or the write failed).
    pub fn abandon(self) {
        if let Some(l) = self.literal {
            l.discard();
        }
    }
}

/// A file written: what to report, and what to stage.
pub(crate) type Written = (FileOutcome, Produced);

/// What a delta is written against.
pub(crate) struct DeltaInfo {
    pub base: Arc<FileVersion>,
    pub full_id: VersionId,
    pub kind: VersionKind,
    pub deltas_since_full: u32,
    pub base_sig: Arc<Signature>,
    /// The delta-ratio limit on the literal object's stored bytes, if the rule is on.
    pub limit: Option<u64>,
}

/// A new version's parts, before its records are written.
pub(crate) struct Built {
    pub id: VersionId,
    pub size: u64,
    pub ops: Vec<DeltaOp>,
    pub sig_runs: Vec<SigRun>,
    pub block_count: u32,
    pub block_size: u32,
    pub literal: Option<FinishedObject>,
    pub leaves: Option<TreeLeaves>,
}

/// The result of one pass over a source (the compare path).
pub(crate) enum Pass {
    /// The version was built.
    Done(Box<Written>),
    /// The delta grew past the delta-ratio limit and was abandoned: write a full instead.
    RatioExceeded,
}

/// The result of trying a change-tracked write.
pub(crate) enum Tracked {
    /// Written.
    Done(Box<Written>),
    /// Tracking cannot be used for this file: compare it instead (the reason is reported).
    Fallback(Fallback),
    /// The delta would exceed the delta-ratio limit: write a full.
    RatioExceeded,
}
