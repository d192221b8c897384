//! `nfs-walker bench` against mock-nfsd (in-process; its `stats()` is the snapshot `--stats`
//! prints) and against nfs-ganesha: latency figures, exact call counts, coordinated omission
//! correction, the interval log, the comparison, and clean skips.

mod common;

use common::*;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use mock_nfsd::{Config, Server};
use nfs_walker::bench::{self, BenchConfig, BenchOp, EngineOptions, LoadMode, NoSink};
use nfs_walker::ring::{Backend, Ring, RingConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The tests of this file run one at a time: each one loads both cores, and the latency
/// figures of one must not be made by another's load.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn mock(tree: &str, latency: Option<&str>, faults: Option<&str>) -> mock_nfsd::ServerHandle {
    Server::start(Config {
        tree: tree.parse().unwrap(),
        latency: latency.map(|l| l.parse().unwrap()),
        faults: faults.map(|f| f.parse().unwrap()).unwrap_or_default(),
        ..Default::default()
    })
    .expect("start mock-nfsd")
}

/// Runs `nfs-walker bench URL ARGS --json FILE -q`; returns the JSON document and stderr.
fn bench_cli(url: &str, args: &[&str], dir: &Path) -> (Value, String) {
    let json = dir.join("bench.json");
    let mut all = vec!["bench", url, "-q", "--json", json.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run_walker(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "bench {args:?} failed: {stderr}"
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (doc, stderr)
}

fn op<'a>(doc: &'a Value, run: usize, name: &str) -> &'a Value {
    doc["runs"][run]["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["op"] == name)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    common::temp_dir("bench", name)
}

#[test]
fn fixed_1ms_latency_shows_as_p50_and_counts_match_the_server() {
    let _serial = serial();
    let server = mock("flat:1000", Some("fixed:1ms"), None);
    let dir = temp_dir("latency");
    let (doc, _) = bench_cli(
        &server.url(),
        &[
            "--op",
            "getattr",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--inflight",
            "16",
            "--threads",
            "1",
            "--connections",
            "2",
        ],
        &dir,
    );
    let g = op(&doc, 0, "getattr");
    let p50_us = num(&g["latency_us"]["p50"]);
    assert!(
        (1000.0..=1500.0).contains(&p50_us),
        "p50 {p50_us} µs with a fixed 1 ms server latency"
    );
    assert!(num(&g["latency_us"]["min"]) >= 1000.0, "{g}");
    // Every call was answered, none failed.
    assert_eq!(g["calls"], g["replies"]);
    assert_eq!(g["nfs_errors"], 0);
    assert_eq!(g["timeouts"], 0);
    // 16 in flight at ~1 ms each: on the order of 16,000 calls/s (generous bounds).
    let rate = num(&g["ops_per_s"]);
    assert!((4_000.0..=16_500.0).contains(&rate), "{rate} calls/s");
    // The server saw exactly the bench's calls: warmup + measured, plus the one GETATTR of
    // the export root the mount makes (the sample walk uses READDIRPLUS only).
    let stats = server.stats();
    let bench_calls = g["calls"].as_u64().unwrap() + g["warmup"]["calls"].as_u64().unwrap();
    assert_eq!(stats.get("getattr"), bench_calls + 1, "{stats:?}");
    assert_eq!(
        stats.get("readdirplus"),
        doc["runs"][0]["sample"]["listing_calls"].as_u64().unwrap()
    );
    server.shutdown();
}

/// The io_uring backend when the kernel allows it, and epoll.
fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Epoll];
    if Ring::new(Backend::Uring, &RingConfig::default()).is_ok() {
        v.push(Backend::Uring);
    } else {
        eprintln!("note: io_uring unavailable here; epoll only");
    }
    v
}

