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

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::delta::{DeltaOp, OpsBuilder};
use crate::error::{Error, Result};
use crate::filewrite::{
    Built, COMPRESSION_LEVEL, Decision, DeltaInfo, Failure, FileOutcome, FileWriter, PrevEntry, Produced, RATIO_FLOOR,
};
use crate::hashtree::{
    BlockAt, Cv, LEAF, LeafBlock, REGION, TreeBuilder, leaf_count, leaf_cv, region_count, root_block, root_of,
};
use crate::id::VersionId;
use crate::matcher::{LiteralSink, block_sig, zeros};
use crate::object::DataObjectWriter;
use crate::policy::DeltaMode;
use crate::ranges::RangeSet;
use crate::rolling::Roller;
use crate::runs::RunBuilder;
use crate::signature::{BlockSig, Signature, is_zero, strong_hash};
use crate::snapshot::{FileContent, Metadata, Storage};
use crate::source::read_full_at;
use crate::version::VersionKind;

/// Where a file's changed ranges came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// Physical extents no longer shared with a reflinked reference copy.
    Reflink,
    /// The fanotify change log written by `backup-fs track`.
    Fanotify,
    /// A list given by an outside tracker (`--changed-ranges`).
    List,
}

impl ChangeSource {
    /// The name used in reports: `reflink`, `fanotify`, `list`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeSource::Reflink => "reflink",
            ChangeSource::Fanotify => "fanotify",
            ChangeSource::List => "list",
        }
    }
}

/// The complete set of ranges of one file that may have changed since its previous version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedChanges {
    /// Where they came from.
    pub source: ChangeSource,
    /// The ranges (anything outside them is unchanged). Growth past the previous size need not
    /// be listed.
    pub ranges: RangeSet,
}

/// What a change source gives for one file: its changed ranges when it knows them completely,
/// and a frozen point-in-time copy of the file to read instead of the live file, when the source
/// made one (reflink) — used even when the file is compared.
#[derive(Debug, Default)]
pub struct TrackedInput {
    /// The ranges, if this source knows them completely.
    pub changes: Option<TrackedChanges>,
    /// A frozen copy to read, or `None` to read the file itself.
    pub data: Option<File>,
}

/// A source of changed ranges (reflink references, the fanotify log, an outside list).
pub trait ChangeProvider: Send + Sync {
    /// What this source knows of the file at `path` (`rel` relative to the source) whose metadata
    /// is now `meta`, and whose entry in the previous snapshot is `prev`. `None` lets the next
    /// source, or finally a full compare, handle the file.
    fn changes(&self, path: &Path, rel: &str, meta: &Metadata, prev: Option<&PrevEntry>) -> Option<TrackedInput>;

