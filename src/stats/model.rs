//! The model every report is built from: one [`Report`] of aggregates, whatever the source
//! (a scan database through SQL, NDJSON or Parquet as a stream), so `stats`, `stats --json`
//! and the HTML report show the same figures.

use crate::record::EntryType;

/// Rows of a top-N report at most.
pub const TOP_N_MAX: usize = 100_000;

pub const NS_PER_S: i64 = 1_000_000_000;
pub const DAY_NS: i64 = 86_400 * NS_PER_S;

#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    pub by_extension: bool,
    pub largest_files: bool,
    pub largest_dirs: bool,
    pub oldest_files: bool,
    pub by_uid: bool,
    pub by_gid: bool,
    pub most_links: bool,
    pub size_histogram: bool,
    pub age_histogram: bool,
    /// Recursive totals of the first levels of directories (the HTML report's capacity chart).
    pub dir_tree: bool,
    /// Errors by procedure and status, and the first ones (a database holds them).
    pub errors: bool,
    pub top: usize,
}

#[derive(Debug, Clone, Default)]
pub struct TypeRow {
    pub kind: String,
    pub entries: u64,
    pub bytes: u64,
    pub used: u64,
}

#[derive(Debug, Clone)]
pub struct ScanMeta {
    pub url: String,
    pub status: String,
    pub started_ns: i64,
    pub finished_ns: Option<i64>,
    pub entries: Option<u64>,
    pub errors: Option<u64>,
    pub message: Option<String>,
    pub threads: Option<u64>,
    pub connections: Option<u64>,
    pub backend: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub entries: u64,
    pub bytes: u64,
    pub used: u64,
    pub by_type: Vec<TypeRow>,
    pub depth_max: u64,
    pub depth_sum: u64,
}

/// One group of a by-extension, by-owner or by-group report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow<K> {
    pub key: K,
    pub entries: u64,
    pub bytes: u64,
    pub used: u64,
}

/// Whom a by-owner or by-group row counts: the NFSv4 owner name where a record carries one
/// (its id is then `nobody`, or what `--idmap` made of the name, so the id would lump every
/// name together), else the numeric id. Ids sort before names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnerKey {
    Id(u32),
    Name(Vec<u8>),
}

impl OwnerKey {
    pub fn of(id: u32, name: Option<&[u8]>) -> OwnerKey {
        match name {
            Some(n) => OwnerKey::Name(n.to_vec()),
            None => OwnerKey::Id(id),
        }
    }
}

impl std::fmt::Display for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnerKey::Id(id) => write!(f, "{id}"),
            OwnerKey::Name(n) => f.write_str(&String::from_utf8_lossy(n)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub path: Vec<u8>,
    pub size: u64,
    pub used: u64,
    pub mtime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    /// NFSv4 owner names, where the server sent names (`uid`/`gid` then hold the mapped id
    /// or 65534).
    pub owner: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
}

impl FileRow {
    /// The file's owner as reports show it: the name where there is one, else the uid.
    pub fn owner_key(&self) -> OwnerKey {
        OwnerKey::of(self.uid, self.owner.as_deref())
    }
}

#[derive(Debug, Clone)]
pub struct DirRow {
    pub path: Vec<u8>,
    pub recursive_entries: u64,
    pub recursive_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkRow {
    pub path: Vec<u8>,
    pub nlink: u32,
    pub fsid: u64,
    pub fileid: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Bucket {
    pub files: u64,
    pub bytes: u64,
}

/// Subdirectories shown per directory in the capacity chart, by level below the root: enough
/// to see where the bytes are, few enough to read (at most 8 + 32 + 64 rows).
pub const DIR_TREE_CHILDREN: [usize; 3] = [8, 4, 2];

/// Capacity by directory: the first levels below the root, each directory followed by its
/// largest subdirectories (by recursive bytes; [`DIR_TREE_CHILDREN`] per level), depth first.
#[derive(Debug, Clone, Default)]
pub struct DirTree {
    pub rows: Vec<DirRow>,
    /// Whether some directories were left out because a stream met more than it keeps.
    pub incomplete: bool,
}

/// Per-path errors of a scan, as a database records them.
#[derive(Debug, Clone, Default)]
pub struct ErrorSummary {
    pub total: u64,
    /// (procedure, status, count), most frequent first.
    pub by_kind: Vec<(String, String, u64)>,
    /// The first errors: (path, procedure, status, message).
    pub first: Vec<(Vec<u8>, String, String, String)>,
}

/// Size buckets: 0 holds empty files, k >= 1 holds sizes in [2^(k-1), 2^k).
pub const SIZE_BUCKETS: usize = 65;

pub fn size_bucket(size: u64) -> usize {
    (64 - size.leading_zeros()) as usize
}

pub const AGE_BUCKETS: [&str; 7] = ["future", "<1d", "<1w", "<1m", "<1y", "<5y", "older"];

/// The age bucket of a modification time: "<1m" is 30 days, "<1y" 365 days.
pub fn age_bucket(now_ns: i64, mtime_ns: i64) -> usize {
    let age = i128::from(now_ns) - i128::from(mtime_ns);
    let day = i128::from(DAY_NS);
    if age < 0 {
        0
    } else if age < day {
        1
    } else if age < 7 * day {
        2
    } else if age < 30 * day {
        3
    } else if age < 365 * day {
        4
    } else if age < 5 * 365 * day {
        5
    } else {
        6
    }
}

/// Everything `stats` prints.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub source: String,
    pub format: &'static str,
    pub scan: Option<ScanMeta>,
    pub summary: Summary,
    pub age_reference_ns: i64,
    pub by_extension: Option<Vec<GroupRow<Option<String>>>>,
    pub by_uid: Option<Vec<GroupRow<OwnerKey>>>,
    pub by_gid: Option<Vec<GroupRow<OwnerKey>>>,
    pub largest_files: Option<Vec<FileRow>>,
    pub oldest_files: Option<Vec<FileRow>>,
    pub largest_dirs_by_bytes: Option<Vec<DirRow>>,
    pub largest_dirs_by_entries: Option<Vec<DirRow>>,
    pub most_links: Option<Vec<LinkRow>>,
    pub size_histogram: Option<Vec<Bucket>>,
    pub age_histogram: Option<Vec<Bucket>>,
    /// Files by access time, in the buckets of `age_histogram` (computed with it).
    pub atime_histogram: Option<Vec<Bucket>>,
    pub dir_tree: Option<DirTree>,
    pub errors: Option<ErrorSummary>,
    pub malformed_lines: u64,
}

pub fn current_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

pub fn add(b: &mut Bucket, size: u64) {
    b.files += 1;
    b.bytes = b.bytes.saturating_add(size);
}

pub fn sort_types(rows: &mut [TypeRow]) {
    let rank = |k: &str| {
        EntryType::parse(k)
            .and_then(|t| EntryType::ALL.iter().position(|&x| x == t))
            .unwrap_or(usize::MAX)
    };
    rows.sort_by(|a, b| rank(&a.kind).cmp(&rank(&b.kind)).then(a.kind.cmp(&b.kind)));
}
