//! Reports from a stream of entry records (NDJSON, Parquet) in bounded memory: top-N reports
//! keep N rows, groups keep one row per uid, gid or extension (extensions are at most 16
//! bytes), and directory totals are kept for the first [`DIR_TREE_DEPTH`] levels only, for at
//! most [`DIR_TREE_KEYS_MAX`] directories.

use super::model::*;
use crate::output::schema::{extension_of, split_parent};
use crate::record::{EntryRef, EntryType};
use std::collections::{BTreeSet, BinaryHeap, HashMap};

/// Directories below the root whose recursive totals a stream keeps: the HTML report's
/// capacity chart shows this many levels.
pub const DIR_TREE_DEPTH: u32 = 3;
/// Directories a stream keeps totals for at most (about 100 bytes each plus the path: 10 MiB
/// to 50 MiB); directories past this are left out (the report says its tree is incomplete).
pub const DIR_TREE_KEYS_MAX: usize = 200_000;

/// Keeps the `limit` smallest items by `Ord` (the heap's top is the worst kept).
struct TopN<T: Ord> {
    heap: BinaryHeap<T>,
    limit: usize,
}

impl<T: Ord> TopN<T> {
    fn new(limit: usize) -> Self {
        TopN {
            heap: BinaryHeap::with_capacity(limit + 1),
            limit,
        }
    }

    /// Whether `item` would be kept; lets callers skip building it.
    fn admits(&self, better_than_worst: impl FnOnce(&T) -> bool) -> bool {
        self.heap.len() < self.limit || self.heap.peek().is_some_and(better_than_worst)
    }

    fn push(&mut self, item: T) {
        self.heap.push(item);
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    fn into_sorted(self) -> Vec<T> {
        self.heap.into_sorted_vec()
    }
}

/// Orders largest-files keys: larger size first, then path.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct BySizeDesc(std::cmp::Reverse<u64>, Vec<u8>, FileRowKey);

/// Orders oldest-files keys: older first, then path.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct ByMtime(i64, Vec<u8>, FileRowKey);

/// The rest of a file row, ordered last (never decides between distinct paths).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct FileRowKey {
    size: u64,
    used: u64,
    mtime_ns: i64,
    uid: u32,
    gid: u32,
    owner: Option<Vec<u8>>,
    group: Option<Vec<u8>>,
}

fn file_row(path: Vec<u8>, k: FileRowKey) -> FileRow {
    FileRow {
        path,
        size: k.size,
        used: k.used,
        mtime_ns: k.mtime_ns,
        uid: k.uid,
        gid: k.gid,
        owner: k.owner,
        group: k.group,
    }
}

/// The most-links report over a stream: the top N inodes by (links desc, smallest path), each
/// once. An inode's key only improves as more of its names arrive (its smallest path can only
/// fall), and the set's worst key only improves, so an inode evicted once could only come
/// back with a better key, which it then has: the result is exact.
pub struct MostLinks {
    limit: usize,
    /// Ordered best first: (Reverse(links), smallest path, fsid, fileid).
    order: BTreeSet<(std::cmp::Reverse<u32>, Vec<u8>, u64, u64)>,
    /// (fsid, fileid) -> (links, smallest path) of the inodes kept.
    kept: HashMap<(u64, u64), (u32, Vec<u8>)>,
}

impl MostLinks {
    pub fn new(limit: usize) -> Self {
        MostLinks {
            limit,
            order: BTreeSet::new(),
            kept: HashMap::new(),
        }
    }

    pub fn add(&mut self, fsid: u64, fileid: u64, nlink: u32, path: &[u8]) {
        let id = (fsid, fileid);
        if let Some((links, first)) = self.kept.get(&id) {
            if nlink <= *links && path >= first.as_slice() {
                return;
            }
            let old = (std::cmp::Reverse(*links), first.clone(), fsid, fileid);
            self.order.remove(&old);
            let links = nlink.max(*links);
            let first = if path < first.as_slice() {
                path.to_vec()
            } else {
                first.clone()
            };
            self.order
                .insert((std::cmp::Reverse(links), first.clone(), fsid, fileid));
            self.kept.insert(id, (links, first));
            return;
        }
        let key = (std::cmp::Reverse(nlink), path.to_vec(), fsid, fileid);
        if self.order.len() >= self.limit {
            match self.order.last() {
                Some(worst) if key < *worst => {}
                _ => return,
            }
            if let Some(worst) = self.order.pop_last() {
                self.kept.remove(&(worst.2, worst.3));
            }
        }
        self.kept.insert(id, (nlink, path.to_vec()));
        self.order.insert(key);
    }

    pub fn into_rows(self) -> Vec<LinkRow> {
        self.order
            .into_iter()
            .map(|(links, path, fsid, fileid)| LinkRow {
                path,
                nlink: links.0,
                fsid,
                fileid,
            })
            .collect()
    }
}

