//! What a bench reports: per-operation counts, rates and latency percentiles, as text, as
//! JSON, and side by side for two servers; and the per-interval timeline line.

use super::engine::IntervalSpan;
use super::load::{IntervalSet, LoadMode, OpCounters};
use super::ops::BenchOp;
use super::sample::SampleStats;
use crate::ring::Backend;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Duration;

/// The percentiles every report shows, with their labels.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];

/// One operation's results.
#[derive(Debug, Clone)]
pub struct OpReport {
    pub op: BenchOp,
    pub warmup: OpCounters,
    pub measured: OpCounters,
    /// Latencies of the replies to measured calls, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Replies to measured calls per second of the measured period.
    pub ops_per_s: f64,
    /// Data bytes of those replies per second (READ; 0 for the other operations).
    pub bytes_per_s: f64,
}

impl OpReport {
    /// The latency at percentile `p` (0..=100), in nanoseconds; 0 without replies.
    pub fn percentile_ns(&self, p: f64) -> u64 {
        if self.latency_ns.is_empty() {
            0
        } else {
            self.latency_ns.value_at_percentile(p)
        }
    }
}

/// An operation that could not run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedOp {
    pub op: BenchOp,
    pub reason: String,
}

/// How many targets of each kind the sample gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetCounts {
    pub objects: usize,
    pub dirs: usize,
    pub symlinks: usize,
    pub lookups: usize,
    /// Regular files with data (READ).
    pub files: usize,
}

/// The whole result of one bench against one server.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub url: String,
    pub ops: Vec<OpReport>,
    pub skipped: Vec<SkippedOp>,
    /// The load in total (all threads).
    pub mode: LoadMode,
    pub warmup: Duration,
    /// The planned measured period.
    pub duration: Duration,
    /// The measured period as run (shorter when interrupted).
    pub measured: Duration,
    pub interrupted: bool,
    pub threads: usize,
    pub connections: usize,
    pub backend: Backend,
    pub reconnects: u64,
    pub unknown_xids: u64,
    /// Open loop: calls that fell due but never went out (see `LoadCounters::unsent`).
    pub unsent: u64,
    pub sample: SampleStats,
    pub targets: TargetCounts,
}

impl BenchReport {
    /// The report of one operation, if it ran.
    pub fn op(&self, op: BenchOp) -> Option<&OpReport> {
        self.ops.iter().find(|o| o.op == op)
    }

    /// Measured calls that did not end in a successful reply, over all operations.
    pub fn failed_calls(&self) -> u64 {
        self.ops.iter().map(|o| o.measured.failed()).sum()
    }

    fn mode_text(&self) -> String {
        match self.mode {
            LoadMode::Closed { inflight } => format!("closed loop, {inflight} calls in flight"),
            LoadMode::Open {
                rate_per_s,
                inflight_max,
            } => format!(
                "open loop, {} calls/s (at most {inflight_max} in flight)",
                format_rate(rate_per_s)
            ),
        }
    }

