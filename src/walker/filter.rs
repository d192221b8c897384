//! What the walk leaves out, and the set of directories already visited.

use crate::walker::disk_keys::DiskSet;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use std::collections::HashSet;
use std::sync::Mutex;

/// `--exclude` patterns, matched against an entry's name and its path relative to the root.
/// An excluded directory is neither written nor descended into.
#[derive(Debug, Clone, Default)]
pub struct ExcludeSet {
    set: Option<GlobSet>,
}

impl ExcludeSet {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, globset::Error> {
        if patterns.is_empty() {
            return Ok(ExcludeSet { set: None });
        }
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            // `*` does not cross `/`, as in shells: `a/*` excludes a's children, not deeper.
            let glob: Glob = GlobBuilder::new(p.as_ref())
                .literal_separator(true)
                .backslash_escape(true)
                .build()?;
            b.add(glob);
        }
        Ok(ExcludeSet {
            set: Some(b.build()?),
        })
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.set.is_none()
    }

    /// Whether an entry with this name and relative path is excluded.
    pub fn excludes(&self, name: &[u8], path: &[u8]) -> bool {
        match &self.set {
            None => false,
            Some(set) => {
                let m = |b: &[u8]| {
                    // globset matches on Path; Unix paths are bytes, so nothing is lost.
                    use std::os::unix::ffi::OsStrExt;
                    set.is_match(std::path::Path::new(std::ffi::OsStr::from_bytes(b)))
                };
                m(name) || m(path)
            }
        }
    }
}

/// Shards of the visited set (each spills on its own, so each holds a few files).
const VISITED_SHARDS: usize = 16;

/// Directories already taken for listing, by (fsid, fileid) and by file handle, shared by all
/// threads. Touched once per directory, not per call; sharded so threads rarely meet on one
/// lock. Both keys are checked because a broken or hostile server may present a directory's
/// handle again under another fileid (or the reverse): either way it is a cycle.
///
/// Memory is bounded whatever the tree: [`VISITED_KEYS_IN_MEMORY`] keys in memory (about
/// 8 MiB); past that each shard writes its keys to disk as a sorted run ([`DiskSet`], 16 bytes
/// a key on disk, a sparse index of 1/256 of them in memory), and a fixed filter of
/// [`VISITED_FILTER_BYTES`] (two bits per key) spares most lookups the disk: at 1.2M
/// directories (2.4M keys) about 0.5% of them read a block, at 40M directories about 40%.
#[derive(Debug)]
pub struct VisitedDirs {
    shards: Vec<Mutex<VisitedShard>>,
}

/// Keys of the visited set held in memory at most, over all shards.
pub const VISITED_KEYS_IN_MEMORY: usize = 1 << 18;
/// The filter over the keys on disk, over all shards.
pub const VISITED_FILTER_BYTES: usize = 8 << 20;

#[derive(Debug)]
struct VisitedShard {
    memory: HashSet<(u64, u64)>,
    disk: DiskSet<u128>,
    /// Two bits set per key on disk; a key whose bits are not both set is not there.
    filter: Vec<u64>,
    spill_failed: bool,
}

impl Default for VisitedDirs {
    fn default() -> Self {
        VisitedDirs {
            shards: (0..VISITED_SHARDS)
                .map(|_| {
                    Mutex::new(VisitedShard {
                        memory: HashSet::new(),
                        disk: DiskSet::default(),
                        filter: Vec::new(),
                        spill_failed: false,
                    })
                })
                .collect(),
        }
    }
}

