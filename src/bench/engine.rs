//! Threads and rings for a bench: one thread per core (pinned), each owning a ring, its TCP
//! connections and a [`LoadGen`]; the calling thread merges the threads' reporting intervals
//! as they complete and hands them to an [`IntervalSink`] (timeline, hlog).
//!
//! Threads connect first and then wait for a common start time, so connection set-up is never
//! part of the measurement and every thread's intervals line up.

use super::load::{IntervalSet, LoadConfig, LoadCounters, LoadGen, LoadMode, LoadShare};
use super::sample::Targets;
use super::BenchError;
use crate::ring::{Backend, Ring, RingConfig};
use crate::rpc::RpcError;
use crate::sched::conns::{self, ConnSet, GiveUp, ReconnectPolicy};
use crate::sched::{
    drive, DriveContext, EngineError, EngineOptions, NoTasks, Protocol, RateLimiter, TaskQueue,
};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Most threads (the XID carries the thread in 4 bits).
pub const THREADS_MAX: usize = 16;
/// Most connections in all.
pub const CONNECTIONS_MAX: usize = 1024;
/// Delay between the last thread being connected and the start, so every thread is waiting
/// when the start time comes.
const START_DELAY: Duration = Duration::from_millis(20);
/// How often the coordinator looks at the stop flag while it waits for the threads.
const POLL_MAX: Duration = Duration::from_millis(100);

/// [`EngineOptions::reconnects_max`] of a bench: failed reconnects of one connection in a row
/// before the bench gives up on the server (fewer than a scan's
/// [`crate::sched::SCAN_RECONNECTS_MAX_DEFAULT`]: a bench measures a healthy server, and one
/// that keeps refusing connections has answered the question).
pub const BENCH_RECONNECTS_MAX_DEFAULT: u32 = 10;

/// Where a reporting interval lies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalSpan {
    /// 0 is the first measured interval; warmup intervals are negative.
    pub index: i64,
    pub length: Duration,
}

impl IntervalSpan {
    /// Seconds from the end of the warmup to the interval's start (negative during warmup).
    pub fn start_secs(&self) -> f64 {
        self.index as f64 * self.length.as_secs_f64()
    }
}

/// Receives the run's progress on the calling thread.
pub trait IntervalSink {
    /// The load is about to start; `warmup_end` is the wall-clock time measurement begins.
    fn started(&mut self, _warmup_end: SystemTime) {}
    /// One interval, merged over all threads, in order. Intervals in which nothing arrived may
    /// be left out.
    fn interval(&mut self, span: IntervalSpan, set: &IntervalSet);
}

/// A sink that ignores everything.
pub struct NoSink;

impl IntervalSink for NoSink {
    fn interval(&mut self, _: IntervalSpan, _: &IntervalSet) {}
}

/// What the threads did, merged.
#[derive(Debug, Clone)]
pub struct LoadRun {
    pub counters: LoadCounters,
    /// Measured latencies per operation (in `LoadConfig::ops` order), nanoseconds.
    pub latency_ns: Vec<Histogram<u64>>,
    /// From the end of the warmup to the end of the measured period (shorter when stopped).
    pub measured: Duration,
    /// Stopped by the caller's flag before the planned end.
    pub interrupted: bool,
    pub backend: Backend,
    pub threads: usize,
    pub connections: usize,
    pub reconnects: u64,
    pub warmup_end: SystemTime,
}

enum ThreadMsg {
    Ready {
        error: Option<BenchError>,
    },
    Interval {
        thread: usize,
        set: IntervalSet,
    },
    Done {
        thread: usize,
        counters: LoadCounters,
        reconnects: u64,
        measured_end: Option<Instant>,
        error: Option<BenchError>,
    },
    /// The thread panicked (sent from its unwinding), whatever it sent before.
    Panicked {
        thread: usize,
    },
}

/// Tells the coordinator when its thread unwinds, so nobody waits for a dead thread.
struct PanicNotice {
    thread: usize,
    tx: Sender<ThreadMsg>,
}

impl Drop for PanicNotice {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.tx.send(ThreadMsg::Panicked {
                thread: self.thread,
            });
        }
    }
}

struct ThreadContext {
    index: usize,
    core: Option<core_affinity::CoreId>,
    backend: Backend,
    ring: RingConfig,
    addrs: Vec<SocketAddr>,
    policy: ReconnectPolicy,
    cfg: Arc<LoadConfig>,
    targets: Arc<Targets>,
    share: LoadShare,
    stop: Arc<AtomicBool>,
    rate: Option<Arc<RateLimiter>>,
    tx: Sender<ThreadMsg>,
    start_rx: Receiver<Option<Instant>>,
    recycle_rx: Receiver<IntervalSet>,
}

