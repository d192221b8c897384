//! The scan database: a writer thread that loads entry batches into SQLite.
//!
//! SQLite (rusqlite) creates the file, its schema and the `scan` row; the writer then appends
//! the `entries` and `errors` rows straight into b-tree pages ([`crate::output::btree`]), in
//! rowid order, at the cost of encoding a record and copying it into a page, and commits them
//! every checkpoint interval through SQLite's rollback journal ([`crate::output::pagefile`]).
//! At the end it sorts the index keys it collected (bounded memory, spilling to a temporary
//! file), writes the indexes and the `dirs` table the same way, commits, and hands the file
//! back to SQLite for the last rows and the `scan` row's totals, in one journaled
//! transaction. At every instant the file is a valid database: the last commit.
//!
//! Concerns, one module each: `rows` (what the scanning threads put in a batch), `dirs`
//! (ids, parents, directory totals), `late` (directories that arrive after a child), `keys`
//! (index keys in SQLite's collation), `load` (the writer thread's appending and
//! checkpoints, the indexes at the end), `finish` (the final transaction).
//!
//! During the load the indexes are declared `WHERE 0` (empty by definition), so every
//! checkpoint is a database SQLite finds sound without index entries for the rows it shows;
//! the final commit puts back the schema SQLite wrote first, with the indexes filled.
//!
//! The schema is documented in `docs/database.md`; [`SCHEMA_VERSION`] is stored as
//! `PRAGMA user_version` and changes whenever the schema does.

mod dirs;
mod finish;
mod keys;
mod load;
mod rows;

pub use crate::output::schema::{
    extension_of, split_parent, APPLICATION_ID, EXTENSION_BYTES_MAX, SCHEMA_VERSION, SQLITE_HEADER,
};
pub use dirs::DIRS_MAX;
use finish::move_late_rows;

/// Moves the rows of `late_entries` of a database whose scan was cut short into `entries`,
/// as its end would have (a no-op on a finished database); returns the rows moved. For
/// readers that take over such a database: `scan --resume`, `merge` of a killed host's part.
pub fn settle_late_rows(path: &Path) -> Result<u64, DbError> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;")?;
    let tx = conn.transaction()?;
    let moved = move_late_rows(&tx)?;
    tx.commit()?;
    Ok(moved)
}
pub use rows::{RowBatch, RowRef};

use crate::output::btree::{BtreeError, PageFile};
use crate::output::schema::{INDEX_SQL, INSERT_ENTRY_SQL, SCHEMA_SQL};
use crate::output::synced::DurabilityListener;
use crate::output::{OutputBatch, CHANNEL_BATCHES_MAX};
use crossbeam_channel::{bounded, Receiver, Sender};
use load::{LoadState, Roots};
use rusqlite::Connection;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// How often the load is committed by default: a crash loses at most this much work.
pub const CHECKPOINT_SECS_DEFAULT: f64 = 10.0;
/// The writer's own table, for directories that arrived after one of their children: their
/// ids were reserved earlier, so their rows cannot be appended to `entries` in rowid order.
/// Each is appended here as its id and its whole `entries` record, committed with every
/// checkpoint (so a crash keeps them), and moved into `entries` by SQLite at the end, which
/// drops the table. Only a database whose scan was cut short holds it.
pub const LATE_ENTRIES_TABLE: &str = "late_entries";
const LATE_ENTRIES_SQL: &str =
    "CREATE TABLE late_entries (seq INTEGER PRIMARY KEY, entry_id INTEGER NOT NULL, record BLOB NOT NULL);";
/// Page size: larger pages make fewer, larger writes and a shallower table b-tree.
const PAGE_SIZE_BYTES: u32 = 65536;

/// The indexes as declared during the load: empty by definition, so a checkpoint's rows
/// need no index entries. (Changed through `writable_schema`, which keeps their root pages.)
const LOADING_INDEX_SQL: [(&str, &str); 2] = [
    (
        "entries_parent_id",
        "CREATE INDEX entries_parent_id ON entries(parent_id) WHERE 0",
    ),
    (
        "entries_dir_path",
        "CREATE INDEX entries_dir_path ON entries(path) WHERE 0",
    ),
];

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
    #[error("a row of the late_entries table does not decode")]
    BadLateRow,
    #[error("the schema table does not fit on page 1")]
    SchemaTooLarge,
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
    /// How often the scan was resumed (`scan --resume`) before this run.
    pub resumes: u32,
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
    /// Commits during the load, and the time they took.
    pub checkpoints: u64,
    pub checkpoint_time: Duration,
}

