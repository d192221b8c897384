//! The fault matrix: against mock-nfsd injecting each fault kind (and all at once), a scan of
//! `mixed:200000` yields exactly the listing — no entry lost, none duplicated — on both I/O
//! backends, and its summary counts the retries and reconnects that happened.
//!
//! `cargo test --release --test faults -- --nocapture` prints the matrix reported in the README.

mod common;

use common::*;
use mock_nfsd::{Config, Server};
use std::process::Command;
use std::time::{Duration, Instant};

/// A counter from the summary's notes line ("retries 8, timeouts 8, ..."), 0 if absent.
fn counter(summary: &str, name: &str) -> u64 {
    summary
        .split([',', '\n'])
        .map(str::trim)
        .find_map(|part| part.strip_prefix(name).map(str::trim))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

struct Case {
    faults: &'static str,
    /// Summary counters that must be non-zero.
    counters: &'static [&'static str],
    /// Exit code: 2 where the server's hostile names are reported as path errors.
    code: i32,
}

const CASES: &[Case] = &[
    Case {
        faults: "reset:every=50",
        counters: &["reconnects", "calls resent after reconnect"],
        code: 0,
    },
    Case {
        faults: "stall:every=100:ms=300",
        counters: &[],
        code: 0,
    },
    Case {
        faults: "jukebox:p=0.02",
        counters: &["jukebox waits"],
        code: 0,
    },
    Case {
        faults: "drop:p=0.003",
        counters: &["timeouts", "retries"],
        code: 0,
    },
    Case {
        faults: "badcookie:p=0.1",
        counters: &["bad-cookie restarts"],
        code: 0,
    },
    Case {
        faults: "xid:every=3",
        counters: &["replies with unknown xid"],
        code: 0,
    },
    Case {
        faults: "truncate:every=70",
        counters: &["reconnects"],
        code: 0,
    },
    Case {
        faults: "hugerecord:every=90",
        counters: &["reconnects"],
        code: 0,
    },
    Case {
        faults: "fragment:every=3",
        counters: &[],
        code: 0,
    },
    Case {
        faults: "names:p=0.05",
        counters: &["path errors", "invalid names skipped"],
        code: 2,
    },
    Case {
        faults:
            "reset:every=200,stall:every=150:ms=200,jukebox:p=0.01,drop:p=0.002,badcookie:p=0.02,\
                 xid:every=7,truncate:every=300,hugerecord:every=400,fragment:every=5,names:p=0.02",
        counters: &["reconnects", "path errors"],
        code: 2,
    },
];

fn run_case(case: &Case, io: &str, mode: &str) {
    let config = Config {
        tree: "mixed:200000".parse().unwrap(),
        faults: case.faults.parse().unwrap(),
        seed: 7,
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let t = Instant::now();
    let out = Command::new("timeout")
        .args([
            "300",
            walker_bin(),
            "scan",
            &server.url(),
            "-q",
            "--timeout",
            "1",
        ])
        .args(["--io", io, "--mode", mode])
        .output()
        .unwrap();
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    let what = format!("--faults {} --io {io} --mode {mode}", case.faults);
    assert_eq!(out.status.code(), Some(case.code), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_exact_ndjson(&out.stdout, mock_nfsd::listing(&config, false), &what);
    for c in case.counters {
        assert!(
            counter(&err, c) > 0,
            "{what}: expected `{c}` in the summary: {err}"
        );
    }
    let written = out.stdout.iter().filter(|&&b| b == b'\n').count();
    println!(
        "| `{}` | {io} | {mode} | {} | {written} | {} | {} | {} | {:.1} s |",
        case.faults.replace(',', ", "),
        mock_nfsd::listing(&config, false).count(),
        counter(&err, "retries"),
        counter(&err, "reconnects"),
        counter(&err, "path errors"),
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(120), "{what}: took {took:?}");
    server.shutdown();
}

#[test]
fn every_fault_kind_on_both_backends_loses_and_duplicates_nothing() {
    println!(
        "| faults | io | mode | expected | written | retries | reconnects | path errors | time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for case in CASES {
        for io in ["uring", "epoll"] {
            run_case(case, io, "plus");
        }
    }
    // all faults at once with the LOOKUP-heavy mode
    run_case(CASES.last().unwrap(), "uring", "getattr");
}

#[test]
fn counter_parsing_reads_the_summary_notes() {
    let s = "  path errors 3, retries 8, timeouts 8, reconnects 2\n";
    assert_eq!(counter(s, "retries"), 8);
    assert_eq!(counter(s, "reconnects"), 2);
    assert_eq!(counter(s, "path errors"), 3);
    assert_eq!(counter(s, "jukebox waits"), 0);
}

/// A listing that never ends (the failure that made a 1M-entry directory read as 1.7M+
/// entries, never eof, every cookie new): with `replay:after=N` on a directory of N entries,
/// the scan ends in bounded time with exactly the directory's entries and one path error.
#[test]
fn a_listing_that_never_ends_yields_exactly_its_entries_and_one_error() {
    let dir = std::env::temp_dir().join(format!("nfs-walker-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (mode, maxcount) in [("plus", "1048576"), ("plus", "8192"), ("getattr", "65536")] {
        let config = Config {
            tree: "flat:20000".parse().unwrap(),
            faults: "replay:after=20000".parse().unwrap(),
            ..Default::default()
        };
        let server = Server::start(config.clone()).unwrap();
        let errors = dir.join(format!("errors-{mode}-{maxcount}.ndjson"));
        let t = Instant::now();
        let out = Command::new("timeout")
            .args(["120", walker_bin(), "scan", &server.url(), "-q"])
            .args(["--mode", mode, "--maxcount", maxcount])
            .arg("--errors")
            .arg(&errors)
            .output()
            .unwrap();
        let took = t.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        let what = format!("replay --mode {mode} --maxcount {maxcount}");
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert_exact_ndjson(&out.stdout, mock_nfsd::listing(&config, false), &what);
        let lines = std::fs::read_to_string(&errors).unwrap();
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: {lines:?}");
        assert!(
            lines[0].contains("\"path\":\".\"") && lines[0].contains("without a new entry"),
            "{what}: {}",
            lines[0]
        );
        assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
        println!("{what}: {took:?}");
        server.shutdown();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The other side of the rule above: a listing restarted by NFS3ERR_BAD_COOKIE repeats what it
/// listed before (expected, never counted as replies that bring nothing new), so many small
/// replies of repeats after each restart still end in an exact, error-free listing.
#[test]
fn restarted_listings_are_not_taken_for_listings_that_never_end() {
    let config = Config {
        tree: "flat:20000".parse().unwrap(),
        faults: "badcookie:p=0.004".parse().unwrap(),
        seed: 11,
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let out = Command::new("timeout")
        .args(["120", walker_bin(), "scan", &server.url(), "-q"])
        .args(["--maxcount", "8192", "--threads", "1", "--connections", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(counter(&err, "bad-cookie restarts") >= 2, "{err}");
    assert_exact_ndjson(&out.stdout, mock_nfsd::listing(&config, false), "badcookie");
    server.shutdown();
}
