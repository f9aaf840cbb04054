//! Writing one regular file: the policy decision (whole, full, or a delta against which base),
//! then one pass over the source that hashes, matches and compresses at the same time.

use std::sync::Arc;

use crate::envelope::Kind;
use crate::error::{Error, Result};
use crate::extent::ExtentMap;
use crate::hashtree::{ContentHasher, TreeLeaves};
use crate::id::{ObjectId, VersionId};
use crate::matcher::{BaseIndex, LiteralSink, Matcher, zeros};
use crate::object::DataObjectWriter;
use crate::policy::{DeltaMode, Percent, Policy};
use crate::progress::WriteProgress;
use crate::signature::{Signature, SignatureRecord};
use crate::snapshot::{FileContent, Metadata, Storage};
use crate::source::{Segment, SourceFile};
use crate::staging::Staging;
use crate::store::Store;
use crate::tracked::{Tracked, Tracking};
use crate::version::{FileVersion, VersionKind};

/// zstd level for data.
pub const COMPRESSION_LEVEL: i32 = 3;
/// A self-contained signature is stored at least every this many run-encoded ones.
pub const SIGNATURE_CHAIN_MAX: u16 = 16;
/// An incremental version at a depth divisible by this stores its flattened extent map.
pub const MAP_CHECKPOINT_INTERVAL: u32 = 16;
/// The delta-ratio rule never replaces a delta smaller than this by a full: such a delta costs
/// less than re-storing any full worth the name (and a full of only holes stores nothing).
pub const RATIO_FLOOR: u64 = 64 << 10;
/// Attempts at reading a file that keeps changing while it is read.
const ATTEMPTS: usize = 3;

/// Key derivation context naming extent-map objects. On disk: do not modify.
const MAP_CONTEXT: &str = "backup-fs 2026-11 extent map object";

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
}

/// The result of writing one file.
#[derive(Debug, Clone)]
pub struct FileOutcome {
    /// The content to record in the snapshot.
    pub content: FileContent,
    /// What was stored.
    pub decision: Decision,
    /// Why a full was written (first version, max deltas, ratio, ...).
    pub reason: Option<String>,
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
    pub change_source: Option<crate::tracked::ChangeSource>,
}

/// A file's entry in the previous snapshot.
#[derive(Debug, Clone)]
pub struct PrevEntry {
    /// Its content.
    pub content: FileContent,
    /// Its metadata then.
    pub meta: Metadata,
}

/// Why a file could not be written.
#[derive(Debug)]
pub enum Failure {
    /// The source file could not be read (skip it, report it).
    Source(Error),
    /// The store could not be written (abort the snapshot).
    Store(Error),
}

enum Plan {
    Whole,
    Full(String),
    Delta {
        base: Arc<FileVersion>,
        full: Arc<FileVersion>,
        kind: VersionKind,
    },
}

/// Writes files into a staging area following a policy.
pub struct FileWriter<'a> {
    /// The store.
    pub store: &'a Store,
    /// Where new files go until the commit.
    pub staging: &'a Staging,
    /// The policy in force.
    pub policy: &'a Policy,
    /// Progress counters.
    pub progress: &'a WriteProgress,
    /// Change tracking, when on.
    pub tracking: Option<&'a Tracking>,
}

/// Everything one file produced, kept aside until the file is known not to have changed.
pub(crate) struct Produced {
    literal: Option<crate::object::FinishedObject>,
    envelopes: Vec<(ObjectId, Kind, Vec<u8>)>,
    version: Option<FileVersion>,
}

impl Produced {
    pub(crate) fn abandon(self) {
        if let Some(l) = self.literal {
            let _ = std::fs::remove_file(&l.temp);
        }
    }
}

/// A pass aborted because the delta grew past the ratio limit.
pub(crate) struct RatioExceeded;

