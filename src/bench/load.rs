//! The load generator of one thread as a state machine (sans-IO).
//!
//! It is told the time and fed replies ([`LoadGen::on_reply`]), connection changes and
//! timeouts; it encodes the calls it wants sent into per-connection buffers
//! ([`LoadGen::poll_transmit`]) and says when it next needs the clock
//! ([`LoadGen::poll_timeout`]). No socket, thread or clock is touched here.
//!
//! Two load shapes:
//! - closed loop: a fixed number of calls in flight; each reply makes room for the next call.
//!   Latency runs from the send.
//! - open loop: calls are due at a fixed rate, whatever the server does. Latency runs from
//!   the time a call was *due*, not from when it could be sent, so a server that stalls while
//!   calls pile up (or an in-flight cap that holds them back) shows in the figures instead of
//!   silently lowering the load: coordinated omission is corrected.
//!
//! Time is split into warmup and measurement by a call's start (its due time, or its send time
//! in closed loop): a call that starts before the warmup ends counts as warmup even if its reply
//! comes later. After the measured period no call is started; replies still in flight are
//! awaited (at most `drain_max`), so every measured call has an outcome.
//!
//! Latencies go into one histogram per operation and per reporting interval (one second by
//! default), aligned on the end of the warmup: interval 0 starts when the measurement starts.

use super::ops::{BenchOp, BENCH_OPS_MAX};
use super::sample::Targets;
use crate::rpc::msg::{encode_call_header, CallHeader};
use crate::rpc::nfs3::NFS_PROGRAM;
use crate::rpc::nfs3::{
    encode_nfs3_call, AccessArgs, FsstatArgs, GetattrArgs, LookupArgs, ReadArgs, ReadReply,
    ReaddirArgs, ReaddirPlusArgs, ReadlinkArgs, ACCESS3_DELETE, ACCESS3_EXECUTE, ACCESS3_EXTEND,
    ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ,
};
use crate::rpc::nfs4::{
    encode_compound_call, fattr4, op4, ArgOp, AttrMask, CompoundReply, Nfsstat4, ReadArgs4,
    ReaddirArgs4, ResOk, SequenceArgs, SessionId, Stateid, MINOR_VERSION_1, NFSPROC4_COMPOUND,
    NFSPROC4_NULL, NFS_V4,
};
use crate::rpc::record::{begin_record, end_record};
use crate::rpc::RpcError;
use crate::sched::{CallEngine, CallPolicy, Queued};
use crate::xdr::{XdrEncode, XdrWriter};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Highest latency a histogram holds (larger ones are recorded as this): one hour, in ns.
pub const LATENCY_NS_MAX: u64 = 3_600_000_000_000;
/// Significant digits of the latency histograms.
pub const LATENCY_SIGFIG: u8 = 3;
/// Most calls one thread keeps in flight: the XID carries the call's slot in at most 16 of
/// the call engine's key bits, leaving at least 12 bits of send sequence, so a late reply to a
/// call whose slot was reused is not taken for the new call's.
pub const INFLIGHT_PER_THREAD_MAX: usize = 1 << 16;
/// Most connections one load generator drives.
pub const CONNS_PER_THREAD_MAX: usize = 1024;

/// ACCESS asks for every bit, like a client checking what it may do with a file.
const ACCESS_ALL: u32 = ACCESS3_READ
    | ACCESS3_LOOKUP
    | ACCESS3_MODIFY
    | ACCESS3_EXTEND
    | ACCESS3_DELETE
    | ACCESS3_EXECUTE;

/// A new, empty latency histogram (nanoseconds).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGFIG).expect("static histogram bounds")
}

/// The arguments of NULL: none.
struct NoArgs;

impl XdrEncode for NoArgs {
    fn encode(&self, _: &mut XdrWriter<'_>) {}
}

/// How calls are started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadMode {
    /// Keep `inflight` calls in flight.
    Closed { inflight: usize },
    /// Start `rate_per_s` calls per second; never more than `inflight_max` in flight (calls due
    /// meanwhile wait, and their wait counts in their latency).
    Open {
        rate_per_s: f64,
        inflight_max: usize,
    },
}

impl LoadMode {
    /// The same load with at most `max` calls in flight (an open loop keeps at least one).
    fn capped(self, max: usize) -> LoadMode {
        match self {
            LoadMode::Closed { inflight } => LoadMode::Closed {
                inflight: inflight.min(max),
            },
            LoadMode::Open {
                rate_per_s,
                inflight_max,
            } => LoadMode::Open {
                rate_per_s,
                inflight_max: inflight_max.clamp(1, max),
            },
        }
    }

    /// The most calls in flight at once.
    pub fn inflight_max(&self) -> usize {
        match *self {
            LoadMode::Closed { inflight } => inflight,
            LoadMode::Open { inflight_max, .. } => inflight_max,
        }
    }
}

/// Settings shared by every thread of a bench.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Operations, issued in rotation (each gets the same share of calls).
    pub ops: Vec<BenchOp>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Length of a reporting interval (timeline line, hlog interval).
    pub interval: Duration,
    /// A call without reply after this long is given up (counted as a timeout).
    pub rpc_timeout: Duration,
    /// How long replies are awaited after the measured period.
    pub drain_max: Duration,
    /// READDIR `count`, READDIRPLUS `maxcount`.
    pub maxcount: u32,
    /// READDIRPLUS `dircount`.
    pub dircount: u32,
    /// READ `count`: the bytes each READ asks for.
    pub read_size: u32,
    /// The encoded RPC credential.
    pub cred_xdr: Vec<u8>,
    /// `--max-rate`: the limit every thread's calls share.
    pub rate: Option<Arc<crate::sched::RateLimiter>>,
    /// NFSv4.1: the session every call goes on (each thread on its own slots of it).
    pub v4: Option<LoadSession4>,
}

/// The NFSv4.1 session of a bench: every call is a COMPOUND starting with SEQUENCE on a slot
/// of the thread's range (as the walk divides them), so a thread's calls in flight are at most
/// its slots.
#[derive(Debug, Clone, Copy)]
pub struct LoadSession4 {
    pub id: SessionId,
    pub slots: u32,
    pub threads: usize,
}

/// One thread's slots of a [`LoadSession4`]: the last sequence ID sent on each, and the free
/// ones. A slot whose call timed out or was lost is retired: whether the server saw its
/// sequence ID is unknown, and a bench does not resend to find out.
struct Slots4 {
    id: SessionId,
    seq: Vec<u32>,
    free: Vec<u32>,
}

/// One thread's part of the load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadShare {
    pub mode: LoadMode,
    /// Open loop: when this thread's first call is due, after the start (threads are staggered
    /// so that their calls interleave).
    pub first_call_after: Duration,
    /// Where this thread starts in each target list, so threads do not all hit the same
    /// object at the same time.
    pub target_offset: usize,
}

/// Whether a call counts as warmup or as measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup = 0,
    Measured = 1,
}