#[test]
fn call_counts_are_exact_between_sample_and_load() {
    let _serial = serial();
    // Through the library, so the server's counters can be read between the phases.
    let server = mock("wide:10:50", None, None);
    for backend in backends() {
        let cfg = BenchConfig {
            ops: vec![
                BenchOp::Getattr,
                BenchOp::Lookup,
                BenchOp::ReaddirPlus,
                BenchOp::Null,
            ],
            sample_entries: 300,
            mode: LoadMode::Closed { inflight: 64 },
            warmup: Duration::from_millis(300),
            duration: Duration::from_secs(1),
            engine: EngineOptions {
                threads: 2,
                connections: 3,
                backend: Some(backend),
                ..EngineOptions::default()
            },
            ..BenchConfig::default()
        };
        let prepared = bench::prepare(&server.url(), &cfg).unwrap();
        assert_eq!(prepared.targets.stats.entries, 300);
        let before = server.stats();
        let stop = Arc::new(AtomicBool::new(false));
        let report = bench::run_prepared(&prepared, &cfg, &stop, &mut NoSink).unwrap();
        let after = server.stats();
        prepared.server.close();
        assert_eq!(report.backend, backend);
        assert_eq!((report.threads, report.connections), (2, 3));
        for r in &report.ops {
            let sent = r.warmup.calls + r.measured.calls;
            let seen = after.get(r.op.name()) - before.get(r.op.name());
            assert_eq!(seen, sent, "{} on {backend}", r.op);
            assert_eq!(r.measured.replies, r.measured.calls, "{}", r.op);
            assert_eq!(r.latency_ns.len(), r.measured.replies, "{}", r.op);
            assert_eq!(r.measured.failed(), 0, "{}: {:?}", r.op, r.measured);
            assert!(r.ops_per_s > 0.0);
        }
        // Rotation gives each operation the same share of calls (within the calls in flight).
        let calls: Vec<u64> = report.ops.iter().map(|r| r.measured.calls).collect();
        let spread = calls.iter().max().unwrap() - calls.iter().min().unwrap();
        assert!(spread <= 64, "{calls:?}");
    }
    server.shutdown();
}

#[test]
fn open_loop_reflects_a_stall_that_closed_loop_hides() {
    let _serial = serial();
    // Every 2000th call on a connection is held 500 ms (the others go on). With one call in
    // flight at most, the calls due during the stall wait for it.
    let server = mock("flat:1000", None, Some("stall:every=2000:ms=500"));
    let dir = temp_dir("stall");
    let common = [
        "--op",
        "getattr",
        "--duration",
        "3",
        "--warmup",
        "0",
        "--inflight",
        "1",
        "--threads",
        "1",
        "--connections",
        "1",
    ];
    let mut open_args = common.to_vec();
    open_args.extend_from_slice(&["--rate", "1000"]);
    let (open_doc, _) = bench_cli(&server.url(), &open_args, &dir);
    let (closed_doc, _) = bench_cli(&server.url(), &common, &dir);
    let open = &op(&open_doc, 0, "getattr")["latency_us"];
    let closed = &op(&closed_doc, 0, "getattr")["latency_us"];
    // Open loop: ~500 of ~3000 calls were due during the stall; their latency runs from
    // when they were due, so the tail shows the stall.
    assert!(num(&open["p99.9"]) >= 400_000.0, "open loop: {open}");
    assert!(num(&open["p99"]) >= 100_000.0, "open loop: {open}");
    // Closed loop: only the stalled calls themselves (one in 2000) wait; the tail
    // percentiles look healthy and only the max shows the stall.
    assert!(num(&closed["max"]) >= 500_000.0, "closed loop: {closed}");
    assert!(num(&closed["p99"]) < 50_000.0, "closed loop: {closed}");
    assert!(num(&closed["p99.9"]) < 50_000.0, "closed loop: {closed}");
    assert_eq!(open_doc["runs"][0]["mode"], "open");
    assert_eq!(closed_doc["runs"][0]["mode"], "closed");
    server.shutdown();
}

