//! The scan database's schema in one place: the SQL that creates it, its version and
//! application id, and the derived columns (`extension`, parent paths) that the writer, `stats`,
//! `report` and `convert` all compute the same way. Documented in `docs/database.md`.

use std::borrow::Cow;

/// Stored as `PRAGMA user_version`.
/// 2: `scan.resumes`.
/// 3: `entries.checksum` and `entries.mime` (last, nullable: a database of an earlier version
/// reads as one whose scan read no contents; see [`entries_has_content_columns`]).
/// 4: `entries.owner` and `entries."group"` (last, nullable: the NFSv4 owner names that are
/// not numbers; a database of an earlier version reads as one without names; see
/// [`entries_has_owner_columns`]). `group` is an SQL keyword: queries quote it.
pub const SCHEMA_VERSION: i32 = 4;
/// Stored as `PRAGMA application_id`: "NFSW".
pub const APPLICATION_ID: i32 = 0x4e46_5357;
/// The first bytes of every SQLite 3 database file.
pub const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
/// Extensions longer than this are not extensions (`a.0123456789abcdef0` is a name).
pub const EXTENSION_BYTES_MAX: usize = 16;
pub const SCHEMA_SQL: &str = "
CREATE TABLE entries (
    id        INTEGER PRIMARY KEY,
    parent_id INTEGER,
    name      TEXT NOT NULL,
    path      TEXT NOT NULL,
    type      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    used      INTEGER NOT NULL,
    mode      INTEGER NOT NULL,
    nlink     INTEGER NOT NULL,
    uid       INTEGER NOT NULL,
    gid       INTEGER NOT NULL,
    fileid    INTEGER NOT NULL,
    fsid      INTEGER NOT NULL,
    atime_ns  INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    ctime_ns  INTEGER NOT NULL,
    depth     INTEGER NOT NULL,
    extension TEXT,
    target    TEXT,
    checksum  TEXT,
    mime      TEXT,
    owner     TEXT,
    \"group\"   TEXT
);
CREATE TABLE dirs (
    entry_id          INTEGER PRIMARY KEY,
    direct_entries    INTEGER NOT NULL,
    direct_bytes      INTEGER NOT NULL,
    recursive_entries INTEGER NOT NULL,
    recursive_bytes   INTEGER NOT NULL
);
CREATE TABLE errors (
    id        INTEGER PRIMARY KEY,
    path      TEXT NOT NULL,
    procedure TEXT NOT NULL,
    status    TEXT,
    message   TEXT NOT NULL
);
CREATE TABLE scan (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    url          TEXT NOT NULL,
    server       TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    options      TEXT NOT NULL,
    started_ns   INTEGER NOT NULL,
    finished_ns  INTEGER,
    status       TEXT NOT NULL,
    message      TEXT,
    entries      INTEGER,
    files        INTEGER,
    dirs         INTEGER,
    bytes        INTEGER,
    used         INTEGER,
    errors       INTEGER,
    threads      INTEGER,
    connections  INTEGER,
    backend      TEXT,
    resumes      INTEGER NOT NULL DEFAULT 0
);
";

/// Created empty with the schema and filled at the end of the load from sorted keys: sorting
/// once is much cheaper than keeping them up to date per row. Paths are indexed for
/// directories only: an index of every path costs about three times the parent index on real
/// trees (long keys with shared prefixes, in no useful order), while directory paths plus
/// `parent_id` find any entry with two index searches.
pub const INDEX_SQL: &str = "
CREATE INDEX entries_parent_id ON entries(parent_id);
CREATE INDEX entries_dir_path ON entries(path) WHERE type = 'dir';
";

pub const INSERT_ENTRY_SQL: &str = "INSERT INTO entries (id, parent_id, name, path, type, size, \
    used, mode, nlink, uid, gid, fileid, fsid, atime_ns, mtime_ns, ctime_ns, depth, extension, \
    target, checksum, mime, owner, \"group\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
    ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)";

/// [`INSERT_ENTRY_SQL`] for a database of version 3, which has no owner columns: its late
/// rows (records of 21 values) are settled by a resume or a merge of the new version.
pub const INSERT_ENTRY_WITHOUT_OWNERS_SQL: &str = "INSERT INTO entries (id, parent_id, name, \
    path, type, size, used, mode, nlink, uid, gid, fileid, fsid, atime_ns, mtime_ns, ctime_ns, \
    depth, extension, target, checksum, mime) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
    ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)";

/// [`INSERT_ENTRY_SQL`] for a database of version 1 or 2, which has no content columns: its
/// late rows (records of 19 values) are settled by a resume or a merge of the new version.
pub const INSERT_ENTRY_WITHOUT_CONTENT_SQL: &str = "INSERT INTO entries (id, parent_id, name, \
    path, type, size, used, mode, nlink, uid, gid, fileid, fsid, atime_ns, mtime_ns, ctime_ns, \
    depth, extension, target) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
    ?14, ?15, ?16, ?17, ?18, ?19)";

