//! The walk of one thread as a state machine (sans-IO).
//!
//! It is fed events — [`Walker::on_reply`], [`Walker::on_conn_down`], [`Walker::on_timeout`] —
//! with the time passed in, and asked for work: [`Walker::poll_transmit`] encodes the calls it
//! wants sent into per-connection buffers, [`Walker::poll_timeout`] tells when it next needs
//! the clock. Entries, new tasks and per-path errors leave through a [`WalkSink`]. No socket,
//! thread or clock is touched here, so the whole walk is testable with canned replies.
//!
//! Directory listings are chains: each READDIR/READDIRPLUS continues from the last cookie of the
//! previous reply, with that reply's verifier. As soon as a reply is validated, the next call
//! of its chain is queued (before the entries are emitted), so the server produces the next
//! batch while this one is being written out.

use super::balance::{take_calls, ConnBalancer};
use super::filter::{ExcludeSet, VisitedDirs};
use super::task::{DirTask, LookupBatch, LookupName, Task};
use crate::record::{join_path, EntryAttrs, EntryRef, EntryType};
use crate::rpc::nfs3::{
    encode_nfs3_call, proc3, Fattr3, FileHandle, FileType3, GetattrArgs, GetattrReply, LookupArgs,
    LookupReply, NfsReplyError, Nfsstat3, ReaddirArgs, ReaddirPlusArgs, ReaddirPlusReply,
    ReaddirReply, ReadlinkArgs, ReadlinkReply,
};
use crate::rpc::RpcError;
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How directories are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// READDIRPLUS: names, attributes and handles in one stream (fewest round trips).
    #[default]
    Plus,
    /// READDIR for names, then pipelined LOOKUP per name, spread over all threads.
    Getattr,
    /// READDIR only; LOOKUP only where a directory may hold subdirectories.
    Names,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plus" => Ok(Mode::Plus),
            "getattr" => Ok(Mode::Getattr),
            "names" => Ok(Mode::Names),
            _ => Err(format!("unknown mode `{s}` (plus, getattr, names)")),
        }
    }
}

/// Names longer than this are treated as hostile and skipped (POSIX allows 255; some servers
/// translate names into longer UTF-8, so we leave room).
pub const NAME_BYTES_MAX: usize = 1024;
/// Directories deeper than this are not listed (an error is reported instead): a server that
/// presents an endless chain must not make paths grow without bound.
pub const DEPTH_HARD_MAX: u32 = 10_000;
/// A listing restarted this many times after NFS3ERR_BAD_COOKIE is given up.
const LISTING_RESTARTS_MAX: u32 = 16;
/// A name batch handed to other threads in `getattr` mode.
const LOOKUP_BATCH_NAMES: usize = 128;
/// While more name batches than this wait for LOOKUPs anywhere, `getattr`-mode listings pause
/// their chains, so a huge directory cannot queue its names faster than they are looked up.
pub const LOOKUP_BACKLOG_BATCHES_MAX: usize = 64;
/// First READDIRPLUS of a directory asks for less, so the first entries arrive quickly.
const FIRST_MAXCOUNT_BYTES: u32 = 32 << 10;
/// Retries after a timeout or a malformed reply wait 50 ms, doubling up to 2 s.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);
const JUKEBOX_DELAY_FIRST: Duration = Duration::from_millis(100);
const JUKEBOX_DELAY_MAX: Duration = Duration::from_secs(2);
/// JUKEBOX answers one call may get before its path is given up: about ten minutes of waits
/// at the longest delay, time enough for a hierarchical store to recall a file.
pub const JUKEBOX_WAITS_MAX: u32 = 300;

/// Settings of a walk, shared by every thread.
#[derive(Debug, Clone)]
pub struct WalkConfig {
    pub mode: Mode,
    /// READDIRPLUS `dircount` and `maxcount`; READDIR uses `maxcount` as its `count`.
    pub dircount: u32,
    pub maxcount: u32,
    /// Entries deeper than this are not written and directories at this depth not listed.
    pub max_depth: Option<u32>,
    pub excludes: ExcludeSet,
    pub dirs_only: bool,
    /// Stay on this fsid (`--one-fs`).
    pub one_fs: Option<u64>,
    /// READLINK each symlink and record its target.
    pub readlink: bool,
    pub rpc_timeout: Duration,
    /// Retries of a call after a timeout or a malformed reply.
    pub retries: u32,
    pub inflight_per_conn: usize,
    /// Directory listings one thread keeps going at once.
    pub listings_max: usize,
    /// The encoded RPC credential.
    pub cred_xdr: Vec<u8>,
    /// Keys of written entries one listing keeps in memory before spilling to a temporary
    /// file (see [`EmittedSet`]).
    pub emitted_keys_in_memory: usize,
}

impl Default for WalkConfig {
    fn default() -> Self {
        WalkConfig {
            mode: Mode::Plus,
            dircount: 64 << 10,
            maxcount: 1 << 20,
            max_depth: None,
            excludes: ExcludeSet::default(),
            dirs_only: false,
            one_fs: None,
            readlink: false,
            rpc_timeout: Duration::from_secs(30),
            retries: 5,
            inflight_per_conn: 256,
            listings_max: 64,
            cred_xdr: crate::xdr::XdrEncode::to_xdr(&crate::rpc::Auth::None),
            emitted_keys_in_memory: EMITTED_KEYS_IN_MEMORY_MAX,
        }
    }
}

