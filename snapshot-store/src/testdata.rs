//! Test data and source edits shared by the unit tests (and, through `#[path]`, the integration
//! tests).

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// `n` deterministic pseudo-random bytes (xorshift64) for `seed`: incompressible, and different
/// for every seed.
pub fn pseudo(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Rewrites the file at `path` with `data` in place (same inode, no truncation first), as an
/// application whose changes are tracked would.
pub fn write_in_place(path: &Path, data: &[u8]) {
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    f.write_all_at(data, 0).unwrap();
    f.set_len(data.len() as u64).unwrap();
}
