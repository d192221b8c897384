//! The spellings of the libnfs-based nfs-walker: each does what its long form does.

mod common;

use common::*;
use mock_nfsd::{Config, Server};

/// Sorted output lines and the summary's "N threads" of one scan.
fn scan(args: &[&str]) -> (Vec<String>, String, String) {
    let out = run_walker(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        matches!(out.status.code(), Some(0) | Some(2)),
        "{args:?}: {err}"
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    let threads = err
        .split("; ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_default()
        .to_string();
    (lines, threads, err)
}

#[test]
fn short_spellings_do_what_their_long_forms_do() {
    let config = Config {
        tree: "mixed:20000".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config).unwrap();
    let url = server.url();
    // -w N, --workers N, --threads N
    let (long, long_threads, _) = scan(&["scan", &url, "--threads", "1"]);
    assert_eq!(long_threads, "1 threads");
    for spelling in [["-w", "1"], ["--workers", "1"]] {
        let (lines, threads, err) = scan(&["scan", &url, spelling[0], spelling[1]]);
        assert_eq!(threads, long_threads, "{spelling:?}: {err}");
        assert_eq!(lines, long, "{spelling:?}");
    }
    // -d N, --max-depth N: the same entries, fewer than the whole tree.
    let (all, _, _) = scan(&["scan", &url]);
    let (depth_long, _, _) = scan(&["scan", &url, "--max-depth", "2"]);
    let (depth_short, _, _) = scan(&["scan", &url, "-d", "2"]);
    assert_eq!(depth_short, depth_long);
    assert!(depth_long.len() < all.len() && depth_long.len() > 1);
    // `nfs-walker URL` is `nfs-walker scan URL`, with short options too.
    let (shortcut, _, _) = scan(&[&url, "-d", "2", "-w", "1"]);
    assert_eq!(shortcut, depth_long);
    // --export names the export instead of asking for the export list.
    let (named, _, _) = scan(&["scan", &url, "--export", "/export"]);
    assert_eq!(named, all);
    let out = run_walker(&["scan", &url, "--export", "/elsewhere"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not within the export /elsewhere"), "{err}");
    server.shutdown();
}

#[test]
fn verbose_prints_every_error_and_retry_as_it_happens() {
    // Hostile names give a path error each (more than the 100 printed without -v); dropped
    // replies give retries.
    let config = Config {
        tree: "mixed:20000".parse().unwrap(),
        faults: "names:p=0.5,drop:p=0.002".parse().unwrap(),
        seed: 3,
        ..Default::default()
    };
    let server = Server::start(config).unwrap();
    let url = server.url();
    let (_, _, quiet) = scan(&["scan", &url, "--timeout", "0.3"]);
    let (_, _, verbose) = scan(&["scan", &url, "--timeout", "0.3", "-v"]);
    let (_, _, long) = scan(&["scan", &url, "--timeout", "0.3", "--verbose"]);
    let error_lines = |err: &str| {
        err.lines()
            .filter(|l| l.contains("invalid entry name"))
            .count()
    };
    for (name, err) in [("-v", &verbose), ("--verbose", &long)] {
        assert!(
            err.contains("retry 1 of 5"),
            "{name}: no retry logged: {err}"
        );
        let n = error_lines(err);
        assert!(n > 100, "{name}: {n} error lines");
    }
    assert!(
        error_lines(&quiet) <= 100,
        "without -v, at most 100 errors on stderr"
    );
    assert!(
        !quiet.contains("retry 1 of"),
        "without -v, no retries logged"
    );
    server.shutdown();
}

#[test]
fn mount_style_urls_scan_what_nfs_urls_do() {
    let Some((url, _dir)) = ganesha() else {
        return;
    };
    // host:/export/path has no ports: the portmapper on 111 is asked, as mount(8) does.
    let (by_url, _, _) = scan(&["scan", &url_with_path(&url, "flat10k")]);
    let (by_spec, _, err) = scan(&["scan", "127.0.0.1:/export/flat10k"]);
    assert_eq!(by_spec, by_url, "{err}");
    assert_eq!(by_url.len(), 10_001);
    let (shortcut, _, _) = scan(&["127.0.0.1:/export/flat10k", "-d", "0"]);
    assert_eq!(shortcut.len(), 1);
}

#[test]
fn help_shows_the_spellings() {
    let out = run_walker(&["scan", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for s in [
        "-w, --threads",
        "--workers",
        "-d, --max-depth",
        "-v, --verbose",
        "--export <PATH>",
    ] {
        assert!(help.contains(s), "scan --help lacks {s}");
    }
    let out = run_walker(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("host:/export/path"));
}
