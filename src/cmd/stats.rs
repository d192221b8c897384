//! `nfs-walker stats FILE`: a summary and top-N reports of a scan, read from a scan database
//! (`scan -o scan.db`) or from NDJSON scan output.
//!
//! Both sources produce the same [`Report`], so the tables and the `--json` output do not
//! depend on where the figures came from. NDJSON is read as a stream in bounded memory: top-N
//! reports keep N rows, groups keep one row per uid, gid or extension (extensions are at most
//! 16 bytes). Only `--largest-dirs` needs the database: recursive directory totals are summed
//! when it is written.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use nfs_walker::output::sqlite::{
    extension_of, split_parent, APPLICATION_ID, SCHEMA_VERSION, SQLITE_HEADER,
};
use nfs_walker::record::{EntryRecord, EntryType};
use nfs_walker::report::human_bytes;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

/// Rows of a top-N report at most.
pub const TOP_N_MAX: usize = 100_000;
/// NDJSON lines longer than this are skipped as malformed (a path of 4096 components of 255
/// bytes is about 1 MiB).
pub const NDJSON_LINE_BYTES_MAX: usize = 4 << 20;

const NS_PER_S: i64 = 1_000_000_000;
const DAY_NS: i64 = 86_400 * NS_PER_S;

#[derive(Args, Clone, Debug)]
pub struct StatsArgs {
    /// A scan database (scan -o scan.db) or NDJSON scan output; `-` reads NDJSON from stdin
    pub file: PathBuf,
    /// Files, bytes and used bytes per extension
    #[arg(long)]
    pub by_extension: bool,
    /// The largest files
    #[arg(long)]
    pub largest_files: bool,
    /// The largest directories by recursive bytes and by recursive entry count (database only)
    #[arg(long)]
    pub largest_dirs: bool,
    /// The files with the oldest modification times
    #[arg(long)]
    pub oldest_files: bool,
    /// Entries, bytes and used bytes per owner
    #[arg(long)]
    pub by_uid: bool,
    /// Entries, bytes and used bytes per group
    #[arg(long)]
    pub by_gid: bool,
    /// The non-directories with the most hard links (one row per inode)
    #[arg(long)]
    pub most_links: bool,
    /// Files per power-of-two size bucket
    #[arg(long)]
    pub size_histogram: bool,
    /// Files per modification age: future, <1d, <1w, <1m, <1y, <5y, older
    #[arg(long)]
    pub age_histogram: bool,
    /// Groups of regular files with the same size and checksum, and the bytes one copy each
    /// would save (a scan made with --checksum; NDJSON)
    #[arg(long)]
    pub duplicates: bool,
    /// With --duplicates: ignore files smaller than this many bytes
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 1,
        requires = "duplicates"
    )]
    pub min_size: u64,
    /// Files and bytes per MIME type (a scan made with --file-type; NDJSON)
    #[arg(long)]
    pub file_types: bool,
    /// Groups of paths that are one inode (same fsid and fileid; NDJSON)
    #[arg(long)]
    pub hardlinks: bool,
    /// Every report (--largest-dirs only for a database)
    #[arg(long)]
    pub all: bool,
    /// Rows per top-N report
    #[arg(short = 'n', long = "top", default_value_t = 10)]
    pub top: usize,
    /// Machine-readable JSON instead of tables
    #[arg(long)]
    pub json: bool,
    /// Reference time of --age-histogram, in Unix seconds (default: the scan's start for a
    /// database, the current time for NDJSON)
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub now: Option<i64>,
}

/// Which reports to compute.
#[derive(Debug, Clone, Copy, Default)]
struct Wanted {
    by_extension: bool,
    largest_files: bool,
    largest_dirs: bool,
    oldest_files: bool,
    by_uid: bool,
    by_gid: bool,
    most_links: bool,
    size_histogram: bool,
    age_histogram: bool,
    top: usize,
}

#[derive(Debug, Clone, Default)]
struct TypeRow {
    kind: String,
    entries: u64,
    bytes: u64,
    used: u64,
}

#[derive(Debug, Clone)]
struct ScanMeta {
    url: String,
    status: String,
    started_ns: i64,
    finished_ns: Option<i64>,
    entries: Option<u64>,
    errors: Option<u64>,
    message: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Summary {
    entries: u64,
    bytes: u64,
    used: u64,
    by_type: Vec<TypeRow>,
    depth_max: u64,
    depth_sum: u64,
}

/// One group of a by-extension, by-uid or by-gid report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupRow<K> {
    key: K,
    entries: u64,
    bytes: u64,
    used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileRow {
    path: Vec<u8>,
    size: u64,
    used: u64,
    mtime_ns: i64,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone)]
