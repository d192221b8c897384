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

use crate::client::nfs4::{Nfs4Client, Nfs4ClientError};
use crate::client::{mount, ClientOptions, MountFlowError, Mounted, NfsUrl, UrlError};
use crate::content::ContentConfig;
use crate::record::EntryAttrs;
use crate::rpc::nfs3::FileHandle;
use crate::sched::EngineError;
use crate::walk4::{Shared4, Walk4Setup};
use load::LoadSession4;
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
    #[error(transparent)]
    V4(#[from] Nfs4ClientError),
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

/// How the bench reaches the server: mounted over NFSv3, or a client ID and session over
/// NFSv4.1 (which the threads share, each on its own slots).
pub enum Server {
    V3(Box<Mounted>),
    V4 {
        client: Box<Nfs4Client>,
        setup: Arc<Walk4Setup>,
    },
}

impl Server {
    pub fn addrs(&self) -> &[std::net::SocketAddr] {
        match self {
            Server::V3(m) => &m.nfs_addrs,
            Server::V4 { client, .. } => &client.addrs,
        }
    }

    pub fn cred_xdr(&self) -> &[u8] {
        match self {
            Server::V3(m) => &m.cred_xdr,
            Server::V4 { client, .. } => &client.cred_xdr,
        }
    }

    /// Unmounts (v3), or destroys the session in use and the client ID (v4).
    pub fn close(self) {
        match self {
            Server::V3(m) => m.unmount(),
            Server::V4 { mut client, setup } => {
                if let Some((clientid, id)) = setup.shared.as_ref().and_then(|s| s.current()) {
                    client.session.clientid = clientid;
                    client.session.sessionid = id;
                }
                client.close();
            }
        }
    }
}

/// A mounted server with its sample: ready to run.
pub struct Prepared {
    pub url: String,
    pub server: Server,
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
    let (server, root, root_attrs) = if cfg.client.version_for(&parsed) == 4 {
        connect_v4(&parsed, cfg)?
    } else {
        let m = mount(&parsed, &cfg.client)?;
        let (root, attrs) = (m.root_fh, m.root_attrs.to_entry_attrs());
        (Server::V3(Box::new(m)), root, attrs)
    };
    let v4 = match &server {
        Server::V4 { setup, .. } => Some(setup.clone()),
        Server::V3(_) => None,
    };
    let targets = if cfg.ops.iter().any(|op| needs_sample(*op)) {
        sample::sample_targets(&sample::SampleSetup {
            addrs: server.addrs(),
            root_fh: root,
            root_fsid: root_attrs.fsid,
            root_fileid: root_attrs.fileid,
            entries_max: cfg.sample_entries,
            engine: &engine_options(cfg),
            rpc_timeout: cfg.rpc_timeout,
            cred_xdr: server.cred_xdr().to_vec(),
            rate: rate_limit(cfg),
            v4: v4.clone(),
        })?
    } else {
        Targets::root_only(root)
    };
    let mut server = server;
    if let Server::V4 { client, setup } = &mut server {
        // The sample walk advanced the slots' sequence IDs in its threads, which are gone:
        // the load starts on a fresh session.
        let shared = setup.shared.as_ref().expect("v4 benches share a session");
        let old = shared
            .current()
            .map_or(client.session.sessionid, |(_, id)| id);
        client.replace_session(old)?;
        let s = client.session;
        shared.set_current(
            s.clientid,
            client.create_seq,
            s.sessionid,
            s.slots,
            s.max_response_bytes,
        );
    }
    let mut ops = Vec::new();
    let mut skipped = Vec::new();
    for &op in &cfg.ops {
        if v4.is_some() && op == BenchOp::Fsstat {
            skipped.push(SkippedOp {
                op,
                reason: "NFSv4 has no FSSTAT (its figures are attributes)".into(),
            });
            continue;
        }
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
        server,
        targets: Arc::new(targets),
        ops,
        skipped,
    })
}

/// The NFSv4.1 client ID and session (the threads' shared one) and the root's handle and
/// attributes.
fn connect_v4(
    url: &NfsUrl,
    cfg: &BenchConfig,
) -> Result<(Server, FileHandle, EntryAttrs), BenchError> {
    let mut client = Nfs4Client::connect(url, &cfg.client)?;
    let root = client.lookup_path(&url.path)?;
    let fh = FileHandle::from_bytes(&root.fh).ok_or_else(|| {
        BenchError::Config(format!(
            "the server's handle of the root is {} bytes; nfs-walker keeps handles of at most 64",
            root.fh.len()
        ))
    })?;
    let s = client.session;
    let shared = Shared4::new(
        s.clientid,
        client.create_seq,
        s.sessionid,
        s.slots,
        s.max_response_bytes,
    );
    let threads = cfg.engine.threads;
    if !shared.fits(threads) {
        let why = format!(
            "the server granted {} session slots, too few for {threads} threads; use fewer \
             --threads",
            s.slots
        );
        client.close();
        return Err(BenchError::Config(why));
    }
    let setup = Arc::new(Walk4Setup {
        owner: client.owner.clone(),
        verifier: client.verifier,
        idmap: Arc::new(client.idmap.clone()),
        shared: Some(shared),
        reads: false,
    });
    let server = Server::V4 {
        client: Box::new(client),
        setup,
    };
    Ok((server, fh, root.attrs))
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
            // Over v4 there is no FSINFO here: the reader's default chunk.
            let (rtpref, rtmax) = match &p.server {
                Server::V3(m) => m.fsinfo.as_ref().map_or((0, 0), |f| (f.rtpref, f.rtmax)),
                Server::V4 { .. } => (0, 0),
            };
            ContentConfig::chunk_for_server(rtpref, rtmax)
        }),
        cred_xdr: p.server.cred_xdr().to_vec(),
        rate: rate_limit(cfg),
        v4: match &p.server {
            Server::V3(_) => None,
            Server::V4 { setup, .. } => {
                let shared = setup.shared.as_ref();
                let (id, slots) = shared.and_then(|s| s.session_slots()).ok_or_else(|| {
                    BenchError::Config("the NFSv4.1 session was lost during the sample".into())
                })?;
                Some(LoadSession4 {
                    id,
                    slots,
                    threads: engine_options(cfg).threads,
                })
            }
        },
    });
    let run = engine::run_load(
        p.server.addrs(),
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
    p.server.close();
    report
}
