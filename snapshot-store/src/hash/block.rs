//! Hashing and testing blocks of bytes: the strong hash of the delta algorithm, zero detection,
//! and a shared buffer of zeros.
#![deny(clippy::indexing_slicing, clippy::unwrap_used)]

use std::sync::OnceLock;

/// Bytes of the blake3 hash kept per block (128 bits).
pub const STRONG_LEN: usize = 16;

/// The truncated blake3 hash of one block.
pub type Strong = [u8; STRONG_LEN];

/// The strong hash of a block: the first [`STRONG_LEN`] bytes of its blake3.
#[inline]
pub fn strong_hash(block: &[u8]) -> Strong {
    let h = blake3::hash(block);
    let mut out = [0u8; STRONG_LEN];
    out.copy_from_slice(h.as_bytes().get(..STRONG_LEN).unwrap_or(&[0; STRONG_LEN]));
    out
}

/// True when every byte of `data` is zero.
#[inline]
pub fn is_zero(data: &[u8]) -> bool {
    // OR-reduce 256-byte chunks (vectorised), leaving early at the first non-zero chunk.
    data.chunks(256)
        .all(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Bytes of the shared zero buffer: the largest block size.
const ZEROS_LEN: usize = 16 << 20;

/// A shared buffer of `len.min(16 MiB)` zeros.
pub fn zeros(len: usize) -> &'static [u8] {
    static ZEROS: OnceLock<Vec<u8>> = OnceLock::new();
    let z = ZEROS.get_or_init(|| vec![0u8; ZEROS_LEN]);
    z.get(..len.min(z.len())).unwrap_or_default()
}

/// Feeds `n` zero bytes to `f` in pieces of at most 1 MiB.
pub fn for_zeros(mut n: u64, mut f: impl FnMut(&[u8])) {
    while n > 0 {
        let k = n.min(1 << 20) as usize;
        f(zeros(k));
        n -= k as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0u8; 4099]));
        let mut v = vec![0u8; 4099];
        v[4098] = 1;
        assert!(!is_zero(&v));
        v[4098] = 0;
        v[3] = 1;
        assert!(!is_zero(&v));
        assert_eq!(zeros(5), &[0; 5]);
        let mut total = 0;
        for_zeros(3 << 20 | 7, |z| {
            assert!(is_zero(z));
            total += z.len();
        });
        assert_eq!(total, 3 << 20 | 7);
    }

    #[test]
    fn strong_hash_is_a_blake3_prefix() {
        assert_eq!(strong_hash(b"abc"), blake3::hash(b"abc").as_bytes()[..STRONG_LEN]);
    }
}