struct DirRow {
    path: Vec<u8>,
    recursive_entries: u64,
    recursive_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LinkRow {
    path: Vec<u8>,
    nlink: u32,
    fsid: u64,
    fileid: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    files: u64,
    bytes: u64,
}

/// Size buckets: 0 holds empty files, k >= 1 holds sizes in [2^(k-1), 2^k).
const SIZE_BUCKETS: usize = 65;

fn size_bucket(size: u64) -> usize {
    (64 - size.leading_zeros()) as usize
}

const AGE_BUCKETS: [&str; 7] = ["future", "<1d", "<1w", "<1m", "<1y", "<5y", "older"];

/// The age bucket of a modification time: "<1m" is 30 days, "<1y" 365 days.
fn age_bucket(now_ns: i64, mtime_ns: i64) -> usize {
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
struct Report {
    source: String,
    format: &'static str,
    scan: Option<ScanMeta>,
    summary: Summary,
    age_reference_ns: i64,
    by_extension: Option<Vec<GroupRow<Option<String>>>>,
    by_uid: Option<Vec<GroupRow<u32>>>,
    by_gid: Option<Vec<GroupRow<u32>>>,
    largest_files: Option<Vec<FileRow>>,
    oldest_files: Option<Vec<FileRow>>,
    largest_dirs_by_bytes: Option<Vec<DirRow>>,
    largest_dirs_by_entries: Option<Vec<DirRow>>,
    most_links: Option<Vec<LinkRow>>,
    size_histogram: Option<Vec<Bucket>>,
    age_histogram: Option<Vec<Bucket>>,
    malformed_lines: u64,
}

pub fn run(args: &StatsArgs) -> Result<i32> {
    if args.top == 0 || args.top > TOP_N_MAX {
        bail!("-n must be 1..={TOP_N_MAX}");
    }
    if args.duplicates || args.file_types || args.hardlinks {
        return content_reports(args);
    }
    let all = args.all;
    let mut wanted = Wanted {
        by_extension: all || args.by_extension,
        largest_files: all || args.largest_files,
        largest_dirs: args.largest_dirs,
        oldest_files: all || args.oldest_files,
        by_uid: all || args.by_uid,
        by_gid: all || args.by_gid,
        most_links: all || args.most_links,
        size_histogram: all || args.size_histogram,
        age_histogram: all || args.age_histogram,
        top: args.top,
    };
    let now_ns = args.now.map(|s| s.saturating_mul(NS_PER_S));
    let is_stdin = args.file.as_os_str() == "-";
    let is_db = !is_stdin && is_database(&args.file)?;
    let report = if is_db {
        wanted.largest_dirs |= all;
        let conn = open_database(&args.file)?;
        report_from_db(&conn, &args.file.display().to_string(), &wanted, now_ns)
            .with_context(|| format!("reading {}", args.file.display()))?
    } else {
        if wanted.largest_dirs {
            bail!(
                "--largest-dirs needs a scan database (nfs-walker scan URL -o scan.db): \
                 recursive directory totals are summed when the database is written, and \
                 NDJSON is read as a stream"
            );
        }
        let now_ns = now_ns.unwrap_or_else(current_ns);
        if is_stdin {
            report_from_ndjson(std::io::stdin().lock(), "-", &wanted, now_ns)?
        } else {
            let f = std::fs::File::open(&args.file)
                .with_context(|| format!("opening {}", args.file.display()))?;
            report_from_ndjson(
                BufReader::with_capacity(1 << 20, f),
                &args.file.display().to_string(),
                &wanted,
                now_ns,
            )?
        }
    };
    if report.format == "ndjson" && report.summary.entries == 0 && report.malformed_lines > 0 {
        bail!(
            "{} is neither a scan database nor NDJSON scan output",
            report.source
        );
    }
    if report.malformed_lines > 0 {
        eprintln!(
            "nfs-walker: {}: skipped {} lines that are not entry records",
            report.source, report.malformed_lines
        );
    }
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&report_json(&report))?;
        s.push('\n');
        s
    } else {
        render_text(&report)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("writing the report")?,
    }
    Ok(0)
}

fn current_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// True for an SQLite file, false for anything else (read as NDJSON).
fn is_database(path: &std::path::Path) -> Result<bool> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut header = [0u8; 16];
    let mut got = 0;
    while got < header.len() {
        match f.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(got == header.len() && &header == SQLITE_HEADER)
}

fn open_database(path: &std::path::Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    let app: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if app != APPLICATION_ID {
        bail!(
            "{} is an SQLite database but not an nfs-walker scan database",
            path.display()
        );
    }
    if version > SCHEMA_VERSION {
        bail!(
            "{} has schema version {version}; this nfs-walker reads up to {SCHEMA_VERSION}",
            path.display()
        );
    }
    Ok(conn)
}

/// A non-negative integer column (sizes, counts): SQLite gives i64, or f64 from `total()`.
fn to_u64(v: ValueRef<'_>) -> u64 {
    match v {
        ValueRef::Integer(i) => u64::try_from(i).unwrap_or(0),
        ValueRef::Real(f) if f > 0.0 => f as u64,
        _ => 0,
    }
}

/// An identifier column stored with its 64 bits in a signed integer.
fn bits_u64(v: ValueRef<'_>) -> u64 {
    match v {
        ValueRef::Integer(i) => i as u64,
        _ => 0,
    }
}

fn to_i64(v: ValueRef<'_>) -> i64 {
    match v {
        ValueRef::Integer(i) => i,
        ValueRef::Real(f) => f as i64,
        _ => 0,
    }
}

fn to_bytes(v: ValueRef<'_>) -> Vec<u8> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
        ValueRef::Integer(i) => i.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
        ValueRef::Null => Vec::new(),
    }
}

/// Runs `sql` with `{sum}` as SQLite's exact `sum`, or, where a sum does not fit in 64 bits
/// (only sizes a hostile server sent can do that), as the floating-point `total`.
fn query_sums<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let run = |sql: &str, row: &mut dyn FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>| {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(row(r)?);
        }
        Ok::<_, rusqlite::Error>(out)
    };
    match run(&sql.replace("{sum}", "sum"), &mut row) {
        Ok(v) => Ok(v),
        Err(e) if e.to_string().contains("integer overflow") => {
            Ok(run(&sql.replace("{sum}", "total"), &mut row)?)
        }
        Err(e) => Err(e.into()),
    }
}

