//! The walk of one thread as a state machine (sans-IO).
//!
//! It is fed events — [`Walker::on_reply`], [`Walker::on_conn_down`], [`Walker::on_timeout`] —
//! with the time passed in, and asked for work: [`Walker::poll_transmit`] encodes the calls it
//! wants sent into per-connection buffers, [`Walker::poll_timeout`] tells when it next needs
//! the clock. Entries, new tasks and per-path errors leave through a [`WalkSink`]. No socket,
//! thread or clock is touched here, so the whole walk is testable with canned replies.
//!
//! Its calls live in the thread's [`CallEngine`] (slab, XIDs, expiry, retries, JUKEBOX waits,
//! resends); this module decides what a call means and what its reply becomes. Listings are in
//! [`listing`], LOOKUP/GETATTR/READLINK and children in [`lookups`].

pub(crate) mod listing;
mod lookups;

use super::config::{
    Mode, WalkConfig, FIRST_MAXCOUNT_BYTES, JUKEBOX_WAITS_MAX, LOOKUP_BACKLOG_BATCHES_MAX,
};
use super::deferred::DeferredPages;
use super::filter::VisitedDirs;
use super::stats::WalkStats;
use super::task::Task;
use crate::path_error::PathError;
use crate::record::{join_path, EntryAttrs, EntryRef, EntryType};
use crate::rpc::nfs3::{
    encode_nfs3_call, proc3, Fattr3, FileHandle, GetattrArgs, LookupArgs, NfsReplyError, Nfsstat3,
    ReaddirArgs, ReaddirPlusArgs, ReadlinkArgs,
};
use crate::rpc::RpcError;
use crate::sched::{CallEngine, CallPolicy, Queued, RateLimiter, TaskId};
use listing::Listing;
use lookups::LookupGroup;
use slab::Slab;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An object the walk found, with the handles a sink may want (the bench's sample walk keeps
/// them as targets); see [`WalkSink::WANTS_OBJECTS`].
#[derive(Debug, Clone, Copy)]
pub struct ObjectRef<'a> {
    /// The directory it was listed in.
    pub dir: &'a FileHandle,
    pub name: &'a [u8],
    pub fh: Option<&'a FileHandle>,
    pub kind: EntryType,
    /// Its size in bytes, as listed.
    pub size: u64,
}

/// Where the walk's results go.
pub trait WalkSink {
    /// Whether [`WalkSink::object`] is called (a constant, so the common sink pays nothing).
    const WANTS_OBJECTS: bool = false;

