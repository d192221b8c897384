//! The scan database and `nfs-walker stats`, end to end against real servers: nfs-ganesha
//! serving the make-tree.py trees (checked against `find` and `du` on the exported directory,
//! and read back with the `sqlite3` CLI), and mock-nfsd for interrupted scans.
//!
//! The ganesha tests need NFS_WALKER_GANESHA_URL and NFS_WALKER_GANESHA_DIR (tests/run.sh
//! sets them); without them they are skipped with a note, unless CI is set, where they fail.

mod common;
use common::require;

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nfs-walker");
const NS: i64 = 1_000_000_000;

/// (URL of export sub-directory `sub`, its local directory) on the test ganesha.
fn ganesha(sub: &str) -> Option<(String, PathBuf)> {
    let (url, export) = common::ganesha()?;
    let dir = export.join(sub);
    if !dir.is_dir() {
        return require(&format!("the test tree {}", dir.display()));
    }
    Some((common::url_with_path(&url, sub), dir))
}

fn sqlite3_cli() -> Option<()> {
    match Command::new("sqlite3").arg("-version").output() {
        Ok(o) if o.status.success() => Some(()),
        _ => require("the sqlite3 command"),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("sqlite-it", name)
}

fn scan(url: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let o = Command::new(BIN)
        .args(["scan", url, "-q", "-o"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run nfs-walker");
    assert!(
        o.status.success(),
        "scan failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Rows of `sql` from the sqlite3 CLI, fields split on tabs (callers hex() anything that may
/// hold tabs or newlines).
fn sqlite3(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let o = Command::new("sqlite3")
        .args(["-batch", "-noheader", "-separator", "\t"])
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        o.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .expect("sqlite3 output")
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// One object as `find -printf` sees it.
#[derive(Debug, Clone)]
struct Found {
    /// Relative to the scanned directory, "." for itself (as nfs-walker writes paths).
    path: Vec<u8>,
    kind: &'static str,
    size: u64,
    uid: u32,
    gid: u32,
    nlink: u32,
    inode: u64,
    mtime_ns: i64,
}

fn find(dir: &Path) -> Vec<Found> {
    let o = Command::new("find")
        .arg(dir)
        .args(["-printf", r"%y\0%s\0%U\0%G\0%n\0%i\0%T@\0%P\0"])
        .output()
        .expect("run find");
    assert!(
        o.status.success(),
        "find: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let fields: Vec<&[u8]> = o.stdout.split(|&b| b == 0).collect();
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("numeric field");
    fields
        .chunks_exact(8)
        .map(|f| {
            let kind = match f[0] {
                b"f" => "file",
                b"d" => "dir",
                b"l" => "symlink",
                b"b" => "block",
                b"c" => "char",
                b"p" => "fifo",
                b"s" => "socket",
                other => panic!("find type {other:?}"),
            };
            // %T@ is seconds with a fraction of up to 10 digits: exact nanoseconds from text.
            let t = text(f[6]);
            let (secs, frac) = t.split_once('.').unwrap_or((&t, "0"));
            let frac9: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            let secs: i64 = secs.parse().expect("mtime seconds");
            let mtime_ns = secs * NS + frac9.parse::<i64>().expect("mtime fraction");
            Found {
                path: if f[7].is_empty() {
                    b".".to_vec()
                } else {
                    f[7].to_vec()
                },
                kind,
                size: text(f[1]).parse().expect("size"),
                uid: text(f[2]).parse().expect("uid"),
                gid: text(f[3]).parse().expect("gid"),
                nlink: text(f[4]).parse().expect("nlink"),
                inode: text(f[5]).parse().expect("inode"),
                mtime_ns,
            }
        })
        .collect()
}

/// The parent of a path as nfs-walker writes paths ("." is the root).
fn parent(path: &[u8]) -> Option<&[u8]> {
    if path == b"." {
        return None;
    }
    Some(match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => b".",
    })
}

/// (direct entries, direct bytes, recursive entries, recursive bytes) per directory, from
/// `find` alone: every name below counts (a hard link once per name), the directory itself not.
fn dir_totals(found: &[Found]) -> HashMap<Vec<u8>, (u64, u64, u64, u64)> {
    let mut t: HashMap<Vec<u8>, (u64, u64, u64, u64)> = found
        .iter()
        .filter(|f| f.kind == "dir")
        .map(|f| (f.path.clone(), (0, 0, 0, 0)))
        .collect();
    for f in found {
        let mut first = true;
        let mut p = parent(&f.path);
        while let Some(dir) = p {
            let e = t.get_mut(dir).expect("parent directory listed by find");
            if first {
                e.0 += 1;
                e.1 += f.size;
                first = false;
            }
            e.2 += 1;
            e.3 += f.size;
            p = parent(dir);
        }
    }
    t
}

/// The extension rule of docs/database.md, written again here.
fn extension(path: &[u8]) -> Option<String> {
    let name = &path[path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let ext = std::str::from_utf8(&name[dot + 1..]).ok()?;
    if dot == 0 || ext.is_empty() || ext.len() > 16 {
        return None;
    }
    if ext.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(ext.to_lowercase())
}

fn stats_json(file: &Path, extra: &[&str]) -> Value {
    let o = Command::new(BIN)
        .arg("stats")
        .arg(file)
        .args(["--all", "--json"])
        .args(extra)
        .output()
        .expect("run stats");
    assert!(
        o.status.success(),
        "stats {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("stats --json output")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn json_path(v: &Value) -> Vec<u8> {
    use base64::Engine as _;
    match v.get("path_b64").and_then(Value::as_str) {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("path_b64"),
        None => v["path"].as_str().expect("path").as_bytes().to_vec(),
    }
}

/// The expected group rows (key, entries, bytes) in report order.
fn expected_groups<K: Ord + Clone + std::hash::Hash>(
    found: &[Found],
    key: impl Fn(&Found) -> Option<K>,
    top: usize,
) -> Vec<(K, u64, u64)> {
    let mut m: HashMap<K, (u64, u64)> = HashMap::new();
    for f in found {
        if let Some(k) = key(f) {
            let e = m.entry(k).or_default();
            e.0 += 1;
            e.1 += f.size;
        }
    }
    let mut rows: Vec<(K, u64, u64)> = m.into_iter().map(|(k, (n, b))| (k, n, b)).collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));
    rows.truncate(top);
    rows
}

#[test]
fn mixed_tree_database_matches_find_and_du() {
    let (Some((url, dir)), Some(())) = (ganesha("mixed"), sqlite3_cli()) else {
        return;
    };
    let tmp = temp_dir("mixed");
    let db = tmp.join("scan.db");
    scan(&url, &db, &[]);
    let found = find(&dir);

    // Count and bytes, with the sqlite3 CLI.
    let rows = sqlite3(&db, "SELECT count(*), sum(size) FROM entries");
    let find_bytes: u64 = found.iter().map(|f| f.size).sum();
    assert_eq!(
        rows,
        vec![vec![found.len().to_string(), find_bytes.to_string()]]
    );
    assert_eq!(
        sqlite3(
            &db,
            "PRAGMA integrity_check; SELECT status, errors FROM scan;"
        ),
        vec![vec!["ok".to_string()], vec!["completed".into(), "0".into()]]
    );

    // Every row: same path set, types, sizes, owners, times as find; parent_id consistent.
    let rows = sqlite3(
        &db,
        "SELECT hex(CAST(e.path AS BLOB)), e.type, e.size, e.uid, e.gid, e.nlink, e.mtime_ns, \
         e.depth, CASE WHEN p.id IS NULL THEN '-' ELSE hex(CAST(p.path AS BLOB)) END \
         FROM entries AS e LEFT JOIN entries AS p ON p.id = e.parent_id",
    );
    let by_path: HashMap<&[u8], &Found> = found.iter().map(|f| (f.path.as_slice(), f)).collect();
    assert_eq!(rows.len(), found.len(), "no duplicates");
    for r in &rows {
        let path = unhex(&r[0]);
        let f = by_path
            .get(path.as_slice())
            .unwrap_or_else(|| panic!("{} not found by find", String::from_utf8_lossy(&path)));
        assert_eq!(
            (
                r[1].as_str(),
                r[2].parse::<u64>().unwrap(),
                r[3].parse::<u32>().unwrap()
            ),
            (f.kind, f.size, f.uid),
            "{}",
            String::from_utf8_lossy(&path)
        );
        assert_eq!(r[4].parse::<u32>().unwrap(), f.gid);
        assert_eq!(r[5].parse::<u32>().unwrap(), f.nlink);
        assert_eq!(r[6].parse::<i64>().unwrap(), f.mtime_ns);
        let depth = if path == b"." {
            0
        } else {
            path.iter().filter(|&&b| b == b'/').count() + 1
        };
        assert_eq!(r[7].parse::<usize>().unwrap(), depth);
        match parent(&path) {
            None => assert_eq!(r[8], "-"),
            Some(p) => assert_eq!(unhex(&r[8]), p),
        }
    }

    // Directory totals against find, and against du where du means the same thing: du
    // counts a directory's own size and each hard-linked inode once, so for directories
    // without hard links below them du == recursive_bytes + the directory's own size.
    let expected = dir_totals(&found);
    let rows = sqlite3(
        &db,
        "SELECT hex(CAST(e.path AS BLOB)), d.direct_entries, d.direct_bytes, \
         d.recursive_entries, d.recursive_bytes, e.size \
         FROM dirs AS d JOIN entries AS e ON e.id = d.entry_id",
    );
    assert_eq!(rows.len(), expected.len());
    let mut db_dirs: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
    for r in &rows {
        let path = unhex(&r[0]);
        let n: Vec<u64> = r[1..].iter().map(|x| x.parse().unwrap()).collect();
        assert_eq!(
            Some(&(n[0], n[1], n[2], n[3])),
            expected.get(&path),
            "{}",
            String::from_utf8_lossy(&path)
        );
        db_dirs.insert(path, (n[3], n[4]));
    }
    let du = Command::new("du")
        .args(["--apparent-size", "-b", "-0"])
        .arg(dir.join("bulk"))
        .output()
        .expect("run du");
    assert!(du.status.success());
    let mut du_checked = 0;
    for rec in du.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let tab = rec.iter().position(|&b| b == b'\t').expect("du line");
        let bytes: u64 = std::str::from_utf8(&rec[..tab]).unwrap().parse().unwrap();
        let abs = &rec[tab + 1..];
        let rel = &abs[dir.as_os_str().len() + 1..];
        let (recursive, own) = db_dirs[rel];
        assert_eq!(
            bytes,
            recursive + own,
            "du of {}",
            String::from_utf8_lossy(rel)
        );
        du_checked += 1;
    }
    assert!(du_checked > 10, "du listed {du_checked} directories");

    // Every report, against find.
    let now_s: i64 = 1_700_000_000;
    let report = stats_json(&db, &["-n", "25", "--now", &now_s.to_string()]);
    let summary = &report["summary"];
    assert_eq!(u(&summary["entries"]), found.len() as u64);
    assert_eq!(u(&summary["bytes"]), find_bytes);
    let mut types: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for f in &found {
        let e = types.entry(f.kind).or_default();
        e.0 += 1;
        e.1 += f.size;
    }
    let got_types: BTreeMap<&str, (u64, u64)> = summary["by_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["type"].as_str().unwrap(),
                (u(&t["entries"]), u(&t["bytes"])),
            )
        })
        .collect();
    assert_eq!(got_types, types);
    assert_eq!(
        u(&summary["depth_max"]),
        found
            .iter()
            .map(|f| f.path.split(|&b| b == b'/').count() as u64 - u64::from(f.path == b"."))
            .max()
            .unwrap()
    );
    assert_eq!(report["scan"]["status"], "completed");

    for (field, key) in [
        (
            "by_uid",
            (|f: &Found| Some(f.uid)) as fn(&Found) -> Option<u32>,
        ),
        ("by_gid", |f: &Found| Some(f.gid)),
    ] {
        let want = expected_groups(&found, key, 25);
        let name = &field[3..];
        let got: Vec<(u32, u64, u64)> = report[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (u(&g[name]) as u32, u(&g["entries"]), u(&g["bytes"])))
            .collect();
        assert_eq!(got, want, "{field}");
    }
    let want_ext = expected_groups(
        &found,
        |f| (f.kind == "file").then(|| extension(&f.path)),
        25,
    );
    let got_ext: Vec<(Option<String>, u64, u64)> = report["by_extension"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["extension"].as_str().map(str::to_string),
                u(&g["files"]),
                u(&g["bytes"]),
            )
        })
        .collect();
    assert_eq!(got_ext, want_ext);

    let files: Vec<&Found> = found.iter().filter(|f| f.kind == "file").collect();
    let mut largest: Vec<(u64, Vec<u8>)> = files.iter().map(|f| (f.size, f.path.clone())).collect();
    largest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    largest.truncate(25);
    let got: Vec<(u64, Vec<u8>)> = report["largest_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (u(&f["size"]), json_path(f)))
        .collect();
    assert_eq!(got, largest);
    assert_eq!(
        largest[0].0,
        1 << 40,
        "the 1 TiB sparse file is the largest"
    );

    let mut oldest: Vec<(i64, Vec<u8>)> =
        files.iter().map(|f| (f.mtime_ns, f.path.clone())).collect();
    oldest.sort();
    oldest.truncate(25);
    let got: Vec<(i64, Vec<u8>)> = report["oldest_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["mtime_ns"].as_i64().unwrap(), json_path(f)))
        .collect();
    assert_eq!(got, oldest);

    let mut by_inode: HashMap<u64, (u32, Vec<u8>)> = HashMap::new();
    for f in found.iter().filter(|f| f.kind != "dir" && f.nlink > 1) {
        let e = by_inode.entry(f.inode).or_insert((f.nlink, f.path.clone()));
        if f.path < e.1 {
            e.1 = f.path.clone();
        }
    }
    let mut links: Vec<(u32, Vec<u8>)> = by_inode.into_values().collect();
    links.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    links.truncate(25);
    let got: Vec<(u32, Vec<u8>)> = report["most_links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (u(&l["nlink"]) as u32, json_path(l)))
        .collect();
    assert_eq!(got, links);
    assert_eq!(got.first().map(|l| l.0), Some(5), "hard-orig has 5 names");

    let mut dirs_by_bytes: Vec<(u64, Vec<u8>)> =
        expected.iter().map(|(p, t)| (t.3, p.clone())).collect();
    dirs_by_bytes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    dirs_by_bytes.truncate(25);
    let got: Vec<(u64, Vec<u8>)> = report["largest_dirs_by_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (u(&d["recursive_bytes"]), json_path(d)))
        .collect();
    assert_eq!(got, dirs_by_bytes);
    let mut dirs_by_entries: Vec<(u64, Vec<u8>)> =
        expected.iter().map(|(p, t)| (t.2, p.clone())).collect();
    dirs_by_entries.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    dirs_by_entries.truncate(25);
    let got: Vec<(u64, Vec<u8>)> = report["largest_dirs_by_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (u(&d["recursive_entries"]), json_path(d)))
        .collect();
    assert_eq!(got, dirs_by_entries);

    let mut sizes: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for f in &files {
        let min = if f.size == 0 {
            0
        } else {
            1u64 << (63 - f.size.leading_zeros())
        };
        let e = sizes.entry(min).or_default();
        e.0 += 1;
        e.1 += f.size;
    }
    let got: BTreeMap<u64, (u64, u64)> = report["size_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (u(&b["min"]), (u(&b["files"]), u(&b["bytes"]))))
        .collect();
    assert_eq!(got, sizes);

    let day = 86_400 * NS;
    let now_ns = now_s * NS;
    let mut ages = [(0u64, 0u64); 7];
    for f in &files {
        let age = now_ns - f.mtime_ns;
        let i = [0, day, 7 * day, 30 * day, 365 * day, 5 * 365 * day]
            .iter()
            .position(|&limit| age < limit)
            .unwrap_or(6);
        ages[i].0 += 1;
        ages[i].1 += f.size;
    }
    let got: Vec<(String, u64, u64)> = report["age_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["age"].as_str().unwrap().to_string(),
                u(&b["files"]),
                u(&b["bytes"]),
            )
        })
        .collect();
    let labels = ["future", "<1d", "<1w", "<1m", "<1y", "<5y", "older"];
    let want: Vec<(String, u64, u64)> = labels
        .iter()
        .zip(ages)
        .map(|(l, (n, b))| (l.to_string(), n, b))
        .collect();
    assert_eq!(got, want);
    assert!(
        ages[0].0 > 0 && ages[6].0 > 0,
        "the tree has future and old mtimes"
    );

    // The same reports from NDJSON output of the same tree, streamed.
    let ndjson = tmp.join("scan.ndjson");
    scan(&url, &ndjson, &[]);
    let from_ndjson = stats_json(&ndjson, &["-n", "25", "--now", &now_s.to_string()]);
    for key in [
        "summary",
        "by_extension",
        "by_uid",
        "by_gid",
        "largest_files",
        "oldest_files",
        "most_links",
        "size_histogram",
        "age_histogram",
    ] {
        assert_eq!(from_ndjson[key], report[key], "{key} from NDJSON");
    }
    assert!(from_ndjson.get("largest_dirs_by_bytes").is_none());
    let o = Command::new(BIN)
        .arg("stats")
        .arg(&ndjson)
        .arg("--largest-dirs")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--largest-dirs needs a scan database"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The readable tables.
    let o = Command::new(BIN)
        .arg("stats")
        .arg(&db)
        .args([
            "--largest-files",
            "--largest-dirs",
            "--size-histogram",
            "-n",
            "3",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    for needle in [
        "completed",
        "largest files",
        "1.0 TiB",
        "sizes/size-1099511627776",
        "largest directories by recursive size",
        "largest directories by recursive entry count",
        "1 TiB – 2 TiB",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in\n{text}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn hostile_names_are_stored_as_exact_bytes() {
    let (Some((url, dir)), Some(())) = (ganesha("names"), sqlite3_cli()) else {
        return;
    };
    let tmp = temp_dir("names");
    let db = tmp.join("names.sqlite");
    scan(&url, &db, &[]);
    let found = find(&dir);
    let rows = sqlite3(
        &db,
        "SELECT hex(CAST(path AS BLOB)), typeof(path), hex(CAST(name AS BLOB)), typeof(name) \
         FROM entries",
    );
    let mut got = HashSet::new();
    let mut blobs = 0;
    for r in &rows {
        let path = unhex(&r[0]);
        let name = unhex(&r[2]);
        let utf8 = std::str::from_utf8(&path).is_ok();
        assert_eq!(r[1], if utf8 { "text" } else { "blob" }, "{path:?}");
        assert_eq!(
            r[3],
            if std::str::from_utf8(&name).is_ok() {
                "text"
            } else {
                "blob"
            }
        );
        let expect_name = if path == b"." {
            &path[..]
        } else {
            &path[path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..]
        };
        assert_eq!(name, expect_name);
        blobs += usize::from(!utf8);
        assert!(got.insert(path), "duplicate row");
    }
    let want: HashSet<Vec<u8>> = found.into_iter().map(|f| f.path).collect();
    assert_eq!(got, want);
    assert!(blobs >= 2, "bad-utf8 and latin1 names are BLOBs");
    assert!(got.contains(&b"bad-utf8-\xff\xfe"[..]));
    assert!(got.contains(&b"dir-with\nnewline/inner\nfile"[..]));

    // The stats paths keep the bytes too (path_b64).
    let report = stats_json(&db, &["-n", "100"]);
    let paths: HashSet<Vec<u8>> = report["largest_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(json_path)
        .collect();
    assert!(paths.contains(&b"latin1-caf\xe9"[..]));
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Waits for the child with a deadline; kills it if it hangs.
fn wait_for(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("scan did not stop within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A slow scan of mock-nfsd (2 ms per reply, small replies, one call at a time), stopped by
/// `signal` once the server has answered some listings.
fn interrupted_scan(signal: i32, name: &str) {
    let Some(()) = sqlite3_cli() else { return };
    let config = mock_nfsd::Config {
        tree: "wide:20:2000".parse().expect("tree"),
        latency: Some("fixed:2ms".parse().expect("latency")),
        ..Default::default()
    };
    let server = mock_nfsd::Server::start(config.clone()).expect("start mock-nfsd");
    let tmp = temp_dir(name);
    let db = tmp.join("scan.db");
    let mut child = Command::new(BIN)
        .args(["scan", &server.url(), "-o"])
        .arg(&db)
        .args([
            "--threads",
            "1",
            "--connections",
            "1",
            "--inflight",
            "1",
            "--maxcount",
            "4096",
            "--dircount",
            "1024",
            "-q",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scan");
    let t0 = Instant::now();
    while server.stats().get("readdirplus") < 30 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the scan never listed"
        );
        assert!(child.try_wait().unwrap().is_none(), "the scan ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0);
    let status = wait_for(&mut child, Duration::from_secs(30));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "interrupted scans exit 1: {stderr}");
    let summary_entries: u64 = stderr
        .split("INTERRUPTED after ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no interruption summary in {stderr}"));

    assert_eq!(
        sqlite3(&db, "PRAGMA integrity_check; SELECT status FROM scan;"),
        vec![vec!["ok".to_string()], vec!["interrupted".to_string()]]
    );
    let rows = sqlite3(
        &db,
        "SELECT hex(CAST(path AS BLOB)), type, size, fileid, depth FROM entries",
    );
    let full: HashMap<Vec<u8>, (String, u64, u64, u32)> = mock_nfsd::listing(&config, false)
        .map(|r| {
            (
                r.path.clone(),
                (
                    r.attrs.kind.to_string(),
                    r.attrs.size,
                    r.attrs.fileid,
                    r.depth,
                ),
            )
        })
        .collect();
    let mut seen = HashSet::new();
    for r in &rows {
        let path = unhex(&r[0]);
        let want = full
            .get(&path)
            .unwrap_or_else(|| panic!("{} is not in the tree", String::from_utf8_lossy(&path)));
        assert_eq!(
            (
                r[1].clone(),
                r[2].parse().unwrap(),
                r[3].parse::<i64>().unwrap() as u64,
                r[4].parse().unwrap()
            ),
            want.clone()
        );
        assert!(seen.insert(path), "duplicate row");
    }
    assert!(rows.len() > 1, "rows arrived before the signal");
    assert!(rows.len() < full.len(), "the scan was stopped early");
    // Nothing received is lost: every entry the engine emitted is a row.
    assert_eq!(rows.len() as u64, summary_entries);
    // Directories that arrived have totals; parents resolve to rows or are NULL.
    let orphans = sqlite3(
        &db,
        "SELECT count(*) FROM entries AS e WHERE e.parent_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM entries AS p WHERE p.id = e.parent_id)",
    );
    assert_eq!(orphans, vec![vec!["0".to_string()]]);
    // stats reads it and says it was interrupted.
    let report = stats_json(&db, &[]);
    assert_eq!(report["scan"]["status"], "interrupted");
    assert_eq!(u(&report["summary"]["entries"]), rows.len() as u64);
    server.shutdown();
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn sigint_leaves_a_valid_interrupted_database() {
    interrupted_scan(libc::SIGINT, "sigint");
}

#[test]
fn sigterm_leaves_a_valid_interrupted_database() {
    interrupted_scan(libc::SIGTERM, "sigterm");
}

#[test]
fn stats_reads_ndjson_from_stdin_and_refuses_other_files() {
    use nfs_walker::record::{EntryAttrs, EntryRecord, EntryType};
    use std::io::Write;
    let rec = |path: &[u8], kind, size, uid, mtime_s: i64| EntryRecord {
        path: path.to_vec(),
        attrs: EntryAttrs {
            kind,
            size,
            used: size,
            mode: 0o644,
            nlink: 1,
            uid,
            gid: 7,
            fileid: size + 1,
            fsid: 1,
            atime_ns: 0,
            mtime_ns: mtime_s * NS,
            ctime_ns: 0,
        },
        depth: if path == b"." { 0 } else { 1 },
        target: None,
        owner: None,
        group: None,
    };
    let mut input = Vec::new();
    for r in [
        rec(b".", EntryType::Dir, 4096, 0, 0),
        rec(b"a.TXT", EntryType::File, 3000, 1, 1_000),
        rec(b"b.txt", EntryType::File, 5, 2, 2_000),
        rec(b"c\xff", EntryType::File, 70_000, 2, 3_000),
    ] {
        r.write_ndjson(&mut input);
    }
    input.extend_from_slice(b"{\"truncated\n");
    let mut child = Command::new(BIN)
        .args(["stats", "-", "--all", "--json", "-n", "2", "--now", "3000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stats");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("skipped 1 lines"));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(u(&r["summary"]["entries"]), 4);
    assert_eq!(u(&r["summary"]["bytes"]), 4096 + 3000 + 5 + 70_000);
    let largest: Vec<(u64, Vec<u8>)> = r["largest_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (u(&f["size"]), json_path(f)))
        .collect();
    assert_eq!(
        largest,
        vec![(70_000, b"c\xff".to_vec()), (3000, b"a.TXT".to_vec())]
    );
    let exts: Vec<(Option<&str>, u64)> = r["by_extension"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["extension"].as_str(), u(&g["files"])))
        .collect();
    assert_eq!(exts, vec![(None, 1), (Some("txt"), 2)]);
    let uids: Vec<(u64, u64, u64)> = r["by_uid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (u(&g["uid"]), u(&g["entries"]), u(&g["bytes"])))
        .collect();
    assert_eq!(uids, vec![(2, 2, 70_005), (0, 1, 4096)]);
    let ages: Vec<u64> = r["age_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| u(&b["files"]))
        .collect();
    assert_eq!(ages, vec![0, 3, 0, 0, 0, 0, 0], "all within a day of --now");

    let tmp = temp_dir("refuse");
    let notes = tmp.join("notes.db");
    std::fs::write(&notes, b"not a scan\n").unwrap();
    let other = tmp.join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (a)")
        .unwrap();
    let ndjson = tmp.join("scan.ndjson");
    std::fs::write(&ndjson, &input).unwrap();
    for (file, args, message) in [
        (
            &notes,
            &[][..],
            "neither a scan database nor NDJSON scan output",
        ),
        (&other, &[][..], "not an nfs-walker scan database"),
        (
            &ndjson,
            &["--largest-dirs"][..],
            "--largest-dirs needs a scan database",
        ),
    ] {
        let o = Command::new(BIN)
            .arg("stats")
            .arg(file)
            .args(args)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(message), "{err}");
    }
    // `scan -o` will not overwrite either of them.
    for file in [&notes, &other] {
        let before = std::fs::read(file).unwrap();
        let o = Command::new(BIN)
            .args(["scan", "nfs://127.0.0.1:1/export", "-o"])
            .arg(file)
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(
            std::fs::read(file).unwrap() == before,
            "{} was overwritten",
            file.display()
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Over NFSv4 from a server that sends owner names (`alice@example.com`, with the ids
/// `nobody`), `stats --by-uid` / `--by-gid` count each name apart and numeric owners by id,
/// exactly as the listing has them, alike from the database, NDJSON and Parquet; the table
/// shows the names.
#[test]
fn owners_with_names_are_counted_by_name_and_the_others_by_id() {
    let config = mock_nfsd::Config {
        tree: "mixed:3000:7".parse().unwrap(),
        owner_names: true,
        ..Default::default()
    };
    let server = mock_nfsd::Server::start(config.clone()).expect("start mock-nfsd");
    let url = format!("nfs://127.0.0.1/export?version=4&nfsport={}", server.port());
    let tmp = temp_dir("owner-names");
    let outputs = ["scan.db", "scan.ndjson", "scan.parquet"].map(|f| tmp.join(f));
    for out in &outputs {
        scan(&url, out, &[]);
    }
    server.shutdown();
    /// A group's key as the report gives it: the name, or the id.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
    enum Key {
        Id(u32),
        Name(String),
    }
    let listing: Vec<_> = mock_nfsd::listing(&config, false).collect();
    let key_of = |id: u32, name: &Option<Vec<u8>>| match name {
        Some(n) => Key::Name(String::from_utf8(n.clone()).unwrap()),
        None => Key::Id(id),
    };
    let expected = |group: bool| -> Vec<(Key, u64, u64)> {
        let mut m: HashMap<Key, (u64, u64)> = HashMap::new();
        for r in &listing {
            let k = if group {
                key_of(r.attrs.gid, &r.group)
            } else {
                key_of(r.attrs.uid, &r.owner)
            };
            let e = m.entry(k).or_default();
            e.0 += 1;
            e.1 += r.attrs.size;
        }
        let mut rows: Vec<_> = m.into_iter().map(|(k, (n, b))| (k, n, b)).collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));
        rows
    };
    let (owners, groups) = (expected(false), expected(true));
    for rows in [&owners, &groups] {
        assert!(rows.iter().any(|r| matches!(r.0, Key::Name(_))), "{rows:?}");
        assert!(rows.iter().any(|r| matches!(r.0, Key::Id(_))), "{rows:?}");
        // Names are counted apart, not all under nobody.
        assert!(rows.iter().filter(|r| matches!(r.0, Key::Name(_))).count() >= 2);
    }
    for out in &outputs {
        let r = stats_json(out, &["-n", "1000"]);
        for (field, id, name, want) in [
            ("by_uid", "uid", "owner", &owners),
            ("by_gid", "gid", "group", &groups),
        ] {
            let got: Vec<(Key, u64, u64)> = r[field]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    let key = match g.get(name) {
                        Some(n) => Key::Name(n.as_str().unwrap().to_string()),
                        None => Key::Id(u(&g[id]) as u32),
                    };
                    (key, u(&g["entries"]), u(&g["bytes"]))
                })
                .collect();
            assert_eq!(&got, want, "{field} of {}", out.display());
        }
        // The largest and oldest files name their owner and group where the listing does.
        let by_path: HashMap<&[u8], &nfs_walker::record::EntryRecord> =
            listing.iter().map(|r| (r.path.as_slice(), r)).collect();
        let mut named = 0;
        for field in ["largest_files", "oldest_files"] {
            for f in r[field].as_array().unwrap() {
                let path = json_path(f);
                let rec = by_path[path.as_slice()];
                for (key, want) in [("owner", &rec.owner), ("group", &rec.group)] {
                    let got = f.get(key).map(|v| v.as_str().unwrap().as_bytes().to_vec());
                    assert_eq!(
                        &got,
                        want,
                        "{field} {key} of {}",
                        String::from_utf8_lossy(&path)
                    );
                    named += got.is_some() as usize;
                }
                assert_eq!(u(&f["uid"]) as u32, rec.attrs.uid);
            }
        }
        assert!(
            named > 0,
            "no named owner among the files of {}",
            out.display()
        );
    }
    let o = Command::new(BIN)
        .arg("stats")
        .arg(&outputs[0])
        .args(["--by-uid", "--by-gid"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("alice@example.com"), "{text}");
    assert!(text.contains("wheel, \"admins\"@example.com"), "{text}");
}
