//! One scanning thread: its ring, its connections, its walker, and the loop that moves bytes
//! between them. The loop knows sockets and record framing; what the bytes mean is the
//! walker's business.

use super::conns::{ConnSet, ReconnectPolicy};
use super::{EngineError, Shared};
use crate::output::Batcher;
use crate::record::EntryRef;
use crate::ring::{Backend, Ring, RingConfig};
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

pub(crate) struct WorkerContext {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    pub backend: Backend,
    pub ring: RingConfig,
    /// One address per connection of this thread.
    pub addrs: Vec<SocketAddr>,
    pub policy: ReconnectPolicy,
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

struct ThreadSink<'a> {
    deque: &'a Deque<Task>,
    shared: &'a Shared,
    batcher: &'a mut Batcher,
    entries: u64,
    errors: u64,
}

impl WalkSink for ThreadSink<'_> {
    fn dir_listed(&mut self, path: &[u8], dir: Option<(u64, u64)>, entries: u64) {
        self.batcher.dir_listed(path, dir, entries);
    }

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
    let ring = match Ring::new(ctx.backend, &ctx.ring) {
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
    let mut conns = ConnSet::new(ring, &ctx.addrs, Instant::now());
    let mut sink = ThreadSink {
        deque: &ctx.deque,
        shared: &shared,
        batcher: &mut ctx.batcher,
        entries: 0,
        errors: 0,
    };
    let mut reported = (0u64, 0u64, 0usize);
    let mut reconnects_reported = 0;

    loop {
        if shared.stop.load(Ordering::Relaxed) || shared.failed.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();

        // (Re)connect what is down and due.
        if let Err(e) = conns.connect_due(now, &ctx.policy, |slot| walker.on_conn_up(slot)) {
            fail(&shared, e);
            break;
        }
        if conns.reconnects() != reconnects_reported {
            shared
                .progress
                .reconnects
                .fetch_add(conns.reconnects() - reconnects_reported, Ordering::Relaxed);
            reconnects_reported = conns.reconnects();
        }
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
        walker.poll_transmit(now, conns.send_bufs());
        conns.flush();

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
            if conns.all_down() {
                let next = conns.next_attempt_min().unwrap_or(now);
                t = t.min(next.saturating_duration_since(now));
            }
            t
        };
        let polled = conns.poll(timeout, |xid, outcome, now| {
            walker.on_reply(xid, outcome, now, &mut sink)
        });
        if let Err(e) = polled {
            fail(&shared, e.into());
            break;
        }
        conns.take_broken(Instant::now(), |slot| walker.on_conn_down(slot));
    }
    ctx.batcher.flush();
    let p = &shared.progress;
    p.inflight.fetch_sub(reported.2 as u64, Ordering::Relaxed);
    result.stats = walker.take_stats();
    result.reconnects = conns.reconnects();
    result
}