/// The database writer thread.
pub struct SqliteWriter {
    handle: JoinHandle<Result<LoadState, DbError>>,
    path: PathBuf,
    /// Page 1 after its header as SQLite wrote it with the final schema.
    final_schema: Vec<u8>,
}

impl SqliteWriter {
    /// Creates the database at `path` (replacing an earlier scan database there), writes the
    /// `scan` row as `running`, and starts the writer thread, which commits what it has
    /// every `checkpoint`. Batchers send to the returned sender; once every sender is
    /// dropped, call [`SqliteWriter::finish`].
    ///
    /// Should writing fail, the writer sets `stop`, so the scan ends instead of running on
    /// with nowhere to put entries. `durability` hears of the tasks each commit made durable
    /// (from the batches' [`OutputBatch::TasksDone`] markers).
    pub fn create(
        path: &Path,
        info: &ScanInfo,
        checkpoint: Duration,
        stop: Arc<AtomicBool>,
        durability: Option<Box<dyn DurabilityListener>>,
    ) -> Result<(SqliteWriter, Sender<OutputBatch>), DbError> {
        check_replaceable(path)?;
        // The new database is made beside and renamed into place once SQLite has committed
        // its schema: a kill at any moment leaves the old file or the new one, whole.
        let new_path = side_path(path, "-new");
        remove_if_file(&new_path)?;
        remove_if_file(&side_path(&new_path, "-journal"))?;
        let conn = Connection::open(&new_path)?;
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE_BYTES};
             PRAGMA journal_mode = DELETE;
             PRAGMA synchronous = FULL;
             PRAGMA user_version = {SCHEMA_VERSION};
             PRAGMA application_id = {APPLICATION_ID};"
        ))?;
        // The indexes exist from the start (empty): the writer fills them at the end.
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_SQL} {INDEX_SQL} {LATE_ENTRIES_SQL}"
        ))?;
        conn.execute(
            "INSERT INTO scan (id, url, server, tool_version, options, started_ns, status, \
             resumes) VALUES (1, ?1, ?2, ?3, ?4, ?5, 'running', ?6)",
            rusqlite::params![
                info.url,
                info.server,
                env!("CARGO_PKG_VERSION"),
                info.options_json,
                unix_ns(info.started),
                info.resumes,
            ],
        )?;
        conn.execute_batch("COMMIT")?;
        let roots = Roots::read(&conn)?;
        let final_schema = PageFile::read_schema_page(&new_path).map_err(|source| DbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // A leaf table page: the whole schema table is on page 1.
        if final_schema.first() != Some(&0x0d) {
            return Err(DbError::SchemaTooLarge);
        }
        conn.execute_batch("PRAGMA writable_schema = ON; BEGIN;")?;
        for (name, sql) in LOADING_INDEX_SQL {
            conn.execute(
                "UPDATE sqlite_schema SET sql = ?1 WHERE type = 'index' AND name = ?2",
                [sql, name],
            )?;
        }
        conn.execute_batch("COMMIT; PRAGMA writable_schema = OFF;")?;
        conn.close().map_err(|(_, e)| DbError::Sqlite(e))?;
        replace_database(&new_path, path)?;
        // From here until the end of the scan, only the writer writes the file.
        let file = PageFile::open(path).map_err(BtreeError::from)?;
        let (tx, rx) = bounded(CHANNEL_BATCHES_MAX);
        let handle = std::thread::Builder::new()
            .name("nfs-walker-sqlite".into())
            .spawn(move || load(file, roots, durability, rx, checkpoint, &stop))
            .map_err(DbError::Thread)?;
        Ok((
            SqliteWriter {
                handle,
                path: path.to_path_buf(),
                final_schema,
            },
            tx,
        ))
    }

    /// Waits for the load to end (every sender must be dropped), then builds the indexes and
    /// the `dirs` table, records how the scan ended and makes the file durable. Where
    /// writing failed, the file keeps its last commit, marked failed where SQLite can still
    /// write it.
    pub fn finish(self, end: &ScanEnd) -> Result<DbSummary, DbError> {
        let loaded = self.handle.join().map_err(|_| DbError::Panicked)?;
        let result =
            loaded.and_then(|state| finish::finish(state, &self.path, &self.final_schema, end));
        if let Err(e) = &result {
            finish::mark_failed(&self.path, end, &e.to_string());
        }
        result
    }
}

