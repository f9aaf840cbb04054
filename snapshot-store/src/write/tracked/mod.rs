//! Change-tracked writes: a new version built from its previous version and the complete set of
//! ranges that changed since, reading nothing else.
//!
//! Given the previous version's signature and hash tree, the writer reads only the base blocks
//! the changed ranges touch (their new bytes become literal data and new signature blocks), the
//! 4 KiB leaves they touch (whose BLAKE3 chaining values replace the base's), and appended data.
//! Everything else is a copy of the base and a run of its signature and tree. The version id is
//! the BLAKE3 merge of new and base leaf values: the same id a full read would give. A random
//! sample of the blocks taken as unchanged is re-read and checked against the stored signature
//! ("trust but verify"); any mismatch abandons tracking for the file, which is then compared.

mod emitter;
mod plan;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
use crate::format::hashtree::{BlockAt, TreeLeaves, TreeTable, root_block};
use crate::format::policy::DeltaMode;
use crate::format::signature::Signature;
use crate::format::snapshot::{FileContent, Metadata, Storage};
use crate::format::tree_hasher::TreeBuilder;
use crate::format::version::{FileVersion, VersionKind};
use crate::hash::tree::{Cv, LEAF, LeafBlock, REGION, leaf_count, leaf_cv, region_count, root_of};
use crate::id::VersionId;
use crate::os::file::read_full_at;
use crate::store::object::DataObjectWriter;
use crate::tracking::ranges::RangeSet;
use crate::tracking::{DEFAULT_VERIFY_SAMPLE, TrackedChanges};
use crate::write::limits::{COMPRESSION_LEVEL, ratio_limit};
use crate::write::outcome::{Built, Decision, DeltaInfo, Failure, FileOutcome, Tracked};
use crate::write::reasons::Fallback;
use crate::write::writer::FileWriter;
use emitter::Emitter;
use plan::{Plan, differs_from_base};

/// Bytes read per request.
const PIECE: u64 = 4 << 20;

/// What a tracked delta is written against, once the base is known to be usable.
struct TrackedBase {
    base: Arc<FileVersion>,
    full: Arc<FileVersion>,
    kind: VersionKind,
    /// The ranges to rewrite: the changes, plus (differential) what the previous delta differed by.
    dirty: RangeSet,
    sig: Arc<Signature>,
    tree: Arc<TreeTable>,
    /// The previous version's "No. of delta" counter.
    prev_deltas: u32,
}

/// Whether the base of a tracked write is usable.
enum BaseChoice {
    Usable(Box<TrackedBase>),
    Fallback(Fallback),
}

/// What reading the changed ranges gave.
enum ReadOutcome<'a> {
    Read(Box<ReadChanges<'a>>),
    /// The literal object grew past the delta-ratio limit.
    RatioExceeded,
}

/// The emitted ops and runs, the rehashed leaves, and the first leaf's bytes of a small version.
struct ReadChanges<'a> {
    emit: Emitter<'a>,
    dirty_cvs: Vec<(u64, Cv)>,
    head: Vec<u8>,
    bytes_read: u64,
}