    /// The human summary, several lines ending with a newline.
    pub fn summary_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{}{}: {}; {} threads, {} connections, {}; {:.2} s measured after {:.2} s warmup",
            if self.interrupted { "INTERRUPTED " } else { "" },
            self.url,
            self.mode_text(),
            self.threads,
            self.connections,
            self.backend,
            self.measured.as_secs_f64(),
            self.warmup.as_secs_f64(),
        );
        let walk = match self.sample.listing_op {
            Some(op) => format!(
                "{} entries in {} {op} calls",
                self.sample.entries, self.sample.listing_calls
            ),
            None => "no walk needed".to_string(),
        };
        let _ = writeln!(
            o,
            "  sample: {walk}: {} objects, {} directories, {} symlinks, {} names, {} files with data{}",
            self.targets.objects,
            self.targets.dirs,
            self.targets.symlinks,
            self.targets.lookups,
            self.targets.files,
            if self.sample.dirs_failed > 0 {
                format!(" ({} directories could not be listed)", self.sample.dirs_failed)
            } else {
                String::new()
            }
        );
        let _ = write!(o, "  {:<12} {:>11} {:>12}", "op", "calls", "ops/s");
        for (label, _) in PERCENTILES {
            let _ = write!(o, " {label:>10}");
        }
        let _ = writeln!(o, " {:>10} {:>8}", "max", "errors");
        for r in &self.ops {
            let _ = write!(
                o,
                "  {:<12} {:>11} {:>12}",
                r.op.name(),
                r.measured.calls,
                format!("{:.1}", r.ops_per_s)
            );
            for (_, p) in PERCENTILES {
                let _ = write!(o, " {:>10}", format_ns(r.percentile_ns(p)));
            }
            let _ = writeln!(
                o,
                " {:>10} {:>8}",
                format_ns(r.latency_ns.max()),
                r.measured.failed()
            );
        }
        for r in self.ops.iter().filter(|r| r.op == BenchOp::Read) {
            let _ = writeln!(
                o,
                "  {}: {} bytes, {} ({:.0} bytes a reply)",
                r.op.name(),
                r.measured.bytes,
                format_bytes_per_s(r.bytes_per_s),
                r.measured.bytes as f64 / r.measured.replies.max(1) as f64
            );
        }
        for r in &self.ops {
            let m = &r.measured;
            let notes = crate::report::nonzero_notes(&[
                ("NFS errors", m.nfs_errors),
                ("RPC errors", m.rpc_errors),
                ("timeouts", m.timeouts),
                ("lost with a connection", m.lost),
            ]);
            if !notes.is_empty() {
                let _ = writeln!(o, "  {}: {}", r.op.name(), notes.join(", "));
            }
        }
        for s in &self.skipped {
            let _ = writeln!(o, "  note: {} skipped: {}", s.op.name(), s.reason);
        }
        let mut notes = Vec::new();
        if self.reconnects > 0 {
            notes.push(format!("reconnects {}", self.reconnects));
        }
        if self.unknown_xids > 0 {
            notes.push(format!("replies with unknown xid {}", self.unknown_xids));
        }
        if self.unsent > 0 {
            notes.push(format!(
                "{} calls fell due but were never sent (server too slow to catch up)",
                self.unsent
            ));
        }
        if !notes.is_empty() {
            let _ = writeln!(o, "  {}", notes.join(", "));
        }
        o
    }

    /// The report as a JSON object.
    pub fn to_json(&self) -> Value {
        let (mode, inflight, rate) = match self.mode {
            LoadMode::Closed { inflight } => ("closed", inflight, Value::Null),
            LoadMode::Open {
                rate_per_s,
                inflight_max,
            } => ("open", inflight_max, json!(rate_per_s)),
        };
        json!({
            "url": self.url,
            "mode": mode,
            "inflight": inflight,
            "rate_per_s": rate,
            "threads": self.threads,
            "connections": self.connections,
            "io": self.backend.as_str(),
            "warmup_s": self.warmup.as_secs_f64(),
            "duration_s": self.duration.as_secs_f64(),
            "measured_s": self.measured.as_secs_f64(),
            "interrupted": self.interrupted,
            "sample": {
                "entries": self.sample.entries,
                "listing_op": self.sample.listing_op,
                "listing_calls": self.sample.listing_calls,
                "dirs_failed": self.sample.dirs_failed,
                "objects": self.targets.objects,
                "dirs": self.targets.dirs,
                "symlinks": self.targets.symlinks,
                "lookups": self.targets.lookups,
                "files": self.targets.files,
            },
            "skipped": self.skipped.iter().map(|s| json!({"op": s.op.name(), "reason": s.reason})).collect::<Vec<_>>(),
            "reconnects": self.reconnects,
            "unknown_xids": self.unknown_xids,
            "unsent": self.unsent,
            "ops": self.ops.iter().map(op_json).collect::<Vec<_>>(),
        })
    }
}

fn counters_json(c: &OpCounters) -> Value {
    json!({
        "calls": c.calls,
        "replies": c.replies,
        "nfs_errors": c.nfs_errors,
        "rpc_errors": c.rpc_errors,
        "timeouts": c.timeouts,
        "lost": c.lost,
        "bytes": c.bytes,
    })
}

fn latency_json(h: &Histogram<u64>) -> Value {
    let us = |ns: u64| ns as f64 / 1e3;
    let mut m = serde_json::Map::new();
    let empty = h.is_empty();
    m.insert("count".into(), json!(h.len()));
    m.insert("min".into(), json!(if empty { 0.0 } else { us(h.min()) }));
    m.insert(
        "mean".into(),
        json!(if empty { 0.0 } else { h.mean() / 1e3 }),
    );
    for (label, p) in PERCENTILES {
        let v = if empty { 0 } else { h.value_at_percentile(p) };
        m.insert(label.into(), json!(us(v)));
    }
    m.insert("max".into(), json!(if empty { 0.0 } else { us(h.max()) }));
    Value::Object(m)
}

fn op_json(r: &OpReport) -> Value {
    let mut v = counters_json(&r.measured);
    if let Value::Object(m) = &mut v {
        m.insert("op".into(), json!(r.op.name()));
        m.insert("ops_per_s".into(), json!(r.ops_per_s));
        m.insert("bytes_per_s".into(), json!(r.bytes_per_s));
        m.insert("warmup".into(), counters_json(&r.warmup));
        m.insert("latency_us".into(), latency_json(&r.latency_ns));
    }
    v
}

