//! The two sides of a diff: scan databases (read through SQLite) and NDJSON scan output,
//! recognised by content, streamed into an external sort by identity.

use super::rows::{encode_entry, identity_key, KeyedRow};
use super::DiffError;
use crate::output::extsort::{ExternalSorter, SortedKeys};
use crate::output::schema::entries_owner_select;
use crate::output::sqlite::{APPLICATION_ID, SCHEMA_VERSION, SQLITE_HEADER};
use crate::record::{EntryAttrs, EntryRecord, EntryRef, EntryType};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// NDJSON lines longer than this are not entry records (a path of 4096 components of 255
/// bytes is about 1 MiB).
pub const NDJSON_LINE_BYTES_MAX: usize = 4 << 20;

/// What kind of file a scan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFormat {
    Database,
    Ndjson,
}

/// What a scan says about itself.
#[derive(Debug, Clone)]
pub struct ScanMeta {
    pub file: PathBuf,
    pub format: ScanFormat,
    /// The scanned URL (databases only).
    pub url: Option<String>,
    /// `completed`, `interrupted`, `failed`, `running` (databases only).
    pub status: Option<String>,
    /// Paths the scan could not read (databases only).
    pub errors: Option<u64>,
    /// The scan's `--mode` (databases only).
    pub mode: Option<String>,
    /// The root's (fsid, fileid), from its record (path `.`).
    pub root: Option<(u64, u64)>,
    /// Entries read.
    pub entries: u64,
    /// NDJSON lines that were not entry records.
    pub skipped_lines: u64,
    /// The NDJSON file does not end with a newline: its writer stopped mid-line.
    pub truncated: bool,
}

/// An opened scan, ready to be read.
pub struct ScanSource {
    pub meta: ScanMeta,
    conn: Option<Connection>,
}

fn open_err(file: &Path, e: impl std::fmt::Display) -> DiffError {
    DiffError::Read {
        file: file.to_path_buf(),
        message: e.to_string(),
    }
}

impl ScanSource {
    /// Opens `file`: an nfs-walker scan database (by its SQLite header and application id) or
    /// NDJSON whose first line is an entry record. Anything else is refused.
    pub fn open(file: &Path) -> Result<ScanSource, DiffError> {
        let mut f = std::fs::File::open(file).map_err(|e| open_err(file, e))?;
        let mut header = Vec::with_capacity(16);
        (&mut f)
            .take(16)
            .read_to_end(&mut header)
            .map_err(|e| open_err(file, e))?;
        let mut meta = ScanMeta {
            file: file.to_path_buf(),
            format: ScanFormat::Ndjson,
            url: None,
            status: None,
            errors: None,
            mode: None,
            root: None,
            entries: 0,
            skipped_lines: 0,
            truncated: false,
        };
        if header.as_slice() == SQLITE_HEADER {
            meta.format = ScanFormat::Database;
            let conn = Connection::open_with_flags(
                file,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| open_err(file, e))?;
            let app: i32 = conn
                .query_row("PRAGMA application_id", [], |r| r.get(0))
                .map_err(|e| open_err(file, e))?;
            let version: i32 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| open_err(file, e))?;
            if app != APPLICATION_ID {
                return Err(DiffError::NotAScan {
                    file: file.to_path_buf(),
                    why: "an SQLite database, but not an nfs-walker scan database".into(),
                });
            }
            if version > SCHEMA_VERSION {
                return Err(DiffError::NotAScan {
                    file: file.to_path_buf(),
                    why: format!(
                        "scan database schema version {version}; this nfs-walker reads up to \
                         {SCHEMA_VERSION}"
                    ),
                });
            }
            let (url, status, errors, options): (String, String, Option<i64>, String) = conn
                .query_row(
                    "SELECT url, status, errors, options FROM scan WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(|e| open_err(file, e))?;
            meta.url = Some(url);
            meta.status = Some(status);
            meta.errors = errors.map(|e| e.max(0) as u64);
            meta.mode = serde_json::from_str::<serde_json::Value>(&options)
                .ok()
                .and_then(|v| v.get("mode")?.as_str().map(str::to_string));
            return Ok(ScanSource {
                meta,
                conn: Some(conn),
            });
        }
        // NDJSON: the first non-empty line must be an entry record.
        let mut input = BufReader::new(std::fs::File::open(file).map_err(|e| open_err(file, e))?);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut input)
                .take(NDJSON_LINE_BYTES_MAX as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| open_err(file, e))?;
            if n == 0 {
                return Err(DiffError::NotAScan {
                    file: file.to_path_buf(),
                    why: "empty: no entry records".into(),
                });
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let ok = std::str::from_utf8(&line)
                .ok()
                .is_some_and(|s| EntryRecord::from_json(s.trim_end()).is_ok());
            if !ok {
                return Err(DiffError::NotAScan {
                    file: file.to_path_buf(),
                    why: "neither an nfs-walker scan database nor NDJSON entry records".into(),
                });
            }
            break;
        }
        Ok(ScanSource { meta, conn: None })
    }

    /// Reads every entry into an external sort by (fsid, fileid), holding at most
    /// `memory_budget_bytes` of rows in memory; returns the sorted rows and the scan's meta.
    pub fn sort_by_identity(
        mut self,
        memory_budget_bytes: usize,
    ) -> Result<(ScanMeta, SortedKeys<KeyedRow>), DiffError> {
        let file = self.meta.file.clone();
        let mut sorter = ExternalSorter::new(memory_budget_bytes);
        let mut root = None;
        let mut entries = 0u64;
        let mut push = |e: &EntryRef<'_>| {
            if e.path == b"." {
                root = Some((e.attrs.fsid, e.attrs.fileid));
            }
            entries += 1;
            let mut row = KeyedRow::with_key(&identity_key(e.attrs), 96 + e.path.len());
            encode_entry(row.payload_mut(), e);
            sorter.push(row).map_err(|e| DiffError::Sort(e.to_string()))
        };
        match self.conn.take() {
            Some(conn) => read_database(&conn, &file, &mut push)?,
            None => read_ndjson(&mut self.meta, &mut push)?,
        }
        self.meta.root = root;
        self.meta.entries = entries;
        let sorted = sorter
            .finish()
            .map_err(|e| DiffError::Sort(e.to_string()))?;
        Ok((self.meta, sorted))
    }
}