/// Counters of one operation in one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounters {
    /// Calls started (encoded for sending).
    pub calls: u64,
    /// Replies received (their latencies are in the histograms).
    pub replies: u64,
    /// Replies with an NFS status other than NFS3_OK.
    pub nfs_errors: u64,
    /// Replies refused at the RPC level (PROC_UNAVAIL, GARBAGE_ARGS, auth errors, ...) or too
    /// short to carry a status.
    pub rpc_errors: u64,
    /// Calls given up after the RPC timeout, or still unanswered when the drain ended.
    pub timeouts: u64,
    /// Calls in flight on a connection that failed.
    pub lost: u64,
    /// Data bytes of successful replies (READ; 0 for the other operations).
    pub bytes: u64,
}

impl OpCounters {
    pub fn add(&mut self, o: &OpCounters) {
        crate::add_counters!(self, o; calls, replies, nfs_errors, rpc_errors, timeouts, lost, bytes);
    }

    /// Calls that did not end in a successful reply.
    pub fn failed(&self) -> u64 {
        self.nfs_errors + self.rpc_errors + self.timeouts + self.lost
    }
}

/// One reporting interval of one thread: latencies of the replies that arrived in it.
#[derive(Debug, Clone)]
pub struct IntervalSet {
    /// Interval 0 starts at the end of the warmup; warmup intervals are negative.
    pub index: i64,
    /// Per operation (in `LoadConfig::ops` order): replies to measured calls.
    pub measured: Vec<Histogram<u64>>,
    /// Per operation: replies to warmup calls.
    pub warmup: Vec<Histogram<u64>>,
    /// Per operation: data bytes of the replies to measured calls, and to warmup calls.
    pub measured_bytes: Vec<u64>,
    pub warmup_bytes: Vec<u64>,
    /// Failed replies (NFS or RPC errors) in this interval, both phases.
    pub errors: u64,
}

impl IntervalSet {
    pub fn new(ops: usize) -> IntervalSet {
        IntervalSet {
            index: 0,
            measured: (0..ops).map(|_| latency_histogram()).collect(),
            warmup: (0..ops).map(|_| latency_histogram()).collect(),
            measured_bytes: vec![0; ops],
            warmup_bytes: vec![0; ops],
            errors: 0,
        }
    }

    /// Empties the set for reuse (keeps its memory).
    pub fn reset(&mut self, index: i64) {
        self.index = index;
        for h in self.measured.iter_mut().chain(self.warmup.iter_mut()) {
            h.reset();
        }
        for b in self
            .measured_bytes
            .iter_mut()
            .chain(self.warmup_bytes.iter_mut())
        {
            *b = 0;
        }
        self.errors = 0;
    }

    /// Merges another thread's set of the same interval into this one.
    pub fn merge(&mut self, o: &IntervalSet) {
        for (a, b) in self.measured.iter_mut().zip(&o.measured) {
            let _ = a.add(b);
        }
        for (a, b) in self.warmup.iter_mut().zip(&o.warmup) {
            let _ = a.add(b);
        }
        for (a, b) in self.measured_bytes.iter_mut().zip(&o.measured_bytes) {
            *a += b;
        }
        for (a, b) in self.warmup_bytes.iter_mut().zip(&o.warmup_bytes) {
            *a += b;
        }
        self.errors += o.errors;
    }
}

/// Everything one thread counted, per operation (in `LoadConfig::ops` order) and phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadCounters {
    pub warmup: Vec<OpCounters>,
    pub measured: Vec<OpCounters>,
    /// Replies whose XID matches no call in flight (late replies to timed-out calls, or a
    /// confused server).
    pub unknown_xids: u64,
    /// Open loop: calls that fell due but were never sent (the drain time ran out first, or
    /// the run was stopped).
    pub unsent: u64,
}

impl LoadCounters {
    pub fn new(ops: usize) -> LoadCounters {
        LoadCounters {
            warmup: vec![OpCounters::default(); ops],
            measured: vec![OpCounters::default(); ops],
            unknown_xids: 0,
            unsent: 0,
        }
    }

    pub fn merge(&mut self, o: &LoadCounters) {
        if self.measured.len() < o.measured.len() {
            self.warmup.resize(o.warmup.len(), OpCounters::default());
            self.measured
                .resize(o.measured.len(), OpCounters::default());
        }
        for (a, b) in self.warmup.iter_mut().zip(&o.warmup) {
            a.add(b);
        }
        for (a, b) in self.measured.iter_mut().zip(&o.measured) {
            a.add(b);
        }
        self.unknown_xids += o.unknown_xids;
        self.unsent += o.unsent;
    }

    fn phase_mut(&mut self, phase: Phase) -> &mut [OpCounters] {
        match phase {
            Phase::Warmup => &mut self.warmup,
            Phase::Measured => &mut self.measured,
        }
    }
}

/// What a call on the wire means to the generator (the call engine keeps its XID,
/// connection and send time, from which its deadline runs).
#[derive(Debug, Clone, Copy)]
struct BenchCall {
    op: u8,
    phase: Phase,
    /// Where latency is measured from: the send (closed loop) or the due time (open loop).
    start_at: Instant,
    /// NFSv4.1: the session slot the call holds.
    slot: Option<u32>,
}

/// The load generator of one thread.
pub struct LoadGen {
    cfg: Arc<LoadConfig>,
    targets: Arc<Targets>,
    share: LoadShare,
    start: Instant,
    warmup_end: Instant,
    end: Instant,
    /// Set when sending stopped early (a signal); replies are awaited until `drain_deadline`.
    stopped_at: Option<Instant>,
    calls: CallEngine<BenchCall>,
    /// Next operation in the rotation (index into `cfg.ops`).
    next_op: usize,
    /// Next target per operation.
    target_cursor: [usize; BENCH_OPS_MAX],
    /// READ reads its files whole, one after the other: the file and offset of the next READ.
    read_file: usize,
    read_offset: u64,
    /// Open loop: calls started so far, and the spacing of calls in nanoseconds.
    open_started: u64,
    open_period_ns: f64,
    interval: IntervalSet,
    interval_end: Instant,
    /// Finished intervals not yet taken by [`LoadGen::take_interval`].
    finished: Vec<IntervalSet>,
    /// Emptied sets to reuse.
    pool: Vec<IntervalSet>,
    counters: LoadCounters,
    slots4: Option<Slots4>,
}

