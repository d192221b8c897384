//! `nfs-walker bench`: per-operation throughput and latency of an NFS server's metadata path,
//! and of READ (bytes per second). Every operation only reads: nothing is ever changed.
//!
//! A bench mounts the URL, takes a short sample walk for real targets ([`sample`]), then drives
//! one operation mix from per-core threads, each owning a ring and its connections
//! ([`engine`]), with a sans-IO load generator per thread ([`load`]): closed loop (a fixed
//! number of calls in flight) or open loop (a fixed arrival rate, latency measured from each
//! call's due time). Latencies go into HdrHistograms per operation and per one-second interval;
//! [`report`] turns them into text and JSON, [`hlog`] into an HdrHistogram interval log.
//!
//! The phases are separate so a caller can act between them (a test snapshots a server's call
//! counters after [`prepare`], before [`run_prepared`]).

pub mod engine;
pub mod hlog;
pub mod load;
pub mod ops;
pub mod report;
pub mod sample;

pub use crate::sched::EngineOptions;
pub use engine::{IntervalSink, IntervalSpan, LoadRun, NoSink};
pub use load::{IntervalSet, LoadConfig, LoadMode, OpCounters};
pub use ops::BenchOp;
pub use report::{BenchReport, OpReport, SkippedOp, TargetCounts};
pub use sample::{SampleError, SampleStats, Targets};

use crate::client::{mount, ClientOptions, MountFlowError, Mounted, NfsUrl, UrlError};
use crate::content::ContentConfig;
use crate::sched::EngineError;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Mount(#[from] MountFlowError),
    #[error(transparent)]
    Sample(#[from] SampleError),
    #[error("nothing to run: {0}")]
    NoOps(String),
    #[error("invalid bench settings: {0}")]
    Config(String),
    /// Setting up I/O, connecting, threads, or the server lost.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<crate::ring::RingError> for BenchError {
    fn from(e: crate::ring::RingError) -> Self {
        BenchError::Engine(e.into())
    }
}

/// Limits of the settings.
pub const DURATION_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const RATE_PER_S_MAX: f64 = 100e6;
pub const INFLIGHT_MAX: usize = 1 << 20;
/// The largest READ a bench asks for: the content reader's largest chunk (a reply must fit in
/// one RPC record).
pub const READ_SIZE_MAX: u32 = crate::content::reader::CHUNK_BYTES_MAX;

/// Everything that shapes a bench.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub ops: Vec<BenchOp>,
    /// Entries the sample walk collects.
    pub sample_entries: usize,
    /// The load in total, split over the threads.
    pub mode: LoadMode,
    pub warmup: Duration,
    pub duration: Duration,
    /// Reporting interval (timeline, hlog).
    pub interval: Duration,
    pub rpc_timeout: Duration,
    /// READDIR `count` / READDIRPLUS `maxcount`, and READDIRPLUS `dircount`, in bytes.
    pub maxcount: u32,
    pub dircount: u32,
    /// READ `count` in bytes; `None`: the server's preferred READ size (FSINFO `rtpref`, at
    /// most `rtmax`), as content scans read.
    pub read_size: Option<u32>,
    pub engine: EngineOptions,
    pub client: ClientOptions,
    /// `--max-rate`: calls per second at most, over every thread, sample walk included.
    pub max_rate: Option<f64>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            ops: vec![BenchOp::Getattr],
            sample_entries: 10_000,
            mode: LoadMode::Closed { inflight: 256 },
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            rpc_timeout: Duration::from_secs(30),
            maxcount: 32 << 10,
            dircount: 8 << 10,
            read_size: None,
            engine: EngineOptions {
                reconnects_max: engine::BENCH_RECONNECTS_MAX_DEFAULT,
                ..EngineOptions::default()
            },
            client: ClientOptions::default(),
            max_rate: None,
        }
    }
}