impl FileWriter<'_> {
    /// Writes the file whose content is readable from `data` (the file itself or a point-in-time
    /// copy of it) with metadata `meta`, whose previous version is `prev`, given what changed.
    pub(crate) fn write_tracked(
        &self,
        data: &File,
        path: &Path,
        meta: &Metadata,
        prev: &FileContent,
        changes: &TrackedChanges,
    ) -> Result<Tracked, Failure> {
        let b = match self.tracked_base(prev, changes)? {
            BaseChoice::Usable(b) => b,
            BaseChoice::Fallback(reason) => return Ok(Tracked::Fallback(reason)),
        };
        let limit = ratio_limit(self.policy, &b.full);
        let (old, new) = (b.base.size, meta.size);
        // Changed ranges are stored as literals, never matched against the base; when they
        // cover most of the file, a compare (which finds moved and unchanged data inside them)
        // costs no more reads and stores far less.
        let kept = old.min(new);
        if kept > 0 && b.dirty.clip(kept).len() > kept / 2 {
            return Ok(Tracked::Fallback(Fallback::MostOfFileChanged));
        }
        let mut plan = Plan::new(&b.sig, &b.dirty, old, new);
        // Trust but verify: a sample of the blocks taken as unchanged must still match.
        let mut sample_read = 0u64;
        let sample = self.tracking.map_or(DEFAULT_VERIFY_SAMPLE, |t| t.verify_sample);
        if let Some(offset) = plan
            .verify_sample(data, &b.sig, sample, &mut sample_read)
            .map_err(|e| Failure::Source(Error::io(path, e)))?
        {
            return Ok(Tracked::Fallback(Fallback::SampleDiffers { offset }));
        }
        let mut sink = DataObjectWriter::create(&self.store.tmp_dir(), COMPRESSION_LEVEL).map_err(Failure::Store)?;
        let read = match self.read_changes(data, path, &plan, &b.sig, new, &mut sink, limit) {
            Ok(ReadOutcome::Read(r)) => *r,
            Ok(ReadOutcome::RatioExceeded) => {
                sink.abandon();
                return Ok(Tracked::RatioExceeded);
            }
            Err(e) => {
                sink.abandon();
                return Err(e);
            }
        };
        let (leaves, id) = self.rebuild_tree(&b.tree, &read.dirty_cvs, &read.head, new)?;
        let literal_bytes = read.emit.literal;
        let bytes_read = sample_read + read.bytes_read;
        let (ops, sig_runs, block_count) = read.emit.finish();
        let literal = if literal_bytes > 0 {
            Some(sink.finish().map_err(Failure::Store)?)
        } else {
            sink.abandon();
            None
        };
        if limit.is_some_and(|l| literal.as_ref().map_or(0, |o| o.stored_len) > l) {
            if let Some(l) = literal {
                l.discard();
            }
            return Ok(Tracked::RatioExceeded);
        }
        let delta = DeltaInfo {
            base: Arc::clone(&b.base),
            full_id: b.full.id,
            kind: b.kind,
            deltas_since_full: b.prev_deltas.saturating_add(1),
            base_sig: Arc::clone(&b.sig),
            limit,
        };
        let outcome = FileOutcome {
            content: FileContent {
                version: id,
                storage: Storage::Chain,
            },
            decision: Decision::of_kind(b.kind),
            full_reason: None,
            fallback: None,
            meta: meta.clone(),
            bytes_read,
            literal_bytes,
            stored_bytes: 0,
            deduplicated: false,
            change_source: Some(changes.source),
        };
        let built = Built {
            id,
            size: new,
            ops,
            sig_runs,
            block_count,
            block_size: b.sig.block_size,
            literal,
            leaves: Some(leaves),
        };
        let done = self.assemble(built, Some(&delta), outcome)?;
        Ok(Tracked::Done(Box::new(done)))
    }

    /// The base of a tracked delta of the file whose previous content is `prev`, in the
    /// policy's mode, with its signature and hash tree (checked to describe it).
    fn tracked_base(&self, prev: &FileContent, changes: &TrackedChanges) -> Result<BaseChoice, Failure> {
        if prev.storage != Storage::Chain {
            return Ok(BaseChoice::Fallback(Fallback::PreviousStoredWhole));
        }
        let store = self.store;
        let prev_v = store.version(&prev.version).map_err(Failure::Store)?;
        let full = store.version(&prev_v.full).map_err(Failure::Store)?;
        let mut dirty = changes.ranges.clone();
        let (base, kind) = match self.policy.mode {
            DeltaMode::Incremental => (Arc::clone(&prev_v), VersionKind::Incremental),
            DeltaMode::Differential => match prev_v.kind {
                VersionKind::Full | VersionKind::Merged => (Arc::clone(&prev_v), VersionKind::Differential),
                VersionKind::Differential => {
                    // A differential delta holds everything since the full: what the previous
                    // one differed by, plus what changed since.
                    dirty = dirty.union(&differs_from_base(&prev_v.ops));
                    (Arc::clone(&full), VersionKind::Differential)
                }
                VersionKind::Incremental => {
                    return Ok(BaseChoice::Fallback(Fallback::DifferentialAfterIncremental));
                }
            },
        };
        let Some(tree_id) = base.hash_tree else {
            return Ok(BaseChoice::Fallback(Fallback::NoHashTree));
        };
        let sig = store.signature(&base.signature).map_err(Failure::Store)?;
        let tree = store.tree_table(&tree_id).map_err(Failure::Store)?;
        if tree.header.version != base.id || tree.header.file_size != base.size || sig.file_size() != base.size {
            return Err(Failure::Store(Error::corrupt(
                format!("file version {}", base.id.short()),
                "signature or hash tree does not match its size",
            )));
        }
        Ok(BaseChoice::Usable(Box::new(TrackedBase {
            base,
            full,
            kind,
            dirty,
            sig,
            tree,
            prev_deltas: prev_v.deltas_since_full,
        })))
    }

    /// Reads what `plan` says from `data`, in pieces that end on leaf boundaries: rewritten
    /// signature regions become literal blocks in `sink`, rehashed leaves new chaining values.
    #[allow(clippy::too_many_arguments)]
    fn read_changes<'s>(
        &self,
        data: &File,
        path: &Path,
        plan: &Plan,
        sig: &'s Signature,
        new: u64,
        sink: &mut DataObjectWriter,
        limit: Option<u64>,
    ) -> Result<ReadOutcome<'s>, Failure> {
        let mut read = ReadChanges {
            emit: Emitter::new(sig),
            dirty_cvs: Vec::new(),
            head: Vec::new(),
            bytes_read: 0,
        };
        let mut regions = plan.sig_regions.ranges().iter().peekable();
        let mut buf = vec![0u8; PIECE as usize];
        for r in plan.read.ranges() {
            let mut pos = r.start;
            while pos < r.end {
                // Pieces end on leaf boundaries so that no tree leaf is split.
                let mut end = (pos + PIECE).min(r.end);
                if end < r.end {
                    end = end / LEAF * LEAF;
                }
                let chunk = &mut buf[..(end - pos) as usize];
                let got = read_full_at(data, chunk, pos).map_err(|e| Failure::Source(Error::io(path, e)))?;
                if got < chunk.len() {
                    return Err(Failure::Source(Error::io(
                        path,
                        std::io::Error::other("file shrank while being read"),
                    )));
                }
                read.bytes_read += got as u64;
                self.progress.add_bytes(got as u64);
                let chunk = &buf[..(end - pos) as usize];
                if pos < LEAF && new <= LEAF {
                    read.head.extend_from_slice(chunk);
                }
                hash_dirty_leaves(plan, chunk, pos, end, new, &mut read.dirty_cvs);
                // Signature regions overlapping this piece, in order.
                while let Some(s) = regions.peek() {
                    if s.start >= end {
                        break;
                    }
                    let from = s.start.max(pos);
                    let to = s.end.min(end);
                    if from == s.start {
                        read.emit.begin(s.start);
                    }
                    read.emit
                        .feed(&chunk[(from - pos) as usize..(to - pos) as usize], sink)
                        .map_err(Failure::Store)?;
                    if to != s.end {
                        break;
                    }
                    read.emit.end(s.end, sink).map_err(Failure::Store)?;
                    regions.next();
                }
                if limit.is_some_and(|l| sink.stored_len() > l) {
                    return Ok(ReadOutcome::RatioExceeded);
                }
                pos = end;
            }
        }
        read.emit.clean_until(new);
        Ok(ReadOutcome::Read(Box::new(read)))
    }

    /// The new version's hash tree and id: regions without a changed leaf are the base's; the
    /// others are rebuilt from the new leaf values and the base's (one block read per region).
    /// The id merges region values and the leaves of the root block.
    fn rebuild_tree(
        &self,
        base: &Arc<TreeTable>,
        dirty_cvs: &[(u64, Cv)],
        head: &[u8],
        new: u64,
    ) -> Result<(TreeLeaves, VersionId), Failure> {
        let n_leaves = leaf_count(new);
        let root_region = root_block(n_leaves);
        let mut tree = TreeBuilder::new(Some(Arc::clone(base)));
        let mut root_leaves: LeafBlock = [[0; 32]; REGION as usize];
        let mut fresh = dirty_cvs.iter().peekable();
        let corrupt = |reason: String| Failure::Store(Error::corrupt("tracked write", reason));
        for r in 0..region_count(n_leaves) {
            let lo = r * REGION;
            let hi = (lo + REGION).min(n_leaves);
            let touched = fresh.peek().is_some_and(|(k, _)| *k < hi);
            if !touched && hi - lo == REGION && base.is_full(r) && root_region != Some(r) {
                let (Some(e), Some((oid, slot))) = (base.regions.get(r as usize), base.location(r)) else {
                    return Err(corrupt(format!("base tree has no region {r}")));
                };
                tree.push_region(e.cv, BlockAt::In(oid, slot));
                continue;
            }
            let mut base_block: Option<LeafBlock> = None;
            for i in lo..hi {
                let cv = match fresh.peek() {
                    Some((k, cv)) if *k == i => {
                        fresh.next();
                        *cv
                    }
                    _ => {
                        if i >= base.leaf_count() {
                            return Err(corrupt(format!("leaf {i} is neither read nor in the base")));
                        }
                        let block = match &base_block {
                            Some(b) => b,
                            None => base_block.insert(self.store.tree_block(base, r).map_err(Failure::Store)?),
                        };
                        block[(i - lo) as usize]
                    }
                };
                if root_region == Some(r) {
                    root_leaves[(i - lo) as usize] = cv;
                }
                tree.push_leaf(cv);
            }
        }
        let leaves = tree.finish();
        let region_value = |r: u64| {
            (root_region != Some(r) && (r + 1) * REGION <= n_leaves)
                .then(|| leaves.regions.get(r as usize).map(|e| e.cv))
                .flatten()
        };
        let id = match root_of(n_leaves, &region_value, &|i| root_leaves[(i % REGION) as usize]) {
            Some(id) => id,
            None => VersionId::from(blake3::hash(head)),
        };
        Ok((leaves, id))
    }
}

/// Hashes the tree leaves wholly inside the piece `[pos, end)` (`chunk`) that the plan marks
/// dirty, appending their new chaining values.
fn hash_dirty_leaves(plan: &Plan, chunk: &[u8], pos: u64, end: u64, new: u64, out: &mut Vec<(u64, Cv)>) {
    let mut leaf = pos.div_ceil(LEAF);
    while leaf * LEAF < end {
        let ls = leaf * LEAF;
        let le = (ls + LEAF).min(new);
        if ls >= pos && le <= end && plan.leaf_dirty(leaf) {
            let bytes = &chunk[(ls - pos) as usize..(le - pos) as usize];
            out.push((leaf, leaf_cv(leaf, bytes)));
        }
        leaf += 1;
    }
}
