//! Parquet output and `convert`, end to end: DuckDB and pyarrow (from the Python environment
//! tests/run.sh installs, named by NFS_WALKER_PYTHON) read the Parquet of an nfs-ganesha scan
//! and see what `find` sees on the exported directory, non-UTF-8 names as exact bytes; and a
//! scan database converted to Parquet and back holds the same rows.
//!
//! Without NFS_WALKER_GANESHA_URL/_DIR or NFS_WALKER_PYTHON the tests that need them are skipped
//! with a note, unless CI is set, where they fail.

mod common;

use common::*;
use mock_nfsd::{Config, Server};
use nfs_walker::record::{EntryAttrs, EntryRecord, EntryType};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter with duckdb and pyarrow that tests/run.sh installs.
fn python() -> Option<PathBuf> {
    match std::env::var_os("NFS_WALKER_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => require("NFS_WALKER_PYTHON (a Python with duckdb and pyarrow)"),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("columnar-it", name)
}

/// Reads a Parquet input with pyarrow (every row) and DuckDB (count, sum(size), and the rows
/// whose fileid is a multiple of 5), printing one JSON object.
const READ_PARQUET_PY: &str = r#"
import sys, json, duckdb, pyarrow.parquet as pq, pyarrow as pa
src = sys.argv[1]
glob = src + "/*.parquet" if not src.endswith(".parquet") else src
t = pq.read_table(src) if src.endswith(".parquet") else pa.concat_tables(
    [pq.read_table(f) for f in sorted(__import__("glob").glob(glob))])
def ns(col):
    return [None if v is None else v for v in t.column(col).cast(pa.int64()).to_pylist()]
cols = {c: t.column(c).to_pylist() for c in ["type", "size", "used", "mode", "nlink", "uid", "gid", "fileid", "depth"]}
paths = t.column("path").to_pylist()
exact = t.column("path_bytes").to_pylist()
times = {c: ns(c) for c in ["atime_ns", "mtime_ns", "ctime_ns"]}
rows = []
for i in range(t.num_rows):
    p = exact[i] if exact[i] is not None else paths[i].encode()
    r = {"path_hex": p.hex(), "utf8_column_only": exact[i] is None}
    for c in cols: r[c] = cols[c][i]
    for c in times: r[c] = times[c][i]
    rows.append(r)
con = duckdb.connect()
count, total = con.execute(f"SELECT count(*), sum(size)::HUGEINT FROM read_parquet('{glob}')").fetchone()
sample = con.execute(
    f"SELECT coalesce(path_bytes, encode(path)), size, uid, epoch_ns(mtime_ns), type "
    f"FROM read_parquet('{glob}') WHERE fileid % 5 = 0").fetchall()
print(json.dumps({
    "rows": rows,
    "duckdb_count": count,
    "duckdb_sum_size": str(total),
    "duckdb_sample": [[bytes(p).hex(), s, u, m, ty] for p, s, u, m, ty in sample],
    "types": {f.name: str(f.type) for f in t.schema},
}))
"#;

fn read_parquet(python: &Path, src: &Path) -> Value {
    let out = Command::new(python)
        .arg("-c")
        .arg(READ_PARQUET_PY)
        .arg(src)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python on {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn record_of(r: &Value) -> EntryRecord {
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    let t = |k: &str| r[k].as_i64().unwrap_or_else(|| panic!("{k} in {r}"));
    EntryRecord {
        path: unhex(r["path_hex"].as_str().unwrap()),
        attrs: EntryAttrs {
            kind: EntryType::parse(r["type"].as_str().unwrap()).unwrap(),
            size: n("size"),
            used: n("used"),
            mode: n("mode") as u32,
            nlink: n("nlink") as u32,
            uid: n("uid") as u32,
            gid: n("gid") as u32,
            fileid: n("fileid"),
            fsid: 0,
            atime_ns: t("atime_ns"),
            mtime_ns: t("mtime_ns"),
            ctime_ns: t("ctime_ns"),
        },
        depth: n("depth") as u32,
        target: None,
        owner: None,
        group: None,
    }
}

#[test]
fn duckdb_and_pyarrow_read_a_ganesha_scan_as_find_sees_it() {
    let Some((url, export)) = ganesha() else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let dir = temp_dir("ganesha");
    for tree in ["mixed", "names"] {
        let local = export.join(tree);
        let tree_url = url_with_path(&url, tree);
        let file = dir.join(format!("{tree}.parquet"));
        let parts = dir.join(format!("{tree}-parts"));
        common::run_walker_ok(&[
            common::os("scan"),
            common::os(&tree_url),
            common::os("-q"),
            common::os("-o"),
            file.as_os_str(),
        ]);
        common::run_walker_ok(&[
            common::os("scan"),
            common::os(&tree_url),
            common::os("-q"),
            common::os("-o"),
            parts.as_os_str(),
            common::os("--format"),
            common::os("parquet"),
            common::os("--part-rows"),
            common::os("1000"),
        ]);
        let expected = find_listing(&local, None, true);
        let expected_sum: u64 = expected.iter().map(|r| r.attrs.size).sum();
        let non_utf8 = expected
            .iter()
            .filter(|r| std::str::from_utf8(&r.path).is_err())
            .count();
        for src in [&file, &parts] {
            let what = format!("{tree}: {}", src.display());
            let v = read_parquet(&python, src);
            assert_eq!(v["types"]["size"], "uint64", "{what}");
            assert_eq!(v["types"]["mtime_ns"], "timestamp[ns, tz=UTC]", "{what}");
            assert_eq!(v["types"]["path_bytes"], "binary", "{what}");
            assert_eq!(
                v["duckdb_count"].as_u64(),
                Some(expected.len() as u64),
                "{what}"
            );
            assert_eq!(v["duckdb_sum_size"], expected_sum.to_string(), "{what}");
            let rows = v["rows"].as_array().unwrap();
            // Names that are not UTF-8 carry their exact bytes; all others the text alone.
            let with_bytes = rows
                .iter()
                .filter(|r| r["utf8_column_only"] == false)
                .count();
            assert_eq!(with_bytes, non_utf8, "{what}: rows with path_bytes");
            if tree == "names" {
                assert!(
                    non_utf8 > 0,
                    "the names tree holds names that are not UTF-8"
                );
            }
            let got: Vec<EntryRecord> = rows.iter().map(record_of).collect();
            assert_same_listing(got, expected.clone(), Fields::All, false, &what);
            // DuckDB's sample agrees with find, field by field.
            let by_path: std::collections::HashMap<&[u8], &EntryRecord> =
                expected.iter().map(|r| (r.path.as_slice(), r)).collect();
            let sample = v["duckdb_sample"].as_array().unwrap();
            let expected_sample = expected.iter().filter(|r| r.attrs.fileid % 5 == 0).count();
            assert_eq!(sample.len(), expected_sample, "{what}: DuckDB sample");
            for s in sample {
                let path = unhex(s[0].as_str().unwrap());
                let e = by_path
                    .get(path.as_slice())
                    .unwrap_or_else(|| panic!("{what}: DuckDB row {s} not in find"));
                assert_eq!(s[1].as_u64(), Some(e.attrs.size), "{what}: {s}");
                assert_eq!(s[2].as_u64(), Some(u64::from(e.attrs.uid)), "{what}: {s}");
                assert_eq!(s[3].as_i64(), Some(e.attrs.mtime_ns), "{what}: {s}");
                assert_eq!(s[4].as_str(), Some(e.attrs.kind.as_str()), "{what}: {s}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every row of a table, in rowid order.
fn table(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<SqlValue>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, SqlValue>(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn convert_round_trips_database_parquet_database() {
    let config = Config {
        tree: "mixed:30000".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config).unwrap();
    let dir = temp_dir("convert");
    let db = dir.join("scan.db");
    common::run_walker_ok(&[
        common::os("scan"),
        common::os(&server.url()),
        common::os("-q"),
        common::os("-o"),
        db.as_os_str(),
    ]);
    server.shutdown();
    let pq = dir.join("scan.parquet");
    let parts = dir.join("parts");
    let back = dir.join("back.db");
    let back_parts = dir.join("back-parts.db");
    common::run_walker_ok(&[
        common::os("convert"),
        common::os("-q"),
        db.as_os_str(),
        pq.as_os_str(),
    ]);
    common::run_walker_ok(&[
        common::os("convert"),
        common::os("-q"),
        pq.as_os_str(),
        back.as_os_str(),
    ]);
    common::run_walker_ok(&[
        common::os("convert"),
        common::os("-q"),
        db.as_os_str(),
        parts.as_os_str(),
        common::os("--to"),
        common::os("parquet"),
    ]);
    common::run_walker_ok(&[
        common::os("convert"),
        common::os("-q"),
        parts.as_os_str(),
        back_parts.as_os_str(),
    ]);
    let a = rusqlite::Connection::open(&db).unwrap();
    for other in [&back, &back_parts] {
        let b = rusqlite::Connection::open(other).unwrap();
        // Ids are the writer's surrogate keys, assigned in arrival order (a directory may
        // arrive after its children): rows are compared by path, parents by their path.
        for sql in [
            "SELECT e.name, e.path, e.type, e.size, e.used, e.mode, e.nlink, e.uid, e.gid, \
             e.fileid, e.fsid, e.atime_ns, e.mtime_ns, e.ctime_ns, e.depth, e.extension, \
             e.target, p.path FROM entries AS e LEFT JOIN entries AS p ON p.id = e.parent_id \
             ORDER BY CAST(e.path AS BLOB)",
            "SELECT e.path, d.direct_entries, d.direct_bytes, d.recursive_entries, \
             d.recursive_bytes FROM dirs AS d JOIN entries AS e ON e.id = d.entry_id \
             ORDER BY CAST(e.path AS BLOB)",
            "SELECT url, server, options, started_ns, finished_ns, status, entries, files, \
             dirs, bytes, used, threads, connections, backend FROM scan",
        ] {
            let (x, y) = (table(&a, sql), table(&b, sql));
            assert!(x.len() > 1 || sql.contains("scan"), "{sql}: rows");
            assert_eq!(x.len(), y.len(), "{}: {sql}", other.display());
            for (i, (r, s)) in x.iter().zip(&y).enumerate() {
                assert_eq!(r, s, "{}: {sql}: row {i}", other.display());
            }
        }
    }
    // The mixed tree has names that are not UTF-8: stored as BLOBs both times.
    let blobs = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT count(*) FROM entries WHERE typeof(path) = 'blob'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let b = rusqlite::Connection::open(&back).unwrap();
    assert!(blobs(&a) > 0);
    assert_eq!(blobs(&a), blobs(&b));
    // NDJSON from the database and from the Parquet are the same bytes, and `stats` sees the
    // same figures in all four forms.
    let from_db = dir.join("from-db.ndjson");
    let from_pq = dir.join("from-pq.ndjson");
    common::run_walker_ok(&[
        common::os("convert"),
        common::os("-q"),
        db.as_os_str(),
        from_db.as_os_str(),
    ]);
    common::run_walker_ok(&[
        common::os("convert"),
        common::os("-q"),
        pq.as_os_str(),
        from_pq.as_os_str(),
    ]);
    let ndjson = std::fs::read(&from_db).unwrap();
    assert_eq!(ndjson.iter().filter(|&&b| b == b'\n').count(), 30000);
    assert_eq!(ndjson, std::fs::read(&from_pq).unwrap());
    let stats = |p: &Path| -> Value {
        let out = common::run_walker_ok(&[
            common::os("stats"),
            p.as_os_str(),
            common::os("--all"),
            common::os("--json"),
            common::os("--now"),
            common::os("1700000000"),
        ]);
        let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let o = v.as_object_mut().unwrap();
        // Recursive directory totals are the database's alone.
        for k in [
            "source",
            "format",
            "scan",
            "largest_dirs_by_bytes",
            "largest_dirs_by_entries",
        ] {
            o.remove(k);
        }
        v
    };
    let reference = stats(&db);
    assert!(reference["summary"]["entries"].as_u64() == Some(30000));
    for p in [&pq, &parts, &from_db] {
        assert!(stats(p) == reference, "stats of {} differ", p.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_killed_parquet_scan_leaves_only_complete_parts() {
    // Slow replies, so the scan is still running when it is killed.
    let config = Config {
        tree: "flat:200000".parse().unwrap(),
        latency: Some("fixed:2ms".parse().unwrap()),
        ..Default::default()
    };
    let server = Server::start(config).unwrap();
    let dir = temp_dir("killed");
    let parts = dir.join("parts");
    let single = dir.join("scan.parquet");
    let mut children: Vec<std::process::Child> = [
        vec![
            common::os("--format"),
            common::os("parquet"),
            common::os("--part-rows"),
            common::os("5000"),
        ],
        vec![],
    ]
    .iter()
    .zip([&parts, &single])
    .map(|(extra, out)| {
        Command::new(walker_bin())
            .args([
                common::os("scan"),
                common::os(&server.url()),
                common::os("-q"),
                common::os("--maxcount"),
                common::os("8192"),
            ])
            .arg("-o")
            .arg(out)
            .args(extra)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    })
    .collect();
    // Wait for a few complete parts, then kill both scans.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while nfs_walker::columnar::reader::parts(&parts).map_or(0, |p| p.len()) < 3 {
        assert!(std::time::Instant::now() < deadline, "no parts after 60 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for c in &mut children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    server.shutdown();
    // The single file does not exist under its name until the scan ends.
    assert!(!single.exists(), "a killed scan left {}", single.display());
    // Every part is complete: DuckDB-style readers see whole files, 5000-row multiples.
    let files = nfs_walker::columnar::reader::parts(&parts).unwrap();
    assert!(files.len() >= 3);
    let mut rows = 0;
    for f in &files {
        let n = nfs_walker::columnar::reader::for_each_entry(f, |_| {}).unwrap();
        assert!(n >= 5000, "{}: {n} rows", f.display());
        rows += n;
    }
    let out =
        common::run_walker_ok(&[common::os("stats"), parts.as_os_str(), common::os("--json")]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["entries"].as_u64(), Some(rows));
    // The last complete part says the scan had not finished.
    assert_eq!(v["scan"]["status"], "running");
    let _ = std::fs::remove_dir_all(&dir);
}
