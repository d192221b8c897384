//! The scan database: a writer thread that loads entry batches into SQLite.
//!
//! SQLite (rusqlite) creates the file, its schema and the `scan` row; the writer then appends
//! the `entries` and `errors` rows straight into b-tree pages ([`crate::output::btree`]), in
//! rowid order, at the cost of encoding a record and copying it into a page. At the end it
//! sorts the index keys it collected (bounded memory, spilling to a temporary file), writes
//! the indexes and the `dirs` table the same way, and hands the file back to SQLite for the
//! last rows and the `scan` row's totals, in one transaction with the journal on, synced.
//! Until then the file is the valid, empty database SQLite wrote, marked `running`.
//!
//! Entries arrive from several threads in any order, so a child may arrive before its parent
//! directory. The writer assigns every id itself and keeps one small record per directory,
//! keyed by a 128-bit keyed hash of its path: a child whose parent has not arrived yet reserves
//! the parent's id, which the parent takes when it comes. `parent_id` is thus known when a row
//! is written, and per-directory totals (the `dirs` table) are summed as rows go by, with no
//! pass over the table afterwards. A parent arriving after rows with larger ids cannot be
//! appended in rowid order: those few rows wait (in memory, then in a temporary file) and
//! SQLite inserts them in the final transaction. The memory this takes is about 100 bytes per
//! directory, the same order as the scan's own set of visited directories.
//!
//! The schema is documented in `docs/database.md`; [`SCHEMA_VERSION`] is stored as
//! `PRAGMA user_version` and changes whenever the schema does.

use crate::output::btree::{
    decode_record, encode_record, BtreeError, IndexBuilder, PageFile, TableBuilder, Value,
};
use crate::output::extsort::ExternalSorter;
pub use crate::output::schema::{
    extension_of, split_parent, APPLICATION_ID, EXTENSION_BYTES_MAX, SCHEMA_VERSION, SQLITE_HEADER,
};
use crate::output::schema::{INDEX_SQL, INSERT_ENTRY_SQL, SCHEMA_SQL};
use crate::output::{OutputBatch, CHANNEL_BATCHES_MAX};
use crate::path_error::PathError;
use crate::record::{EntryAttrs, EntryRef, EntryType};
use crossbeam_channel::{bounded, Receiver, Sender};
use rusqlite::{Connection, Statement};
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// Directories the writer tracks at most (about 100 bytes each).
pub const DIRS_MAX: usize = 200_000_000;
/// Memory for sorting the parent index's keys (16 bytes a row) before runs spill to disk.
const PARENT_KEYS_MEMORY_BYTES: usize = 64 << 20;
/// Memory for sorting directory paths before runs spill to disk.
const DIR_PATH_KEYS_MEMORY_BYTES: usize = 32 << 20;
/// Page size: larger pages make fewer, larger writes and a shallower table b-tree.
const PAGE_SIZE_BYTES: u32 = 65536;

/// Entries on their way to the database, copied by the scanning threads into one buffer per
/// batch (no allocation per entry); the writer encodes each row's record straight from it.
#[derive(Debug, Default)]
pub struct RowBatch {
    /// Per row: the path, then the symlink target if any.
    bytes: Vec<u8>,
    rows: Vec<RowMeta>,
}

#[derive(Debug, Clone, Copy)]
struct RowMeta {
    start: usize,
    path_len: u32,
    /// `u32::MAX` where there is no target.
    target_len: u32,
    depth: u32,
    /// Whether the path is valid UTF-8 (stored as TEXT, else as a BLOB).
    path_is_utf8: bool,
    /// Length of the extension after the target; `u8::MAX` where there is none.
    extension_len: u8,
    attrs: EntryAttrs,
}

/// One row of a [`RowBatch`], with what the scanning thread worked out.
struct RowRef<'a> {
    entry: EntryRef<'a>,
    path_is_utf8: bool,
    extension: Option<&'a [u8]>,
}

const NO_TARGET: u32 = u32::MAX;

impl RowBatch {
    pub fn with_capacity(bytes: usize, rows: usize) -> Self {
        RowBatch {
            bytes: Vec::with_capacity(bytes),
            rows: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes the batch holds.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Copies an entry in, with the checks the writer would otherwise make on its one thread
    /// (UTF-8, extension).
    pub fn push(&mut self, e: &EntryRef<'_>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(e.path);
        let target_len = match e.target {
            Some(t) => {
                self.bytes.extend_from_slice(t);
                t.len() as u32
            }
            None => NO_TARGET,
        };
        let extension_len = match e.attrs.kind {
            EntryType::File => match extension_of(split_parent(e.path).1) {
                Some(x) => {
                    self.bytes.extend_from_slice(x.as_bytes());
                    x.len() as u8
                }
                None => u8::MAX,
            },
            _ => u8::MAX,
        };
        self.rows.push(RowMeta {
            start,
            path_len: e.path.len() as u32,
            target_len,
            depth: e.depth,
            path_is_utf8: std::str::from_utf8(e.path).is_ok(),
            extension_len,
            attrs: *e.attrs,
        });
    }

    fn iter(&self) -> impl Iterator<Item = RowRef<'_>> {
        self.rows.iter().map(|m| {
            let path_end = m.start + m.path_len as usize;
            let (target, target_end) = if m.target_len == NO_TARGET {
                (None, path_end)
            } else {
                let end = path_end + m.target_len as usize;
                (Some(&self.bytes[path_end..end]), end)
            };
            RowRef {
                entry: EntryRef {
                    path: &self.bytes[m.start..path_end],
                    attrs: &m.attrs,
                    depth: m.depth,
                    target,
                },
                path_is_utf8: m.path_is_utf8,
                extension: (m.extension_len != u8::MAX)
                    .then(|| &self.bytes[target_end..target_end + usize::from(m.extension_len)]),
            }
        })
    }
}

#[derive(Debug, Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Btree(#[from] BtreeError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A temporary file of the writer's (sorting index keys, holding late rows).
    #[error("temporary file for {what}: {source}")]
    TempFile {
        what: &'static str,
        source: io::Error,
    },
    #[error("{0} exists and is not an nfs-walker scan database; remove it or choose another name")]
    NotADatabase(PathBuf),
    #[error("{0} exists and is not a regular file")]
    NotARegularFile(PathBuf),
    #[error("more than {DIRS_MAX} directories")]
    TooManyDirs,
    #[error("cannot start the database writer: {0}")]
    Thread(io::Error),
    #[error("the database writer thread panicked")]
    Panicked,
}

