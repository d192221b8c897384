//! A scan: the walk ([`crate::walker`]) run on the engine ([`crate::sched`]), its entries
//! handed to an [`EntrySink`] (the output batchers, or the bench's sample collector).
//!
//! This is where the layers meet: the engine knows threads, connections, calls and tasks; the
//! walker knows NFS; the sink knows records. [`WalkThread`] is the walk as the engine's
//! [`Protocol`]: it owns one thread's [`Walker`] and sink, counts the lookup backlog over all
//! threads, and publishes progress.

use crate::output::Batcher;
use crate::path_error::PathError;
use crate::record::{EntryContent, EntryRef};
use crate::ring::Backend;
use crate::rpc::RpcError;
use crate::sched::{
    self, EngineError, EngineOptions, Protocol, RateLimiter, TaskId, TaskQueue, TaskSource,
    ThreadSetup,
};
use crate::walker::{ObjectRef, Task, VisitedDirs, WalkConfig, WalkSink, WalkStats, Walker};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a thread adds its figures to the shared progress counters: often enough for a
/// progress line, rarely enough that the threads do not contend for the counters' cache lines.
const PUBLISH_PERIOD: Duration = Duration::from_millis(10);
/// How long a thread whose listings wait for the lookup backlog (and has no call in flight to
/// wake it) sleeps before looking again.
const PARKED_POLL: Duration = Duration::from_millis(1);

/// Live figures for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub entries: AtomicU64,
    pub errors: AtomicU64,
    pub inflight: AtomicU64,
    /// Tasks created and not yet finished (queued or being worked on).
    pub outstanding: AtomicUsize,
    pub reconnects: AtomicU64,
    /// Calls sent (for the rate shown beside `--max-rate`).
    pub calls: AtomicU64,
}

/// What a finished (or stopped) scan reports.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub stats: WalkStats,
    pub backend: Backend,
    pub threads: usize,
    pub connections: usize,
    pub reconnects: u64,
    pub elapsed: Duration,
    /// False when the scan was stopped (signal) or failed before the walk was done.
    pub completed: bool,
    /// The first entry's arrival, from the scan's start.
    pub first_entry_after: Option<Duration>,
}