    fn entry(&mut self, entry: &EntryRef<'_>);
    /// A new task found by task `parent` (it counts as outstanding from now on).
    fn spawn(&mut self, parent: TaskId, task: Task);
    /// A task taken with [`Walker::add_task`] is complete: its calls are done and its entries
    /// handed to [`WalkSink::entry`] (`lookups`: it was a [`Task::Lookups`] batch).
    fn task_done(&mut self, id: TaskId, lookups: bool);
    fn error(&mut self, err: PathError);
    /// Every child with attributes, with its handles (only where [`WalkSink::WANTS_OBJECTS`]).
    fn object(&mut self, _object: &ObjectRef<'_>) {}
    /// A directory's listing reached its end with `entries` names (`scan --big-dirs`);
    /// `dir` is its (fsid, fileid) where the reply carried its attributes.
    fn dir_listed(&mut self, _path: &[u8], _dir: Option<(u64, u64)>, _entries: u64) {}
}

/// Work this thread holds; a task is done when its slot is freed.
enum TaskState {
    Listing(Box<Listing>),
    Lookups(LookupGroup),
}

/// What a call means to the walk.
#[derive(Debug, Clone)]
enum Op {
    /// The next READDIR/READDIRPLUS of a listing.
    List { task: usize },
    Lookup {
        task: usize,
        name: Box<[u8]>,
        attrs: Option<Box<Fattr3>>,
    },
    /// Attributes a LOOKUP reply did not carry.
    Getattr {
        task: usize,
        name: Box<[u8]>,
        fh: FileHandle,
    },
    Readlink {
        task: usize,
        path: Box<[u8]>,
        attrs: EntryAttrs,
        depth: u32,
        fh: FileHandle,
    },
}

impl Op {
    fn task(&self) -> usize {
        match self {
            Op::List { task }
            | Op::Lookup { task, .. }
            | Op::Getattr { task, .. }
            | Op::Readlink { task, .. } => *task,
        }
    }
}

/// The walk state machine of one thread.
pub struct Walker {
    cfg: Arc<WalkConfig>,
    visited: Arc<VisitedDirs>,
    tasks: Slab<TaskState>,
    calls: CallEngine<Op>,
    /// Continuations held back while the lookup backlog is high.
    parked: Vec<Queued<Op>>,
    lookup_backlog: usize,
    /// Listing pages to process once their next calls went out ([`Walker::run_deferred`]),
    /// each with its procedure and validated view.
    deferred: DeferredPages<(u32, crate::rpc::nfs3::DetachedDirList)>,
    scratch_path: Vec<u8>,
    stats: WalkStats,
}

impl Walker {
    /// `conns` connections, all down until [`Walker::on_conn_up`]. `thread` marks this
    /// thread's XIDs.
    pub fn new(
        cfg: Arc<WalkConfig>,
        visited: Arc<VisitedDirs>,
        conns: usize,
        thread: usize,
    ) -> Self {
        let policy = CallPolicy {
            timeout: cfg.rpc_timeout,
            retries: cfg.retries,
            busy_waits_max: JUKEBOX_WAITS_MAX,
            // Every procedure of the walk is an idempotent read: resending is safe.
            resend_lost: true,
        };
        let calls = CallEngine::new(policy, conns, cfg.inflight_per_conn, thread);
        Walker {
            cfg,
            visited,
            tasks: Slab::new(),
            calls,
            parked: Vec::new(),
            lookup_backlog: 0,
            deferred: DeferredPages::default(),
            scratch_path: Vec::with_capacity(4096),
            stats: WalkStats::new(),
        }
    }

    /// Calls go out no faster than `rate` allows (`--max-rate`, shared by every thread).
    pub fn with_rate_limit(mut self, rate: Option<Arc<RateLimiter>>) -> Self {
        self.calls = self.calls.with_rate_limit(rate);
        self
    }

    /// The figures so far, the call engine's included.
    pub fn stats(&self) -> WalkStats {
        let mut s = self.stats.clone();
        s.add_calls(self.calls.counters());
        s
    }

    /// The figures so far; the walker's own counters start over (the call engine's are taken
    /// once: call this at the end of a run).
    pub fn take_stats(&mut self) -> WalkStats {
        let mut s = std::mem::replace(&mut self.stats, WalkStats::new());
        s.add_calls(self.calls.counters());
        s
    }

    /// Calls on the wire.
    pub fn inflight(&self) -> usize {
        self.calls.inflight()
    }

    /// Calls sent so far.
    pub fn calls_sent(&self) -> u64 {
        self.calls.counters().sent
    }

    /// Tasks held (being worked on).
    pub fn tasks_held(&self) -> usize {
        self.tasks.len()
    }

    /// How many lookup batches wait or are being worked on, over all threads.
    pub fn set_lookup_backlog(&mut self, batches: usize) {
        self.lookup_backlog = batches;
    }

    /// Whether listings wait for the lookup backlog (the caller should look again soon).
    pub fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Whether nothing is held, queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty() && self.calls.is_idle() && self.deferred.is_empty()
    }

    /// Whether the thread should take another task from the deques.
    pub fn wants_task(&self) -> bool {
        // Parked listings do not count: the lookup batches they wait for must find a thread.
        self.tasks.len() - self.parked.len() < self.cfg.listings_max
            && self.calls.queued() < self.calls.capacity()
    }

    pub fn on_conn_up(&mut self, conn: usize) {
        self.calls.on_conn_up(conn);
    }

    /// A connection failed: every call on it goes back to the front of the queue (all our
    /// procedures are idempotent reads, so resending is safe).
    pub fn on_conn_down(&mut self, conn: usize) {
        let lost = self.calls.on_conn_down(conn);
        debug_assert!(lost.is_empty(), "the walk's policy resends lost calls");
    }

    /// Takes a task from the scheduler.
    pub fn add_task(&mut self, id: TaskId, task: Task, sink: &mut impl WalkSink) {
        match task {
            Task::Dir(dir) => {
                let key = self.tasks.insert(TaskState::Listing(Box::new(Listing::new(
                    id,
                    dir,
                    self.cfg.emitted_keys_in_memory,
                ))));
                self.calls.push_back(Queued::new(Op::List { task: key }));
            }
            Task::Lookups(batch) => {
                if batch.names.is_empty() {
                    sink.task_done(id, true);
                    return;
                }
                let key = self.tasks.insert(TaskState::Lookups(LookupGroup {
                    id,
                    dir_fh: batch.dir_fh,
                    dir_path: batch.dir_path,
                    depth: batch.depth,
                    pending: batch.names.len() as u32,
                }));
                for n in batch.names {
                    self.calls.push_back(Queued::new(Op::Lookup {
                        task: key,
                        name: n.name,
                        attrs: n.attrs,
                    }));
                }
            }
        }
    }

    /// The earliest time at which [`Walker::on_timeout`] (or, after a rate-limit refusal,
    /// [`Walker::poll_transmit`]) has something to do.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.calls.poll_timeout(now)
    }