impl BenchConfig {
    /// Checks the settings against their limits.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |s: String| Err(BenchError::Config(s));
        if self.ops.is_empty() {
            return bad("no operation given".into());
        }
        if self.duration.is_zero() || self.duration > DURATION_MAX {
            return bad(format!(
                "duration must be within (0, {} s]",
                DURATION_MAX.as_secs()
            ));
        }
        if self.warmup > DURATION_MAX {
            return bad(format!(
                "warmup must be at most {} s",
                DURATION_MAX.as_secs()
            ));
        }
        if self.interval < Duration::from_millis(10) || self.interval > Duration::from_secs(3600) {
            return bad("interval must be within [10 ms, 1 h]".into());
        }
        if self.rpc_timeout.is_zero() || self.rpc_timeout > Duration::from_secs(3600) {
            return bad("timeout must be within (0, 3600] s".into());
        }
        match self.mode {
            LoadMode::Closed { inflight } if inflight == 0 || inflight > INFLIGHT_MAX => {
                return bad(format!("inflight must be 1..={INFLIGHT_MAX}"))
            }
            LoadMode::Open {
                rate_per_s,
                inflight_max,
            } => {
                if !(rate_per_s > 0.0 && rate_per_s <= RATE_PER_S_MAX) {
                    return bad(format!("rate must be within (0, {RATE_PER_S_MAX}] calls/s"));
                }
                if inflight_max == 0 || inflight_max > INFLIGHT_MAX {
                    return bad(format!("inflight must be 1..={INFLIGHT_MAX}"));
                }
            }
            _ => {}
        }
        if !(512..=16 << 20).contains(&self.maxcount) || !(512..=16 << 20).contains(&self.dircount)
        {
            return bad("maxcount and dircount must be within 512 B..16 MiB".into());
        }
        if self
            .read_size
            .is_some_and(|n| !(1..=READ_SIZE_MAX).contains(&n))
        {
            return bad(format!("read size must be within 1 B..{READ_SIZE_MAX} B"));
        }
        if self
            .max_rate
            .is_some_and(|r| !(1.0..=RATE_PER_S_MAX).contains(&r))
        {
            return bad(format!(
                "max-rate must be within [1, {RATE_PER_S_MAX}] calls/s"
            ));
        }
        if self.sample_entries > sample::SAMPLE_ENTRIES_MAX {
            return bad(format!(
                "sample must be at most {} entries",
                sample::SAMPLE_ENTRIES_MAX
            ));
        }
        Ok(())
    }
}

/// A mounted server with its sample: ready to run.
pub struct Prepared {
    pub url: String,
    pub mounted: Mounted,
    pub targets: Arc<Targets>,
    /// The operations that can run, in the configured order.
    pub ops: Vec<BenchOp>,
    /// The operations left out (e.g. readlink without symlinks in the sample).
    pub skipped: Vec<SkippedOp>,
}

/// Mounts `url` and takes the sample walk.
pub fn prepare(url: &str, cfg: &BenchConfig) -> Result<Prepared, BenchError> {
    cfg.validate()?;
    let parsed = NfsUrl::parse(url)?;
    let mounted = mount(&parsed, &cfg.client)?;
    let root = mounted.root_fh;
    let targets = if cfg.ops.iter().any(|op| needs_sample(*op)) {
        sample::sample_targets(&sample::SampleSetup {
            addrs: &mounted.nfs_addrs,
            root_fh: root,
            root_fsid: mounted.root_attrs.fsid,
            root_fileid: mounted.root_attrs.fileid,
            entries_max: cfg.sample_entries,
            engine: &engine_options(cfg),
            rpc_timeout: cfg.rpc_timeout,
            cred_xdr: mounted.cred_xdr.clone(),
            rate: rate_limit(cfg),
        })?
    } else {
        Targets::root_only(root)
    };
    let mut ops = Vec::new();
    let mut skipped = Vec::new();
    for &op in &cfg.ops {
        if targets.count(op) > 0 {
            ops.push(op);
            continue;
        }
        let what = match op {
            BenchOp::Readlink => "symbolic links",
            BenchOp::Lookup => "directory entries",
            BenchOp::Read => "regular files with data",
            _ => "targets",
        };
        skipped.push(SkippedOp {
            op,
            reason: format!(
                "the sample of {} entries has no {what}",
                targets.stats.entries
            ),
        });
    }
    Ok(Prepared {
        url: url.to_string(),
        mounted,
        targets: Arc::new(targets),
        ops,
        skipped,
    })
}

