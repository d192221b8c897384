//! File contents: every regular file reads as a deterministic stream of bytes, a function of
//! its fileid and the offset (and of a generation, for files the `rewrite` fault keeps
//! changing), so content scans can be checked (`--print-listing --checksum ALGO` prints the
//! digests a correct scan finds) and benchmarked without storing anything.
//!
//! The stream is 64-bit words, word `i` a cheap mix of (file seed, `i`) written little-endian:
//! about a nanosecond per 8 bytes, so serving READs at GB/s costs the server little, and any
//! byte range can be produced on its own (READs come at any offset, in any order).

use crate::rng::hash3;
use checksum::ChecksumAlgo;

/// Bytes generated at a time when a whole file is checksummed.
const CHECKSUM_CHUNK_BYTES: usize = 1 << 20;

/// The seed of a file's contents.
#[inline]
pub fn content_seed(fileid: u64, generation: u64) -> u64 {
    hash3(fileid, generation, 0x0063_6f6e_7465_6e74)
}

#[inline]
fn word(seed: u64, index: u64) -> u64 {
    let x = (seed ^ index).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// Writes the bytes at `offset .. offset + out.len()` of the file with content seed `seed`.
pub fn fill(seed: u64, offset: u64, out: &mut [u8]) {
    let mut pos = 0usize;
    let mut at = offset;
    // Head: up to the next word boundary.
    let head = ((8 - (at % 8)) % 8).min(out.len() as u64) as usize;
    if head > 0 {
        let w = word(seed, at / 8).to_le_bytes();
        let from = (at % 8) as usize;
        out[..head].copy_from_slice(&w[from..from + head]);
        pos = head;
        at += head as u64;
    }
    let mut chunks = out[pos..].chunks_exact_mut(8);
    let mut index = at / 8;
    for c in &mut chunks {
        c.copy_from_slice(&word(seed, index).to_le_bytes());
        index += 1;
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let n = tail.len();
        tail.copy_from_slice(&word(seed, index).to_le_bytes()[..n]);
    }
}

/// The checksum of the whole file `fileid` of `size` bytes (as a correct content scan of a
/// file that is not being rewritten finds it).
pub fn file_checksum(algo: ChecksumAlgo, fileid: u64, size: u64) -> String {
    let seed = content_seed(fileid, 0);
    let mut hasher = algo.hasher();
    let mut buf = vec![0u8; CHECKSUM_CHUNK_BYTES.min(size as usize)];
    let mut offset = 0u64;
    while offset < size {
        let n = (size - offset).min(buf.len() as u64) as usize;
        fill(seed, offset, &mut buf[..n]);
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_equals_the_same_range_of_the_whole() {
        let seed = content_seed(42, 0);
        let mut whole = vec![0u8; 1000];
        fill(seed, 0, &mut whole);
        assert!(whole.iter().filter(|&&b| b == 0).count() < 20, "not zeros");
        for (off, len) in [
            (0, 0),
            (1, 1),
            (3, 13),
            (8, 8),
            (7, 2),
            (100, 900),
            (999, 1),
        ] {
            let mut part = vec![0u8; len];
            fill(seed, off as u64, &mut part);
            assert_eq!(part, whole[off..off + len], "offset {off} len {len}");
        }
        let mut other = vec![0u8; 1000];
        fill(content_seed(43, 0), 0, &mut other);
        assert_ne!(other, whole);
        fill(content_seed(42, 1), 0, &mut other);
        assert_ne!(other, whole, "a new generation has new contents");
    }
}