/// What is known of a scan when it starts.
#[derive(Debug, Clone)]
pub struct ScanInfo {
    pub url: String,
    /// The server's host as the URL names it.
    pub server: String,
    /// The scan's options as a JSON object.
    pub options_json: String,
    pub started: SystemTime,
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    Completed,
    /// Stopped by a signal: the rows are what had been received.
    Interrupted,
    /// Stopped by an error (see `scan.message`).
    Failed,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Completed => "completed",
            ScanStatus::Interrupted => "interrupted",
            ScanStatus::Failed => "failed",
        }
    }
}

/// What is known of a scan when it ends.
#[derive(Debug, Clone)]
pub struct ScanEnd {
    pub status: ScanStatus,
    pub finished: SystemTime,
    /// Why the scan failed, where it did.
    pub message: Option<String>,
    pub threads: usize,
    pub connections: usize,
    pub backend: String,
}

/// What the writer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbSummary {
    pub entries: u64,
    pub dirs: u64,
    pub errors: u64,
    /// Directory paths seen twice (the second got an id of its own).
    pub duplicate_dirs: u64,
    /// Directories whose children arrived but which never did themselves; the children's
    /// `parent_id` is NULL.
    pub missing_parents: u64,
    /// Directories that arrived after one of their children (inserted by SQLite at the end,
    /// since their rowid was reserved earlier).
    pub late_rows: u64,
    /// Time from the first batch to the end of the load.
    pub load_time: Duration,
    /// Time of completing the tables and building the indexes.
    pub index_time: Duration,
    /// Time of syncing the pages written, then the final transaction (late rows, the `scan`
    /// row) and its sync.
    pub sync_time: Duration,
    /// Time of everything after the load: indexes, directory totals, the final sync.
    pub finish_time: Duration,
}

/// The database writer thread.
pub struct SqliteWriter {
    handle: JoinHandle<Result<Loader, DbError>>,
}

impl SqliteWriter {
    /// Creates the database at `path` (replacing an earlier scan database there), writes the
    /// `scan` row as `running`, and starts the writer thread. Batchers send to the returned
    /// sender; once every sender is dropped, call [`SqliteWriter::finish`].
    ///
    /// Should writing fail, the writer sets `stop`, so the scan ends instead of running on
    /// with nowhere to put entries.
    pub fn create(
        path: &Path,
        info: &ScanInfo,
        stop: Arc<AtomicBool>,
    ) -> Result<(SqliteWriter, Sender<OutputBatch>), DbError> {
        remove_old_database(path)?;
        let conn = Connection::open(path)?;
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE_BYTES};
             PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA user_version = {SCHEMA_VERSION};
             PRAGMA application_id = {APPLICATION_ID};"
        ))?;
        // The indexes exist from the start (empty): the writer fills them at the end.
        conn.execute_batch(&format!("BEGIN; {SCHEMA_SQL} {INDEX_SQL} COMMIT;"))?;
        conn.execute(
            "INSERT INTO scan (id, url, server, tool_version, options, started_ns, status) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5, 'running')",
            rusqlite::params![
                info.url,
                info.server,
                env!("CARGO_PKG_VERSION"),
                info.options_json,
                unix_ns(info.started),
            ],
        )?;
        let roots = Roots::read(&conn)?;
        conn.close().map_err(|(_, e)| DbError::Sqlite(e))?;
        // From here until the end of the scan, only the writer writes the file.
        let file = PageFile::open(path)?;
        let (tx, rx) = bounded(CHANNEL_BATCHES_MAX);
        let path = path.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("nfs-walker-sqlite".into())
            .spawn(move || load(path, file, roots, rx, &stop))
            .map_err(DbError::Thread)?;
        Ok((SqliteWriter { handle }, tx))
    }

    /// Waits for the load to end (every sender must be dropped), then builds the indexes and
    /// the `dirs` table, records how the scan ended and makes the file durable.
    pub fn finish(self, end: &ScanEnd) -> Result<DbSummary, DbError> {
        let loader = self.handle.join().map_err(|_| DbError::Panicked)??;
        loader.finish(end)
    }
}

/// Removes an earlier database at `path` (and its journal files); refuses anything that is
/// not a regular file or not an nfs-walker scan database, so `-o` cannot clobber the wrong file.
fn remove_old_database(path: &Path) -> Result<(), DbError> {
    let io_err = |source| DbError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(e)),
        Ok(m) if !m.file_type().is_file() => {
            return Err(DbError::NotARegularFile(path.to_path_buf()))
        }
        Ok(m) if m.len() > 0 => {
            // The file header: the magic string, and the application id at offset 68.
            let mut header = [0u8; 72];
            let mut f = std::fs::File::open(path).map_err(io_err)?;
            f.read_exact(&mut header)
                .map_err(|_| DbError::NotADatabase(path.to_path_buf()))?;
            let app_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
            if &header[..16] != SQLITE_HEADER || app_id != APPLICATION_ID {
                return Err(DbError::NotADatabase(path.to_path_buf()));
            }
        }
        Ok(_) => {}
    }
    std::fs::remove_file(path).map_err(io_err)?;
    for suffix in ["-journal", "-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if std::fs::symlink_metadata(&side).is_ok_and(|m| m.file_type().is_file()) {
            std::fs::remove_file(&side).map_err(io_err)?;
        }
    }
    Ok(())
}

fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// SQLite integers are signed 64-bit: sizes beyond that (only a hostile server sends them)
/// are clamped, so sums stay meaningful.
fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Identifiers (fileid, fsid) keep their 64 bits: stored as the signed integer with the same
/// bits.
fn bits_i64(n: u64) -> i64 {
    n as i64
}

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

const NO_PARENT: u32 = u32::MAX;

/// One directory as the writer tracks it.
#[derive(Debug, Clone)]
struct DirAcc {
    id: i64,
    /// Index of the parent in `Loader::dirs`, or [`NO_PARENT`].
    parent: u32,
    depth: u32,
    /// False while only reserved by a child that arrived first.
    arrived: bool,
    direct_entries: u64,
    direct_bytes: u64,
    recursive_entries: u64,
    recursive_bytes: u64,
}

/// Where the writer's b-trees go: the file and the root pages SQLite gave them.
struct Roots {
    entries: u32,
    entries_parent_id: u32,
    entries_dir_path: u32,
    dirs: u32,
    errors: u32,
}

impl Roots {
    fn read(conn: &Connection) -> Result<Roots, DbError> {
        let root = |name: &str| -> Result<u32, DbError> {
            Ok(conn.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [name],
                |r| r.get(0),
            )?)
        };
        Ok(Roots {
            entries: root("entries")?,
            entries_parent_id: root("entries_parent_id")?,
            entries_dir_path: root("entries_dir_path")?,
            dirs: root("dirs")?,
            errors: root("errors")?,
        })
    }
}

/// A directory whose id a child reserved before it arrived: its row cannot be appended in
/// rowid order, so SQLite inserts it at the end (with its index entries).
struct LateRow {
    id: i64,
    /// The whole `entries` record.
    record: Vec<u8>,
}

/// Late rows kept in memory at most; the rest wait in a temporary file. (Few directories
/// arrive after a child, but a limit holds whatever the tree and the threads do.)
const LATE_ROWS_IN_MEMORY_MAX: usize = if cfg!(test) { 4 } else { 100_000 };

/// The late rows, in arrival order: in memory, then in a temporary file (each as its id, the
/// record's length and the record).
#[derive(Default)]
struct LateRows {
    in_memory: Vec<LateRow>,
    spill: Option<io::BufWriter<std::fs::File>>,
    spilled: u64,
}

impl LateRows {
    fn len(&self) -> u64 {
        self.in_memory.len() as u64 + self.spilled
    }

    fn push(&mut self, id: i64, record: &[u8]) -> Result<(), DbError> {
        if self.in_memory.len() < LATE_ROWS_IN_MEMORY_MAX {
            self.in_memory.push(LateRow {
                id,
                record: record.to_vec(),
            });
            return Ok(());
        }
        let spill = match &mut self.spill {
            Some(f) => f,
            None => self
                .spill
                .insert(io::BufWriter::new(tempfile::tempfile().map_err(spill_err)?)),
        };
        spill.write_all(&id.to_be_bytes()).map_err(spill_err)?;
        spill
            .write_all(&(record.len() as u64).to_be_bytes())
            .map_err(spill_err)?;
        spill.write_all(record).map_err(spill_err)?;
        self.spilled += 1;
        Ok(())
    }

    /// Calls `f` with every row, in the order they came.
    fn for_each(self, mut f: impl FnMut(&LateRow) -> Result<(), DbError>) -> Result<(), DbError> {
        for row in &self.in_memory {
            f(row)?;
        }
        let Some(spill) = self.spill else {
            return Ok(());
        };
        let mut file = spill.into_inner().map_err(|e| spill_err(e.into_error()))?;
        file.seek(io::SeekFrom::Start(0)).map_err(spill_err)?;
        let mut reader = io::BufReader::new(file);
        let mut row = LateRow {
            id: 0,
            record: Vec::new(),
        };
        for _ in 0..self.spilled {
            let mut word = [0u8; 8];
            reader.read_exact(&mut word).map_err(spill_err)?;
            row.id = i64::from_be_bytes(word);
            reader.read_exact(&mut word).map_err(spill_err)?;
            let len = usize::try_from(u64::from_be_bytes(word)).map_err(|_| {
                spill_err(io::Error::new(io::ErrorKind::InvalidData, "bad late row"))
            })?;
            row.record.resize(len, 0);
            reader.read_exact(&mut row.record).map_err(spill_err)?;
            f(&row)?;
        }
        Ok(())
    }
}

fn spill_err(e: io::Error) -> DbError {
    DbError::TempFile {
        what: "late rows",
        source: e,
    }
}

/// The writer's result: the file with the tables filled so far, and what was counted.
struct Loader {
    path: PathBuf,
    state: LoadState,
}

/// The b-trees the writer builds, and the file they go to.
struct Tables {
    file: PageFile,
    roots: Roots,
    entries: TableBuilder,
    errors: TableBuilder,
    /// (parent id, id) of every appended row, for the `entries_parent_id` index.
    parent_keys: ExternalSorter<u128>,
    /// The paths of appended directories, for the `entries_dir_path` index.
    dir_path_keys: ExternalSorter<Vec<u8>>,
}

/// What the writer counts and tracks while loading.
struct LoadState {
    tables: Tables,
    late_rows: LateRows,
    /// The largest id appended to the entries table.
    last_appended: i64,
    record: Vec<u8>,
    path_keys: (RandomState, RandomState),
    dir_index: HashMap<u128, u32, BuildHasherDefault<PassThroughHasher>>,
    dirs: Vec<DirAcc>,
    next_id: i64,
    /// The last parent looked up: consecutive entries mostly share one.
    last_parent: Vec<u8>,
    last_parent_index: u32,
    entries: u64,
    files: u64,
    bytes: u64,
    used: u64,
    errors: u64,
    duplicate_dirs: u64,
    load_time: Duration,
}