/// A path that could not be read completely; the scan goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub path: Vec<u8>,
    /// The procedure that failed ("readdirplus", "lookup", ...) or "walk".
    pub op: &'static str,
    pub message: String,
    /// The NFS status where the server gave one.
    pub status: Option<Nfsstat3>,
}

impl PathError {
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"path\":\"");
        crate::record::json_escape_into(out, &self.path);
        out.extend_from_slice(b"\",\"op\":\"");
        out.extend_from_slice(self.op.as_bytes());
        out.extend_from_slice(b"\",\"status\":\"");
        if let Some(s) = self.status {
            out.extend_from_slice(s.name().as_bytes());
        }
        out.extend_from_slice(b"\",\"error\":\"");
        crate::record::json_escape_into(out, self.message.as_bytes());
        out.extend_from_slice(b"\"}\n");
    }
}

/// Where the walk's results go.
pub trait WalkSink {
    fn entry(&mut self, entry: &EntryRef<'_>);
    /// A new task for the scheduler's deque (it counts as outstanding from now on).
    fn spawn(&mut self, task: Task);
    /// A task taken with [`Walker::add_task`] is complete (`lookups`: it was a
    /// [`Task::Lookups`] batch).
    fn task_done(&mut self, lookups: bool);
    fn error(&mut self, err: PathError);
    /// A directory's listing reached its end with `entries` names (`scan --big-dirs`);
    /// `dir` is its (fsid, fileid) where the reply carried its attributes.
    fn dir_listed(&mut self, _path: &[u8], _dir: Option<(u64, u64)>, _entries: u64) {}
}

/// Per-procedure figures of one thread.
#[derive(Debug, Clone)]
pub struct ProcStats {
    pub calls: u64,
    pub errors: u64,
    /// Round-trip times in microseconds.
    pub latency_us: hdrhistogram::Histogram<u64>,
}

impl Default for ProcStats {
    fn default() -> Self {
        ProcStats {
            calls: 0,
            errors: 0,
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds"),
        }
    }
}

/// Counters of one thread's walk.
#[derive(Debug, Clone, Default)]
pub struct WalkStats {
    /// Indexed by NFS procedure number.
    pub procs: Vec<ProcStats>,
    pub entries: u64,
    pub entries_by_type: [u64; 8],
    pub bytes: u64,
    pub retries: u64,
    pub timeouts: u64,
    pub jukebox: u64,
    pub bad_cookie_restarts: u64,
    pub resent_after_reconnect: u64,
    pub unknown_xids: u64,
    pub duplicates_skipped: u64,
    pub hostile_names: u64,
    pub errors: u64,
}

impl WalkStats {
    fn new() -> Self {
        WalkStats {
            procs: (0..=proc3::COMMIT).map(|_| ProcStats::default()).collect(),
            ..Default::default()
        }
    }

    pub fn merge(&mut self, o: &WalkStats) {
        if self.procs.is_empty() {
            *self = WalkStats::new();
        }
        for (a, b) in self.procs.iter_mut().zip(&o.procs) {
            a.calls += b.calls;
            a.errors += b.errors;
            let _ = a.latency_us.add(&b.latency_us);
        }
        self.entries += o.entries;
        for (a, b) in self.entries_by_type.iter_mut().zip(o.entries_by_type) {
            *a += b;
        }
        self.bytes += o.bytes;
        self.retries += o.retries;
        self.timeouts += o.timeouts;
        self.jukebox += o.jukebox;
        self.bad_cookie_restarts += o.bad_cookie_restarts;
        self.resent_after_reconnect += o.resent_after_reconnect;
        self.unknown_xids += o.unknown_xids;
        self.duplicates_skipped += o.duplicates_skipped;
        self.hostile_names += o.hostile_names;
        self.errors += o.errors;
    }
}

/// Index of an entry type in [`WalkStats::entries_by_type`].
pub fn type_index(t: EntryType) -> usize {
    EntryType::ALL.iter().position(|x| *x == t).unwrap_or(7)
}

type U64Set = super::seen::HashSet64;
use super::seen::EmittedSet;

/// Keys of written entries a listing keeps in memory (about 16 MiB at most); a larger
/// directory spills the rest to a temporary file (see [`EmittedSet`]).
pub const EMITTED_KEYS_IN_MEMORY_MAX: usize = 1 << 20;

/// A 64-bit hash of (name, fileid): identifies an entry within one directory listing.
fn entry_key(name: &[u8], fileid: u64) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = fileid.wrapping_mul(K) ^ (name.len() as u64);
    let mut chunks = name.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ v).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 32)
}

/// A validated listing reply of either procedure.
enum ListReply<'a> {
    Plus(ReaddirPlusReply<'a>),
    Plain(ReaddirReply<'a>),
}

impl ListReply<'_> {
    /// What continues the chain: eof, the last entry's cookie, the reply's verifier.
    fn chain_state(&self) -> (bool, Option<u64>, [u8; 8]) {
        match self {
            ListReply::Plus(r) => (r.eof, r.last_cookie(), r.cookieverf),
            ListReply::Plain(r) => (r.eof, r.last_cookie(), r.cookieverf),
        }
    }
}

