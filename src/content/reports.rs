//! Reports over a content scan's records (`stats --duplicates`, `--file-types`,
//! `--hardlinks`), from any scan output: NDJSON and Parquet in one pass over the entries,
//! grouped in memory ([`ContentReports::add_entry`]); a scan database through SQL, grouped by
//! SQLite in bounded memory ([`ContentReports::from_db`]). Both give the same report: each
//! group lists its smallest paths (byte order), whatever order the entries came in.
//!
//! Memory of the one pass: duplicates keep one group per distinct (size, checksum) of the
//! files at or above the minimum size (about 100 bytes each, plus up to [`GROUP_PATHS_MAX`]
//! sample paths), hard links one group per inode with a link count above 1; file types one row
//! per MIME type. From a database only the groups found (two or more paths) come back from
//! SQLite, which sorts in its own bounded cache and temporary files.
//!
//! Paths that are one inode (hard links) count once among duplicates, under the inode's
//! smallest path: they take no space twice.

use crate::output::schema::entries_has_content_columns;
use crate::record::{EntryContent, EntryRef, EntryType};
use crate::stats::db::{bits_u64, query_sums, to_bytes, to_u64};
use crate::stats::render::display_path;
use crate::stats::StatsError;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Paths listed per group (the count is always exact).
pub const GROUP_PATHS_MAX: usize = 8;

/// Which reports to build.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContentReportsWanted {
    pub duplicates: bool,
    /// Files smaller than this are not considered duplicates.
    pub min_size: u64,
    pub file_types: bool,
    pub hardlinks: bool,
    /// Groups per report.
    pub top: usize,
}

/// Paths sharing a key: their count, bytes per path, and the smallest of them.
#[derive(Debug, Clone, Default)]
pub struct PathGroup {
    pub count: u64,
    pub size: u64,
    /// The [`GROUP_PATHS_MAX`] smallest paths, in byte order.
    pub paths: Vec<Vec<u8>>,
}

impl PathGroup {
    fn add(&mut self, size: u64, path: &[u8]) {
        self.count += 1;
        self.size = size;
        self.keep(path);
    }

    /// Keeps `path` if it is among the smallest.
    fn keep(&mut self, path: &[u8]) {
        if let Err(i) = self.paths.binary_search_by(|p| p.as_slice().cmp(path)) {
            if i < GROUP_PATHS_MAX {
                self.paths.insert(i, path.to_vec());
                self.paths.truncate(GROUP_PATHS_MAX);
            }
        }
    }

    /// One member's path became `new` (smaller than `old`); the count stays. While the group
    /// holds fewer paths than it may list, `old` is among them; past that, anything evicted
    /// was larger than every path kept, so the kept paths stay the smallest.
    fn replace(&mut self, old: &[u8], new: &[u8]) {
        if let Ok(i) = self.paths.binary_search_by(|p| p.as_slice().cmp(old)) {
            self.paths.remove(i);
        }
        self.keep(new);
    }

    /// Bytes that would be saved by keeping one copy.
    pub fn redundant_bytes(&self) -> u64 {
        self.count.saturating_sub(1).saturating_mul(self.size)
    }

    fn paths_lossy(&self) -> Vec<String> {
        self.paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }
}

/// An inode with several links, as the duplicates report counted it: under its smallest path
/// so far, in the group of its (size, checksum) where it has one.
#[derive(Debug)]
struct CountedInode {
    path: Vec<u8>,
    group: Option<(u64, String)>,
}

/// The reports, fed one entry at a time or filled from a database.
#[derive(Debug, Default)]
pub struct ContentReports {
    wanted: ContentReportsWanted,
    duplicates: HashMap<(u64, String), PathGroup>,
    types: HashMap<String, (u64, u64)>,
    links: HashMap<(u64, u64), PathGroup>,
    /// Inodes with several links counted among duplicates so far.
    linked_inodes: HashMap<(u64, u64), CountedInode>,
    /// Regular files without a checksum (not read, too large, errors).
    pub files_without_checksum: u64,
}

impl ContentReports {
    pub fn new(wanted: ContentReportsWanted) -> Self {
        ContentReports {
            wanted,
            ..Default::default()
        }
    }

    /// One entry with its content fields (only regular files count).
    pub fn add_entry(&mut self, e: &EntryRef<'_>, content: &EntryContent<'_>) {
        let a = e.attrs;
        if a.kind != EntryType::File {
            return;
        }
        let inode = (a.fsid, a.fileid);
        if self.wanted.duplicates {
            self.add_to_duplicates(inode, a.nlink, a.size, e.path, content.checksum);
        }
        if self.wanted.file_types {
            let row = self
                .types
                .entry(content.mime.unwrap_or("unknown").to_string())
                .or_default();
            row.0 += 1;
            row.1 = row.1.saturating_add(a.size);
        }
        if self.wanted.hardlinks && a.nlink > 1 {
            self.links.entry(inode).or_default().add(a.size, e.path);
        }
    }

