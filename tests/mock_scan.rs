//! Exactness against mock-nfsd, whose synthetic trees come with their exact listing: a huge
//! directory with opaque hash cookies yields exactly its entries (never more, never a
//! duplicate), and a realistic mixed tree matches field by field, in every mode, with one and
//! with all threads, on both I/O backends.

mod common;

use common::*;
use mock_nfsd::{Config, Server};
use std::process::Command;

fn scan(url: &str, extra: &[&str]) -> (Vec<u8>, String, Option<i32>) {
    let out = Command::new(walker_bin())
        .arg("scan")
        .arg(url)
        .arg("-q")
        .args(extra)
        .output()
        .expect("run nfs-walker");
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn million_entry_directory_with_hash_cookies_yields_exactly_its_entries() {
    let config = Config {
        tree: "flat:1000000".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    for threads in ["1", "2"] {
        let (out, err, code) = scan(&server.url(), &["--threads", threads]);
        assert_eq!(code, Some(0), "{err}");
        assert!(err.contains("scanned 1000001 entries"), "{err}");
        assert_exact_ndjson(
            &out,
            mock_nfsd::listing(&config, false),
            &format!("flat:1000000 --threads {threads}"),
        );
    }
    server.shutdown();
}

#[test]
fn mixed_tree_matches_the_listing_in_every_mode_and_backend() {
    let config = Config {
        tree: "mixed:200000".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    for io in ["uring", "epoll"] {
        for threads in ["1", "2"] {
            for mode in ["plus", "getattr"] {
                let (out, err, code) = scan(
                    &server.url(),
                    &["--io", io, "--threads", threads, "--mode", mode],
                );
                let what = format!("mixed:200000 --io {io} --threads {threads} --mode {mode}");
                assert_eq!(code, Some(0), "{what}: {err}");
                assert_exact_ndjson(&out, mock_nfsd::listing(&config, false), &what);
            }
        }
    }
    // names mode: the same paths and fileids
    let (out, err, code) = scan(&server.url(), &["--mode", "names"]);
    assert_eq!(code, Some(0), "{err}");
    assert_same_listing(
        parse_ndjson(&out),
        mock_nfsd::listing(&config, false).collect(),
        Fields::Names,
        false,
        "mixed:200000 --mode names",
    );
    // symlink targets
    let (out, err, code) = scan(&server.url(), &["--readlink"]);
    assert_eq!(code, Some(0), "{err}");
    assert_exact_ndjson(&out, mock_nfsd::listing(&config, true), "mixed --readlink");
    server.shutdown();
}

#[test]
fn index_cookies_and_no_dot_entries_change_nothing() {
    let config = Config {
        tree: "wide:50:2000".parse().unwrap(),
        cookies: mock_nfsd::CookieMode::Index,
        dot_entries: false,
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let (out, err, code) = scan(&server.url(), &["--maxcount", "8192", "--dircount", "2048"]);
    assert_eq!(code, Some(0), "{err}");
    assert_exact_ndjson(
        &out,
        mock_nfsd::listing(&config, false),
        "wide:50:2000 index cookies",
    );
    server.shutdown();
}

#[test]
fn rpc_counts_match_the_server_and_small_replies_mean_more_calls() {
    let config = Config {
        tree: "flat:20000".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let (_, err, code) = scan(&server.url(), &["--maxcount", "4096", "--dircount", "1024"]);
    assert_eq!(code, Some(0), "{err}");
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("readdirplus"))
        .unwrap_or_else(|| panic!("no readdirplus line in {err}"));
    let calls: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(calls, server.stats().get("readdirplus"));
    assert!(
        calls > 100,
        "20,000 entries in 4 KiB replies need many calls, got {calls}"
    );
    server.shutdown();
}

#[test]
fn directories_deeper_than_the_limit_are_reported_not_followed() {
    let config = Config {
        tree: "deep:10050".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let (out, err, code) = scan(&server.url(), &["--format", "names"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("deeper than 10000 levels"), "{err}");
    let deepest = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| l.matches('/').count() + 1)
        .max()
        .unwrap();
    assert_eq!(
        deepest, 10_000,
        "entries down to the limit are written, none below"
    );
    server.shutdown();
}

/// READDIRPLUS calls a full scan of `mixed:1000000` makes with the default reply size
/// (measured: 40,502); a scan that stops early makes far fewer.
const MIXED_1M_FULL_SCAN_CALLS: u64 = 40_000;

#[test]
fn a_reader_that_goes_away_stops_the_scan() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let config = Config {
        tree: "mixed:1000000".parse().unwrap(),
        latency: Some("fixed:1ms".parse().unwrap()),
        ..Default::default()
    };
    let server = Server::start(config).unwrap();
    let mut child = Command::new(walker_bin())
        .args(["scan", &server.url(), "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{\"path\":\".\""), "{first}");
    // The pipe closes here, as when `| head -1` exits.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("writing entries: Broken pipe"), "{err}");
    let calls = server.stats().get("readdirplus");
    assert!(
        calls < MIXED_1M_FULL_SCAN_CALLS / 4,
        "the scan went on after its reader left: {calls} calls"
    );
    server.shutdown();
}

#[test]
fn a_database_that_cannot_grow_stops_the_scan_and_stays_valid() {
    use std::os::unix::process::CommandExt;
    let config = Config {
        tree: "mixed:1000000".parse().unwrap(),
        latency: Some("fixed:1ms".parse().unwrap()),
        ..Default::default()
    };
    let server = Server::start(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scan.db");
    let mut cmd = Command::new(walker_bin());
    cmd.args(["scan", &server.url(), "-q", "-o"]).arg(&db);
    // A file size limit of 4 MiB makes the write that passes it fail (EFBIG), as a full disk
    // would; SIGXFSZ is ignored so the limit is an error, not a kill.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4 << 20,
                rlim_max: 4 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0
                || libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("File too large"), "{err}");
    assert_eq!(
        err.matches("File too large").count(),
        1,
        "each cause once: {err}"
    );
    let calls = server.stats().get("readdirplus");
    assert!(
        calls < MIXED_1M_FULL_SCAN_CALLS / 4,
        "the scan went on after its database failed: {calls} calls"
    );
    // The file is valid: the last commit, marked failed with the cause.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let status: String = conn
        .query_row("SELECT status FROM scan", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "failed");
    let stats = run_walker(&["stats", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(text.contains("File too large"), "{text}");
    server.shutdown();
}
