//! Merging the parts of a multi-host scan into the output one host would have written.
//!
//! Hosts write disjoint sets of directories, except where a host stopped and its tasks were
//! taken over: the entries it wrote for those directories before it stopped are written again
//! by the host that took over. Every entry of every part goes through one external sort (by
//! path, bounded memory, spilling to a temporary file) and each path is kept once.
//!
//! **Which copy wins:** the one with the latest `ctime_ns` (a later listing saw the later
//! state of the entry, as a single scan run last would), then the part named first. Copies
//! of one path from one scan are nearly always identical.
//!
//! The merged entries go in path order, so every directory comes before its children: the
//! database writer resolves parents and sums directory totals as a single scan's writer does.
//! A part's torn last line (a host killed mid-write) is dropped; any other malformed line is an
//! error. The content fields (`checksum`, `mime`) go along where a part has them.

use super::extsort::ExternalSorter;
use super::{Batcher, Format, OutputBatch};
use crate::output::schema::{
    entries_content_fields, entries_has_content_columns, entries_owner_select,
};
use crate::record::{
    content_of_json, ContentFields, EntryAttrs, EntryContent, EntryRecord, EntryType,
};
use crossbeam_channel::Sender;
use rusqlite::types::ValueRef;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Memory for sorting before runs spill to the temporary file.
pub const SORT_MEMORY_BYTES: usize = 256 << 20;
/// A line longer than this is malformed (a 4096-component path of 255-byte names fits).
const LINE_BYTES_MAX: usize = 4 << 20;

#[derive(Debug, Error)]
pub enum MergeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: line {line}: {why}")]
    BadLine {
        path: PathBuf,
        line: u64,
        why: String,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("sorting entries: {0}")]
    Sort(io::Error),
    #[error("{path}: {why}")]
    Part { path: PathBuf, why: String },
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeSummary {
    /// Entries read from all parts.
    pub read: u64,
    /// Entries written (each path once).
    pub written: u64,
    /// Copies dropped because another part had the same path.
    pub duplicates: u64,
    /// Torn last lines dropped.
    pub torn_lines: u64,
    /// Per-path errors of the database parts written to a database (each once; a directory
    /// taken over may have failed on both hosts).
    pub errors: u64,
    /// The content fields some part carries (the merged output carries them all).
    pub content: ContentFields,
}

/// A part: an NDJSON file or a scan database (told apart by the SQLite header).
pub fn is_database(path: &Path) -> Result<bool, MergeError> {
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(path).map_err(|source| MergeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let n = io::Read::read(&mut f, &mut head).map_err(|source| MergeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(n == 16 && &head == super::sqlite::SQLITE_HEADER)
}

/// The sort key of one copy: `path 0x00 !ctime rank ndjson-line` (the line with the content
/// fields `fields`). A path holds no NUL byte (the walk refuses such names), so the path's end
/// sorts before any longer path.
fn sort_key(
    r: &EntryRecord,
    fields: ContentFields,
    content: &EntryContent<'_>,
    rank: u32,
    line: &mut Vec<u8>,
) -> Vec<u8> {
    line.clear();
    if fields.any() {
        r.as_ref().write_ndjson_content(line, fields, content);
    } else {
        r.write_ndjson(line);
    }
    let mut k = Vec::with_capacity(r.path.len() + 13 + line.len());
    k.extend_from_slice(&r.path);
    k.push(0);
    // Latest ctime first: the bits of i64 flipped so that larger sorts first.
    k.extend_from_slice(&(!((r.attrs.ctime_ns as u64) ^ (1 << 63))).to_be_bytes());
    k.extend_from_slice(&rank.to_be_bytes());
    k.extend_from_slice(line);
    k
}

fn key_path(k: &[u8]) -> &[u8] {
    let end = k.iter().position(|&b| b == 0).unwrap_or(k.len());
    &k[..end]
}

fn key_line(k: &[u8]) -> &[u8] {
    &k[key_path(k).len() + 13..]
}

fn read_ndjson(
    path: &Path,
    rank: u32,
    sorter: &mut ExternalSorter<Vec<u8>>,
    summary: &mut MergeSummary,
) -> Result<(), MergeError> {
    let io_err = |source| MergeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io_err)?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut buf = Vec::new();
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        let got = io::Read::take(&mut r, LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io_err)?;
        if got == 0 {
            return Ok(());
        }
        n += 1;
        if buf.last() != Some(&b'\n') {
            if buf.len() > LINE_BYTES_MAX {
                return Err(MergeError::BadLine {
                    path: path.to_path_buf(),
                    line: n,
                    why: "longer than 4 MiB".into(),
                });
            }
            // The end of the file without a newline: a write cut short.
            summary.torn_lines += 1;
            return Ok(());
        }
        let text = std::str::from_utf8(&buf[..buf.len() - 1]).map_err(|_| MergeError::BadLine {
            path: path.to_path_buf(),
            line: n,
            why: "not UTF-8".into(),
        })?;
        let bad = |why: String| MergeError::BadLine {
            path: path.to_path_buf(),
            line: n,
            why,
        };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let rec = EntryRecord::from_json_value(&v).map_err(bad)?;
        // A record carries the content fields its scan wrote, null or not.
        let fields = ContentFields {
            checksum: v.get("checksum").is_some(),
            mime: v.get("mime").is_some(),
        };
        summary.content.checksum |= fields.checksum;
        summary.content.mime |= fields.mime;
        summary.read += 1;
        sorter
            .push(sort_key(
                &rec,
                fields,
                &content_of_json(&v),
                rank,
                &mut line,
            ))
            .map_err(MergeError::Sort)?;
    }
}

