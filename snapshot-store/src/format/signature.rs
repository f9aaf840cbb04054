//! Signatures (the seeds' "checksum files"): per block of a file version, a weak rolling hash and
//! a strong blake3 hash, enough to compute the next delta without reading the version's content.
//!
//! Blocks tile the file in order. A version's blocks follow its content: where a delta matched a
//! block of its base, the new version keeps that block (same hashes, shifted offset); literal data
//! is cut into `block_size` pieces from where it starts, the last piece possibly shorter. So an
//! unchanged region keeps its signature across versions, and a new version's signature is stored
//! as runs of its base's blocks plus the new ones ([`SigRun`]).
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use crate::error::{Error, Result};
use crate::format::codec::{Decoder, Encoder};
use crate::format::magic;
use crate::format::policy::BlockSize;
use crate::format::runs::{Run, decode_runs, encode_runs, resolve_runs};
use crate::hash::block::{STRONG_LEN, Strong, strong_hash};
use crate::hash::rolling::Roller;
use crate::id::ObjectId;

/// One block of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSig {
    /// Length in bytes, `1..=block_size`.
    pub len: u32,
    /// Weak rolling hash of the block (see `rolling`).
    pub weak: u32,
    /// Truncated blake3 of the block.
    pub strong: Strong,
}

/// The signature entry of `block` (weak and strong hash).
pub fn block_sig(roller: &Roller, block: &[u8]) -> BlockSig {
    BlockSig {
        len: block.len() as u32,
        weak: roller.hash(block),
        strong: strong_hash(block),
    }
}

/// A run of a signature stored relative to its base signature.
pub type SigRun = Run<BlockSig>;

/// A version's complete signature in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The nominal block size (every block but literal tails has this length).
    pub block_size: u32,
    /// The blocks in file order.
    pub blocks: Vec<BlockSig>,
    /// `offsets[i]` is where block `i` starts; `offsets[blocks.len()]` is the file size.
    pub offsets: Vec<u64>,
}

impl Signature {
    /// Builds a signature from its blocks.
    pub fn new(block_size: u32, blocks: Vec<BlockSig>) -> Self {
        let mut offsets = Vec::with_capacity(blocks.len() + 1);
        let mut off = 0u64;
        offsets.push(0);
        for b in &blocks {
            off += u64::from(b.len);
            offsets.push(off);
        }
        Signature {
            block_size,
            blocks,
            offsets,
        }
    }

    /// The size of the file this signature describes.
    pub fn file_size(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Bytes of memory this signature holds (for cache accounting).
    pub fn memory_bytes(&self) -> usize {
        self.blocks.len() * std::mem::size_of::<BlockSig>() + self.offsets.len() * 8
    }
}

/// How a stored signature is laid out: all blocks, or runs over a base signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRecord {
    /// Nominal block size.
    pub block_size: u32,
    /// Size of the file described.
    pub file_size: u64,
    /// Number of blocks after resolving runs.
    pub block_count: u32,
    /// The base signature the `Base` runs refer to; `None` for a self-contained signature.
    pub base: Option<ObjectId>,
    /// Number of run-encoded signatures to follow to reach a self-contained one (0 if this is one).
    pub chain: u16,
    /// The runs; a self-contained signature has only `New` runs.
    pub runs: Vec<SigRun>,
}

impl SignatureRecord {
    /// A self-contained record holding every block of `sig`.
    pub fn complete(sig: Signature) -> Self {
        SignatureRecord {
            block_size: sig.block_size,
            file_size: sig.file_size(),
            block_count: sig.blocks.len() as u32,
            base: None,
            chain: 0,
            runs: vec![SigRun::New(sig.blocks)],
        }
    }

    /// Encodes the record's payload and returns it with its object id.
    pub fn encode(&self) -> (ObjectId, Vec<u8>) {
        let mut e = Encoder::new();
        e.u32(self.block_size);
        e.u64(self.file_size);
        e.u32(self.block_count);
        e.u16(self.chain);
        match &self.base {
            Some(id) => {
                e.u8(1);
                e.object_id(id);
            }
            None => e.u8(0),
        }
        let block_size = self.block_size;
        encode_runs(&self.runs, &mut e, |b, e| {
            e.varint(u64::from(block_size - b.len.min(block_size)));
            e.u32(b.weak);
            e.raw(&b.strong);
        });
        let payload = e.into_bytes();
        let id = magic::keyed_id(magic::SIGNATURE_CONTEXT, &payload);
        (id, payload)
    }