    fn add_to_duplicates(
        &mut self,
        inode: (u64, u64),
        nlink: u32,
        size: u64,
        path: &[u8],
        checksum: Option<&str>,
    ) {
        let group = checksum
            .filter(|_| size >= self.wanted.min_size)
            .map(|sum| (size, sum.to_string()));
        if nlink > 1 {
            if let Some(counted) = self.linked_inodes.get_mut(&inode) {
                // Another link of an inode already counted: not a copy. The inode is listed
                // under its smallest path.
                if path < counted.path.as_slice() {
                    if let Some(g) = counted
                        .group
                        .as_ref()
                        .and_then(|k| self.duplicates.get_mut(k))
                    {
                        g.replace(&counted.path, path);
                    }
                    counted.path = path.to_vec();
                }
                return;
            }
            self.linked_inodes.insert(
                inode,
                CountedInode {
                    path: path.to_vec(),
                    group: group.clone(),
                },
            );
        }
        match (checksum, group) {
            (None, _) => self.files_without_checksum += 1,
            (Some(_), None) => {}
            (Some(_), Some(key)) => self.duplicates.entry(key).or_default().add(size, path),
        }
    }

    /// The reports of a scan database, grouped by SQLite: only groups of two or more paths
    /// come back, with their smallest paths. A database of schema version 1 has no content
    /// columns: its files have no checksum and no type.
    pub fn from_db(conn: &Connection, wanted: ContentReportsWanted) -> Result<Self, StatsError> {
        let mut r = ContentReports::new(wanted);
        let (checksum, mime) = if entries_has_content_columns(conn)? {
            ("checksum", "mime")
        } else {
            ("NULL", "NULL")
        };
        let paths_max = GROUP_PATHS_MAX as i64;
        if wanted.duplicates {
            let min_size = i64::try_from(wanted.min_size).unwrap_or(i64::MAX);
            // One row per counted file (an inode with several links once, under its smallest
            // path), then the groups of two or more with their smallest paths. The window
            // sorts in SQLite's cache and temporary files, so memory stays bounded.
            let sql = format!(
                "WITH counted AS ( \
                     SELECT size, {checksum} AS sum, CAST(path AS BLOB) AS p FROM entries \
                     WHERE type = 'file' AND nlink <= 1 AND {checksum} IS NOT NULL \
                         AND size >= ?1 \
                     UNION ALL \
                     SELECT size, {checksum}, min(CAST(path AS BLOB)) FROM entries \
                     WHERE type = 'file' AND nlink > 1 AND {checksum} IS NOT NULL \
                         AND size >= ?1 \
                     GROUP BY fsid, fileid) \
                 SELECT size, sum, n, p FROM ( \
                     SELECT size, sum, p, count(*) OVER w AS n, \
                         row_number() OVER (w ORDER BY p) AS k \
                     FROM counted WINDOW w AS (PARTITION BY size, sum)) \
                 WHERE n > 1 AND k <= ?2 ORDER BY size, sum, p"
            );
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params![min_size, paths_max])?;
            while let Some(row) = rows.next()? {
                let size = to_u64(row.get_ref(0)?);
                let sum = String::from_utf8_lossy(&to_bytes(row.get_ref(1)?)).into_owned();
                let g = r.duplicates.entry((size, sum)).or_default();
                g.count = to_u64(row.get_ref(2)?);
                g.size = size;
                g.keep(&to_bytes(row.get_ref(3)?));
            }
            r.files_without_checksum = conn.query_row(
                &format!(
                    "SELECT (SELECT count(*) FROM entries WHERE type = 'file' AND nlink <= 1 \
                         AND {checksum} IS NULL) \
                     + (SELECT count(*) FROM (SELECT 1 FROM entries \
                         WHERE type = 'file' AND nlink > 1 GROUP BY fsid, fileid \
                         HAVING count({checksum}) = 0))"
                ),
                [],
                |row| Ok(to_u64(row.get_ref(0)?)),
            )?;
        }
        if wanted.file_types {
            let rows = query_sums(
                conn,
                &format!(
                    "SELECT coalesce({mime}, 'unknown'), count(*), {{sum}}(size) FROM entries \
                     WHERE type = 'file' GROUP BY 1"
                ),
                &[],
                |row| {
                    Ok((
                        String::from_utf8_lossy(&to_bytes(row.get_ref(0)?)).into_owned(),
                        to_u64(row.get_ref(1)?),
                        to_u64(row.get_ref(2)?),
                    ))
                },
            )?;
            for (m, files, bytes) in rows {
                r.types.insert(m, (files, bytes));
            }
        }
        if wanted.hardlinks {
            let mut stmt = conn.prepare(
                "SELECT fsid, fileid, size, n, p FROM ( \
                     SELECT fsid, fileid, size, CAST(path AS BLOB) AS p, count(*) OVER w AS n, \
                         row_number() OVER (w ORDER BY CAST(path AS BLOB)) AS k \
                     FROM entries WHERE type = 'file' AND nlink > 1 \
                     WINDOW w AS (PARTITION BY fsid, fileid)) \
                 WHERE n > 1 AND k <= ?1 ORDER BY fsid, fileid, p",
            )?;
            let mut rows = stmt.query([paths_max])?;
            while let Some(row) = rows.next()? {
                let inode = (bits_u64(row.get_ref(0)?), bits_u64(row.get_ref(1)?));
                let g = r.links.entry(inode).or_default();
                g.size = to_u64(row.get_ref(2)?);
                g.count = to_u64(row.get_ref(3)?);
                g.keep(&to_bytes(row.get_ref(4)?));
            }
        }
        Ok(r)
    }

    /// Groups of identical files (same size and checksum), most redundant bytes first.
    pub fn duplicate_groups(&self) -> Vec<&PathGroup> {
        let mut g: Vec<&PathGroup> = self.duplicates.values().filter(|g| g.count > 1).collect();
        g.sort_by(|a, b| {
            b.redundant_bytes()
                .cmp(&a.redundant_bytes())
                .then_with(|| a.paths.cmp(&b.paths))
        });
        g
    }

    /// Entries and bytes per MIME type, most bytes first.
    pub fn type_rows(&self) -> Vec<(&str, u64, u64)> {
        let mut rows: Vec<_> = self
            .types
            .iter()
            .map(|(m, &(n, b))| (m.as_str(), n, b))
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        rows
    }

    /// Inodes reached by more than one path in the scan, most paths first.
    pub fn hardlink_groups(&self) -> Vec<&PathGroup> {
        let mut g: Vec<&PathGroup> = self.links.values().filter(|g| g.count > 1).collect();
        g.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.paths.cmp(&b.paths)));
        g
    }

    pub fn to_json(&self) -> Value {
        let top = self.wanted.top;
        let group =
            |g: &PathGroup| json!({"count": g.count, "size": g.size, "paths": g.paths_lossy()});
        let mut out = serde_json::Map::new();
        if self.wanted.duplicates {
            let groups = self.duplicate_groups();
            out.insert(
                "duplicates".into(),
                json!({
                    "min_size": self.wanted.min_size,
                    "groups": groups.len(),
                    "files": groups.iter().map(|g| g.count).sum::<u64>(),
                    "redundant_bytes": groups.iter().map(|g| g.redundant_bytes()).sum::<u64>(),
                    "files_without_checksum": self.files_without_checksum,
                    "top": groups.iter().take(top).map(|g| group(g)).collect::<Vec<_>>(),
                }),
            );
        }
        if self.wanted.file_types {
            out.insert(
                "file_types".into(),
                self.type_rows()
                    .iter()
                    .map(|(m, n, b)| json!({"mime": m, "files": n, "bytes": b}))
                    .collect(),
            );
        }
        if self.wanted.hardlinks {
            let groups = self.hardlink_groups();
            out.insert(
                "hardlinks".into(),
                json!({
                    "groups": groups.len(),
                    "top": groups.iter().take(top).map(|g| group(g)).collect::<Vec<_>>(),
                }),
            );
        }
        Value::Object(out)
    }

    pub fn render_text(&self) -> String {
        let top = self.wanted.top;
        let mut s = String::new();
        if self.wanted.duplicates {
            let groups = self.duplicate_groups();
            s += &format!(
                "duplicates (same size and checksum, files of at least {} bytes): {} groups, {} files, {} bytes could be saved\n",
                self.wanted.min_size,
                groups.len(),
                groups.iter().map(|g| g.count).sum::<u64>(),
                groups.iter().map(|g| g.redundant_bytes()).sum::<u64>(),
            );
            if self.files_without_checksum > 0 {
                s += &format!(
                    "  ({} files have no checksum and are not compared)\n",
                    self.files_without_checksum
                );
            }
            for g in groups.iter().take(top) {
                s += &format!(
                    "  {} copies of {} bytes ({} redundant)\n",
                    g.count,
                    g.size,
                    g.redundant_bytes()
                );
                for p in &g.paths {
                    s += &format!("    {}\n", display_path(p));
                }
            }
        }
        if self.wanted.file_types {
            s += "file types             files            bytes\n";
            for (m, n, b) in self.type_rows() {
                s += &format!("  {m:<24} {n:>10} {b:>16}\n");
            }
        }
        if self.wanted.hardlinks {
            let groups = self.hardlink_groups();
            s += &format!(
                "hard links: {} inodes reached by several paths\n",
                groups.len()
            );
            for g in groups.iter().take(top) {
                s += &format!("  {} paths, {} bytes\n", g.count, g.size);
                for p in &g.paths {
                    s += &format!("    {}\n", display_path(p));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::sqlite::{RowBatch, ScanEnd, ScanInfo, ScanStatus, SqliteWriter};
    use crate::output::OutputBatch;
    use crate::record::{EntryAttrs, EntryRecord};
    use std::time::{Duration, SystemTime};

    /// A record with its checksum and MIME type.
    type Row = (EntryRecord, Option<&'static str>, Option<&'static str>);

    fn file(
        path: &str,
        size: u64,
        sum: Option<&'static str>,
        mime: Option<&'static str>,
        id: u64,
        nlink: u32,
    ) -> Row {
        let rec = EntryRecord {
            path: path.as_bytes().to_vec(),
            attrs: EntryAttrs {
                kind: EntryType::File,
                size,
                nlink,
                fsid: 1,
                ..EntryAttrs::names_only(id)
            },
            depth: 1,
            target: None,
            owner: None,
            group: None,
        };
        (rec, sum, mime)
    }

    fn rows() -> Vec<Row> {
        let mut dir = file(".", 4096, None, None, 99, 2);
        dir.0.attrs.kind = EntryType::Dir;
        dir.0.depth = 0;
        vec![
            dir,
            file("a", 100, Some("x:1"), Some("text/plain"), 1, 1),
            file("b", 100, Some("x:1"), Some("text/plain"), 2, 1),
            file("c", 100, Some("x:1"), None, 3, 1),
            file("d", 100, Some("x:2"), None, 4, 1), // same size, other contents
            file("e", 5, Some("x:3"), None, 5, 1),   // below --min-size
            file("f", 5, Some("x:3"), None, 6, 1),
            // One inode under two names, its larger name first: listed once, under "g".
            file("h", 7, Some("x:4"), None, 7, 2),
            file("g", 7, Some("x:4"), None, 7, 2),
            file("j", 7, Some("x:4"), None, 8, 1), // a real copy of g
            file("i", 9, None, None, 9, 1),
        ]
    }

    fn wanted() -> ContentReportsWanted {
        ContentReportsWanted {
            duplicates: true,
            min_size: 10,
            file_types: true,
            hardlinks: true,
            top: 10,
        }
    }

    fn streamed(rows: &[Row], wanted: ContentReportsWanted) -> ContentReports {
        let mut r = ContentReports::new(wanted);
        for (rec, checksum, mime) in rows {
            let content = EntryContent {
                checksum: *checksum,
                mime: *mime,
            };
            r.add_entry(&rec.as_ref(), &content);
        }
        r
    }

    #[test]
    fn groups_duplicates_types_and_links() {
        let r = streamed(&rows(), wanted());
        let d = r.duplicate_groups();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].count, d[0].redundant_bytes()), (3, 200));
        assert_eq!(d[0].paths, [b"a", b"b", b"c"]);
        assert_eq!(r.files_without_checksum, 1);
        assert_eq!(
            r.type_rows(),
            [
                ("unknown", 8, 100 + 100 + 5 + 5 + 7 + 7 + 7 + 9),
                ("text/plain", 2, 200)
            ]
        );
        let h = r.hardlink_groups();
        assert_eq!((h.len(), h[0].count), (1, 2));
        let j = r.to_json();
        assert_eq!(j["duplicates"]["redundant_bytes"], 200);
        assert!(r
            .render_text()
            .contains("1 groups, 3 files, 200 bytes could be saved"));
        // Below the size limit, the linked inode counts once, under its smallest name.
        let all = streamed(
            &rows(),
            ContentReportsWanted {
                min_size: 1,
                ..wanted()
            },
        );
        let groups: Vec<(u64, Vec<Vec<u8>>)> = all
            .duplicate_groups()
            .iter()
            .map(|g| (g.count, g.paths.clone()))
            .collect();
        assert_eq!(
            groups,
            [
                (3, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]),
                (2, vec![b"g".to_vec(), b"j".to_vec()]),
                (2, vec![b"e".to_vec(), b"f".to_vec()]),
            ]
        );
    }

    #[test]
    fn groups_list_their_smallest_paths_in_any_order() {
        let names: Vec<String> = (0..20).map(|i| format!("p{i:02}")).collect();
        let mut forward = Vec::new();
        for (i, n) in names.iter().enumerate() {
            forward.push(file(n, 50, Some("x:9"), None, i as u64, 1));
        }
        let mut backward = forward.clone();
        backward.reverse();
        let w = wanted();
        let (a, b) = (streamed(&forward, w), streamed(&backward, w));
        let (a, b) = (a.duplicate_groups(), b.duplicate_groups());
        assert_eq!(a[0].count, 20);
        assert_eq!(a[0].paths, b[0].paths);
        let want: Vec<Vec<u8>> = names[..GROUP_PATHS_MAX]
            .iter()
            .map(|n| n.as_bytes().to_vec())
            .collect();
        assert_eq!(a[0].paths, want);
    }

    /// The database's SQL gives the report the one pass gives, for every size limit, with a
    /// linked inode whose names arrive in either order.
    #[test]
    fn a_database_reports_what_the_stream_reports() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = rows();
        for i in 0..12 {
            // A group larger than the paths it lists.
            rows.push(file(&format!("z{i:02}"), 64, Some("x:5"), None, 100 + i, 1));
        }
        let path = dir.path().join("content.db");
        let info = ScanInfo {
            url: "nfs://h/e".into(),
            server: "h".into(),
            options_json: "{}".into(),
            started: SystemTime::now(),
            resumes: 0,
        };
        let (writer, tx) = SqliteWriter::create(
            &path,
            &info,
            Duration::from_secs(10),
            std::sync::Arc::default(),
            None,
        )
        .unwrap();
        let mut batch = RowBatch::default();
        for (rec, checksum, mime) in &rows {
            let content = EntryContent {
                checksum: *checksum,
                mime: *mime,
            };
            batch.push_with_content(&rec.as_ref(), &content);
        }
        tx.send(OutputBatch::Rows(batch)).unwrap();
        drop(tx);
        writer
            .finish(&ScanEnd {
                status: ScanStatus::Completed,
                finished: SystemTime::now(),
                message: None,
                threads: 1,
                connections: 1,
                backend: "epoll".into(),
            })
            .unwrap();
        let conn = crate::stats::db::open_database(&path).unwrap();
        for min_size in [1, 6, 10, 65, 101] {
            let w = ContentReportsWanted {
                min_size,
                ..wanted()
            };
            let from_db = ContentReports::from_db(&conn, w).unwrap();
            assert_eq!(
                from_db.to_json(),
                streamed(&rows, w).to_json(),
                "min size {min_size}"
            );
            assert_eq!(from_db.render_text(), streamed(&rows, w).render_text());
        }
        let big = ContentReports::from_db(&conn, wanted()).unwrap();
        let z = big.duplicate_groups()[0];
        assert_eq!((z.count, z.paths.len()), (12, GROUP_PATHS_MAX));
        drop(conn);
        use crate::record::ContentFields;
        use crate::scanfile::{content_fields, for_each_entry_with_content, InputKind};
        assert_eq!(
            content_fields(&path, InputKind::Database).unwrap(),
            ContentFields {
                checksum: true,
                mime: true
            }
        );

        // A database of schema version 1 has no content columns: no checksums, no types.
        let rw = rusqlite::Connection::open(&path).unwrap();
        rw.execute_batch(
            "ALTER TABLE entries DROP COLUMN checksum; ALTER TABLE entries DROP COLUMN mime; \
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(rw);
        let conn = crate::stats::db::open_database(&path).unwrap();
        let v1 = ContentReports::from_db(&conn, wanted()).unwrap();
        let files = rows.iter().filter(|r| r.0.attrs.kind == EntryType::File);
        // The linked inode counts once.
        assert_eq!(v1.files_without_checksum, files.clone().count() as u64 - 1);
        assert!(v1.duplicate_groups().is_empty());
        assert_eq!(v1.type_rows()[0].1, files.count() as u64);
        assert_eq!(v1.hardlink_groups().len(), 1);
        assert_eq!(
            content_fields(&path, InputKind::Database).unwrap(),
            ContentFields::default()
        );
        let mut seen = 0;
        for_each_entry_with_content(&path, InputKind::Database, |_, c| {
            assert_eq!(*c, EntryContent::default());
            seen += 1;
        })
        .unwrap();
        assert_eq!(seen, rows.len());
    }
}
