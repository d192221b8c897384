//! Scan outputs read back as inputs (`stats`, `report`, `convert`): which kind a file is, the
//! scan it describes, and its entries as a stream in bounded memory.

use crate::columnar;
use crate::output::schema::{
    entries_content_fields, entries_has_content_columns, entries_owner_select, SQLITE_HEADER,
};
use crate::record::{ContentFields, EntryAttrs, EntryContent, EntryRef, EntryType};
use crate::stats::db::{open_database, to_bytes, to_i64, to_u64};
use crate::stats::ndjson::{for_each_ndjson_entry_with_content, read_line_bounded};
use crate::stats::StatsError;
use std::io::{BufReader, Read};
use std::path::Path;

/// What a scan output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Database,
    Ndjson,
    Parquet,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Database => "sqlite",
            InputKind::Ndjson => "ndjson",
            InputKind::Parquet => "parquet",
        }
    }
}

/// Tells a scan output's kind by its content: SQLite's and Parquet's magic bytes, a directory
/// of Parquet parts; anything else is read as NDJSON (`-` is standard input).
pub fn detect(path: &Path) -> Result<InputKind, StatsError> {
    if path.as_os_str() == "-" {
        return Ok(InputKind::Ndjson);
    }
    if path.is_dir() {
        return Ok(InputKind::Parquet);
    }
    let mut f = std::fs::File::open(path).map_err(StatsError::io(path))?;
    let mut header = [0u8; 16];
    let mut got = 0;
    while got < header.len() {
        match f.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StatsError::io(path)(e)),
        }
    }
    Ok(if got == header.len() && &header == SQLITE_HEADER {
        InputKind::Database
    } else if got >= 4 && &header[..4] == columnar::PARQUET_MAGIC {
        InputKind::Parquet
    } else {
        InputKind::Ndjson
    })
}

/// The scan a database or Parquet output describes (NDJSON carries none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceScan {
    pub url: String,
    pub server: String,
    pub options_json: String,
    pub started_ns: i64,
    pub finished_ns: Option<i64>,
    /// running, completed, interrupted or failed.
    pub status: String,
    pub message: Option<String>,
    pub entries: Option<u64>,
    pub errors: Option<u64>,
    pub threads: Option<u64>,
    pub connections: Option<u64>,
    pub backend: Option<String>,
}