impl VisitedShard {
    fn filter_bits(key: u128, words: usize) -> [(usize, u64); 2] {
        let h = (key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let bits = (words * 64) as u64;
        let (b1, b2) = ((h >> 32) % bits, (h & 0xffff_ffff) % bits);
        [
            ((b1 / 64) as usize, 1 << (b1 % 64)),
            ((b2 / 64) as usize, 1 << (b2 % 64)),
        ]
    }

    fn on_disk(&mut self, key: u128) -> bool {
        if self.filter.is_empty() {
            return false;
        }
        let words = self.filter.len();
        if Self::filter_bits(key, words)
            .iter()
            .any(|&(w, bit)| self.filter[w] & bit == 0)
        {
            return false;
        }
        // An unreadable run counts as holding the key: a directory is skipped with a
        // warning rather than listed twice.
        self.disk.contains(key).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the visited-directory set failed");
            true
        })
    }

    /// Records `(a, b)`; false if it was there.
    fn insert(&mut self, a: u64, b: u64) -> bool {
        let key = (u128::from(a) << 64) | u128::from(b);
        if self.memory.contains(&(a, b)) || self.on_disk(key) {
            return false;
        }
        self.memory.insert((a, b));
        if self.memory.len() >= VISITED_KEYS_IN_MEMORY / VISITED_SHARDS && !self.spill_failed {
            self.spill();
        }
        true
    }

    fn spill(&mut self) {
        if self.filter.is_empty() {
            self.filter = vec![0; VISITED_FILTER_BYTES / VISITED_SHARDS / 8];
        }
        let mut keys: Vec<u128> = self
            .memory
            .iter()
            .map(|&(a, b)| (u128::from(a) << 64) | u128::from(b))
            .collect();
        let words = self.filter.len();
        for &k in &keys {
            for (w, bit) in Self::filter_bits(k, words) {
                self.filter[w] |= bit;
            }
        }
        match self.disk.add(&mut keys) {
            Ok(()) => self.memory = HashSet::new(),
            Err(e) => {
                // Keep them in memory (past the bound) rather than lose them.
                tracing::warn!(error = %e, "spilling the visited-directory set failed");
                self.spill_failed = true;
            }
        }
    }
}

/// Keys of handles live in their own namespace: an fsid no server uses.
const HANDLE_KEY_SPACE: u64 = u64::MAX;

fn handle_hash(fh: &[u8]) -> u64 {
    // FNV-1a: handles are short and this runs once per directory.
    fh.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl VisitedDirs {
    fn insert_key(&self, a: u64, b: u64) -> bool {
        let shard = (b ^ a.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
        let mut set = self.shards[shard as usize % VISITED_SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        set.insert(a, b)
    }

    /// Marks a directory visited by (fsid, fileid); false if it already was (a hard-linked
    /// directory, a bind mount seen twice, or a server presenting a cycle).
    pub fn insert(&self, fsid: u64, fileid: u64) -> bool {
        self.insert_key(fsid, fileid)
    }

    /// Marks a directory visited by both keys; false if either was seen before.
    pub fn insert_dir(&self, fsid: u64, fileid: u64, fh: &[u8]) -> bool {
        let by_id = self.insert_key(fsid, fileid);
        let by_handle = self.insert_key(HANDLE_KEY_SPACE, handle_hash(fh));
        by_id && by_handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_by_name_and_by_relative_path() {
        let ex = ExcludeSet::new(&[".snapshot", "logs/*.gz", "*.tmp"]).unwrap();
        assert!(ex.excludes(b".snapshot", b"a/b/.snapshot"));
        assert!(ex.excludes(b"x.gz", b"logs/x.gz"));
        assert!(!ex.excludes(b"x.gz", b"logs/deeper/x.gz"));
        assert!(ex.excludes(b"f.tmp", b"a/f.tmp"));
        assert!(!ex.excludes(b"keep", b"a/keep"));
        assert!(ExcludeSet::new::<&str>(&[]).unwrap().is_empty());
        assert!(ExcludeSet::new(&["a[b"]).is_err());
    }

    #[test]
    fn visited_dirs_admit_each_directory_once() {
        let v = VisitedDirs::default();
        assert!(v.insert(1, 42));
        assert!(!v.insert(1, 42));
        assert!(v.insert(2, 42));
        // the same handle under a new fileid is a cycle too
        assert!(v.insert_dir(1, 7, b"handle-a"));
        assert!(!v.insert_dir(1, 8, b"handle-a"));
        assert!(!v.insert_dir(1, 7, b"handle-b"));
        assert!(v.insert_dir(1, 9, b"handle-c"));
    }

    /// Past the in-memory bound the set spills to disk and still admits each directory
    /// exactly once, with memory holding at most the bound.
    #[test]
    fn visited_dirs_past_the_memory_bound_stay_exact() {
        let v = VisitedDirs::default();
        let n = (VISITED_KEYS_IN_MEMORY as u64) * 3 + 777;
        for i in 0..n {
            assert!(
                v.insert(i % 5, i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                "{i}"
            );
        }
        let in_memory: usize = v
            .shards
            .iter()
            .map(|s| s.lock().unwrap().memory.len())
            .sum();
        assert!(in_memory <= VISITED_KEYS_IN_MEMORY, "{in_memory}");
        for i in (0..n).step_by(13) {
            assert!(
                !v.insert(i % 5, i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                "{i}"
            );
        }
        assert!(v.insert(9, 1), "a new directory");
    }
}