/// A directory being listed.
struct Listing {
    task: DirTask,
    cookie: u64,
    verf: [u8; 8],
    calls: u32,
    /// Entries already handed out, so a restart or a misbehaving server never duplicates one.
    seen: EmittedSet,
    /// Cookies this chain has continued from: seeing one again is a cycle.
    continued_from: U64Set,
    restarts: u32,
    /// `names` mode: how many subdirectories may still be hidden among the names.
    eof: bool,
    failed: bool,
    /// The chain waits for the lookup backlog to shrink.
    parked: bool,
    /// Operations created by this listing (READLINKs) still outstanding.
    pending: u32,
    jukebox_delay: Duration,
}

/// A lookup batch being worked on.
struct LookupGroup {
    dir_fh: FileHandle,
    dir_path: Arc<[u8]>,
    depth: u32,
    pending: u32,
}

/// Work this thread holds; a task is done when its slot is freed.
enum TaskState {
    Listing(Box<Listing>),
    Lookups(LookupGroup),
}

/// One call the walker wants made (or has in flight).
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

/// A call on the wire.
struct InflightCall {
    op: Op,
    proc_: u32,
    xid: u32,
    conn: usize,
    sent_at: Instant,
    attempts: u32,
    jukebox_waits: u32,
}

/// An op waiting to be (re)sent, possibly not before a time.
struct QueuedOp {
    op: Op,
    attempts: u32,
    /// NFS3ERR_JUKEBOX answers so far; bounded so a server that is "busy" forever cannot
    /// hold a path forever.
    jukebox_waits: u32,
}

/// An XID is 4 bits of thread, then a send sequence, then the call's slab key in as few bits
/// as the calls in flight need (at most this many), so a reply to a call that timed out and was
/// resent meets a different XID in its old slot for 2^(28 - key bits) sends, not 256.
const XID_KEY_BITS_MAX: u32 = 20;
const XID_THREAD_MASK: u32 = 0xF000_0000;

/// Bits that hold slab keys below `calls_max`.
fn xid_key_bits(calls_max: usize) -> u32 {
    (usize::BITS - calls_max.saturating_sub(1).leading_zeros()).clamp(1, XID_KEY_BITS_MAX)
}

/// The walk state machine of one thread.
pub struct Walker {
    cfg: Arc<WalkConfig>,
    visited: Arc<VisitedDirs>,
    tasks: Slab<TaskState>,
    calls: Slab<InflightCall>,
    ready: VecDeque<QueuedOp>,
    /// Ops held back (JUKEBOX), by due time.
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    delayed_ops: Slab<QueuedOp>,
    /// When the in-flight calls are next checked for expiry. A periodic sweep of the slab
    /// (at most a few thousand calls) keeps memory bounded by the calls in flight, where a
    /// heap of per-call deadlines would hold an entry for every call of the last timeout period.
    next_expiry_check: Option<Instant>,
    conns: ConnBalancer,
    /// Continuations held back while the lookup backlog is high.
    parked: Vec<QueuedOp>,
    lookup_backlog: usize,
    xid_seq: u32,
    xid_base: u32,
    xid_key_bits: u32,
    scratch_path: Vec<u8>,
    stats: WalkStats,
}

impl Walker {
    /// `conns` connections, all down until [`Walker::on_conn_up`]. `xid_base` keeps this
    /// thread's XIDs apart from other threads' (only its top bits are used).
    pub fn new(
        cfg: Arc<WalkConfig>,
        visited: Arc<VisitedDirs>,
        conns: usize,
        xid_base: u32,
    ) -> Self {
        let inflight_per_conn = cfg.inflight_per_conn;
        let xid_key_bits = xid_key_bits(conns.saturating_mul(inflight_per_conn));
        Walker {
            cfg,
            visited,
            tasks: Slab::new(),
            calls: Slab::new(),
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            delayed_ops: Slab::new(),
            next_expiry_check: None,
            conns: ConnBalancer::new(conns, inflight_per_conn),
            parked: Vec::new(),
            lookup_backlog: 0,
            xid_seq: 0,
            xid_base: xid_base & XID_THREAD_MASK,
            xid_key_bits,
            scratch_path: Vec::with_capacity(4096),
            stats: WalkStats::new(),
        }
    }

    pub fn stats(&self) -> &WalkStats {
        &self.stats
    }

    pub fn take_stats(&mut self) -> WalkStats {
        std::mem::replace(&mut self.stats, WalkStats::new())
    }

    /// Calls on the wire.
    pub fn inflight(&self) -> usize {
        self.calls.len()
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
        self.tasks.is_empty() && self.calls.is_empty() && self.ready.is_empty()
    }

    /// Whether the thread should take another task from the deques.
    pub fn wants_task(&self) -> bool {
        let cap = self.capacity();
        // Parked listings do not count: the lookup batches they wait for must find a thread.
        self.tasks.len() - self.parked.len() < self.cfg.listings_max && self.ready.len() < cap
    }

