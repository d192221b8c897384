//! Directory cookies and cookie verifiers, computed rather than stored.
//!
//! A cookie names the position to resume a listing at. With [`CookieMode::Index`] it is that
//! position. With [`CookieMode::Hash`] (the default, like servers whose cookies are hash
//! values) it is a keyed, invertible 64-bit mix of (directory tag, position): opaque and
//! non-monotonic to a client, yet the server maps it back to a position without any table and
//! can tell a cookie of another directory from a valid one. Neither mode ever hands out 0, the
//! cookie that starts a listing.

use crate::rng::{hash3, mix64, unmix64};
use std::fmt;
use std::str::FromStr;

const POSITION_BITS: u32 = 40;
const POSITION_MASK: u64 = (1 << POSITION_BITS) - 1;
const SALT_VERIFIER: u64 = 0x5645_5246;
const SALT_TAG: u64 = 0x5441_4721;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieMode {
    /// Opaque keyed hashes of (directory, position).
    #[default]
    Hash,
    /// The position itself (1, 2, 3, ...).
    Index,
}

impl FromStr for CookieMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hash" => Ok(CookieMode::Hash),
            "index" => Ok(CookieMode::Index),
            other => Err(format!(
                "unknown cookie mode `{other}` (expected hash or index)"
            )),
        }
    }
}

impl fmt::Display for CookieMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CookieMode::Hash => "hash",
            CookieMode::Index => "index",
        })
    }
}

/// Makes and checks the cookies and verifiers of one tree.
#[derive(Debug, Clone, Copy)]
pub struct CookieCodec {
    mode: CookieMode,
    key: u64,
    /// Keys of the mix; chosen so that only position 0 (never handed out) could map to 0.
    pre_key: u64,
    post_key: u64,
}

impl CookieCodec {
    pub fn new(mode: CookieMode, tree_key: u64) -> Self {
        let post_key = mix64(tree_key ^ 0x636f_6f6b_6965);
        let zero_preimage = unmix64(post_key);
        let pre_key = (mix64(tree_key) & !POSITION_MASK) | (zero_preimage & POSITION_MASK);
        CookieCodec {
            mode,
            key: tree_key,
            pre_key,
            post_key,
        }
    }

    pub fn mode(&self) -> CookieMode {
        self.mode
    }

    fn tag(&self, dir: u64) -> u64 {
        hash3(self.key ^ SALT_TAG, dir, 0) >> POSITION_BITS
    }

    /// The cookie to resume `dir`'s listing at position `next` (`1 <= next < 2^40`).
    #[inline]
    pub fn cookie(&self, dir: u64, next: u64) -> u64 {
        debug_assert!((1..=POSITION_MASK).contains(&next));
        match self.mode {
            CookieMode::Index => next,
            CookieMode::Hash => {
                let x = (self.tag(dir) << POSITION_BITS) | (next & POSITION_MASK);
                mix64(x ^ self.pre_key) ^ self.post_key
            }
        }
    }

    /// The position a nonzero cookie resumes at, or `None` if it cannot be one of `dir`'s
    /// (the caller still checks it against the directory's length).
    #[inline]
    pub fn position(&self, dir: u64, cookie: u64) -> Option<u64> {
        match self.mode {
            CookieMode::Index => (cookie != 0).then_some(cookie),
            CookieMode::Hash => {
                let x = unmix64(cookie ^ self.post_key) ^ self.pre_key;
                let next = x & POSITION_MASK;
                (x >> POSITION_BITS == self.tag(dir) && next != 0).then_some(next)
            }
        }
    }

    /// The cookie verifier of `dir`: nonzero, stable for the server's lifetime.
    pub fn verifier(&self, dir: u64) -> [u8; 8] {
        (hash3(self.key ^ SALT_VERIFIER, dir, 0) | 1).to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_cookies_round_trip_and_are_opaque() {
        let c = CookieCodec::new(CookieMode::Hash, 12345);
        let mut prev = 0;
        let mut increasing = 0;
        for dir in [0u64, 1, 77, u32::MAX as u64] {
            for next in (1..2000).chain([POSITION_MASK - 1, POSITION_MASK]) {
                let cookie = c.cookie(dir, next);
                assert_ne!(cookie, 0);
                assert_eq!(c.position(dir, cookie), Some(next));
                // a cookie of another directory is not accepted (tags differ)
                assert_eq!(c.position(dir + 1, cookie), None);
                increasing += (cookie > prev) as u32;
                prev = cookie;
            }
        }
        assert!(increasing < 5000, "cookies must not be monotonic");
        assert_eq!(c.position(0, 0), None);
        assert_eq!(c.position(0, 0x1234_5678_9abc_def0), None);
    }

    #[test]
    fn index_cookies_are_positions() {
        let c = CookieCodec::new(CookieMode::Index, 1);
        assert_eq!(c.cookie(3, 7), 7);
        assert_eq!(c.position(3, 7), Some(7));
        assert_eq!(c.position(3, 0), None);
    }

    #[test]
    fn verifiers_are_nonzero_and_per_directory() {
        let c = CookieCodec::new(CookieMode::Hash, 99);
        assert_ne!(c.verifier(0), [0; 8]);
        assert_ne!(c.verifier(0), c.verifier(1));
        assert_eq!(c.verifier(5), c.verifier(5));
    }
}
