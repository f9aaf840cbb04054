//! The new records of a merged chain. The root becomes a merged full: its content is its extent
//! map over the data objects the chain already has (composed from the chain's op lists, with the
//! objects that are mostly unused repacked, see `repack`), with a complete signature. Each
//! version above it keeps its ops and data and gets a record whose depth, full and delta count
//! follow the new root, a signature re-encoded over its base's new one, and an extent-map
//! checkpoint at its new depths. Hash trees are kept only for the versions of the newest
//! snapshots (the bases of the next change-tracked writes), each as a complete tree; the others
//! lose theirs, so no tree of a merged-away version stays referenced.

use std::collections::HashMap;
use std::sync::Arc;

use super::plan::{Chain, Plan};
use super::repack::{self, Repacked};
use crate::error::{Error, Result};
use crate::format::FormatVersion;
use crate::format::envelope::Kind;
use crate::format::extent::{ExtentMap, map_object_id};
use crate::format::hashtree::{BlockAt, RegionEntry, TreeLeaves};
use crate::format::policy::Percent;
use crate::format::signature::SignatureRecord;
use crate::format::version::{FileVersion, VersionKind};
use crate::id::{ObjectId, VersionId};
use crate::store::Store;
use crate::write::limits::{MAP_CHECKPOINT_INTERVAL, SIGNATURE_CHAIN_MAX};

/// A new envelope object and the objects it references.
pub(crate) struct NewObject {
    /// Its id.
    pub id: ObjectId,
    /// Its kind.
    pub kind: Kind,
    /// Its payload.
    pub payload: Vec<u8>,
    /// What it references: a map's data objects, a signature's base, none for a complete tree.
    pub refs: Vec<ObjectId>,
}

/// Everything a merge writes.
pub(crate) struct Rebuilt {
    /// New envelope objects.
    pub envelopes: Vec<NewObject>,
    /// The repacked data object, if any.
    pub repacked: Option<Repacked>,
    /// The replacement records, root first.
    pub records: Vec<FileVersion>,
}

/// Builds the new records of `chain`, merged at snapshot time `now_ns`; `dry` copies no data
/// (the repacked object is then only planned).
pub(crate) fn rebuild(
    store: &Store,
    plan: &Plan,
    chain: &Chain,
    max_unused: Percent,
    now_ns: i64,
    dry: bool,
) -> Result<Rebuilt> {
    let record = |id: &VersionId| {
        plan.records.get(id).cloned().ok_or_else(|| Error::Internal {
            what: format!("merge: version {} was not loaded", id.short()),
        })
    };
    let root = record(&chain.root)?;
    let old_map = store.extent_map(&chain.root)?;
    // Objects that a member stores as its literal are wholly used; the rest may be repacked.
    let literals: Vec<ObjectId> = chain
        .members
        .iter()
        .skip(1)
        .filter_map(|m| plan.records.get(m).and_then(|r| r.literal))
        .collect();
    let repacked = repack::repack(store, &old_map, &literals, max_unused, dry)?;
    let root_map = match &repacked {
        Some(r) => Arc::new(r.map.clone()),
        None => old_map,
    };
    let mut out = Rebuilt {
        envelopes: Vec::new(),
        repacked,
        records: Vec::new(),
    };
    let mut maps: HashMap<VersionId, Arc<ExtentMap>> = HashMap::new();
    let mut sigs: HashMap<VersionId, (ObjectId, u16)> = HashMap::new();
    let mut new_records: HashMap<VersionId, FileVersion> = HashMap::new();

    // The root: a merged full.
    let map_id = out.envelope_map(&root_map);
    let sig = complete_signature(store, &root, &mut out)?;
    sigs.insert(root.id, (sig, 0));
    let hash_tree = head_tree(store, plan, &root, &mut out)?;
    let new_object = out.repacked.as_ref().map(|r| match &r.object {
        Some(o) => (o.id, o.stored_len, o.logical_len),
        None => (ObjectId([0; 32]), 1, 1),
    });
    let literal_stored = stored_estimate(store, &root_map, new_object)?;
    let merged = FileVersion {
        kind: VersionKind::Merged,
        depth: 0,
        deltas_since_full: 0,
        full: root.id,
        base: None,
        signature: sig,
        literal: None,
        ops: Vec::new(),
        map_checkpoint: Some(map_id),
        hash_tree,
        literal_stored,
        stored_bytes: 0,
        time_ns: now_ns,
        lineage: Vec::new(),
        ..(*root).clone()
    };
    maps.insert(root.id, root_map);
    new_records.insert(root.id, merged.clone());
    out.records.push(merged);

    for id in chain.members.iter().skip(1) {
        let v = record(id)?;
        let base_id = v.base.ok_or_else(|| Error::Internal {
            what: format!("merge: version {} above the root has no base", id.short()),
        })?;
        let (Some(base), Some(base_map), Some(&(base_sig, base_chain))) =
            (new_records.get(&base_id), maps.get(&base_id), sigs.get(&base_id))
        else {
            return Err(Error::Internal {
                what: format!("merge: version {} comes before its base", id.short()),
            });
        };
        let what = format!("file version {}", v.id.short());
        let map = Arc::new(ExtentMap::compose(&v.ops, v.literal, Some(base_map), &what)?);
        let depth = base.depth + 1;
        let deltas_since_full = base.deltas_since_full + 1;
        let old_base_sig = record(&base_id)?.signature;
        let (signature, chain_len) = rebase_signature(store, &v, old_base_sig, base_sig, base_chain, &mut out)?;
        let map_checkpoint = (depth % MAP_CHECKPOINT_INTERVAL == 0).then(|| out.envelope_map(&map));
        let hash_tree = head_tree(store, plan, &v, &mut out)?;
        let mut new = FileVersion {
            depth,
            deltas_since_full,
            full: chain.root,
            signature,
            map_checkpoint,
            hash_tree,
            ..(*v).clone()
        };
        // What is under it now: the merged root and the rebuilt records above it.
        new.lineage = match store.config().format >= FormatVersion::V3 {
            true => FileVersion::lineage_above(base),
            false => Vec::new(),
        };
        sigs.insert(v.id, (signature, chain_len));
        maps.insert(v.id, map);
        new_records.insert(v.id, new.clone());
        out.records.push(new);
    }
    Ok(out)
}

