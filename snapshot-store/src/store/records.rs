//! Loading the store's records: snapshot manifests, version records and signatures (resolving
//! run-encoded signature chains), each checked and kept in the store's byte-bounded caches.

use std::sync::Arc;

use super::Store;
use crate::error::{Error, Result};
use crate::format::envelope::{self, Kind};
use crate::format::signature::{Signature, SignatureRecord};
use crate::format::snapshot::{Snapshot, SnapshotId};
use crate::format::version::FileVersion;
use crate::id::{ObjectId, VersionId};
use crate::store::backend::Key;

impl Store {
    /// Loads (or returns the cached) snapshot `id`.
    pub fn snapshot(&self, id: &SnapshotId) -> Result<Arc<Snapshot>> {
        if let Some(s) = self.inner.snapshots.get(id) {
            return Ok(s);
        }
        let key = Key::snapshot(id);
        let bytes = (self.backend().read(&key)?).ok_or_else(|| Error::SnapshotNotFound { id: id.to_string() })?;
        let what = format!("snapshot {id} ({})", self.backend().describe(&key));
        let snap = Snapshot::decode(&envelope::open(Kind::Snapshot, &bytes, &what)?, &what)?;
        if snap.id != *id {
            return Err(Error::corrupt(
                what,
                format!("manifest says it is snapshot {}", snap.id),
            ));
        }
        let size = snap.memory_bytes();
        Ok(self.inner.snapshots.insert(id.clone(), Arc::new(snap), size))
    }

    /// Loads (or returns the cached) version record `id`.
    pub(crate) fn version(&self, id: &VersionId) -> Result<Arc<FileVersion>> {
        if let Some(v) = self.inner.versions.get(id) {
            return Ok(v);
        }
        let key = Key::version(id);
        let what = format!("file version {} ({})", id.short(), self.backend().describe(&key));
        let bytes = self.read_referenced(&key, &what, "a snapshot or a later version")?;
        let (format, payload) = envelope::open_versioned(Kind::Version, &bytes, &what)?;
        let v = FileVersion::decode(&payload, format, id, &what)?;
        let size = v.memory_bytes();
        Ok(self.inner.versions.insert(*id, Arc::new(v), size))
    }

    /// Reads and opens an envelope object (signature or extent map) `id` of `kind`.
    pub(crate) fn envelope_object(&self, id: &ObjectId, kind: Kind) -> Result<(Vec<u8>, String)> {
        let key = Key::object(id);
        let what = format!("{} {} ({})", kind.noun(), id.short(), self.backend().describe(&key));
        let bytes = self.read_referenced(&key, &what, "a file version")?;
        Ok((envelope::open(kind, &bytes, &what)?, what))
    }

    /// Loads signature record `id` without resolving runs.
    pub(crate) fn signature_record(&self, id: &ObjectId) -> Result<SignatureRecord> {
        let (payload, what) = self.envelope_object(id, Kind::Signature)?;
        SignatureRecord::decode(&payload, &what)
    }

    /// Loads (or returns the cached) complete signature `id`, following run-encoded bases.
    pub(crate) fn signature(&self, id: &ObjectId) -> Result<Arc<Signature>> {
        if let Some(s) = self.inner.signatures.get(id) {
            return Ok(s);
        }
        // Walk down to a cached or self-contained signature, then resolve upwards.
        let mut chain = Vec::new();
        let mut at = *id;
        let mut base: Option<Arc<Signature>> = None;
        loop {
            if let Some(s) = self.inner.signatures.get(&at) {
                base = Some(s);
                break;
            }
            let rec = self.signature_record(&at)?;
            self.inner.signature_chains.lock().insert(at, rec.chain);
            let next = rec.base;
            chain.push((at, rec));
            match next {
                Some(b) if chain.len() <= u16::MAX as usize => at = b,
                Some(_) => {
                    return Err(Error::corrupt(format!("signature {}", id.short()), "base chain loops"));
                }
                None => break,
            }
        }
        // The runs of every level are composed first and each block is copied once, so a long
        // chain costs no more than a short one; only the requested signature is kept (cached).
        let Some((_, top)) = chain.first() else {
            return base.ok_or_else(|| Error::corrupt(format!("signature {}", id.short()), "empty chain"));
        };
        let (block_size, file_size) = (top.block_size, top.file_size);
        let what = format!("signature object {}", id.short());
        let bottom = base.as_ref().map(|b| b.blocks.as_slice());
        let mut levels: Vec<_> = chain.into_iter().map(|(_, rec)| rec.runs).collect();
        let blocks = match levels.len() {
            // One level: its runs resolve by moving the new blocks, not copying them.
            1 => crate::format::runs::resolve_runs(levels.pop().unwrap_or_default(), bottom, &what)?,
            _ => crate::format::runs::resolve_chain(&levels, bottom, &what)?,
        };
        drop(levels);
        let sig = Signature::new(block_size, blocks);
        if sig.file_size() != file_size {
            return Err(Error::corrupt(what, "block lengths do not add up to the file size"));
        }
        let size = sig.memory_bytes();
        Ok(self.inner.signatures.insert(*id, Arc::new(sig), size))
    }

    /// The `chain` field of signature `id` (run-encoded levels above a complete signature),
    /// remembered from an earlier [`Store::signature`] call where possible.
    pub(crate) fn signature_chain(&self, id: &ObjectId) -> Result<u16> {
        if let Some(&c) = self.inner.signature_chains.lock().get(id) {
            return Ok(c);
        }
        let chain = self.signature_record(id)?.chain;
        self.inner.signature_chains.lock().insert(*id, chain);
        Ok(chain)
    }
}