/// Where a scanning thread's entries and errors go.
pub trait EntrySink: Send {
    /// Whether [`EntrySink::object`] is wanted (see [`WalkSink::WANTS_OBJECTS`]).
    const WANTS_OBJECTS: bool = false;
    fn entry(&mut self, e: &EntryRef<'_>);
    /// An entry with what reading its contents found (`--checksum`, `--file-type`).
    fn entry_with_content(&mut self, e: &EntryRef<'_>, _content: &EntryContent<'_>) {
        self.entry(e);
    }
    fn error(&mut self, e: PathError);
    fn object(&mut self, _o: &ObjectRef<'_>) {}
    /// A directory's listing ended with `entries` names (`scan --big-dirs`).
    fn dir_listed(&mut self, _path: &[u8], _dir: Option<(u64, u64)>, _entries: u64) {}
    /// Task `id` finished: every entry it produced has been handed over (see
    /// [`crate::sched::tasks`] on durability).
    fn task_finished(&mut self, _id: TaskId) {}
    /// The thread's walk holds no work now (it waits for tasks): send what is held, so no
    /// finished task waits in a half-full batch for its durability.
    fn idle(&mut self) {}
    /// The thread is done: send everything held.
    fn flush(&mut self) {}
}

impl EntrySink for Batcher {
    #[inline]
    fn entry(&mut self, e: &EntryRef<'_>) {
        Batcher::entry(self, e);
    }
    #[inline]
    fn entry_with_content(&mut self, e: &EntryRef<'_>, content: &EntryContent<'_>) {
        Batcher::entry_with_content(self, e, content);
    }
    fn error(&mut self, e: PathError) {
        Batcher::error(self, e);
    }
    fn dir_listed(&mut self, path: &[u8], dir: Option<(u64, u64)>, entries: u64) {
        Batcher::dir_listed(self, path, dir, entries);
    }
    fn task_finished(&mut self, id: TaskId) {
        Batcher::task_finished(self, id.0);
    }
    fn idle(&mut self) {
        Batcher::flush(self);
    }
    fn flush(&mut self) {
        Batcher::flush(self);
    }
}

/// What every walk thread of a scan shares.
pub struct WalkSetup {
    pub walk: Arc<WalkConfig>,
    pub visited: Arc<VisitedDirs>,
    /// `--max-rate`: calls per second of the whole scan.
    pub rate: Option<Arc<RateLimiter>>,
}

/// Counters the walk threads of one scan share.
struct WalkShared {
    /// Lookup batches queued or being worked on (`getattr` mode's backlog), over all threads.
    lookup_batches: AtomicUsize,
    first_entry_ns: AtomicU64,
    start: Instant,
    progress: Arc<Progress>,
}

/// A walk state machine of one thread, as [`WalkThread`] drives it: the v3 [`Walker`] or the
/// NFSv4.1 [`crate::walk4::Walker4`].
pub trait WalkMachine: Send {
    fn on_conn_up(&mut self, conn: usize);
    fn on_conn_down(&mut self, conn: usize);
    fn wants_task(&self) -> bool;
    fn add_task(&mut self, id: TaskId, task: Task, sink: &mut impl WalkSink);
    fn on_reply(
        &mut self,
        xid: u32,
        outcome: Result<&[u8], RpcError>,
        now: Instant,
        sink: &mut impl WalkSink,
    );
    fn on_timeout(&mut self, now: Instant, sink: &mut impl WalkSink);
    /// Lookup batches outstanding over all threads (v3 `getattr` mode's backlog).
    fn set_lookup_backlog(&mut self, _batches: usize) {}
    fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize;
    fn poll_timeout(&self, now: Instant) -> Option<Instant>;
    /// Whether listings wait for the lookup backlog to shrink.
    fn has_parked(&self) -> bool {
        false
    }
    fn inflight(&self) -> usize;
    fn calls_sent(&self) -> u64;
    fn is_idle(&self) -> bool;
    fn take_stats(&mut self) -> WalkStats;
    /// Whether listing pages wait for their next calls to go out (see
    /// [`Protocol::has_deferred`]).
    fn has_deferred(&self) -> bool;
    fn run_deferred(&mut self, sink: &mut impl WalkSink);
    /// Whether the walker has session set-up to send (NFSv4.1): it goes out even while the
    /// thread holds its walk back, as other calls of the thread wait for it.
    fn needs_setup(&self) -> bool {
        false
    }
}

macro_rules! walk_machine {
    ($t:ty, { $($extra:item)* }) => {
        impl WalkMachine for $t {
            fn on_conn_up(&mut self, conn: usize) {
                <$t>::on_conn_up(self, conn)
            }
            fn on_conn_down(&mut self, conn: usize) {
                <$t>::on_conn_down(self, conn)
            }
            fn wants_task(&self) -> bool {
                <$t>::wants_task(self)
            }
            fn add_task(&mut self, id: TaskId, task: Task, sink: &mut impl WalkSink) {
                <$t>::add_task(self, id, task, sink)
            }
            #[inline]
            fn on_reply(
                &mut self,
                xid: u32,
                outcome: Result<&[u8], RpcError>,
                now: Instant,
                sink: &mut impl WalkSink,
            ) {
                <$t>::on_reply(self, xid, outcome, now, sink)
            }
            fn on_timeout(&mut self, now: Instant, sink: &mut impl WalkSink) {
                <$t>::on_timeout(self, now, sink)
            }
            fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize {
                <$t>::poll_transmit(self, now, bufs)
            }
            fn poll_timeout(&self, now: Instant) -> Option<Instant> {
                <$t>::poll_timeout(self, now)
            }
            fn inflight(&self) -> usize {
                <$t>::inflight(self)
            }
            fn calls_sent(&self) -> u64 {
                <$t>::calls_sent(self)
            }
            fn is_idle(&self) -> bool {
                <$t>::is_idle(self)
            }
            fn take_stats(&mut self) -> WalkStats {
                <$t>::take_stats(self)
            }
            fn has_deferred(&self) -> bool {
                <$t>::has_deferred(self)
            }
            fn run_deferred(&mut self, sink: &mut impl WalkSink) {
                <$t>::run_deferred(self, sink)
            }
            $($extra)*
        }
    };
}

walk_machine!(Walker, {
    fn set_lookup_backlog(&mut self, batches: usize) {
        Walker::set_lookup_backlog(self, batches)
    }
    fn has_parked(&self) -> bool {
        Walker::has_parked(self)
    }
});
walk_machine!(crate::walk4::Walker4, {
    fn needs_setup(&self) -> bool {
        crate::walk4::Walker4::needs_setup(self)
    }
});

/// The walk of one thread as the engine's protocol user.
pub struct WalkThread<O, W = Walker> {
    walker: W,
    out: O,
    shared: Arc<WalkShared>,
    entries: u64,
    errors: u64,
    /// What was last added to the progress counters: entries, errors, calls in flight, calls.
    reported: (u64, u64, usize, u64),
    next_publish: Instant,
}

/// The walker's sink for one event: entries and errors to the output, tasks to the queue.
struct ThreadSink<'a, Q, O> {
    queue: &'a mut Q,
    out: &'a mut O,
    shared: &'a WalkShared,
    entries: &'a mut u64,
    errors: &'a mut u64,
}

impl<Q: TaskQueue<Task = Task>, O: EntrySink> WalkSink for ThreadSink<'_, Q, O> {
    const WANTS_OBJECTS: bool = O::WANTS_OBJECTS;

