//! Content scans against mock-nfsd, whose files read as known contents: every checksum equals
//! the one mock-nfsd computes itself, in every algorithm, over a realistic mixed tree (sparse
//! and huge files skipped by --checksum-max-size), with files rewritten while read reported
//! and not hashed, and the scan going on to exit 2.

mod common;

use checksum::ChecksumAlgo;
use common::*;
use mock_nfsd::content::file_checksum;
use mock_nfsd::{Config, Server};
use nfs_walker::record::EntryType;
use std::collections::HashMap;
use std::process::Command;

const MAX_SIZE: u64 = 4 << 20;

fn scan(url: &str, extra: &[&str]) -> (Vec<serde_json::Value>, String, Option<i32>) {
    let out = Command::new(walker_bin())
        .arg("scan")
        .arg(url)
        .arg("-q")
        .args(extra)
        .output()
        .expect("run nfs-walker");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn checksums_equal_mock_contents_and_rewritten_files_are_reported() {
    let config = Config {
        tree: "mixed:3000:7".parse().unwrap(),
        faults: "rewrite:p=0.02".parse().unwrap(),
        seed: 11,
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let listing: Vec<_> = mock_nfsd::listing(&config, false).collect();
    for (algo, threads) in [
        (ChecksumAlgo::Xxh3, "2"),
        (ChecksumAlgo::Blake3, "1"),
        (ChecksumAlgo::Sha256, "2"),
        (ChecksumAlgo::Md5, "2"),
    ] {
        let max = MAX_SIZE.to_string();
        let (lines, err, code) = scan(
            &server.url(),
            &[
                "--checksum",
                algo.name(),
                "--checksum-max-size",
                &max,
                "--threads",
                threads,
            ],
        );
        let by_path: HashMap<&str, &serde_json::Value> = lines
            .iter()
            .map(|v| (v["path"].as_str().unwrap(), v))
            .collect();
        assert_eq!(lines.len(), listing.len(), "every entry once: {err}");
        let (mut summed, mut rewritten, mut too_large) = (0, 0, 0);
        for rec in &listing {
            let path = String::from_utf8_lossy(&rec.path);
            let Some(v) = by_path.get(path.as_ref()) else {
                continue; // invalid UTF-8 names: checked by path_b64 elsewhere
            };
            let got = v["checksum"].as_str();
            let a = &rec.attrs;
            if a.kind != EntryType::File {
                assert_eq!(got, None, "{path}");
            } else if a.size > MAX_SIZE {
                assert_eq!(got, None, "{path}");
                too_large += 1;
            } else if config.faults.rewrites(config.seed, a.fileid) {
                assert_eq!(got, None, "{path} changes on every READ");
                assert!(
                    err.contains(&format!("{path}: read: changed while read")),
                    "{path}"
                );
                rewritten += 1;
            } else {
                let want = file_checksum(algo, a.fileid, a.size);
                assert_eq!(got, Some(want.as_str()), "{path} ({} bytes)", a.size);
                summed += 1;
            }
        }
        assert!(
            summed > 1000 && rewritten > 5 && too_large > 10,
            "{summed} {rewritten} {too_large}"
        );
        assert_eq!(code, Some(2), "changed files are per-path errors: {err}");
        assert!(
            err.contains(&format!("{rewritten} changed while read, 0 read errors")),
            "{err}"
        );
    }
    server.shutdown();
}

/// `mock-nfsd --print-listing --checksum ALGO --checksum-max-size BYTES` as a map from exact
/// path to the checksum it prints (null for what is not a regular file, is larger, or is
/// rewritten while read), from the same library calls the option makes.
fn expected_checksums(config: &Config, algo: ChecksumAlgo) -> HashMap<Vec<u8>, Option<String>> {
    mock_nfsd::listing(config, false)
        .map(|rec| {
            let a = rec.attrs;
            let sum = (a.kind == EntryType::File
                && a.size <= MAX_SIZE
                && !config.faults.rewrites(config.seed, a.fileid))
            .then(|| file_checksum(algo, a.fileid, a.size));
            (rec.path, sum)
        })
        .collect()
}

/// The checksum column of a scan database, by exact path.
fn db_checksums(db: &std::path::Path) -> HashMap<Vec<u8>, Option<String>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(path AS BLOB), checksum FROM entries")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<HashMap<Vec<u8>, Option<String>>, _>>()
        .unwrap();
    rows
}

/// The checksum column of Parquet output, by exact path.
fn parquet_checksums(path: &std::path::Path) -> HashMap<Vec<u8>, Option<String>> {
    let mut got = HashMap::new();
    nfs_walker::columnar::reader::for_each_entry_with_content(path, |e, c| {
        got.insert(e.path.to_vec(), c.checksum.map(String::from));
    })
    .unwrap();
    got
}

/// The checksum column of Parquet output as DuckDB reads it (a UTF-8 string column), by
/// exact path.
fn duckdb_checksums(
    python: &std::ffi::OsStr,
    path: &std::path::Path,
) -> HashMap<Vec<u8>, Option<String>> {
    const PY: &str = r#"
import sys, json, duckdb
rows = duckdb.connect().execute(
    "SELECT coalesce(path_bytes, encode(path)), checksum FROM read_parquet(?)", [sys.argv[1]]
).fetchall()
print(json.dumps([[bytes(p).hex(), c] for p, c in rows]))
"#;
    let out = Command::new(python)
        .args(["-c", PY])
        .arg(path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, Option<String>)> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .map(|(hex, sum)| {
            let path = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (path, sum)
        })
        .collect()
}

fn scan_to(url: &str, out: &std::path::Path, algo: ChecksumAlgo) {
    let max = MAX_SIZE.to_string();
    let o = run_walker(&[
        "scan",
        url,
        "-q",
        "--checksum",
        algo.name(),
        "--checksum-max-size",
        &max,
        "--file-type",
        "--threads",
        "2",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The content columns of the database and of Parquet hold what mock-nfsd says each file's
/// checksum is, path by path (invalid UTF-8 names included); converting between the formats
/// carries them through; and the content reports of a database, of Parquet and of NDJSON (each
/// from its own scan, so in another order) are the same, with the duplicate groups the
/// listing has.
#[test]
fn database_and_parquet_hold_the_mock_checksums_and_report_alike() {
    let config = Config {
        tree: "mixed:3000:7".parse().unwrap(),
        seed: 11,
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (db, parquet, ndjson) = (
        tmp.path().join("scan.db"),
        tmp.path().join("scan.parquet"),
        tmp.path().join("scan.ndjson"),
    );
    scan_to(&server.url(), &db, ChecksumAlgo::Xxh3);
    scan_to(&server.url(), &parquet, ChecksumAlgo::Xxh3);
    scan_to(&server.url(), &ndjson, ChecksumAlgo::Xxh3);
    server.shutdown();
    let want = expected_checksums(&config, ChecksumAlgo::Xxh3);
    assert!(want.values().filter(|s| s.is_some()).count() > 1000);
    assert!(want.keys().any(|p| std::str::from_utf8(p).is_err()));
    assert_eq!(db_checksums(&db), want, "the database's checksum column");
    assert_eq!(
        parquet_checksums(&parquet),
        want,
        "the Parquet checksum column"
    );
    if let Some(python) = std::env::var_os("NFS_WALKER_PYTHON") {
        assert_eq!(
            duckdb_checksums(&python, &parquet),
            want,
            "DuckDB's reading"
        );
    } else {
        assert!(!in_ci(), "NFS_WALKER_PYTHON is required in CI");
        eprintln!("note: NFS_WALKER_PYTHON unset: the Parquet is not read with DuckDB");
    }

    // Through every conversion and back.
    let convert = |from: &std::path::Path, to: &str| {
        let to = tmp.path().join(to);
        let o = run_walker(&[
            "convert",
            from.to_str().unwrap(),
            to.to_str().unwrap(),
            "-q",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        to
    };
    let db_from_parquet = convert(&parquet, "from-parquet.db");
    assert_eq!(db_checksums(&db_from_parquet), want);
    let parquet_from_ndjson = convert(&convert(&db, "from-db.ndjson"), "from-ndjson.parquet");
    assert_eq!(parquet_checksums(&parquet_from_ndjson), want);
    let db_from_ndjson = convert(&ndjson, "from-ndjson.db");
    assert_eq!(db_checksums(&db_from_ndjson), want);

    // The duplicates the listing has: files of one size and checksum on distinct inodes
    // (empty files are one group with --min-size 0).
    let mut by_content: HashMap<(u64, String), std::collections::HashSet<(u64, u64)>> =
        HashMap::new();
    for rec in mock_nfsd::listing(&config, false) {
        if let Some(Some(sum)) = want.get(&rec.path) {
            by_content
                .entry((rec.attrs.size, sum.clone()))
                .or_default()
                .insert((rec.attrs.fsid, rec.attrs.fileid));
        }
    }
    let groups: Vec<usize> = by_content
        .values()
        .map(|inodes| inodes.len())
        .filter(|&n| n > 1)
        .collect();
    assert!(!groups.is_empty(), "the tree has empty files at least");
    let report = |input: &std::path::Path| -> serde_json::Value {
        let o = run_walker(&[
            "stats",
            input.to_str().unwrap(),
            "--duplicates",
            "--min-size",
            "0",
            "--file-types",
            "--hardlinks",
            "--json",
            "-n",
            "100000",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let from_ndjson = report(&ndjson);
    let d = &from_ndjson["duplicates"];
    assert_eq!(d["groups"], groups.len());
    assert_eq!(d["files"], groups.iter().sum::<usize>());
    assert!(from_ndjson["hardlinks"]["groups"].as_u64().unwrap() > 0);
    assert_eq!(
        report(&db),
        from_ndjson,
        "a database reports as NDJSON does"
    );
    assert_eq!(
        report(&parquet),
        from_ndjson,
        "Parquet reports as NDJSON does"
    );
}