/// The writer thread: appends every batch until all senders are gone. After an error it
/// keeps draining the channel so the scan is never blocked on a dead writer.
fn load(
    path: PathBuf,
    file: PageFile,
    roots: Roots,
    rx: Receiver<OutputBatch>,
    stop: &AtomicBool,
) -> Result<Loader, DbError> {
    let mut state = LoadState {
        tables: Tables {
            entries: TableBuilder::new(&file, roots.entries),
            errors: TableBuilder::new(&file, roots.errors),
            file,
            roots,
            parent_keys: ExternalSorter::new(PARENT_KEYS_MEMORY_BYTES),
            dir_path_keys: ExternalSorter::new(DIR_PATH_KEYS_MEMORY_BYTES),
        },
        late_rows: LateRows::default(),
        last_appended: 0,
        record: Vec::with_capacity(512),
        path_keys: (RandomState::new(), RandomState::new()),
        dir_index: HashMap::default(),
        dirs: Vec::new(),
        next_id: 1,
        last_parent: Vec::new(),
        last_parent_index: NO_PARENT,
        entries: 0,
        files: 0,
        bytes: 0,
        used: 0,
        errors: 0,
        duplicate_dirs: 0,
        load_time: Duration::ZERO,
    };
    match load_batches(&mut state, &rx) {
        Ok(()) => Ok(Loader { path, state }),
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            for _ in rx {}
            Err(e)
        }
    }
}

fn load_batches(state: &mut LoadState, rx: &Receiver<OutputBatch>) -> Result<(), DbError> {
    let mut started: Option<Instant> = None;
    for batch in rx {
        let t0 = *started.get_or_insert_with(Instant::now);
        match batch {
            OutputBatch::Rows(rows) => {
                for row in rows.iter() {
                    state.insert_entry(&row)?;
                }
            }
            OutputBatch::Errors(errs) => {
                for e in &errs {
                    state.insert_error(e)?;
                }
            }
            OutputBatch::Bytes(_) | OutputBatch::TasksDone(_) => {}
        }
        state.load_time = t0.elapsed();
    }
    Ok(())
}

/// TEXT where the bytes are valid UTF-8, else a BLOB of the exact bytes.
fn text_or_blob(bytes: &[u8]) -> Value<'_> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Value::Text(bytes),
        Err(_) => Value::Blob(bytes),
    }
}

