//! `--max-rate OPS`: the calls of a whole scan, over every thread, stay at the cap, second by
//! second, as the server counts them (mock-nfsd's per-procedure counters, sampled here).

mod common;

use common::*;
use mock_nfsd::{Config, Server};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The cap of the test, calls per second.
const RATE: f64 = 5000.0;
/// How far a second's count may be from the cap.
const TOLERANCE: f64 = 0.05;

#[test]
fn max_rate_holds_every_second_on_the_server_side() {
    // getattr mode: one LOOKUP per name, so calls far outnumber entries per call and the
    // scan lasts about 6 s at the cap.
    let config = Config {
        tree: "flat:30000".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let mut child = Command::new(walker_bin())
        .args(["scan", &server.url(), "-q", "--mode", "getattr"])
        .args(["--max-rate", &RATE.to_string(), "-o", "/dev/null"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let nfs_calls = |s: &mock_nfsd::StatsSnapshot| s.get("lookup") + s.get("readdir");
    let start = Instant::now();
    let mut samples = vec![(start, nfs_calls(&server.stats()))];
    let status = loop {
        std::thread::sleep(Duration::from_millis(1000));
        samples.push((Instant::now(), nfs_calls(&server.stats())));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the scan did not end"
        );
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let total = nfs_calls(&server.stats());
    assert!(total >= 30_000, "{total} calls");
    // Every whole second after the first, while the scan ran (the last sample may be cut by
    // the scan's end).
    let full = &samples[..samples.len() - 1];
    assert!(full.len() >= 5, "{} samples", full.len());
    for w in full.windows(2).skip(1) {
        let secs = w[1].0.duration_since(w[0].0).as_secs_f64();
        let rate = (w[1].1 - w[0].1) as f64 / secs;
        println!("{rate:.0} calls/s");
        assert!(
            (rate - RATE).abs() <= RATE * TOLERANCE,
            "{rate:.0} calls/s against a cap of {RATE}: {:?}",
            full.iter().map(|s| s.1).collect::<Vec<_>>()
        );
    }
    // The whole run: no faster than the cap allows (one millisecond's burst at most).
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        total as f64 <= RATE * elapsed + 100.0,
        "{total} calls in {elapsed:.1} s"
    );
    server.shutdown();
}
