//! What the walk leaves out, and the set of directories already visited.

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

const VISITED_SHARDS: usize = 64;

/// Directories already taken for listing, by (fsid, fileid) and by file handle, shared by all
/// threads. Touched once per directory, not per call; sharded so threads rarely meet on one
/// lock. Both keys are checked because a broken or hostile server may present a directory's
/// handle again under another fileid (or the reverse): either way it is a cycle.
#[derive(Debug)]
pub struct VisitedDirs {
    shards: Vec<Mutex<HashSet<(u64, u64)>>>,
}

impl Default for VisitedDirs {
    fn default() -> Self {
        VisitedDirs {
            shards: (0..VISITED_SHARDS)
                .map(|_| Mutex::new(HashSet::new()))
                .collect(),
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
        set.insert((a, b))
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
}
