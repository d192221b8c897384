//! Small deterministic mixing and random numbers. Everything synthetic in the server (tree
//! shape, names, attributes, cookies, fault and latency draws) derives from these, so a seed
//! reproduces a run exactly, and nothing needs a crate whose output could change between
//! versions.

/// The SplitMix64 finalizer: a fast bijective mix of 64 bits.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The inverse of [`mix64`].
#[inline]
pub fn unmix64(mut x: u64) -> u64 {
    x = unxorshift(x, 31);
    x = unxorshift(x.wrapping_mul(inverse_odd(0x94d0_49bb_1331_11eb)), 27);
    unxorshift(x.wrapping_mul(inverse_odd(0xbf58_476d_1ce4_e5b9)), 30)
}

#[inline]
const fn unxorshift(y: u64, shift: u32) -> u64 {
    // x = y ^ (x >> s): recover the top bits first, then the rest, `shift` bits at a time.
    let mut x = y;
    let mut i = shift;
    while i < 64 {
        x = y ^ (x >> shift);
        i += shift;
    }
    x
}

/// The multiplicative inverse of an odd number modulo 2^64 (Newton's iteration).
#[inline]
const fn inverse_odd(a: u64) -> u64 {
    let mut x = a; // correct to 3 bits for odd a
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// Hashes a few words into one: deterministic, well distributed, not cryptographic.
#[inline]
pub fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix64(mix64(mix64(a ^ 0x9e37_79b9_7f4a_7c15).wrapping_add(b)).wrapping_add(c))
}

/// SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng {
            state: mix64(seed ^ 0x6d6f_636b_6e66_7364),
        }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi]` (inclusive); `lo` when the range is empty.
    #[inline]
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        lo + ((self.next_u64() as u128 * (span as u128 + 1)) >> 64) as u64
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// A standard normal deviate (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmix_inverts_mix() {
        let mut r = Rng::new(7);
        for x in [0, 1, u64::MAX, 0x8000_0000_0000_0000] {
            assert_eq!(unmix64(mix64(x)), x);
        }
        for _ in 0..10_000 {
            let x = r.next_u64();
            assert_eq!(unmix64(mix64(x)), x);
        }
    }

    #[test]
    fn range_stays_inside_bounds() {
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            let v = r.range(5, 9);
            assert!((5..=9).contains(&v));
        }
        assert_eq!(r.range(3, 3), 3);
        assert_eq!(r.range(4, 2), 4);
    }
}
