//! Writing one regular file: the policy's plan (whole, full, or a delta against which base), the
//! change sources' answer, then the tracked or the compare path, retried while the file changes
//! under the reader, and staged once it did not.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::policy::DeltaMode;
use crate::format::snapshot::{FileContent, PrevEntry, Storage};
use crate::format::version::{FileVersion, VersionKind};
use crate::id::VersionId;
use crate::tracking::TrackedChanges;
use crate::write::limits::ratio_reason;
use crate::write::outcome::{Failure, FileOutcome, Produced, Tracked, Written};
use crate::write::reasons::{Fallback, FullReason};
use crate::write::source::SourceFile;
use crate::write::writer::FileWriter;

/// Attempts at reading a file that keeps changing while it is read.
const ATTEMPTS: usize = 3;

/// What the policy plans for a file, before anything is read.
pub(crate) enum Plan {
    /// Store it whole (smaller than the minimum delta size).
    Whole,
    /// Store a new full, for this reason.
    Full(FullReason),
    /// Store a delta of `kind` against `base`, in the chain of `full`.
    Delta {
        base: Arc<FileVersion>,
        full: Arc<FileVersion>,
        kind: VersionKind,
    },
}

/// What the change sources said about one file.
#[derive(Default)]
struct SourcesAnswer {
    /// A frozen copy to read instead of the live file.
    frozen: Option<File>,
    /// The complete changed ranges, when a source knows them.
    changes: Option<TrackedChanges>,
    /// Why no source gave ranges, when one said.
    note: Option<Fallback>,
}

