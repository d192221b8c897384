//! Reports of a scan: one model of aggregates ([`Report`]) built from a scan database (SQL
//! aggregates and indexed queries), or from NDJSON or Parquet read as a stream in bounded
//! memory, and rendered as text, JSON or HTML. `stats`, `report` and `convert` share it, so
//! every view of a scan shows the same figures.

pub mod db;
pub mod html;
pub mod model;
pub mod ndjson;
pub mod render;
pub mod stream;

pub use model::*;

use crate::content::reports::{ContentReports, ContentReportsWanted};
use crate::scanfile::{
    for_each_entry, for_each_entry_with_content, read_scan, InputKind, SourceScan,
};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StatsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Columnar(#[from] crate::columnar::ColumnarError),
    #[error("{0} is an SQLite database but not an nfs-walker scan database")]
    NotAScanDatabase(PathBuf),
    #[error("{path} has schema version {version}; this nfs-walker reads up to {supported}")]
    SchemaTooNew {
        path: PathBuf,
        version: i32,
        supported: i32,
    },
}

impl StatsError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StatsError {
        let path = path.into();
        move |source| StatsError::Io { path, source }
    }
}

/// The report of any scan output: a database through SQL; NDJSON and Parquet as streams.
/// `now_ns` is the reference of the age histograms (default: the scan's start where the input
/// records it, else the current time).
pub fn report_from_input(
    path: &Path,
    kind: InputKind,
    w: &Wanted,
    now_ns: Option<i64>,
) -> Result<Report, StatsError> {
    let source = path.display().to_string();
    match kind {
        InputKind::Database => {
            let conn = db::open_database(path)?;
            db::report_from_db(&conn, &source, w, now_ns)
        }
        InputKind::Ndjson => {
            let now_ns = now_ns.unwrap_or_else(current_ns);
            if path.as_os_str() == "-" {
                ndjson::report_from_ndjson(std::io::stdin().lock(), &source, w, now_ns)
            } else {
                let f = std::fs::File::open(path).map_err(StatsError::io(path))?;
                ndjson::report_from_ndjson(
                    std::io::BufReader::with_capacity(1 << 20, f),
                    &source,
                    w,
                    now_ns,
                )
            }
        }
        InputKind::Parquet => {
            let scan = read_scan(path, kind)?;
            let now_ns = now_ns
                .or(scan.as_ref().map(|s| s.started_ns))
                .unwrap_or_else(current_ns);
            let mut r = Report {
                source,
                format: kind.as_str(),
                scan: scan.map(ScanMeta::from),
                ..Report::default()
            };
            let mut agg = stream::Aggregator::new(w, now_ns);
            for_each_entry(path, kind, |e| agg.add(e))?;
            agg.finish(&mut r);
            Ok(r)
        }
    }
}

/// The content reports (`--duplicates`, `--file-types`, `--hardlinks`) of any scan output: a
/// database grouped by SQLite, NDJSON and Parquet in one pass as a stream. Returns them with
/// the NDJSON lines skipped as not entry records.
pub fn content_reports_from_input(
    path: &Path,
    kind: InputKind,
    wanted: ContentReportsWanted,
) -> Result<(ContentReports, u64), StatsError> {
    if kind == InputKind::Database {
        let conn = db::open_database(path)?;
        return Ok((ContentReports::from_db(&conn, wanted)?, 0));
    }
    let mut reports = ContentReports::new(wanted);
    let (_, skipped) =
        for_each_entry_with_content(path, kind, |e, content| reports.add_entry(e, content))?;
    Ok((reports, skipped))
}

impl From<SourceScan> for ScanMeta {
    fn from(s: SourceScan) -> Self {
        ScanMeta {
            url: s.url,
            status: s.status,
            started_ns: s.started_ns,
            finished_ns: s.finished_ns,
            entries: s.entries,
            errors: s.errors,
            message: s.message,
            threads: s.threads,
            connections: s.connections,
            backend: s.backend,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::model::*;
    use super::ndjson::{read_line_bounded, NDJSON_LINE_BYTES_MAX};
    use super::render::{display_path, size_bucket_label};
    use super::stream::MostLinks;
    use std::collections::HashMap;
    use std::io::BufReader;

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