    /// Paths under the source that belong to this change source and must not be backed up.
    fn excluded(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    /// A file this source was asked about was stored as `version`.
    fn written(&self, _rel: &str, _version: VersionId) {}

    /// The snapshot was committed (a source may then advance its references).
    fn committed(&self, _snapshot: &crate::snapshot::Snapshot) {}

    /// The write was abandoned.
    fn abandoned(&self) {}

    /// Something the user should know about this source (e.g. why it is unavailable).
    fn note(&self) -> Option<String> {
        None
    }
}

/// Change tracking for one write: the sources to ask, in order, and the verification sample.
pub struct Tracking {
    /// Sources, best first.
    pub providers: Vec<Box<dyn ChangeProvider>>,
    /// Blocks taken as unchanged that are re-read and checked per file.
    pub verify_sample: u32,
}

/// Ranges given by an outside tracker, per path relative to the source.
#[derive(Debug, Default)]
pub struct ListProvider {
    files: std::collections::HashMap<String, RangeSet>,
}

impl ListProvider {
    /// A provider from `(path, ranges)` pairs (paths relative to the source, `/`-separated).
    pub fn new(files: impl IntoIterator<Item = (String, RangeSet)>) -> Self {
        let mut map: std::collections::HashMap<String, RangeSet> = std::collections::HashMap::new();
        for (p, r) in files {
            let key = p.trim_start_matches("./").trim_start_matches('/').to_string();
            let merged = match map.remove(&key) {
                Some(old) => old.union(&r),
                None => r,
            };
            map.insert(key, merged);
        }
        ListProvider { files: map }
    }
}

impl ChangeProvider for ListProvider {
    fn changes(&self, _path: &Path, rel: &str, meta: &Metadata, prev: Option<&PrevEntry>) -> Option<TrackedInput> {
        let prev = prev?;
        if meta.dev != prev.meta.dev || meta.ino != prev.meta.ino {
            return None;
        }
        self.files.get(rel).map(|r| TrackedInput {
            changes: Some(TrackedChanges {
                source: ChangeSource::List,
                ranges: r.clone(),
            }),
            data: None,
        })
    }
}

/// The result of trying a change-tracked write.
pub(crate) enum Tracked {
    /// Written.
    Done(Box<(FileOutcome, Produced)>),
    /// Tracking cannot be used for this file: compare it instead (the reason is reported).
    Fallback(String),
    /// The delta would exceed the delta-ratio limit: write a full.
    RatioExceeded,
}

/// Blocks re-read to check that "unchanged" really is unchanged, by default.
pub const DEFAULT_VERIFY_SAMPLE: u32 = 16;
/// Bytes read per request.
const PIECE: u64 = 4 << 20;

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
        prev_deltas: u32,
    ) -> Result<Tracked, Failure> {
        if prev.storage != Storage::Chain {
            return Ok(Tracked::Fallback("previous version was stored whole".into()));
        }
        let store = self.store;
        let prev_v = store.version(&prev.version).map_err(Failure::Store)?;
        let full = store.version(&prev_v.full).map_err(Failure::Store)?;
        let mut dirty = changes.ranges.clone();
        let (base, kind) = match self.policy.mode {
            DeltaMode::Incremental => (Arc::clone(&prev_v), VersionKind::Incremental),
            DeltaMode::Differential => match prev_v.kind {
                VersionKind::Full => (Arc::clone(&prev_v), VersionKind::Differential),
                VersionKind::Differential => {
                    // A differential delta holds everything since the full: what the previous
                    // one differed by, plus what changed since.
                    dirty = dirty.union(&differs_from_base(&prev_v.ops));
                    (Arc::clone(&full), VersionKind::Differential)
                }
                VersionKind::Incremental => {
                    return Ok(Tracked::Fallback("differential mode after incremental deltas".into()));
                }
            },
        };
        let Some(tree_id) = base.hash_tree else {
            return Ok(Tracked::Fallback(
                "the previous version has no hash tree (first change-tracked backup)".into(),
            ));
        };
        let base_sig = store.signature(&base.signature).map_err(Failure::Store)?;
        let base_tree = store.tree_table(&tree_id).map_err(Failure::Store)?;
        if base_tree.header.version != base.id
            || base_tree.header.file_size != base.size
            || base_sig.file_size() != base.size
        {
            return Err(Failure::Store(Error::corrupt(
                format!("file version {}", base.id.short()),
                "signature or hash tree does not match its size",
            )));
        }
        let limit = self
            .policy
            .max_delta_ratio
            .map(|p| ((u128::from(full.literal_stored) * u128::from(p.0) / 10_000) as u64).max(RATIO_FLOOR));
        let old = base.size;
        let new = meta.size;
        // Changed ranges are stored as literals, never matched against the base; when they
        // cover most of the file, a compare (which finds moved and unchanged data inside them)
        // costs no more reads and stores far less.
        let kept = old.min(new);
        if kept > 0 && dirty.clip(kept).len() > kept / 2 {
            return Ok(Tracked::Fallback(
                "changes cover most of the file; compared instead".into(),
            ));
        }
        let mut plan = Plan::new(&base_sig, &dirty, old, new);

        let mut bytes_read = 0u64;
        // Trust but verify: a sample of the blocks taken as unchanged must still match.
        let sample = self.tracking.map_or(DEFAULT_VERIFY_SAMPLE, |t| t.verify_sample);
        if let Some(why) = plan
            .verify_sample(data, &base_sig, sample, &mut bytes_read)
            .map_err(|e| Failure::Source(Error::io(path, e)))?
        {
            return Ok(Tracked::Fallback(format!(
                "a block reported unchanged differs ({why}); compared instead"
            )));
        }

        let mut sink = DataObjectWriter::create(&store.tmp_dir(), COMPRESSION_LEVEL).map_err(Failure::Store)?;
        let mut emit = Emitter::new(&base_sig);
        let mut dirty_cvs: Vec<(u64, Cv)> = Vec::new();
        let mut head: Vec<u8> = Vec::new();
        let result = (|| -> Result<Option<()>, Failure> {
            let mut s_iter = plan.sig_regions.ranges().iter().peekable();
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
                    bytes_read += got as u64;
                    self.progress.add_bytes(got as u64);
                    let chunk = &buf[..(end - pos) as usize];
                    if pos < LEAF && new <= LEAF {
                        head.extend_from_slice(chunk);
                    }
                    // Tree leaves wholly inside this piece that the tree plan marks dirty.
                    let mut leaf = pos.div_ceil(LEAF);
                    while leaf * LEAF < end {
                        let ls = leaf * LEAF;
                        let le = (ls + LEAF).min(new);
                        if ls >= pos && le <= end && plan.leaf_dirty(leaf) {
                            let bytes = &chunk[(ls - pos) as usize..(le - pos) as usize];
                            dirty_cvs.push((leaf, leaf_cv(leaf, bytes)));
                        }
                        leaf += 1;
                    }
                    // Signature regions overlapping this piece, in order.
                    while let Some(s) = s_iter.peek() {
                        if s.start >= end {
                            break;
                        }
                        let from = s.start.max(pos);
                        let to = s.end.min(end);
                        if from == s.start {
                            emit.begin(s.start);
                        }
                        emit.feed(&chunk[(from - pos) as usize..(to - pos) as usize], &mut sink)
                            .map_err(Failure::Store)?;
                        if to == s.end {
                            emit.end(s.end, &mut sink).map_err(Failure::Store)?;
                            s_iter.next();
                        } else {
                            break;
                        }
                    }
                    if limit.is_some_and(|l| sink.stored_len() > l) {
                        return Ok(None);
                    }
                    pos = end;
                }
            }
            emit.clean_until(new);
            Ok(Some(()))
        })();
        match result {
            Ok(Some(())) => {}
            Ok(None) => {
                sink.abandon();
                return Ok(Tracked::RatioExceeded);
            }
            Err(e) => {
                sink.abandon();
                return Err(e);
            }
        }

        // The new tree: regions without a changed leaf are the base's; the others are rebuilt
        // from new leaf values and the base's (one block read per region). The version id, the
        // BLAKE3 of the whole content, merges region values and the leaves of the root block.
        let n_leaves = leaf_count(new);
        let root_region = root_block(n_leaves);
        let mut tree = TreeBuilder::new(Some(Arc::clone(&base_tree)));
        let mut root_leaves: LeafBlock = [[0; 32]; REGION as usize];
        let mut fresh = dirty_cvs.iter().peekable();
        for r in 0..region_count(n_leaves) {
            let lo = r * REGION;
            let hi = (lo + REGION).min(n_leaves);
            let touched = fresh.peek().is_some_and(|(k, _)| *k < hi);
            if !touched && hi - lo == REGION && base_tree.is_full(r) && root_region != Some(r) {
                let (Some(e), Some((oid, slot))) = (base_tree.regions.get(r as usize), base_tree.location(r)) else {
                    return Err(Failure::Store(Error::corrupt(
                        "tracked write",
                        format!("base tree has no region {r}"),
                    )));
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
                        if i >= base_tree.leaf_count() {
                            return Err(Failure::Store(Error::corrupt(
                                "tracked write",
                                format!("leaf {i} is neither read nor in the base"),
                            )));
                        }
                        let block = match &base_block {
                            Some(b) => b,
                            None => base_block.insert(store.tree_block(&base_tree, r).map_err(Failure::Store)?),
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
            None => crate::id::VersionId::from(blake3::hash(&head)),
        };
        let literal_bytes = emit.literal;
        let (ops, sig_runs, block_count) = emit.finish();
        let literal = if literal_bytes > 0 {
            Some(sink.finish().map_err(Failure::Store)?)
        } else {
            sink.abandon();
            None
        };
        if limit.is_some_and(|l| literal.as_ref().map_or(0, |o| o.stored_len) > l) {
            if let Some(l) = literal {
                let _ = std::fs::remove_file(&l.temp);
            }
            return Ok(Tracked::RatioExceeded);
        }
        let delta = DeltaInfo {
            base: Arc::clone(&base),
            full_id: full.id,
            kind,
            deltas_since_full: prev_deltas.saturating_add(1),
            base_sig: Arc::clone(&base_sig),
            limit,
        };
        let outcome = FileOutcome {
            content: FileContent {
                version: id,
                storage: Storage::Chain,
            },
            decision: if kind == VersionKind::Differential {
                Decision::Differential
            } else {
                Decision::Incremental
            },
            reason: None,
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
            block_size: base_sig.block_size,
            literal,
            leaves: Some(leaves),
        };
        let done = self.assemble(built, Some(&delta), outcome)?;
        Ok(Tracked::Done(Box::new(done)))
    }
}

/// The ranges of a version whose ops do not copy the base at the same offset.
fn differs_from_base(ops: &[DeltaOp]) -> RangeSet {
    let mut pos = 0u64;
    let mut out = Vec::new();
    for op in ops {
        let len = op.len();
        let same = matches!(op, DeltaOp::Copy { base_offset, .. } if *base_offset == pos);
        if !same {
            out.push(pos..pos + len);
        }
        pos += len;
    }
    RangeSet::from_ranges(out)
}

/// What a tracked write reads and rewrites.
struct Plan {
    /// Base blocks to rewrite (merged), plus growth past the old size.
    sig_regions: RangeSet,
    /// Leaves to rehash, as byte ranges.
    leaves: RangeSet,
    /// Everything to read: both of the above.
    read: RangeSet,
    /// Base blocks kept unchanged (for the verification sample).
    clean_blocks: Vec<usize>,
}

impl Plan {
    fn new(sig: &Signature, dirty: &RangeSet, old: u64, new: u64) -> Plan {
        let mut dirty = dirty.clip(new);
        if new > old {
            dirty = dirty.union(&RangeSet::one(old..new));
        }
        let mut regions = Vec::new();
        let mut clean = Vec::new();
        for (j, b) in sig.blocks.iter().enumerate() {
            let o = sig.offsets.get(j).copied().unwrap_or(0);
            let e = o + u64::from(b.len);
            if o >= new {
                break;
            }
            if e > new || dirty.intersects(o, e) {
                regions.push(o..e.min(new));
            } else {
                clean.push(j);
            }
        }
        if new > old {
            regions.push(old..new);
        }
        let sig_regions = RangeSet::from_ranges(regions);
        let mut leaves = dirty.align(LEAF, new);
        // The leaf holding the smaller of the old and new ends changes length (truncation or
        // growth), unless that end falls on a leaf boundary.
        let edge = old.min(new) / LEAF * LEAF;
        if old != new && edge < new {
            leaves = leaves.union(&RangeSet::one(edge..(edge + LEAF).min(new)));
        }
        if leaf_count(new) <= 1 && new > 0 {
            // A one-leaf version's id is its plain BLAKE3: read it all.
            leaves = RangeSet::one(0..new);
        }
        if leaf_count(old) <= 1 && new > 0 {
            // A one-leaf base has no checked leaf value (its id is a plain BLAKE3): rehash it.
            leaves = leaves.union(&RangeSet::one(0..new.min(LEAF)));
        }
        let read = sig_regions.union(&leaves);
        Plan {
            sig_regions,
            leaves,
            read,
            clean_blocks: clean,
        }
    }

    fn leaf_dirty(&self, leaf: u64) -> bool {
        self.leaves.intersects(leaf * LEAF, leaf * LEAF + 1)
    }

    /// Re-reads up to `n` blocks taken as unchanged; returns a description of the first that
    /// differs from its stored signature.
    fn verify_sample(
        &mut self,
        data: &File,
        sig: &Signature,
        n: u32,
        bytes_read: &mut u64,
    ) -> std::io::Result<Option<String>> {
        if self.clean_blocks.is_empty() || n == 0 {
            return Ok(None);
        }
        // Distinct blocks, chosen at random (a partial Fisher-Yates shuffle): a sample as large as
        // the file checks every block.
        let mut x = crate::timefmt::now_ns() as u64 | 1;
        let mut buf = Vec::new();
        let pool = &mut self.clean_blocks;
        let take = (n as usize).min(pool.len());
        for k in 0..take {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pick = k + (x % (pool.len() - k) as u64) as usize;
            pool.swap(k, pick);
            let Some(&j) = pool.get(k) else { continue };
            let (Some(b), Some(&o)) = (sig.blocks.get(j), sig.offsets.get(j)) else {
                continue;
            };
            buf.resize(b.len as usize, 0);
            let got = read_full_at(data, &mut buf, o)?;
            *bytes_read += got as u64;
            let zero_block = b.strong == strong_hash(zeros(b.len as usize));
            let same = got == buf.len()
                && if zero_block {
                    is_zero(&buf)
                } else {
                    strong_hash(&buf) == b.strong
                };
            if !same {
                return Ok(Some(format!("block at offset {o}")));
            }
        }
        Ok(None)
    }
}

/// Emits ops and signature runs in file order: base blocks kept as copies, rewritten regions as
/// literal blocks cut from where each region starts (all-zero full blocks become holes, as the
/// matcher does).
struct Emitter<'a> {
    sig: &'a Signature,
    roller: Roller,
    zero: Vec<bool>,
    zero_block: BlockSig,
    bs: usize,
    next_block: usize,
    ops: OpsBuilder,
    runs: RunBuilder<BlockSig>,
    pending: Vec<u8>,
    literal: u64,
}