/// Sums of the histograms in an interval log, by tag ("" for untagged), and the number of
/// untagged intervals.
fn read_hlog(path: &Path) -> (BTreeMap<String, u64>, usize) {
    let bytes = std::fs::read(path).unwrap();
    let mut d = Deserializer::new();
    let mut sums = BTreeMap::new();
    let mut intervals = 0;
    let mut base_time = false;
    for e in IntervalLogIterator::new(&bytes) {
        match e.expect("a valid interval log") {
            LogEntry::BaseTime(_) => base_time = true,
            LogEntry::StartTime(_) => {}
            LogEntry::Interval(i) => {
                use base64::Engine as _;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .unwrap();
                let h: Histogram<u64> = d.deserialize(&mut &raw[..]).unwrap();
                let tag = i.tag().map_or(String::new(), |t| t.as_str().to_string());
                if tag.is_empty() {
                    intervals += 1;
                }
                *sums.entry(tag).or_insert(0) += h.len();
            }
        }
    }
    assert!(base_time, "the log has a BaseTime");
    (sums, intervals)
}

#[test]
fn hlog_decodes_to_the_reported_counts() {
    let _serial = serial();
    let server = mock("wide:4:100", None, None);
    let dir = temp_dir("hlog");
    let hlog = dir.join("run.hlog");
    let (doc, _) = bench_cli(
        &server.url(),
        &[
            "--op",
            "getattr,lookup",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--inflight",
            "32",
            "--hlog",
            hlog.to_str().unwrap(),
        ],
        &dir,
    );
    let (sums, intervals) = read_hlog(&hlog);
    let getattr = op(&doc, 0, "getattr")["replies"].as_u64().unwrap();
    let lookup = op(&doc, 0, "lookup")["replies"].as_u64().unwrap();
    assert!(getattr > 0 && lookup > 0);
    assert_eq!(sums.get("getattr"), Some(&getattr));
    assert_eq!(sums.get("lookup"), Some(&lookup));
    assert_eq!(
        sums.get(""),
        Some(&(getattr + lookup)),
        "untagged = all operations"
    );
    assert_eq!(
        op(&doc, 0, "getattr")["latency_us"]["count"].as_u64(),
        Some(getattr)
    );
    // Two measured seconds, plus possibly the interval in which the last replies arrived.
    assert!((2..=3).contains(&intervals), "{intervals} intervals");
    server.shutdown();
}

