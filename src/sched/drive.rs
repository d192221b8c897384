//! The one loop a thread runs: it moves bytes between the ring's connections and a sans-IO
//! protocol user, and tasks from the thread's [`TaskQueue`] into it. The loop knows sockets,
//! record framing and time; what the bytes and the tasks mean is the user's business.
//!
//! Users: the walk ([`crate::scan`]), the bench's load generator ([`crate::bench::engine`]);
//! the same loop is meant for content reads (a file is a task; chunks in flight under a byte
//! budget are calls) and an NFSv4.1 session user (a COMPOUND with its SEQUENCE slot is a call;
//! the slot table is the user's state), each keeping its calls in a
//! [`CallEngine`](super::calls::CallEngine).

use super::conns::{ConnSet, OwnedReply, ReconnectPolicy, ReplyBody};
use super::tasks::{TaskId, TaskQueue};
use super::EngineError;
use crate::rpc::RpcError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an idle thread waits for work before looking again.
const IDLE_POLL: Duration = Duration::from_millis(1);
/// The longest the loop sleeps in `poll` (stop flags and deadlines are re-checked at least
/// this often).
const POLL_MAX: Duration = Duration::from_millis(100);

/// A protocol user as the drive loop sees it: a sans-IO state machine fed events (replies,
/// connections, the clock, tasks) that hands out encoded calls and deadlines.
pub trait Protocol {
    /// What it takes from the thread's [`TaskQueue`].
    type Task;

    /// Connection `slot` is up (it may carry calls).
    fn on_conn_up(&mut self, slot: usize);
    /// Connection `slot` is lost, with its calls in flight.
    fn on_conn_down(&mut self, slot: usize);
    /// Whether it would take another task now.
    fn wants_task(&self) -> bool {
        false
    }
    /// A task from the queue; children and the end of the task are reported to `queue`.
    fn add_task<Q: TaskQueue<Task = Self::Task>>(
        &mut self,
        _id: TaskId,
        _task: Self::Task,
        _queue: &mut Q,
    ) {
    }
    /// A reply arrived: `outcome` is the RPC layer's verdict (result bytes or why not).
    fn on_reply<Q: TaskQueue<Task = Self::Task>>(
        &mut self,
        xid: u32,
        outcome: Result<&[u8], RpcError>,
        now: Instant,
        queue: &mut Q,
    );
    /// A reply received into a buffer of its own (a large one, see [`super::conns`]): a user
    /// that would copy the result bytes elsewhere may keep the buffer instead. By default it
    /// is lent like any other reply.
    fn on_reply_owned<Q: TaskQueue<Task = Self::Task>>(
        &mut self,
        xid: u32,
        reply: OwnedReply,
        now: Instant,
        queue: &mut Q,
    ) {
        self.on_reply(xid, Ok(reply.body()), now, queue);
    }
    /// The time [`Protocol::poll_timeout`] asked for has come (or passed).
    fn on_timeout<Q: TaskQueue<Task = Self::Task>>(&mut self, now: Instant, queue: &mut Q);
    /// Encodes the calls it wants sent into `bufs[slot]`; returns how many.
    fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize;
    /// When it next needs [`Protocol::on_timeout`] without a reply; `None`: never.
    fn poll_timeout(&self, now: Instant) -> Option<Instant>;
    /// Whether work waits until the calls queued so far are handed to the kernel: then the
    /// loop does not sleep, and calls [`Protocol::run_deferred`] right after it has sent them.
    fn has_deferred(&self) -> bool {
        false
    }
    /// The calls are with the kernel: do the work put off until then (a listing page's
    /// entries, written while the server prepares the page after it, instead of before it is
    /// asked for).
    fn run_deferred<Q: TaskQueue<Task = Self::Task>>(&mut self, _now: Instant, _queue: &mut Q) {}
    /// Once per turn of the loop, after the calls went out: publish progress.
    fn after_turn<Q: TaskQueue<Task = Self::Task>>(&mut self, _now: Instant, _queue: &Q) {}
    /// The loop ended (whatever the reason): hand over what is held (e.g. flush output).
    fn finish(&mut self) {}
    /// Whether it holds no work: nothing held, queued or in flight (the loop ends when the
    /// queue is exhausted too).
    fn is_idle(&self, now: Instant) -> bool;
    /// The run is being stopped: start nothing new. Returns whether the loop should end at
    /// once (`false`: it drains, and ends when [`Protocol::is_idle`]).
    fn stop(&mut self, _now: Instant) -> bool {
        true
    }
}