impl<'a> Emitter<'a> {
    fn new(sig: &'a Signature) -> Self {
        let bs = sig.block_size as usize;
        let roller = Roller::new(bs);
        let zero_block = block_sig(&roller, zeros(bs));
        // Every block but the last is `bs` long: hash zeros once per length, not once per block
        // (a 4 GiB file has a million blocks).
        let short_zero = sig
            .blocks
            .last()
            .filter(|b| b.len as usize != bs)
            .map(|b| block_sig(&roller, zeros(b.len as usize)));
        let zero = sig
            .blocks
            .iter()
            .map(|b| {
                let z = if b.len as usize == bs {
                    Some(&zero_block)
                } else {
                    short_zero.as_ref()
                };
                z == Some(b)
            })
            .collect();
        Emitter {
            sig,
            roller,
            zero,
            zero_block,
            bs,
            next_block: 0,
            ops: OpsBuilder::new(),
            runs: RunBuilder::default(),
            pending: Vec::new(),
            literal: 0,
        }
    }

    /// Emits, as copies of the base, the base blocks that end at or before `x`.
    fn clean_until(&mut self, x: u64) {
        while let (Some(b), Some(&o)) = (
            self.sig.blocks.get(self.next_block),
            self.sig.offsets.get(self.next_block),
        ) {
            let e = o + u64::from(b.len);
            if e > x {
                break;
            }
            if self.zero.get(self.next_block).copied().unwrap_or(false) {
                self.ops.push(DeltaOp::Hole { len: u64::from(b.len) });
            } else {
                self.ops.push(DeltaOp::Copy {
                    base_offset: o,
                    len: u64::from(b.len),
                });
            }
            self.runs.push_base(self.next_block as u32);
            self.next_block += 1;
        }
    }