/// Runs the load described by `cfg` and `mode` (totals, split over the threads) against
/// `addrs` until the measured period and the drain are over, or `stop` is set.
pub fn run_load(
    addrs: &[SocketAddr],
    targets: Arc<Targets>,
    cfg: Arc<LoadConfig>,
    mode: LoadMode,
    opts: &EngineOptions,
    stop: &Arc<AtomicBool>,
    sink: &mut dyn IntervalSink,
) -> Result<LoadRun, BenchError> {
    if addrs.is_empty() {
        return Err(BenchError::Config("no server address".into()));
    }
    if cfg.ops.is_empty() {
        return Err(BenchError::Config("no operation to run".into()));
    }
    let mut threads = opts.threads.clamp(1, THREADS_MAX);
    if let LoadMode::Closed { inflight } = mode {
        threads = threads.min(inflight.max(1));
    }
    let connections = opts.connections.clamp(threads, CONNECTIONS_MAX);
    let backend = opts
        .backend
        .unwrap_or_else(|| conns::probe_backend(&opts.ring));
    let policy = ReconnectPolicy {
        source_port: opts.source_port,
        connect_timeout: opts.connect_timeout,
        failures_max: opts.reconnects_max,
        // Threads connect before the start, once: any failure there fails the bench.
        first_connect_failures_max: 0,
        give_up: GiveUp::AfterFailedConnect,
    };
    let cores = if opts.pin_threads {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    // Threads see the caller's stop flag through their own, which the caller also sets when
    // a thread fails.
    let thread_stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::unbounded::<ThreadMsg>();
    let mut starts = Vec::with_capacity(threads);
    let mut recycles = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    let target_span = targets.objects.len().max(1);
    for i in 0..threads {
        let share = LoadShare {
            mode: match mode {
                LoadMode::Closed { inflight } => LoadMode::Closed {
                    inflight: conns::share_of(inflight, threads, i),
                },
                LoadMode::Open {
                    rate_per_s,
                    inflight_max,
                } => LoadMode::Open {
                    rate_per_s: rate_per_s / threads as f64,
                    inflight_max: conns::share_of(inflight_max, threads, i).max(1),
                },
            },
            first_call_after: match mode {
                LoadMode::Open { rate_per_s, .. } if rate_per_s > 0.0 => {
                    Duration::from_secs_f64(i as f64 / rate_per_s)
                }
                _ => Duration::ZERO,
            },
            target_offset: i * (target_span / threads),
        };
        let (start_tx, start_rx) = crossbeam_channel::bounded(1);
        let (recycle_tx, recycle_rx) = crossbeam_channel::bounded(8);
        starts.push(start_tx);
        recycles.push(recycle_tx);
        let ctx = ThreadContext {
            index: i,
            core: (!cores.is_empty()).then(|| cores[i % cores.len()]),
            backend,
            ring: opts.ring.clone(),
            addrs: conns::thread_addrs(addrs, connections, threads, i),
            policy,
            cfg: cfg.clone(),
            targets: targets.clone(),
            share,
            stop: thread_stop.clone(),
            rate: cfg.rate.clone(),
            tx: tx.clone(),
            start_rx,
            recycle_rx,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("nfs-bench-{i}"))
            .spawn(move || thread_main(ctx));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                for s in &starts {
                    let _ = s.send(None);
                }
                for h in handles {
                    let _ = h.join();
                }
                return Err(EngineError::Thread(e).into());
            }
        }
    }
    drop(tx);

    let result = coordinate(
        &rx,
        &starts,
        &recycles,
        threads,
        &cfg,
        stop,
        &thread_stop,
        sink,
    );
    thread_stop.store(true, Ordering::SeqCst);
    for s in &starts {
        let _ = s.try_send(None);
    }
    let mut panicked = false;
    for h in handles {
        panicked |= h.join().is_err();
    }
    let mut run = result?;
    if panicked {
        return Err(EngineError::ServerLost("a bench thread panicked".into()).into());
    }
    run.backend = backend;
    run.threads = threads;
    run.connections = connections;
    Ok(run)
}