impl FileWriter<'_> {
    /// Writes the file at `path` (`rel` relative to the source), whose previous entry (if any)
    /// is `prev`.
    pub fn write(&self, path: &std::path::Path, rel: &str, prev: Option<&PrevEntry>) -> Result<FileOutcome, Failure> {
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
            if outcome.stored_bytes == 0 && outcome.decision != Decision::Unchanged {
                outcome.deduplicated = true;
            }
            return Ok(outcome);
        }
        Err(Failure::Source(Error::io(
            path,
            std::io::Error::other(format!("changed while being read ({ATTEMPTS} attempts); not backed up")),
        )))
    }

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

    fn plan(&self, prev: Option<&FileContent>, size: u64) -> Plan {
        if size < self.policy.min_delta_size {
            return Plan::Whole;
        }
        let prev = match prev {
            Some(c) if c.storage == Storage::Chain => c.version,
            Some(_) => return Plan::Full("previous version was stored whole".into()),
            None => return Plan::Full("first version".into()),
        };
        let load = |id: &VersionId| self.store.version(id);
        let (prev_v, full) = match load(&prev).and_then(|p| Ok((Arc::clone(&p), load(&p.full)?))) {
            Ok(x) => x,
            Err(e) => return Plan::Full(format!("previous version unreadable ({e})")),
        };
        if let Some(max) = self.policy.max_deltas
            && prev_v.deltas_since_full >= max
        {
            return Plan::Full(format!("{max} deltas since the last full (max deltas)"));
        }
        let (base, kind) = match self.policy.mode {
            DeltaMode::Incremental => (prev_v, VersionKind::Incremental),
            DeltaMode::Differential => (Arc::clone(&full), VersionKind::Differential),
        };
        Plan::Delta { base, full, kind }
    }

    fn write_once(
        &self,
        live: &SourceFile,
        rel: &str,
        prev: Option<&PrevEntry>,
    ) -> Result<(FileOutcome, Produced, bool), Failure> {
        let meta = live.meta().clone();
        let prev_content = prev.map(|p| &p.content);
        let plan = self.plan(prev_content, meta.size);
        let mut tracking_note = None;
        let mut frozen: Option<SourceFile> = None;
        if let (Some(tracking), false) = (self.tracking, matches!(plan, Plan::Whole)) {
            // The first source with a frozen copy provides it; the first with complete ranges
            // provides them.
            let mut changes = None;
            for provider in &tracking.providers {
                let Some(input) = provider.changes(live.path(), rel, &meta, prev) else {
                    continue;
                };
                if let (None, Some(data)) = (&frozen, input.data) {
                    frozen = Some(SourceFile::frozen(data, live.path(), meta.clone()));
                }
                if input.changes.is_some() {
                    changes = input.changes;
                    break;
                }
                if tracking_note.is_none() {
                    tracking_note = provider.note();
                }
            }
            let src = frozen.as_ref().unwrap_or(live);
            match (changes, prev, &plan) {
                (Some(changes), Some(prev), Plan::Delta { .. }) => {
                    let prev_deltas = self
                        .store
                        .version(&prev.content.version)
                        .map(|v| v.deltas_since_full)
                        .unwrap_or(0);
                    match self.write_tracked(src.file(), src.path(), &meta, &prev.content, &changes, prev_deltas)? {
                        Tracked::Done(done) => {
                            let (outcome, produced) = *done;
                            return Ok((outcome, produced, frozen.is_some()));
                        }
                        Tracked::Fallback(reason) => tracking_note = Some(reason),
                        Tracked::RatioExceeded => {
                            let reason = format!(
                                "delta larger than {} of the full (max delta ratio)",
                                self.policy.max_delta_ratio.unwrap_or(Percent(0))
                            );
                            let (o, p) = self.write_full(src, reason)?;
                            return Ok((o, p, frozen.is_some()));
                        }
                    }
                }
                (None, Some(_), Plan::Delta { .. }) if tracking_note.is_none() => {
                    tracking_note = Some("no complete record of changes for this file".into());
                }
                _ => {}
            }
        }
        let src = frozen.as_ref().unwrap_or(live);
        let (mut outcome, produced) = match plan {
            Plan::Whole => self.write_whole(src)?,
            Plan::Full(reason) => self.write_full(src, reason)?,
            Plan::Delta { base, full, kind } => {
                let prev_deltas = match prev_content {
                    Some(c) => self.store.version(&c.version).map(|v| v.deltas_since_full).unwrap_or(0),
                    None => 0,
                };
                match self.write_delta(src, &base, &full, kind, prev_deltas)? {
                    Ok(r) => r,
                    Err(RatioExceeded) => {
                        let reason = format!(
                            "delta larger than {} of the full (max delta ratio)",
                            self.policy.max_delta_ratio.unwrap_or(Percent(0))
                        );
                        self.write_full(src, reason)?
                    }
                }
            }
        };
        if let Some(note) = tracking_note {
            outcome.reason = Some(match outcome.reason.take() {
                Some(r) => format!("{r}; change tracking: {note}"),
                None => format!("change tracking: {note}"),
            });
        }
        Ok((outcome, produced, frozen.is_some()))
    }

    fn write_whole(&self, src: &SourceFile) -> Result<(FileOutcome, Produced), Failure> {
        let mut obj = DataObjectWriter::create(&self.store.tmp_dir(), COMPRESSION_LEVEL).map_err(Failure::Store)?;
        let mut store_err = None;
        let read = src.read_segments(|seg| {
            let r = match seg {
                Segment::Data(d) => {
                    self.progress.add_bytes(d.len() as u64);
                    obj.write(&d)
                }
                Segment::Hole(n) => write_zeros(&mut obj, n),
            };
            r.map_err(|e| stash(&mut store_err, e))
        });
        let read = match (read, store_err) {
            (_, Some(e)) => {
                obj.abandon();
                return Err(Failure::Store(e));
            }
            (Err(e), None) => {
                obj.abandon();
                return Err(Failure::Source(e));
            }
            (Ok(r), None) => r,
        };
        let finished = obj.finish().map_err(Failure::Store)?;
        let version = VersionId(finished.id.0);
        let outcome = FileOutcome {
            content: FileContent {
                version,
                storage: Storage::Whole,
            },
            decision: Decision::Whole,
            reason: None,
            meta: src.meta().clone(),
            bytes_read: read,
            literal_bytes: finished.logical_len,
            stored_bytes: 0,
            deduplicated: false,
            change_source: None,
        };
        Ok((
            outcome,
            Produced {
                literal: Some(finished),
                envelopes: Vec::new(),
                version: None,
            },
        ))
    }

    fn write_delta(
        &self,
        src: &SourceFile,
        base: &Arc<FileVersion>,
        full: &Arc<FileVersion>,
        kind: VersionKind,
        prev_deltas: u32,
    ) -> Result<Result<(FileOutcome, Produced), RatioExceeded>, Failure> {
        let base_sig = match self.store.signature(&base.signature) {
            Ok(s) => s,
            Err(e) => {
                return self.write_full(src, format!("base signature unreadable ({e})")).map(Ok);
            }
        };
        let limit = self
            .policy
            .max_delta_ratio
            .map(|p| ((u128::from(full.literal_stored) * u128::from(p.0) / 10_000) as u64).max(RATIO_FLOOR));
        let info = DeltaInfo {
            base: Arc::clone(base),
            full_id: full.id,
            kind,
            deltas_since_full: prev_deltas.saturating_add(1),
            base_sig,
            limit,
        };
        self.pass(src, Some(info), String::new())
    }

    fn write_full(&self, src: &SourceFile, reason: String) -> Result<(FileOutcome, Produced), Failure> {
        match self.pass(src, None, reason)? {
            Ok(r) => Ok(r),
            Err(RatioExceeded) => unreachable!("a full has no ratio limit"),
        }
    }

    /// One pass over the source producing a full (no `delta`) or a delta version.
    fn pass(
        &self,
        src: &SourceFile,
        delta: Option<DeltaInfo>,
        reason: String,
    ) -> Result<Result<(FileOutcome, Produced), RatioExceeded>, Failure> {
        let size = src.meta().size;
        let index = delta.as_ref().map(|d| BaseIndex::new(Arc::clone(&d.base_sig)));
        let mut matcher = Matcher::new(index.as_ref(), self.policy.block_size.for_size(size));
        let mut sink = DataObjectWriter::create(&self.store.tmp_dir(), COMPRESSION_LEVEL).map_err(Failure::Store)?;
        let limit = delta.as_ref().and_then(|d| d.limit);
        let mut store_err = None;
        let mut over_limit = false;
        // With change tracking on, the version keeps a hash tree, sharing the regions that did not
        // change with its base's tree.
        let tree_base = match (&delta, self.policy.change_tracking) {
            (Some(d), true) => d.base.hash_tree.and_then(|t| {
                self.store
                    .tree_table(&t)
                    .ok()
                    .filter(|table| table.header.version == d.base.id)
            }),
            _ => None,
        };
        let hasher = ContentHasher::new(self.policy.change_tracking, tree_base);
        // The content hash runs on its own thread, beside the matcher, on the same buffers.
        let (hash_tx, hash_rx) = std::sync::mpsc::sync_channel::<Segment>(2);
        let (read, (id, leaves)) = std::thread::scope(|scope| {
            let hashing = scope.spawn(move || {
                let mut hasher = hasher;
                for seg in hash_rx {
                    match seg {
                        Segment::Data(d) => hasher.update(&d),
                        Segment::Hole(n) => hasher.update_zeros(n),
                    }
                }
                hasher.finish()
            });
            let read = src.read_segments(|seg| {
                let _ = hash_tx.send(seg.clone());
                let r = match &seg {
                    Segment::Data(d) => {
                        self.progress.add_bytes(d.len() as u64);
                        matcher.feed(d, &mut sink)
                    }
                    Segment::Hole(n) => matcher.feed_zeros(*n, &mut sink),
                };
                r.map_err(|e| stash(&mut store_err, e))?;
                if limit.is_some_and(|l| sink.stored_len() > l) {
                    over_limit = true;
                    return Err(Error::InvalidArgument("ratio".into()));
                }
                Ok(())
            });
            drop(hash_tx);
            let hashed = hashing.join().unwrap_or((VersionId([0; 32]), None));
            (read, hashed)
        });
        if over_limit {
            sink.abandon();
            return Ok(Err(RatioExceeded));
        }
        let read = match (read, store_err) {
            (_, Some(e)) => {
                sink.abandon();
                return Err(Failure::Store(e));
            }
            (Err(e), None) => {
                sink.abandon();
                return Err(Failure::Source(e));
            }
            (Ok(r), None) => r,
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
                let _ = std::fs::remove_file(&l.temp);
            }
            return Ok(Err(RatioExceeded));
        }
        let outcome = FileOutcome {
            content: FileContent {
                version: id,
                storage: Storage::Chain,
            },
            decision: match &delta {
                None => Decision::Full,
                Some(d) if d.kind == VersionKind::Differential => Decision::Differential,
                Some(_) => Decision::Incremental,
            },
            reason: (!reason.is_empty()).then_some(reason),
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
            ops: out.ops,
            sig_runs: std::mem::take(&mut out.sig_runs),
            block_count: out.block_count,
            block_size: matcher_block_size(&delta, self.policy, size),
            literal,
            leaves,
        };
        self.assemble(built, delta.as_ref(), outcome).map(Ok)
    }

    /// Writes a new version's records: its signature (runs over the base's while that chain is
    /// short), its hash tree, an extent-map checkpoint at every [`MAP_CHECKPOINT_INTERVAL`]th
    /// depth, and the version record — unless identical content is already stored, in which case
    /// nothing is.
    pub(crate) fn assemble(
        &self,
        built: Built,
        delta: Option<&DeltaInfo>,
        mut outcome: FileOutcome,
    ) -> Result<(FileOutcome, Produced), Failure> {
        let Built {
            id,
            size,
            ops,
            sig_runs,
            block_count,
            block_size,
            literal,
            leaves,
        } = built;
        let literal_stored = literal.as_ref().map_or(0, |l| l.stored_len);
        if self.staging.has_version(&id) {
            // Identical content is already stored: reference it, store nothing.
            if let Ok(existing) = self.store.version(&id) {
                outcome.decision = match existing.kind {
                    VersionKind::Full => Decision::Full,
                    VersionKind::Incremental => Decision::Incremental,
                    VersionKind::Differential => Decision::Differential,
                };
            }
            if let Some(l) = literal {
                let _ = std::fs::remove_file(&l.temp);
            }
            let produced = Produced {
                literal: None,
                envelopes: Vec::new(),
                version: None,
            };
            return Ok((outcome, produced));
        }
        let literal_id = literal.as_ref().map(|l| l.id);
        let mut envelopes = Vec::new();

        let sig_record = match delta {
            Some(d) => {
                let chain = self.store.signature_chain(&d.base.signature).map_err(Failure::Store)?;
                let runs = SignatureRecord {
                    block_size,
                    file_size: size,
                    block_count,
                    base: Some(d.base.signature),
                    chain: chain + 1,
                    runs: sig_runs,
                };
                if chain + 1 > SIGNATURE_CHAIN_MAX {
                    let complete: Signature = runs
                        .resolve(Some(&d.base_sig), "new signature")
                        .map_err(Failure::Store)?;
                    SignatureRecord::complete(complete)
                } else {
                    runs
                }
            }
            None => SignatureRecord {
                block_size,
                file_size: size,
                block_count,
                base: None,
                chain: 0,
                runs: sig_runs,
            },
        };
        let (sig_id, sig_payload) = sig_record.encode();
        drop(sig_record);
        envelopes.push((sig_id, Kind::Signature, sig_payload));

        let (kind, depth, deltas_since_full, full, base) = match delta {
            None => (VersionKind::Full, 0, 0, id, None),
            Some(d) => (
                d.kind,
                d.base.depth + 1,
                d.deltas_since_full,
                d.full_id,
                Some(d.base.id),
            ),
        };
        let hash_tree = match leaves {
            Some(l) => Some(
                self.tree_object(&l, &id, size, &mut envelopes)
                    .map_err(Failure::Store)?,
            ),
            None => None,
        };
        let mut map_checkpoint = None;
        if depth > 0 && depth % MAP_CHECKPOINT_INTERVAL == 0 {
            let base_map = self.store.extent_map(&base.unwrap_or(id)).map_err(Failure::Store)?;
            let map = ExtentMap::compose(&ops, literal_id, Some(&base_map), "new version").map_err(Failure::Store)?;
            let payload = map.encode();
            let cp = map_object_id(&payload);
            envelopes.push((cp, Kind::ExtentMap, payload));
            map_checkpoint = Some(cp);
        }
        let version = FileVersion {
            id,
            size,
            kind,
            depth,
            deltas_since_full,
            full,
            base,
            signature: sig_id,
            block_size,
            literal: literal_id,
            ops,
            map_checkpoint,
            hash_tree,
            literal_stored,
            stored_bytes: 0,
            time_ns: crate::timefmt::now_ns(),
        };
        Ok((
            outcome,
            Produced {
                literal,
                envelopes,
                version: Some(version),
            },
        ))
    }
}