impl Rebuilt {
    /// Adds an extent-map object for `map` and returns its id.
    fn envelope_map(&mut self, map: &ExtentMap) -> ObjectId {
        let payload = map.encode();
        let id = map_object_id(&payload);
        self.add(id, Kind::ExtentMap, payload, map.objects().to_vec());
        id
    }

    fn add(&mut self, id: ObjectId, kind: Kind, payload: Vec<u8>, refs: Vec<ObjectId>) {
        self.envelopes.push(NewObject {
            id,
            kind,
            payload,
            refs,
        });
    }
}

/// The id of a complete signature of `v` (its own, if it is complete already).
fn complete_signature(store: &Store, v: &FileVersion, out: &mut Rebuilt) -> Result<ObjectId> {
    if store.signature_record(&v.signature)?.base.is_none() {
        return Ok(v.signature);
    }
    let sig = store.signature(&v.signature)?;
    let (id, payload) = SignatureRecord::complete((*sig).clone()).encode();
    out.add(id, Kind::Signature, payload, Vec::new());
    Ok(id)
}

/// The signature of `v` once its base's signature is `base_sig` (was `old_base_sig`), and its
/// chain length: unchanged when it does not run over the old one; else the same runs over the
/// new one, or complete where that chain would grow past [`SIGNATURE_CHAIN_MAX`].
fn rebase_signature(
    store: &Store,
    v: &FileVersion,
    old_base_sig: ObjectId,
    base_sig: ObjectId,
    base_chain: u16,
    out: &mut Rebuilt,
) -> Result<(ObjectId, u16)> {
    let rec = store.signature_record(&v.signature)?;
    match rec.base {
        Some(b) if b == old_base_sig && b != base_sig => {
            let chain = base_chain.saturating_add(1);
            if chain > SIGNATURE_CHAIN_MAX {
                return Ok((complete_signature(store, v, out)?, 0));
            }
            let (id, payload) = SignatureRecord {
                base: Some(base_sig),
                chain,
                ..rec
            }
            .encode();
            out.add(id, Kind::Signature, payload, vec![base_sig]);
            Ok((id, chain))
        }
        _ => Ok((v.signature, rec.chain)),
    }
}

/// The hash tree `v` keeps: a complete copy of its tree if it is a head version and has one,
/// else none.
fn head_tree(store: &Store, plan: &Plan, v: &FileVersion, out: &mut Rebuilt) -> Result<Option<ObjectId>> {
    let Some(tree) = v.hash_tree.filter(|_| plan.heads.contains(&v.id)) else {
        return Ok(None);
    };
    let table = store.tree_table(&tree)?;
    if table.refs.is_empty() {
        return Ok(Some(tree));
    }
    let mut regions = Vec::with_capacity(table.regions.len());
    let mut blocks = Vec::with_capacity(table.regions.len());
    for (r, region) in table.regions.iter().enumerate() {
        blocks.push(store.tree_block(&table, r as u64)?);
        regions.push(RegionEntry {
            cv: region.cv,
            at: BlockAt::New(r as u32),
        });
    }
    let leaves = TreeLeaves {
        count: table.leaf_count(),
        regions,
        blocks,
    };
    let (id, payload) = leaves.encode(&v.id, v.size)?;
    out.add(id, Kind::HashTree, payload, Vec::new());
    Ok(Some(id))
}

/// What the bytes a map uses take on disk, counting each object at its compression ratio (the
/// `literal_stored` of a merged full, which the max-delta-ratio rule compares deltas with);
/// `new_object` is one not in the store yet: its id, stored and logical length.
fn stored_estimate(store: &Store, map: &ExtentMap, new_object: Option<(ObjectId, u64, u64)>) -> Result<u64> {
    let mut ratio: HashMap<ObjectId, (u64, u64)> = HashMap::new();
    for o in map.objects() {
        match new_object {
            Some((id, stored, logical)) if id == *o => ratio.insert(*o, (stored, logical.max(1))),
            _ => {
                let obj = store.data_object(o)?;
                ratio.insert(*o, (obj.stored_len(), obj.logical_len().max(1)))
            }
        };
    }
    let mut total = 0u128;
    for p in map.pieces(0, map.size()) {
        if let Some((o, _)) = p.source
            && let Some(&(stored, logical)) = ratio.get(&o)
        {
            total += u128::from(p.len) * u128::from(stored) / u128::from(logical);
        }
    }
    Ok(u64::try_from(total).unwrap_or(u64::MAX))
}