    #[inline]
    fn entry(&mut self, e: &EntryRef<'_>) {
        if *self.entries == 0 {
            let ns = self.shared.start.elapsed().as_nanos().max(1) as u64;
            let _ = self.shared.first_entry_ns.compare_exchange(
                0,
                ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        *self.entries += 1;
        self.out.entry(e);
    }

    fn spawn(&mut self, parent: TaskId, task: Task) {
        if matches!(task, Task::Lookups(_)) {
            self.shared.lookup_batches.fetch_add(1, Ordering::Relaxed);
        }
        self.queue.push_child(parent, task);
    }

    fn task_done(&mut self, id: TaskId, lookups: bool) {
        if lookups {
            self.shared.lookup_batches.fetch_sub(1, Ordering::Relaxed);
        }
        self.out.task_finished(id);
        self.queue.finish(id);
    }

    fn error(&mut self, e: PathError) {
        *self.errors += 1;
        self.out.error(e);
    }

    fn object(&mut self, o: &ObjectRef<'_>) {
        self.out.object(o);
    }

    fn dir_listed(&mut self, path: &[u8], dir: Option<(u64, u64)>, entries: u64) {
        self.out.dir_listed(path, dir, entries);
    }
}

impl<O: EntrySink, W: WalkMachine> WalkThread<O, W> {
    /// The thread's sink (a protocol user running beside the walk reaches its own state there).
    pub fn out_mut(&mut self) -> &mut O {
        &mut self.out
    }

    pub fn out(&self) -> &O {
        &self.out
    }

    /// See [`WalkMachine::needs_setup`].
    pub fn walker_needs_setup(&self) -> bool {
        self.walker.needs_setup()
    }

    /// The walker and, for one event, its sink over this thread's output and `queue`.
    fn parts<'a, Q: TaskQueue<Task = Task>>(
        &'a mut self,
        queue: &'a mut Q,
    ) -> (&'a mut W, ThreadSink<'a, Q, O>) {
        let sink = ThreadSink {
            queue,
            out: &mut self.out,
            shared: &self.shared,
            entries: &mut self.entries,
            errors: &mut self.errors,
        };
        (&mut self.walker, sink)
    }
}

impl<O: EntrySink, W: WalkMachine> Protocol for WalkThread<O, W> {
    type Task = Task;

