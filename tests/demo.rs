//! `nfs-walker demo` needs nothing but the binary: its mock-nfsd runs in-process, so a copy of
//! the binary alone in an empty directory, with an empty PATH, scans the whole synthetic tree.

mod common;

use common::*;
use std::process::Command;

#[test]
fn demo_runs_from_a_lone_copy_with_an_empty_path() {
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("nfs-walker");
    std::fs::copy(walker_bin(), &lone).unwrap();
    let out = Command::new(&lone)
        .args(["demo", "--tree", "mixed:20000:7", "-o", "demo.ndjson"])
        .env("PATH", "")
        .current_dir(dir.path())
        .output()
        .expect("run the copied nfs-walker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // The server's own view of the scan is printed beside the client's summary.
    assert!(err.contains("mock-nfsd counted: "), "{err}");
    assert!(err.contains("readdirplus "), "{err}");
    let config = mock_nfsd::Config {
        tree: "mixed:20000:7".parse().unwrap(),
        ..Default::default()
    };
    let got = std::fs::read(dir.path().join("demo.ndjson")).unwrap();
    assert_exact_ndjson(
        &got,
        mock_nfsd::listing(&config, false),
        "demo mixed:20000:7",
    );
}

#[test]
fn demo_passes_scan_args_through() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(walker_bin())
        .args(["demo", "--tree", "wide:3:10", "-o", "demo.csv"])
        .args(["--scan-args", "--mode getattr --threads 1 --io epoll"])
        .current_dir(dir.path())
        .output()
        .expect("run nfs-walker demo");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary = err
        .lines()
        .find(|l| l.starts_with("scanned "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(summary.contains(" 1 thread"), "{summary}");
    assert!(summary.ends_with("epoll"), "{summary}");
    // getattr mode lists with READDIR and looks up each of the 33 entries below the root: the
    // server counted exactly that.
    let counted = err
        .lines()
        .find(|l| l.contains("mock-nfsd counted: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(counted.contains(" readdir "), "{counted}");
    assert!(!counted.contains("readdirplus"), "{counted}");
    assert!(counted.contains(" lookup 33,"), "{counted}");
    let csv = std::fs::read_to_string(dir.path().join("demo.csv")).unwrap();
    // A header line, the root, 3 directories and 30 files.
    assert_eq!(csv.lines().count(), 1 + 1 + 3 + 30, "{csv}");
}
