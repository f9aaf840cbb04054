//! The content hash of a version being written: its BLAKE3, and its hash tree when one is kept.

use std::sync::Arc;

use crate::format::hashtree::{TreeLeaves, TreeTable};
use crate::format::tree_hasher::TreeHasher;
use crate::id::VersionId;

/// The content hash of a version being written: plain BLAKE3, or BLAKE3 with its hash tree when
/// one is kept (change tracking). Both give the same id.
pub enum ContentHasher {
    /// Only the id.
    Plain(Box<blake3::Hasher>),
    /// The id and the tree.
    Tree(Box<TreeHasher>),
}

impl ContentHasher {
    /// A hasher keeping a tree when `tree`, sharing regions with `base` when given; the tree is
    /// hashed on rayon's pool when `parallel` (see [`TreeHasher::new`] for when it must not be).
    pub fn new(tree: bool, base: Option<Arc<TreeTable>>, parallel: bool) -> Self {
        if tree {
            ContentHasher::Tree(Box::new(TreeHasher::new(base, parallel)))
        } else {
            ContentHasher::Plain(Box::new(blake3::Hasher::new()))
        }
    }

    /// Appends bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            ContentHasher::Plain(h) => {
                h.update(data);
            }
            ContentHasher::Tree(t) => t.update(data),
        }
    }

    /// Appends `n` zero bytes.
    pub fn update_zeros(&mut self, mut n: u64) {
        match self {
            ContentHasher::Tree(t) => t.update_zeros(n),
            ContentHasher::Plain(h) => {
                while n > 0 {
                    let k = n.min(16 << 20) as usize;
                    h.update(crate::hash::block::zeros(k));
                    n -= k as u64;
                }
            }
        }
    }

    /// The id, and the tree when kept.
    pub fn finish(self) -> (VersionId, Option<TreeLeaves>) {
        match self {
            ContentHasher::Plain(h) => (VersionId::from(h.finalize()), None),
            ContentHasher::Tree(t) => {
                let (id, leaves) = t.finish();
                (id, Some(leaves))
            }
        }
    }
}