    /// Handles expired calls and releases delayed ones whose time has come.
    pub fn on_timeout(&mut self, now: Instant, sink: &mut impl WalkSink) {
        self.run_deferred(sink);
        for call in self.calls.on_timeout(now) {
            let msg = format!("no reply within {} ms", self.cfg.rpc_timeout.as_millis());
            let proc_ = call.proc_;
            self.retry_or_fail(now, proc_, call.into_queued(), msg, None, sink);
        }
    }

    fn retry_or_fail(
        &mut self,
        now: Instant,
        proc_: u32,
        q: Queued<Op>,
        message: String,
        status: Option<Nfsstat3>,
        sink: &mut impl WalkSink,
    ) {
        if let Err(q) = self.calls.retry(q, now) {
            self.stats.procs[proc_ as usize].errors += 1;
            self.fail_op(q.call, proc_, message, status, sink);
        }
    }

    /// Encodes queued calls into `bufs[conn]` while connections have room. Returns how many
    /// calls were encoded.
    pub fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize {
        let mut n = 0;
        if !self.parked.is_empty() && self.lookup_backlog <= LOOKUP_BACKLOG_BATCHES_MAX {
            for q in self.parked.drain(..).rev() {
                if let Some(TaskState::Listing(l)) = self.tasks.get_mut(q.call.task()) {
                    l.parked = false;
                }
                self.calls.push_front(q);
            }
        }
        while let Some((conn, q)) = self.calls.next_ready(now) {
            if let Op::List { task } = q.call {
                let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
                    continue;
                };
                if l.failed {
                    continue; // the listing failed while this call waited
                }
                if l.calls > 0 && self.lookup_backlog > LOOKUP_BACKLOG_BATCHES_MAX {
                    l.parked = true;
                    self.parked.push(q);
                    continue;
                }
            }
            let (cfg, tasks, buf) = (&self.cfg, &mut self.tasks, &mut bufs[conn]);
            let proc_ = self
                .calls
                .send(conn, q, now, |op, xid| encode_op(cfg, tasks, op, xid, buf));
            self.stats.procs[proc_ as usize].calls += 1;
            n += 1;
        }
        n
    }

    /// A reply arrived: `outcome` is the RPC layer's verdict (result bytes or why not).
    pub fn on_reply(
        &mut self,
        xid: u32,
        outcome: Result<&[u8], RpcError>,
        now: Instant,
        sink: &mut impl WalkSink,
    ) {
        // A reply to a call that timed out and was resent, or a server's stray XID, is
        // counted by the engine and dropped.
        let Some(call) = self.calls.take_reply(xid) else {
            return;
        };
        // Pages deferred earlier come first: their entries precede this reply's.
        self.run_deferred(sink);
        let proc_ = call.proc_;
        let rtt_us = now.saturating_duration_since(call.sent_at).as_micros() as u64;
        let _ = self.stats.procs[proc_ as usize]
            .latency_us
            .record(rtt_us.max(1));
        let body = match outcome {
            Ok(b) => b,
            Err(e) => {
                // GARBAGE_ARGS, SYSTEM_ERR and the like: the server may recover; bounded.
                return self.retry_or_fail(
                    now,
                    proc_,
                    call.into_queued(),
                    e.to_string(),
                    None,
                    sink,
                );
            }
        };
        if let Op::List { task } = call.call {
            if let Some(err) = self.take_fail_next(task) {
                return self.fail_listing(task, err, sink);
            }
        }
        let result = match &call.call {
            Op::List { task } => self.on_list_reply(*task, proc_, body, sink),
            Op::Lookup { .. } | Op::Getattr { .. } | Op::Readlink { .. } => {
                self.on_object_reply(&call.call, body, sink)
            }
        };
        match result {
            Ok(()) => {}
            Err(NfsReplyError::Status(Nfsstat3::Jukebox)) => {
                let delay = self.jukebox_delay(&call.call, call.attempts.busy_waits);
                if let Err(q) = self.calls.wait_busy(call.into_queued(), delay, now) {
                    self.stats.procs[proc_ as usize].errors += 1;
                    let msg = format!(
                        "server still busy (NFS3ERR_JUKEBOX) after {JUKEBOX_WAITS_MAX} waits; given up"
                    );
                    self.fail_op(q.call, proc_, msg, Some(Nfsstat3::Jukebox), sink);
                }
            }
            Err(NfsReplyError::Status(Nfsstat3::BadCookie))
                if matches!(call.call, Op::List { .. }) =>
            {
                self.restart_listing(call.call.task(), sink);
            }
            Err(NfsReplyError::Status(s)) => {
                self.stats.procs[proc_ as usize].errors += 1;
                let msg = crate::rpc::nfs3::Nfs3Error(s).to_string();
                self.fail_op(call.call, proc_, msg, Some(s), sink);
            }
            Err(NfsReplyError::Xdr(e)) => {
                let msg = format!("malformed reply: {e}");
                self.retry_or_fail(now, proc_, call.into_queued(), msg, None, sink);
            }
        }
    }

    /// How long to wait after a JUKEBOX: 100 ms doubling to 2 s, over a listing's chain (its
    /// calls share one busy directory) or over one call's own JUKEBOX answers otherwise.
    fn jukebox_delay(&mut self, op: &Op, waits: u32) -> Duration {
        match (op, self.tasks.get_mut(op.task())) {
            (Op::List { .. }, Some(TaskState::Listing(l))) => {
                let d = l.jukebox_delay;
                l.jukebox_delay = (d * 2).min(crate::sched::calls::BUSY_DELAY_MAX);
                d
            }
            _ => CallEngine::<Op>::busy_delay(waits),
        }
    }

    fn fail_op(
        &mut self,
        op: Op,
        proc_: u32,
        message: String,
        status: Option<Nfsstat3>,
        sink: &mut impl WalkSink,
    ) {
        let opname = crate::rpc::nfs3::proc_name(proc_);
        match op {
            Op::List { task } => {
                if let Some(err) = self.take_fail_next(task) {
                    return self.fail_listing(task, err, sink);
                }
                let path = match self.tasks.get(task) {
                    Some(TaskState::Listing(l)) => l.task.path.clone(),
                    _ => return,
                };
                self.fail_listing(
                    task,
                    PathError {
                        path,
                        op: opname,
                        message,
                        status,
                    },
                    sink,
                );
            }
            Op::Lookup { task, name, .. } | Op::Getattr { task, name, .. } => {
                let path = match self.tasks.get(task) {
                    Some(TaskState::Lookups(g)) => join_path(&g.dir_path, &name),
                    _ => name.to_vec(),
                };
                self.report(
                    PathError {
                        path,
                        op: opname,
                        message,
                        status,
                    },
                    sink,
                );
                self.op_finished(task, sink);
            }
            Op::Readlink {
                task,
                path,
                attrs,
                depth,
                ..
            } => {
                // The entry exists; only its target is unknown. Write it, report the target.
                self.emit(&path, &attrs, depth, None, sink);
                self.report(
                    PathError {
                        path: path.to_vec(),
                        op: opname,
                        message,
                        status,
                    },
                    sink,
                );
                self.op_finished(task, sink);
            }
        }
    }

    fn report(&mut self, err: PathError, sink: &mut impl WalkSink) {
        self.stats.errors += 1;
        tracing::info!(target: "nfs_walker::verbose", "{}: {}: {}",
            String::from_utf8_lossy(&err.path).escape_debug(), err.op, err.message);
        sink.error(err);
    }

    fn op_finished(&mut self, task: usize, sink: &mut impl WalkSink) {
        match self.tasks.get_mut(task) {
            Some(TaskState::Listing(l)) => l.pending -= 1,
            Some(TaskState::Lookups(g)) => g.pending -= 1,
            None => return,
        }
        self.maybe_finish(task, sink);
    }

    fn add_pending(&mut self, task: usize) {
        match self.tasks.get_mut(task) {
            Some(TaskState::Listing(l)) => l.pending += 1,
            Some(TaskState::Lookups(g)) => g.pending += 1,
            None => {}
        }
    }

    fn maybe_finish(&mut self, task: usize, sink: &mut impl WalkSink) {
        let done = match self.tasks.get(task) {
            Some(TaskState::Listing(l)) => l.eof && l.pending == 0,
            Some(TaskState::Lookups(g)) => g.pending == 0,
            None => false,
        };
        if done {
            match self.tasks.remove(task) {
                TaskState::Listing(l) => sink.task_done(l.id, false),
                TaskState::Lookups(g) => sink.task_done(g.id, true),
            }
        }
    }
}