/// The sort key of a directory path in `entries_dir_path`'s order (SQLite's: TEXT before
/// BLOB, then bytewise with the shorter first, then the rowid), as bytes compared bytewise.
/// Bytes 0 are escaped as 0 1 and the path ends with 0 0, so a prefix sorts first.
fn dir_path_key(path: &[u8], path_is_utf8: bool, id: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(path.len() + 11);
    key.push(u8::from(!path_is_utf8));
    for &b in path {
        key.push(b);
        if b == 0 {
            key.push(1);
        }
    }
    key.extend_from_slice(&[0, 0]);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The index record a [`dir_path_key`] stands for.
fn dir_path_record(key: &[u8], path: &mut Vec<u8>, record: &mut Vec<u8>) -> Option<()> {
    let (&blob, rest) = key.split_first()?;
    let (body, id) = rest.split_at_checked(rest.len().checked_sub(8)?)?;
    let id = i64::from_be_bytes(id.try_into().ok()?);
    path.clear();
    let mut bytes = body.strip_suffix(&[0, 0])?.iter();
    while let Some(&b) = bytes.next() {
        path.push(b);
        if b == 0 {
            bytes.next()?;
        }
    }
    let value = if blob == 1 {
        Value::Blob(path)
    } else {
        Value::Text(path)
    };
    record.clear();
    encode_record(&[value, Value::Int(id)], record);
    Some(())
}

impl LoadState {
    fn alloc_id(&mut self) -> i64 {
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
            self.dir_index.insert(k, index);
        }
        Ok(index)
    }

    /// The index of the directory at `path`, reserving it if it has not arrived yet.
    fn parent_index(&mut self, path: &[u8], depth: u32) -> Result<u32, DbError> {
        if self.last_parent_index != NO_PARENT && self.last_parent == path {
            return Ok(self.last_parent_index);
        }
        let key = self.path_key(path);
        let index = match self.dir_index.get(&key) {
            Some(&i) => i,
            None => {
                let id = self.alloc_id();
                self.push_dir(
                    Some(key),
                    DirAcc {
                        id,
                        parent: NO_PARENT,
                        depth,
                        arrived: false,
                        direct_entries: 0,
                        direct_bytes: 0,
                        recursive_entries: 0,
                        recursive_bytes: 0,
                    },
                )?
            }
        };
        self.last_parent.clear();
        self.last_parent.extend_from_slice(path);
        self.last_parent_index = index;
        Ok(index)
    }

    /// The id of a directory record: the one its children reserved, or a new one.
    fn dir_id(&mut self, path: &[u8], depth: u32, parent: u32) -> Result<i64, DbError> {
        let key = self.path_key(path);
        let existing = self.dir_index.get(&key).copied();
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
            DirAcc {
                id,
                parent,
                depth,
                arrived: true,
                direct_entries: 0,
                direct_bytes: 0,
                recursive_entries: 0,
                recursive_bytes: 0,
            },
        )?;
        Ok(id)
    }

    fn insert_entry(&mut self, row: &RowRef<'_>) -> Result<(), DbError> {
        let RowRef {
            entry: row,
            path_is_utf8,
            extension,
        } = *row;
        let a = row.attrs;
        let (parent_path, name) = split_parent(row.path);
        let parent = match parent_path {
            Some(p) => self.parent_index(p, row.depth.saturating_sub(1))?,
            None => NO_PARENT,
        };
        let id = if a.kind == EntryType::Dir {
            self.dir_id(row.path, row.depth, parent)?
        } else {
            self.alloc_id()
        };
        let parent_id = if parent == NO_PARENT {
            None
        } else {
            let p = &mut self.dirs[parent as usize];
            p.direct_entries += 1;
            p.direct_bytes = p.direct_bytes.saturating_add(a.size);
            Some(p.id)
        };
        self.entries += 1;
        if a.kind == EntryType::File {
            self.files += 1;
        }
        self.bytes = self.bytes.saturating_add(a.size);
        self.used = self.used.saturating_add(a.used);
        // The name of a UTF-8 path is UTF-8 too: it starts after an ASCII '/'.
        let (name_value, path_value) = if path_is_utf8 {
            (Value::Text(name), Value::Text(row.path))
        } else {
            (text_or_blob(name), Value::Blob(row.path))
        };
        let values = [
            // `id` is the rowid: its column holds NULL.
            Value::Null,
            parent_id.map_or(Value::Null, Value::Int),
            name_value,
            path_value,
            Value::Text(a.kind.as_str().as_bytes()),
            Value::Int(clamp_i64(a.size)),
            Value::Int(clamp_i64(a.used)),
            Value::Int(i64::from(a.mode)),
            Value::Int(i64::from(a.nlink)),
            Value::Int(i64::from(a.uid)),
            Value::Int(i64::from(a.gid)),
            Value::Int(bits_i64(a.fileid)),
            Value::Int(bits_i64(a.fsid)),
            Value::Int(a.atime_ns),
            Value::Int(a.mtime_ns),
            Value::Int(a.ctime_ns),
            Value::Int(i64::from(row.depth)),
            extension.map_or(Value::Null, Value::Text),
            row.target.map_or(Value::Null, text_or_blob),
        ];
        self.record.clear();
        encode_record(&values, &mut self.record);
        if id < self.last_appended {
            return self.late_rows.push(id, &self.record);
        }
        let t = &mut self.tables;
        t.entries.push_record(&mut t.file, id, &self.record)?;
        self.last_appended = id;
        // Parent ids are positive: 0 stands for NULL, which sorts first as in SQLite.
        let parent_key = parent_id.map_or(0, |p| p as u64);
        t.parent_keys
            .push((u128::from(parent_key) << 64) | u128::from(id as u64))
            .map_err(sort_err)?;
        if a.kind == EntryType::Dir {
            t.dir_path_keys
                .push(dir_path_key(row.path, path_is_utf8, id))
                .map_err(sort_err)?;
        }
        Ok(())
    }

    fn insert_error(&mut self, e: &PathError) -> Result<(), DbError> {
        self.errors += 1;
        let values = [
            Value::Null,
            text_or_blob(&e.path),
            Value::Text(e.op.as_bytes()),
            e.status
                .map_or(Value::Null, |s| Value::Text(s.name().as_bytes())),
            Value::Text(e.message.as_bytes()),
        ];
        let t = &mut self.tables;
        t.errors.push(&mut t.file, self.errors as i64, &values)?;
        Ok(())
    }

    /// Sums every directory's subtree into its parent, deepest first.
    fn sum_recursive(&mut self) {
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
}

impl Tables {
    /// Completes the tables and indexes built here (and the `dirs` table, from `dirs`); the
    /// file's header does not count them yet.
    fn finish(self, dirs: &[DirAcc]) -> Result<PageFile, DbError> {
        let Tables {
            mut file,
            roots,
            entries,
            errors,
            parent_keys,
            dir_path_keys,
        } = self;
        entries.finish(&mut file)?;
        errors.finish(&mut file)?;
        let mut record = Vec::with_capacity(256);

        let mut index = IndexBuilder::new(&file, roots.entries_parent_id);
        for key in parent_keys.finish().map_err(sort_err)? {
            let key = key.map_err(sort_err)?;
            let parent = (key >> 64) as i64;
            let parent = if parent == 0 {
                Value::Null
            } else {
                Value::Int(parent)
            };
            record.clear();
            encode_record(&[parent, Value::Int(key as u64 as i64)], &mut record);
            index.push(&mut file, &record)?;
        }
        index.finish(&mut file)?;

        let mut index = IndexBuilder::new(&file, roots.entries_dir_path);
        let mut path = Vec::new();
        for key in dir_path_keys.finish().map_err(sort_err)? {
            let key = key.map_err(sort_err)?;
            dir_path_record(&key, &mut path, &mut record).ok_or_else(|| {
                sort_err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a sorted directory key does not decode",
                ))
            })?;
            index.push(&mut file, &record)?;
        }
        index.finish(&mut file)?;

        // Directory ids were given in the order `dirs` holds them.
        let mut dirs_table = TableBuilder::new(&file, roots.dirs);
        for d in dirs.iter().filter(|d| d.arrived) {
            dirs_table.push(
                &mut file,
                d.id,
                &[
                    Value::Null,
                    Value::Int(clamp_i64(d.direct_entries)),
                    Value::Int(clamp_i64(d.direct_bytes)),
                    Value::Int(clamp_i64(d.recursive_entries)),
                    Value::Int(clamp_i64(d.recursive_bytes)),
                ],
            )?;
        }
        dirs_table.finish(&mut file)?;
        Ok(file)
    }
}

fn sort_err(e: io::Error) -> DbError {
    DbError::TempFile {
        what: "index keys",
        source: e,
    }
}

