//! The report from a scan database: SQL aggregates and indexed queries, so memory does not
//! follow the number of rows.

use super::model::*;
use super::stream::DIR_TREE_DEPTH;
use super::StatsError;
use crate::output::schema::{entries_has_owner_columns, APPLICATION_ID, SCHEMA_VERSION};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// Opens a scan database read-only, checking that it is one and that its schema is known.
pub fn open_database(path: &Path) -> Result<Connection, StatsError> {
    // A scan killed during a commit leaves a hot journal, which only a connection that may
    // write can roll back; a read-only one would refuse the file.
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    if Path::new(&journal).exists() {
        if let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
            let _ = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()));
        }
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let app: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if app != APPLICATION_ID {
        return Err(StatsError::NotAScanDatabase(path.to_path_buf()));
    }
    if version > SCHEMA_VERSION {
        return Err(StatsError::SchemaTooNew {
            path: path.to_path_buf(),
            version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

/// A non-negative integer column (sizes, counts): SQLite gives i64, or f64 from `total()`.
pub fn to_u64(v: ValueRef<'_>) -> u64 {
    match v {
        ValueRef::Integer(i) => u64::try_from(i).unwrap_or(0),
        ValueRef::Real(f) if f > 0.0 => f as u64,
        _ => 0,
    }
}

/// An identifier column stored with its 64 bits in a signed integer.
pub fn bits_u64(v: ValueRef<'_>) -> u64 {
    match v {
        ValueRef::Integer(i) => i as u64,
        _ => 0,
    }
}

pub fn to_i64(v: ValueRef<'_>) -> i64 {
    match v {
        ValueRef::Integer(i) => i,
        ValueRef::Real(f) => f as i64,
        _ => 0,
    }
}

pub fn to_bytes(v: ValueRef<'_>) -> Vec<u8> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
        ValueRef::Integer(i) => i.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
        ValueRef::Null => Vec::new(),
    }
}

/// Runs `sql` with `{sum}` as SQLite's exact `sum`, or, where a sum does not fit in 64 bits
/// (only sizes a hostile server sent can do that), as the floating-point `total`.
pub fn query_sums<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StatsError> {
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

pub fn report_from_db(
    conn: &Connection,
    source: &str,
    w: &Wanted,
    now_ns: Option<i64>,
) -> Result<Report, StatsError> {
    let mut r = Report {
        source: source.to_string(),
        format: "sqlite",
        ..Report::default()
    };
    r.scan = conn
        .query_row(
            "SELECT url, status, started_ns, finished_ns, entries, errors, message, threads, \
             connections, backend FROM scan WHERE id = 1",
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
                    threads: row.get::<_, Option<i64>>(7)?.map(|n| n.max(0) as u64),
                    connections: row.get::<_, Option<i64>>(8)?.map(|n| n.max(0) as u64),
                    backend: row.get::<_, Option<String>>(9)?.filter(|b| !b.is_empty()),
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
    // Databases of schema versions 1 to 3 have no owner names.
    let names = entries_has_owner_columns(conn)?;
    for (on, id, name, slot) in [
        (w.by_uid, "uid", "owner", &mut r.by_uid),
        (w.by_gid, "gid", "\"group\"", &mut r.by_gid),
    ] {
        if on {
            let name = if names { name } else { "NULL" };
            // As `OwnerKey`: by the name where there is one, else by the id; ids first.
            *slot = Some(query_sums(
                conn,
                &format!(
                    "SELECT {name} AS key_name, CASE WHEN {name} IS NULL THEN {id} END AS key_id, \
                     count(*), {{sum}}(size), {{sum}}(used) FROM entries GROUP BY 1, 2 \
                     ORDER BY 4 DESC, 3 DESC, CAST(key_name AS BLOB), key_id LIMIT ?1"
                ),
                &[&top],
                |row| {
                    Ok(GroupRow {
                        key: match row.get_ref(0)? {
                            ValueRef::Null => OwnerKey::Id(
                                to_i64(row.get_ref(1)?).clamp(0, i64::from(u32::MAX)) as u32,
                            ),
                            v => OwnerKey::Name(to_bytes(v)),
                        },
                        entries: to_u64(row.get_ref(2)?),
                        bytes: to_u64(row.get_ref(3)?),
                        used: to_u64(row.get_ref(4)?),
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
            owner: match row.get_ref(6)? {
                ValueRef::Null => None,
                v => Some(to_bytes(v)),
            },
            group: match row.get_ref(7)? {
                ValueRef::Null => None,
                v => Some(to_bytes(v)),
            },
        })
    };
    // Databases of schema versions 1 to 3 have no owner names.
    let file_columns = if entries_has_owner_columns(conn)? {
        "path, size, used, mtime_ns, uid, gid, owner, \"group\""
    } else {
        "path, size, used, mtime_ns, uid, gid, NULL, NULL"
    };
    if w.largest_files {
        r.largest_files = Some(query_sums(
            conn,
            &format!(
                "SELECT {file_columns} FROM entries WHERE type = 'file' \
                 ORDER BY size DESC, CAST(path AS BLOB) LIMIT ?1"
            ),
            &[&top],
            file_row,
        )?);
    }
    if w.oldest_files {
        r.oldest_files = Some(query_sums(
            conn,
            &format!(
                "SELECT {file_columns} FROM entries WHERE type = 'file' \
                 ORDER BY mtime_ns, CAST(path AS BLOB) LIMIT ?1"
            ),
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
        let mut atimes = [Bucket::default(); AGE_BUCKETS.len()];
        let mut stmt =
            conn.prepare("SELECT size, mtime_ns, atime_ns FROM entries WHERE type = 'file'")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let size = to_u64(row.get_ref(0)?);
            let mtime = to_i64(row.get_ref(1)?);
            let atime = to_i64(row.get_ref(2)?);
            add(&mut sizes[size_bucket(size)], size);
            add(&mut ages[age_bucket(r.age_reference_ns, mtime)], size);
            add(&mut atimes[age_bucket(r.age_reference_ns, atime)], size);
        }
        if w.size_histogram {
            r.size_histogram = Some(sizes.to_vec());
        }
        if w.age_histogram {
            r.age_histogram = Some(ages.to_vec());
            r.atime_histogram = Some(atimes.to_vec());
        }
    }
    if w.dir_tree {
        r.dir_tree = Some(dir_tree_from_db(conn)?);
    }
    if w.errors {
        r.errors = Some(errors_from_db(conn, top)?);
    }
    Ok(r)
}

/// The first [`DIR_TREE_DEPTH`] levels of directories below the root, each directory's
/// largest subdirectories ([`DIR_TREE_CHILDREN`] per level), found through the `parent_id`
/// index (one query per directory listed: at most 1 + 8 + 32).
fn dir_tree_from_db(conn: &Connection) -> Result<DirTree, StatsError> {
    let root: Option<i64> = conn
        .query_row(
            "SELECT id FROM entries WHERE type = 'dir' AND path = '.'",
            [],
            |row| row.get(0),
        )
        .ok();
    let mut tree = DirTree::default();
    let Some(root) = root else {
        return Ok(tree);
    };
    let mut stmt = conn.prepare(
        "SELECT e.id, e.path, d.recursive_entries, d.recursive_bytes FROM entries AS e \
         JOIN dirs AS d ON d.entry_id = e.id WHERE e.parent_id = ?1 AND e.type = 'dir' \
         ORDER BY d.recursive_bytes DESC, CAST(e.path AS BLOB) LIMIT ?2",
    )?;
    // Depth first: one list of children per level, the next to show last.
    let mut pending: Vec<Vec<(i64, DirRow)>> = Vec::new();
    fn children(
        stmt: &mut rusqlite::Statement<'_>,
        id: i64,
        limit: i64,
    ) -> rusqlite::Result<Vec<(i64, DirRow)>> {
        let mut rows = stmt.query(rusqlite::params![id, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push((
                row.get(0)?,
                DirRow {
                    path: to_bytes(row.get_ref(1)?),
                    recursive_entries: to_u64(row.get_ref(2)?),
                    recursive_bytes: to_u64(row.get_ref(3)?),
                },
            ));
        }
        Ok(out)
    }
    let mut first = children(&mut stmt, root, DIR_TREE_CHILDREN[0] as i64)?;
    first.reverse();
    pending.push(first);
    while let Some(level) = pending.last_mut() {
        let Some((id, row)) = level.pop() else {
            pending.pop();
            continue;
        };
        let depth = pending.len() as u32;
        tree.rows.push(row);
        if depth < DIR_TREE_DEPTH {
            let mut kids = children(&mut stmt, id, DIR_TREE_CHILDREN[depth as usize] as i64)?;
            kids.reverse();
            pending.push(kids);
        }
    }
    Ok(tree)
}

/// Errors by (procedure, status), most frequent first, and the first `top` errors.
fn errors_from_db(conn: &Connection, top: i64) -> Result<ErrorSummary, StatsError> {
    let mut e = ErrorSummary {
        total: conn.query_row("SELECT count(*) FROM errors", [], |r| r.get::<_, i64>(0))? as u64,
        ..ErrorSummary::default()
    };
    let mut stmt = conn.prepare(
        "SELECT procedure, coalesce(status, ''), count(*) FROM errors GROUP BY 1, 2 \
         ORDER BY 3 DESC, 1, 2 LIMIT ?1",
    )?;
    let mut rows = stmt.query([top])?;
    while let Some(row) = rows.next()? {
        e.by_kind.push((
            String::from_utf8_lossy(&to_bytes(row.get_ref(0)?)).into_owned(),
            String::from_utf8_lossy(&to_bytes(row.get_ref(1)?)).into_owned(),
            to_u64(row.get_ref(2)?),
        ));
    }
    let mut stmt = conn.prepare(
        "SELECT path, procedure, coalesce(status, ''), message FROM errors ORDER BY id LIMIT ?1",
    )?;
    let mut rows = stmt.query([top])?;
    while let Some(row) = rows.next()? {
        e.first.push((
            to_bytes(row.get_ref(0)?),
            String::from_utf8_lossy(&to_bytes(row.get_ref(1)?)).into_owned(),
            String::from_utf8_lossy(&to_bytes(row.get_ref(2)?)).into_owned(),
            String::from_utf8_lossy(&to_bytes(row.get_ref(3)?)).into_owned(),
        ));
    }
    Ok(e)
}
