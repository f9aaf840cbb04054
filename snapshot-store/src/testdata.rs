//! Test data shared by the unit tests (and, through `#[path]`, the integration tests).

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
