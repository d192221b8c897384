//! `nfs-walker bench URL --op OP[,OP...]`: per-operation throughput and latency percentiles of
//! a server, closed or open loop, with a timeline, JSON and HdrHistogram interval log output,
//! and an optional side-by-side comparison with a second server.

use anyhow::{bail, Context, Result};
use clap::Args;
use nfs_walker::bench::hlog::HlogWriter;
use nfs_walker::bench::report::{compare_text, json_document, timeline_line};
use nfs_walker::bench::{
    self, BenchConfig, BenchOp, BenchReport, EngineOptions, IntervalSet, IntervalSink,
    IntervalSpan, LoadMode,
};
use nfs_walker::ring::Backend;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Calls in flight by default: closed loop (the load) and open loop (the cap).
const CLOSED_INFLIGHT_DEFAULT: usize = 256;
const OPEN_INFLIGHT_DEFAULT: usize = 65_536;

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// nfs://host[:port]/path[?uid=N&gid=N&mountport=N&nfsport=N&version=3|4]
    pub url: String,
    /// Operations, comma-separated, issued in rotation: null, getattr, lookup, access,
    /// readdir, readdirplus, readlink, fsstat, read (sampled files read whole, a chunk a
    /// call; bytes/s in the report)
    #[arg(long = "op", default_value = "getattr")]
    pub op: String,
    /// Entries the sample walk collects as targets
    #[arg(long, default_value_t = 10_000)]
    pub sample: usize,
    /// Calls per second at most over every thread, the sample walk included (spaced evenly)
    #[arg(long, value_name = "OPS")]
    pub max_rate: Option<f64>,
    /// Closed loop: calls in flight in total (default 256). With --rate: the most calls in
    /// flight (default 65536); calls due beyond it wait, and the wait counts in their latency
    #[arg(long)]
    pub inflight: Option<usize>,
    /// Open loop: calls per second in total, whatever the server does; latency is measured
    /// from each call's due time (coordinated omission corrected)
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured period (10, 10s, 500ms, 2m)
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Warmup before the measured period, not counted
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Load threads, one per core by default
    #[arg(long)]
    pub threads: Option<usize>,
    /// TCP connections in total, spread over the threads (default 2 per thread)
    #[arg(long)]
    pub connections: Option<usize>,
    /// I/O backend: uring or epoll (default: uring where the kernel allows it)
    #[arg(long = "io")]
    pub io: Option<Backend>,
    /// Do not pin threads to cores
    #[arg(long)]
    pub no_pin: bool,
    /// A call without reply after this long is given up and counted as a timeout
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// READDIR count / READDIRPLUS maxcount in bytes (readdir ops read the first page)
    #[arg(long, default_value_t = 32 << 10)]
    pub maxcount: u32,
    /// READDIRPLUS dircount in bytes
    #[arg(long, default_value_t = 8 << 10)]
    pub dircount: u32,
    /// READ count in bytes (default: the server's preferred READ size from FSINFO)
    #[arg(long, value_name = "BYTES")]
    pub read_size: Option<u32>,
    /// Write the whole result as JSON to FILE
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the measured intervals as an HdrHistogram interval log (ns) to FILE; with
    /// --compare the second server's log goes to FILE with `-compare` before its extension
    #[arg(long)]
    pub hlog: Option<PathBuf>,
    /// Run the same workload against a second server afterwards and compare (B/A)
    #[arg(long, value_name = "URL2")]
    pub compare: Option<String>,
    /// No timeline on stderr
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

