//! Ids, parents and totals: the writer assigns every id itself and keeps one small record
//! per directory, keyed by a 128-bit keyed hash of its path. A child whose parent has not
//! arrived yet reserves the parent's id, which the parent takes when it comes; per-directory
//! totals are summed as rows go by and rolled up once at the end.

use super::DbError;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

/// Directories the writer tracks at most (about 100 bytes each).
pub const DIRS_MAX: usize = 200_000_000;

/// Keys of the directory map are already uniformly random; hashing them again is waste.
#[derive(Default)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64 ^ (n >> 64) as u64;
    }
}

pub(super) const NO_PARENT: u32 = u32::MAX;

/// One directory as the writer tracks it.
#[derive(Debug, Clone)]
pub(super) struct DirAcc {
    pub(super) id: i64,
    /// Index of the parent in `DirMap::dirs`, or [`NO_PARENT`].
    pub(super) parent: u32,
    pub(super) depth: u32,
    /// False while only reserved by a child that arrived first.
    pub(super) arrived: bool,
    pub(super) direct_entries: u64,
    pub(super) direct_bytes: u64,
    pub(super) recursive_entries: u64,
    pub(super) recursive_bytes: u64,
}

impl DirAcc {
    fn new(id: i64, parent: u32, depth: u32, arrived: bool) -> Self {
        DirAcc {
            id,
            parent,
            depth,
            arrived,
            direct_entries: 0,
            direct_bytes: 0,
            recursive_entries: 0,
            recursive_bytes: 0,
        }
    }
}

/// Every directory seen, and the ids handed out.
pub(super) struct DirMap {
    path_keys: (RandomState, RandomState),
    index: HashMap<u128, u32, BuildHasherDefault<PassThroughHasher>>,
    pub(super) dirs: Vec<DirAcc>,
    next_id: i64,
    /// The last parent looked up: consecutive entries mostly share one.
    last_parent: Vec<u8>,
    last_parent_index: u32,
    /// Directory paths seen twice (the second got an id of its own).
    pub(super) duplicate_dirs: u64,
}

impl DirMap {
    pub(super) fn new() -> Self {
        DirMap {
            path_keys: (RandomState::new(), RandomState::new()),
            index: HashMap::default(),
            dirs: Vec::new(),
            next_id: 1,
            last_parent: Vec::new(),
            last_parent_index: NO_PARENT,
            duplicate_dirs: 0,
        }
    }

    pub(super) fn alloc_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn path_key(&self, path: &[u8]) -> u128 {
        (u128::from(self.path_keys.0.hash_one(path)) << 64)
            | u128::from(self.path_keys.1.hash_one(path))
    }

    fn push_dir(&mut self, key: Option<u128>, acc: DirAcc) -> Result<u32, DbError> {
        if self.dirs.len() >= DIRS_MAX {
            return Err(DbError::TooManyDirs);
        }
        let index = self.dirs.len() as u32;
        self.dirs.push(acc);
        if let Some(k) = key {
            self.index.insert(k, index);
        }
        Ok(index)
    }

    /// The index of the directory at `path`, reserving it if it has not arrived yet.
    pub(super) fn parent_index(&mut self, path: &[u8], depth: u32) -> Result<u32, DbError> {
        if self.last_parent_index != NO_PARENT && self.last_parent == path {
            return Ok(self.last_parent_index);
        }
        let key = self.path_key(path);
        let index = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let id = self.alloc_id();
                self.push_dir(Some(key), DirAcc::new(id, NO_PARENT, depth, false))?
            }
        };
        self.last_parent.clear();
        self.last_parent.extend_from_slice(path);
        self.last_parent_index = index;
        Ok(index)
    }

    /// The id of a directory record: the one its children reserved, or a new one.
    pub(super) fn dir_id(&mut self, path: &[u8], depth: u32, parent: u32) -> Result<i64, DbError> {
        let key = self.path_key(path);
        let existing = self.index.get(&key).copied();
        if let Some(i) = existing {
            let d = &mut self.dirs[i as usize];
            if !d.arrived {
                d.arrived = true;
                d.parent = parent;
                d.depth = depth;
                return Ok(d.id);
            }
            // The same path twice (a server changing under the scan): keep the first in
            // the map, give this one its own id.
            self.duplicate_dirs += 1;
        }
        let id = self.alloc_id();
        self.push_dir(
            if existing.is_none() { Some(key) } else { None },
            DirAcc::new(id, parent, depth, true),
        )?;
        Ok(id)
    }

    /// Counts an entry of size `size` in directory `parent`; returns the directory's id.
    pub(super) fn count_child(&mut self, parent: u32, size: u64) -> i64 {
        let p = &mut self.dirs[parent as usize];
        p.direct_entries += 1;
        p.direct_bytes = p.direct_bytes.saturating_add(size);
        p.id
    }

    /// Sums every directory's subtree into its parent, deepest first.
    pub(super) fn sum_recursive(&mut self) {
        for d in &mut self.dirs {
            d.recursive_entries = d.direct_entries;
            d.recursive_bytes = d.direct_bytes;
        }
        let mut order: Vec<u32> = (0..self.dirs.len() as u32).collect();
        order.sort_unstable_by_key(|&i| std::cmp::Reverse(self.dirs[i as usize].depth));
        for i in order {
            let d = &self.dirs[i as usize];
            let (parent, entries, bytes) = (d.parent, d.recursive_entries, d.recursive_bytes);
            if parent != NO_PARENT && parent != i {
                let p = &mut self.dirs[parent as usize];
                p.recursive_entries = p.recursive_entries.saturating_add(entries);
                p.recursive_bytes = p.recursive_bytes.saturating_add(bytes);
            }
        }
    }

    /// The directories whose rows arrived, in id order.
    pub(super) fn arrived(&self) -> impl Iterator<Item = &DirAcc> {
        self.dirs.iter().filter(|d| d.arrived)
    }

    /// Directories children named that never arrived themselves.
    pub(super) fn missing(&self) -> impl Iterator<Item = &DirAcc> {
        self.dirs.iter().filter(|d| !d.arrived)
    }
}