fn read_database(
    path: &Path,
    rank: u32,
    sorter: &mut ExternalSorter<Vec<u8>>,
    summary: &mut MergeSummary,
) -> Result<(), MergeError> {
    let sql_err = |source| MergeError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    // A part whose host was killed holds the directories that arrived late in the writer's
    // own table; their tasks may be acknowledged, so they are rows of the part.
    super::sqlite::settle_late_rows(path).map_err(|e| MergeError::Part {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql_err)?;
    // A database of schema version 1 has no content columns.
    let columns = if entries_has_content_columns(&conn).map_err(sql_err)? {
        "checksum, mime"
    } else {
        "NULL, NULL"
    };
    // Nor has one of versions 1 to 3 owner columns.
    let owners = entries_owner_select(&conn).map_err(sql_err)?;
    let fields = entries_content_fields(&conn).map_err(sql_err)?;
    summary.content.checksum |= fields.checksum;
    summary.content.mime |= fields.mime;
    let mut stmt = conn
        .prepare(&format!(
            "SELECT path, type, size, used, mode, nlink, uid, gid, fileid, fsid, atime_ns, \
             mtime_ns, ctime_ns, depth, target, {columns}, {owners} FROM entries"
        ))
        .map_err(sql_err)?;
    let mut rows = stmt.query([]).map_err(sql_err)?;
    let mut line = Vec::new();
    let bytes = |v: ValueRef<'_>| -> Option<Vec<u8>> {
        match v {
            ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
            _ => None,
        }
    };
    while let Some(row) = rows.next().map_err(sql_err)? {
        let int = |i: usize| -> Result<i64, MergeError> { row.get::<_, i64>(i).map_err(sql_err) };
        let kind: String = row.get(1).map_err(sql_err)?;
        let rec = EntryRecord {
            path: bytes(row.get_ref(0).map_err(sql_err)?).unwrap_or_default(),
            attrs: EntryAttrs {
                kind: EntryType::parse(&kind).unwrap_or(EntryType::Unknown),
                size: int(2)? as u64,
                used: int(3)? as u64,
                mode: int(4)? as u32,
                nlink: int(5)? as u32,
                uid: int(6)? as u32,
                gid: int(7)? as u32,
                fileid: int(8)? as u64,
                fsid: int(9)? as u64,
                atime_ns: int(10)?,
                mtime_ns: int(11)?,
                ctime_ns: int(12)?,
            },
            depth: int(13)? as u32,
            target: bytes(row.get_ref(14).map_err(sql_err)?),
            owner: bytes(row.get_ref(17).map_err(sql_err)?),
            group: bytes(row.get_ref(18).map_err(sql_err)?),
        };
        let checksum: Option<String> = row.get(15).map_err(sql_err)?;
        let mime: Option<String> = row.get(16).map_err(sql_err)?;
        let content = EntryContent {
            checksum: checksum.as_deref(),
            mime: mime.as_deref(),
        };
        summary.read += 1;
        sorter
            .push(sort_key(&rec, fields, &content, rank, &mut line))
            .map_err(MergeError::Sort)?;
    }
    Ok(())
}

/// Writes one merged NDJSON line (newline included) to the output.
type EmitLine<'a> = Box<dyn FnMut(&[u8]) -> io::Result<()> + 'a>;

/// Where merged entries go.
pub enum MergeOutput<'a> {
    /// NDJSON lines, as `scan` writes them.
    Ndjson(&'a mut dyn Write),
    /// Batches for a writer (the scan database's), encoded as `format`.
    Batches(Format, Sender<OutputBatch>),
}

