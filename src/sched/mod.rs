//! Threads, pinning, connections, calls and tasks: the engine every protocol user runs on.
//!
//! One thread per core, each pinned, each owning a [`Ring`](crate::ring::Ring) with its own TCP
//! connections ([`conns`]), a protocol user (a sans-IO state machine behind
//! [`drive::Protocol`]: the walk, the bench's load generator) that keeps its calls in a
//! [`calls::CallEngine`], and the thread's queue of a [`tasks::TaskSource`]. [`drive::drive`]
//! is the one loop that moves bytes, events and tasks between them. The engine knows no NFS
//! semantics, no output format and no walk settings: the caller builds each thread's protocol
//! user with a factory.

pub mod balance;
pub mod calls;
pub mod conns;
pub mod drive;
pub mod rate;
pub mod tasks;

pub use balance::ConnBalancer;
pub use calls::{Attempts, CallCounters, CallEngine, CallPolicy, Inflight, Queued};
pub use drive::{drive, DriveContext, Protocol};
pub use rate::RateLimiter;
pub use tasks::{LocalDeques, LocalQueue, NoTasks, TaskId, TaskParts, TaskQueue, TaskSource};

use crate::client::SourcePort;
use crate::ring::{Backend, Ring, RingConfig};
use conns::{ConnSet, GiveUp, ReconnectPolicy};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
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

/// [`EngineOptions::reconnects_max`] of a scan: failures in a row of one connection (failed
/// connects and lost connections) it puts up with before giving up on the server.
pub const SCAN_RECONNECTS_MAX_DEFAULT: u32 = 20;
/// Before any connection was up, failed connects of one connection past which the scan fails
/// with the connect error (so the first connect fails after 3 attempts).
const FIRST_CONNECT_FAILURES_MAX: u32 = 2;

/// Threads of a run at most: more cores than this help no NFS server we know of, and task ids
/// ([`tasks::LocalDeques`]) carry the thread number in 8 bits.
pub const THREADS_MAX: usize = 128;

impl Default for EngineOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(THREADS_MAX);
        EngineOptions {
            threads,
            connections: threads * 2,
            backend: None,
            pin_threads: true,
            ring: RingConfig::default(),
            source_port: SourcePort::Auto,
            connect_timeout: Duration::from_secs(10),
            reconnects_max: SCAN_RECONNECTS_MAX_DEFAULT,
        }
    }
}

/// What a finished (or stopped) run reports.
#[derive(Debug)]
pub struct EngineRun<P> {
    /// Each thread's protocol user, as the loop left it (its figures are the caller's
    /// business).
    pub protocols: Vec<P>,
    pub backend: Backend,
    pub threads: usize,
    pub connections: usize,
    pub reconnects: u64,
    pub elapsed: Duration,
    /// False when the run was stopped (signal) before the source's work was done.
    pub completed: bool,
}

/// What a thread's protocol user is built from.
#[derive(Debug, Clone, Copy)]
pub struct ThreadSetup {
    /// 0.. the number of threads.
    pub index: usize,
    /// Connection slots of the thread.
    pub conns: usize,
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

/// Runs the tasks of `source` over `threads` threads to completion (or until `stop` is set):
/// each thread builds its protocol user with `make`, takes its queue of the source, and runs
/// [`drive`] over its connections to `addrs`.
pub fn run<S, P, F>(
    cfg: &EngineOptions,
    addrs: &[SocketAddr],
    source: &S,
    make: F,
    stop: &AtomicBool,
    reconnects: Option<&AtomicU64>,
) -> Result<EngineRun<P>, EngineError>
where
    S: TaskSource,
    P: Protocol<Task = S::Task> + Send,
    F: Fn(ThreadSetup) -> P + Sync,
{
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
    let cores = if cfg.pin_threads {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let failed = AtomicBool::new(false);
    let failure: Mutex<Option<EngineError>> = Mutex::new(None);
    let fail = |e: EngineError| {
        failed.store(true, Ordering::SeqCst);
        failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    };
    let queues = source.queues(threads);
    let mut protocols = Vec::with_capacity(threads);
    let mut reconnects_total = 0;
    let mut exhausted = true;
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        for (i, mut queue) in queues.into_iter().enumerate() {
            let addrs = conns::thread_addrs(addrs, connections, threads, i);
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let (make, fail, failed, policy) = (&make, &fail, &failed, &policy);
            let ring_cfg = &cfg.ring;
            let spawned = std::thread::Builder::new()
                .name(format!("nfs-walker-{i}"))
                .spawn_scoped(scope, move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    let mut proto = make(ThreadSetup {
                        index: i,
                        conns: addrs.len(),
                    });
                    let ring = match Ring::new(backend, ring_cfg) {
                        Ok(r) => r,
                        Err(e) => {
                            fail(e.into());
                            proto.finish();
                            return (proto, 0, false);
                        }
                    };
                    let mut conns = ConnSet::new(ring, &addrs, Instant::now());
                    let cx = DriveContext {
                        policy,
                        stop,
                        failed,
                        reconnects,
                    };
                    if let Err(e) = drive(&mut conns, &mut proto, &mut queue, &cx) {
                        fail(e);
                    }
                    (proto, conns.reconnects(), queue.is_exhausted())
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    fail(EngineError::Thread(e));
                    break;
                }
            }
        }
        for h in handles {
            match h.join() {
                Ok((p, r, done)) => {
                    protocols.push(p);
                    reconnects_total += r;
                    exhausted &= done;
                }
                Err(_) => fail(EngineError::ServerLost("a scan thread panicked".into())),
            }
        }
    });
    if let Some(e) = failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e);
    }
    Ok(EngineRun {
        protocols,
        backend,
        threads,
        connections,
        reconnects: reconnects_total,
        elapsed: start.elapsed(),
        completed: !stop.load(Ordering::SeqCst) && exhausted,
    })
}
