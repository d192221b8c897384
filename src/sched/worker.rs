//! One scanning thread: its ring, its connections, its walker, and the loop that moves bytes
//! between them. The loop knows sockets and record framing; what the bytes mean is the
//! walker's business.

use super::{EngineError, Shared};
use crate::client::{connect_tcp, SourcePort};
use crate::output::Batcher;
use crate::record::EntryRef;
use crate::ring::{Backend, ConnId, Ring, RingConfig, RingEvent, SendError};
use crate::rpc::{RecordAssembler, Reply, DEFAULT_RECORD_BYTES_MAX};
use crate::walker::{PathError, Task, VisitedDirs, WalkConfig, WalkSink, WalkStats, Walker};
use crossbeam_deque::{Steal, Worker as Deque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an idle thread waits for work before looking again.
const IDLE_POLL: Duration = Duration::from_millis(1);
/// The longest a busy loop sleeps in `poll` (deadlines are re-checked at least this often).
const BUSY_POLL_MAX: Duration = Duration::from_millis(100);
const RECONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

pub(crate) struct WorkerContext {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    pub backend: Backend,
    pub ring: RingConfig,
    /// One address per connection of this thread.
    pub addrs: Vec<SocketAddr>,
    pub source_port: SourcePort,
    pub connect_timeout: Duration,
    pub reconnects_max: u32,
    pub walk: Arc<WalkConfig>,
    pub visited: Arc<VisitedDirs>,
    pub shared: Arc<Shared>,
    pub deque: Deque<Task>,
    pub batcher: Batcher,
}

pub(crate) struct WorkerResult {
    pub stats: WalkStats,
    pub reconnects: u64,
}

/// io_uring where the kernel allows it, epoll otherwise (containers often forbid io_uring).
pub(crate) fn probe_backend(cfg: &RingConfig) -> Backend {
    match Ring::open_auto(cfg) {
        Ok(r) => r.backend(),
        Err(_) => Backend::Epoll,
    }
}

struct Conn {
    addr: SocketAddr,
    ring_id: Option<ConnId>,
    assembler: RecordAssembler,
    /// Encoded calls not yet accepted by the ring.
    out: Vec<u8>,
    failures: u32,
    next_attempt: Instant,
}

struct ThreadSink<'a> {
    deque: &'a Deque<Task>,
    shared: &'a Shared,
    batcher: &'a mut Batcher,
    entries: u64,
    errors: u64,
}