    fn on_conn_up(&mut self, slot: usize) {
        self.walker.on_conn_up(slot);
    }

    fn on_conn_down(&mut self, slot: usize) {
        self.walker.on_conn_down(slot);
    }

    fn wants_task(&self) -> bool {
        self.walker.wants_task()
    }

    fn add_task<Q: TaskQueue<Task = Task>>(&mut self, id: TaskId, task: Task, queue: &mut Q) {
        let (walker, mut sink) = self.parts(queue);
        walker.add_task(id, task, &mut sink);
    }

    #[inline]
    fn on_reply<Q: TaskQueue<Task = Task>>(
        &mut self,
        xid: u32,
        outcome: Result<&[u8], RpcError>,
        now: Instant,
        queue: &mut Q,
    ) {
        let (walker, mut sink) = self.parts(queue);
        walker.on_reply(xid, outcome, now, &mut sink);
    }

    fn on_timeout<Q: TaskQueue<Task = Task>>(&mut self, now: Instant, queue: &mut Q) {
        let (walker, mut sink) = self.parts(queue);
        walker.on_timeout(now, &mut sink);
    }

    fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize {
        self.walker
            .set_lookup_backlog(self.shared.lookup_batches.load(Ordering::Relaxed));
        self.walker.poll_transmit(now, bufs)
    }

    fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if self.walker.has_parked() && self.walker.inflight() == 0 {
            // Nothing will wake this thread but the backlog shrinking on other threads.
            return Some(now + PARKED_POLL);
        }
        self.walker.poll_timeout(now)
    }

    fn has_deferred(&self) -> bool {
        self.walker.has_deferred()
    }

    fn run_deferred<Q: TaskQueue<Task = Task>>(&mut self, _now: Instant, queue: &mut Q) {
        let (walker, mut sink) = self.parts(queue);
        walker.run_deferred(&mut sink);
    }

    fn after_turn<Q: TaskQueue<Task = Task>>(&mut self, now: Instant, queue: &Q) {
        if self.walker.is_idle() {
            self.out.idle();
        }
        if now >= self.next_publish {
            self.next_publish = now + PUBLISH_PERIOD;
            self.publish(queue.outstanding());
        }
    }

    fn is_idle(&self, _now: Instant) -> bool {
        self.walker.is_idle()
    }

    fn finish(&mut self) {
        self.out.flush();
        self.publish(self.shared.progress.outstanding.load(Ordering::Relaxed));
        let p = &self.shared.progress;
        p.inflight
            .fetch_sub(self.reported.2 as u64, Ordering::Relaxed);
        self.reported.2 = 0;
    }
}

impl<O: EntrySink, W: WalkMachine> WalkThread<O, W> {
    /// Adds what changed since the last call to the progress counters (relaxed: they are
    /// read by the progress line only).
    fn publish(&mut self, outstanding: usize) {
        let inflight = self.walker.inflight();
        let calls = self.walker.calls_sent();
        let now = (self.entries, self.errors, inflight, calls);
        if now == self.reported {
            return;
        }
        let p = &self.shared.progress;
        p.entries
            .fetch_add(self.entries - self.reported.0, Ordering::Relaxed);
        p.errors
            .fetch_add(self.errors - self.reported.1, Ordering::Relaxed);
        if inflight >= self.reported.2 {
            p.inflight
                .fetch_add((inflight - self.reported.2) as u64, Ordering::Relaxed);
        } else {
            p.inflight
                .fetch_sub((self.reported.2 - inflight) as u64, Ordering::Relaxed);
        }
        p.calls
            .fetch_add(calls - self.reported.3, Ordering::Relaxed);
        p.outstanding.store(outstanding, Ordering::Relaxed);
        self.reported = now;
    }
}