    /// Decodes a payload written by [`SignatureRecord::encode`]; `what` names it in errors.
    pub fn decode(payload: &[u8], what: &str) -> Result<Self> {
        let mut d = Decoder::new(payload, what);
        let block_size = d.u32()?;
        if !(BlockSize::MIN..=BlockSize::MAX).contains(&block_size) {
            return Err(d.error(format!("block size {block_size} out of range")));
        }
        let file_size = d.u64()?;
        let block_count = d.u32()?;
        let chain = d.u16()?;
        let base = match d.u8()? {
            0 => None,
            1 => Some(d.object_id()?),
            t => return Err(d.error(format!("bad base flag {t}"))),
        };
        if base.is_none() != (chain == 0) {
            return Err(d.error("chain length disagrees with base"));
        }
        let mut size: u64 = 0;
        let (runs, total) = decode_runs(&mut d, base.is_some(), u64::from(block_count), 21, |d| {
            let short = d.varint()?;
            if short >= u64::from(block_size) {
                return Err(d.error("block length out of range"));
            }
            let len = block_size - short as u32;
            let weak = d.u32()?;
            let mut strong = [0u8; STRONG_LEN];
            strong.copy_from_slice(d.take(STRONG_LEN)?);
            size += u64::from(len);
            Ok(BlockSig { len, weak, strong })
        })?;
        d.finish()?;
        if total != u64::from(block_count) {
            return Err(Error::corrupt(what, "runs hold fewer blocks than the header says"));
        }
        if base.is_none() && size != file_size {
            return Err(Error::corrupt(what, "block lengths do not add up to the file size"));
        }
        Ok(SignatureRecord {
            block_size,
            file_size,
            block_count,
            base,
            chain,
            runs,
        })
    }

    /// Resolves the record into a complete signature, given its base (required iff `base` is set).
    pub fn resolve(self, base: Option<&Signature>, what: &str) -> Result<Signature> {
        let blocks = resolve_runs(self.runs, base.map(|b| b.blocks.as_slice()), what)?;
        let sig = Signature::new(self.block_size, blocks);
        if sig.file_size() != self.file_size {
            return Err(Error::corrupt(what, "block lengths do not add up to the file size"));
        }
        Ok(sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(len: u32, seed: u8) -> BlockSig {
        BlockSig {
            len,
            weak: u32::from(seed) * 77,
            strong: [seed; STRONG_LEN],
        }
    }

    #[test]
    fn complete_and_run_records_roundtrip_and_resolve() {
        let base = Signature::new(4096, vec![block(4096, 1), block(4096, 2), block(100, 3)]);
        let rec = SignatureRecord::complete(base.clone());
        let (id, payload) = rec.encode();
        let back = SignatureRecord::decode(&payload, "sig").unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.resolve(None, "sig").unwrap(), base);

        let delta = SignatureRecord {
            block_size: 4096,
            file_size: 4096 * 2 + 100 + 10,
            block_count: 4,
            base: Some(id),
            chain: 1,
            runs: vec![
                Run::Base { start: 0, count: 1 },
                Run::New(vec![block(4096, 9), block(10, 8)]),
                Run::Base { start: 2, count: 1 },
            ],
        };
        let (_, p2) = delta.encode();
        let sig = SignatureRecord::decode(&p2, "sig2")
            .unwrap()
            .resolve(Some(&base), "sig2")
            .unwrap();
        assert_eq!(sig.blocks.len(), 4);
        assert_eq!(sig.offsets, vec![0, 4096, 8192, 8202, 8302]);
        assert_eq!(sig.file_size(), 8302);
    }

    #[test]
    fn run_past_base_is_corrupt_not_panic() {
        let base = Signature::new(4096, vec![block(4096, 1)]);
        let rec = SignatureRecord {
            block_size: 4096,
            file_size: 4096,
            block_count: 1,
            base: Some(ObjectId([0; 32])),
            chain: 1,
            runs: vec![Run::Base { start: 5, count: 1 }],
        };
        assert!(rec.resolve(Some(&base), "s").is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(data: Vec<u8>) {
            let _ = SignatureRecord::decode(&data, "g");
        }
    }
}
