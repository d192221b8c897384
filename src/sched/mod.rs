//! Threads, pinning, work distribution and termination.
//!
//! One thread per core, each pinned, each owning a [`Ring`](crate::ring::Ring) with its own TCP
//! connections and a [`Walker`](crate::walker::Walker). Directory tasks live in per-thread LIFO
//! deques (depth-first keeps memory low on wide trees) with a global injector, and idle threads
//! steal. The scan ends exactly when no task is outstanding anywhere: a global counter of tasks
//! created but not finished, never a timeout.
//!
//! [`conns`] is the part a thread's loop shares with the bench's: the ring's connections,
//! (re)connecting, reply reassembly and broken connections.

pub mod conns;
mod worker;

use crate::client::SourcePort;
use crate::output::{Batcher, Format, OutputBatch};
use crate::ring::{Backend, RingConfig};
use crate::walker::{Task, VisitedDirs, WalkConfig, WalkStats};
use conns::{GiveUp, ReconnectPolicy};
use crossbeam_channel::Sender;
use crossbeam_deque::{Injector, Stealer, Worker as Deque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How the threads and their connections are set up (the scan's and the bench's).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub threads: usize,
    /// Connections in all, spread over the threads (at least one per thread).
    pub connections: usize,
    /// `None`: io_uring where the kernel allows it, epoll otherwise.
    pub backend: Option<Backend>,
    pub pin_threads: bool,
    pub ring: RingConfig,
    pub source_port: SourcePort,
    pub connect_timeout: Duration,
    /// Failures in a row of one connection (failed connects, lost connections) before the run
    /// gives up on the server.
    pub reconnects_max: u32,
}

/// The scan's [`EngineOptions::reconnects_max`] (the bench has its own).
pub const RECONNECTS_MAX_DEFAULT: u32 = 20;
/// Before any connection was up, failed connects of one connection past which the scan fails
/// with the connect error (so the first connect fails after 3 attempts).
const FIRST_CONNECT_FAILURES_MAX: u32 = 2;

impl Default for EngineOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        EngineOptions {
            threads,
            connections: threads * 2,
            backend: None,
            pin_threads: true,
            ring: RingConfig::default(),
            source_port: SourcePort::Auto,
            connect_timeout: Duration::from_secs(10),
            reconnects_max: RECONNECTS_MAX_DEFAULT,
        }
    }
}

/// Live figures for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub entries: AtomicU64,
    pub errors: AtomicU64,
    pub inflight: AtomicU64,
    /// Tasks created and not yet finished (queued or being worked on).
    pub outstanding: AtomicUsize,
    pub reconnects: AtomicU64,
    /// Lookup batches queued or being worked on (`getattr` mode's backlog).
    pub lookup_batches: AtomicUsize,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct EngineReport {
    pub stats: WalkStats,
    pub backend: Backend,
    pub threads: usize,
    pub connections: usize,
    pub reconnects: u64,
    pub elapsed: Duration,
    /// False when the run was stopped (signal) or failed before the walk was done.
    pub completed: bool,
    /// The first entry's arrival, from the engine's start.
    pub first_entry_after: Option<Duration>,
}

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot set up I/O: {0}")]
    Ring(#[from] crate::ring::RingError),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("lost the server: {0}")]
    ServerLost(String),
    #[error("cannot start thread: {0}")]
    Thread(std::io::Error),
    #[error("no server address to connect to")]
    NoServerAddress,
}

/// Shared state of one run.
pub(crate) struct Shared {
    pub injector: Injector<Task>,
    pub stealers: Vec<Stealer<Task>>,
    pub progress: Arc<Progress>,
    pub stop: Arc<AtomicBool>,
    /// Set by a thread that cannot go on (server lost); everyone stops.
    pub failed: AtomicBool,
    pub failure: std::sync::Mutex<Option<EngineError>>,
    pub first_entry_ns: AtomicU64,
    pub start: Instant,
}

/// Runs a walk from `roots` to completion (or until `stop` is set).
///
/// `out` receives entry batches in `format`; `errors` receives per-path errors.
#[allow(clippy::too_many_arguments)]
pub fn run(
    cfg: &EngineOptions,
    walk: Arc<WalkConfig>,
    visited: Arc<VisitedDirs>,
    addrs: &[SocketAddr],
    roots: Vec<Task>,
    format: Format,
    out: Sender<OutputBatch>,
    errors: Sender<OutputBatch>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> Result<EngineReport, EngineError> {
    if addrs.is_empty() {
        return Err(EngineError::NoServerAddress);
    }
    let threads = cfg.threads.max(1);
    let connections = cfg.connections.max(threads);
    let backend = match cfg.backend {
        Some(b) => b,
        None => conns::probe_backend(&cfg.ring),
    };
    let policy = ReconnectPolicy {
        source_port: cfg.source_port,
        connect_timeout: cfg.connect_timeout,
        failures_max: cfg.reconnects_max,
        first_connect_failures_max: cfg.reconnects_max.min(FIRST_CONNECT_FAILURES_MAX),
        give_up: GiveUp::WhenDue,
    };
    let deques: Vec<Deque<Task>> = (0..threads).map(|_| Deque::new_lifo()).collect();
    let shared = Arc::new(Shared {
        injector: Injector::new(),
        stealers: deques.iter().map(Deque::stealer).collect(),
        progress: progress.clone(),
        stop,
        failed: AtomicBool::new(false),
        failure: std::sync::Mutex::new(None),
        first_entry_ns: AtomicU64::new(0),
        start: Instant::now(),
    });
    progress
        .outstanding
        .fetch_add(roots.len(), Ordering::SeqCst);
    for r in roots {
        shared.injector.push(r);
    }
    let cores = if cfg.pin_threads {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut handles = Vec::with_capacity(threads);
    for (i, deque) in deques.into_iter().enumerate() {
        let ctx = worker::WorkerContext {
            index: i,
            core: (!cores.is_empty()).then(|| cores[i % cores.len()]),
            backend,
            ring: cfg.ring.clone(),
            addrs: conns::thread_addrs(addrs, connections, threads, i),
            policy,
            walk: walk.clone(),
            visited: visited.clone(),
            shared: shared.clone(),
            deque,
            batcher: Batcher::new(format, out.clone(), Some(errors.clone())),
        };
        let h = std::thread::Builder::new()
            .name(format!("nfs-walker-{i}"))
            .spawn(move || worker::run(ctx))
            .map_err(EngineError::Thread)?;
        handles.push(h);
    }
    drop(out);
    drop(errors);
    let mut stats = WalkStats::default();
    let mut reconnects = 0;
    for h in handles {
        match h.join() {
            Ok(r) => {
                stats.merge(&r.stats);
                reconnects += r.reconnects;
            }
            Err(_) => {
                shared.failed.store(true, Ordering::SeqCst);
                shared
                    .failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(EngineError::ServerLost("a scan thread panicked".into()));
            }
        }
    }
    if let Some(e) = shared
        .failure
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(e);
    }
    let first = shared.first_entry_ns.load(Ordering::Relaxed);
    Ok(EngineReport {
        stats,
        backend,
        threads,
        connections,
        reconnects,
        elapsed: shared.start.elapsed(),
        completed: !shared.stop.load(Ordering::SeqCst)
            && progress.outstanding.load(Ordering::SeqCst) == 0,
        first_entry_after: (first > 0).then(|| Duration::from_nanos(first)),
    })
}
