//! The end of a load: the indexes and `dirs` committed with the final schema, then one
//! SQLite transaction for the late rows, the children of directories that never arrived,
//! and the `scan` row's totals and status.

use super::load::LoadState;
use super::{clamp_i64, unix_ns, DbError, DbSummary, ScanEnd, INSERT_ENTRY_SQL};
use crate::output::btree::{decode_record, BtreeError, Value};
use crate::output::schema::{
    entries_has_content_columns, entries_has_owner_columns, INSERT_ENTRY_WITHOUT_CONTENT_SQL,
    INSERT_ENTRY_WITHOUT_OWNERS_SQL,
};
use rusqlite::{Connection, Statement};
use std::path::Path;
use std::time::Instant;

/// Builds and commits the indexes and the `dirs` table, then lets SQLite write the rest.
pub(super) fn finish(
    state: LoadState,
    path: &Path,
    final_schema: &[u8],
    end: &ScanEnd,
) -> Result<DbSummary, DbError> {
    let t0 = Instant::now();
    let LoadState {
        mut file,
        tables,
        late_rows,
        mut durability,
        tasks_done,
        mut dirs,
        entries,
        files,
        bytes,
        used,
        errors,
        load_time,
        checkpoints,
        checkpoint_time,
        ..
    } = state;
    dirs.sum_recursive();
    let built = tables.finish(&mut file, &dirs);
    let index_time = t0.elapsed();
    let t_sync = Instant::now();
    let committed = built.and_then(|()| {
        file.replace_schema_page(final_schema);
        file.commit(true).map_err(BtreeError::from)?;
        Ok(())
    });
    if let Err(e) = committed {
        // The last commit stays; what was written after it goes, and its space with it.
        let _ = file.discard_uncommitted();
        return Err(e);
    }
    // Closing the file releases the writer's locks: SQLite takes the file back.
    drop(file);
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = DELETE;
         PRAGMA synchronous = FULL;",
    )?;
    let tx = conn.transaction()?;
    let late_count = late_rows;
    move_late_rows(&tx)?;
    let mut missing_parents = 0u64;
    {
        let mut orphan = tx.prepare("UPDATE entries SET parent_id = NULL WHERE parent_id = ?1")?;
        for d in dirs.missing() {
            missing_parents += 1;
            orphan.execute([d.id])?;
        }
    }
    let dir_count = dirs.arrived().count() as u64;
    tx.execute(
        "UPDATE scan SET finished_ns = ?1, status = ?2, message = ?3, entries = ?4, \
         files = ?5, dirs = ?6, bytes = ?7, used = ?8, errors = ?9, threads = ?10, \
         connections = ?11, backend = ?12 WHERE id = 1",
        rusqlite::params![
            unix_ns(end.finished),
            end.status.as_str(),
            end.message,
            clamp_i64(entries),
            clamp_i64(files),
            clamp_i64(dir_count),
            clamp_i64(bytes),
            clamp_i64(used),
            clamp_i64(errors),
            end.threads as i64,
            end.connections as i64,
            end.backend,
        ],
    )?;
    tx.commit()?;
    conn.close().map_err(|(_, e)| DbError::Sqlite(e))?;
    // Every batch received is in the file now.
    if let Some(l) = &mut durability {
        if !tasks_done.is_empty() {
            l.durable(&tasks_done);
        }
    }
    Ok(DbSummary {
        entries,
        dirs: dir_count,
        errors,
        duplicate_dirs: dirs.duplicate_dirs,
        missing_parents,
        late_rows: late_count,
        load_time,
        index_time,
        sync_time: t_sync.elapsed(),
        finish_time: t0.elapsed(),
        checkpoints,
        checkpoint_time,
    })
}

/// Moves the rows of the late table into `entries` (with their index entries) and drops the
/// table: the end of every load, and what a resumed scan does first with the database it
/// goes on from. Returns the rows moved.
pub(crate) fn move_late_rows(tx: &rusqlite::Transaction<'_>) -> Result<u64, DbError> {
    let exists: bool = tx.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [super::LATE_ENTRIES_TABLE],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    let mut moved = 0;
    {
        // The late rows of a database of an earlier version (a resume or merge of a scan
        // that version started) have no content or owner values, nor does its table their
        // columns.
        let insert_sql = if entries_has_owner_columns(tx)? {
            INSERT_ENTRY_SQL
        } else if entries_has_content_columns(tx)? {
            INSERT_ENTRY_WITHOUT_OWNERS_SQL
        } else {
            INSERT_ENTRY_WITHOUT_CONTENT_SQL
        };
        let mut insert_entry = tx.prepare(insert_sql)?;
        let mut late = tx.prepare("SELECT entry_id, record FROM late_entries ORDER BY seq")?;
        let mut rows = late.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let record = row.get_ref(1)?.as_blob().map_err(|_| DbError::BadLateRow)?;
            let values = decode_record(record).ok_or(DbError::BadLateRow)?;
            insert_entry.raw_bind_parameter(1, id)?;
            for (i, v) in values.iter().enumerate().skip(1) {
                bind_value(&mut insert_entry, i + 1, v)?;
            }
            insert_entry.raw_execute()?;
            moved += 1;
        }
    }
    tx.execute_batch("DROP TABLE late_entries")?;
    Ok(moved)
}

/// Records, where SQLite can still write the file, that the scan failed and why. (After a
/// full disk this may fail too; the file then stays as its last commit left it.)
pub(super) fn mark_failed(path: &Path, end: &ScanEnd, why: &str) {
    let mark = || -> rusqlite::Result<()> {
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL;")?;
        conn.execute(
            "UPDATE scan SET status = 'failed', finished_ns = ?1, message = ?2 WHERE id = 1",
            rusqlite::params![unix_ns(end.finished), why],
        )?;
        Ok(())
    };
    if let Err(e) = mark() {
        tracing::debug!(error = %e, "could not mark the scan failed");
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