#[test]
fn compare_runs_both_servers_and_reports_ratios() {
    let _serial = serial();
    let fast = mock("flat:500", None, None);
    let slow = mock("flat:500", Some("fixed:2ms"), None);
    let dir = temp_dir("compare");
    let hlog = dir.join("cmp.hlog");
    let json = dir.join("bench.json");
    let out = run_walker(&[
        "bench",
        &fast.url(),
        "--compare",
        &slow.url(),
        "--op",
        "getattr",
        "--duration",
        "1",
        "--warmup",
        "0.2",
        "--inflight",
        "8",
        "--json",
        json.to_str().unwrap(),
        "--hlog",
        hlog.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The timeline ran, and both summaries and the comparison were printed.
    assert!(stderr.contains("[           0s] getattr"), "{stderr}");
    assert!(stderr.contains("compare: A = "), "{stderr}");
    let doc: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["runs"].as_array().unwrap().len(), 2);
    assert_eq!(doc["runs"][1]["url"], slow.url());
    let a = num(&op(&doc, 0, "getattr")["latency_us"]["p50"]);
    let b = num(&op(&doc, 1, "getattr")["latency_us"]["p50"]);
    assert!(b >= 2000.0 && b > a, "p50 A {a} µs, B {b} µs");
    let ratio = num(&doc["compare"]["ratios_b_over_a"][0]["p50_ratio"]);
    assert!((ratio - b / a).abs() / ratio < 0.01, "{ratio} vs {}", b / a);
    assert!(num(&doc["compare"]["ratios_b_over_a"][0]["ops_per_s_ratio"]) < 1.0);
    // One interval log per server.
    let (sums_b, _) = read_hlog(&dir.join("cmp-compare.hlog"));
    assert_eq!(
        sums_b.get("getattr").copied(),
        op(&doc, 1, "getattr")["replies"].as_u64()
    );
    fast.shutdown();
    slow.shutdown();
}

#[test]
fn operations_without_targets_are_skipped_with_a_note() {
    let _serial = serial();
    let server = mock("flat:100", None, None);
    let dir = temp_dir("skip");
    let (doc, stderr) = bench_cli(
        &server.url(),
        &[
            "--op",
            "readlink,getattr",
            "--duration",
            "0.3",
            "--warmup",
            "0",
        ],
        &dir,
    );
    assert!(
        stderr.contains("readlink skipped: the sample of 100 entries has no symbolic links"),
        "{stderr}"
    );
    assert_eq!(doc["runs"][0]["skipped"][0]["op"], "readlink");
    assert_eq!(doc["runs"][0]["ops"].as_array().unwrap().len(), 1);
    // Nothing left to run is an error, not an empty report.
    let out = run_walker(&[
        "bench",
        &server.url(),
        "--op",
        "readlink",
        "-q",
        "--duration",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to run"));
    // Bad settings are refused before anything is mounted.
    for bad in ["--op=write", "--inflight=0", "--rate=-5", "--duration=0"] {
        let out = run_walker(&["bench", &server.url(), bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("mounting"));
    }
    server.shutdown();
}

/// `--op read` reads the sampled files: it counts exactly the data bytes the server sent, in
/// replies of at most `--read-size`, and sends nothing that changes the server.
#[test]
fn read_counts_exactly_the_bytes_the_server_sent() {
    let _serial = serial();
    let server = mock("wide:4:50", None, None);
    let dir = temp_dir("read");
    let read_size: u64 = 16 << 10;
    let (doc, _) = bench_cli(
        &server.url(),
        &[
            "--op",
            "read",
            "--read-size",
            &read_size.to_string(),
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--threads",
            "2",
            "--inflight",
            "32",
        ],
        &dir,
    );
    let r = op(&doc, 0, "read");
    let stats = server.stats();
    server.shutdown();
    let field = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}"));
    let calls = field(r, "calls") + field(&r["warmup"], "calls");
    let bytes = field(r, "bytes") + field(&r["warmup"], "bytes");
    assert_eq!(field(r, "replies"), field(r, "calls"), "{r}");
    assert_eq!(field(r, "nfs_errors") + field(r, "rpc_errors"), 0, "{r}");
    assert!(field(r, "bytes") > 0, "{r}");
    assert_eq!(stats.get("read"), calls, "{stats:?}");
    assert_eq!(stats.get("read_bytes"), bytes, "{stats:?}");
    // Files of up to 100 kB, read whole 16 KiB at a time: full chunks but for each file's last.
    assert!(
        bytes <= calls * read_size && bytes > calls * read_size / 4,
        "{bytes} in {calls}"
    );
    let measured_s = num(&doc["runs"][0]["measured_s"]);
    let rate = num(&r["bytes_per_s"]);
    let expected = field(r, "bytes") as f64 / measured_s;
    assert!(
        (rate - expected).abs() <= expected * 1e-6,
        "{rate} vs {expected}"
    );
    assert_eq!(
        doc["runs"][0]["sample"]["files"], 200,
        "every file of the tree has data"
    );
    for changes in [
        "setattr", "write", "create", "mkdir", "symlink", "mknod", "remove", "rmdir", "rename",
        "link", "commit",
    ] {
        assert_eq!(stats.get(changes), 0, "{changes}: {stats:?}");
    }
}

#[test]
fn ganesha_getattr_and_readdirplus_bench_reports_sane_figures() {
    let _serial = serial();
    let Some((url, _)) = ganesha() else { return };
    let dir = temp_dir("ganesha");
    let (doc, _) = bench_cli(
        &url,
        &[
            "--op",
            "getattr,readdirplus",
            "--duration",
            "5",
            "--warmup",
            "1",
        ],
        &dir,
    );
    let run = &doc["runs"][0];
    assert!(run["sample"]["entries"].as_u64().unwrap() >= 1000, "{run}");
    assert!(run["sample"]["dirs"].as_u64().unwrap() >= 5, "{run}");
    assert!((num(&run["measured_s"]) - 5.0).abs() < 0.01);
    for name in ["getattr", "readdirplus"] {
        let o = op(&doc, 0, name);
        let l = &o["latency_us"];
        assert!(num(&o["ops_per_s"]) >= 100.0, "{name}: {o}");
        assert_eq!(o["nfs_errors"], 0, "{name}: {o}");
        assert_eq!(o["rpc_errors"], 0, "{name}: {o}");
        assert_eq!(o["timeouts"], 0, "{name}: {o}");
        assert_eq!(o["calls"], o["replies"], "{name}: {o}");
        let (p50, p99, max) = (num(&l["p50"]), num(&l["p99"]), num(&l["max"]));
        assert!(p50 > 1.0 && p50 < 1e6, "{name}: p50 {p50} µs");
        assert!(p50 <= p99 && p99 <= max, "{name}: {l}");
    }
}

#[test]
fn ganesha_every_operation_runs_on_a_tree_with_links() {
    let _serial = serial();
    let Some((url, _)) = ganesha() else { return };
    let dir = temp_dir("ganesha-all");
    let (doc, _) = bench_cli(
        &url_with_path(&url, "mixed"),
        &[
            "--op",
            "null,getattr,lookup,access,readdir,readdirplus,readlink,fsstat",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--io",
            "epoll",
        ],
        &dir,
    );
    assert_eq!(
        doc["runs"][0]["skipped"].as_array().unwrap().len(),
        0,
        "{doc}"
    );
    // READ has a test of its own, on files whose access times no other test compares.
    for name in BenchOp::ALL
        .iter()
        .filter(|&&o| o != BenchOp::Read)
        .map(|o| o.name())
    {
        let o = op(&doc, 0, name);
        assert!(o["replies"].as_u64().unwrap() > 0, "{name}: {o}");
        // Dangling links and hostile names stay answerable: no NFS errors on sampled targets.
        assert_eq!(o["nfs_errors"], 0, "{name}: {o}");
    }
}

/// READ against nfs-ganesha, on the content tests' files (reading changes access times, which
/// the listing tests of the other trees compare): every reply is data, at most `--read-size`.
#[test]
fn ganesha_read_reports_bytes_per_second() {
    let _serial = serial();
    let Some((url, _)) = ganesha() else { return };
    let dir = temp_dir("ganesha-read");
    let (doc, _) = bench_cli(
        &url_with_path(&url, "content"),
        &[
            "--op",
            "read",
            "--read-size",
            "65536",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
        &dir,
    );
    let r = op(&doc, 0, "read");
    let replies = r["replies"].as_u64().unwrap();
    let bytes = r["bytes"].as_u64().unwrap();
    assert!(replies > 0 && bytes > 0, "{r}");
    assert!(bytes <= replies * 65536, "{r}");
    assert_eq!(r["nfs_errors"], 0, "{r}");
    assert!(num(&r["bytes_per_s"]) > 0.0, "{r}");
}

/// Over NFSv4.1 every operation but FSSTAT runs as a COMPOUND on the shared session, each
/// thread on its own slots: every call is answered without error, and the server saw exactly
/// the calls the load sent (one SEQUENCE each, the operation's own op once); FSSTAT is skipped
/// with a note.
#[test]
fn v4_operations_run_on_the_shared_session_with_exact_counts() {
    let _serial = serial();
    let server = mock("mixed:5000:3", None, None);
    let url = format!("nfs://127.0.0.1:{}/export?version=4", server.port());
    let cfg = BenchConfig {
        ops: vec![
            BenchOp::Getattr,
            BenchOp::Lookup,
            BenchOp::Access,
            BenchOp::Readdir,
            BenchOp::Readlink,
            BenchOp::Read,
            BenchOp::Null,
            BenchOp::Fsstat,
        ],
        sample_entries: 2000,
        mode: LoadMode::Closed { inflight: 64 },
        warmup: Duration::from_millis(300),
        duration: Duration::from_secs(1),
        read_size: Some(4096),
        engine: EngineOptions {
            threads: 2,
            connections: 4,
            ..EngineOptions::default()
        },
        ..BenchConfig::default()
    };
    let prepared = bench::prepare(&url, &cfg).unwrap();
    assert_eq!(prepared.skipped.len(), 1, "fsstat only");
    assert_eq!(prepared.skipped[0].op, BenchOp::Fsstat);
    let before = server.stats();
    // The sample walk lists with READDIR COMPOUNDs, and says so. (Its count may exceed the
    // server's by a few when the sample's quota stops the walk, as it does here; over v3 the
    // count is exact.)
    let sample = prepared.targets.stats;
    assert_eq!(
        (sample.listing_op, before.get("readdirplus")),
        (Some("READDIR"), 0)
    );
    let listed = before.get("v4_readdir");
    assert!(
        listed > 0 && sample.listing_calls >= listed,
        "{sample:?}, the server saw {listed}"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let report = bench::run_prepared(&prepared, &cfg, &stop, &mut NoSink).unwrap();
    let after = server.stats();
    prepared.server.close();
    let seen = |k: &str| after.get(k) - before.get(k);
    let mut compounds = 0;
    for r in &report.ops {
        let sent = r.warmup.calls + r.measured.calls;
        assert_eq!(r.measured.replies, r.measured.calls, "{}", r.op);
        assert_eq!(r.measured.failed(), 0, "{}: {:?}", r.op, r.measured);
        let counter = match r.op {
            // (mock-nfsd counts no v4 NULL; its replies are checked above)
            BenchOp::Null => continue,
            BenchOp::Getattr => {
                // LOOKUP's COMPOUND carries a GETATTR too
                let lookups = report.ops.iter().find(|o| o.op == BenchOp::Lookup).unwrap();
                let l = lookups.warmup.calls + lookups.measured.calls;
                assert_eq!(seen("v4_getattr"), sent + l, "getattr");
                compounds += sent;
                continue;
            }
            op => {
                compounds += sent;
                match op {
                    BenchOp::Lookup => "v4_lookup",
                    BenchOp::Access => "v4_access",
                    BenchOp::Readdir => "v4_readdir",
                    BenchOp::Readlink => "v4_readlink",
                    BenchOp::Read => "v4_read",
                    _ => unreachable!(),
                }
            }
        };
        assert_eq!(seen(counter), sent, "{}", r.op);
    }
    assert_eq!(seen("v4_sequence"), compounds, "one SEQUENCE a COMPOUND");
    assert_eq!(seen("v4_exchange_id"), 0, "the load sets up no client ID");
    assert_eq!(seen("getattr"), 0, "no NFSv3 call");
    let read = report.ops.iter().find(|o| o.op == BenchOp::Read).unwrap();
    assert!(read.measured.bytes > 0);
    let summary = report.summary_text();
    let calls = format!(" {} READDIR calls:", sample.listing_calls);
    assert!(summary.contains(&calls), "{summary}");
    server.shutdown();
}

/// Every v4 operation against nfs-ganesha's tree with links and hostile names: answered, and
/// without NFS errors on the sampled targets.
#[test]
fn ganesha_v4_every_operation_runs() {
    let _serial = serial();
    let Some((url, _)) = ganesha() else { return };
    let dir = temp_dir("ganesha-v4");
    let (doc, _) = bench_cli(
        &ganesha_v4(&url, "mixed"),
        &[
            "--op",
            "null,getattr,lookup,access,readdir,readdirplus,readlink",
            "--duration",
            "1",
            "--warmup",
            "0.2",
        ],
        &dir,
    );
    for name in [
        "null",
        "getattr",
        "lookup",
        "access",
        "readdir",
        "readdirplus",
        "readlink",
    ] {
        let o = op(&doc, 0, name);
        assert!(o["replies"].as_u64().unwrap() > 0, "{name}: {o}");
        assert_eq!(o["nfs_errors"], 0, "{name}: {o}");
        assert_eq!(o["rpc_errors"], 0, "{name}: {o}");
    }
}
