//! Turning a new version's parts into its records: the signature (runs over the base's while
//! that chain is short), the hash tree, an extent-map checkpoint at every
//! [`MAP_CHECKPOINT_INTERVAL`]th depth, and the version record — unless identical content is
//! already stored, in which case nothing is.

use crate::error::Result;
use crate::format::FormatVersion;
use crate::format::envelope::Kind;
use crate::format::extent::{ExtentMap, map_object_id};
use crate::format::signature::{SigRun, Signature, SignatureRecord};
use crate::format::version::{FileVersion, VersionKind};
use crate::id::{ObjectId, VersionId};
use crate::write::limits::{MAP_CHECKPOINT_INTERVAL, SIGNATURE_CHAIN_MAX};
use crate::write::outcome::{Built, Decision, DeltaInfo, Failure, FileOutcome, Produced, Written};
use crate::write::writer::FileWriter;

impl FileWriter<'_> {
    /// Writes the records of `built` (a delta against `delta`, or a full), reporting `outcome`.
    pub(crate) fn assemble(
        &self,
        mut built: Built,
        delta: Option<&DeltaInfo>,
        mut outcome: FileOutcome,
    ) -> Result<Written, Failure> {
        if self.staging.has_version(&built.id) {
            // Identical content is already stored: reference it, store nothing.
            if let Ok(existing) = self.store.version(&built.id) {
                outcome.decision = Decision::of_kind(existing.kind);
            }
            if let Some(l) = built.literal {
                l.discard();
            }
            return Ok((outcome, Produced::default()));
        }
        let mut envelopes = Vec::new();
        let runs = std::mem::take(&mut built.sig_runs);
        let (sig_id, sig_payload) = self
            .signature_record(&built, runs, delta)
            .map_err(Failure::Store)?
            .encode();
        envelopes.push((sig_id, Kind::Signature, sig_payload));
        let (kind, depth, deltas_since_full, full, base) = match delta {
            None => (VersionKind::Full, 0, 0, built.id, None),
            Some(d) => (
                d.kind,
                d.base.depth + 1,
                d.deltas_since_full,
                d.full_id,
                Some(d.base.id),
            ),
        };
        let hash_tree = match &built.leaves {
            Some(leaves) => {
                let (oid, payload) = leaves.encode(&built.id, built.size).map_err(Failure::Store)?;
                envelopes.push((oid, Kind::HashTree, payload));
                Some(oid)
            }
            None => None,
        };
        let literal_id = built.literal.as_ref().map(|l| l.id);
        let map_checkpoint = if depth > 0 && depth % MAP_CHECKPOINT_INTERVAL == 0 {
            let (cp, payload) = self
                .checkpoint(&built, literal_id, base.unwrap_or(built.id))
                .map_err(Failure::Store)?;
            envelopes.push((cp, Kind::ExtentMap, payload));
            Some(cp)
        } else {
            None
        };
        let version = FileVersion {
            id: built.id,
            size: built.size,
            kind,
            depth,
            deltas_since_full,
            full,
            base,
            signature: sig_id,
            block_size: built.block_size,
            literal: literal_id,
            ops: built.ops,
            map_checkpoint,
            hash_tree,
            literal_stored: built.literal.as_ref().map_or(0, |l| l.stored_len),
            stored_bytes: 0,
            time_ns: crate::format::time::now_ns(),
            // Lineages are written into stores of format 3 and later only, so that older
            // builds keep reading older stores.
            lineage: match delta {
                Some(d) if self.store.config().format >= FormatVersion::V3 => FileVersion::lineage_above(&d.base),
                _ => Vec::new(),
            },
        };
        let produced = Produced {
            literal: built.literal,
            envelopes,
            version: Some(version),
        };
        Ok((outcome, produced))
    }

    /// The new version's signature record: runs over its base's signature, or complete for a
    /// full and wherever the run-encoded chain would grow past [`SIGNATURE_CHAIN_MAX`].
    fn signature_record(&self, built: &Built, runs: Vec<SigRun>, delta: Option<&DeltaInfo>) -> Result<SignatureRecord> {
        let Some(d) = delta else {
            return Ok(SignatureRecord {
                block_size: built.block_size,
                file_size: built.size,
                block_count: built.block_count,
                base: None,
                chain: 0,
                runs,
            });
        };
        let chain = self.store.signature_chain(&d.base.signature)?;
        let record = SignatureRecord {
            block_size: built.block_size,
            file_size: built.size,
            block_count: built.block_count,
            base: Some(d.base.signature),
            chain: chain + 1,
            runs,
        };
        if chain < SIGNATURE_CHAIN_MAX {
            return Ok(record);
        }
        let complete: Signature = record.resolve(Some(&d.base_sig), "new signature")?;
        Ok(SignatureRecord::complete(complete))
    }

    /// The flattened extent map of the new version, as an extent-map object.
    fn checkpoint(&self, built: &Built, literal: Option<ObjectId>, base: VersionId) -> Result<(ObjectId, Vec<u8>)> {
        let base_map = self.store.extent_map(&base)?;
        let map = ExtentMap::compose(&built.ops, literal, Some(&base_map), "new version")?;
        let payload = map.encode();
        Ok((map_object_id(&payload), payload))
    }
}