/// What the loop shares with the rest of the run.
pub struct DriveContext<'a> {
    pub policy: &'a ReconnectPolicy,
    /// Set by the caller (signal, end of run).
    pub stop: &'a AtomicBool,
    /// Set when some thread cannot go on: everyone ends at once.
    pub failed: &'a AtomicBool,
    /// Reconnects are added here as they happen (progress display).
    pub reconnects: Option<&'a AtomicU64>,
}

/// Runs `proto` over `conns` until it is idle and `queue` exhausted, the run is stopped, or
/// a connection gives up (the error).
pub fn drive<P, Q>(
    conns: &mut ConnSet,
    proto: &mut P,
    queue: &mut Q,
    cx: &DriveContext<'_>,
) -> Result<(), EngineError>
where
    P: Protocol,
    Q: TaskQueue<Task = P::Task>,
{
    // The loop is a closure so that whatever ends it, the user hands over what it holds.
    let mut run = || -> Result<(), EngineError> {
        let mut reconnects_reported = conns.reconnects();
        let mut stopping = false;
        loop {
            if cx.failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            let now = Instant::now();
            if !stopping && cx.stop.load(Ordering::Relaxed) {
                stopping = true;
                if proto.stop(now) {
                    return Ok(());
                }
            }
            let finished = proto.is_idle(now) && queue.is_exhausted();
            if !finished {
                conns.connect_due(now, cx.policy, |slot| proto.on_conn_up(slot))?;
            }
            if let Some(r) = cx.reconnects {
                let n = conns.reconnects();
                if n != reconnects_reported {
                    r.fetch_add(n - reconnects_reported, Ordering::Relaxed);
                    reconnects_reported = n;
                }
            }
            if !stopping {
                while proto.wants_task() {
                    match queue.take() {
                        Some((id, t)) => proto.add_task(id, t, queue),
                        None => break,
                    }
                }
            }
            if proto.poll_timeout(now).is_some_and(|t| t <= now) {
                proto.on_timeout(now, queue);
            }
            proto.poll_transmit(now, conns.send_bufs());
            conns.flush();
            proto.after_turn(now, queue);

            let idle = proto.is_idle(now);
            if idle && (stopping || queue.is_exhausted()) {
                return Ok(());
            }
            let deferred = proto.has_deferred();
            let timeout = if deferred {
                // Only hand the calls to the kernel (and take what has arrived): the deferred
                // work runs while they travel.
                Duration::ZERO
            } else if idle {
                // Other threads may still make work for this one.
                IDLE_POLL
            } else {
                let mut wake = now + POLL_MAX;
                if let Some(t) = proto.poll_timeout(now) {
                    wake = wake.min(t);
                }
                if let Some(t) = conns.next_attempt_min() {
                    wake = wake.min(t);
                }
                wake.saturating_duration_since(now)
            };
            conns.poll(timeout, |xid, body, now| match body {
                ReplyBody::Lent(outcome) => proto.on_reply(xid, outcome, now, queue),
                ReplyBody::Owned(reply) => proto.on_reply_owned(xid, reply, now, queue),
            })?;
            conns.take_broken(Instant::now(), |slot| proto.on_conn_down(slot));
            if deferred {
                proto.run_deferred(Instant::now(), queue);
            }
        }
    };
    let result = run();
    proto.finish();
    result
}
