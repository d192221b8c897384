//! Threads and rings for a bench: one thread per core (pinned), each owning a ring, its TCP
//! connections and a [`LoadGen`]; the calling thread merges the threads' reporting intervals
//! as they complete and hands them to an [`IntervalSink`] (timeline, hlog).
//!
//! Threads connect first and then wait for a common start time, so connection set-up is never
//! part of the measurement and every thread's intervals line up.

use super::load::{IntervalSet, LoadConfig, LoadCounters, LoadGen, LoadMode, LoadShare};
use super::sample::Targets;
use super::BenchError;
use crate::client::{connect_tcp, SourcePort};
use crate::ring::{Backend, ConnId, Ring, RingConfig, RingEvent, SendError};
use crate::rpc::{RecordAssembler, Reply, DEFAULT_RECORD_BYTES_MAX};
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
const RECONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The longest a thread sleeps in `poll` (the stop flag is checked at least this often).
const POLL_MAX: Duration = Duration::from_millis(100);

/// How the threads and connections are set up.
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
    /// Failed reconnects of one connection in a row before the bench gives up on the server.
    pub reconnects_max: u32,
}

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
            reconnects_max: 10,
        }
    }
}

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

/// `n` split into `parts` near-equal shares; share `i`.
pub fn share_of(n: usize, parts: usize, i: usize) -> usize {
    let parts = parts.max(1);
    n / parts + usize::from(i < n % parts)
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
    source_port: SourcePort,
    connect_timeout: Duration,
    reconnects_max: u32,
    cfg: Arc<LoadConfig>,
    targets: Arc<Targets>,
    share: LoadShare,
    stop: Arc<AtomicBool>,
    tx: Sender<ThreadMsg>,
    start_rx: Receiver<Option<Instant>>,
    recycle_rx: Receiver<IntervalSet>,
}