/// The calling thread's part: start everyone together, merge intervals, collect results.
#[allow(clippy::too_many_arguments)]
fn coordinate(
    rx: &Receiver<ThreadMsg>,
    starts: &[Sender<Option<Instant>>],
    recycles: &[Sender<IntervalSet>],
    threads: usize,
    cfg: &LoadConfig,
    stop: &AtomicBool,
    thread_stop: &AtomicBool,
    sink: &mut dyn IntervalSink,
) -> Result<LoadRun, BenchError> {
    let mut ready = 0;
    let mut first_error = None;
    while ready < threads {
        match rx.recv() {
            Ok(ThreadMsg::Ready { error, .. }) => {
                ready += 1;
                if first_error.is_none() {
                    first_error = error;
                }
            }
            Ok(ThreadMsg::Panicked { .. }) => {
                return Err(EngineError::ServerLost("a bench thread panicked".into()).into());
            }
            Ok(_) => {}
            Err(_) => {
                return Err(first_error.unwrap_or_else(|| {
                    EngineError::ServerLost("bench threads ended early".into()).into()
                }))
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let start = Instant::now() + START_DELAY;
    let warmup_end = SystemTime::now() + START_DELAY + cfg.warmup;
    for s in starts {
        let _ = s.send(Some(start));
    }
    sink.started(warmup_end);

    let ops = cfg.ops.len();
    let interval_len = cfg.interval;
    let mut latency_ns: Vec<Histogram<u64>> =
        (0..ops).map(|_| super::load::latency_histogram()).collect();
    let mut pending: BTreeMap<i64, IntervalSet> = BTreeMap::new();
    // The newest interval each thread has reported (all before it are final), or MAX when done.
    let mut reported: Vec<i64> = vec![i64::MIN; threads];
    let mut counters = LoadCounters::new(ops);
    let mut reconnects = 0;
    let mut measured_end: Option<Instant> = None;
    let mut done = 0;
    let mut error: Option<BenchError> = None;
    let warmup_end_instant = start + cfg.warmup;
    // Emits the merged intervals up to `upto`. Intervals still running when every thread
    // finished are cut at `clip`, so their rates are not understated.
    let emit = |pending: &mut BTreeMap<i64, IntervalSet>,
                upto: i64,
                clip: Option<Instant>,
                latency_ns: &mut Vec<Histogram<u64>>,
                sink: &mut dyn IntervalSink| {
        while let Some(entry) = pending.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let set = entry.remove();
            for (total, h) in latency_ns.iter_mut().zip(&set.measured) {
                let _ = total.add(h);
            }
            let mut length = interval_len;
            if let Some(clip) = clip {
                let offset = interval_len
                    .saturating_mul(set.index.unsigned_abs().min(u32::MAX as u64) as u32);
                let interval_start = if set.index >= 0 {
                    warmup_end_instant + offset
                } else {
                    warmup_end_instant
                        .checked_sub(offset)
                        .unwrap_or(warmup_end_instant)
                };
                length = clip
                    .saturating_duration_since(interval_start)
                    .clamp(Duration::from_millis(1), interval_len);
            }
            sink.interval(
                IntervalSpan {
                    index: set.index,
                    length,
                },
                &set,
            );
        }
    };
    while done < threads {
        if stop.load(Ordering::Relaxed) {
            thread_stop.store(true, Ordering::Relaxed);
        }
        let msg = match rx.recv_timeout(POLL_MAX) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            ThreadMsg::Ready { .. } => {}
            ThreadMsg::Panicked { thread } => {
                if reported[thread] != i64::MAX {
                    done += 1;
                    reported[thread] = i64::MAX;
                }
                thread_stop.store(true, Ordering::SeqCst);
                error.get_or_insert(
                    EngineError::ServerLost("a bench thread panicked".into()).into(),
                );
            }
            ThreadMsg::Interval { thread, set } => {
                reported[thread] = reported[thread].max(set.index);
                match pending.entry(set.index) {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(set);
                    }
                    std::collections::btree_map::Entry::Occupied(mut o) => {
                        o.get_mut().merge(&set);
                        let _ = recycles[thread].try_send(set);
                    }
                }
                let upto = reported.iter().copied().min().unwrap_or(i64::MAX);
                emit(&mut pending, upto, None, &mut latency_ns, sink);
            }
            ThreadMsg::Done {
                thread,
                counters: c,
                reconnects: r,
                measured_end: m,
                error: e,
            } => {
                if reported[thread] == i64::MAX {
                    continue; // already counted as panicked
                }
                done += 1;
                reported[thread] = i64::MAX;
                counters.merge(&c);
                reconnects += r;
                measured_end = match (measured_end, m) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                if let Some(e) = e {
                    // One thread cannot go on: everyone stops.
                    thread_stop.store(true, Ordering::SeqCst);
                    error.get_or_insert(e);
                }
                // The last intervals are emitted below, once every thread is done.
                if done < threads {
                    let upto = reported.iter().copied().min().unwrap_or(i64::MAX);
                    emit(&mut pending, upto, None, &mut latency_ns, sink);
                }
            }
        }
    }
    emit(
        &mut pending,
        i64::MAX,
        Some(Instant::now()),
        &mut latency_ns,
        sink,
    );
    if let Some(e) = error {
        return Err(e);
    }
    let measured = measured_end
        .map(|m| m.saturating_duration_since(warmup_end_instant))
        .unwrap_or(cfg.duration);
    Ok(LoadRun {
        counters,
        latency_ns,
        measured,
        interrupted: stop.load(Ordering::SeqCst),
        backend: Backend::Epoll,
        threads,
        connections: 0,
        reconnects,
        warmup_end,
    })
}