/// Orders grouped rows as the database does: bytes desc, entries desc, then key.
fn top_groups<K: Ord + Clone>(map: HashMap<K, GroupRow<K>>, top: usize) -> Vec<GroupRow<K>> {
    let mut rows: Vec<GroupRow<K>> = map.into_values().collect();
    rows.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.entries.cmp(&a.entries))
            .then(a.key.cmp(&b.key))
    });
    rows.truncate(top);
    rows
}

fn add_group<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, GroupRow<K>>,
    key: K,
    size: u64,
    used: u64,
) {
    let g = map.entry(key.clone()).or_insert(GroupRow {
        key,
        entries: 0,
        bytes: 0,
        used: 0,
    });
    g.entries += 1;
    g.bytes = g.bytes.saturating_add(size);
    g.used = g.used.saturating_add(used);
}

/// The recursive totals of one directory of the first levels.
#[derive(Debug, Clone, Copy, Default)]
struct DirTotals {
    entries: u64,
    bytes: u64,
}

/// Aggregates a stream of entries into a [`Report`]; the memory it keeps is bounded as the
/// module says, whatever the length of the stream.
pub struct Aggregator {
    w: Wanted,
    now_ns: i64,
    types: HashMap<EntryType, TypeRow>,
    depth_max: u64,
    depth_sum: u64,
    by_ext: HashMap<Option<String>, GroupRow<Option<String>>>,
    by_uid: HashMap<OwnerKey, GroupRow<OwnerKey>>,
    by_gid: HashMap<OwnerKey, GroupRow<OwnerKey>>,
    largest: TopN<BySizeDesc>,
    oldest: TopN<ByMtime>,
    links: MostLinks,
    sizes: [Bucket; SIZE_BUCKETS],
    ages: [Bucket; AGE_BUCKETS.len()],
    atimes: [Bucket; AGE_BUCKETS.len()],
    dirs: HashMap<Vec<u8>, DirTotals>,
    dirs_dropped: u64,
}

impl Aggregator {
    /// `now_ns` is the reference time of the age histograms.
    pub fn new(w: &Wanted, now_ns: i64) -> Self {
        Aggregator {
            w: *w,
            now_ns,
            types: HashMap::new(),
            depth_max: 0,
            depth_sum: 0,
            by_ext: HashMap::new(),
            by_uid: HashMap::new(),
            by_gid: HashMap::new(),
            largest: TopN::new(w.top),
            oldest: TopN::new(w.top),
            links: MostLinks::new(w.top),
            sizes: [Bucket::default(); SIZE_BUCKETS],
            ages: [Bucket::default(); AGE_BUCKETS.len()],
            atimes: [Bucket::default(); AGE_BUCKETS.len()],
            dirs: HashMap::new(),
            dirs_dropped: 0,
        }
    }

    pub fn add(&mut self, e: &EntryRef<'_>) {
        let w = self.w;
        let a = e.attrs;
        let t = self.types.entry(a.kind).or_insert_with(|| TypeRow {
            kind: a.kind.as_str().to_string(),
            ..TypeRow::default()
        });
        t.entries += 1;
        t.bytes = t.bytes.saturating_add(a.size);
        t.used = t.used.saturating_add(a.used);
        self.depth_max = self.depth_max.max(u64::from(e.depth));
        self.depth_sum = self.depth_sum.saturating_add(u64::from(e.depth));
        if w.by_uid {
            add_group(
                &mut self.by_uid,
                OwnerKey::of(a.uid, e.owner),
                a.size,
                a.used,
            );
        }
        if w.by_gid {
            add_group(
                &mut self.by_gid,
                OwnerKey::of(a.gid, e.group),
                a.size,
                a.used,
            );
        }
        if w.most_links && a.kind != EntryType::Dir && a.nlink > 1 {
            self.links.add(a.fsid, a.fileid, a.nlink, e.path);
        }
        if w.dir_tree {
            self.add_to_dirs(e);
        }
        if a.kind != EntryType::File {
            return;
        }
        if w.by_extension {
            let name = split_parent(e.path).1;
            let ext = extension_of(name).map(|e| e.into_owned());
            add_group(&mut self.by_ext, ext, a.size, a.used);
        }
        let key = || FileRowKey {
            size: a.size,
            used: a.used,
            mtime_ns: a.mtime_ns,
            uid: a.uid,
            gid: a.gid,
            owner: e.owner.map(<[u8]>::to_vec),
            group: e.group.map(<[u8]>::to_vec),
        };
        if w.largest_files
            && self
                .largest
                .admits(|worst| (std::cmp::Reverse(a.size), e.path) < (worst.0, worst.1.as_slice()))
        {
            self.largest.push(BySizeDesc(
                std::cmp::Reverse(a.size),
                e.path.to_vec(),
                key(),
            ));
        }
        if w.oldest_files
            && self
                .oldest
                .admits(|worst| (a.mtime_ns, e.path) < (worst.0, worst.1.as_slice()))
        {
            self.oldest
                .push(ByMtime(a.mtime_ns, e.path.to_vec(), key()));
        }
        add(&mut self.sizes[size_bucket(a.size)], a.size);
        add(&mut self.ages[age_bucket(self.now_ns, a.mtime_ns)], a.size);
        add(
            &mut self.atimes[age_bucket(self.now_ns, a.atime_ns)],
            a.size,
        );
    }