fn report_from_db(
    conn: &Connection,
    source: &str,
    w: &Wanted,
    now_ns: Option<i64>,
) -> Result<Report> {
    let mut r = Report {
        source: source.to_string(),
        format: "sqlite",
        ..Report::default()
    };
    r.scan = conn
        .query_row(
            "SELECT url, status, started_ns, finished_ns, entries, errors, message FROM scan \
             WHERE id = 1",
            [],
            |row| {
                Ok(ScanMeta {
                    url: row.get(0)?,
                    status: row.get(1)?,
                    started_ns: row.get(2)?,
                    finished_ns: row.get(3)?,
                    entries: row.get::<_, Option<i64>>(4)?.map(|n| n.max(0) as u64),
                    errors: row.get::<_, Option<i64>>(5)?.map(|n| n.max(0) as u64),
                    message: row.get(6)?,
                })
            },
        )
        .ok();
    let types = query_sums(
        conn,
        "SELECT type, count(*), {sum}(size), {sum}(used), max(depth), {sum}(depth) \
         FROM entries GROUP BY type",
        &[],
        |row| {
            Ok((
                TypeRow {
                    kind: String::from_utf8_lossy(&to_bytes(row.get_ref(0)?)).into_owned(),
                    entries: to_u64(row.get_ref(1)?),
                    bytes: to_u64(row.get_ref(2)?),
                    used: to_u64(row.get_ref(3)?),
                },
                to_u64(row.get_ref(4)?),
                to_u64(row.get_ref(5)?),
            ))
        },
    )?;
    let s = &mut r.summary;
    for (t, depth_max, depth_sum) in types {
        s.entries += t.entries;
        s.bytes = s.bytes.saturating_add(t.bytes);
        s.used = s.used.saturating_add(t.used);
        s.depth_max = s.depth_max.max(depth_max);
        s.depth_sum = s.depth_sum.saturating_add(depth_sum);
        s.by_type.push(t);
    }
    sort_types(&mut s.by_type);
    r.age_reference_ns = now_ns
        .or(r.scan.as_ref().map(|m| m.started_ns))
        .unwrap_or_else(current_ns);
    let top = w.top as i64;
    if w.by_extension {
        r.by_extension = Some(query_sums(
            conn,
            "SELECT extension, count(*), {sum}(size), {sum}(used) FROM entries \
             WHERE type = 'file' GROUP BY extension ORDER BY 3 DESC, 2 DESC, extension LIMIT ?1",
            &[&top],
            |row| {
                Ok(GroupRow {
                    key: match row.get_ref(0)? {
                        ValueRef::Null => None,
                        v => Some(String::from_utf8_lossy(&to_bytes(v)).into_owned()),
                    },
                    entries: to_u64(row.get_ref(1)?),
                    bytes: to_u64(row.get_ref(2)?),
                    used: to_u64(row.get_ref(3)?),
                })
            },
        )?);
    }
    for (on, column, slot) in [
        (w.by_uid, "uid", &mut r.by_uid),
        (w.by_gid, "gid", &mut r.by_gid),
    ] {
        if on {
            *slot = Some(query_sums(
                conn,
                &format!(
                    "SELECT {column}, count(*), {{sum}}(size), {{sum}}(used) FROM entries \
                     GROUP BY {column} ORDER BY 3 DESC, 2 DESC, {column} LIMIT ?1"
                ),
                &[&top],
                |row| {
                    Ok(GroupRow {
                        key: to_i64(row.get_ref(0)?).clamp(0, i64::from(u32::MAX)) as u32,
                        entries: to_u64(row.get_ref(1)?),
                        bytes: to_u64(row.get_ref(2)?),
                        used: to_u64(row.get_ref(3)?),
                    })
                },
            )?);
        }
    }
    let file_row = |row: &rusqlite::Row<'_>| -> rusqlite::Result<FileRow> {
        Ok(FileRow {
            path: to_bytes(row.get_ref(0)?),
            size: to_u64(row.get_ref(1)?),
            used: to_u64(row.get_ref(2)?),
            mtime_ns: to_i64(row.get_ref(3)?),
            uid: to_i64(row.get_ref(4)?).clamp(0, i64::from(u32::MAX)) as u32,
            gid: to_i64(row.get_ref(5)?).clamp(0, i64::from(u32::MAX)) as u32,
        })
    };
    if w.largest_files {
        r.largest_files = Some(query_sums(
            conn,
            "SELECT path, size, used, mtime_ns, uid, gid FROM entries WHERE type = 'file' \
             ORDER BY size DESC, CAST(path AS BLOB) LIMIT ?1",
            &[&top],
            file_row,
        )?);
    }
    if w.oldest_files {
        r.oldest_files = Some(query_sums(
            conn,
            "SELECT path, size, used, mtime_ns, uid, gid FROM entries WHERE type = 'file' \
             ORDER BY mtime_ns, CAST(path AS BLOB) LIMIT ?1",
            &[&top],
            file_row,
        )?);
    }
    if w.largest_dirs {
        let dir_row = |row: &rusqlite::Row<'_>| -> rusqlite::Result<DirRow> {
            Ok(DirRow {
                path: to_bytes(row.get_ref(0)?),
                recursive_entries: to_u64(row.get_ref(1)?),
                recursive_bytes: to_u64(row.get_ref(2)?),
            })
        };
        for (column, slot) in [
            ("recursive_bytes", &mut r.largest_dirs_by_bytes),
            ("recursive_entries", &mut r.largest_dirs_by_entries),
        ] {
            *slot = Some(query_sums(
                conn,
                &format!(
                    "SELECT e.path, d.recursive_entries, d.recursive_bytes FROM dirs AS d \
                     JOIN entries AS e ON e.id = d.entry_id \
                     ORDER BY d.{column} DESC, CAST(e.path AS BLOB) LIMIT ?1"
                ),
                &[&top],
                dir_row,
            )?);
        }
    }
    if w.most_links {
        r.most_links = Some(query_sums(
            conn,
            "SELECT min(CAST(path AS BLOB)) AS first_path, max(nlink) AS links, fsid, fileid \
             FROM entries WHERE type <> 'dir' AND nlink > 1 GROUP BY fsid, fileid \
             ORDER BY links DESC, first_path LIMIT ?1",
            &[&top],
            |row| {
                Ok(LinkRow {
                    path: to_bytes(row.get_ref(0)?),
                    nlink: to_i64(row.get_ref(1)?).clamp(0, i64::from(u32::MAX)) as u32,
                    fsid: bits_u64(row.get_ref(2)?),
                    fileid: bits_u64(row.get_ref(3)?),
                })
            },
        )?);
    }
    if w.size_histogram || w.age_histogram {
        let mut sizes = [Bucket::default(); SIZE_BUCKETS];
        let mut ages = [Bucket::default(); AGE_BUCKETS.len()];
        let mut stmt = conn.prepare("SELECT size, mtime_ns FROM entries WHERE type = 'file'")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let size = to_u64(row.get_ref(0)?);
            let mtime = to_i64(row.get_ref(1)?);
            add(&mut sizes[size_bucket(size)], size);
            add(&mut ages[age_bucket(r.age_reference_ns, mtime)], size);
        }
        if w.size_histogram {
            r.size_histogram = Some(sizes.to_vec());
        }
        if w.age_histogram {
            r.age_histogram = Some(ages.to_vec());
        }
    }
    Ok(r)
}

