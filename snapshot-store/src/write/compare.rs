//! The compare path: a version built by reading the whole source once — stored whole, as a full,
//! or as a delta found by matching the source against its base's signature — while its content
//! hash (and hash tree) is computed on another thread from the same buffers.

use std::sync::Arc;
use std::sync::mpsc;

use crate::error::Error;
use crate::failpoint::{self, Point};
use crate::format::snapshot::{FileContent, Storage};
use crate::format::version::{FileVersion, VersionKind};
use crate::id::VersionId;
use crate::store::object::DataObjectWriter;
use crate::write::hashing::ContentHasher;
use crate::write::limits::{COMPRESSION_LEVEL, ratio_limit, ratio_reason};
use crate::write::matcher::{BaseIndex, Matcher};
use crate::write::outcome::{Built, Decision, DeltaInfo, Failure, FileOutcome, Pass, Produced, Written};
use crate::write::reasons::FullReason;
use crate::write::source::{Segment, SourceFile, Stopped};
use crate::write::writer::FileWriter;

/// Why a pass over the source stopped before its end (besides the source failing).
enum Halt {
    /// Writing the literal object failed.
    Store(Error),
    /// The delta grew past the delta-ratio limit.
    RatioExceeded,
}

impl FileWriter<'_> {
    /// Stores the file whole: one data object of its content.
    pub(crate) fn write_whole(&self, src: &SourceFile) -> Result<Written, Failure> {
        let mut obj = DataObjectWriter::create(&self.store.tmp_dir(), COMPRESSION_LEVEL).map_err(Failure::Store)?;
        let read = src.read_segments(|seg| match seg {
            Segment::Data(d) => {
                self.progress.add_bytes(d.len() as u64);
                obj.write(&d)
            }
            Segment::Hole(n) => obj.write_zeros(n),
        });
        let read = match read {
            Ok(r) => r,
            Err(stop) => {
                obj.abandon();
                return Err(match stop {
                    Stopped::Source(e) => Failure::Source(e),
                    Stopped::Consumer(e) => Failure::Store(e),
                });
            }
        };
        let finished = obj.finish().map_err(Failure::Store)?;
        let outcome = FileOutcome {
            content: FileContent {
                version: VersionId(finished.id.0),
                storage: Storage::Whole,
            },
            decision: Decision::Whole,
            full_reason: None,
            fallback: None,
            meta: src.meta().clone(),
            bytes_read: read,
            literal_bytes: finished.logical_len,
            stored_bytes: 0,
            deduplicated: false,
            change_source: None,
        };
        let produced = Produced {
            literal: Some(finished),
            ..Produced::default()
        };
        Ok((outcome, produced))
    }

    /// Stores the file as a delta against `base` in the chain of `full`, or as a full when the
    /// base's signature cannot be read or the delta grows past the delta-ratio limit.
    pub(crate) fn write_delta(
        &self,
        src: &SourceFile,
        base: &Arc<FileVersion>,
        full: &Arc<FileVersion>,
        kind: VersionKind,
        prev_deltas: u32,
    ) -> Result<Written, Failure> {
        let base_sig = match self.store.signature(&base.signature) {
            Ok(s) => s,
            Err(e) => return self.write_full(src, FullReason::BaseSignatureUnreadable(e.to_string())),
        };
        let info = DeltaInfo {
            base: Arc::clone(base),
            full_id: full.id,
            kind,
            deltas_since_full: prev_deltas.saturating_add(1),
            base_sig,
            limit: ratio_limit(self.policy, full),
        };
        match self.pass(src, Some(info), None)? {
            Pass::Done(written) => Ok(*written),
            Pass::RatioExceeded => self.write_full(src, ratio_reason(self.policy)),
        }
    }

    /// Stores the file as a new full version, for `reason`.
    pub(crate) fn write_full(&self, src: &SourceFile, reason: FullReason) -> Result<Written, Failure> {
        match self.pass(src, None, Some(reason))? {
            Pass::Done(written) => Ok(*written),
            // A full has no ratio limit; should a pass say so anyway, the file is not stored.
            Pass::RatioExceeded => Err(Failure::Store(Error::corrupt(
                src.path().display().to_string(),
                "a full version was stopped by the delta-ratio rule",
            ))),
        }
    }

    /// One pass over the source producing a full (no `delta`) or a delta version.
    fn pass(&self, src: &SourceFile, delta: Option<DeltaInfo>, reason: Option<FullReason>) -> Result<Pass, Failure> {
        let size = src.meta().size;
        let index = delta.as_ref().map(|d| BaseIndex::new(Arc::clone(&d.base_sig)));
        let mut matcher = Matcher::new(index.as_ref(), self.policy.block_size.for_size(size));
        let mut sink = DataObjectWriter::create(&self.store.tmp_dir(), COMPRESSION_LEVEL).map_err(Failure::Store)?;
        let limit = delta.as_ref().and_then(|d| d.limit);
        // The content hash runs on its own thread, beside the matcher, on the same buffers. That
        // thread may use rayon's pool only if this one is not a pool worker: a worker blocked
        // joining it cannot run the pool's jobs (files written in parallel would deadlock).
        let pool_free = rayon::current_thread_index().is_none();
        let hasher = ContentHasher::new(self.policy.change_tracking, self.tree_base(delta.as_ref()), pool_free);
        let (hash_tx, hash_rx) = mpsc::sync_channel::<Segment>(2);
        let root = self.store.root();
        let (read, hashed) = std::thread::scope(|scope| {
            let hashing = scope.spawn(move || {
                let mut hasher = hasher;
                for seg in hash_rx {
                    let _ = failpoint::check(Point::HashSegment, root);
                    match seg {
                        Segment::Data(d) => hasher.update(&d),
                        Segment::Hole(n) => hasher.update_zeros(n),
                    }
                }
                hasher.finish()
            });
            let read = src.read_segments(|seg| {
                let _ = hash_tx.send(seg.clone());
                match &seg {
                    Segment::Data(d) => {
                        self.progress.add_bytes(d.len() as u64);
                        matcher.feed(d, &mut sink)
                    }
                    Segment::Hole(n) => matcher.feed_zeros(*n, &mut sink),
                }
                .map_err(Halt::Store)?;
                if limit.is_some_and(|l| sink.stored_len() > l) {
                    return Err(Halt::RatioExceeded);
                }
                Ok(())
            });
            drop(hash_tx);
            (read, hashing.join())
        });
        let Ok((id, leaves)) = hashed else {
            sink.abandon();
            return Err(Failure::Store(Error::Internal {
                what: format!("the thread hashing {} panicked", src.path().display()),
            }));
        };
        let read = match read {
            Ok(r) => r,
            Err(stop) => {
                sink.abandon();
                return match stop {
                    Stopped::Consumer(Halt::RatioExceeded) => Ok(Pass::RatioExceeded),
                    Stopped::Consumer(Halt::Store(e)) => Err(Failure::Store(e)),
                    Stopped::Source(e) => Err(Failure::Source(e)),
                };
            }
        };
        let mut out = matcher.finish(&mut sink).map_err(Failure::Store)?;
        let literal = if out.stats.literal > 0 {
            Some(sink.finish().map_err(Failure::Store)?)
        } else {
            sink.abandon();
            None
        };
        let literal_stored = literal.as_ref().map_or(0, |l| l.stored_len);
        if limit.is_some_and(|l| literal_stored > l) {
            if let Some(l) = literal {
                l.discard();
            }
            return Ok(Pass::RatioExceeded);
        }
        let outcome = FileOutcome {
            content: FileContent {
                version: id,
                storage: Storage::Chain,
            },
            decision: match &delta {
                None => Decision::Full,
                Some(d) => Decision::of_kind(d.kind),
            },
            full_reason: reason,
            fallback: None,
            meta: src.meta().clone(),
            bytes_read: read,
            literal_bytes: out.stats.literal,
            stored_bytes: 0,
            deduplicated: false,
            change_source: None,
        };
        let built = Built {
            id,
            size: out.size,
            ops: std::mem::take(&mut out.ops),
            sig_runs: std::mem::take(&mut out.sig_runs),
            block_count: out.block_count,
            block_size: matcher_block_size(delta.as_ref(), self.policy.block_size.for_size(size)),
            literal,
            leaves,
        };
        self.assemble(built, delta.as_ref(), outcome)
            .map(|written| Pass::Done(Box::new(written)))
    }

    /// With change tracking on, the base's hash tree, whose unchanged regions the new version's
    /// tree shares.
    fn tree_base(&self, delta: Option<&DeltaInfo>) -> Option<Arc<crate::format::hashtree::TreeTable>> {
        let d = delta.filter(|_| self.policy.change_tracking)?;
        let tree = d.base.hash_tree?;
        self.store
            .tree_table(&tree)
            .ok()
            .filter(|table| table.header.version == d.base.id)
    }
}