impl FileWriter<'_> {
    /// Writes the file at `path` (`rel` relative to the source), whose previous entry (if any)
    /// is `prev`.
    pub(crate) fn write(&self, path: &Path, rel: &str, prev: Option<&PrevEntry>) -> Result<FileOutcome, Failure> {
        let mut read_total = 0u64;
        for _ in 0..ATTEMPTS {
            let src = SourceFile::open(path).map_err(Failure::Source)?;
            let (mut outcome, produced, frozen) = self.write_once(&src, rel, prev)?;
            read_total += outcome.bytes_read;
            // Content read from a frozen copy cannot be torn; the live file was read otherwise.
            if !frozen && src.changed_since_open().map_err(Failure::Source)? {
                produced.abandon();
                continue;
            }
            outcome.bytes_read = read_total;
            outcome.stored_bytes = self.stage(produced).map_err(Failure::Store)?;
            if outcome.stored_bytes == 0 && outcome.decision != crate::write::outcome::Decision::Unchanged {
                outcome.deduplicated = true;
            }
            return Ok(outcome);
        }
        Err(Failure::Source(Error::io(
            path,
            std::io::Error::other(format!("changed while being read ({ATTEMPTS} attempts); not backed up")),
        )))
    }

    /// Stages what one file produced; returns the bytes it adds to the store.
    fn stage(&self, p: Produced) -> Result<u64> {
        let mut bytes = 0;
        if let Some(l) = p.literal {
            bytes += self.staging.add_data_object(l)?;
        }
        for (id, kind, payload) in &p.envelopes {
            bytes += self.staging.add_envelope_object(*id, *kind, payload)?;
        }
        if let Some(mut v) = p.version {
            v.stored_bytes = bytes;
            bytes += self.staging.add_version(&v)?;
        }
        Ok(bytes)
    }

    /// What the policy plans for a file of `size` bytes whose previous content is `prev`.
    fn plan(&self, prev: Option<&FileContent>, size: u64) -> Plan {
        if size < self.policy.min_delta_size {
            return Plan::Whole;
        }
        let prev = match prev {
            Some(c) if c.storage == Storage::Chain => c.version,
            Some(_) => return Plan::Full(FullReason::PreviousStoredWhole),
            None => return Plan::Full(FullReason::FirstVersion),
        };
        let load = |id: &VersionId| self.store.version(id);
        let (prev_v, full) = match load(&prev).and_then(|p| Ok((Arc::clone(&p), load(&p.full)?))) {
            Ok(x) => x,
            Err(e) => return Plan::Full(FullReason::PreviousUnreadable(e.to_string())),
        };
        if let Some(max) = self.policy.max_deltas
            && prev_v.deltas_since_full >= max
        {
            return Plan::Full(FullReason::MaxDeltas(max));
        }
        let (base, kind) = match self.policy.mode {
            DeltaMode::Incremental => (prev_v, VersionKind::Incremental),
            DeltaMode::Differential => (Arc::clone(&full), VersionKind::Differential),
        };
        Plan::Delta { base, full, kind }
    }

    /// One attempt at writing the file: returns what it built and whether it read a frozen copy.
    fn write_once(
        &self,
        live: &SourceFile,
        rel: &str,
        prev: Option<&PrevEntry>,
    ) -> Result<(FileOutcome, Produced, bool), Failure> {
        let meta = live.meta().clone();
        let plan = self.plan(prev.map(|p| &p.content), meta.size);
        let answer = match plan {
            Plan::Whole => SourcesAnswer::default(),
            _ => self.ask_sources(live, rel, prev),
        };
        let frozen = answer
            .frozen
            .map(|data| SourceFile::frozen(data, live.path(), meta.clone()));
        let src = frozen.as_ref().unwrap_or(live);
        let mut note = answer.note;
        if let (Some(prev), Plan::Delta { .. }) = (prev, &plan) {
            match answer.changes {
                Some(changes) => match self.write_tracked(src.file(), src.path(), &meta, &prev.content, &changes)? {
                    Tracked::Done(done) => {
                        let (outcome, produced) = *done;
                        return Ok((outcome, produced, frozen.is_some()));
                    }
                    Tracked::Fallback(why) => note = Some(why),
                    Tracked::RatioExceeded => {
                        let (o, p) = self.write_full(src, ratio_reason(self.policy))?;
                        return Ok((o, p, frozen.is_some()));
                    }
                },
                None if self.tracking.is_some() && note.is_none() => note = Some(Fallback::NoCompleteRecord),
                None => {}
            }
        }
        let (mut outcome, produced) = self.write_planned(src, plan, prev)?;
        outcome.fallback = note;
        Ok((outcome, produced, frozen.is_some()))
    }

    /// Asks the change sources, in order, about the file: the first with a frozen copy provides
    /// it, the first with complete ranges provides them.
    fn ask_sources(&self, live: &SourceFile, rel: &str, prev: Option<&PrevEntry>) -> SourcesAnswer {
        let mut answer = SourcesAnswer::default();
        let Some(tracking) = self.tracking else {
            return answer;
        };
        for provider in &tracking.providers {
            let Some(input) = provider.changes(live.path(), rel, live.meta(), prev) else {
                continue;
            };
            if answer.frozen.is_none() {
                answer.frozen = input.data;
            }
            if input.changes.is_some() {
                answer.changes = input.changes;
                return answer;
            }
            if answer.note.is_none() {
                answer.note = provider.note().map(Fallback::Source);
            }
        }
        answer
    }

    /// Writes the file by reading it whole, as the plan says.
    fn write_planned(&self, src: &SourceFile, plan: Plan, prev: Option<&PrevEntry>) -> Result<Written, Failure> {
        match plan {
            Plan::Whole => self.write_whole(src),
            Plan::Full(reason) => self.write_full(src, reason),
            Plan::Delta { base, full, kind } => {
                let prev_deltas = self.prev_deltas(prev.map(|p| &p.content));
                self.write_delta(src, &base, &full, kind, prev_deltas)
            }
        }
    }

    /// The "No. of delta" counter of the previous version (0 when unknown).
    pub(crate) fn prev_deltas(&self, prev: Option<&FileContent>) -> u32 {
        prev.and_then(|c| self.store.version(&c.version).ok())
            .map_or(0, |v| v.deltas_since_full)
    }
}