    fn capacity(&self) -> usize {
        self.conns.up_count() * self.cfg.inflight_per_conn
    }

    pub fn on_conn_up(&mut self, conn: usize) {
        self.conns.set_up(conn);
    }

    /// A connection failed: every call on it goes back to the front of the queue (all our
    /// procedures are idempotent reads, so resending is safe).
    pub fn on_conn_down(&mut self, conn: usize) {
        self.conns.set_down(conn);
        for call in take_calls(&mut self.calls, |c| c.conn == conn) {
            self.stats.resent_after_reconnect += 1;
            self.ready.push_front(QueuedOp {
                op: call.op,
                attempts: call.attempts,
                jukebox_waits: call.jukebox_waits,
            });
        }
    }

    /// Takes a task from the scheduler.
    pub fn add_task(&mut self, task: Task, sink: &mut impl WalkSink) {
        match task {
            Task::Dir(dir) => {
                let key = self.tasks.insert(TaskState::Listing(Box::new(Listing {
                    task: dir,
                    cookie: 0,
                    verf: [0; 8],
                    calls: 0,
                    seen: EmittedSet::new(self.cfg.emitted_keys_in_memory),
                    continued_from: U64Set::default(),
                    restarts: 0,
                    eof: false,
                    failed: false,
                    parked: false,
                    pending: 0,
                    jukebox_delay: JUKEBOX_DELAY_FIRST,
                })));
                self.ready.push_back(QueuedOp {
                    op: Op::List { task: key },
                    attempts: 0,
                    jukebox_waits: 0,
                });
            }
            Task::Lookups(batch) => {
                if batch.names.is_empty() {
                    sink.task_done(true);
                    return;
                }
                let key = self.tasks.insert(TaskState::Lookups(LookupGroup {
                    dir_fh: batch.dir_fh,
                    dir_path: batch.dir_path,
                    depth: batch.depth,
                    pending: batch.names.len() as u32,
                }));
                for n in batch.names {
                    self.ready.push_back(QueuedOp {
                        op: Op::Lookup {
                            task: key,
                            name: n.name,
                            attrs: n.attrs,
                        },
                        attempts: 0,
                        jukebox_waits: 0,
                    });
                }
            }
        }
    }