impl FileWriter<'_> {
    /// Encodes a version's hash tree (its regions, sharing unchanged ones with earlier trees, and
    /// its new leaf blocks). Returns the tree object's id; the payload goes into `envelopes`.
    fn tree_object(
        &self,
        leaves: &TreeLeaves,
        id: &VersionId,
        size: u64,
        envelopes: &mut Vec<(ObjectId, Kind, Vec<u8>)>,
    ) -> Result<ObjectId> {
        let (oid, payload) = leaves.encode(id, size)?;
        envelopes.push((oid, Kind::HashTree, payload));
        Ok(oid)
    }
}

/// The id of an extent-map object with this payload.
pub fn map_object_id(payload: &[u8]) -> ObjectId {
    ObjectId::from(blake3::Hasher::new_derive_key(MAP_CONTEXT).update(payload).finalize())
}

/// What a delta is written against.
pub(crate) struct DeltaInfo {
    pub(crate) base: Arc<FileVersion>,
    pub(crate) full_id: VersionId,
    pub(crate) kind: VersionKind,
    pub(crate) deltas_since_full: u32,
    pub(crate) base_sig: Arc<Signature>,
    pub(crate) limit: Option<u64>,
}

/// A new version's parts, before its records are written.
pub(crate) struct Built {
    pub(crate) id: VersionId,
    pub(crate) size: u64,
    pub(crate) ops: Vec<crate::delta::DeltaOp>,
    pub(crate) sig_runs: Vec<crate::signature::SigRun>,
    pub(crate) block_count: u32,
    pub(crate) block_size: u32,
    pub(crate) literal: Option<crate::object::FinishedObject>,
    pub(crate) leaves: Option<TreeLeaves>,
}

fn matcher_block_size(delta: &Option<DeltaInfo>, policy: &Policy, size: u64) -> u32 {
    match delta {
        Some(d) => d.base_sig.block_size,
        None => policy.block_size.for_size(size),
    }
}

/// Keeps the first store error aside and returns a placeholder for the source reader.
fn stash(slot: &mut Option<Error>, e: Error) -> Error {
    let msg = e.to_string();
    if slot.is_none() {
        *slot = Some(e);
    }
    Error::InvalidArgument(msg)
}

fn write_zeros(sink: &mut dyn LiteralSink, mut n: u64) -> Result<()> {
    while n > 0 {
        let k = n.min(1 << 20) as usize;
        sink.write(zeros(k))?;
        n -= k as u64;
    }
    Ok(())
}