fn add(b: &mut Bucket, size: u64) {
    b.files += 1;
    b.bytes = b.bytes.saturating_add(size);
}

fn sort_types(rows: &mut [TypeRow]) {
    let rank = |k: &str| {
        EntryType::parse(k)
            .and_then(|t| EntryType::ALL.iter().position(|&x| x == t))
            .unwrap_or(usize::MAX)
    };
    rows.sort_by(|a, b| rank(&a.kind).cmp(&rank(&b.kind)).then(a.kind.cmp(&b.kind)));
}

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
}

fn file_row(path: Vec<u8>, k: FileRowKey) -> FileRow {
    FileRow {
        path,
        size: k.size,
        used: k.used,
        mtime_ns: k.mtime_ns,
        uid: k.uid,
        gid: k.gid,
    }
}

/// The most-links report over a stream: the top N inodes by (links desc, smallest path), each
/// once. An inode's key only improves as more of its names arrive (its smallest path can only
/// fall), and the set's worst key only improves, so an inode evicted once could only come
/// back with a better key, which it then has: the result is exact.
struct MostLinks {
    limit: usize,
    /// Ordered best first: (Reverse(links), smallest path, fsid, fileid).
    order: BTreeSet<(std::cmp::Reverse<u32>, Vec<u8>, u64, u64)>,
    /// (fsid, fileid) -> (links, smallest path) of the inodes kept.
    kept: HashMap<(u64, u64), (u32, Vec<u8>)>,
}

impl MostLinks {
    fn new(limit: usize) -> Self {
        MostLinks {
            limit,
            order: BTreeSet::new(),
            kept: HashMap::new(),
        }
    }