    /// The earliest time at which [`Walker::on_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let call = if self.calls.is_empty() {
            None
        } else {
            self.next_expiry_check
        };
        let delayed = self.delayed.peek().map(|Reverse((t, _))| *t);
        match (call, delayed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles expired call deadlines and releases delayed ops whose time has come.
    pub fn on_timeout(&mut self, now: Instant, sink: &mut impl WalkSink) {
        while let Some(Reverse((t, key))) = self.delayed.peek().copied() {
            if t > now {
                break;
            }
            self.delayed.pop();
            let q = self.delayed_ops.remove(key as usize);
            self.ready.push_front(q);
        }
        if self.next_expiry_check.is_some_and(|t| t > now) {
            return;
        }
        self.next_expiry_check = Some(now + self.expiry_check_interval());
        let timeout = self.cfg.rpc_timeout;
        let expired: Vec<usize> = self
            .calls
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.sent_at) >= timeout)
            .map(|(k, _)| k)
            .collect();
        for key in expired {
            let call = self.calls.remove(key);
            self.conns.on_done(call.conn);
            self.stats.timeouts += 1;
            let msg = format!("no reply within {} ms", self.cfg.rpc_timeout.as_millis());
            self.retry_or_fail(now, call.op, call.proc_, call.attempts, msg, None, sink);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn retry_or_fail(
        &mut self,
        now: Instant,
        op: Op,
        proc_: u32,
        attempts: u32,
        message: String,
        status: Option<Nfsstat3>,
        sink: &mut impl WalkSink,
    ) {
        if attempts < self.cfg.retries {
            // Back off before a retry: a server that timed out or sent garbage is likely
            // struggling, and hammering it again at once helps nobody.
            self.stats.retries += 1;
            tracing::info!(target: "nfs_walker::verbose", "retry {} of {} ({message})",
                attempts + 1, self.cfg.retries);
            let delay = RETRY_BACKOFF_FIRST
                .saturating_mul(1 << attempts.min(6))
                .min(RETRY_BACKOFF_MAX);
            let k = self.delayed_ops.insert(QueuedOp {
                op,
                attempts: attempts + 1,
                jukebox_waits: 0,
            });
            self.delayed.push(Reverse((now + delay, k as u64)));
        } else {
            self.stats.procs[proc_ as usize].errors += 1;
            self.fail_op(op, proc_, message, status, sink);
        }
    }

    /// Encodes queued calls into `bufs[conn]` while connections have room. Returns how many
    /// calls were encoded.
    pub fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize {
        let mut n = 0;
        if !self.parked.is_empty() && self.lookup_backlog <= LOOKUP_BACKLOG_BATCHES_MAX {
            for q in self.parked.drain(..).rev() {
                if let Some(TaskState::Listing(l)) = self.tasks.get_mut(q.op.task()) {
                    l.parked = false;
                }
                self.ready.push_front(q);
            }
        }
        while !self.ready.is_empty() {
            let Some(conn) = self.conns.pick() else { break };
            let Some(q) = self.ready.pop_front() else {
                break;
            };
            if let Op::List { task } = q.op {
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
            self.send(q, conn, now, &mut bufs[conn]);
            n += 1;
        }
        n
    }

    fn send(&mut self, q: QueuedOp, conn: usize, now: Instant, buf: &mut Vec<u8>) {
        let entry = self.calls.vacant_entry();
        let key = entry.key();
        debug_assert!(key < 1 << self.xid_key_bits);
        self.xid_seq = self.xid_seq.wrapping_add(1);
        // top 4 bits: the thread; then a sequence, so a reused slot gets a new XID;
        // low bits: the slab key, so a reply finds its call without a map.
        let xid =
            self.xid_base | ((self.xid_seq << self.xid_key_bits) & !XID_THREAD_MASK) | key as u32;
        let cred = &self.cfg.cred_xdr;
        let proc_ = match &q.op {
            Op::List { task } => {
                let Some(TaskState::Listing(l)) = self.tasks.get_mut(*task) else {
                    unreachable!("checked in poll_transmit")
                };
                l.calls += 1;
                match self.cfg.mode {
                    Mode::Plus => {
                        let maxcount = if l.cookie == 0 {
                            self.cfg.maxcount.min(FIRST_MAXCOUNT_BYTES)
                        } else {
                            self.cfg.maxcount
                        };
                        let args = ReaddirPlusArgs {
                            dir: l.task.fh,
                            cookie: l.cookie,
                            cookieverf: l.verf,
                            dircount: self.cfg.dircount.min(maxcount),
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
                            count: self.cfg.maxcount,
                        };
                        encode_nfs3_call(buf, xid, proc3::READDIR, cred, &args);
                        proc3::READDIR
                    }
                }
            }
            Op::Lookup { task, name, .. } => {
                let Some(TaskState::Lookups(g)) = self.tasks.get(*task) else {
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
        };
        entry.insert(InflightCall {
            op: q.op,
            proc_,
            xid,
            conn,
            sent_at: now,
            attempts: q.attempts,
            jukebox_waits: q.jukebox_waits,
        });
        self.conns.on_sent(conn);
        self.stats.procs[proc_ as usize].calls += 1;
        if self.next_expiry_check.is_none() {
            self.next_expiry_check = Some(now + self.expiry_check_interval());
        }
    }

    /// Expiry is checked this often: a tenth of the timeout, at most every 100 ms.
    fn expiry_check_interval(&self) -> Duration {
        (self.cfg.rpc_timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
    }

    /// A reply arrived: `outcome` is the RPC layer's verdict (result bytes or why not).
    pub fn on_reply(
        &mut self,
        xid: u32,
        outcome: Result<&[u8], RpcError>,
        now: Instant,
        sink: &mut impl WalkSink,
    ) {
        let key = (xid & ((1 << self.xid_key_bits) - 1)) as usize;
        if self.calls.get(key).is_none_or(|c| c.xid != xid) {
            // A reply to a call that timed out and was resent, or a server's stray XID.
            self.stats.unknown_xids += 1;
            return;
        }
        let call = self.calls.remove(key);
        self.conns.on_done(call.conn);
        let rtt_us = now.saturating_duration_since(call.sent_at).as_micros() as u64;
        let _ = self.stats.procs[call.proc_ as usize]
            .latency_us
            .record(rtt_us.max(1));
        let body = match outcome {
            Ok(b) => b,
            Err(e) => {
                // GARBAGE_ARGS, SYSTEM_ERR and the like: the server may recover; bounded.
                return self.retry_or_fail(
                    now,
                    call.op,
                    call.proc_,
                    call.attempts,
                    e.to_string(),
                    None,
                    sink,
                );
            }
        };
        let result = match &call.op {
            Op::List { task } => self.on_list_reply(*task, call.proc_, body, sink),
            Op::Lookup { .. } | Op::Getattr { .. } | Op::Readlink { .. } => {
                self.on_object_reply(&call.op, body, sink)
            }
        };
        match result {
            Ok(()) => {}
            Err(NfsReplyError::Status(Nfsstat3::Jukebox))
                if call.jukebox_waits >= JUKEBOX_WAITS_MAX =>
            {
                self.stats.procs[call.proc_ as usize].errors += 1;
                let msg = format!(
                    "server still busy (NFS3ERR_JUKEBOX) after {JUKEBOX_WAITS_MAX} waits; given up"
                );
                self.fail_op(call.op, call.proc_, msg, Some(Nfsstat3::Jukebox), sink);
            }
            Err(NfsReplyError::Status(Nfsstat3::Jukebox)) => {
                self.stats.jukebox += 1;
                let delay = self.jukebox_delay(&call.op, call.jukebox_waits);
                let k = self.delayed_ops.insert(QueuedOp {
                    op: call.op,
                    attempts: call.attempts,
                    jukebox_waits: call.jukebox_waits + 1,
                });
                self.delayed.push(Reverse((now + delay, k as u64)));
            }
            Err(NfsReplyError::Status(Nfsstat3::BadCookie))
                if matches!(call.op, Op::List { .. }) =>
            {
                self.restart_listing(call.op.task(), sink);
            }
            Err(NfsReplyError::Status(s)) => {
                self.stats.procs[call.proc_ as usize].errors += 1;
                let msg = crate::rpc::nfs3::Nfs3Error(s).to_string();
                self.fail_op(call.op, call.proc_, msg, Some(s), sink);
            }
            Err(NfsReplyError::Xdr(e)) => {
                let msg = format!("malformed reply: {e}");
                self.retry_or_fail(now, call.op, call.proc_, call.attempts, msg, None, sink);
            }
        }
    }

    /// The listing procedure of this walk's mode, for error reports.
    fn list_proc_name(&self) -> &'static str {
        match self.cfg.mode {
            Mode::Plus => "readdirplus",
            Mode::Getattr | Mode::Names => "readdir",
        }
    }

    /// How long to wait after a JUKEBOX: 100 ms doubling to 2 s, over a listing's chain (its
    /// calls share one busy directory) or over one call's own JUKEBOX answers otherwise.
    fn jukebox_delay(&mut self, op: &Op, waits: u32) -> Duration {
        match (op, self.tasks.get_mut(op.task())) {
            (Op::List { .. }, Some(TaskState::Listing(l))) => {
                let d = l.jukebox_delay;
                l.jukebox_delay = (d * 2).min(JUKEBOX_DELAY_MAX);
                d
            }
            _ => JUKEBOX_DELAY_FIRST
                .saturating_mul(1 << waits.min(5))
                .min(JUKEBOX_DELAY_MAX),
        }
    }

    fn restart_listing(&mut self, task: usize, sink: &mut impl WalkSink) {
        let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
            return;
        };
        l.restarts += 1;
        self.stats.bad_cookie_restarts += 1;
        if l.restarts > LISTING_RESTARTS_MAX {
            let path = l.task.path.clone();
            return self.fail_listing(
                task,
                PathError {
                    path,
                    op: self.list_proc_name(),
                    message: format!(
                        "directory cookies went stale {LISTING_RESTARTS_MAX} times; listing abandoned"
                    ),
                    status: Some(Nfsstat3::BadCookie),
                },
                sink,
            );
        }
        // Start over with a fresh verifier; `seen` keeps what was already emitted.
        l.seen.prepare_restart();
        l.cookie = 0;
        l.verf = [0; 8];
        l.continued_from = U64Set::default();
        self.ready.push_front(QueuedOp {
            op: Op::List { task },
            attempts: 0,
            jukebox_waits: 0,
        });
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

    fn fail_listing(&mut self, task: usize, err: PathError, sink: &mut impl WalkSink) {
        self.report(err, sink);
        if let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) {
            l.failed = true;
            l.eof = true;
        }
        self.maybe_finish(task, sink);
    }

    fn op_finished(&mut self, task: usize, sink: &mut impl WalkSink) {
        match self.tasks.get_mut(task) {
            Some(TaskState::Listing(l)) => l.pending -= 1,
            Some(TaskState::Lookups(g)) => g.pending -= 1,
            None => return,
        }
        self.maybe_finish(task, sink);
    }

    fn maybe_finish(&mut self, task: usize, sink: &mut impl WalkSink) {
        let (done, lookups) = match self.tasks.get(task) {
            Some(TaskState::Listing(l)) => (l.eof && l.pending == 0, false),
            Some(TaskState::Lookups(g)) => (g.pending == 0, true),
            None => (false, false),
        };
        if done {
            self.tasks.remove(task);
            sink.task_done(lookups);
        }
    }

    fn emit(
        &mut self,
        path: &[u8],
        attrs: &EntryAttrs,
        depth: u32,
        target: Option<&[u8]>,
        sink: &mut impl WalkSink,
    ) {
        if self.cfg.dirs_only && attrs.kind != EntryType::Dir {
            return;
        }
        self.stats.entries += 1;
        self.stats.entries_by_type[type_index(attrs.kind)] += 1;
        self.stats.bytes += attrs.size;
        sink.entry(&EntryRef {
            path,
            attrs,
            depth,
            target,
        });
    }

    /// Decides what to do with a child whose attributes and handle are known: write it,
    /// descend into it, or read its link first.
    #[allow(clippy::too_many_arguments)]
    fn on_child(
        &mut self,
        task: usize,
        path: &[u8],
        fattr: &Fattr3,
        fh: Option<FileHandle>,
        depth: u32,
        sink: &mut impl WalkSink,
    ) {
        let attrs = fattr.to_entry_attrs();
        // With --dirs-only a link is never written, so its target is not worth a call.
        if self.cfg.readlink && !self.cfg.dirs_only && fattr.ftype == FileType3::Lnk {
            if let Some(fh) = fh {
                self.add_pending(task);
                self.ready.push_back(QueuedOp {
                    op: Op::Readlink {
                        task,
                        path: path.into(),
                        attrs,
                        depth,
                        fh,
                    },
                    attempts: 0,
                    jukebox_waits: 0,
                });
                return;
            }
        }
        self.emit(path, &attrs, depth, None, sink);
        if fattr.ftype == FileType3::Dir {
            self.maybe_descend(path, fattr, fh, depth, sink);
        }
    }

    fn add_pending(&mut self, task: usize) {
        match self.tasks.get_mut(task) {
            Some(TaskState::Listing(l)) => l.pending += 1,
            Some(TaskState::Lookups(g)) => g.pending += 1,
            None => {}
        }
    }

    fn maybe_descend(
        &mut self,
        path: &[u8],
        fattr: &Fattr3,
        fh: Option<FileHandle>,
        depth: u32,
        sink: &mut impl WalkSink,
    ) {
        if self.cfg.max_depth.is_some_and(|m| depth >= m) {
            return;
        }
        if self.cfg.one_fs.is_some_and(|fsid| fsid != fattr.fsid) {
            return;
        }
        let Some(fh) = fh else { return };
        if depth >= DEPTH_HARD_MAX {
            return self.report(
                PathError {
                    path: path.to_vec(),
                    op: "walk",
                    message: format!("deeper than {DEPTH_HARD_MAX} levels; not descended"),
                    status: None,
                },
                sink,
            );
        }
        if !self
            .visited
            .insert_dir(fattr.fsid, fattr.fileid, fh.as_bytes())
        {
            return; // already walked (a cycle or a directory reached twice)
        }
        sink.spawn(Task::Dir(DirTask {
            fh,
            path: path.to_vec(),
            depth,
        }));
    }

    /// Checks a listed name; hostile ones are reported and skipped.
    fn name_ok(&mut self, dir_path: &[u8], name: &[u8], sink: &mut impl WalkSink) -> bool {
        if name == b"." || name == b".." {
            return false;
        }
        let why = if name.is_empty() {
            "empty name"
        } else if name.len() > NAME_BYTES_MAX {
            "name longer than 1024 bytes"
        } else if name.contains(&b'/') {
            "name contains '/'"
        } else if name.contains(&0) {
            "name contains NUL"
        } else {
            return true;
        };
        self.stats.hostile_names += 1;
        let shown = &name[..name.len().min(64)];
        self.report(
            PathError {
                path: join_path(dir_path, shown),
                op: self.list_proc_name(),
                message: format!("server sent an invalid entry name ({why}); skipped"),
                status: None,
            },
            sink,
        );
        false
    }

    fn on_list_reply(
        &mut self,
        task: usize,
        proc_: u32,
        body: &[u8],
        sink: &mut impl WalkSink,
    ) -> Result<(), NfsReplyError> {
        let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
            return Ok(());
        };
        // Validate the whole reply first (once), then queue the next call of the chain at once.
        let reply = if proc_ == proc3::READDIRPLUS {
            ListReply::Plus(ReaddirPlusReply::decode(body)?)
        } else {
            ListReply::Plain(ReaddirReply::decode(body)?)
        };
        let (eof, last_cookie, verf) = reply.chain_state();
        // Only a reply that decoded ends a JUKEBOX streak (a JUKEBOX is an Err above, so
        // resetting earlier would keep every retry at the first delay).
        l.jukebox_delay = JUKEBOX_DELAY_FIRST;
        if !eof {
            match last_cookie {
                None => {
                    let path = l.task.path.clone();
                    self.fail_listing(
                        task,
                        PathError {
                            path,
                            op: crate::rpc::nfs3::proc_name(proc_),
                            message: "server returned no entries and no eof; listing stopped"
                                .into(),
                            status: None,
                        },
                        sink,
                    );
                    return Ok(());
                }
                Some(c) => {
                    if !l.continued_from.insert(c) || c == l.cookie {
                        let path = l.task.path.clone();
                        // Emit what this reply carries, then stop: the chain would loop.
                        self.process_entries(task, &reply, sink);
                        self.fail_listing(
                            task,
                            PathError {
                                path,
                                op: crate::rpc::nfs3::proc_name(proc_),
                                message: format!(
                                    "server returned cookie {c:#x} twice; listing stopped to avoid a loop"
                                ),
                                status: None,
                            },
                            sink,
                        );
                        return Ok(());
                    }
                    l.cookie = c;
                    l.verf = verf;
                    self.ready.push_front(QueuedOp {
                        op: Op::List { task },
                        attempts: 0,
                        jukebox_waits: 0,
                    });
                }
            }
        } else {
            l.eof = true;
        }
        self.process_entries(task, &reply, sink);
        if eof {
            if let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) {
                let dir = match &reply {
                    ListReply::Plus(r) => r.dir_attrs,
                    ListReply::Plain(r) => r.dir_attrs,
                };
                sink.dir_listed(
                    &l.task.path,
                    dir.map(|a| (a.fsid, a.fileid)),
                    l.seen.recorded(),
                );
                // The set is only needed while the listing may still restart.
                l.seen = EmittedSet::new(0);
                l.continued_from = U64Set::default();
            }
            self.maybe_finish(task, sink);
        }
        Ok(())
    }

    /// Emits a validated reply's entries (iterating is cheap and allocation-free).
    fn process_entries(&mut self, task: usize, reply: &ListReply<'_>, sink: &mut impl WalkSink) {
        let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
            return;
        };
        let dir_path: Arc<[u8]> = Arc::from(&l.task.path[..]);
        let dir_fh = l.task.fh;
        let depth = l.task.depth + 1;
        let mut lookups: Vec<LookupName> = Vec::new();
        let mut path = std::mem::take(&mut self.scratch_path);
        match reply {
            ListReply::Plus(reply) => {
                for e in reply.entries() {
                    if !self.accept_entry(task, &dir_path, e.name, e.fileid, depth, &mut path, sink)
                    {
                        continue;
                    }
                    match (e.attrs, e.fh) {
                        (Some(a), fh)
                            if fh.is_some()
                                || (a.ftype != FileType3::Dir
                                    && !(self.cfg.readlink
                                        && !self.cfg.dirs_only
                                        && a.ftype == FileType3::Lnk)) =>
                        {
                            self.on_child(task, &path, &a, fh, depth, sink);
                        }
                        (attrs, _) => lookups.push(LookupName {
                            name: e.name.into(),
                            fileid: e.fileid,
                            attrs: attrs.map(Box::new),
                        }),
                    }
                }
            }
            ListReply::Plain(reply) => {
                // `names` mode: a directory whose link count is 2 has no subdirectories (the
                // classic leaf optimisation), so its names need no LOOKUP.
                let leaf =
                    self.cfg.mode == Mode::Names && reply.dir_attrs.is_some_and(|a| a.nlink == 2);
                for e in reply.entries() {
                    if !self.accept_entry(task, &dir_path, e.name, e.fileid, depth, &mut path, sink)
                    {
                        continue;
                    }
                    if leaf {
                        let attrs = EntryAttrs::names_only(e.fileid);
                        self.emit(&path, &attrs, depth, None, sink);
                    } else {
                        lookups.push(LookupName {
                            name: e.name.into(),
                            fileid: e.fileid,
                            attrs: None,
                        });
                    }
                }
            }
        }
        self.scratch_path = path;
        // Moved into batches, not copied: each name was allocated once above.
        let mut names = lookups.into_iter();
        loop {
            let batch: Vec<LookupName> = names.by_ref().take(LOOKUP_BATCH_NAMES).collect();
            if batch.is_empty() {
                break;
            }
            sink.spawn(Task::Lookups(LookupBatch {
                dir_fh,
                dir_path: dir_path.clone(),
                depth,
                names: batch,
            }));
        }
    }

    /// Filters one listed name: hostile, duplicate, excluded or too deep entries are dropped.
    /// On acceptance `path` holds the entry's path.
    #[allow(clippy::too_many_arguments)]
    fn accept_entry(
        &mut self,
        task: usize,
        dir_path: &[u8],
        name: &[u8],
        fileid: u64,
        depth: u32,
        path: &mut Vec<u8>,
        sink: &mut impl WalkSink,
    ) -> bool {
        if !self.name_ok(dir_path, name, sink) {
            return false;
        }
        let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
            return false;
        };
        if !l.seen.insert(entry_key(name, fileid)) {
            self.stats.duplicates_skipped += 1;
            return false;
        }
        if self.cfg.max_depth.is_some_and(|m| depth > m) {
            return false;
        }
        path.clear();
        if dir_path != b"." {
            path.extend_from_slice(dir_path);
            path.push(b'/');
        }
        path.extend_from_slice(name);
        !self.cfg.excludes.excludes(name, path)
    }

    fn on_object_reply(
        &mut self,
        op: &Op,
        body: &[u8],
        sink: &mut impl WalkSink,
    ) -> Result<(), NfsReplyError> {
        match op {
            Op::Lookup {
                task,
                name,
                attrs: listed_attrs,
                ..
            } => {
                let ok = LookupReply::decode(body)?;
                let Some(TaskState::Lookups(g)) = self.tasks.get(*task) else {
                    return Ok(());
                };
                let path = join_path(&g.dir_path, name);
                let depth = g.depth;
                match ok.obj_attrs.or(listed_attrs.as_deref().copied()) {
                    Some(a) => self.on_child(*task, &path, &a, Some(ok.fh), depth, sink),
                    None => {
                        // The server omitted the attributes: ask for them, never guess.
                        self.add_pending(*task);
                        self.ready.push_back(QueuedOp {
                            op: Op::Getattr {
                                task: *task,
                                name: name.clone(),
                                fh: ok.fh,
                            },
                            attempts: 0,
                            jukebox_waits: 0,
                        });
                    }
                }
                self.op_finished(*task, sink);
            }
            Op::Getattr { task, name, fh } => {
                let a = GetattrReply::decode(body)?;
                let Some(TaskState::Lookups(g)) = self.tasks.get(*task) else {
                    return Ok(());
                };
                let path = join_path(&g.dir_path, name);
                let depth = g.depth;
                self.on_child(*task, &path, &a, Some(*fh), depth, sink);
                self.op_finished(*task, sink);
            }
            Op::Readlink {
                task,
                path,
                attrs,
                depth,
                ..
            } => {
                let ok = ReadlinkReply::decode(body)?;
                self.emit(path, attrs, *depth, Some(ok.target), sink);
                self.op_finished(*task, sink);
            }
            Op::List { .. } => unreachable!("listings are handled by on_list_reply"),
        }
        Ok(())
    }
}