/// The scan of a database's `scan` row or of Parquet's metadata.
pub fn read_scan(path: &Path, kind: InputKind) -> Result<Option<SourceScan>, StatsError> {
    match kind {
        InputKind::Ndjson => Ok(None),
        InputKind::Database => {
            let conn = open_database(path)?;
            let scan = conn.query_row(
                "SELECT url, server, options, started_ns, finished_ns, status, message, entries, \
                 errors, threads, connections, backend FROM scan WHERE id = 1",
                [],
                |r| {
                    let count = |i| -> rusqlite::Result<Option<u64>> {
                        Ok(r.get::<_, Option<i64>>(i)?.map(|n| n.max(0) as u64))
                    };
                    Ok(SourceScan {
                        url: r.get(0)?,
                        server: r.get(1)?,
                        options_json: r.get(2)?,
                        started_ns: r.get(3)?,
                        finished_ns: r.get(4)?,
                        status: r.get(5)?,
                        message: r.get(6)?,
                        entries: count(7)?,
                        errors: count(8)?,
                        threads: count(9)?,
                        connections: count(10)?,
                        backend: r.get::<_, Option<String>>(11)?.filter(|b| !b.is_empty()),
                    })
                },
            );
            match scan {
                Ok(s) => Ok(Some(s)),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        InputKind::Parquet => {
            let Some(v) = columnar::reader::scan_metadata(path)? else {
                return Ok(None);
            };
            let int = |k: &str| v.get(k).and_then(serde_json::Value::as_i64);
            let count = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
            let text = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_string);
            Ok(Some(SourceScan {
                url: text("url").unwrap_or_default(),
                server: text("server").unwrap_or_default(),
                options_json: v.get("options").map_or("{}".into(), |o| o.to_string()),
                started_ns: int("started_ns").unwrap_or(0),
                finished_ns: int("finished_ns"),
                status: text("status").unwrap_or_else(|| "running".into()),
                message: text("message"),
                entries: count("entries"),
                errors: count("errors"),
                threads: count("threads"),
                connections: count("connections"),
                backend: text("backend").filter(|b| !b.is_empty()),
            }))
        }
    }
}

/// Calls `f` with every entry of a scan output, in its order (a database's in id order), as a
/// stream; returns the entries read and the NDJSON lines skipped (the first one that is not
/// a record is described on stderr).
pub fn for_each_entry(
    path: &Path,
    kind: InputKind,
    mut f: impl FnMut(&EntryRef<'_>),
) -> Result<(u64, u64), StatsError> {
    for_each_entry_with_content(path, kind, |e, _| f(e))
}

/// [`for_each_entry`] with each entry's content fields (none where the output has none).
pub fn for_each_entry_with_content(
    path: &Path,
    kind: InputKind,
    mut f: impl FnMut(&EntryRef<'_>, &EntryContent<'_>),
) -> Result<(u64, u64), StatsError> {
    match kind {
        InputKind::Parquet => Ok((columnar::reader::for_each_entry_with_content(path, f)?, 0)),
        InputKind::Ndjson => {
            let source = path.display().to_string();
            if path.as_os_str() == "-" {
                for_each_ndjson_entry_with_content(std::io::stdin().lock(), &source, f)
            } else {
                let file = std::fs::File::open(path).map_err(StatsError::io(path))?;
                for_each_ndjson_entry_with_content(
                    BufReader::with_capacity(1 << 20, file),
                    &source,
                    f,
                )
            }
        }
        InputKind::Database => {
            let conn = open_database(path)?;
            let content = if entries_has_content_columns(&conn)? {
                "checksum, mime"
            } else {
                "NULL, NULL"
            };
            let owners = entries_owner_select(&conn)?;
            let mut stmt = conn.prepare(&format!(
                "SELECT path, type, size, used, mode, nlink, uid, gid, fileid, fsid, atime_ns, \
                 mtime_ns, ctime_ns, depth, target, {content}, {owners} FROM entries ORDER BY id"
            ))?;
            let mut rows = stmt.query([])?;
            let mut n = 0;
            let mut path_buf = Vec::new();
            let mut target_buf = Vec::new();
            let mut owner_buf = Vec::new();
            let mut group_buf = Vec::new();
            while let Some(r) = rows.next()? {
                path_buf.clear();
                path_buf.extend_from_slice(&to_bytes(r.get_ref(0)?));
                let kind = to_bytes(r.get_ref(1)?);
                let id = |i: usize| -> rusqlite::Result<u64> { Ok(to_i64(r.get_ref(i)?) as u64) };
                let small = |i: usize| -> rusqlite::Result<u32> {
                    Ok(to_i64(r.get_ref(i)?).clamp(0, i64::from(u32::MAX)) as u32)
                };
                let attrs = EntryAttrs {
                    kind: std::str::from_utf8(&kind)
                        .ok()
                        .and_then(EntryType::parse)
                        .unwrap_or(EntryType::Unknown),
                    size: to_u64(r.get_ref(2)?),
                    used: to_u64(r.get_ref(3)?),
                    mode: small(4)?,
                    nlink: small(5)?,
                    uid: small(6)?,
                    gid: small(7)?,
                    fileid: id(8)?,
                    fsid: id(9)?,
                    atime_ns: to_i64(r.get_ref(10)?),
                    mtime_ns: to_i64(r.get_ref(11)?),
                    ctime_ns: to_i64(r.get_ref(12)?),
                };
                let depth = small(13)?;
                // TEXT or BLOB (not UTF-8), NULL where there is none.
                let bytes = |i: usize, buf: &mut Vec<u8>| -> rusqlite::Result<bool> {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => false,
                        v => {
                            buf.clear();
                            buf.extend_from_slice(&to_bytes(v));
                            true
                        }
                    })
                };
                let target = bytes(14, &mut target_buf)?.then_some(target_buf.as_slice());
                let owner = bytes(17, &mut owner_buf)?.then_some(owner_buf.as_slice());
                let group = bytes(18, &mut group_buf)?.then_some(group_buf.as_slice());
                let text = |i: usize| -> rusqlite::Result<Option<&str>> {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t).ok(),
                        _ => None,
                    })
                };
                let content = EntryContent {
                    checksum: text(15)?,
                    mime: text(16)?,
                };
                f(
                    &EntryRef {
                        path: &path_buf,
                        attrs: &attrs,
                        depth,
                        target,
                        owner,
                        group,
                    },
                    &content,
                );
                n += 1;
            }
            Ok((n, 0))
        }
    }
}

/// Which content fields (`checksum`, `mime`) a scan output carries: a database's or Parquet's
/// where any entry has a value (a scan that read no contents leaves them all null), NDJSON's
/// where its first record has the key (a content scan writes its keys on every record, null
/// or not). Standard input cannot be looked at twice: it counts as carrying none.
pub fn content_fields(path: &Path, kind: InputKind) -> Result<ContentFields, StatsError> {
    match kind {
        InputKind::Parquet => Ok(columnar::reader::content_fields(path)?),
        InputKind::Database => Ok(entries_content_fields(&open_database(path)?)?),
        InputKind::Ndjson => {
            if path.as_os_str() == "-" {
                return Ok(ContentFields::default());
            }
            let file = std::fs::File::open(path).map_err(StatsError::io(path))?;
            let mut input = BufReader::with_capacity(1 << 16, file);
            let mut line = Vec::new();
            while let Some(whole) =
                read_line_bounded(&mut input, &mut line).map_err(StatsError::io(path))?
            {
                let Ok(serde_json::Value::Object(v)) = serde_json::from_slice(&line) else {
                    continue;
                };
                if whole && v.contains_key("path") {
                    return Ok(ContentFields {
                        checksum: v.contains_key("checksum"),
                        mime: v.contains_key("mime"),
                    });
                }
            }
            Ok(ContentFields::default())
        }
    }
}