type PushFn<'a> = dyn FnMut(&EntryRef<'_>) -> Result<(), DiffError> + 'a;

fn bytes_of<'a>(v: ValueRef<'a>) -> &'a [u8] {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => t,
        _ => b"",
    }
}

/// Every row of `entries`, in rowid order (a sequential read of the table).
fn read_database(conn: &Connection, file: &Path, push: &mut PushFn<'_>) -> Result<(), DiffError> {
    let err = |e: rusqlite::Error| open_err(file, e);
    // Databases of schema versions 1 to 3 have no owner columns.
    let owners = entries_owner_select(conn).map_err(err)?;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT path, type, size, used, mode, nlink, uid, gid, fileid, fsid, atime_ns, \
             mtime_ns, ctime_ns, depth, target, {owners} FROM entries"
        ))
        .map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let int = |i: usize| -> Result<i64, DiffError> { r.get::<_, i64>(i).map_err(err) };
        let kind_ref = r.get_ref(1).map_err(err)?;
        let kind = std::str::from_utf8(bytes_of(kind_ref))
            .ok()
            .and_then(EntryType::parse)
            .unwrap_or(EntryType::Unknown);
        let attrs = EntryAttrs {
            kind,
            size: int(2)? as u64,
            used: int(3)? as u64,
            mode: int(4)? as u32,
            nlink: int(5)? as u32,
            uid: int(6)? as u32,
            gid: int(7)? as u32,
            // 64-bit ids are stored with their bits as signed integers.
            fileid: int(8)? as u64,
            fsid: int(9)? as u64,
            atime_ns: int(10)?,
            mtime_ns: int(11)?,
            ctime_ns: int(12)?,
        };
        let string = |i: usize| -> Result<Option<&[u8]>, DiffError> {
            Ok(match r.get_ref(i).map_err(err)? {
                ValueRef::Null => None,
                v => Some(bytes_of(v)),
            })
        };
        push(&EntryRef {
            path: bytes_of(r.get_ref(0).map_err(err)?),
            attrs: &attrs,
            depth: int(13)? as u32,
            target: string(14)?,
            owner: string(15)?,
            group: string(16)?,
        })?;
    }
    Ok(())
}

fn read_ndjson(meta: &mut ScanMeta, push: &mut PushFn<'_>) -> Result<(), DiffError> {
    let file = meta.file.clone();
    let f = std::fs::File::open(&file).map_err(|e| open_err(&file, e))?;
    let mut input = BufReader::with_capacity(1 << 20, f);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut input)
            .take(NDJSON_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| open_err(&file, e))?;
        if n == 0 {
            break;
        }
        let complete = line.last() == Some(&b'\n');
        if !complete && line.len() > NDJSON_LINE_BYTES_MAX {
            // Skip the rest of an over-long line.
            meta.skipped_lines += 1;
            loop {
                line.clear();
                let m = (&mut input)
                    .take(NDJSON_LINE_BYTES_MAX as u64)
                    .read_until(b'\n', &mut line)
                    .map_err(|e| open_err(&file, e))?;
                if m == 0 || line.last() == Some(&b'\n') {
                    break;
                }
            }
            continue;
        }
        if !complete {
            meta.truncated = true;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match std::str::from_utf8(&line)
            .map_err(|e| e.to_string())
            .and_then(|s| EntryRecord::from_json(s.trim_end()))
        {
            Ok(rec) => push(&rec.as_ref())?,
            Err(_) => meta.skipped_lines += 1,
        }
    }
    Ok(())
}
