//! Verifying the objects the version records name: signatures (and the chains they run over),
//! literal data objects, hash trees, extent-map checkpoints, and the names of envelope objects.

use std::collections::{BTreeSet, HashSet};

use rayon::prelude::*;

use super::{Roots, Verifier, Versions};
use crate::error::{Error, Result};
use crate::format::envelope::Kind;
use crate::format::extent::map_object_id;
use crate::format::hashtree::tree_object_id;
use crate::format::signature::SignatureRecord;
use crate::format::version::FileVersion;
use crate::id::ObjectId;
use crate::store::Store;
use crate::store::object::Access;

impl Verifier<'_> {
    /// Checks every object the versions name and every data object; returns every object id the
    /// store's snapshots reference, directly or through versions, signatures and trees.
    pub(super) fn version_objects(&mut self, roots: &Roots, versions: &Versions) -> HashSet<ObjectId> {
        let mut data_objects: BTreeSet<ObjectId> = roots.whole.iter().map(|(o, _)| *o).collect();
        let mut referenced: HashSet<ObjectId> = data_objects.iter().copied().collect();
        for v in &versions.all {
            if let Some(l) = v.literal {
                data_objects.insert(l);
                referenced.insert(l);
            }
            self.check_signature(v, &mut referenced);
            self.check_literal(v);
            if let Some(t) = v.hash_tree {
                referenced.insert(t);
                if let Err(e) = check_tree(self.store, v, &t) {
                    self.problem(format!("hash-tree object {}", t.short()), &e);
                }
                if let Ok(table) = self.store.tree_table(&t) {
                    referenced.extend(table.refs.iter().copied());
                }
            }
            if let Some(cp) = v.map_checkpoint {
                referenced.insert(cp);
                let checked = self.store.map_checkpoint(&cp).and_then(|map| {
                    // A merged full's map names objects no literal op does.
                    for o in map.objects() {
                        if referenced.insert(*o) {
                            data_objects.insert(*o);
                        }
                    }
                    check_object_name(self.store, &cp, Kind::ExtentMap)
                });
                if let Err(e) = checked {
                    self.problem(format!("extent-map object {}", cp.short()), &e);
                }
            }
        }
        let read_data = self.opts.read_data;
        let results: Vec<(ObjectId, Result<u64>)> = data_objects
            .par_iter()
            .map(|id| (*id, check_data_object(self.store, id, read_data)))
            .collect();
        for (id, r) in results {
            self.report.objects += 1;
            match r {
                Ok(n) => self.report.bytes_read += n,
                Err(e) => self.problem(format!("data object {}", id.short()), &e),
            }
        }
        self.report.objects += (referenced.len() - data_objects.len()) as u64;
        referenced
    }

    /// Checks a version's signature (its size, block size and name) and adds it and the
    /// signatures it runs over to `referenced`.
    fn check_signature(&mut self, v: &FileVersion, referenced: &mut HashSet<ObjectId>) {
        referenced.insert(v.signature);
        let what = format!("signature object {}", v.signature.short());
        match self.store.signature(&v.signature) {
            Ok(sig) if sig.file_size() != v.size => self.found(
                what.clone(),
                format!("describes {} bytes, but its version has {}", sig.file_size(), v.size),
            ),
            Ok(sig) if sig.block_size != v.block_size => self.found(
                format!("file version {}", v.id.short()),
                format!(
                    "block size {} differs from its signature's {}",
                    v.block_size, sig.block_size
                ),
            ),
            Ok(_) => {}
            Err(e) => self.problem(what.clone(), &e),
        }
        if let Err(e) = check_object_name(self.store, &v.signature, Kind::Signature) {
            self.problem(what, &e);
        }
        let mut at = self.store.signature_record(&v.signature).ok().and_then(|r| r.base);
        while let Some(s) = at {
            if !referenced.insert(s) {
                break;
            }
            at = self.store.signature_record(&s).ok().and_then(|r| r.base);
        }
    }

    /// Checks that a version's literal data object holds exactly the bytes its literal ops use.
    fn check_literal(&mut self, v: &FileVersion) {
        let what = format!("file version {}", v.id.short());
        let literal_len = crate::format::delta::literal_len(&v.ops);
        match v.literal {
            None if literal_len > 0 => self.found(what, "has literal ops but no literal data object"),
            Some(l) => {
                if let Ok(obj) = self.store.data_object(&l)
                    && obj.logical_len() != literal_len
                {
                    self.found(
                        what,
                        format!(
                            "its ops use {literal_len} literal bytes, but data object {} holds {}",
                            l.short(),
                            obj.logical_len()
                        ),
                    );
                }
            }
            None => {}
        }
    }
}

/// Checks a version's hash tree: its name, its version and size, that its regions merge to the
/// version id, and that every full region's leaf block (wherever it is stored) merges to the
/// region's value (no data is read).
fn check_tree(store: &Store, v: &FileVersion, id: &ObjectId) -> Result<()> {
    check_object_name(store, id, Kind::HashTree)?;
    let table = store.tree_table(id)?;
    let what = format!("hash-tree object {}", id.short());
    if table.header.version != v.id || table.header.file_size != v.size {
        return Err(Error::corrupt(
            what,
            format!(
                "it is the tree of version {} ({} bytes)",
                table.header.version.short(),
                table.header.file_size
            ),
        ));
    }
    for r in 0..table.regions.len() as u64 {
        if table.is_full(r) {
            store.tree_block(&table, r)?;
        }
    }
    Ok(())
}

/// Checks that an envelope object's name is the hash of its payload.
fn check_object_name(store: &Store, id: &ObjectId, kind: Kind) -> Result<()> {
    let (payload, what) = store.envelope_object(id, kind)?;
    let got = match kind {
        Kind::Signature => SignatureRecord::decode(&payload, &what)?.encode().0,
        Kind::HashTree => tree_object_id(&payload),
        _ => map_object_id(&payload),
    };
    if got != *id {
        return Err(Error::ChecksumMismatch {
            what,
            expected: id.short(),
            got: got.short(),
        });
    }
    Ok(())
}

/// Opens a data object in the store (checking its index; never a local copy of a remote one);
/// with `read_data`, reads every frame and checks the stream's blake3 against the id. Returns
/// bytes read.
fn check_data_object(store: &Store, id: &ObjectId, read_data: bool) -> Result<u64> {
    let obj = store.data_object_in_store(id)?;
    if !read_data {
        return Ok(0);
    }
    let mut h = blake3::Hasher::new();
    for i in 0..obj.frames().len() {
        h.update(&obj.read_frame(i, Access::Sequential)?);
    }
    let got = ObjectId::from(h.finalize());
    if got != *id {
        return Err(Error::ChecksumMismatch {
            what: obj.describe(),
            expected: id.short(),
            got: got.short(),
        });
    }
    Ok(obj.logical_len())
}