/// The block size of a new version: its base's (a chain keeps its full's block size), or the
/// policy's for a full.
fn matcher_block_size(delta: Option<&DeltaInfo>, policy_block: u32) -> u32 {
    delta.map_or(policy_block, |d| d.base_sig.block_size)
}

#[cfg(test)]
mod tests {
    use crate::failpoint::{Action, Point, arm, disarm};
    use crate::testdata::pseudo;
    use crate::{Error, Policy, Store, VerifyOptions, WriteOptions, WriteProgress, verify, write_snapshot};

    #[test]
    fn a_panic_of_the_hashing_thread_fails_the_write_and_stores_no_version() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("big"), pseudo(300_000, 1)).unwrap();
        let policy = Policy {
            min_delta_size: 0,
            ..Policy::default()
        };
        let store = Store::init(&dir.path().join("store"), policy).unwrap();
        let opts = WriteOptions {
            policy,
            ..WriteOptions::default()
        };
        arm(Point::HashSegment, store.root(), Action::Panic, 1);
        let r = write_snapshot(&store, &src, &opts, None, &WriteProgress::default());
        assert!(!disarm(store.root()), "the hashing thread ran");
        assert!(matches!(r, Err(Error::Internal { .. })), "{r:?}");
        assert!(store.snapshot_ids().unwrap().is_empty());
        // The store is as it was, and the next write stores the right id.
        let summary = write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
        let snap = store.snapshot(&summary.snapshot).unwrap();
        let e = snap.entry(snap.lookup(b"big").unwrap()).unwrap();
        assert_eq!(
            e.content.unwrap().version.0,
            *blake3::hash(&pseudo(300_000, 1)).as_bytes()
        );
        assert!(
            verify(&store, VerifyOptions { read_data: true })
                .unwrap()
                .problems
                .is_empty()
        );
    }
}