/// Merges `parts` (NDJSON files or scan databases, in any mix) into `out`.
pub fn merge(parts: &[PathBuf], out: MergeOutput<'_>) -> Result<MergeSummary, MergeError> {
    let mut summary = MergeSummary::default();
    let mut sorter = ExternalSorter::<Vec<u8>>::new(SORT_MEMORY_BYTES);
    let mut databases = Vec::new();
    for (rank, p) in parts.iter().enumerate() {
        if is_database(p)? {
            read_database(p, rank as u32, &mut sorter, &mut summary)?;
            databases.push(p);
        } else {
            read_ndjson(p, rank as u32, &mut sorter, &mut summary)?;
        }
    }
    let sorted = sorter.finish().map_err(MergeError::Sort)?;
    let mut last: Option<Vec<u8>> = None;
    // A database gets the parts' per-path errors too (NDJSON parts keep theirs in the files
    // their hosts wrote with `--errors`, and an NDJSON output has no place for them).
    let errors_to = match &out {
        MergeOutput::Batches(Format::SqliteRows, tx) => Some(tx.clone()),
        _ => None,
    };
    let mut emit: EmitLine<'_> = match out {
        MergeOutput::Ndjson(w) => Box::new(move |line: &[u8]| w.write_all(line)),
        MergeOutput::Batches(format, tx) => {
            let mut batcher = Batcher::new(format, tx, None).with_content(summary.content);
            Box::new(move |line: &[u8]| {
                let v: serde_json::Value =
                    serde_json::from_slice(&line[..line.len() - 1]).map_err(io::Error::other)?;
                let rec = EntryRecord::from_json_value(&v).map_err(io::Error::other)?;
                batcher.entry_with_content(&rec.as_ref(), &content_of_json(&v));
                Ok(())
            })
        }
    };
    for key in sorted {
        let key = key.map_err(MergeError::Sort)?;
        let path = key_path(&key);
        if last.as_deref() == Some(path) {
            summary.duplicates += 1;
            continue;
        }
        emit(key_line(&key)).map_err(|source| MergeError::Io {
            path: PathBuf::from("merged output"),
            source,
        })?;
        summary.written += 1;
        last = Some(path.to_vec());
    }
    drop(emit);
    if let Some(tx) = errors_to {
        let mut seen = std::collections::HashSet::new();
        for p in databases {
            merge_database_errors(p, &mut seen, &tx, &mut summary)?;
        }
    }
    Ok(summary)
}

/// Per-path errors sent to the database writer at a time.
const ERRORS_PER_BATCH: usize = 4096;

