//! The mock-nfsd binary: first line, --print-listing, --stats on SIGTERM, argument errors.

use nfs_proto::record::EntryRecord;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mock-nfsd");

#[test]
fn print_listing_is_the_library_listing_as_ndjson() {
    let out = Command::new(BIN)
        .args(["--tree", "mixed:2000:4", "--print-listing", "--readlink"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let parsed: Vec<EntryRecord> = text
        .lines()
        .map(|l| EntryRecord::from_json(l).unwrap())
        .collect();
    let cfg = mock_nfsd::Config {
        tree: "mixed:2000:4".parse().unwrap(),
        ..Default::default()
    };
    let expected: Vec<EntryRecord> = mock_nfsd::listing(&cfg, true).collect();
    assert_eq!(parsed, expected);
    assert_eq!(parsed[0].path, b".");
    assert_eq!(parsed[0].depth, 0);
    assert!(parsed.iter().any(|r| r.target.is_some()));
    assert!(parsed.iter().any(|r| std::str::from_utf8(&r.path).is_err()));
}

#[test]
fn serves_then_prints_stats_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--tree", "flat:5", "--stats"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"));
    assert!(addr.starts_with("127.0.0.1:"));
    // One NULL call to NFS, then SIGTERM.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let call: [u32; 11] = [0x8000_0028, 7, 0, 2, 100003, 3, 0, 0, 0, 0, 0];
    let bytes: Vec<u8> = call.iter().flat_map(|w| w.to_be_bytes()).collect();
    std::io::Write::write_all(&mut s, &bytes).unwrap();
    let mut reply = [0u8; 28];
    s.read_exact(&mut reply).unwrap();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest, "# rpc counts\nnull 1\n");
}

#[test]
fn bad_arguments_are_reported() {
    for args in [
        &["--tree", "flat:x"][..],
        &["--tree", "cube:3"],
        &["--latency", "fixed:3"],
        &["--faults", "explode:p=1"],
        &["--cookies", "random"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for kind in [
        "reset:every",
        "stall:every",
        "jukebox:p",
        "drop:p",
        "badcookie:p",
        "xid:every",
        "truncate:every",
        "hugerecord:every",
        "fragment:every",
        "names:p",
        "mixed:N",
        "lognormal",
    ] {
        assert!(help.contains(kind), "--help documents {kind}");
    }
}
