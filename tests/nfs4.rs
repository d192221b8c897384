//! NFSv4.1: `ls` over a session gives exactly what the server holds, against mock-nfsd (whose
//! trees come with their exact listing), through its faults (DELAY storms, sessions destroyed
//! under the client), and against nfs-ganesha (what `find` and `lstat` say).

mod common;

use common::*;
use mock_nfsd::{Config, Server};
use nfs_walker::record::EntryRecord;

fn v4_url(port: u16, sub: &str) -> String {
    format!(
        "nfs://127.0.0.1:{port}/export/{}?version=4",
        sub.trim_start_matches('/')
    )
}

/// The entries directly below `dir` ("" for the root) in the mock's exact listing, with paths
/// relative to `dir`.
fn mock_children(config: &Config, dir: &[u8]) -> Vec<EntryRecord> {
    let prefix: Vec<u8> = if dir.is_empty() {
        Vec::new()
    } else {
        [dir, b"/"].concat()
    };
    let depth = if dir.is_empty() {
        1
    } else {
        dir.iter().filter(|&&b| b == b'/').count() as u32 + 2
    };
    mock_nfsd::listing(config, false)
        .filter(|r| r.depth == depth && r.path.starts_with(&prefix))
        .map(|mut r| {
            r.path.drain(..prefix.len());
            r.depth = 1;
            r
        })
        .collect()
}