impl WalkSink for ThreadSink<'_> {
    #[inline]
    fn entry(&mut self, e: &EntryRef<'_>) {
        if self.entries == 0 {
            let ns = self.shared.start.elapsed().as_nanos().max(1) as u64;
            let _ = self.shared.first_entry_ns.compare_exchange(
                0,
                ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        self.entries += 1;
        self.batcher.entry(e);
    }

    fn spawn(&mut self, task: Task) {
        let p = &self.shared.progress;
        p.outstanding.fetch_add(1, Ordering::SeqCst);
        if matches!(task, Task::Lookups(_)) {
            p.lookup_batches.fetch_add(1, Ordering::Relaxed);
        }
        self.deque.push(task);
    }

    fn task_done(&mut self, lookups: bool) {
        let p = &self.shared.progress;
        if lookups {
            p.lookup_batches.fetch_sub(1, Ordering::Relaxed);
        }
        p.outstanding.fetch_sub(1, Ordering::SeqCst);
    }

    fn error(&mut self, e: PathError) {
        self.errors += 1;
        self.batcher.error(e);
    }
}

fn find_task(deque: &Deque<Task>, shared: &Shared, index: usize) -> Option<Task> {
    if let Some(t) = deque.pop() {
        return Some(t);
    }
    loop {
        let mut retry = false;
        match shared.injector.steal_batch_and_pop(deque) {
            Steal::Success(t) => return Some(t),
            Steal::Retry => retry = true,
            Steal::Empty => {}
        }
        let n = shared.stealers.len();
        for k in 1..n {
            match shared.stealers[(index + k) % n].steal() {
                Steal::Success(t) => return Some(t),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
        if !retry {
            return None;
        }
    }
}

fn fail(shared: &Shared, e: EngineError) {
    shared.failed.store(true, Ordering::SeqCst);
    let mut f = shared.failure.lock().unwrap_or_else(|e| e.into_inner());
    if f.is_none() {
        *f = Some(e);
    }
}

pub(crate) fn run(mut ctx: WorkerContext) -> WorkerResult {
    if let Some(core) = ctx.core {
        core_affinity::set_for_current(core);
    }
    let shared = ctx.shared.clone();
    let mut result = WorkerResult {
        stats: WalkStats::default(),
        reconnects: 0,
    };
    let mut ring = match Ring::new(ctx.backend, &ctx.ring) {
        Ok(r) => r,
        Err(e) => {
            fail(&shared, e.into());
            return result;
        }
    };
    let mut walker = Walker::new(
        ctx.walk.clone(),
        ctx.visited.clone(),
        ctx.addrs.len(),
        (ctx.index as u32 & 0xF) << 28,
    );
    let now = Instant::now();
    let mut conns: Vec<Conn> = ctx
        .addrs
        .iter()
        .map(|&addr| Conn {
            addr,
            ring_id: None,
            assembler: RecordAssembler::new(DEFAULT_RECORD_BYTES_MAX),
            out: Vec::with_capacity(64 << 10),
            failures: 0,
            next_attempt: now,
        })
        .collect();
    // ConnId index -> connection slot.
    let mut slot_of: Vec<usize> = Vec::new();
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); conns.len()];
    let mut broken: Vec<(usize, String)> = Vec::new();
    let mut sink = ThreadSink {
        deque: &ctx.deque,
        shared: &shared,
        batcher: &mut ctx.batcher,
        entries: 0,
        errors: 0,
    };
    let mut reported = (0u64, 0u64, 0usize);
    let mut ever_connected = false;

    loop {
        if shared.stop.load(Ordering::Relaxed) || shared.failed.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();

        // (Re)connect what is down and due.
        for (slot, c) in conns.iter_mut().enumerate() {
            if c.ring_id.is_some() || now < c.next_attempt {
                continue;
            }
            if c.failures > ctx.reconnects_max {
                fail(
                    &shared,
                    EngineError::ServerLost(format!(
                        "{} failed {} times in a row",
                        c.addr, c.failures
                    )),
                );
                break;
            }
            let attempt = connect_tcp(c.addr, ctx.source_port, ctx.connect_timeout)
                .map_err(|source| EngineError::Connect {
                    addr: c.addr,
                    source,
                })
                .and_then(|(s, _)| ring.add_conn(s).map_err(EngineError::from));
            match attempt {
                Ok(id) => {
                    if slot_of.len() <= id.index() {
                        slot_of.resize(id.index() + 1, usize::MAX);
                    }
                    slot_of[id.index()] = slot;
                    c.ring_id = Some(id);
                    if ever_connected || c.failures > 0 {
                        result.reconnects += 1;
                        shared.progress.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    walker.on_conn_up(slot);
                }
                Err(e) => {
                    c.failures += 1;
                    if !ever_connected && c.failures > ctx.reconnects_max.min(2) {
                        fail(&shared, e);
                        break;
                    }
                    let backoff = RECONNECT_BACKOFF_FIRST
                        .saturating_mul(1 << c.failures.min(6))
                        .min(RECONNECT_BACKOFF_MAX);
                    c.next_attempt = now + backoff;
                }
            }
        }
        ever_connected |= conns.iter().any(|c| c.ring_id.is_some());
        if shared.failed.load(Ordering::Relaxed) {
            break;
        }

        while walker.wants_task() {
            match find_task(&ctx.deque, &shared, ctx.index) {
                Some(t) => walker.add_task(t, &mut sink),
                None => break,
            }
        }
        if walker.poll_timeout().is_some_and(|t| t <= now) {
            walker.on_timeout(now, &mut sink);
        }

        walker.set_lookup_backlog(shared.progress.lookup_batches.load(Ordering::Relaxed));
        walker.poll_transmit(now, &mut bufs);
        for (slot, c) in conns.iter_mut().enumerate() {
            if !bufs[slot].is_empty() {
                c.out.extend_from_slice(&bufs[slot]);
                bufs[slot].clear();
            }
            let Some(id) = c.ring_id else { continue };
            if c.out.is_empty() {
                continue;
            }
            match ring.send(id, &c.out) {
                Ok(()) => c.out.clear(),
                Err(SendError::Full) => {} // sent after the ring drains
                Err(e) => broken.push((slot, e.to_string())),
            }
        }

        // Publish progress now and then (relaxed counters, read by the progress line).
        let inflight = walker.inflight();
        if (sink.entries, sink.errors, inflight) != reported {
            let p = &shared.progress;
            p.entries
                .fetch_add(sink.entries - reported.0, Ordering::Relaxed);
            p.errors
                .fetch_add(sink.errors - reported.1, Ordering::Relaxed);
            if inflight >= reported.2 {
                p.inflight
                    .fetch_add((inflight - reported.2) as u64, Ordering::Relaxed);
            } else {
                p.inflight
                    .fetch_sub((reported.2 - inflight) as u64, Ordering::Relaxed);
            }
            reported = (sink.entries, sink.errors, inflight);
        }

        if walker.is_idle() && shared.progress.outstanding.load(Ordering::SeqCst) == 0 {
            break;
        }

        let timeout = if walker.is_idle() || (walker.has_parked() && walker.inflight() == 0) {
            IDLE_POLL
        } else {
            let mut t = BUSY_POLL_MAX;
            if let Some(d) = walker.poll_timeout() {
                t = t.min(d.saturating_duration_since(now));
            }
            if conns.iter().all(|c| c.ring_id.is_none()) {
                let next = conns.iter().map(|c| c.next_attempt).min().unwrap_or(now);
                t = t.min(next.saturating_duration_since(now));
            }
            t
        };
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
                                walker.on_reply(reply.xid, reply.outcome, now, &mut sink);
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
            fail(&shared, e.into());
            break;
        }
        let now = Instant::now();
        for (slot, why) in broken.drain(..) {
            let c = &mut conns[slot];
            if let Some(id) = c.ring_id.take() {
                slot_of[id.index()] = usize::MAX;
                ring.close(id);
            }
            tracing::debug!(conn = %c.addr, %why, "connection lost; reconnecting");
            c.assembler.clear();
            c.out.clear();
            c.failures += 1;
            c.next_attempt = now
                + RECONNECT_BACKOFF_FIRST
                    .saturating_mul(1 << c.failures.min(6).saturating_sub(1))
                    .min(RECONNECT_BACKOFF_MAX);
            walker.on_conn_down(slot);
        }
    }
    ctx.batcher.flush();
    let p = &shared.progress;
    p.inflight.fetch_sub(reported.2 as u64, Ordering::Relaxed);
    result.stats = walker.take_stats();
    result
}
