//! Against nfs-ganesha, a real NFSv3 server: `ls` and `scan` give exactly what `find` and
//! `lstat` give on the exported directory, in every mode, on both I/O backends.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

#[test]
fn ls_matches_find_and_stat() {
    let Some((url, dir)) = ganesha() else { return };
    // the export root, names with spaces/unicode, symlinks, 10,000 entries, hostile names
    for sub in [
        "",
        "mixed",
        "mixed/special",
        "mixed/links",
        "flat10k",
        "names",
        "mixed/empty-dir",
    ] {
        let out = run_walker(&["ls", "--json", &url_with_path(&url, sub)]);
        assert!(
            out.status.success(),
            "ls {sub}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = parse_ndjson(&out.stdout);
        let expected = find_listing(&dir.join(sub), Some(1), false);
        assert_same_listing(got, expected, Fields::All, false, &format!("ls /{sub}"));
    }
}

#[test]
fn ls_table_shows_symlink_targets() {
    let Some((url, dir)) = ganesha() else { return };
    let out = run_walker(&["ls", &url_with_path(&url, "mixed/links")]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let target = std::fs::read_link(dir.join("mixed/links/rel-file")).unwrap();
    assert!(
        table.contains(&format!("rel-file -> {}", target.display())),
        "{table}"
    );
    assert_eq!(
        table.lines().count(),
        find_listing(&dir.join("mixed/links"), Some(1), false).len()
    );
}

#[test]
fn scan_matches_find_in_every_mode_on_both_backends() {
    let Some((url, dir)) = ganesha() else { return };
    for tree in ["mixed", "names", "deep", "flat"] {
        let expected = find_listing(&dir.join(tree), None, true);
        for io in ["uring", "epoll"] {
            for mode in ["plus", "getattr", "names"] {
                let out = run_walker(&[
                    "scan",
                    &url_with_path(&url, tree),
                    "--mode",
                    mode,
                    "--io",
                    io,
                    "-q",
                ]);
                let what = format!("scan {tree} --mode {mode} --io {io}");
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{what}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let fields = if mode == "names" {
                    Fields::Names
                } else {
                    Fields::All
                };
                assert_same_listing(
                    parse_ndjson(&out.stdout),
                    expected.clone(),
                    fields,
                    false,
                    &what,
                );
            }
        }
    }
}

#[test]
fn scan_reads_link_targets_and_honours_filters() {
    let Some((url, dir)) = ganesha() else { return };
    let root = dir.join("mixed");
    let u = url_with_path(&url, "mixed");
    let out = run_walker(&["scan", &u, "--readlink", "-q"]);
    assert_eq!(out.status.code(), Some(0));
    assert_same_listing(
        parse_ndjson(&out.stdout),
        find_listing(&root, None, true),
        Fields::All,
        true,
        "--readlink",
    );

    let out = run_walker(&["scan", &u, "--max-depth", "2", "-q"]);
    assert_same_listing(
        parse_ndjson(&out.stdout),
        find_listing(&root, Some(2), true),
        Fields::All,
        false,
        "--max-depth 2",
    );

    let out = run_walker(&["scan", &u, "--dirs-only", "-q"]);
    let got = parse_ndjson(&out.stdout);
    let dirs: Vec<_> = find_listing(&root, None, true)
        .into_iter()
        .filter(|r| r.attrs.kind == nfs_walker::record::EntryType::Dir)
        .collect();
    assert_same_listing(got, dirs, Fields::All, false, "--dirs-only");

    let out = run_walker(&[
        "scan",
        &u,
        "--exclude",
        "bulk",
        "--exclude",
        "links/*",
        "-q",
    ]);
    let got = parse_ndjson(&out.stdout);
    let expected: Vec<_> = find_listing(&root, None, true)
        .into_iter()
        .filter(|r| !r.path.starts_with(b"bulk") && !r.path.starts_with(b"links/"))
        .collect();
    assert_same_listing(got, expected, Fields::All, false, "--exclude");
}

#[test]
fn csv_and_names_formats_carry_the_same_paths() {
    let Some((url, dir)) = ganesha() else { return };
    let u = url_with_path(&url, "mixed/special");
    let expected = find_listing(&dir.join("mixed/special"), None, true);
    let out = run_walker(&["scan", &u, "--format", "names", "-q"]);
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    let mut want: Vec<String> = expected
        .iter()
        .map(|r| String::from_utf8_lossy(&r.path).into_owned())
        .collect();
    want.sort();
    assert_eq!(names, want);
    let out = run_walker(&["scan", &u, "--format", "csv", "-q"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("path,type,size,used,mode,"));
    // one header line plus one row per entry (no name here holds a newline)
    assert_eq!(csv.matches("\r\n").count(), expected.len() + 1);
    assert!(csv.contains("\"quote\"\"double\",file,"));
}

fn expect_clean_failure(args: &[&str], needle: &str) {
    let t = Instant::now();
    let out = run_walker(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected `{needle}` in: {err}"
    );
    assert!(t.elapsed() < Duration::from_secs(60));
}

#[test]
fn wrong_export_lists_what_the_server_offers() {
    let Some((url, _)) = ganesha() else { return };
    let bad = url.replace("/export", "/no-such-export");
    expect_clean_failure(&["ls", &bad], "exports offered: /export");
    expect_clean_failure(&["scan", &bad, "-q"], "exports offered: /export");
    expect_clean_failure(
        &["ls", &url_with_path(&url, "mixed/no-such-dir")],
        "NFS3ERR_NOENT",
    );
    expect_clean_failure(
        &["ls", &url_with_path(&url, "mixed/links/target")],
        "not a directory",
    );
}

#[test]
fn unreachable_and_non_nfs_servers_fail_with_one_clear_line() {
    // a port nobody listens on
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let u = format!("nfs://127.0.0.1/export?nfsport={port}&mountport={port}");
    expect_clean_failure(&["ls", &u], "Connection refused");
    expect_clean_failure(&["scan", &u, "-q"], "Connection refused");

    // a server that answers garbage
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for s in l.incoming().take(2) {
            let mut s = s.unwrap();
            let mut b = [0u8; 512];
            let _ = s.read(&mut b);
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\nthis is not RPC at all\r\n");
        }
    });
    let u = format!("nfs://127.0.0.1/export?nfsport={port}&mountport={port}");
    expect_clean_failure(&["ls", &u], "does not speak ONC-RPC");
    expect_clean_failure(&["scan", &u, "-q"], "does not speak ONC-RPC");
    server.join().unwrap();
}