fn ls_json(url: &str, extra: &[&str]) -> Vec<EntryRecord> {
    let mut args = vec!["ls", "--json", url];
    args.extend_from_slice(extra);
    let out = run_walker(&args);
    assert!(
        out.status.success(),
        "ls {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_ndjson(&out.stdout)
}

#[test]
fn ls_over_v4_lists_mock_trees_exactly() {
    let config = Config {
        tree: "mixed:3000:7".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let root = mock_children(&config, b"");
    assert!(root.len() > 5);
    assert_same_listing(
        ls_json(&v4_url(server.port(), ""), &[]),
        root.clone(),
        Fields::All,
        false,
        "ls / over v4",
    );
    // a directory below the export, reached with LOOKUP; and --nfs-version instead of the URL
    let sub = root
        .iter()
        .find(|r| r.attrs.kind == nfs_walker::record::EntryType::Dir)
        .expect("a subdirectory")
        .path
        .clone();
    let url = format!(
        "nfs://127.0.0.1:{}/export/{}",
        server.port(),
        String::from_utf8(sub.clone()).unwrap()
    );
    assert_same_listing(
        ls_json(&url, &["--nfs-version", "4"]),
        mock_children(&config, &sub),
        Fields::All,
        false,
        "ls of a subdirectory over v4",
    );
    let stats = server.stats();
    assert!(stats.get("v4_exchange_id") >= 2);
    assert_eq!(
        stats.get("v4_destroy_session"),
        stats.get("v4_create_session"),
        "every session is destroyed at the end"
    );
    assert_eq!(stats.get("mnt"), 0, "no MOUNT over v4");
}

#[test]
fn ls_over_v4_is_exact_through_delay_storms_and_lost_sessions() {
    let config = Config {
        tree: "flat:20000".parse().unwrap(),
        faults: "delay:p=0.2,badsession:every=4".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let got = ls_json(&v4_url(server.port(), ""), &[]);
    assert_eq!(got.len(), 20000);
    assert_same_listing(
        got,
        mock_children(&config, b""),
        Fields::All,
        false,
        "ls over v4 with faults",
    );
    let stats = server.stats();
    assert!(
        stats.get("v4_create_session") > 2,
        "sessions were re-created: {stats:?}"
    );
}

#[test]
fn v4_errors_name_the_path() {
    let server = Server::start(Config {
        tree: "flat:10".parse().unwrap(),
        ..Default::default()
    })
    .unwrap();
    let out = run_walker(&["ls", &v4_url(server.port(), "no-such-dir")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NFS4ERR_NOENT"), "{err}");
    let out = run_walker(&["ls", &v4_url(server.port(), "f0000003")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Owner names to ids for servers that send names: the local users and groups (the test
/// server runs on this host, so its names are ours).
fn local_idmap() -> std::path::PathBuf {
    let mut map = String::new();
    for file in ["/etc/group", "/etc/passwd"] {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 2 {
                map.push_str(&format!("{} {}\n", f[0], f[2]));
            }
        }
    }
    let path = std::env::temp_dir().join(format!("nfs-walker-idmap-{}", std::process::id()));
    std::fs::write(&path, map).unwrap();
    path
}

#[test]
fn ls_over_v4_matches_find_and_stat_on_ganesha() {
    let Some((url, dir)) = ganesha() else { return };
    let idmap = local_idmap();
    let idmap_arg = idmap.to_str().unwrap();
    for sub in [
        "",
        "mixed",
        "mixed/special",
        "mixed/links",
        "flat10k",
        "names",
    ] {
        let got = ls_json(&ganesha_v4(&url, sub), &["--idmap", idmap_arg]);
        let expected = find_listing(&dir.join(sub), Some(1), false);
        assert_same_listing(got, expected, Fields::All, false, &format!("v4 ls /{sub}"));
    }
    let _ = std::fs::remove_file(idmap);
}

fn scan_v4(url: &str, extra: &[&str]) -> (Vec<u8>, String, Option<i32>) {
    let mut args = vec!["scan", url, "-q"];
    args.extend_from_slice(extra);
    let out = run_walker(&args);
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn scan_over_v4_is_exact_on_mock_trees_on_both_backends() {
    let config = Config {
        tree: "mixed:30000:5".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    for io in ["uring", "epoll"] {
        let (out, err, code) = scan_v4(
            &v4_url(server.port(), ""),
            &["--io", io, "--threads", "2", "--connections", "2"],
        );
        assert_eq!(code, Some(0), "{err}");
        assert_exact_ndjson(&out, mock_nfsd::listing(&config, false), "v4 scan of mixed");
    }
    let stats = server.stats();
    assert!(stats.get("v4_readdir") > 100);
    assert_eq!(stats.get("readdirplus"), 0, "no v3 call in a v4 scan");
    // One client ID and session per scan, shared by every thread; every connection of every
    // thread bound to it; the session and client ID destroyed at the end.
    let stats = server.stats();
    assert_eq!(stats.get("v4_exchange_id"), 2, "{stats:?}");
    assert_eq!(stats.get("v4_create_session"), 2, "{stats:?}");
    assert_eq!(stats.get("v4_destroy_session"), 2, "{stats:?}");
    assert!(stats.get("v4_bind_conn_to_session") >= 2 * 4, "{stats:?}");
}

#[test]
fn scan_over_v4_is_exact_through_session_loss_delay_storms_and_resets() {
    let config = Config {
        tree: "flat:100000".parse().unwrap(),
        faults: "delay:p=0.05,badsession:every=25,reset:every=300,drop:p=0.002"
            .parse()
            .unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let (out, err, code) = scan_v4(
        &v4_url(server.port(), ""),
        &["--timeout", "1", "--maxcount", "8192"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_exact_ndjson(
        &out,
        mock_nfsd::listing(&config, false),
        "v4 scan with faults",
    );
    let stats = server.stats();
    assert!(
        stats.get("v4_create_session") > 4,
        "sessions were lost and re-created: {stats:?}"
    );
}

/// `--readlink` over v4 writes every link with its target, exactly, also while sessions are
/// lost and the server answers DELAY (to READLINKs too).
#[test]
fn scan_over_v4_reads_link_targets_exactly_through_faults() {
    for faults in ["", "delay:p=0.05,badsession:every=25"] {
        let config = Config {
            tree: "mixed:20000:3".parse().unwrap(),
            faults: faults.parse().unwrap(),
            ..Default::default()
        };
        let server = Server::start(config.clone()).unwrap();
        let expected: Vec<EntryRecord> = mock_nfsd::listing(&config, true).collect();
        let links = expected.iter().filter(|r| r.target.is_some()).count() as u64;
        assert!(links > 100, "the tree has links: {links}");
        let (out, err, code) = scan_v4(
            &v4_url(server.port(), ""),
            &["--readlink", "--timeout", "1"],
        );
        assert_eq!(code, Some(0), "{err}");
        assert_exact_ndjson(
            &out,
            expected.into_iter(),
            &format!("v4 scan --readlink, faults {faults:?}"),
        );
        let stats = server.stats();
        assert!(stats.get("v4_readlink") >= links, "{stats:?}");
    }
}

#[test]
fn scan_over_v4_matches_find_on_ganesha() {
    let Some((url, dir)) = ganesha() else { return };
    let idmap = local_idmap();
    let idmap_arg = idmap.to_str().unwrap();
    for tree in ["mixed", "names", "deep", "flat"] {
        let expected = find_listing(&dir.join(tree), None, true);
        let (out, err, code) = scan_v4(
            &ganesha_v4(&url, tree),
            &["--idmap", idmap_arg, "--readlink"],
        );
        assert_eq!(code, Some(0), "v4 scan {tree}: {err}");
        // with the link targets `find -printf %l` gives
        assert_same_listing(
            parse_ndjson(&out),
            expected,
            Fields::All,
            true,
            &format!("v4 scan --readlink {tree}"),
        );
    }
    let _ = std::fs::remove_file(idmap);
}

/// A scan of a server that sends owner names (`alice@example.com`) keeps each name in
/// `owner` / `group` with `nobody` as the id, in NDJSON, CSV, the database and Parquet (each
/// read back exactly), and keeps numeric owners as ids alone; `--idmap` turns the names it
/// lists into ids and keeps the names; `ls` shows names.
#[test]
fn owner_names_are_kept_in_every_output_and_mapped_by_idmap() {
    let config = Config {
        tree: "mixed:3000:7".parse().unwrap(),
        owner_names: true,
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let url = v4_url(server.port(), "");
    let expected: Vec<EntryRecord> = mock_nfsd::listing(&config, false).collect();
    let wheel = &b"wheel, \"admins\"@example.com"[..];
    assert!(expected
        .iter()
        .any(|r| r.owner.as_deref() == Some(b"alice@example.com")));
    assert!(expected.iter().any(|r| r.group.as_deref() == Some(wheel)));
    assert!(
        expected
            .iter()
            .any(|r| r.owner.is_none() && r.attrs.uid > 1000 && r.attrs.uid < 1100),
        "numeric owners too"
    );

    let (out, err, code) = scan_v4(&url, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_exact_ndjson(&out, expected.iter().cloned(), "v4 scan with owner names");

    let dir = std::env::temp_dir().join(format!("nfs-walker-owners-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("scan.db");
    let (_, err, code) = scan_v4(&url, &["-o", db.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let want = |f: &dyn Fn(&EntryRecord) -> bool| expected.iter().filter(|r| f(r)).count() as i64;
    assert_eq!(
        count("SELECT count(*) FROM entries WHERE owner = 'alice@example.com' AND uid = 65534"),
        want(&|r| r.owner.as_deref() == Some(b"alice@example.com"))
    );
    assert_eq!(
        count(r#"SELECT count(*) FROM entries WHERE "group" = 'wheel, "admins"@example.com'"#),
        want(&|r| r.group.as_deref() == Some(wheel))
    );
    assert_eq!(
        count("SELECT count(*) FROM entries WHERE owner IS NULL"),
        want(&|r| r.owner.is_none())
    );
    drop(conn);
    // Every format carries the names: database -> Parquet -> CSV and NDJSON.
    let parquet = dir.join("scan.parquet");
    let csv = dir.join("scan.csv");
    let back = dir.join("back.ndjson");
    for (from, to) in [(&db, &parquet), (&parquet, &csv), (&parquet, &back)] {
        let out = run_walker(&[
            "convert",
            "-q",
            from.to_str().unwrap(),
            to.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_exact_ndjson(
        &std::fs::read(&back).unwrap(),
        expected.iter().cloned(),
        "database and Parquet with owner names",
    );
    let csv = std::fs::read_to_string(&csv).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",target_b64,owner,group"), "{header}");
    let root = expected.iter().find(|r| r.path == b".").unwrap();
    let root_row = csv.lines().find(|l| l.starts_with(".,dir,")).unwrap();
    let quoted = |n: &Option<Vec<u8>>| match n.as_deref() {
        Some(n) if n.contains(&b',') => {
            format!("\"{}\"", String::from_utf8_lossy(n).replace('"', "\"\""))
        }
        Some(n) => String::from_utf8_lossy(n).into_owned(),
        None => String::new(),
    };
    assert!(
        root_row.ends_with(&format!(",{},{}", quoted(&root.owner), quoted(&root.group))),
        "{root_row} vs {root:?}"
    );
    assert_eq!(
        csv.matches("alice@example.com").count() as i64,
        want(&|r| r.owner.as_deref() == Some(b"alice@example.com"))
    );

    // --idmap: listed names become ids (the name stays); unlisted ones stay nobody.
    let map = dir.join("idmap");
    std::fs::write(&map, "alice 1000\nstaff@example.com 50\n").unwrap();
    let (out, err, code) = scan_v4(&url, &["--idmap", map.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let mapped = expected.iter().cloned().map(|mut r| {
        if r.owner.as_deref() == Some(b"alice@example.com") {
            r.attrs.uid = 1000;
        }
        if r.group.as_deref() == Some(b"staff@example.com") {
            r.attrs.gid = 50;
        }
        r
    });
    assert_exact_ndjson(&out, mapped, "v4 scan with an id map");

    let out = run_walker(&["ls", &url]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(" alice@example.com "), "{table}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--checksum` and `--file-type` over v4: READ COMPOUNDs on the reads' share of each thread's
/// slots beside the walk; every regular file's checksum equals the mock's contents, exactly,
/// also through lost sessions (reported by reads or the walk, re-created once) and DELAY.
#[test]
fn content_reads_over_v4_are_exact_through_faults() {
    use checksum::ChecksumAlgo;
    use mock_nfsd::content::file_checksum;
    const MAX_SIZE: u64 = 4 << 20;
    for faults in ["", "delay:p=0.05,badsession:every=400"] {
        let config = Config {
            tree: "mixed:3000:7".parse().unwrap(),
            faults: faults.parse().unwrap(),
            ..Default::default()
        };
        let server = Server::start(config.clone()).unwrap();
        let max = MAX_SIZE.to_string();
        let (out, err, code) = scan_v4(
            &v4_url(server.port(), ""),
            &[
                "--checksum",
                "xxh3",
                "--checksum-max-size",
                &max,
                "--file-type",
                "--threads",
                "2",
                "--timeout",
                "2",
            ],
        );
        assert_eq!(code, Some(0), "faults {faults:?}: {err}");
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let listing: Vec<EntryRecord> = mock_nfsd::listing(&config, false).collect();
        assert_eq!(lines.len(), listing.len(), "every entry once: {err}");
        let by_path: std::collections::HashMap<&str, &serde_json::Value> = lines
            .iter()
            .map(|v| (v["path"].as_str().unwrap(), v))
            .collect();
        let mut summed = 0;
        for rec in &listing {
            let path = String::from_utf8_lossy(&rec.path);
            let Some(v) = by_path.get(path.as_ref()) else {
                continue; // invalid UTF-8 names
            };
            let a = &rec.attrs;
            let want = (a.kind == nfs_walker::record::EntryType::File && a.size <= MAX_SIZE)
                .then(|| file_checksum(ChecksumAlgo::Xxh3, a.fileid, a.size));
            assert_eq!(v["checksum"].as_str(), want.as_deref(), "{path}");
            if a.kind == nfs_walker::record::EntryType::File && a.size > 0 {
                assert!(v.get("mime").is_some(), "{path}: typed");
            }
            summed += usize::from(want.is_some());
        }
        assert!(summed > 1000, "{summed}");
        let stats = server.stats();
        assert!(stats.get("v4_read") > 1000, "{stats:?}");
        assert_eq!(stats.get("read"), 0, "no NFSv3 READ");
        if !faults.is_empty() {
            assert!(stats.get("v4_create_session") > 2, "{stats:?}");
        }
    }
}