impl Loader {
    fn finish(self, end: &ScanEnd) -> Result<DbSummary, DbError> {
        let t0 = Instant::now();
        let mut st = self.state;
        st.sum_recursive();
        let file = st.tables.finish(&st.dirs)?;
        let index_time = t0.elapsed();
        let t_sync = Instant::now();
        file.finish()?;
        let mut conn = Connection::open(&self.path)?;
        // The file is written the safe way from here on; the commit syncs it all.
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE;
             PRAGMA synchronous = FULL;",
        )?;
        let tx = conn.transaction()?;
        let late_rows = st.late_rows.len();
        {
            let mut insert_entry = tx.prepare(INSERT_ENTRY_SQL)?;
            st.late_rows.for_each(|late| {
                let values = decode_record(&late.record).ok_or_else(|| {
                    spill_err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a late row does not decode",
                    ))
                })?;
                insert_entry.raw_bind_parameter(1, late.id)?;
                for (i, v) in values.iter().enumerate().skip(1) {
                    bind_value(&mut insert_entry, i + 1, v)?;
                }
                insert_entry.raw_execute()?;
                Ok(())
            })?;
        }
        let mut missing_parents = 0u64;
        {
            let mut orphan =
                tx.prepare("UPDATE entries SET parent_id = NULL WHERE parent_id = ?1")?;
            for d in st.dirs.iter().filter(|d| !d.arrived) {
                missing_parents += 1;
                orphan.execute([d.id])?;
            }
        }
        let dirs = st.dirs.iter().filter(|d| d.arrived).count() as u64;
        tx.execute(
            "UPDATE scan SET finished_ns = ?1, status = ?2, message = ?3, entries = ?4, \
             files = ?5, dirs = ?6, bytes = ?7, used = ?8, errors = ?9, threads = ?10, \
             connections = ?11, backend = ?12 WHERE id = 1",
            rusqlite::params![
                unix_ns(end.finished),
                end.status.as_str(),
                end.message,
                clamp_i64(st.entries),
                clamp_i64(st.files),
                clamp_i64(dirs),
                clamp_i64(st.bytes),
                clamp_i64(st.used),
                clamp_i64(st.errors),
                end.threads as i64,
                end.connections as i64,
                end.backend,
            ],
        )?;
        tx.commit()?;
        conn.close().map_err(|(_, e)| DbError::Sqlite(e))?;
        Ok(DbSummary {
            entries: st.entries,
            dirs,
            errors: st.errors,
            duplicate_dirs: st.duplicate_dirs,
            missing_parents,
            late_rows,
            load_time: st.load_time,
            index_time,
            sync_time: t_sync.elapsed(),
            finish_time: t0.elapsed(),
        })
    }
}

