//! The weak rolling hash: a Rabin–Karp polynomial over bytes, modulo 2^32.
//!
//! `weak(w) = Σ (w[i] + 1) · M^(n-1-i)` for a window `w` of `n` bytes. Sliding the window by one
//! byte costs two multiplications ([`Roller::roll`]); hashing a fresh window is a dot product with
//! precomputed powers that the compiler vectorises ([`Roller::hash`]). Windows shorter than the
//! block size (a file's last block) use the tail of the same power table, so `hash` is defined for
//! every length up to the block size.

/// The odd multiplier M. On disk (signatures store weak hashes): do not modify.
pub const MULTIPLIER: u32 = 0x5bd1_e995;

/// Hashes windows of up to `block_size` bytes and rolls windows of exactly `block_size` bytes.
#[derive(Debug, Clone)]
pub struct Roller {
    /// `powers[i] = M^(block_size-1-i)`.
    powers: Vec<u32>,
    /// `M^(block_size-1)`, the weight of the byte leaving the window.
    top: u32,
}

impl Roller {
    /// A roller for windows of `block_size` bytes.
    pub fn new(block_size: usize) -> Self {
        let mut powers = vec![0u32; block_size];
        let mut p: u32 = 1;
        for slot in powers.iter_mut().rev() {
            *slot = p;
            p = p.wrapping_mul(MULTIPLIER);
        }
        let top = powers.first().copied().unwrap_or(1);
        Roller { powers, top }
    }

    /// The weak hash of `window` (at most `block_size` bytes).
    #[inline]
    pub fn hash(&self, window: &[u8]) -> u32 {
        debug_assert!(window.len() <= self.powers.len());
        let powers = &self.powers[self.powers.len() - window.len()..];
        let mut acc = [0u32; 8];
        let mut wc = window.chunks_exact(8);
        let mut pc = powers.chunks_exact(8);
        for (w, p) in (&mut wc).zip(&mut pc) {
            for k in 0..8 {
                acc[k] = acc[k].wrapping_add((u32::from(w[k]) + 1).wrapping_mul(p[k]));
            }
        }
        let mut sum = acc.iter().fold(0u32, |a, &b| a.wrapping_add(b));
        for (&w, &p) in wc.remainder().iter().zip(pc.remainder()) {
            sum = sum.wrapping_add((u32::from(w) + 1).wrapping_mul(p));
        }
        sum
    }

    /// The hash of the window moved one byte on: `out` leaves at the front, `inp` enters at the end.
    #[inline]
    pub fn roll(&self, hash: u32, out: u8, inp: u8) -> u32 {
        hash.wrapping_sub((u32::from(out) + 1).wrapping_mul(self.top))
            .wrapping_mul(MULTIPLIER)
            .wrapping_add(u32::from(inp) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(w: &[u8]) -> u32 {
        w.iter()
            .fold(0u32, |h, &b| h.wrapping_mul(MULTIPLIER).wrapping_add(u32::from(b) + 1))
    }

    proptest! {
        #[test]
        fn rolling_equals_fresh_hash(data in proptest::collection::vec(any::<u8>(), 1..400), bs in 1usize..64) {
            let r = Roller::new(bs);
            if data.len() >= bs {
                let mut h = r.hash(&data[..bs]);
                prop_assert_eq!(h, naive(&data[..bs]));
                for i in bs..data.len() {
                    h = r.roll(h, data[i - bs], data[i]);
                    prop_assert_eq!(h, r.hash(&data[i + 1 - bs..=i]));
                }
            }
            let short = &data[..data.len().min(bs)];
            prop_assert_eq!(r.hash(short), naive(short));
        }
    }

    #[test]
    fn zeros_do_not_hash_to_zero() {
        let r = Roller::new(4096);
        assert_ne!(r.hash(&[0u8; 4096]), 0);
    }
}
