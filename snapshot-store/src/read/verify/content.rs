//! Verifying content: every chain and whole version rebuilt through the normal read path, its
//! extent map composed with the size the snapshots record, and (with `read_data`) its blake3 and
//! every block of its signature recomputed.

use std::sync::Arc;

use rayon::prelude::*;

use super::{Roots, Verifier, Versions};
use crate::error::{Error, Result};
use crate::format::signature::block_sig;
use crate::format::snapshot::{FileContent, Storage};
use crate::format::version::FileVersion;
use crate::hash::block::for_zeros;
use crate::hash::rolling::Roller;
use crate::id::VersionId;
use crate::read::reader::FileReader;
use crate::read::stream::Window;
use crate::store::Store;

impl Verifier<'_> {
    /// Rebuilds every chain record (snapshot sizes were checked against the records) and every
    /// whole file.
    pub(super) fn rebuild_all(&mut self, roots: &Roots, versions: &Versions) {
        let rebuild: Vec<(VersionId, Storage, u64)> = versions
            .all
            .iter()
            .map(|v| (v.id, Storage::Chain, v.size))
            .chain(roots.whole.iter().map(|(o, s)| (VersionId(o.0), Storage::Whole, *s)))
            .collect();
        let read_data = self.opts.read_data;
        let store = self.store;
        let results: Vec<(VersionId, Result<()>)> = rebuild
            .par_iter()
            .map(|&(v, storage, size)| {
                let content = FileContent { version: v, storage };
                (
                    v,
                    check_version(store, &content, size, read_data, versions.by_id.get(&v)),
                )
            })
            .collect();
        for (v, r) in results {
            if let Err(e) = r {
                self.problem(format!("file version {}", v.short()), &e);
            }
        }
    }
}

/// Composes the version's map; with `read_data`, rebuilds the content and checks its blake3 and
/// (for chain versions) every block of its signature.
fn check_version(
    store: &Store,
    content: &FileContent,
    size: u64,
    read_data: bool,
    rec: Option<&Arc<FileVersion>>,
) -> Result<()> {
    let reader = FileReader::open(store, content, size)?;
    if !read_data {
        return Ok(());
    }
    let mut blocks = match rec {
        Some(r) => Some(BlockCheck::new(store, r)?),
        None => None,
    };
    let mut hasher = blake3::Hasher::new();
    let mut feed = |chunk: &[u8]| -> Result<()> {
        hasher.update(chunk);
        blocks.as_mut().map_or(Ok(()), |b| b.feed(chunk))
    };
    reader.stream(|window| match window {
        Window::Data { bytes, .. } => feed(bytes),
        Window::Hole { len, .. } => {
            let mut result = Ok(());
            for_zeros(len, |z| {
                if result.is_ok() {
                    result = feed(z);
                }
            });
            result
        }
    })?;
    let got = VersionId::from(hasher.finalize());
    if got != content.version {
        return Err(Error::ChecksumMismatch {
            what: format!("file version {} (rebuilt content)", content.version.short()),
            expected: content.version.short(),
            got: got.short(),
        });
    }
    Ok(())
}

/// Checks rebuilt content, fed in order, against every block of its version's signature.
struct BlockCheck {
    sig: Arc<crate::format::signature::Signature>,
    roller: Roller,
    pending: Vec<u8>,
    block: usize,
    rec: Arc<FileVersion>,
}

impl BlockCheck {
    fn new(store: &Store, rec: &Arc<FileVersion>) -> Result<BlockCheck> {
        let sig = store.signature(&rec.signature)?;
        Ok(BlockCheck {
            roller: Roller::new(sig.block_size as usize),
            sig,
            pending: Vec::new(),
            block: 0,
            rec: Arc::clone(rec),
        })
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(chunk);
        let mut used = 0usize;
        while let Some(b) = self.sig.blocks.get(self.block) {
            let len = b.len as usize;
            if self.pending.len() - used < len {
                break;
            }
            if block_sig(&self.roller, &self.pending[used..used + len]) != *b {
                return Err(Error::corrupt(
                    format!("signature object {}", self.rec.signature.short()),
                    format!(
                        "block {} does not match the content of version {}",
                        self.block,
                        self.rec.id.short()
                    ),
                ));
            }
            used += len;
            self.block += 1;
        }
        self.pending.drain(..used);
        Ok(())
    }
}