/// Encodes the call `op` stands for with `xid` into `buf`; returns its procedure.
fn encode_op(
    cfg: &WalkConfig,
    tasks: &mut Slab<TaskState>,
    op: &mut Op,
    xid: u32,
    buf: &mut Vec<u8>,
) -> u32 {
    let cred = &cfg.cred_xdr;
    match op {
        Op::List { task } => {
            let Some(TaskState::Listing(l)) = tasks.get_mut(*task) else {
                unreachable!("checked in poll_transmit")
            };
            l.calls += 1;
            match cfg.mode {
                Mode::Plus => {
                    // The first READDIRPLUS of a directory asks for less, so the first entries
                    // arrive quickly.
                    let maxcount = if l.cookie == 0 {
                        cfg.maxcount.min(FIRST_MAXCOUNT_BYTES)
                    } else {
                        cfg.maxcount
                    };
                    let args = ReaddirPlusArgs {
                        dir: l.task.fh,
                        cookie: l.cookie,
                        cookieverf: l.verf,
                        dircount: cfg.dircount.min(maxcount),
                        maxcount,
                    };
                    encode_nfs3_call(buf, xid, proc3::READDIRPLUS, cred, &args);
                    proc3::READDIRPLUS
                }
                Mode::Getattr | Mode::Names => {
                    let args = ReaddirArgs {
                        dir: l.task.fh,
                        cookie: l.cookie,
                        cookieverf: l.verf,
                        count: cfg.maxcount,
                    };
                    encode_nfs3_call(buf, xid, proc3::READDIR, cred, &args);
                    proc3::READDIR
                }
            }
        }
        Op::Lookup { task, name, .. } => {
            let Some(TaskState::Lookups(g)) = tasks.get(*task) else {
                unreachable!("lookup ops belong to lookup groups")
            };
            let args = LookupArgs {
                dir: g.dir_fh,
                name,
            };
            encode_nfs3_call(buf, xid, proc3::LOOKUP, cred, &args);
            proc3::LOOKUP
        }
        Op::Getattr { fh, .. } => {
            encode_nfs3_call(buf, xid, proc3::GETATTR, cred, &GetattrArgs { fh: *fh });
            proc3::GETATTR
        }
        Op::Readlink { fh, .. } => {
            encode_nfs3_call(buf, xid, proc3::READLINK, cred, &ReadlinkArgs { fh: *fh });
            proc3::READLINK
        }
    }
}