/// Runs the walk of `source`'s tasks over `opts.threads` threads to completion (or until
/// `stop` is set). Each thread's entries and errors go to the sink `make_out` builds for it;
/// the sinks are returned, flushed, for what they collected (dropping them closes a
/// batcher's channel).
pub fn run<S, O, F>(
    opts: &EngineOptions,
    setup: &WalkSetup,
    addrs: &[SocketAddr],
    source: &S,
    make_out: F,
    progress: &Arc<Progress>,
    stop: &AtomicBool,
) -> Result<(ScanReport, Vec<O>), EngineError>
where
    S: TaskSource<Task = Task>,
    O: EntrySink,
    F: Fn(usize) -> O + Sync,
{
    let make_walker = |t: &ThreadSetup| {
        Walker::new(setup.walk.clone(), setup.visited.clone(), t.conns, t.index)
            .with_rate_limit(setup.rate.clone())
    };
    run_with(opts, addrs, source, make_walker, make_out, progress, stop)
}

/// [`run`] with the walk state machine of each thread built by `make_walker` (the NFSv4.1
/// walk, [`crate::walk4::Walker4`], is the other one).
pub fn run_with<S, O, W, M, F>(
    opts: &EngineOptions,
    addrs: &[SocketAddr],
    source: &S,
    make_walker: M,
    make_out: F,
    progress: &Arc<Progress>,
    stop: &AtomicBool,
) -> Result<(ScanReport, Vec<O>), EngineError>
where
    S: TaskSource<Task = Task>,
    O: EntrySink,
    W: WalkMachine,
    M: Fn(&ThreadSetup) -> W + Sync,
    F: Fn(usize) -> O + Sync,
{
    run_wrapped(
        opts,
        addrs,
        source,
        make_walker,
        make_out,
        |w, _| w,
        progress,
        stop,
    )
}

/// [`run_with`], with each thread's walk wrapped by `wrap` into a protocol that runs other
/// calls beside it on the same engine (content reads: [`crate::content::scan`]; its walker
/// keeps the XID's top bit clear for the wrapper's calls).
#[allow(clippy::too_many_arguments)]
pub fn run_wrapped<S, O, W, M, F, P, X>(
    opts: &EngineOptions,
    addrs: &[SocketAddr],
    source: &S,
    make_walker: M,
    make_out: F,
    wrap: X,
    progress: &Arc<Progress>,
    stop: &AtomicBool,
) -> Result<(ScanReport, Vec<O>), EngineError>
where
    S: TaskSource<Task = Task>,
    O: EntrySink,
    W: WalkMachine,
    M: Fn(&ThreadSetup) -> W + Sync,
    F: Fn(usize) -> O + Sync,
    P: Protocol<Task = Task> + Into<WalkThread<O, W>> + Send,
    X: Fn(WalkThread<O, W>, &ThreadSetup) -> P + Sync,
{
    let shared = Arc::new(WalkShared {
        lookup_batches: AtomicUsize::new(0),
        first_entry_ns: AtomicU64::new(0),
        start: Instant::now(),
        progress: progress.clone(),
    });
    let make = |t: ThreadSetup| {
        let walk = WalkThread {
            walker: make_walker(&t),
            out: make_out(t.index),
            shared: shared.clone(),
            entries: 0,
            errors: 0,
            reported: (0, 0, 0, 0),
            next_publish: Instant::now(),
        };
        wrap(walk, &t)
    };
    let run = sched::run(opts, addrs, source, make, stop, Some(&progress.reconnects))?;
    let mut stats = WalkStats::default();
    let mut sinks = Vec::with_capacity(run.protocols.len());
    for p in run.protocols {
        let mut p: WalkThread<O, W> = p.into();
        stats.merge(&p.walker.take_stats());
        sinks.push(p.out);
    }
    let first = shared.first_entry_ns.load(Ordering::Relaxed);
    let report = ScanReport {
        stats,
        backend: run.backend,
        threads: run.threads,
        connections: run.connections,
        reconnects: run.reconnects,
        elapsed: shared.start.elapsed(),
        completed: run.completed,
        first_entry_after: (first > 0).then(|| Duration::from_nanos(first)),
    };
    Ok((report, sinks))
}