    /// Adds the entry to the totals of its ancestors of the first [`DIR_TREE_DEPTH`] levels
    /// (the root's totals are the summary's), and makes a directory of those levels known
    /// even when it is empty.
    fn add_to_dirs(&mut self, e: &EntryRef<'_>) {
        if e.path == b"." {
            return;
        }
        let is_dir = e.attrs.kind == EntryType::Dir;
        let mut end = 0;
        for (level, part) in e.path.split(|&b| b == b'/').enumerate() {
            end += part.len() + usize::from(level > 0);
            let is_self = end == e.path.len();
            if level as u32 >= DIR_TREE_DEPTH || (is_self && !is_dir) {
                break;
            }
            let prefix = &e.path[..end];
            if !self.dirs.contains_key(prefix) {
                if self.dirs.len() >= DIR_TREE_KEYS_MAX {
                    self.dirs_dropped += 1;
                    break;
                }
                self.dirs.insert(prefix.to_vec(), DirTotals::default());
            }
            if is_self {
                break;
            }
            if let Some(totals) = self.dirs.get_mut(prefix) {
                totals.entries += 1;
                totals.bytes = totals.bytes.saturating_add(e.attrs.size);
            }
        }
    }

    /// Fills `r` with the reports asked for.
    pub fn finish(self, r: &mut Report) {
        let w = self.w;
        r.age_reference_ns = self.now_ns;
        let s = &mut r.summary;
        s.depth_max = self.depth_max;
        s.depth_sum = self.depth_sum;
        for t in self.types.into_values() {
            s.entries += t.entries;
            s.bytes = s.bytes.saturating_add(t.bytes);
            s.used = s.used.saturating_add(t.used);
            s.by_type.push(t);
        }
        sort_types(&mut s.by_type);
        if w.by_extension {
            r.by_extension = Some(top_groups(self.by_ext, w.top));
        }
        if w.by_uid {
            r.by_uid = Some(top_groups(self.by_uid, w.top));
        }
        if w.by_gid {
            r.by_gid = Some(top_groups(self.by_gid, w.top));
        }
        if w.largest_files {
            r.largest_files = Some(
                self.largest
                    .into_sorted()
                    .into_iter()
                    .map(|k| file_row(k.1, k.2))
                    .collect(),
            );
        }
        if w.oldest_files {
            r.oldest_files = Some(
                self.oldest
                    .into_sorted()
                    .into_iter()
                    .map(|k| file_row(k.1, k.2))
                    .collect(),
            );
        }
        if w.most_links {
            r.most_links = Some(self.links.into_rows());
        }
        if w.size_histogram {
            r.size_histogram = Some(self.sizes.to_vec());
        }
        if w.age_histogram {
            r.age_histogram = Some(self.ages.to_vec());
            r.atime_histogram = Some(self.atimes.to_vec());
        }
        if w.dir_tree {
            let rows = self
                .dirs
                .into_iter()
                .map(|(path, t)| DirRow {
                    path,
                    recursive_entries: t.entries,
                    recursive_bytes: t.bytes,
                })
                .collect();
            r.dir_tree = Some(DirTree {
                rows: select_dir_tree(rows),
                incomplete: self.dirs_dropped > 0,
            });
        }
    }
}

/// Orders directories as the capacity chart shows them: each directory followed by its
/// largest subdirectories (by recursive bytes, then path; [`DIR_TREE_CHILDREN`] per level),
/// depth first.
fn select_dir_tree(rows: Vec<DirRow>) -> Vec<DirRow> {
    let mut by_parent: HashMap<Vec<u8>, Vec<DirRow>> = HashMap::new();
    for row in rows {
        let parent = split_parent(&row.path).0.unwrap_or(b".").to_vec();
        by_parent.entry(parent).or_default().push(row);
    }
    for (parent, list) in by_parent.iter_mut() {
        list.sort_by(|a, b| {
            b.recursive_bytes
                .cmp(&a.recursive_bytes)
                .then_with(|| a.path.cmp(&b.path))
        });
        let level = if parent.as_slice() == b"." {
            0
        } else {
            parent.iter().filter(|&&b| b == b'/').count() + 1
        };
        list.truncate(DIR_TREE_CHILDREN.get(level).copied().unwrap_or(0));
    }
    let mut out = Vec::new();
    let mut stack: Vec<DirRow> = by_parent.remove(b".".as_slice()).unwrap_or_default();
    stack.reverse();
    while let Some(row) = stack.pop() {
        if let Some(mut kids) = by_parent.remove(&row.path) {
            kids.reverse();
            stack.extend(kids);
        }
        out.push(row);
    }
    out
}