/// Binds a value decoded from a record as SQLite stores it.
fn bind_value(stmt: &mut Statement<'_>, index: usize, v: &Value<'_>) -> rusqlite::Result<()> {
    match *v {
        Value::Null => stmt.raw_bind_parameter(index, rusqlite::types::Null),
        Value::Int(i) => stmt.raw_bind_parameter(index, i),
        Value::Text(t) => match std::str::from_utf8(t) {
            Ok(t) => stmt.raw_bind_parameter(index, t),
            Err(_) => stmt.raw_bind_parameter(index, t),
        },
        Value::Blob(b) => stmt.raw_bind_parameter(index, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EntryRecord;
    use rusqlite::types::Value;

    fn rec(path: &[u8], kind: EntryType, size: u64) -> EntryRecord {
        EntryRecord {
            path: path.to_vec(),
            attrs: EntryAttrs {
                kind,
                size,
                used: size,
                mode: 0o644,
                nlink: 1,
                uid: 1000,
                gid: 100,
                fileid: u64::MAX - size,
                fsid: 9,
                atime_ns: 1,
                mtime_ns: -5,
                ctime_ns: 3,
            },
            depth: if path == b"." {
                0
            } else {
                path.iter().filter(|&&b| b == b'/').count() as u32 + 1
            },
            target: None,
        }
    }

    fn info() -> ScanInfo {
        ScanInfo {
            url: "nfs://h/export".into(),
            server: "h".into(),
            options_json: "{}".into(),
            started: UNIX_EPOCH + Duration::from_secs(100),
        }
    }

    fn end(status: ScanStatus) -> ScanEnd {
        ScanEnd {
            status,
            finished: UNIX_EPOCH + Duration::from_secs(102),
            message: None,
            threads: 2,
            connections: 4,
            backend: "epoll".into(),
        }
    }

    fn temp_db(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nfs-walker-sqlite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        p
    }

    fn rows(records: Vec<EntryRecord>) -> OutputBatch {
        let mut batch = RowBatch::default();
        for r in &records {
            batch.push(&r.as_ref());
        }
        OutputBatch::Rows(batch)
    }

    /// Writes `batches` and returns the finished database, opened read-only.
    fn write(name: &str, batches: Vec<OutputBatch>, status: ScanStatus) -> (Connection, DbSummary) {
        let path = temp_db(name);
        let (w, tx) = SqliteWriter::create(&path, &info(), Arc::default()).unwrap();
        for b in batches {
            tx.send(b).unwrap();
        }
        drop(tx);
        let summary = w.finish(&end(status)).unwrap();
        let conn =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        // Every page, cell, key order and index entry the writer built, checked by SQLite.
        assert_eq!(crate::output::btree::integrity_check(&conn), ["ok"]);
        (conn, summary)
    }

    fn id_of(conn: &Connection, path: &[u8]) -> i64 {
        let v: Value = match std::str::from_utf8(path) {
            Ok(s) => Value::Text(s.into()),
            Err(_) => Value::Blob(path.to_vec()),
        };
        conn.query_row("SELECT id FROM entries WHERE path = ?1", [v], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn children_before_parents_get_the_right_parent_and_totals() {
        use EntryType::*;
        // Two batches as two threads might send them: grandchildren first, the root last.
        let (conn, summary) = write(
            "order.db",
            vec![
                rows(vec![
                    rec(b"a/b/f1", File, 10),
                    rec(b"a/b/f2", File, 20),
                    rec(b"a/b", Dir, 4096),
                    rec(b"c", File, 1),
                ]),
                rows(vec![rec(b"a", Dir, 4096), rec(b".", Dir, 4096)]),
            ],
            ScanStatus::Completed,
        );
        assert_eq!(summary.entries, 6);
        assert_eq!(summary.dirs, 3);
        assert_eq!(summary.missing_parents, 0);
        let parent_of = |p: &[u8]| -> Option<i64> {
            conn.query_row(
                "SELECT parent_id FROM entries WHERE path = ?1",
                [std::str::from_utf8(p).unwrap()],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(parent_of(b"."), None);
        assert_eq!(parent_of(b"a"), Some(id_of(&conn, b".")));
        assert_eq!(parent_of(b"c"), Some(id_of(&conn, b".")));
        assert_eq!(parent_of(b"a/b"), Some(id_of(&conn, b"a")));
        assert_eq!(parent_of(b"a/b/f1"), Some(id_of(&conn, b"a/b")));
        let dir_row = |p: &[u8]| -> (i64, i64, i64, i64) {
            conn.query_row(
                "SELECT direct_entries, direct_bytes, recursive_entries, recursive_bytes \
                 FROM dirs WHERE entry_id = ?1",
                [id_of(&conn, p)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
        };
        assert_eq!(dir_row(b"a/b"), (2, 30, 2, 30));
        assert_eq!(dir_row(b"a"), (1, 4096, 3, 4126));
        assert_eq!(dir_row(b"."), (2, 4097, 5, 4097 + 4126));
        let names: Vec<String> =
            crate::output::btree::query_column(&conn, "SELECT name FROM entries ORDER BY path");
        assert_eq!(names, [".", "a", "b", "f1", "f2", "c"]);
        // The documented lookups use the indexes.
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            rows.join("; ")
        };
        let lookup = plan(
            "SELECT * FROM entries WHERE parent_id = \
             (SELECT id FROM entries WHERE type = 'dir' AND path = 'a/b') AND name = 'f1'",
        );
        assert!(lookup.contains("USING INDEX entries_parent_id"), "{lookup}");
        assert!(lookup.contains("INDEX entries_dir_path"), "{lookup}");
    }

    #[test]
    fn exact_bytes_scan_row_errors_and_pragmas() {
        use EntryType::*;
        let mut link = rec(b"l\xffnk", Symlink, 3);
        link.target = Some(b"t\xfe".to_vec());
        let mut big = rec(b"Big.TAR", File, u64::MAX);
        big.attrs.fileid = u64::MAX;
        let (conn, summary) = write(
            "bytes.db",
            vec![
                rows(vec![rec(b".", Dir, 1), link, big, rec(b".hidden", File, 0)]),
                OutputBatch::Errors(vec![PathError {
                    path: b"d\xff".to_vec(),
                    op: "readdirplus",
                    message: "permission denied".into(),
                    status: Some(crate::rpc::nfs3::Nfsstat3::from_u32(13)),
                }]),
            ],
            ScanStatus::Interrupted,
        );
        assert_eq!(summary.errors, 1);
        let (path, name, target): (Value, Value, Value) = conn
            .query_row(
                "SELECT path, name, target FROM entries WHERE type = 'symlink'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(path, Value::Blob(b"l\xffnk".to_vec()));
        assert_eq!(name, Value::Blob(b"l\xffnk".to_vec()));
        assert_eq!(target, Value::Blob(b"t\xfe".to_vec()));
        let (size, fileid, ext): (i64, i64, String) = conn
            .query_row(
                "SELECT size, fileid, extension FROM entries WHERE path = 'Big.TAR'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(size, i64::MAX);
        assert_eq!(fileid as u64, u64::MAX);
        assert_eq!(ext, "tar");
        let hidden_ext: Option<String> = conn
            .query_row(
                "SELECT extension FROM entries WHERE path = '.hidden'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hidden_ext, None);
        let (epath, status, procedure): (Value, String, String) = conn
            .query_row("SELECT path, status, procedure FROM errors", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(epath, Value::Blob(b"d\xff".to_vec()));
        assert_eq!(status, "NFS3ERR_ACCES");
        assert_eq!(procedure, "readdirplus");
        let (st, started, finished, entries, errors): (String, i64, i64, i64, i64) = conn
            .query_row(
                "SELECT status, started_ns, finished_ns, entries, errors FROM scan",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(st, "interrupted");
        assert_eq!((started, finished), (100_000_000_000, 102_000_000_000));
        assert_eq!((entries, errors), (4, 1));
        let user_version: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let app_id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!((user_version, app_id), (SCHEMA_VERSION, APPLICATION_ID));
        assert_eq!(journal, "delete");
        assert_eq!(check, "ok");
    }

    /// A tree with awkward names (bytes 0 and 0xff, a 40 KiB path that spills to overflow
    /// pages, names that are prefixes of others), sent in shuffled batches as racing threads
    /// would: every parent, index entry and directory total must come out right.
    #[test]
    fn shuffled_batches_of_an_awkward_tree() {
        use EntryType::*;
        let mut records = vec![rec(b".", Dir, 4096)];
        let names: [&[u8]; 6] = [b"a", b"ab", b"a\0b", b"a\xff", b"\0", b"z.TXT"];
        let mut dirs: Vec<Vec<u8>> = Vec::new();
        for (i, n1) in names.iter().enumerate() {
            let d1 = n1.to_vec();
            records.push(rec(&d1, Dir, 4096));
            dirs.push(d1.clone());
            for (j, n2) in names.iter().enumerate() {
                let mut d2 = d1.clone();
                d2.push(b'/');
                d2.extend_from_slice(n2);
                records.push(rec(&d2, Dir, 4096));
                dirs.push(d2.clone());
                for k in 0..(40 * (i + j + 1)) {
                    let mut f = d2.clone();
                    f.extend_from_slice(format!("/f{k}.dat").as_bytes());
                    records.push(rec(&f, File, (i * 1000 + j * 10 + k) as u64));
                }
            }
        }
        let mut deep = b"deep".to_vec();
        records.push(rec(&deep, Dir, 4096));
        dirs.push(deep.clone());
        for level in 0..160 {
            deep.push(b'/');
            deep.extend(std::iter::repeat_n(b'a' + (level % 26) as u8, 250));
            records.push(rec(&deep, Dir, 4096));
            dirs.push(deep.clone());
        }
        let mut leaf = deep.clone();
        leaf.extend_from_slice(b"/last");
        records.push(rec(&leaf, File, 7));
        assert!(leaf.len() > 40_000);
        let total = records.len();
        // Batches of 37 in tree order, then sent in a scrambled order.
        let mut batches: Vec<Vec<EntryRecord>> = records.chunks(37).map(|c| c.to_vec()).collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in (1..batches.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            batches.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        let (conn, summary) = write(
            "shuffled.db",
            batches.into_iter().map(rows).collect(),
            ScanStatus::Completed,
        );
        assert_eq!(summary.entries, total as u64);
        assert_eq!(summary.missing_parents, 0);
        assert!(
            summary.late_rows > 0,
            "the shuffle should make some parents late"
        );
        let mut stmt = conn
            .prepare(
                "SELECT CAST(e.path AS BLOB), CAST(p.path AS BLOB) FROM entries e \
                 LEFT JOIN entries p ON p.id = e.parent_id",
            )
            .unwrap();
        let pairs: Vec<(Vec<u8>, Option<Vec<u8>>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(pairs.len(), total);
        for (path, parent) in &pairs {
            let want = split_parent(path).0.map(<[u8]>::to_vec);
            assert_eq!(parent, &want, "{}", String::from_utf8_lossy(path));
        }
        // Each directory is found through the path index, and only it.
        for d in &dirs {
            let v: Value = match std::str::from_utf8(d) {
                Ok(s) => Value::Text(s.into()),
                Err(_) => Value::Blob(d.clone()),
            };
            let found: Vec<Vec<u8>> = conn
                .prepare(
                    "SELECT CAST(path AS BLOB) FROM entries INDEXED BY entries_dir_path \
                     WHERE type = 'dir' AND path = ?1",
                )
                .unwrap()
                .query_map([v], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(found, std::slice::from_ref(d));
        }
        let root_total: i64 = conn
            .query_row(
                "SELECT recursive_entries FROM dirs WHERE entry_id = \
                 (SELECT id FROM entries WHERE path = '.')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(root_total, total as i64 - 1);
        let deepest: i64 = conn
            .query_row("SELECT max(depth) FROM entries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(deepest, 162);
    }

    #[test]
    fn a_parent_that_never_arrives_leaves_null_parent_ids() {
        use EntryType::*;
        let (conn, summary) = write(
            "orphan.db",
            vec![rows(vec![rec(b".", Dir, 1), rec(b"gone/x", File, 5)])],
            ScanStatus::Completed,
        );
        assert_eq!(summary.missing_parents, 1);
        let parent: Option<i64> = conn
            .query_row(
                "SELECT parent_id FROM entries WHERE path = 'gone/x'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(parent, None);
        let dirs: i64 = conn
            .query_row("SELECT count(*) FROM dirs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(dirs, 1);
    }

    #[test]
    fn refuses_to_replace_what_is_not_a_scan_database() {
        let p = temp_db("notes.db");
        std::fs::write(&p, b"precious notes").unwrap();
        assert!(matches!(
            SqliteWriter::create(&p, &info(), Arc::default()),
            Err(DbError::NotADatabase(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"precious notes");
        let other = temp_db("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (a)")
            .unwrap();
        assert!(matches!(
            SqliteWriter::create(&other, &info(), Arc::default()),
            Err(DbError::NotADatabase(_))
        ));
        let dir = temp_db("a-directory.db");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            SqliteWriter::create(&dir, &info(), Arc::default()),
            Err(DbError::NotARegularFile(_))
        ));
        // An earlier scan database is replaced.
        let again = temp_db("again.db");
        for _ in 0..2 {
            let (w, tx) = SqliteWriter::create(&again, &info(), Arc::default()).unwrap();
            tx.send(rows(vec![rec(b".", EntryType::Dir, 1)])).unwrap();
            drop(tx);
            assert_eq!(w.finish(&end(ScanStatus::Completed)).unwrap().entries, 1);
        }
    }

    #[test]
    fn extensions_and_parents() {
        assert_eq!(extension_of(b"a.TXT").as_deref(), Some("txt"));
        assert_eq!(extension_of(b"x.tar.gz").as_deref(), Some("gz"));
        assert_eq!(extension_of(b"file-1.\xc3\xa9").as_deref(), Some("\u{e9}"));
        assert_eq!(extension_of(b".bashrc"), None);
        assert_eq!(extension_of(b"trailing."), None);
        assert_eq!(extension_of(b"noext"), None);
        assert_eq!(extension_of(b"a.with space"), None);
        assert_eq!(extension_of(b"a.\xff"), None);
        assert_eq!(extension_of(b"a.0123456789abcdefX"), None);
        assert_eq!(split_parent(b"."), (None, &b"."[..]));
        assert_eq!(split_parent(b"a"), (Some(&b"."[..]), &b"a"[..]));
        assert_eq!(split_parent(b"a/b/c"), (Some(&b"a/b"[..]), &b"c"[..]));
    }
}