/// Whether a scan database's `entries` table has the content columns (`checksum`, `mime`):
/// databases of schema version 1 have not. Readers select NULL in their place there.
pub fn entries_has_content_columns(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    entries_has_columns(conn, "checksum", "mime")
}

/// Whether a scan database's `entries` table has the owner columns (`owner`, `group`):
/// databases of schema versions 1 to 3 have not. Readers select NULL in their place there.
pub fn entries_has_owner_columns(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    entries_has_columns(conn, "owner", "group")
}

/// The owner columns as a reader selects them: NULLs where the database has none.
pub fn entries_owner_select(conn: &rusqlite::Connection) -> rusqlite::Result<&'static str> {
    Ok(if entries_has_owner_columns(conn)? {
        "owner, \"group\""
    } else {
        "NULL, NULL"
    })
}

fn entries_has_columns(conn: &rusqlite::Connection, a: &str, b: &str) -> rusqlite::Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('entries') WHERE name IN (?1, ?2)",
        [a, b],
        |r| r.get(0),
    )?;
    Ok(n == 2)
}

/// Which content columns of a scan database hold any value: a scan that read no contents
/// leaves them all NULL, and a database of version 1 has none. Stops at the first value (at
/// once for a content scan); a scan without one is read through, as the readers that ask
/// read every row anyway.
pub fn entries_content_fields(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<crate::record::ContentFields> {
    if !entries_has_content_columns(conn)? {
        return Ok(crate::record::ContentFields::default());
    }
    let any = |column: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM entries WHERE {column} IS NOT NULL)"),
            [],
            |r| r.get(0),
        )
    };
    Ok(crate::record::ContentFields {
        checksum: any("checksum")?,
        mime: any("mime")?,
    })
}

/// Every row of a scan database's `errors` table, in order, as the [`PathError`] it was
/// written from; `f` returns whether to go on. (`resume` copies them, `merge` unites them.)
///
/// [`PathError`]: crate::path_error::PathError
pub fn for_each_error(
    conn: &rusqlite::Connection,
    mut f: impl FnMut(crate::path_error::PathError) -> bool,
) -> rusqlite::Result<()> {
    use crate::path_error::PathError;
    let mut stmt =
        conn.prepare("SELECT path, procedure, status, message FROM errors ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let path = match r.get_ref(0)? {
            rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
            _ => Vec::new(),
        };
        let procedure: String = r.get(1)?;
        let status: Option<String> = r.get(2)?;
        let go_on = f(PathError {
            path,
            op: PathError::op_named(&procedure),
            message: r.get(3)?,
            status: status.as_deref().and_then(PathError::status_named),
        });
        if !go_on {
            break;
        }
    }
    Ok(())
}

/// The extension of a file name, as the `extension` column and the by-extension report
/// define it: the text after the last dot, where that dot is not the name's first character,
/// lowercased; `None` where there is none, it is longer than [`EXTENSION_BYTES_MAX`], is not
/// valid UTF-8, or holds whitespace or control characters.
pub fn extension_of(name: &[u8]) -> Option<Cow<'_, str>> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    if dot == 0 {
        return None;
    }
    let ext = &name[dot + 1..];
    if ext.is_empty() || ext.len() > EXTENSION_BYTES_MAX {
        return None;
    }
    let ext = std::str::from_utf8(ext).ok()?;
    if ext.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    if ext.chars().any(char::is_uppercase) {
        Some(Cow::Owned(ext.to_lowercase()))
    } else {
        Some(Cow::Borrowed(ext))
    }
}

/// Splits a record path into its parent's path and its name ("." is the root and has no
/// parent; its children's paths have no prefix).
pub fn split_parent(path: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if path == b"." {
        return (None, path);
    }
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (Some(&path[..i]), &path[i + 1..]),
        None => (Some(b"."), path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path_error::PathError;
    use crate::rpc::nfs3::Nfsstat3;

    /// The rows the writer stores (text or blob paths, a status or none) come back as the
    /// errors they were, in order; `f` returning false stops the reading.
    #[test]
    fn error_rows_read_back_as_the_errors_written() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_SQL).unwrap();
        let insert =
            "INSERT INTO errors (path, procedure, status, message) VALUES (?1, ?2, ?3, ?4)";
        conn.execute(insert, ("a/b", "readdirplus", None::<&str>, "invalid name"))
            .unwrap();
        conn.execute(
            insert,
            (&b"bad \xff"[..], "lookup", Some("NFS3ERR_NOENT"), "gone"),
        )
        .unwrap();
        let mut got = Vec::new();
        for_each_error(&conn, |e| {
            got.push(e);
            true
        })
        .unwrap();
        assert_eq!(
            got,
            vec![
                PathError {
                    path: b"a/b".to_vec(),
                    op: "readdirplus",
                    message: "invalid name".into(),
                    status: None,
                },
                PathError {
                    path: b"bad \xff".to_vec(),
                    op: "lookup",
                    message: "gone".into(),
                    status: Some(Nfsstat3::Noent),
                },
            ]
        );
        let mut first = 0;
        for_each_error(&conn, |_| {
            first += 1;
            false
        })
        .unwrap();
        assert_eq!(first, 1);
    }
}
