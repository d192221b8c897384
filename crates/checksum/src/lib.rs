//! The checksums of content scans: one algorithm enum and one streaming hasher, so nfs-walker
//! (which hashes what it reads) and mock-nfsd (which prints the digests a correct scan must
//! find) cannot disagree on a name, a byte order or a hex rendering.
//!
//! A checksum is written as `ALGO:HEX`, e.g. `blake3:af13…`: the algorithm travels with the
//! digest, so scans made with different `--checksum` options are never compared by mistake.
//! Every digest is rendered as the common command-line tools print it (`b3sum`, `sha256sum`,
//! `md5sum`, `xxhsum -H3`: XXH3-64, big-endian hex).

use std::fmt;
use std::str::FromStr;

/// A checksum algorithm of `--checksum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgo {
    Blake3,
    Sha256,
    Md5,
    Xxh3,
}

impl ChecksumAlgo {
    pub const ALL: [ChecksumAlgo; 4] = [
        ChecksumAlgo::Blake3,
        ChecksumAlgo::Sha256,
        ChecksumAlgo::Md5,
        ChecksumAlgo::Xxh3,
    ];

    /// The name in options and in the `ALGO:` prefix of a checksum.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgo::Blake3 => "blake3",
            ChecksumAlgo::Sha256 => "sha256",
            ChecksumAlgo::Md5 => "md5",
            ChecksumAlgo::Xxh3 => "xxh3",
        }
    }

    /// A fresh streaming hasher.
    pub fn hasher(self) -> Hasher {
        Hasher {
            state: match self {
                ChecksumAlgo::Blake3 => State::Blake3(Box::new(blake3::Hasher::new())),
                ChecksumAlgo::Sha256 => State::Sha256(<sha2::Sha256 as sha2::Digest>::new()),
                ChecksumAlgo::Md5 => State::Md5(<md5::Md5 as md5::Digest>::new()),
                ChecksumAlgo::Xxh3 => State::Xxh3(Box::new(xxhash_rust::xxh3::Xxh3::new())),
            },
        }
    }

    /// The checksum of `data` in one call.
    pub fn checksum(self, data: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

impl fmt::Display for ChecksumAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ChecksumAlgo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ChecksumAlgo::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| format!("unknown checksum `{s}` (blake3, sha256, md5, xxh3)"))
    }
}

/// A checksum being computed: bytes in, in order, then `ALGO:HEX` out.
pub struct Hasher {
    state: State,
}

// The large states are boxed so a Hasher stays small enough to move around cheaply.
enum State {
    Blake3(Box<blake3::Hasher>),
    Sha256(sha2::Sha256),
    Md5(md5::Md5),
    Xxh3(Box<xxhash_rust::xxh3::Xxh3>),
}

impl Hasher {
    pub fn algo(&self) -> ChecksumAlgo {
        match self.state {
            State::Blake3(_) => ChecksumAlgo::Blake3,
            State::Sha256(_) => ChecksumAlgo::Sha256,
            State::Md5(_) => ChecksumAlgo::Md5,
            State::Xxh3(_) => ChecksumAlgo::Xxh3,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        match &mut self.state {
            State::Blake3(h) => {
                h.update(data);
            }
            State::Sha256(h) => h.update(data),
            State::Md5(h) => md5::Digest::update(h, data),
            State::Xxh3(h) => h.update(data),
        }
    }

    /// `ALGO:HEX`.
    pub fn finish(self) -> String {
        use sha2::Digest;
        let algo = self.algo();
        let digest: Vec<u8> = match self.state {
            State::Blake3(h) => h.finalize().as_bytes().to_vec(),
            State::Sha256(h) => h.finalize().to_vec(),
            State::Md5(h) => md5::Digest::finalize(h).to_vec(),
            State::Xxh3(h) => h.digest().to_be_bytes().to_vec(),
        };
        let mut out = String::with_capacity(algo.name().len() + 1 + 2 * digest.len());
        out.push_str(algo.name());
        out.push(':');
        for b in digest {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
        out
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algo())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        // Reference values of the empty input and of "abc", as the CLI tools print them.
        let cases = [
            (
                ChecksumAlgo::Md5,
                b"" as &[u8],
                "d41d8cd98f00b204e9800998ecf8427e",
            ),
            (
                ChecksumAlgo::Md5,
                b"abc",
                "900150983cd24fb0d6963f7d28e17f72",
            ),
            (
                ChecksumAlgo::Sha256,
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                ChecksumAlgo::Blake3,
                b"",
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
            ),
            (ChecksumAlgo::Xxh3, b"", "2d06800538d394c2"),
        ];
        for (algo, input, hex) in cases {
            assert_eq!(algo.checksum(input), format!("{algo}:{hex}"));
        }
    }

    #[test]
    fn streaming_equals_one_shot_and_names_round_trip() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for algo in ChecksumAlgo::ALL {
            let mut h = algo.hasher();
            for piece in data.chunks(4093) {
                h.update(piece);
            }
            assert_eq!(h.finish(), algo.checksum(&data));
            assert_eq!(algo.name().parse::<ChecksumAlgo>(), Ok(algo));
        }
        assert!("crc32".parse::<ChecksumAlgo>().is_err());
    }
}