/// The metrics compared between two runs: (label, value of a report).
fn compared_metrics(r: &OpReport) -> Vec<(&'static str, f64)> {
    let mut v = vec![("ops/s", r.ops_per_s)];
    if r.op == BenchOp::Read {
        v.push(("bytes/s", r.bytes_per_s));
    }
    for (label, p) in PERCENTILES {
        v.push((label, r.percentile_ns(p) as f64));
    }
    v.push(("max", r.latency_ns.max() as f64));
    v
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (a > 0.0).then(|| b / a)
}

/// Two runs side by side: for each operation both ran, ops/s and percentiles of A and B and
/// the ratio B/A.
pub fn compare_text(a: &BenchReport, b: &BenchReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "compare: A = {}", a.url);
    let _ = writeln!(o, "         B = {}", b.url);
    for ra in &a.ops {
        let Some(rb) = b.op(ra.op) else { continue };
        let _ = writeln!(
            o,
            "  {:<12} {:>14} {:>14} {:>9}",
            ra.op.name(),
            "A",
            "B",
            "B/A"
        );
        for ((label, va), (_, vb)) in compared_metrics(ra).into_iter().zip(compared_metrics(rb)) {
            let (sa, sb) = if label == "ops/s" {
                (format!("{va:.1}"), format!("{vb:.1}"))
            } else if label == "bytes/s" {
                (format_bytes_per_s(va), format_bytes_per_s(vb))
            } else {
                (format_ns(va as u64), format_ns(vb as u64))
            };
            let r = ratio(va, vb).map_or("-".to_string(), |r| format!("{r:.2}"));
            let _ = writeln!(o, "    {label:<10} {sa:>14} {sb:>14} {r:>9}");
        }
    }
    o
}

/// The comparison as JSON: per operation, B/A ratios of each metric (null where A is 0).
pub fn compare_json(a: &BenchReport, b: &BenchReport) -> Value {
    let mut ops = Vec::new();
    for ra in &a.ops {
        let Some(rb) = b.op(ra.op) else { continue };
        let mut m = serde_json::Map::new();
        m.insert("op".into(), json!(ra.op.name()));
        for ((label, va), (_, vb)) in compared_metrics(ra).into_iter().zip(compared_metrics(rb)) {
            let key = match label {
                "ops/s" => "ops_per_s",
                "bytes/s" => "bytes_per_s",
                _ => label,
            };
            m.insert(format!("{key}_ratio"), json!(ratio(va, vb)));
        }
        ops.push(Value::Object(m));
    }
    json!({ "a": a.url, "b": b.url, "ratios_b_over_a": ops })
}

/// The document `--json` writes: every run, and the comparison when there are two.
pub fn json_document(runs: &[&BenchReport]) -> Value {
    let mut doc = json!({
        // 2: the sample's `readdirplus_calls` became `listing_calls` with `listing_op`.
        "version": 2,
        "runs": runs.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
    });
    if let ([a, b], Value::Object(m)) = (runs, &mut doc) {
        m.insert("compare".into(), compare_json(a, b));
    }
    doc
}

/// Nanoseconds as a short readable duration.
pub fn format_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// Bytes per second in decimal units, as disks and links are rated (`1.23 GB/s`).
pub fn format_bytes_per_s(per_s: f64) -> String {
    if per_s >= 1e9 {
        format!("{:.2} GB/s", per_s / 1e9)
    } else if per_s >= 1e6 {
        format!("{:.1} MB/s", per_s / 1e6)
    } else {
        format!("{:.1} kB/s", per_s / 1e3)
    }
}