/// io_uring where the kernel allows it, epoll otherwise.
fn probe_backend(cfg: &RingConfig) -> Backend {
    match Ring::open_auto(cfg) {
        Ok(r) => r.backend(),
        Err(_) => Backend::Epoll,
    }
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
    let backend = opts.backend.unwrap_or_else(|| probe_backend(&opts.ring));
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
    let mut next_addr = 0;
    let target_span = targets.objects.len().max(1);
    for i in 0..threads {
        let conns = share_of(connections, threads, i);
        let thread_addrs: Vec<SocketAddr> = (0..conns)
            .map(|j| addrs[(next_addr + j) % addrs.len()])
            .collect();
        next_addr += conns;
        let share = LoadShare {
            mode: match mode {
                LoadMode::Closed { inflight } => LoadMode::Closed {
                    inflight: share_of(inflight, threads, i),
                },
                LoadMode::Open {
                    rate_per_s,
                    inflight_max,
                } => LoadMode::Open {
                    rate_per_s: rate_per_s / threads as f64,
                    inflight_max: share_of(inflight_max, threads, i).max(1),
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
            addrs: thread_addrs,
            source_port: opts.source_port,
            connect_timeout: opts.connect_timeout,
            reconnects_max: opts.reconnects_max,
            cfg: cfg.clone(),
            targets: targets.clone(),
            share,
            stop: thread_stop.clone(),
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
                return Err(BenchError::Thread(e));
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
        return Err(BenchError::ServerLost("a bench thread panicked".into()));
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
                return Err(BenchError::ServerLost("a bench thread panicked".into()));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(first_error
                    .unwrap_or_else(|| BenchError::ServerLost("bench threads ended early".into())))
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
                error.get_or_insert(BenchError::ServerLost("a bench thread panicked".into()));
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

struct Conn {
    addr: SocketAddr,
    ring_id: Option<ConnId>,
    assembler: RecordAssembler,
    failures: u32,
    next_attempt: Instant,
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

fn connect(
    ring: &mut Ring,
    c: &Conn,
    source_port: SourcePort,
    timeout: Duration,
) -> Result<ConnId, BenchError> {
    let (stream, _) =
        connect_tcp(c.addr, source_port, timeout).map_err(|source| BenchError::Connect {
            addr: c.addr,
            source,
        })?;
    Ok(ring.add_conn(stream)?)
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
    let mut ring = match Ring::new(ctx.backend, &ctx.ring) {
        Ok(r) => r,
        Err(e) => {
            let _ = ctx.tx.send(ThreadMsg::Ready {
                error: Some(e.into()),
            });
            return done(LoadCounters::new(ops), 0, None, None);
        }
    };
    let now = Instant::now();
    let mut conns: Vec<Conn> = ctx
        .addrs
        .iter()
        .map(|&addr| Conn {
            addr,
            ring_id: None,
            assembler: RecordAssembler::new(DEFAULT_RECORD_BYTES_MAX),
            failures: 0,
            next_attempt: now,
        })
        .collect();
    // ConnId index -> connection slot.
    let mut slot_of: Vec<usize> = Vec::new();
    let mut connect_error = None;
    for (slot, c) in conns.iter_mut().enumerate() {
        match connect(&mut ring, c, ctx.source_port, ctx.connect_timeout) {
            Ok(id) => {
                if slot_of.len() <= id.index() {
                    slot_of.resize(id.index() + 1, usize::MAX);
                }
                slot_of[id.index()] = slot;
                c.ring_id = Some(id);
            }
            Err(e) => {
                connect_error = Some(e);
                break;
            }
        }
    }
    let failed = connect_error.is_some();
    let _ = ctx.tx.send(ThreadMsg::Ready {
        error: connect_error,
    });
    let start = match ctx.start_rx.recv() {
        Ok(Some(start)) if !failed => start,
        _ => return done(LoadCounters::new(ops), 0, None, None),
    };
    let mut gen = LoadGen::new(
        ctx.cfg.clone(),
        ctx.targets.clone(),
        ctx.share,
        conns.len(),
        ctx.index as u32,
        start,
    );
    for (slot, c) in conns.iter().enumerate() {
        if c.ring_id.is_some() {
            gen.on_conn_up(slot);
        }
    }
    let mut bufs: Vec<Vec<u8>> = conns.iter().map(|_| Vec::with_capacity(64 << 10)).collect();
    let mut broken: Vec<(usize, String)> = Vec::new();
    let mut reconnects = 0u64;
    let mut error: Option<BenchError> = None;

    // Sleep until the start (the generator sends nothing before it anyway).
    let wait = start.saturating_duration_since(Instant::now());
    if !wait.is_zero() {
        std::thread::sleep(wait);
    }
    loop {
        let now = Instant::now();
        if ctx.stop.load(Ordering::Relaxed) {
            gen.stop(now);
        }
        // Reconnect what is down and due.
        for (slot, c) in conns.iter_mut().enumerate() {
            if c.ring_id.is_some() || now < c.next_attempt || gen.is_done(now) {
                continue;
            }
            match connect(&mut ring, c, ctx.source_port, ctx.connect_timeout) {
                Ok(id) => {
                    if slot_of.len() <= id.index() {
                        slot_of.resize(id.index() + 1, usize::MAX);
                    }
                    slot_of[id.index()] = slot;
                    c.ring_id = Some(id);
                    reconnects += 1;
                    gen.on_conn_up(slot);
                }
                Err(e) => {
                    c.failures += 1;
                    if c.failures > ctx.reconnects_max {
                        error = Some(BenchError::ServerLost(format!(
                            "{} failed {} times in a row: {e}",
                            c.addr, c.failures
                        )));
                        break;
                    }
                    c.next_attempt = now
                        + RECONNECT_BACKOFF_FIRST
                            .saturating_mul(1 << c.failures.min(6))
                            .min(RECONNECT_BACKOFF_MAX);
                }
            }
        }
        if error.is_some() {
            break;
        }

        gen.on_timeout(now);
        gen.poll_transmit(now, &mut bufs);
        for (slot, c) in conns.iter().enumerate() {
            let buf = &mut bufs[slot];
            if buf.is_empty() {
                continue;
            }
            let Some(id) = c.ring_id else {
                buf.clear();
                continue;
            };
            match ring.send(id, buf) {
                Ok(()) => buf.clear(),
                Err(SendError::Full) => {} // sent once the ring drains
                Err(e) => broken.push((slot, e.to_string())),
            }
        }
        while let Some(set) = gen.take_interval(now) {
            let _ = ctx.tx.send(ThreadMsg::Interval {
                thread: ctx.index,
                set,
            });
        }
        while let Ok(set) = ctx.recycle_rx.try_recv() {
            gen.recycle(set);
        }
        if gen.is_done(now) {
            break;
        }

        let mut wake = gen.poll_timeout(now);
        for c in &conns {
            if c.ring_id.is_none() {
                wake = wake.min(c.next_attempt);
            }
        }
        let timeout = wake.saturating_duration_since(now).min(POLL_MAX);
        let polled = ring.poll(Some(timeout), &mut |ev| match ev {
            RingEvent::Data { conn, bytes } => {
                let Some(&slot) = slot_of.get(conn.index()) else {
                    return;
                };
                if slot == usize::MAX || broken.iter().any(|(s, _)| *s == slot) {
                    return;
                }
                let c = &mut conns[slot];
                c.assembler.push(bytes);
                let now = Instant::now();
                loop {
                    match c.assembler.next_record() {
                        Ok(Some(rec)) => match Reply::decode(rec) {
                            Ok(reply) => {
                                c.failures = 0;
                                gen.on_reply(reply.xid, reply.outcome, now);
                            }
                            Err(e) => {
                                broken.push((slot, format!("undecodable reply: {e}")));
                                break;
                            }
                        },
                        Ok(None) => break,
                        Err(e) => {
                            broken.push((slot, e.to_string()));
                            break;
                        }
                    }
                }
            }
            RingEvent::Closed { conn, error } => {
                if let Some(&slot) = slot_of.get(conn.index()) {
                    if slot != usize::MAX {
                        slot_of[conn.index()] = usize::MAX;
                        conns[slot].ring_id = None;
                        let why = error.map_or("closed by the server".into(), |e| e.to_string());
                        broken.push((slot, why));
                    }
                }
            }
            RingEvent::Writable { .. } => {}
        });
        if let Err(e) = polled {
            error = Some(e.into());
            break;
        }
        let now = Instant::now();
        for (slot, why) in broken.drain(..) {
            let c = &mut conns[slot];
            if let Some(id) = c.ring_id.take() {
                slot_of[id.index()] = usize::MAX;
                ring.close(id);
            }
            tracing::debug!(conn = %c.addr, %why, "bench connection lost; reconnecting");
            c.assembler.clear();
            bufs[slot].clear();
            c.failures += 1;
            c.next_attempt = now
                + RECONNECT_BACKOFF_FIRST
                    .saturating_mul(1 << c.failures.min(6).saturating_sub(1))
                    .min(RECONNECT_BACKOFF_MAX);
            gen.on_conn_down(slot);
        }
    }
    let measured_end = gen.measured_end();
    let (counters, rest) = gen.finish();
    for set in rest {
        let _ = ctx.tx.send(ThreadMsg::Interval {
            thread: ctx.index,
            set,
        });
    }
    done(counters, reconnects, Some(measured_end), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for (n, parts) in [(10, 3), (1, 2), (256, 2), (7, 7), (0, 4)] {
            let sum: usize = (0..parts).map(|i| share_of(n, parts, i)).sum();
            assert_eq!(sum, n);
            let max = (0..parts).map(|i| share_of(n, parts, i)).max().unwrap();
            let min = (0..parts).map(|i| share_of(n, parts, i)).min().unwrap();
            assert!(max - min <= 1);
        }
    }
}