impl LoadGen {
    /// A generator over `conns` connections (all down until [`LoadGen::on_conn_up`]) whose
    /// warmup begins at `start`. `thread` (0..16) keeps this thread's XIDs apart from others'.
    pub fn new(
        cfg: Arc<LoadConfig>,
        targets: Arc<Targets>,
        share: LoadShare,
        conns: usize,
        thread: u32,
        start: Instant,
    ) -> LoadGen {
        let conns = conns.clamp(1, CONNS_PER_THREAD_MAX);
        let slots4 = cfg.v4.map(|s| Slots4 {
            id: s.id,
            seq: vec![0; s.slots as usize],
            free: crate::walk4::slot_range(s.slots, s.threads, thread as usize)
                .map_or_else(Vec::new, |r| r.rev().collect()),
        });
        // Over v4 a thread has as many calls in flight as it has slots, at most.
        let cap = slots4.as_ref().map_or(usize::MAX, |s| s.free.len().max(1));
        let mode = share.mode.capped(INFLIGHT_PER_THREAD_MAX).capped(cap);
        let share = LoadShare { mode, ..share };
        let inflight_max = mode.inflight_max();
        let open_period_ns = match mode {
            LoadMode::Open { rate_per_s, .. } if rate_per_s > 0.0 => 1e9 / rate_per_s,
            _ => f64::INFINITY,
        };
        let ops = cfg.ops.len();
        let warmup_end = start + cfg.warmup;
        let end = warmup_end + cfg.duration;
        let interval_len = cfg.interval.max(Duration::from_millis(1));
        // The interval that contains `start`, counted from the end of the warmup.
        let first_index = -(cfg.warmup.as_nanos().div_ceil(interval_len.as_nanos()) as i64);
        let mut interval = IntervalSet::new(ops);
        interval.reset(first_index);
        let interval_end = interval_start(warmup_end, interval_len, first_index + 1);
        let mut target_cursor = [0; BENCH_OPS_MAX];
        for (i, op) in cfg.ops.iter().enumerate().take(BENCH_OPS_MAX) {
            let n = targets.count(*op).max(1);
            target_cursor[i] = share.target_offset % n;
        }
        let read_file = share.target_offset % targets.files.len().max(1);
        LoadGen {
            targets,
            share,
            start,
            warmup_end,
            end,
            stopped_at: None,
            calls: CallEngine::new(
                CallPolicy {
                    timeout: cfg.rpc_timeout,
                    // A retry or a resend would measure something else than one call's
                    // latency: every call has exactly one outcome.
                    retries: 0,
                    busy_waits_max: 0,
                    resend_lost: false,
                },
                conns,
                inflight_max.div_ceil(conns).max(1),
                thread as usize,
            ),
            next_op: 0,
            target_cursor,
            read_file,
            read_offset: 0,
            open_started: 0,
            open_period_ns,
            interval,
            interval_end,
            finished: Vec::new(),
            pool: Vec::new(),
            counters: LoadCounters::new(ops),
            slots4,
            cfg,
        }
    }

    pub fn warmup_end(&self) -> Instant {
        self.warmup_end
    }

    pub fn end(&self) -> Instant {
        self.end
    }

    /// Calls in flight.
    pub fn inflight(&self) -> usize {
        self.calls.inflight()
    }

    /// The counters so far (replies with unknown XIDs, counted by the call engine, included).
    pub fn counters(&self) -> LoadCounters {
        let mut c = self.counters.clone();
        c.unknown_xids += self.calls.counters().unknown_xids;
        c
    }

    /// Calls go out no faster than `rate` allows (`--max-rate`, shared by every thread).
    pub fn with_rate_limit(mut self, rate: Option<Arc<crate::sched::RateLimiter>>) -> Self {
        self.calls = self.calls.with_rate_limit(rate);
        self
    }

    pub fn on_conn_up(&mut self, conn: usize) {
        self.calls.on_conn_up(conn);
    }

    /// A connection failed: its calls in flight are lost (counted, not retried: a retry would
    /// measure something else than one call's latency).
    pub fn on_conn_down(&mut self, conn: usize) {
        for lost in self.calls.on_conn_down(conn) {
            let c = lost.call;
            // Its slot is retired (see [`Slots4`]).
            self.counters.phase_mut(c.phase)[c.op as usize].lost += 1;
        }
    }

    /// Stops starting calls (e.g. on a signal); replies are awaited for at most `drain`.
    pub fn stop(&mut self, now: Instant) {
        if self.stopped_at.is_none() {
            self.stopped_at = Some(now);
        }
    }

    /// When the measured period ended: its planned end, or when sending was stopped.
    pub fn measured_end(&self) -> Instant {
        match self.stopped_at {
            Some(t) => t.clamp(self.warmup_end, self.end),
            None => self.end,
        }
    }

    /// Whether no call will start any more. In open loop, calls that fell due before the end
    /// but were held back (in-flight cap, no connection) still go out after it: leaving them
    /// out would hide exactly the slow moments.
    fn sending_closed(&self, now: Instant) -> bool {
        if self.stopped_at.is_some() {
            return true;
        }
        match self.share.mode {
            LoadMode::Closed { .. } => now >= self.end,
            LoadMode::Open { .. } => {
                now >= self.end
                    && (self.open_due(self.open_started) >= self.end
                        || now >= self.drain_deadline())
            }
        }
    }

    fn drain_deadline(&self) -> Instant {
        match self.stopped_at {
            Some(t) => t.min(self.end) + self.cfg.drain_max.min(Duration::from_secs(1)),
            None => self.end + self.cfg.drain_max,
        }
    }

    /// Whether the run is over: no more calls will start, and every call has its outcome or the
    /// drain time is up.
    pub fn is_done(&self, now: Instant) -> bool {
        self.sending_closed(now) && (self.calls.inflight() == 0 || now >= self.drain_deadline())
    }

    fn open_due(&self, k: u64) -> Instant {
        let offset_ns =
            self.share.first_call_after.as_nanos() as f64 + k as f64 * self.open_period_ns;
        self.start + Duration::from_nanos(offset_ns.min(u64::MAX as f64 / 2.0) as u64)
    }

    /// Open loop: how many calls fall due before `t`.
    fn open_calls_due_before(&self, t: Instant) -> u64 {
        let first = self.open_due(0);
        if t <= first || !self.open_period_ns.is_finite() {
            return 0;
        }
        let span_ns = (t - first).as_nanos() as f64;
        let mut n = (span_ns / self.open_period_ns).ceil().max(0.0) as u64;
        // Float rounding: settle on the exact boundary.
        while n > 0 && self.open_due(n - 1) >= t {
            n -= 1;
        }
        while self.open_due(n) < t {
            n += 1;
        }
        n
    }

    fn has_room(&self) -> bool {
        self.calls.inflight() < self.share.mode.inflight_max()
            && self.calls.has_room()
            && self.slot_free()
    }

    /// Whether a call can start: over v4, a slot is free.
    fn slot_free(&self) -> bool {
        self.slots4.as_ref().is_none_or(|s| !s.free.is_empty())
    }