    fn add(&mut self, fsid: u64, fileid: u64, nlink: u32, path: &[u8]) {
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

    fn into_rows(self) -> Vec<LinkRow> {
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

/// Reads one line of at most [`NDJSON_LINE_BYTES_MAX`] bytes into `line` (without the
/// newline). Returns `Ok(None)` at the end, `Ok(Some(false))` for a line that was too long
/// (its bytes are skipped).
fn read_line_bounded(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(any.then_some(!too_long));
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > NDJSON_LINE_BYTES_MAX {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let consumed = done.unwrap_or(buf.len());
        input.consume(consumed);
        if done.is_some() {
            return Ok(Some(!too_long));
        }
    }
}

fn report_from_ndjson(
    mut input: impl BufRead,
    source: &str,
    w: &Wanted,
    now_ns: i64,
) -> Result<Report> {
    let mut r = Report {
        source: source.to_string(),
        format: "ndjson",
        age_reference_ns: now_ns,
        ..Report::default()
    };
    let mut types: HashMap<EntryType, TypeRow> = HashMap::new();
    let mut by_ext: HashMap<Option<String>, GroupRow<Option<String>>> = HashMap::new();
    let mut by_uid: HashMap<u32, GroupRow<u32>> = HashMap::new();
    let mut by_gid: HashMap<u32, GroupRow<u32>> = HashMap::new();
    let mut largest: TopN<BySizeDesc> = TopN::new(w.top);
    let mut oldest: TopN<ByMtime> = TopN::new(w.top);
    let mut links = MostLinks::new(w.top);
    let mut sizes = [Bucket::default(); SIZE_BUCKETS];
    let mut ages = [Bucket::default(); AGE_BUCKETS.len()];
    let mut line = Vec::new();
    let mut line_number = 0u64;
    while let Some(ok) =
        read_line_bounded(&mut input, &mut line).with_context(|| format!("reading {source}"))?
    {
        line_number += 1;
        if !ok {
            r.malformed_lines += 1;
            continue;
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) if !t.trim().is_empty() => t,
            Ok(_) => continue,
            Err(_) => {
                r.malformed_lines += 1;
                continue;
            }
        };
        let rec = match EntryRecord::from_json(text) {
            Ok(rec) => rec,
            Err(e) => {
                if r.malformed_lines == 0 {
                    eprintln!("nfs-walker: {source}:{line_number}: {e}");
                }
                r.malformed_lines += 1;
                continue;
            }
        };
        let a = &rec.attrs;
        let t = types.entry(a.kind).or_insert_with(|| TypeRow {
            kind: a.kind.as_str().to_string(),
            ..TypeRow::default()
        });
        t.entries += 1;
        t.bytes = t.bytes.saturating_add(a.size);
        t.used = t.used.saturating_add(a.used);
        r.summary.depth_max = r.summary.depth_max.max(u64::from(rec.depth));
        r.summary.depth_sum = r.summary.depth_sum.saturating_add(u64::from(rec.depth));
        if w.by_uid {
            add_group(&mut by_uid, a.uid, a.size, a.used);
        }
        if w.by_gid {
            add_group(&mut by_gid, a.gid, a.size, a.used);
        }
        if w.most_links && a.kind != EntryType::Dir && a.nlink > 1 {
            links.add(a.fsid, a.fileid, a.nlink, &rec.path);
        }
        if a.kind != EntryType::File {
            continue;
        }
        if w.by_extension {
            let name = split_parent(&rec.path).1;
            let ext = extension_of(name).map(|e| e.into_owned());
            add_group(&mut by_ext, ext, a.size, a.used);
        }
        let key = || FileRowKey {
            size: a.size,
            used: a.used,
            mtime_ns: a.mtime_ns,
            uid: a.uid,
            gid: a.gid,
        };
        if w.largest_files
            && largest.admits(|worst| (std::cmp::Reverse(a.size), &rec.path) < (worst.0, &worst.1))
        {
            largest.push(BySizeDesc(
                std::cmp::Reverse(a.size),
                rec.path.clone(),
                key(),
            ));
        }
        if w.oldest_files && oldest.admits(|worst| (a.mtime_ns, &rec.path) < (worst.0, &worst.1)) {
            oldest.push(ByMtime(a.mtime_ns, rec.path.clone(), key()));
        }
        add(&mut sizes[size_bucket(a.size)], a.size);
        add(&mut ages[age_bucket(now_ns, a.mtime_ns)], a.size);
    }
    let s = &mut r.summary;
    for t in types.into_values() {
        s.entries += t.entries;
        s.bytes = s.bytes.saturating_add(t.bytes);
        s.used = s.used.saturating_add(t.used);
        s.by_type.push(t);
    }
    sort_types(&mut s.by_type);
    if w.by_extension {
        r.by_extension = Some(top_groups(by_ext, w.top));
    }
    if w.by_uid {
        r.by_uid = Some(top_groups(by_uid, w.top));
    }
    if w.by_gid {
        r.by_gid = Some(top_groups(by_gid, w.top));
    }
    if w.largest_files {
        r.largest_files = Some(
            largest
                .into_sorted()
                .into_iter()
                .map(|k| file_row(k.1, k.2))
                .collect(),
        );
    }
    if w.oldest_files {
        r.oldest_files = Some(
            oldest
                .into_sorted()
                .into_iter()
                .map(|k| file_row(k.1, k.2))
                .collect(),
        );
    }
    if w.most_links {
        r.most_links = Some(links.into_rows());
    }
    if w.size_histogram {
        r.size_histogram = Some(sizes.to_vec());
    }
    if w.age_histogram {
        r.age_histogram = Some(ages.to_vec());
    }
    Ok(r)
}

// ---- output ----

/// A path for a terminal: valid UTF-8 as is, with control characters, backslashes and
/// invalid bytes escaped (`\n`, `\\`, `\xff`), so one entry is one line and bytes are exact.
fn display_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The label of a size bucket's lower bound: exact powers of two (`0`, `1 B`, `4 KiB`).
fn pow2_label(k: u32) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    format!("{} {}", 1u64 << (k % 10), UNITS[(k / 10) as usize])
}

fn size_bucket_label(i: usize) -> String {
    match i {
        0 => "0 B".to_string(),
        64 => format!("≥ {}", pow2_label(63)),
        _ => format!("{} – {}", pow2_label(i as u32 - 1), pow2_label(i as u32)),
    }
}

fn format_time_ns(ns: i64) -> String {
    format!("{} UTC", super::format_utc(ns.div_euclid(NS_PER_S)))
}

/// A text table; `aligns` has one letter per column: `l` left, `r` right. A left-aligned
/// last column is not padded (paths go last, so long ones do not widen the table).
struct Table {
    headers: Vec<&'static str>,
    aligns: &'static [u8],
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: Vec<&'static str>, aligns: &'static str) -> Self {
        Table {
            headers,
            aligns: aligns.as_bytes(),
            rows: Vec::new(),
        }
    }