/// The engine settings of a bench, with the client's source port and connect timeout.
fn engine_options(cfg: &BenchConfig) -> crate::sched::EngineOptions {
    let mut engine = cfg.engine.clone();
    engine.source_port = cfg.client.source_port;
    engine.connect_timeout = cfg.client.timeout;
    engine
}

/// `--max-rate` as the limiter every thread shares.
fn rate_limit(cfg: &BenchConfig) -> Option<Arc<crate::sched::RateLimiter>> {
    cfg.max_rate
        .map(|r| Arc::new(crate::sched::RateLimiter::new(r)))
}

/// Whether `op` needs targets from a sample walk (NULL and FSSTAT do with the root alone).
fn needs_sample(op: BenchOp) -> bool {
    !matches!(op, BenchOp::Null | BenchOp::Fsstat)
}

/// Runs the load against a prepared server.
pub fn run_prepared(
    p: &Prepared,
    cfg: &BenchConfig,
    stop: &Arc<AtomicBool>,
    sink: &mut dyn IntervalSink,
) -> Result<BenchReport, BenchError> {
    cfg.validate()?;
    if p.ops.is_empty() {
        let why: Vec<String> = p
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.op, s.reason))
            .collect();
        return Err(BenchError::NoOps(why.join("; ")));
    }
    let load = Arc::new(LoadConfig {
        ops: p.ops.clone(),
        warmup: cfg.warmup,
        duration: cfg.duration,
        interval: cfg.interval,
        rpc_timeout: cfg.rpc_timeout,
        drain_max: cfg.rpc_timeout,
        maxcount: cfg.maxcount,
        dircount: cfg.dircount.min(cfg.maxcount),
        read_size: cfg.read_size.unwrap_or_else(|| {
            let (rtpref, rtmax) = p
                .mounted
                .fsinfo
                .as_ref()
                .map_or((0, 0), |f| (f.rtpref, f.rtmax));
            ContentConfig::chunk_for_server(rtpref, rtmax)
        }),
        cred_xdr: p.mounted.cred_xdr.clone(),
        rate: rate_limit(cfg),
    });
    let run = engine::run_load(
        &p.mounted.nfs_addrs,
        p.targets.clone(),
        load,
        cfg.mode,
        &engine_options(cfg),
        stop,
        sink,
    )?;
    let secs = run.measured.as_secs_f64().max(1e-9);
    let ops = p
        .ops
        .iter()
        .enumerate()
        .map(|(i, &op)| {
            let measured = run.counters.measured.get(i).copied().unwrap_or_default();
            OpReport {
                op,
                warmup: run.counters.warmup.get(i).copied().unwrap_or_default(),
                measured,
                latency_ns: run
                    .latency_ns
                    .get(i)
                    .cloned()
                    .unwrap_or_else(load::latency_histogram),
                ops_per_s: measured.replies as f64 / secs,
                bytes_per_s: measured.bytes as f64 / secs,
            }
        })
        .collect();
    let t = &p.targets;
    Ok(BenchReport {
        url: p.url.clone(),
        ops,
        skipped: p.skipped.clone(),
        mode: cfg.mode,
        warmup: cfg.warmup,
        duration: cfg.duration,
        measured: run.measured,
        interrupted: run.interrupted,
        threads: run.threads,
        connections: run.connections,
        backend: run.backend,
        reconnects: run.reconnects,
        unknown_xids: run.counters.unknown_xids,
        unsent: run.counters.unsent,
        sample: t.stats,
        targets: TargetCounts {
            objects: t.objects.len(),
            dirs: t.dirs.len(),
            symlinks: t.symlinks.len(),
            lookups: t.lookups.len(),
            files: t.files.len(),
        },
    })
}

/// Mounts, samples, runs, unmounts.
pub fn run(
    url: &str,
    cfg: &BenchConfig,
    stop: &Arc<AtomicBool>,
    sink: &mut dyn IntervalSink,
) -> Result<BenchReport, BenchError> {
    let p = prepare(url, cfg)?;
    let report = run_prepared(&p, cfg, stop, sink);
    p.mounted.unmount();
    report
}