/// Sends the `errors` rows of database part `path` not sent before (`seen`: hashes of the
/// errors sent, 8 bytes each) to the database writer.
fn merge_database_errors(
    path: &Path,
    seen: &mut std::collections::HashSet<u64>,
    tx: &Sender<OutputBatch>,
    summary: &mut MergeSummary,
) -> Result<(), MergeError> {
    use std::hash::{Hash, Hasher};
    let sql_err = |source| MergeError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql_err)?;
    let mut batch = Vec::new();
    let mut sent = true;
    super::schema::for_each_error(&conn, |e| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        e.hash(&mut h);
        if seen.insert(h.finish()) {
            batch.push(e);
            summary.errors += 1;
            if batch.len() == ERRORS_PER_BATCH {
                sent = tx
                    .send(OutputBatch::Errors(std::mem::take(&mut batch)))
                    .is_ok();
            }
        }
        sent
    })
    .map_err(sql_err)?;
    let gone = || MergeError::Io {
        path: PathBuf::from("merged output"),
        source: io::Error::other("the database writer stopped"),
    };
    if !sent {
        return Err(gone());
    }
    if !batch.is_empty() {
        tx.send(OutputBatch::Errors(batch)).map_err(|_| gone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(path: &str, ctime_ns: i64) -> EntryRecord {
        EntryRecord {
            path: path.as_bytes().to_vec(),
            attrs: EntryAttrs {
                ctime_ns,
                ..EntryAttrs::names_only(7)
            },
            depth: path.matches('/').count() as u32 + 1,
            target: None,
            owner: None,
            group: None,
        }
    }

    #[test]
    fn keys_order_parents_first_and_newest_copy_first() {
        let mut line = Vec::new();
        let none = ContentFields::default();
        let c = EntryContent::default();
        let mut keys = [
            sort_key(&rec("a b", 1), none, &c, 0, &mut line),
            sort_key(&rec("a/b", 1), none, &c, 0, &mut line),
            sort_key(&rec("a", -5), none, &c, 0, &mut line),
            sort_key(&rec("a", 9), none, &c, 1, &mut line),
            sort_key(&rec("a", 9), none, &c, 0, &mut line),
        ];
        keys.sort();
        let order: Vec<(&[u8], i64, u32)> = keys
            .iter()
            .map(|k| {
                let p = key_path(k);
                let rank = u32::from_be_bytes(k[p.len() + 9..p.len() + 13].try_into().unwrap());
                let r =
                    EntryRecord::from_json(std::str::from_utf8(key_line(k)).unwrap().trim_end())
                        .unwrap();
                (p, r.attrs.ctime_ns, rank)
            })
            .collect();
        assert_eq!(
            order,
            vec![
                (&b"a"[..], 9, 0),
                (&b"a"[..], 9, 1),
                (&b"a"[..], -5, 0),
                (&b"a b"[..], 1, 0),
                (&b"a/b"[..], 1, 0),
            ]
        );
    }

    #[test]
    fn parts_merge_once_per_path_and_torn_lines_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, recs: &[EntryRecord], tail: &[u8]| {
            let mut b = Vec::new();
            for r in recs {
                r.write_ndjson(&mut b);
            }
            b.extend_from_slice(tail);
            let p = dir.path().join(name);
            std::fs::write(&p, b).unwrap();
            p
        };
        let a = write("a.ndjson", &[rec(".", 1), rec("x", 1), rec("x/1", 1)], b"");
        let b = write(
            "b.ndjson",
            &[rec(".", 1), rec("x/1", 2), rec("y", 1)],
            b"{\"path\":\"y/tor",
        );
        let mut out = Vec::new();
        let s = merge(&[a, b], MergeOutput::Ndjson(&mut out)).unwrap();
        assert_eq!(
            s,
            MergeSummary {
                read: 6,
                written: 4,
                duplicates: 2,
                torn_lines: 1,
                errors: 0,
                content: ContentFields::default(),
            }
        );
        let mut expected = Vec::new();
        for r in [rec(".", 1), rec("x", 1), rec("x/1", 2), rec("y", 1)] {
            r.write_ndjson(&mut expected);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected).unwrap()
        );
        // A malformed line that is not the last is an error.
        let c = write("c.ndjson", &[], b"{oops}\n");
        let e = merge(&[c], MergeOutput::Ndjson(&mut Vec::new())).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    /// A part's checksums and types reach the merged database; a part without them adds rows
    /// with none.
    #[test]
    fn content_fields_of_the_parts_are_carried() {
        use crate::output::sqlite::{ScanEnd, ScanInfo, ScanStatus, SqliteWriter};
        let dir = tempfile::tempdir().unwrap();
        let file = |path: &str| EntryRecord {
            attrs: EntryAttrs {
                kind: EntryType::File,
                ..rec(path, 1).attrs
            },
            ..rec(path, 1)
        };
        let both = ContentFields {
            checksum: true,
            mime: true,
        };
        let mut a = Vec::new();
        rec(".", 1)
            .as_ref()
            .write_ndjson_content(&mut a, both, &EntryContent::default());
        file("x").as_ref().write_ndjson_content(
            &mut a,
            both,
            &EntryContent {
                checksum: Some("xxh3:0011"),
                mime: Some("text/plain"),
            },
        );
        let mut b = Vec::new();
        file("y").write_ndjson(&mut b);
        let (pa, pb) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
        std::fs::write(&pa, a).unwrap();
        std::fs::write(&pb, b).unwrap();
        let db = dir.path().join("merged.db");
        let info = ScanInfo {
            url: String::new(),
            server: String::new(),
            options_json: "{}".into(),
            started: std::time::SystemTime::now(),
            resumes: 0,
        };
        let (writer, tx) = SqliteWriter::create(
            &db,
            &info,
            std::time::Duration::from_secs(10),
            std::sync::Arc::default(),
            None,
        )
        .unwrap();
        let summary = merge(&[pa, pb], MergeOutput::Batches(Format::SqliteRows, tx)).unwrap();
        assert_eq!(summary.content, both);
        writer
            .finish(&ScanEnd {
                status: ScanStatus::Completed,
                finished: std::time::SystemTime::now(),
                message: None,
                threads: 1,
                connections: 1,
                backend: String::new(),
            })
            .unwrap();
        let conn = rusqlite::Connection::open(&db).unwrap();
        let rows: Vec<(String, Option<String>, Option<String>)> = conn
            .prepare("SELECT path, checksum, mime FROM entries ORDER BY path")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (".".into(), None, None),
                (
                    "x".into(),
                    Some("xxh3:0011".into()),
                    Some("text/plain".into())
                ),
                ("y".into(), None, None),
            ]
        );
    }
}