/// Seconds as `10`, `1.5`, `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 10, 10s, 500ms, 2m)"))?;
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=bench::DURATION_MAX.as_secs_f64()).contains(&secs) {
        return Err(format!(
            "`{s}` is out of range (0 to {} s)",
            bench::DURATION_MAX.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl BenchArgs {
    pub fn config(&self) -> Result<BenchConfig> {
        let ops = BenchOp::parse_list(&self.op).context("--op")?;
        let mode = match self.rate {
            Some(rate_per_s) => LoadMode::Open {
                rate_per_s,
                inflight_max: self.inflight.unwrap_or(OPEN_INFLIGHT_DEFAULT),
            },
            None => LoadMode::Closed {
                inflight: self.inflight.unwrap_or(CLOSED_INFLIGHT_DEFAULT),
            },
        };
        let mut engine = EngineOptions {
            reconnects_max: bench::engine::BENCH_RECONNECTS_MAX_DEFAULT,
            ..EngineOptions::default()
        };
        if let Some(t) = self.threads {
            if t == 0 || t > bench::engine::THREADS_MAX {
                bail!("--threads must be 1..={}", bench::engine::THREADS_MAX);
            }
            engine.threads = t;
        }
        engine.connections = match self.connections {
            Some(c) if c == 0 || c > bench::engine::CONNECTIONS_MAX => {
                bail!(
                    "--connections must be 1..={}",
                    bench::engine::CONNECTIONS_MAX
                )
            }
            Some(c) => c,
            None => engine.threads * 2,
        };
        engine.backend = self.io;
        engine.pin_threads = !self.no_pin;
        let cfg = BenchConfig {
            ops,
            sample_entries: self.sample,
            mode,
            warmup: self.warmup,
            duration: self.duration,
            interval: Duration::from_secs(1),
            rpc_timeout: self.timeout,
            maxcount: self.maxcount,
            dircount: self.dircount,
            read_size: self.read_size,
            engine,
            client: self.client.options(),
            max_rate: self.max_rate,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Prints the timeline and writes the interval log as intervals complete.
struct CliSink {
    ops: Vec<BenchOp>,
    timeline: bool,
    hlog: Option<HlogWriter<BufWriter<File>>>,
    hlog_error: Option<std::io::Error>,
}

impl IntervalSink for CliSink {
    fn started(&mut self, warmup_end: SystemTime) {
        if let Some(h) = &mut self.hlog {
            if let Err(e) = h.start(warmup_end) {
                self.hlog_error.get_or_insert(e);
            }
        }
    }

    fn interval(&mut self, span: IntervalSpan, set: &IntervalSet) {
        if self.timeline {
            eprintln!("{}", timeline_line(&self.ops, span, set));
        }
        if let Some(h) = &mut self.hlog {
            if let Err(e) = h.write_interval(span, set) {
                self.hlog_error.get_or_insert(e);
            }
        }
    }
}

/// `run.hlog` -> `run-compare.hlog`.
fn compare_path(p: &Path) -> PathBuf {
    let stem = p
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match p.extension() {
        Some(ext) => format!("{stem}-compare.{}", ext.to_string_lossy()),
        None => format!("{stem}-compare"),
    };
    p.with_file_name(name)
}

fn bench_one(
    url: &str,
    cfg: &BenchConfig,
    args: &BenchArgs,
    hlog_path: Option<&Path>,
    stop: &Arc<AtomicBool>,
) -> Result<BenchReport> {
    if !args.quiet {
        eprintln!(
            "bench {url}: mounting and sampling up to {} entries",
            cfg.sample_entries
        );
    }
    let prepared = bench::prepare(url, cfg).with_context(|| format!("preparing {url}"))?;
    for s in &prepared.skipped {
        eprintln!("note: {} skipped: {}", s.op, s.reason);
    }
    let hlog = match hlog_path {
        Some(p) => {
            let comment = format!("nfs-walker bench {url} --op {}", op_names(&prepared.ops));
            Some(
                HlogWriter::create(p, &prepared.ops, &comment)
                    .with_context(|| format!("creating {}", p.display()))?,
            )
        }
        None => None,
    };
    let mut sink = CliSink {
        ops: prepared.ops.clone(),
        timeline: !args.quiet,
        hlog,
        hlog_error: None,
    };
    if !args.quiet {
        eprintln!(
            "bench {url}: {} for {:.1} s after {:.1} s warmup",
            op_names(&prepared.ops),
            cfg.duration.as_secs_f64(),
            cfg.warmup.as_secs_f64()
        );
    }
    let result = bench::run_prepared(&prepared, cfg, stop, &mut sink);
    prepared.server.close();
    let report = result.with_context(|| format!("bench of {url} failed"))?;
    if let Some(e) = sink.hlog_error {
        return Err(e).context("writing the interval log");
    }
    if let Some(h) = sink.hlog {
        h.finish().context("writing the interval log")?;
    }
    Ok(report)
}

fn op_names(ops: &[BenchOp]) -> String {
    ops.iter().map(|o| o.name()).collect::<Vec<_>>().join(",")
}

pub fn run(args: &BenchArgs) -> Result<i32> {
    let cfg = args.config()?;
    let stop = super::scan::stop_on_signals()?;
    let a = bench_one(&args.url, &cfg, args, args.hlog.as_deref(), &stop)?;
    eprint!("{}", a.summary_text());
    let mut b = None;
    if let Some(url2) = &args.compare {
        if !stop.load(Ordering::SeqCst) {
            let path = args.hlog.as_deref().map(compare_path);
            let report = bench_one(url2, &cfg, args, path.as_deref(), &stop)?;
            eprint!("{}", report.summary_text());
            eprint!("{}", compare_text(&a, &report));
            b = Some(report);
        }
    }
    if let Some(path) = &args.json {
        let runs: Vec<&BenchReport> = std::iter::once(&a).chain(b.as_ref()).collect();
        let doc = json_document(&runs);
        let text = serde_json::to_string_pretty(&doc).context("encoding JSON")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    let reports: Vec<&BenchReport> = std::iter::once(&a).chain(b.as_ref()).collect();
    Ok(if reports.iter().any(|r| r.interrupted) {
        1
    } else if reports.iter().any(|r| r.failed_calls() > 0) {
        2
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1e30").is_err());
    }

    #[test]
    fn compare_log_goes_next_to_the_first() {
        assert_eq!(
            compare_path(Path::new("/tmp/run.hlog")),
            PathBuf::from("/tmp/run-compare.hlog")
        );
        assert_eq!(compare_path(Path::new("log")), PathBuf::from("log-compare"));
    }
}