fn thread_main(ctx: ThreadContext) {
    if let Some(core) = ctx.core {
        core_affinity::set_for_current(core);
    }
    let tx = ctx.tx.clone();
    let _notice = PanicNotice {
        thread: ctx.index,
        tx: tx.clone(),
    };
    let outcome = run_thread(ctx);
    let _ = tx.send(outcome);
}

/// One thread: connect, wait for the start, run the generator over the ring. Returns the
/// `Done` message.
fn run_thread(ctx: ThreadContext) -> ThreadMsg {
    let done = |counters, reconnects, measured_end, error| ThreadMsg::Done {
        thread: ctx.index,
        counters,
        reconnects,
        measured_end,
        error,
    };
    let ops = ctx.cfg.ops.len();
    let ring = match Ring::new(ctx.backend, &ctx.ring) {
        Ok(r) => r,
        Err(e) => {
            let _ = ctx.tx.send(ThreadMsg::Ready {
                error: Some(e.into()),
            });
            return done(LoadCounters::new(ops), 0, None, None);
        }
    };
    let now = Instant::now();
    let mut conns = ConnSet::new(ring, &ctx.addrs, now);
    // Every connection once, before the start: the generator hears of them once it exists.
    let connect_error = conns
        .connect_due(now, &ctx.policy, |_| {})
        .err()
        .map(BenchError::from);
    let failed = connect_error.is_some();
    let _ = ctx.tx.send(ThreadMsg::Ready {
        error: connect_error,
    });
    let start = match ctx.start_rx.recv() {
        Ok(Some(start)) if !failed => start,
        _ => return done(LoadCounters::new(ops), 0, None, None),
    };
    let gen = LoadGen::new(
        ctx.cfg.clone(),
        ctx.targets.clone(),
        ctx.share,
        conns.len(),
        ctx.index as u32,
        start,
    )
    .with_rate_limit(ctx.rate.clone());
    let mut thread = BenchThread {
        gen,
        index: ctx.index,
        tx: &ctx.tx,
        recycle_rx: &ctx.recycle_rx,
    };
    for slot in 0..conns.len() {
        if conns.is_up(slot) {
            thread.gen.on_conn_up(slot);
        }
    }
    // Sleep until the start (the generator sends nothing before it anyway).
    let wait = start.saturating_duration_since(Instant::now());
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }
    // Only the coordinator fails a bench; this flag stays down.
    let failed = AtomicBool::new(false);
    let cx = DriveContext {
        policy: &ctx.policy,
        stop: &ctx.stop,
        failed: &failed,
        reconnects: None,
    };
    let error = drive(&mut conns, &mut thread, &mut NoTasks, &cx)
        .err()
        .map(BenchError::from);
    let gen = thread.gen;
    let measured_end = gen.measured_end();
    let (counters, rest) = gen.finish();
    for set in rest {
        let _ = ctx.tx.send(ThreadMsg::Interval {
            thread: ctx.index,
            set,
        });
    }
    done(counters, conns.reconnects(), Some(measured_end), error)
}

/// The load generator as the engine's protocol user: it takes no tasks (it makes its own
/// calls) and hands its finished intervals to the coordinator after each turn.
struct BenchThread<'a> {
    gen: LoadGen,
    index: usize,
    tx: &'a Sender<ThreadMsg>,
    recycle_rx: &'a Receiver<IntervalSet>,
}

impl Protocol for BenchThread<'_> {
    type Task = ();

    fn on_conn_up(&mut self, slot: usize) {
        self.gen.on_conn_up(slot);
    }

    fn on_conn_down(&mut self, slot: usize) {
        self.gen.on_conn_down(slot);
    }

    fn on_reply<Q: TaskQueue<Task = ()>>(
        &mut self,
        xid: u32,
        outcome: Result<&[u8], RpcError>,
        now: Instant,
        _: &mut Q,
    ) {
        self.gen.on_reply(xid, outcome, now);
    }

    fn on_timeout<Q: TaskQueue<Task = ()>>(&mut self, now: Instant, _: &mut Q) {
        self.gen.on_timeout(now);
    }

    fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize {
        self.gen.poll_transmit(now, bufs)
    }

    fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        Some(self.gen.poll_timeout(now))
    }

    fn after_turn<Q: TaskQueue<Task = ()>>(&mut self, now: Instant, _: &Q) {
        while let Some(set) = self.gen.take_interval(now) {
            let _ = self.tx.send(ThreadMsg::Interval {
                thread: self.index,
                set,
            });
        }
        while let Ok(set) = self.recycle_rx.try_recv() {
            self.gen.recycle(set);
        }
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.gen.is_done(now)
    }

    /// Sending stops; replies in flight are awaited (a bounded drain).
    fn stop(&mut self, now: Instant) -> bool {
        self.gen.stop(now);
        false
    }
}