/// `412.3k`-style rates.
pub fn format_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2}M", per_s / 1e6)
    } else if per_s >= 1e4 {
        format!("{:.1}k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

/// The per-interval line of the timeline: for each operation, replies per second and latency
/// percentiles of the interval (warmup replies during warmup).
pub fn timeline_line(ops: &[BenchOp], span: IntervalSpan, set: &IntervalSet) -> String {
    let warmup = span.index < 0;
    let secs = span.length.as_secs_f64().max(1e-9);
    let mut o = if warmup {
        format!("[warmup {:>5.0}s]", span.start_secs())
    } else {
        format!("[{:>12.0}s]", span.start_secs())
    };
    for (i, op) in ops.iter().enumerate() {
        let h = if warmup {
            set.warmup.get(i)
        } else {
            // Late replies of warmup calls are not shown once measuring.
            set.measured.get(i)
        };
        let Some(h) = h else { continue };
        if i > 0 {
            o.push_str(" |");
        }
        let _ = write!(o, " {} {}/s", op.name(), format_rate(h.len() as f64 / secs));
        if *op == BenchOp::Read {
            let bytes = if warmup {
                set.warmup_bytes.get(i)
            } else {
                set.measured_bytes.get(i)
            };
            let _ = write!(
                o,
                " {}",
                format_bytes_per_s(bytes.copied().unwrap_or(0) as f64 / secs)
            );
        }
        if !h.is_empty() {
            let _ = write!(
                o,
                " p50 {} p99 {} p99.9 {} max {}",
                format_ns(h.value_at_percentile(50.0)),
                format_ns(h.value_at_percentile(99.0)),
                format_ns(h.value_at_percentile(99.9)),
                format_ns(h.max())
            );
        }
    }
    if set.errors > 0 {
        let _ = write!(o, " | errors {}", set.errors);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::load::latency_histogram;

    fn report(url: &str, ops_per_s: f64, latencies_ns: &[u64]) -> BenchReport {
        let mut h = latency_histogram();
        for v in latencies_ns {
            h.record(*v).unwrap();
        }
        BenchReport {
            url: url.into(),
            ops: vec![OpReport {
                op: BenchOp::Getattr,
                warmup: OpCounters::default(),
                measured: OpCounters {
                    calls: latencies_ns.len() as u64,
                    replies: latencies_ns.len() as u64,
                    ..OpCounters::default()
                },
                latency_ns: h,
                ops_per_s,
                bytes_per_s: 0.0,
            }],
            skipped: vec![SkippedOp {
                op: BenchOp::Readlink,
                reason: "no symlinks in the sample".into(),
            }],
            mode: LoadMode::Closed { inflight: 8 },
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            measured: Duration::from_secs(2),
            interrupted: false,
            threads: 1,
            connections: 1,
            backend: Backend::Epoll,
            reconnects: 0,
            unknown_xids: 0,
            unsent: 0,
            sample: SampleStats::default(),
            targets: TargetCounts::default(),
        }
    }

    #[test]
    fn durations_and_rates_read_well() {
        let durations = [
            (850, "850 ns"),
            (45_100, "45.1 µs"),
            (1_500_000, "1.50 ms"),
            (2_500_000_000, "2.50 s"),
        ];
        for (ns, shown) in durations {
            assert_eq!(format_ns(ns), shown);
        }
        for (rate, shown) in [
            (412_345.0, "412.3k"),
            (999.0, "999"),
            (2_500_000.0, "2.50M"),
        ] {
            assert_eq!(format_rate(rate), shown);
        }
    }

    #[test]
    fn json_and_comparison_carry_the_figures() {
        let a = report("nfs://a/x", 1000.0, &[1_000_000, 2_000_000]);
        let b = report("nfs://b/x", 4000.0, &[250_000, 500_000]);
        let doc = json_document(&[&a, &b]);
        let op = &doc["runs"][0]["ops"][0];
        assert_eq!(op["op"], "getattr");
        assert_eq!(op["calls"], 2);
        assert_eq!(op["latency_us"]["count"], 2);
        let p50 = op["latency_us"]["p50"].as_f64().unwrap();
        assert!((999.0..=1001.0).contains(&p50), "{p50}");
        assert_eq!(doc["runs"][0]["skipped"][0]["op"], "readlink");
        let ratios = &doc["compare"]["ratios_b_over_a"][0];
        assert_eq!(ratios["ops_per_s_ratio"], 4.0);
        let r = ratios["max_ratio"].as_f64().unwrap();
        assert!((0.24..0.26).contains(&r), "{r}");
        let text = compare_text(&a, &b);
        assert!(text.contains("ops/s"), "{text}");
        assert!(text.contains("4.00"), "{text}");
        let summary = a.summary_text();
        assert!(
            summary.contains("readlink skipped: no symlinks"),
            "{summary}"
        );
        assert!(summary.contains("getattr"), "{summary}");
    }

    #[test]
    fn timeline_shows_the_interval() {
        let mut set = IntervalSet::new(1);
        set.reset(3);
        for _ in 0..500 {
            set.measured[0].record(100_000).unwrap();
        }
        let span = IntervalSpan {
            index: 3,
            length: Duration::from_millis(500),
        };
        let line = timeline_line(&[BenchOp::Getattr], span, &set);
        assert!(line.contains("getattr 1000/s"), "{line}");
        assert!(line.contains("p50 100.0 µs"), "{line}");
        set.reset(-1);
        let warm = timeline_line(
            &[BenchOp::Getattr],
            IntervalSpan { index: -1, ..span },
            &set,
        );
        assert!(warm.starts_with("[warmup"), "{warm}");
    }
}