    fn render(&self, out: &mut String) {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>, out: &mut String| {
            let mut s = String::new();
            for (i, cell) in cells.iter().enumerate().take(n) {
                let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
                s.push_str("  ");
                if self.aligns.get(i) == Some(&b'r') {
                    s.push_str(&pad);
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    if i + 1 < n {
                        s.push_str(&pad);
                    }
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(self.headers.clone(), out);
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect(), out);
        }
    }
}

fn render_text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let s = &r.summary;
    match &r.scan {
        Some(m) => {
            let _ = writeln!(o, "{} ({}): {}", r.source, r.format, m.url);
            let mut line = format!("  {}, started {}", m.status, format_time_ns(m.started_ns));
            if let Some(f) = m.finished_ns {
                let secs = (f - m.started_ns) as f64 / 1e9;
                let _ = write!(line, ", {secs:.2} s");
                if secs > 0.0 {
                    let n = m.entries.unwrap_or(s.entries);
                    let _ = write!(line, ", {:.0} entries/s", n as f64 / secs);
                }
            }
            if let Some(e) = m.errors {
                let _ = write!(line, ", {e} errors");
            }
            let _ = writeln!(o, "{line}");
            if let Some(msg) = &m.message {
                let _ = writeln!(o, "  {msg}");
            }
            if m.status == "running" {
                // Rows are written into the file only when the scan ends.
                let _ = writeln!(
                    o,
                    "  not finished: the scan is still going, or it was killed or its \
                     database could not be written (rows are added when a scan ends)"
                );
            }
        }
        None => {
            let _ = writeln!(o, "{} ({}; no scan duration in NDJSON)", r.source, r.format);
        }
    }
    let depth_mean = if s.entries > 0 {
        s.depth_sum as f64 / s.entries as f64
    } else {
        0.0
    };
    let _ = writeln!(
        o,
        "{} entries, {} ({} used), depth max {}, mean {:.1}",
        s.entries,
        human_bytes(s.bytes),
        human_bytes(s.used),
        s.depth_max,
        depth_mean
    );
    let mut t = Table::new(vec!["type", "entries", "size", "used"], "lrrr");
    for row in &s.by_type {
        t.rows.push(vec![
            row.kind.clone(),
            row.entries.to_string(),
            human_bytes(row.bytes),
            human_bytes(row.used),
        ]);
    }
    t.render(&mut o);
    let group_table =
        |title: &str, key: &'static str, rows: Vec<(String, u64, u64, u64)>, o: &mut String| {
            let _ = writeln!(o, "\n{title}");
            let mut t = Table::new(vec![key, "entries", "size", "used"], "lrrr");
            for (k, entries, bytes, used) in rows {
                t.rows.push(vec![
                    k,
                    entries.to_string(),
                    human_bytes(bytes),
                    human_bytes(used),
                ]);
            }
            t.render(o);
        };
    if let Some(rows) = &r.by_extension {
        group_table(
            "files by extension (by size)",
            "extension",
            rows.iter()
                .map(|g| {
                    (
                        g.key.clone().unwrap_or_else(|| "(none)".into()),
                        g.entries,
                        g.bytes,
                        g.used,
                    )
                })
                .collect(),
            &mut o,
        );
    }
    for (title, key, rows) in [
        ("entries by owner (by size)", "uid", &r.by_uid),
        ("entries by group (by size)", "gid", &r.by_gid),
    ] {
        if let Some(rows) = rows {
            group_table(
                title,
                key,
                rows.iter()
                    .map(|g| (g.key.to_string(), g.entries, g.bytes, g.used))
                    .collect(),
                &mut o,
            );
        }
    }
    let file_table = |title: &str, rows: &[FileRow], o: &mut String| {
        let _ = writeln!(o, "\n{title}");
        let mut t = Table::new(vec!["size", "used", "modified", "uid", "path"], "rrlrl");
        for f in rows {
            t.rows.push(vec![
                human_bytes(f.size),
                human_bytes(f.used),
                super::format_utc(f.mtime_ns.div_euclid(NS_PER_S)),
                f.uid.to_string(),
                display_path(&f.path),
            ]);
        }
        t.render(o);
    };
    if let Some(rows) = &r.largest_files {
        file_table("largest files", rows, &mut o);
    }
    if let Some(rows) = &r.oldest_files {
        file_table("oldest files (by modification time)", rows, &mut o);
    }
    for (title, rows) in [
        (
            "largest directories by recursive size",
            &r.largest_dirs_by_bytes,
        ),
        (
            "largest directories by recursive entry count",
            &r.largest_dirs_by_entries,
        ),
    ] {
        if let Some(rows) = rows {
            let _ = writeln!(o, "\n{title}");
            let mut t = Table::new(vec!["size", "entries", "path"], "rrl");
            for d in rows {
                t.rows.push(vec![
                    human_bytes(d.recursive_bytes),
                    d.recursive_entries.to_string(),
                    display_path(&d.path),
                ]);
            }
            t.render(&mut o);
        }
    }
    if let Some(rows) = &r.most_links {
        let _ = writeln!(o, "\nmost hard links (one name of each)");
        let mut t = Table::new(vec!["links", "fileid", "path"], "rrl");
        for l in rows {
            t.rows.push(vec![
                l.nlink.to_string(),
                l.fileid.to_string(),
                display_path(&l.path),
            ]);
        }
        t.render(&mut o);
    }
    if let Some(buckets) = &r.size_histogram {
        let _ = writeln!(o, "\nfile sizes");
        let mut t = Table::new(vec!["size", "files", "total"], "lrr");
        let used: Vec<usize> = (0..buckets.len())
            .filter(|&i| buckets[i].files > 0)
            .collect();
        if let (Some(&lo), Some(&hi)) = (used.first(), used.last()) {
            for (i, b) in buckets.iter().enumerate().take(hi + 1).skip(lo) {
                t.rows.push(vec![
                    size_bucket_label(i),
                    b.files.to_string(),
                    human_bytes(b.bytes),
                ]);
            }
        }
        t.render(&mut o);
    }
    if let Some(buckets) = &r.age_histogram {
        let _ = writeln!(
            o,
            "\nfile ages (modification time before {})",
            format_time_ns(r.age_reference_ns)
        );
        let mut t = Table::new(vec!["age", "files", "total"], "lrr");
        for (label, b) in AGE_BUCKETS.iter().zip(buckets) {
            t.rows.push(vec![
                label.to_string(),
                b.files.to_string(),
                human_bytes(b.bytes),
            ]);
        }
        t.render(&mut o);
    }
    o
}

