//! The hash layer: the rolling weak hash, block hashing, and BLAKE3 computed as a tree of leaf
//! values. Pure functions of bytes; the definitions are part of the format.

pub(crate) mod block;
pub(crate) mod rolling;
pub(crate) mod tree;