/// The writer thread: appends every batch until all senders are gone. After an error it
/// drops what it appended since the last commit and keeps draining the channel, so the scan
/// is never blocked on a dead writer.
fn load(
    file: PageFile,
    roots: Roots,
    durability: Option<Box<dyn DurabilityListener>>,
    rx: Receiver<OutputBatch>,
    checkpoint: Duration,
    stop: &AtomicBool,
) -> Result<LoadState, DbError> {
    let mut state = LoadState::new(file, roots, durability);
    match state.load_batches(&rx, checkpoint) {
        Ok(()) => Ok(state),
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            let _ = state.file.discard_uncommitted();
            drop(state);
            for _ in rx {}
            Err(e)
        }
    }
}

/// Refuses to replace anything at `path` that is not a regular file or not an nfs-walker
/// scan database, so `-o` cannot clobber the wrong file.
fn check_replaceable(path: &Path) -> Result<(), DbError> {
    let io_err = |source| DbError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(e)),
        Ok(m) if !m.file_type().is_file() => Err(DbError::NotARegularFile(path.to_path_buf())),
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
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

/// `path` with `suffix` appended to its name (`scan.db-journal`).
fn side_path(path: &Path, suffix: &str) -> PathBuf {
    let mut side = path.as_os_str().to_owned();
    side.push(suffix);
    PathBuf::from(side)
}