/// A path as JSON fields: `path` (lossy where not UTF-8) and `path_b64` with the exact bytes.
fn path_json(obj: &mut serde_json::Map<String, Value>, path: &[u8]) {
    obj.insert(
        "path".into(),
        Value::String(String::from_utf8_lossy(path).into_owned()),
    );
    if std::str::from_utf8(path).is_err() {
        obj.insert(
            "path_b64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(path)),
        );
    }
}

fn with_path(path: &[u8], v: Value) -> Value {
    let mut obj = match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    path_json(&mut obj, path);
    Value::Object(obj)
}

fn report_json(r: &Report) -> Value {
    let s = &r.summary;
    let mut out = serde_json::Map::new();
    out.insert("source".into(), json!(r.source));
    out.insert("format".into(), json!(r.format));
    out.insert(
        "scan".into(),
        match &r.scan {
            Some(m) => json!({
                "url": m.url,
                "status": m.status,
                "started_ns": m.started_ns,
                "finished_ns": m.finished_ns,
                "duration_s": m.finished_ns.map(|f| (f - m.started_ns) as f64 / 1e9),
                "entries_per_s": m.finished_ns.and_then(|f| {
                    let secs = (f - m.started_ns) as f64 / 1e9;
                    (secs > 0.0).then(|| m.entries.unwrap_or(s.entries) as f64 / secs)
                }),
                "errors": m.errors,
                "message": m.message,
            }),
            None => Value::Null,
        },
    );
    out.insert(
        "summary".into(),
        json!({
            "entries": s.entries,
            "bytes": s.bytes,
            "used": s.used,
            "depth_max": s.depth_max,
            "depth_mean": if s.entries > 0 { s.depth_sum as f64 / s.entries as f64 } else { 0.0 },
            "by_type": s.by_type.iter().map(|t| json!({
                "type": t.kind, "entries": t.entries, "bytes": t.bytes, "used": t.used,
            })).collect::<Vec<_>>(),
        }),
    );
    if let Some(rows) = &r.by_extension {
        out.insert(
            "by_extension".into(),
            rows.iter()
                .map(|g| json!({"extension": g.key, "files": g.entries, "bytes": g.bytes, "used": g.used}))
                .collect(),
        );
    }
    for (key, name, rows) in [("by_uid", "uid", &r.by_uid), ("by_gid", "gid", &r.by_gid)] {
        if let Some(rows) = rows {
            out.insert(
                key.into(),
                rows.iter()
                    .map(|g| json!({name: g.key, "entries": g.entries, "bytes": g.bytes, "used": g.used}))
                    .collect(),
            );
        }
    }
    let files = |rows: &[FileRow]| -> Value {
        rows.iter()
            .map(|f| {
                with_path(
                    &f.path,
                    json!({"size": f.size, "used": f.used, "mtime_ns": f.mtime_ns, "uid": f.uid, "gid": f.gid}),
                )
            })
            .collect()
    };
    if let Some(rows) = &r.largest_files {
        out.insert("largest_files".into(), files(rows));
    }
    if let Some(rows) = &r.oldest_files {
        out.insert("oldest_files".into(), files(rows));
    }
    let dirs = |rows: &[DirRow]| -> Value {
        rows.iter()
            .map(|d| {
                with_path(
                    &d.path,
                    json!({"recursive_entries": d.recursive_entries, "recursive_bytes": d.recursive_bytes}),
                )
            })
            .collect()
    };
    if let Some(rows) = &r.largest_dirs_by_bytes {
        out.insert("largest_dirs_by_bytes".into(), dirs(rows));
    }
    if let Some(rows) = &r.largest_dirs_by_entries {
        out.insert("largest_dirs_by_entries".into(), dirs(rows));
    }
    if let Some(rows) = &r.most_links {
        out.insert(
            "most_links".into(),
            rows.iter()
                .map(|l| {
                    with_path(
                        &l.path,
                        json!({"nlink": l.nlink, "fsid": l.fsid, "fileid": l.fileid}),
                    )
                })
                .collect(),
        );
    }
    if let Some(buckets) = &r.size_histogram {
        out.insert(
            "size_histogram".into(),
            buckets
                .iter()
                .enumerate()
                .filter(|(_, b)| b.files > 0)
                .map(|(i, b)| {
                    let (min, max_exclusive) = match i {
                        0 => (0u64, Some(1u64)),
                        64 => (1u64 << 63, None),
                        _ => (1u64 << (i - 1), Some(1u64 << i)),
                    };
                    json!({"min": min, "max_exclusive": max_exclusive, "files": b.files, "bytes": b.bytes})
                })
                .collect(),
        );
    }
    if let Some(buckets) = &r.age_histogram {
        out.insert("age_reference_ns".into(), json!(r.age_reference_ns));
        out.insert(
            "age_histogram".into(),
            AGE_BUCKETS
                .iter()
                .zip(buckets)
                .map(|(label, b)| json!({"age": label, "files": b.files, "bytes": b.bytes}))
                .collect(),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(size_bucket(0), 0);
        assert_eq!(size_bucket(1), 1);
        assert_eq!(size_bucket(2), 2);
        assert_eq!(size_bucket(3), 2);
        assert_eq!(size_bucket(4096), 13);
        assert_eq!(size_bucket(u64::MAX), 64);
        assert_eq!(size_bucket_label(13), "4 KiB – 8 KiB");
        assert_eq!(size_bucket_label(11), "1 KiB – 2 KiB");
        let now = 1000 * DAY_NS;
        assert_eq!(AGE_BUCKETS[age_bucket(now, now + 1)], "future");
        assert_eq!(AGE_BUCKETS[age_bucket(now, now)], "<1d");
        assert_eq!(AGE_BUCKETS[age_bucket(now, now - DAY_NS)], "<1w");
        assert_eq!(AGE_BUCKETS[age_bucket(now, now - 29 * DAY_NS)], "<1m");
        assert_eq!(AGE_BUCKETS[age_bucket(now, now - 364 * DAY_NS)], "<1y");
        assert_eq!(AGE_BUCKETS[age_bucket(now, i64::MIN)], "older");
    }

    #[test]
    fn most_links_matches_a_full_grouping() {
        // Inodes with names in an order that makes the smallest path arrive late.
        let names: Vec<(u64, u32, &[u8])> = vec![
            (1, 3, b"z1"),
            (2, 5, b"y2"),
            (3, 3, b"x3"),
            (1, 3, b"a1"),
            (4, 2, b"w4"),
            (3, 3, b"b3"),
            (2, 5, b"c2"),
            (4, 2, b"a4"),
            (5, 3, b"m5"),
        ];
        let mut full: HashMap<u64, (u32, Vec<u8>)> = HashMap::new();
        for &(id, n, p) in &names {
            let e = full.entry(id).or_insert((n, p.to_vec()));
            e.1 = e.1.clone().min(p.to_vec());
        }
        let mut expected: Vec<(std::cmp::Reverse<u32>, Vec<u8>)> = full
            .values()
            .map(|(n, p)| (std::cmp::Reverse(*n), p.clone()))
            .collect();
        expected.sort();
        for limit in 1..=5 {
            let mut m = MostLinks::new(limit);
            for &(id, n, p) in &names {
                m.add(0, id, n, p);
            }
            let got: Vec<(std::cmp::Reverse<u32>, Vec<u8>)> = m
                .into_rows()
                .into_iter()
                .map(|r| (std::cmp::Reverse(r.nlink), r.path))
                .collect();
            assert_eq!(got, expected[..limit], "limit {limit}");
        }
    }

    #[test]
    fn bounded_lines_and_escaped_paths() {
        let long = vec![b'x'; NDJSON_LINE_BYTES_MAX + 10];
        let mut data = b"short\n".to_vec();
        data.extend_from_slice(&long);
        data.extend_from_slice(b"\nlast");
        let mut input = BufReader::with_capacity(4096, &data[..]);
        let mut line = Vec::new();
        assert_eq!(
            read_line_bounded(&mut input, &mut line).unwrap(),
            Some(true)
        );
        assert_eq!(line, b"short");
        assert_eq!(
            read_line_bounded(&mut input, &mut line).unwrap(),
            Some(false)
        );
        assert_eq!(
            read_line_bounded(&mut input, &mut line).unwrap(),
            Some(true)
        );
        assert_eq!(line, b"last");
        assert_eq!(read_line_bounded(&mut input, &mut line).unwrap(), None);
        assert_eq!(display_path(b"a\nb\\c\xffd\x01"), "a\\nb\\\\c\\xffd\\x01");
    }
}

/// `--duplicates`, `--file-types`, `--hardlinks`: one pass over NDJSON records.
fn content_reports(args: &StatsArgs) -> Result<i32> {
    use nfs_walker::content::reports::{ContentReports, ContentReportsWanted};
    let is_stdin = args.file.as_os_str() == "-";
    if !is_stdin && is_database(&args.file)? {
        bail!(
            "--duplicates, --file-types and --hardlinks read NDJSON scans \
             (nfs-walker scan URL --checksum ALGO -o scan.ndjson)"
        );
    }
    let mut reports = ContentReports::new(ContentReportsWanted {
        duplicates: args.duplicates,
        min_size: args.min_size,
        file_types: args.file_types,
        hardlinks: args.hardlinks,
        top: args.top,
    });
    let mut input: Box<dyn BufRead> = if is_stdin {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let mut line = Vec::new();
    let mut malformed = 0u64;
    while let Some(ok) = read_line_bounded(&mut input, &mut line)? {
        match serde_json::from_slice::<Value>(&line) {
            Ok(v) if ok => reports.add(&v),
            _ => malformed += 1,
        }
    }
    if malformed > 0 {
        eprintln!("nfs-walker: skipped {malformed} lines that are not entry records");
    }
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&reports.to_json())?;
        s.push('\n');
        s
    } else {
        reports.render_text()
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("writing the report")?,
    }
    Ok(0)
}