    /// The earliest time at which the generator wants to be polled again, even without
    /// replies.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        let mut t = self.interval_end;
        if let Some(sweep) = self.calls.poll_timeout(now) {
            t = t.min(sweep.max(now));
        }
        if self.sending_closed(now) {
            if self.calls.inflight() > 0 {
                t = t.min(self.drain_deadline());
            }
            return t;
        }
        if now < self.end {
            t = t.min(self.end);
        } else {
            t = t.min(self.drain_deadline());
        }
        if let LoadMode::Open { .. } = self.share.mode {
            if self.has_room() {
                t = t.min(self.open_due(self.open_started).max(now));
            }
        }
        t
    }

    /// Encodes the calls due now into `bufs[conn]`. Returns how many were encoded.
    pub fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize {
        self.roll_intervals(now);
        if self.sending_closed(now) || now < self.start {
            return 0;
        }
        let mut n = 0;
        match self.share.mode {
            LoadMode::Closed { inflight } => {
                while self.calls.inflight() < inflight && self.slot_free() {
                    let Some(conn) = self.calls.pick_conn(now) else {
                        break;
                    };
                    self.start_call(conn, now, now, &mut bufs[conn]);
                    n += 1;
                }
            }
            LoadMode::Open { inflight_max, .. } => {
                while self.calls.inflight() < inflight_max && self.slot_free() {
                    let due = self.open_due(self.open_started);
                    if due > now || due >= self.end {
                        break;
                    }
                    let Some(conn) = self.calls.pick_conn(now) else {
                        break;
                    };
                    self.open_started += 1;
                    self.start_call(conn, due, now, &mut bufs[conn]);
                    n += 1;
                }
            }
        }
        n
    }

    fn next_target(&mut self, op_index: usize, op: BenchOp) -> usize {
        let n = self.targets.count(op).max(1);
        let i = self.target_cursor[op_index] % n;
        self.target_cursor[op_index] = (i + 1) % n;
        i
    }

    /// The file and offset of the next READ: files are read whole, one chunk a call, each
    /// chunk as soon as a call may start (so chunks of one file are in flight together).
    fn next_read(&mut self) -> (usize, u64) {
        let files = &self.targets.files;
        if files.is_empty() {
            return (0, 0);
        }
        let file = self.read_file % files.len();
        let offset = self.read_offset;
        self.read_offset = offset.saturating_add(u64::from(self.cfg.read_size.max(1)));
        if self.read_offset >= files[file].size {
            self.read_file = (file + 1) % files.len();
            self.read_offset = 0;
        }
        (file, offset)
    }

    fn start_call(&mut self, conn: usize, start_at: Instant, now: Instant, buf: &mut Vec<u8>) {
        let op_index = self.next_op;
        self.next_op = (self.next_op + 1) % self.cfg.ops.len();
        let op = self.cfg.ops[op_index];
        let (target, offset) = if op == BenchOp::Read {
            self.next_read()
        } else {
            (self.next_target(op_index, op), 0)
        };
        let phase = if start_at < self.warmup_end {
            Phase::Warmup
        } else {
            Phase::Measured
        };
        let sequence = self.slots4.as_mut().and_then(|s| {
            let slot = s.free.pop()?;
            s.seq[slot as usize] = s.seq[slot as usize].wrapping_add(1);
            Some(SequenceArgs {
                sessionid: s.id,
                sequenceid: s.seq[slot as usize],
                slotid: slot,
                highest_slotid: s.seq.len() as u32 - 1,
                cachethis: false,
            })
        });
        let call = BenchCall {
            op: op_index as u8,
            phase,
            start_at,
            slot: sequence.map(|s| s.slotid),
        };
        let (t, cfg) = (&*self.targets, &*self.cfg);
        self.calls
            .send(conn, Queued::new(call), now, |_, xid| match sequence {
                Some(seq) => encode_bench_call4(t, cfg, op, (target, offset), seq, xid, buf),
                None => encode_bench_call(t, cfg, op, (target, offset), xid, buf),
            });
        self.counters.phase_mut(phase)[op_index].calls += 1;
    }
}

/// Encodes `op` on `target` (and at `offset` within it, for READ) with `xid` into `buf`;
/// returns its procedure.
fn encode_bench_call(
    t: &Targets,
    cfg: &LoadConfig,
    op: BenchOp,
    (target, offset): (usize, u64),
    xid: u32,
    buf: &mut Vec<u8>,
) -> u32 {
    let cred = &cfg.cred_xdr;
    let proc_ = op.proc_();
    // Targets were checked non-empty before the run; an empty list falls back to the root
    // rather than panicking.
    match op {
        BenchOp::Null => encode_nfs3_call(buf, xid, proc_, cred, &NoArgs),
        BenchOp::Getattr => {
            let fh = t.objects.get(target).copied().unwrap_or(t.root_fh);
            encode_nfs3_call(buf, xid, proc_, cred, &GetattrArgs { fh });
        }
        BenchOp::Access => {
            let fh = t.objects.get(target).copied().unwrap_or(t.root_fh);
            let args = AccessArgs {
                fh,
                access: ACCESS_ALL,
            };
            encode_nfs3_call(buf, xid, proc_, cred, &args);
        }
        BenchOp::Lookup => match t.lookups.get(target) {
            Some(l) => {
                let args = LookupArgs {
                    dir: l.dir,
                    name: t.lookup_name(l),
                };
                encode_nfs3_call(buf, xid, proc_, cred, &args);
            }
            None => {
                let args = LookupArgs {
                    dir: t.root_fh,
                    name: b".",
                };
                encode_nfs3_call(buf, xid, proc_, cred, &args);
            }
        },
        BenchOp::Readdir => {
            let args = ReaddirArgs {
                dir: t.dirs.get(target).copied().unwrap_or(t.root_fh),
                cookie: 0,
                cookieverf: [0; 8],
                count: cfg.maxcount,
            };
            encode_nfs3_call(buf, xid, proc_, cred, &args);
        }
        BenchOp::ReaddirPlus => {
            let args = ReaddirPlusArgs {
                dir: t.dirs.get(target).copied().unwrap_or(t.root_fh),
                cookie: 0,
                cookieverf: [0; 8],
                dircount: cfg.dircount.min(cfg.maxcount),
                maxcount: cfg.maxcount,
            };
            encode_nfs3_call(buf, xid, proc_, cred, &args);
        }
        BenchOp::Readlink => {
            let fh = t.symlinks.get(target).copied().unwrap_or(t.root_fh);
            encode_nfs3_call(buf, xid, proc_, cred, &ReadlinkArgs { fh });
        }
        BenchOp::Fsstat => {
            encode_nfs3_call(buf, xid, proc_, cred, &FsstatArgs { fh: t.root_fh });
        }
        BenchOp::Read => {
            // No file: the root, which the server refuses (NFS3ERR_ISDIR), counted as failed.
            let file = t.files.get(target).map_or(t.root_fh, |f| f.fh);
            let args = ReadArgs {
                file,
                offset,
                count: cfg.read_size,
            };
            encode_nfs3_call(buf, xid, proc_, cred, &args);
        }
    }
    proc_
}