fn remove_if_file(path: &Path) -> Result<(), DbError> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
        std::fs::remove_file(path).map_err(|source| DbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Puts the database made at `new` in the place of `path` (an earlier scan database or
/// nothing), durably. A journal of the earlier database must not outlive it (SQLite would
/// play it back into the new file), so it goes first: opening the old file through SQLite
/// rolls back a hot journal of an interrupted commit, so the old file stays whole until the
/// rename.
fn replace_database(new: &Path, path: &Path) -> Result<(), DbError> {
    let io_err = |source| DbError::Io {
        path: path.to_path_buf(),
        source,
    };
    let journal = side_path(path, "-journal");
    if journal.exists() && path.exists() {
        let conn = Connection::open(path)?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        conn.close().map_err(|(_, e)| DbError::Sqlite(e))?;
    }
    for suffix in ["-journal", "-wal", "-shm"] {
        remove_if_file(&side_path(path, suffix))?;
    }
    std::fs::rename(new, path).map_err(io_err)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(dir.unwrap_or(Path::new(".")))
        .and_then(|d| d.sync_all())
        .map_err(io_err)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path_error::PathError;
    use crate::record::{EntryAttrs, EntryRecord, EntryType};
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
            owner: None,
            group: None,
        }
    }

    const CHECKPOINT: Duration = Duration::from_secs(10);

    fn info() -> ScanInfo {
        ScanInfo {
            url: "nfs://h/export".into(),
            server: "h".into(),
            options_json: "{}".into(),
            started: UNIX_EPOCH + Duration::from_secs(100),
            resumes: 0,
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
        let (w, tx) =
            SqliteWriter::create(&path, &info(), CHECKPOINT, Arc::default(), None).unwrap();
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

    /// Content values sit after the path, target and extension in a batch's buffer: each row
    /// must get its own, and rows without any get NULL.
    #[test]
    fn content_columns_hold_each_rows_checksum_and_mime() {
        use crate::record::EntryContent;
        use EntryType::*;
        let mut link = rec(b"l.LNK", Symlink, 3);
        link.target = Some(b"t\xfe".to_vec());
        let rows_in: Vec<(EntryRecord, Option<&str>, Option<&str>)> = vec![
            (rec(b".", Dir, 1), None, None),
            (
                rec(b"a.png", File, 10),
                Some("blake3:00aa"),
                Some("image/png"),
            ),
            (link, None, None),
            (rec(b"b.TXT", File, 20), Some("md5:11bb"), None),
            (rec(b"c", File, 30), None, Some("text/plain")),
            (rec(b"d.bin", File, 40), None, None),
        ];
        let mut batch = RowBatch::default();
        for (r, checksum, mime) in &rows_in {
            batch.push_with_content(
                &r.as_ref(),
                &EntryContent {
                    checksum: *checksum,
                    mime: *mime,
                },
            );
        }
        let (conn, _) = write(
            "content.db",
            vec![OutputBatch::Rows(batch)],
            ScanStatus::Completed,
        );
        for (r, checksum, mime) in &rows_in {
            let v: Value = match std::str::from_utf8(&r.path) {
                Ok(s) => Value::Text(s.into()),
                Err(_) => Value::Blob(r.path.clone()),
            };
            let got: (Option<String>, Option<String>, Option<String>) = conn
                .query_row(
                    "SELECT checksum, mime, extension FROM entries WHERE path = ?1",
                    [v],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .unwrap();
            let ext = (r.attrs.kind == File)
                .then(|| extension_of(&r.path).map(|e| e.into_owned()))
                .flatten();
            assert_eq!(
                got,
                (checksum.map(String::from), mime.map(String::from), ext),
                "{}",
                String::from_utf8_lossy(&r.path)
            );
        }
        assert!(crate::output::schema::entries_has_content_columns(&conn).unwrap());
    }

    /// A database an earlier version cut short (no content columns, late rows of 19 values)
    /// settles as that version would have settled it; so does one of version 3 (content
    /// columns, no owner columns, late rows of 21 values).
    #[test]
    fn late_rows_of_a_database_without_content_columns_settle() {
        use crate::output::btree::{encode_record, Value as V};
        let columns = "    target    TEXT,\n    checksum  TEXT,\n    mime      TEXT,\n    \
                       owner     TEXT,\n    \"group\"   TEXT\n";
        for (version, kept, values_len) in [
            (2, "    target    TEXT\n", 19),
            (
                3,
                "    target    TEXT,\n    checksum  TEXT,\n    mime      TEXT\n",
                21,
            ),
        ] {
            let path = temp_db(&format!("version{version}-late.db"));
            let conn = Connection::open(&path).unwrap();
            let old_schema = SCHEMA_SQL.replace(columns, kept);
            assert_ne!(old_schema, SCHEMA_SQL);
            conn.execute_batch(&old_schema).unwrap();
            conn.execute_batch(LATE_ENTRIES_SQL).unwrap();
            let mut record = Vec::new();
            let mut values = vec![
                V::Null,
                V::Null,
                V::Text(b"d"),
                V::Text(b"d"),
                V::Text(b"dir"),
            ];
            values.extend([V::Int(4096); 12]);
            values.resize(values_len, V::Null);
            encode_record(&values, &mut record);
            conn.execute(
                "INSERT INTO late_entries (entry_id, record) VALUES (7, ?1)",
                [&record],
            )
            .unwrap();
            drop(conn);
            assert_eq!(settle_late_rows(&path).unwrap(), 1, "version {version}");
            let conn = Connection::open(&path).unwrap();
            let (id, kind): (i64, String) = conn
                .query_row("SELECT id, type FROM entries WHERE path = 'd'", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!((id, kind.as_str()), (7, "dir"), "version {version}");
        }
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
            SqliteWriter::create(&p, &info(), CHECKPOINT, Arc::default(), None),
            Err(DbError::NotADatabase(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"precious notes");
        let other = temp_db("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (a)")
            .unwrap();
        assert!(matches!(
            SqliteWriter::create(&other, &info(), CHECKPOINT, Arc::default(), None),
            Err(DbError::NotADatabase(_))
        ));
        let dir = temp_db("a-directory.db");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            SqliteWriter::create(&dir, &info(), CHECKPOINT, Arc::default(), None),
            Err(DbError::NotARegularFile(_))
        ));
        // An earlier scan database is replaced.
        let again = temp_db("again.db");
        for _ in 0..2 {
            let (w, tx) =
                SqliteWriter::create(&again, &info(), CHECKPOINT, Arc::default(), None).unwrap();
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