    fn begin(&mut self, start: u64) {
        self.clean_until(start);
        self.pending.clear();
    }

    fn feed(&mut self, mut bytes: &[u8], sink: &mut dyn LiteralSink) -> Result<()> {
        while !bytes.is_empty() {
            let take = (self.bs - self.pending.len()).min(bytes.len());
            let (now, rest) = bytes.split_at(take);
            self.pending.extend_from_slice(now);
            bytes = rest;
            if self.pending.len() == self.bs {
                self.block(sink)?;
            }
        }
        Ok(())
    }

    fn block(&mut self, sink: &mut dyn LiteralSink) -> Result<()> {
        let piece = std::mem::take(&mut self.pending);
        if piece.len() == self.bs && is_zero(&piece) {
            self.ops.push(DeltaOp::Hole { len: self.bs as u64 });
            self.runs.push_new([self.zero_block]);
        } else if !piece.is_empty() {
            sink.write(&piece)?;
            self.literal += piece.len() as u64;
            self.ops.push(DeltaOp::Literal {
                len: piece.len() as u64,
            });
            self.runs.push_new([block_sig(&self.roller, &piece)]);
        }
        self.pending = piece;
        self.pending.clear();
        Ok(())
    }

    /// Ends the region at `end`: emits its last, short block and skips the base blocks it replaced.
    fn end(&mut self, end: u64, sink: &mut dyn LiteralSink) -> Result<()> {
        self.block(sink)?;
        while let Some(&o) = self.sig.offsets.get(self.next_block) {
            if self.next_block >= self.sig.blocks.len() || o >= end {
                break;
            }
            self.next_block += 1;
        }
        Ok(())
    }

    fn finish(self) -> (Vec<DeltaOp>, Vec<crate::signature::SigRun>, u32) {
        let count = self.runs.len();
        (self.ops.finish(), self.runs.finish(), count)
    }
}