/// The COMPOUND of `op` over NFSv4.1 (after SEQUENCE `seq`), as close to the v3 procedure as
/// v4 has: GETATTR of the record's attributes, LOOKUP then GETFH and GETATTR (what a v3 LOOKUP
/// returns), READDIR asking file ids alone (READDIR) or the record's attributes and handles
/// (READDIRPLUS, as the walk asks), READ with the anonymous stateid. NULL is the v4 NULL
/// procedure. (FSSTAT has no v4 form here: it is skipped before the run.)
fn encode_bench_call4(
    t: &Targets,
    cfg: &LoadConfig,
    op: BenchOp,
    (target, offset): (usize, u64),
    seq: SequenceArgs,
    xid: u32,
    buf: &mut Vec<u8>,
) -> u32 {
    let cred = &cfg.cred_xdr;
    if op == BenchOp::Null {
        let start = begin_record(buf);
        let mut w = XdrWriter::new(buf);
        let hdr = CallHeader {
            prog: NFS_PROGRAM,
            vers: NFS_V4,
            proc_: NFSPROC4_NULL,
        };
        encode_call_header(&mut w, xid, &hdr, cred);
        end_record(buf, start);
        return NFSPROC4_NULL;
    }
    let object = t.objects.get(target).unwrap_or(&t.root_fh).as_bytes();
    let dir = t.dirs.get(target).unwrap_or(&t.root_fh).as_bytes();
    let readdir = |attr_request| {
        ArgOp::Readdir(ReaddirArgs4 {
            cookie: 0,
            cookieverf: [0; 8],
            dircount: cfg.dircount.min(cfg.maxcount),
            maxcount: cfg.maxcount,
            attr_request,
        })
    };
    let lookup = t.lookups.get(target);
    let (fh, ops): (&[u8], [Option<ArgOp<'_>>; 3]) = match op {
        BenchOp::Getattr | BenchOp::Fsstat => {
            (object, [Some(ArgOp::Getattr(AttrMask::RECORD)), None, None])
        }
        BenchOp::Access => (object, [Some(ArgOp::Access(ACCESS_ALL)), None, None]),
        BenchOp::Lookup => match lookup {
            Some(l) => (
                l.dir.as_bytes(),
                [
                    Some(ArgOp::Lookup(t.lookup_name(l))),
                    Some(ArgOp::GetFh),
                    Some(ArgOp::Getattr(AttrMask::RECORD)),
                ],
            ),
            None => (t.root_fh.as_bytes(), [Some(ArgOp::GetFh), None, None]),
        },
        BenchOp::Readdir => (
            dir,
            [Some(readdir(AttrMask::of(&[fattr4::FILEID]))), None, None],
        ),
        BenchOp::ReaddirPlus => (dir, [Some(readdir(AttrMask::RECORD)), None, None]),
        BenchOp::Readlink => (
            t.symlinks.get(target).unwrap_or(&t.root_fh).as_bytes(),
            [Some(ArgOp::Readlink), None, None],
        ),
        BenchOp::Read => (
            // No file: the root, which the server refuses (NFS4ERR_ISDIR), counted as failed.
            t.files
                .get(target)
                .map_or(t.root_fh.as_bytes(), |f| f.fh.as_bytes()),
            [
                Some(ArgOp::Read(ReadArgs4 {
                    stateid: Stateid::default(),
                    offset,
                    count: cfg.read_size,
                })),
                None,
                None,
            ],
        ),
        BenchOp::Null => unreachable!("NULL is sent above"),
    };
    let mut all: Vec<ArgOp<'_>> = Vec::with_capacity(5);
    all.push(ArgOp::Sequence(seq));
    all.push(ArgOp::PutFh(fh));
    all.extend(ops.into_iter().flatten());
    encode_compound_call(buf, xid, cred, b"nfs-walker bench", MINOR_VERSION_1, &all);
    NFSPROC4_COMPOUND
}

/// How a v4 bench reply went: the SEQUENCE result decides the slot's fate, the COMPOUND's
/// status the call's, READ's data its bytes.
struct Reply4 {
    /// The server took the slot's sequence ID (`None`: the reply did not decode).
    slot_used: Option<bool>,
    failed: Option<bool>,
    bytes: u64,
}

fn decode_reply4(body: &[u8], op: BenchOp) -> Reply4 {
    let malformed = Reply4 {
        slot_used: None,
        failed: Some(false),
        bytes: 0,
    };
    if op == BenchOp::Null {
        return Reply4 {
            slot_used: Some(false),
            failed: None,
            bytes: 0,
        };
    }
    let Ok(mut r) = CompoundReply::decode(body) else {
        return malformed;
    };
    let status = r.status;
    let seq_ok = match r.next_op() {
        Ok(Some(first)) if first.op == op4::SEQUENCE => first.result.is_ok(),
        _ => return malformed,
    };
    if status != Nfsstat4::Ok {
        return Reply4 {
            slot_used: Some(seq_ok),
            failed: Some(true),
            bytes: 0,
        };
    }
    let mut bytes = 0;
    if op == BenchOp::Read {
        while let Ok(Some(res)) = r.next_op() {
            if let Ok(ResOk::Read { data, .. }) = res.result {
                bytes = data.len() as u64;
            }
        }
    }
    Reply4 {
        slot_used: Some(true),
        failed: None,
        bytes,
    }
}

impl LoadGen {
    /// A reply arrived at `now`: `outcome` is the RPC layer's verdict (result bytes or why
    /// not).
    pub fn on_reply(&mut self, xid: u32, outcome: Result<&[u8], RpcError>, now: Instant) {
        let Some(inflight) = self.calls.take_reply(xid) else {
            return;
        };
        let call = inflight.call;
        self.roll_intervals(now);
        let op_index = call.op as usize;
        let latency_ns = now.saturating_duration_since(call.start_at).as_nanos() as u64;
        let histogram = match call.phase {
            Phase::Warmup => &mut self.interval.warmup[op_index],
            Phase::Measured => &mut self.interval.measured[op_index],
        };
        histogram.saturating_record(latency_ns.clamp(1, LATENCY_NS_MAX));
        let mut bytes = 0u64;
        let failed = match outcome {
            Ok(body) if self.slots4.is_some() => {
                let r = decode_reply4(body, self.cfg.ops[op_index]);
                if let (Some(s), Some(slot)) = (self.slots4.as_mut(), call.slot) {
                    // A reply that did not decode leaves its slot retired (see [`Slots4`]).
                    if let Some(used) = r.slot_used {
                        if !used {
                            s.seq[slot as usize] = s.seq[slot as usize].wrapping_sub(1);
                        }
                        s.free.push(slot);
                    }
                }
                bytes = r.bytes;
                r.failed
            }
            Err(_) => Some(false),
            // NULL has no result; every other procedure's result starts with its status.
            Ok(_) if self.cfg.ops[op_index] == BenchOp::Null => None,
            Ok(body) if self.cfg.ops[op_index] == BenchOp::Read => {
                match ReadReply::decode_result(body) {
                    Ok(Ok(read)) => {
                        bytes = read.data.len() as u64;
                        None
                    }
                    Ok(Err(_)) => Some(true),
                    Err(_) => Some(false),
                }
            }
            Ok(body) => match body.get(..4) {
                Some(s) if s == [0, 0, 0, 0] => None,
                Some(_) => Some(true),
                None => Some(false),
            },
        };
        let interval_bytes = match call.phase {
            Phase::Warmup => &mut self.interval.warmup_bytes[op_index],
            Phase::Measured => &mut self.interval.measured_bytes[op_index],
        };
        *interval_bytes += bytes;
        let counters = &mut self.counters.phase_mut(call.phase)[op_index];
        counters.replies += 1;
        counters.bytes += bytes;
        match failed {
            None => {}
            Some(true) => {
                counters.nfs_errors += 1;
                self.interval.errors += 1;
            }
            Some(false) => {
                counters.rpc_errors += 1;
                self.interval.errors += 1;
            }
        }
    }

    /// Gives up calls past their deadline.
    pub fn on_timeout(&mut self, now: Instant) {
        self.roll_intervals(now);
        for expired in self.calls.on_timeout(now) {
            self.give_up(expired.call);
        }
    }

    fn give_up(&mut self, call: BenchCall) {
        self.counters.phase_mut(call.phase)[call.op as usize].timeouts += 1;
    }

    /// Closes the intervals that ended before `now`.
    fn roll_intervals(&mut self, now: Instant) {
        if now < self.interval_end {
            return;
        }
        let interval_len = self.cfg.interval.max(Duration::from_millis(1));
        let elapsed = now.saturating_duration_since(self.warmup_end).as_nanos();
        let before = self.warmup_end.saturating_duration_since(now).as_nanos();
        let step = interval_len.as_nanos();
        // The interval containing `now`; empty intervals in between are simply not reported.
        let index = if now >= self.warmup_end {
            (elapsed / step) as i64
        } else {
            -(before.div_ceil(step) as i64)
        };
        let mut next = self
            .pool
            .pop()
            .unwrap_or_else(|| IntervalSet::new(self.cfg.ops.len()));
        next.reset(index);
        let done = std::mem::replace(&mut self.interval, next);
        self.finished.push(done);
        self.interval_end = interval_start(self.warmup_end, interval_len, index + 1);
    }

    /// A finished interval, oldest first.
    pub fn take_interval(&mut self, now: Instant) -> Option<IntervalSet> {
        self.roll_intervals(now);
        if self.finished.is_empty() {
            None
        } else {
            Some(self.finished.remove(0))
        }
    }

    /// Gives an emptied interval set back for reuse.
    pub fn recycle(&mut self, set: IntervalSet) {
        if self.pool.len() < 4 && set.measured.len() == self.cfg.ops.len() {
            self.pool.push(set);
        }
    }

    /// Ends the run: calls still in flight count as timeouts, open-loop calls that fell due but
    /// never went out are counted in `LoadCounters::unsent`. Returns the counters and the last,
    /// unfinished intervals (oldest first).
    pub fn finish(mut self) -> (LoadCounters, Vec<IntervalSet>) {
        if let LoadMode::Open { .. } = self.share.mode {
            let planned_end = self.stopped_at.unwrap_or(self.end).min(self.end);
            let due = self.open_calls_due_before(planned_end);
            self.counters.unsent += due.saturating_sub(self.open_started);
        }
        for unanswered in self.calls.drain_inflight() {
            self.give_up(unanswered.call);
        }
        self.counters.unknown_xids += self.calls.counters().unknown_xids;
        let mut rest = std::mem::take(&mut self.finished);
        let current = &self.interval;
        let empty = current.errors == 0
            && current
                .measured
                .iter()
                .chain(&current.warmup)
                .all(|h| h.is_empty());
        if !empty {
            rest.push(self.interval);
        }
        (self.counters, rest)
    }
}

/// The start of interval `index` (interval 0 starts at `warmup_end`).
fn interval_start(warmup_end: Instant, len: Duration, index: i64) -> Instant {
    let offset = len.saturating_mul(index.unsigned_abs().min(u32::MAX as u64) as u32);
    if index >= 0 {
        warmup_end + offset
    } else {
        warmup_end.checked_sub(offset).unwrap_or(warmup_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::sample::tests::fh;
    use crate::bench::sample::FileTarget;
    use crate::rpc::msg::ReceivedCall;
    use crate::rpc::msg::Reply;
    use crate::rpc::nfs3::FileHandle;
    use crate::rpc::nfs3::{proc3, Nfsstat3};
    use crate::rpc::record::RecordAssembler;
    use crate::xdr::XdrDecode;
    use crate::xdr::XdrEncode;

    const MS: Duration = Duration::from_millis(1);

    fn targets() -> Arc<Targets> {
        let mut t = Targets::root_only(fh(1));
        t.objects.extend([fh(2), fh(3)]);
        t.symlinks.push(fh(4));
        t.push_lookup(fh(1), b"two");
        t.push_lookup(fh(1), b"three");
        t.files.push(FileTarget {
            fh: fh(5),
            size: 2500,
        });
        t.files.push(FileTarget {
            fh: fh(6),
            size: 1000,
        });
        Arc::new(t)
    }

    fn config(ops: &[BenchOp], warmup: Duration, duration: Duration) -> Arc<LoadConfig> {
        Arc::new(LoadConfig {
            ops: ops.to_vec(),
            warmup,
            duration,
            interval: Duration::from_secs(1),
            rpc_timeout: Duration::from_secs(5),
            drain_max: Duration::from_secs(5),
            maxcount: 4096,
            dircount: 1024,
            read_size: 1000,
            cred_xdr: crate::rpc::Auth::None.to_xdr(),
            rate: None,
            v4: None,
        })
    }

    fn share(mode: LoadMode) -> LoadShare {
        LoadShare {
            mode,
            first_call_after: Duration::ZERO,
            target_offset: 0,
        }
    }

    /// A decoded call the generator wrote: (xid, procedure, arguments).
    fn calls_in(buf: &mut Vec<u8>) -> Vec<(u32, u32, Vec<u8>)> {
        let mut a = RecordAssembler::new(1 << 20);
        a.push(buf);
        buf.clear();
        let mut out = Vec::new();
        while let Some(rec) = a.next_record().unwrap() {
            let c = ReceivedCall::decode(rec).unwrap();
            out.push((c.xid, c.proc_, c.args.to_vec()));
        }
        out
    }

    fn ok_body() -> Vec<u8> {
        vec![0, 0, 0, 0, 1, 2, 3, 4]
    }

    #[test]
    fn closed_loop_keeps_inflight_and_measures_from_send() {
        let t0 = Instant::now();
        let cfg = config(
            &[BenchOp::Getattr, BenchOp::Lookup],
            Duration::ZERO,
            10 * MS,
        );
        let mut g = LoadGen::new(
            cfg,
            targets(),
            share(LoadMode::Closed { inflight: 3 }),
            2,
            1,
            t0,
        );
        let mut bufs = vec![Vec::new(), Vec::new()];
        assert_eq!(g.poll_transmit(t0, &mut bufs), 0, "no connection yet");
        g.on_conn_up(0);
        g.on_conn_up(1);
        assert_eq!(g.poll_transmit(t0, &mut bufs), 3);
        assert_eq!(g.poll_transmit(t0, &mut bufs), 0, "window full");
        let mut sent: Vec<_> = calls_in(&mut bufs[0]);
        sent.extend(calls_in(&mut bufs[1]));
        assert_eq!(sent.len(), 3);
        // Rotation: getattr, lookup, getattr; spread over both connections.
        let procs: Vec<u32> = sent.iter().map(|c| c.1).collect();
        assert_eq!(procs.iter().filter(|p| **p == proc3::GETATTR).count(), 2);
        assert_eq!(procs.iter().filter(|p| **p == proc3::LOOKUP).count(), 1);
        // Arguments come from the targets.
        let lookup = sent.iter().find(|c| c.1 == proc3::LOOKUP).unwrap();
        assert_eq!(
            LookupArgs::from_xdr(&lookup.2).unwrap(),
            LookupArgs {
                dir: fh(1),
                name: b"two"
            }
        );
        // One reply after 2 ms: recorded as 2 ms, and the window refills at once.
        let xid = sent[0].0;
        g.on_reply(xid, Ok(&ok_body()), t0 + 2 * MS);
        assert_eq!(g.inflight(), 2);
        assert_eq!(g.poll_transmit(t0 + 2 * MS, &mut bufs), 1);
        // A duplicate of the same reply is not a second measurement.
        g.on_reply(xid, Ok(&ok_body()), t0 + 3 * MS);
        assert_eq!(g.counters().unknown_xids, 1);
        let (counters, intervals) = g.finish();
        let measured = &counters.measured;
        assert_eq!(measured[0].calls + measured[1].calls, 4);
        assert_eq!(measured[0].replies + measured[1].replies, 1);
        assert_eq!(
            measured[0].timeouts + measured[1].timeouts,
            3,
            "unanswered at finish"
        );
        let h: u64 = intervals
            .iter()
            .map(|i| i.measured.iter().map(|h| h.len()).sum::<u64>())
            .sum();
        assert_eq!(h, 1);
        let rec = intervals
            .iter()
            .flat_map(|i| i.measured.iter())
            .find(|h| h.len() == 1)
            .unwrap();
        assert!(
            rec.equivalent(rec.max(), 2_000_000),
            "recorded {} ns",
            rec.max()
        );
    }

    #[test]
    fn open_loop_measures_from_the_due_time() {
        let t0 = Instant::now();
        let cfg = config(&[BenchOp::Null], Duration::ZERO, Duration::from_secs(1));
        // 1000 calls/s, at most 1 in flight: a call held back by a slow reply is still
        // measured from when it was due.
        let mode = LoadMode::Open {
            rate_per_s: 1000.0,
            inflight_max: 1,
        };
        let mut g = LoadGen::new(cfg, targets(), share(mode), 1, 0, t0);
        g.on_conn_up(0);
        let mut bufs = vec![Vec::new()];
        assert_eq!(g.poll_transmit(t0, &mut bufs), 1, "call 0 due at t0");
        // Full: no wakeup for the next due call, only for the deadline check.
        assert_eq!(g.poll_timeout(t0), t0 + Duration::from_millis(100));
        let first = calls_in(&mut bufs[0]);
        // The server stalls 100 ms.
        let t = t0 + 100 * MS;
        g.on_reply(first[0].0, Ok(&[]), t);
        // Call 1 was due at 1 ms: it goes now, and its latency will include the 99 ms wait.
        assert_eq!(g.poll_transmit(t, &mut bufs), 1);
        let second = calls_in(&mut bufs[0]);
        g.on_reply(second[0].0, Ok(&[]), t + MS / 10);
        // Catch-up: calls 2.. are overdue; one at a time (inflight_max 1).
        assert_eq!(g.poll_transmit(t + MS / 10, &mut bufs), 1);
        let (counters, intervals) = g.finish();
        assert_eq!(counters.measured[0].calls, 3);
        assert_eq!(counters.measured[0].replies, 2);
        let mut all = latency_histogram();
        for i in &intervals {
            all.add(&i.measured[0]).unwrap();
        }
        assert_eq!(all.len(), 2);
        assert!(
            all.equivalent(all.max(), 100_000_000),
            "stalled call: {}",
            all.max()
        );
        let second_ns = all.min();
        assert!(
            (99_000_000..=99_200_000).contains(&second_ns),
            "the held-back call counts its wait: {second_ns} ns"
        );
    }

    #[test]
    fn open_loop_counts_calls_that_never_went_out() {
        let t0 = Instant::now();
        let mut cfg = (*config(&[BenchOp::Null], Duration::ZERO, 10 * MS)).clone();
        cfg.drain_max = 5 * MS;
        let mode = LoadMode::Open {
            rate_per_s: 1000.0,
            inflight_max: 1,
        };
        let mut g = LoadGen::new(Arc::new(cfg), targets(), share(mode), 1, 0, t0);
        g.on_conn_up(0);
        let mut bufs = vec![Vec::new()];
        assert_eq!(g.poll_transmit(t0, &mut bufs), 1);
        // The only call never returns; after end + drain nothing more can go out.
        assert!(!g.is_done(t0 + 12 * MS));
        assert!(g.is_done(t0 + 15 * MS));
        let (c, _) = g.finish();
        assert_eq!(c.measured[0].calls, 1);
        assert_eq!(c.measured[0].timeouts, 1);
        assert_eq!(c.unsent, 9, "10 calls were due in 10 ms");
    }

    #[test]
    fn open_loop_paces_calls_and_wakes_for_the_next() {
        let t0 = Instant::now();
        let cfg = config(&[BenchOp::Getattr], Duration::ZERO, 10 * MS);
        let mode = LoadMode::Open {
            rate_per_s: 1000.0,
            inflight_max: 100,
        };
        let mut g = LoadGen::new(cfg, targets(), share(mode), 1, 0, t0);
        g.on_conn_up(0);
        let mut bufs = vec![Vec::new()];
        assert_eq!(g.poll_transmit(t0, &mut bufs), 1);
        assert_eq!(g.poll_timeout(t0), t0 + MS);
        assert_eq!(g.poll_transmit(t0 + MS / 2, &mut bufs), 0);
        // 3.5 ms late: calls due at 1, 2 and 3 ms go together.
        assert_eq!(g.poll_transmit(t0 + 3 * MS + MS / 2, &mut bufs), 3);
        // Nothing is due at or after the end (10 ms): 10 calls in all.
        assert_eq!(g.poll_transmit(t0 + Duration::from_secs(1), &mut bufs), 6);
        let sent = calls_in(&mut bufs[0]);
        assert_eq!(sent.len(), 10);
        // The targets rotate: root, 2, 3, root, ...
        let fhs: Vec<_> = sent
            .iter()
            .map(|c| GetattrArgs::from_xdr(&c.2).unwrap().fh)
            .collect();
        assert_eq!(&fhs[..4], &[fh(1), fh(2), fh(3), fh(1)]);
    }

    #[test]
    fn warmup_and_measured_calls_are_told_apart_and_intervals_align() {
        let t0 = Instant::now();
        let cfg = config(
            &[BenchOp::Getattr],
            Duration::from_millis(1500),
            Duration::from_secs(2),
        );
        let mut g = LoadGen::new(
            cfg,
            targets(),
            share(LoadMode::Closed { inflight: 1 }),
            1,
            0,
            t0,
        );
        g.on_conn_up(0);
        let mut bufs = vec![Vec::new()];
        // A warmup call answered after the warmup ended stays warmup.
        g.poll_transmit(t0 + Duration::from_millis(1400), &mut bufs);
        let c = calls_in(&mut bufs[0]);
        g.on_reply(c[0].0, Ok(&ok_body()), t0 + Duration::from_millis(1600));
        // Interval -2 ([-2 s, -1 s) from the warmup end) and -1 are done; 0 is running.
        let a = g.take_interval(t0 + Duration::from_millis(1600)).unwrap();
        assert_eq!(a.index, -2);
        let b = g.take_interval(t0 + Duration::from_millis(1600)).unwrap();
        assert_eq!(b.index, -1);
        assert!(
            b.warmup[0].is_empty(),
            "the reply came after the warmup ended"
        );
        assert!(g.take_interval(t0 + Duration::from_millis(1600)).is_none());
        g.poll_transmit(t0 + Duration::from_millis(1600), &mut bufs);
        let c = calls_in(&mut bufs[0]);
        g.on_reply(c[0].0, Ok(&[0, 0, 0, 70]), t0 + Duration::from_millis(1700));
        let i0 = g.take_interval(t0 + Duration::from_millis(2600)).unwrap();
        assert_eq!(i0.index, 0);
        assert_eq!(i0.warmup[0].len(), 1);
        assert_eq!(i0.measured[0].len(), 1);
        assert_eq!(i0.errors, 1);
        let (counters, _) = g.finish();
        assert_eq!(counters.warmup[0].replies, 1);
        assert_eq!(counters.measured[0].replies, 1);
        assert_eq!(counters.measured[0].nfs_errors, 1);
        assert_eq!(Nfsstat3::from_u32(70), Nfsstat3::Stale);
    }

    #[test]
    fn timeouts_lost_connections_and_hostile_replies() {
        let t0 = Instant::now();
        let cfg = config(&[BenchOp::Getattr], Duration::ZERO, Duration::from_secs(60));
        let mut g = LoadGen::new(
            cfg,
            targets(),
            share(LoadMode::Closed { inflight: 4 }),
            2,
            0,
            t0,
        );
        g.on_conn_up(0);
        g.on_conn_up(1);
        let mut bufs = vec![Vec::new(), Vec::new()];
        assert_eq!(g.poll_transmit(t0, &mut bufs), 4);
        let on0 = calls_in(&mut bufs[0]);
        let on1 = calls_in(&mut bufs[1]);
        assert_eq!((on0.len(), on1.len()), (2, 2));
        // Connection 1 fails: its two calls are lost, and new calls go to connection 0 only.
        g.on_conn_down(1);
        assert_eq!(g.inflight(), 2);
        assert_eq!(
            g.poll_transmit(t0, &mut bufs),
            0,
            "connection 0 holds its share already"
        );
        // A reply too short for a status, an RPC-level refusal, and a stray XID.
        g.on_reply(on0[0].0, Ok(&[0, 0]), t0 + MS);
        g.on_reply(on0[1].0, Err(RpcError::GarbageArgs), t0 + MS);
        g.on_reply(0xdead_beef, Ok(&ok_body()), t0 + MS);
        assert_eq!(g.poll_transmit(t0 + MS, &mut bufs), 2);
        // Nothing answers for 5 s: both are given up.
        g.on_timeout(t0 + Duration::from_secs(6));
        assert_eq!(g.inflight(), 0);
        let c = g.counters().measured[0];
        assert_eq!(
            (c.calls, c.replies, c.rpc_errors, c.lost, c.timeouts),
            (6, 2, 2, 2, 2)
        );
        assert_eq!(g.counters().unknown_xids, 1);
    }

    #[test]
    fn stop_ends_sending_and_bounds_the_drain() {
        let t0 = Instant::now();
        let cfg = config(&[BenchOp::Null], Duration::ZERO, Duration::from_secs(60));
        let mut g = LoadGen::new(
            cfg,
            targets(),
            share(LoadMode::Closed { inflight: 2 }),
            1,
            0,
            t0,
        );
        g.on_conn_up(0);
        let mut bufs = vec![Vec::new()];
        g.poll_transmit(t0, &mut bufs);
        let sent = calls_in(&mut bufs[0]);
        g.stop(t0 + MS);
        assert!(!g.is_done(t0 + MS), "two calls to await");
        g.on_reply(sent[0].0, Ok(&[]), t0 + 2 * MS);
        assert_eq!(g.poll_transmit(t0 + 2 * MS, &mut bufs), 0, "stopped");
        assert!(!g.is_done(t0 + 2 * MS));
        assert!(
            g.is_done(t0 + 2 * MS + Duration::from_secs(1)),
            "drain after a stop is short"
        );
        assert_eq!(g.measured_end(), t0 + MS);
        let (c, _) = g.finish();
        assert_eq!((c.measured[0].replies, c.measured[0].timeouts), (1, 1));
    }

    #[test]
    fn every_op_encodes_a_call_the_server_side_decodes() {
        let t0 = Instant::now();
        let cfg = config(&BenchOp::ALL, Duration::ZERO, Duration::from_secs(1));
        let mut g = LoadGen::new(
            cfg,
            targets(),
            share(LoadMode::Closed {
                inflight: BenchOp::ALL.len(),
            }),
            1,
            0,
            t0,
        );
        g.on_conn_up(0);
        let mut bufs = vec![Vec::new()];
        assert_eq!(g.poll_transmit(t0, &mut bufs), BenchOp::ALL.len());
        let procs: Vec<u32> = calls_in(&mut bufs[0]).iter().map(|c| c.1).collect();
        let want: Vec<u32> = BenchOp::ALL.iter().map(|o| o.proc_()).collect();
        assert_eq!(procs, want);
        // The replies are matched by XID whatever their order.
        let _ = Reply::decode;
    }

    /// READ reads each sampled file whole, a chunk a call, chunks of one file in flight
    /// together, then the next file; it counts the data its replies carry, and an error reply
    /// counts no bytes.
    #[test]
    fn read_goes_through_files_in_chunks_and_counts_the_data() {
        use crate::rpc::nfs3::{encode_read_ok_with, ReadArgs};
        use crate::xdr::XdrReader;
        let t0 = Instant::now();
        let cfg = config(&[BenchOp::Read], Duration::ZERO, Duration::from_secs(1));
        let mut g = LoadGen::new(
            cfg,
            targets(),
            share(LoadMode::Closed { inflight: 5 }),
            1,
            0,
            t0,
        );
        g.on_conn_up(0);
        let mut bufs = vec![Vec::new()];
        assert_eq!(g.poll_transmit(t0, &mut bufs), 5);
        let calls = calls_in(&mut bufs[0]);
        let reads: Vec<(FileHandle, u64, u32)> = calls
            .iter()
            .map(|c| {
                assert_eq!(c.1, proc3::READ);
                let a = ReadArgs::decode(&mut XdrReader::new(&c.2)).unwrap();
                (a.file, a.offset, a.count)
            })
            .collect();
        // Files of 2500 and 1000 bytes, 1000 bytes a READ.
        assert_eq!(
            reads,
            [
                (fh(5), 0, 1000),
                (fh(5), 1000, 1000),
                (fh(5), 2000, 1000),
                (fh(6), 0, 1000),
                (fh(5), 0, 1000),
            ]
        );
        // What a server sends back: the data of each chunk, and one refusal.
        let data = [1000usize, 1000, 500, 1000];
        for (c, len) in calls.iter().zip(data) {
            let mut body = Vec::new();
            encode_read_ok_with(&mut body, None, len, len < 1000, |b| b.fill(7));
            g.on_reply(c.0, Ok(&body), t0 + MS);
        }
        let mut refused = Vec::new();
        Nfsstat3::Acces.encode(&mut crate::xdr::XdrWriter::new(&mut refused));
        refused.extend_from_slice(&[0, 0, 0, 0]); // no attributes
        g.on_reply(calls[4].0, Ok(&refused), t0 + MS);
        let (c, intervals) = g.finish();
        let m = c.measured[0];
        assert_eq!((m.replies, m.bytes, m.nfs_errors), (5, 3500, 1));
        let interval_bytes: u64 = intervals.iter().map(|i| i.measured_bytes[0]).sum();
        assert_eq!(interval_bytes, 3500);
    }
}
