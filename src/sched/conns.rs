//! The TCP connections of one thread's ring, shared by the scan's threads and the
//! bench ([`crate::bench::engine`]): connecting and reconnecting with backoff, reassembling
//! replies per connection, and noticing when a connection breaks. What the replies mean is the
//! caller's state machine's business; a [`ConnSet`] calls back with each reply's XID and
//! outcome, and with the slots that come up or go down.
//!
//! A slot is a connection's place in the set (`0..len`), stable across reconnects: it is what
//! the state machines call a connection.
//!
//! Replies are framed in place: a record that arrives whole in one receive is lent to the caller
//! straight from the ring's buffer. A large record (at least [`OWN_RECORD_BYTES_MIN`]) that does
//! not gets a buffer of its own: the bytes that came with its record mark are copied there and
//! the ring is steered to receive the rest straight into it. It is handed over as an
//! [`OwnedReply`] the caller may keep: most of a 1 MiB READ's data then crosses memory once, from
//! the socket to the hashing thread, instead of through the ring's buffer, a reassembly buffer
//! and a chunk copy. Those buffers come from, and go back to, the set's [`RecordPool`]. Small
//! records split across receives, and multi-fragment records, are reassembled by copying.

use super::EngineError;
use crate::client::{connect_tcp, SourcePort};
use crate::ring::{Backend, ConnId, RecvNext, Ring, RingConfig, RingError, RingEvent, SendError};
use crate::rpc::{RecordError, Reply, RpcError, DEFAULT_RECORD_BYTES_MAX};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const RECONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(50);
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The most a backoff doubles (50 ms × 2⁶ is past the 2 s cap anyway).
const RECONNECT_BACKOFF_DOUBLINGS_MAX: u32 = 6;
/// What a connection's send buffers start with: one batch of calls without growing.
const SEND_BUFFER_BYTES_INITIAL: usize = 64 << 10;
/// `slot_of` entry of a ring connection that belongs to no slot (closed, or never ours).
const NO_SLOT: usize = usize::MAX;
/// Records at least this long (RPC message bytes) that a receive does not bring whole are
/// received into a buffer of their own: large READ and READDIRPLUS replies. Below it the copy
/// through the reassembly buffer costs less than steering the ring (a receive more).
pub const OWN_RECORD_BYTES_MIN: usize = 64 << 10;
/// Idle record buffers a set keeps for reuse, at most (bytes of capacity): enough for a content
/// reader's whole budget of chunks in flight, so a steady stream neither allocates nor faults
/// in fresh pages; what is returned beyond it is freed.
pub const RECORD_POOL_BYTES_MAX: usize = 64 << 20;
/// Record buffers are allocated in multiples of this, so one serves records of nearby lengths
/// (a READ reply's header varies with its attributes).
const RECORD_BUF_ROUND_BYTES: usize = 64 << 10;
const LAST_FRAGMENT: u32 = 0x8000_0000;

/// Idle record buffers shared by a set and whoever holds its [`RecordBuf`]s (buffers come back
/// from any thread when dropped).
#[derive(Debug)]
pub struct RecordPool {
    idle: Mutex<PoolIdle>,
    bytes_max: usize,
}

#[derive(Debug, Default)]
struct PoolIdle {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

impl RecordPool {
    /// A pool keeping at most `bytes_max` bytes of idle buffers.
    pub fn new(bytes_max: usize) -> Arc<RecordPool> {
        Arc::new(RecordPool {
            idle: Mutex::new(PoolIdle::default()),
            bytes_max,
        })
    }

    /// An empty buffer with room for `len` bytes.
    fn take(&self, len: usize) -> Vec<u8> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = idle.bufs.iter().rposition(|b| b.capacity() >= len) {
            let buf = idle.bufs.swap_remove(i);
            idle.bytes -= buf.capacity();
            return buf;
        }
        drop(idle);
        Vec::with_capacity(len.next_multiple_of(RECORD_BUF_ROUND_BYTES))
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.bytes + buf.capacity() <= self.bytes_max {
            idle.bytes += buf.capacity();
            idle.bufs.push(buf);
        }
    }

    /// Bytes of idle buffers held.
    pub fn idle_bytes(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

/// One RPC record (the message, without its record mark) in a buffer of its own. Dropping it,
/// on any thread, gives the buffer back to its pool.
#[derive(Debug)]
pub struct RecordBuf {
    bytes: Vec<u8>,
    pool: Option<Arc<RecordPool>>,
}

impl RecordBuf {
    /// A record in a buffer of no pool (tests, or bytes from elsewhere).
    pub fn from_vec(bytes: Vec<u8>) -> RecordBuf {
        RecordBuf { bytes, pool: None }
    }
}

impl std::ops::Deref for RecordBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for RecordBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.bytes));
        }
    }
}

/// An accepted reply received into a buffer of its own: its result bytes lie at `body`.
#[derive(Debug)]
pub struct OwnedReply {
    record: RecordBuf,
    body: Range<usize>,
}

impl OwnedReply {
    /// `record` with its result bytes at `body` (which must lie within it).
    pub fn new(record: RecordBuf, body: Range<usize>) -> OwnedReply {
        assert!(body.start <= body.end && body.end <= record.len());
        OwnedReply { record, body }
    }

    /// The result bytes.
    pub fn body(&self) -> &[u8] {
        &self.record[self.body.clone()]
    }

    /// The record and where the result bytes lie in it.
    pub fn into_parts(self) -> (RecordBuf, Range<usize>) {
        (self.record, self.body)
    }
}

/// A reply as [`ConnSet::poll`] hands it over.
#[derive(Debug)]
pub enum ReplyBody<'a> {
    /// The RPC layer's verdict: result bytes lent for the call, or why there are none.
    Lent(Result<&'a [u8], RpcError>),
    /// An accepted reply in a buffer of its own, which the caller may keep.
    Owned(OwnedReply),
}

impl ReplyBody<'_> {
    /// The result bytes wherever they lie, or why there are none.
    pub fn result(&self) -> Result<&[u8], &RpcError> {
        match self {
            ReplyBody::Lent(outcome) => outcome.as_ref().map(|b| *b),
            ReplyBody::Owned(reply) => Ok(reply.body()),
        }
    }
}

/// A record framed out of a connection's bytes.
enum Framed<'a> {
    Lent(&'a [u8]),
    Owned(RecordBuf),
}

/// Splits a connection's byte stream into records (RFC 5531 record marking), steering the ring
/// so that large records land in buffers of their own.
#[derive(Debug)]
struct Framer {
    /// The fragment begun and not yet whole, its record mark first (a split mark, a small
    /// record, or a fragment of a multi-fragment record).
    carry: Vec<u8>,
    /// The fragments so far of a multi-fragment record (rare: servers send one fragment).
    assembled: Vec<u8>,
    record_bytes_max: u32,
}

impl Framer {
    fn new(record_bytes_max: u32) -> Framer {
        Framer {
            carry: Vec::new(),
            assembled: Vec::new(),
            record_bytes_max,
        }
    }

    fn clear(&mut self) {
        self.carry.clear();
        self.assembled.clear();
    }

    /// Whether a fragment mark is the record's last, and the fragment's length; refused past
    /// the record limit.
    fn mark(&self, mark: &[u8]) -> Result<(bool, usize), String> {
        let header = u32::from_be_bytes([mark[0], mark[1], mark[2], mark[3]]);
        let len = header & !LAST_FRAGMENT;
        let max = self.record_bytes_max;
        if len > max {
            return Err(RecordError::FragmentTooLarge { len, max }.to_string());
        }
        let total = self.assembled.len() as u64 + u64::from(len);
        if total > u64::from(max) {
            return Err(RecordError::RecordTooLarge { len: total, max }.to_string());
        }
        Ok((header & LAST_FRAGMENT != 0, len as usize))
    }

    /// Whether a fragment of `len` bytes, not whole in this receive, is received into a buffer
    /// of its own: when it is a whole record (one fragment), and a large one.
    fn steers(&self, last: bool, len: usize) -> bool {
        last && self.assembled.is_empty() && len >= OWN_RECORD_BYTES_MIN
    }

    /// Frames `input` (received bytes) into records for `deliver`, and steers the next receive
    /// (`next`) into a buffer of the pool for a large record begun and not whole. An error
    /// means the stream cannot be framed (the connection is broken).
    fn push(
        &mut self,
        mut input: &[u8],
        pool: &Arc<RecordPool>,
        next: &mut RecvNext,
        deliver: &mut impl FnMut(Framed<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        if !self.carry.is_empty() {
            if self.carry.len() < 4 {
                let k = (4 - self.carry.len()).min(input.len());
                self.carry.extend_from_slice(&input[..k]);
                input = &input[k..];
                if self.carry.len() < 4 {
                    return Ok(());
                }
            }
            let (last, len) = self.mark(&self.carry)?;
            let missing = len - (self.carry.len() - 4);
            if input.len() >= missing {
                self.carry.extend_from_slice(&input[..missing]);
                input = &input[missing..];
                let carry = std::mem::take(&mut self.carry);
                let done = self.fragment(&carry[4..], last, deliver);
                // Keep the buffer for the next split fragment.
                self.carry = carry;
                self.carry.clear();
                done?;
            } else if self.steers(last, len) {
                let mut buf = pool.take(len);
                buf.extend_from_slice(&self.carry[4..]);
                buf.extend_from_slice(input);
                self.carry.clear();
                *next = RecvNext::Into { buf, len };
                return Ok(());
            } else {
                self.carry.extend_from_slice(input);
                return Ok(());
            }
        }
        loop {
            if input.len() < 4 {
                self.carry.extend_from_slice(input);
                return Ok(());
            }
            let (last, len) = self.mark(input)?;
            let body = &input[4..];
            if body.len() >= len {
                self.fragment(&body[..len], last, deliver)?;
                input = &body[len..];
            } else if self.steers(last, len) {
                let mut buf = pool.take(len);
                buf.extend_from_slice(body);
                *next = RecvNext::Into { buf, len };
                return Ok(());
            } else {
                self.carry.extend_from_slice(input);
                return Ok(());
            }
        }
    }

    /// A whole fragment: a record when it is the last (lent in place when it is the only one).
    fn fragment(
        &mut self,
        bytes: &[u8],
        last: bool,
        deliver: &mut impl FnMut(Framed<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        if last && self.assembled.is_empty() {
            return deliver(Framed::Lent(bytes));
        }
        self.assembled.extend_from_slice(bytes);
        if !last {
            return Ok(());
        }
        let record = std::mem::take(&mut self.assembled);
        let done = deliver(Framed::Lent(&record));
        // Keep the buffer for the next multi-fragment record.
        self.assembled = record;
        self.assembled.clear();
        done
    }

    /// A record received into a buffer of its own (the ring filled what `push` steered it to).
    /// The next receive is a full one into the ring's buffer: the next record's mark and first
    /// bytes come with it and are copied (a short receive of the mark alone, to steer all of
    /// the next record, cost more: a walk of 1M entries in 310 KB READDIRPLUS replies took
    /// 0.16 s of system time instead of 0.07, the kernel copying the steered bytes slower).
    fn filled(
        rec: RecordBuf,
        deliver: &mut impl FnMut(Framed<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        deliver(Framed::Owned(rec))
    }
}

/// io_uring where the kernel allows it, epoll otherwise (containers often forbid io_uring).
pub fn probe_backend(cfg: &RingConfig) -> Backend {
    match Ring::open_auto(cfg) {
        Ok(r) => r.backend(),
        Err(_) => Backend::Epoll,
    }
}

/// `n` split into `parts` near-equal shares; share `i`.
pub fn share_of(n: usize, parts: usize, i: usize) -> usize {
    let parts = parts.max(1);
    n / parts + usize::from(i < n % parts)
}

/// The addresses of thread `thread`'s connections when `connections` in all are spread over
/// `threads` threads, and the threads' connections over `addrs` in turn. Empty when `addrs` is.
pub fn thread_addrs(
    addrs: &[SocketAddr],
    connections: usize,
    threads: usize,
    thread: usize,
) -> Vec<SocketAddr> {
    if addrs.is_empty() {
        return Vec::new();
    }
    let first: usize = (0..thread).map(|i| share_of(connections, threads, i)).sum();
    (0..share_of(connections, threads, thread))
        .map(|j| addrs[(first + j) % addrs.len()])
        .collect()
}

/// When a run stops trying a connection that keeps failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// When the connection is due again after more than `failures_max` failures in a row,
    /// lost connections counted: a server that accepts and then drops every connection (or
    /// answers garbage) ends the run as surely as one that refuses them. The scan's rule.
    WhenDue,
    /// Right after a failed connect takes the failures in a row past `failures_max`. Lost
    /// connections count towards it but never end the run themselves: a bench measures
    /// whatever the server does, and its dropped calls are counted as lost. The bench's rule.
    AfterFailedConnect,
}

/// How a [`ConnSet`] connects, and when it gives up.
#[derive(Debug, Clone, Copy)]
pub struct ReconnectPolicy {
    pub source_port: SourcePort,
    pub connect_timeout: Duration,
    /// Failures in a row of one connection (failed connects and lost connections, reset by a
    /// good reply) the run puts up with.
    pub failures_max: u32,
    /// While no connection of the set has ever been up: failed connects in a row of one
    /// connection past which the run fails with the connect error itself, so that a wrong
    /// address or a server that is not there fails fast instead of after the whole backoff.
    pub first_connect_failures_max: u32,
    pub give_up: GiveUp,
}

struct Conn {
    addr: SocketAddr,
    ring_id: Option<ConnId>,
    framer: Framer,
    /// Encoded calls the ring refused (`SendError::Full`), sent once it drains.
    pending: Vec<u8>,
    failures: u32,
    next_attempt: Instant,
}

/// One thread's ring and its connections: one slot per address given to [`ConnSet::new`].
pub struct ConnSet {
    ring: Ring,
    conns: Vec<Conn>,
    /// `ConnId::index()` -> slot, [`NO_SLOT`] when the ring connection is not (any more) ours:
    /// events of a closed connection are stale and dropped.
    slot_of: Vec<usize>,
    /// Per slot: calls the state machine encoded since the last [`ConnSet::flush`].
    staged: Vec<Vec<u8>>,
    /// Slots found broken since the last [`ConnSet::take_broken`], and why.
    broken: Vec<(usize, String)>,
    ever_connected: bool,
    reconnects: u64,
    pool: Arc<RecordPool>,
}

/// Backoff before the next attempt: 50 ms doubled `doublings` times (at most 6), at most 2 s.
fn backoff(doublings: u32) -> Duration {
    RECONNECT_BACKOFF_FIRST
        .saturating_mul(1 << doublings.min(RECONNECT_BACKOFF_DOUBLINGS_MAX))
        .min(RECONNECT_BACKOFF_MAX)
}

impl ConnSet {
    /// A set with one connection per address, all down and due at `now`.
    pub fn new(ring: Ring, addrs: &[SocketAddr], now: Instant) -> ConnSet {
        ConnSet {
            ring,
            conns: addrs
                .iter()
                .map(|&addr| Conn {
                    addr,
                    ring_id: None,
                    framer: Framer::new(DEFAULT_RECORD_BYTES_MAX),
                    pending: Vec::with_capacity(SEND_BUFFER_BYTES_INITIAL),
                    failures: 0,
                    next_attempt: now,
                })
                .collect(),
            slot_of: Vec::new(),
            staged: addrs
                .iter()
                .map(|_| Vec::with_capacity(SEND_BUFFER_BYTES_INITIAL))
                .collect(),
            broken: Vec::new(),
            ever_connected: false,
            reconnects: 0,
            pool: RecordPool::new(RECORD_POOL_BYTES_MAX),
        }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn backend(&self) -> Backend {
        self.ring.backend()
    }

    pub fn is_up(&self, slot: usize) -> bool {
        self.conns.get(slot).is_some_and(|c| c.ring_id.is_some())
    }

    pub fn all_down(&self) -> bool {
        self.conns.iter().all(|c| c.ring_id.is_none())
    }

    /// The earliest time a connection that is down may be tried again.
    pub fn next_attempt_min(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter(|c| c.ring_id.is_none())
            .map(|c| c.next_attempt)
            .min()
    }

    /// Connects that counted as reconnects: every connect after some connection of the set was
    /// up, and every connect of a slot that had failed before.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Tries every connection that is down and due, in slot order, calling `on_up` with each
    /// slot that comes up. A failed connect backs off: 100 ms, doubling, at most 2 s.
    ///
    /// Fails (and tries no further slot) when `policy` gives up: with the connect error
    /// while no connection was ever up ([`ReconnectPolicy::first_connect_failures_max`]),
    /// with [`EngineError::ServerLost`] after too many failures in a row.
    pub fn connect_due(
        &mut self,
        now: Instant,
        policy: &ReconnectPolicy,
        mut on_up: impl FnMut(usize),
    ) -> Result<(), EngineError> {
        // As things stood before this pass: a slot coming up in it does not make the next
        // one's first connect a reconnect.
        let ever_connected = self.ever_connected;
        for (slot, c) in self.conns.iter_mut().enumerate() {
            if c.ring_id.is_some() || now < c.next_attempt {
                continue;
            }
            if policy.give_up == GiveUp::WhenDue && c.failures > policy.failures_max {
                return Err(EngineError::ServerLost(format!(
                    "{} failed {} times in a row",
                    c.addr, c.failures
                )));
            }
            let attempt = connect_tcp(c.addr, policy.source_port, policy.connect_timeout)
                .map_err(|source| EngineError::Connect {
                    addr: c.addr,
                    source,
                })
                .and_then(|(stream, _)| self.ring.add_conn(stream).map_err(EngineError::from));
            match attempt {
                Ok(id) => {
                    if self.slot_of.len() <= id.index() {
                        self.slot_of.resize(id.index() + 1, NO_SLOT);
                    }
                    self.slot_of[id.index()] = slot;
                    c.ring_id = Some(id);
                    if ever_connected || c.failures > 0 {
                        self.reconnects += 1;
                    }
                    on_up(slot);
                }
                Err(e) => {
                    c.failures += 1;
                    if !ever_connected && c.failures > policy.first_connect_failures_max {
                        return Err(e);
                    }
                    if policy.give_up == GiveUp::AfterFailedConnect
                        && c.failures > policy.failures_max
                    {
                        return Err(EngineError::ServerLost(format!(
                            "{} failed {} times in a row: {e}",
                            c.addr, c.failures
                        )));
                    }
                    c.next_attempt = now + backoff(c.failures);
                }
            }
        }
        self.ever_connected |= self.conns.iter().any(|c| c.ring_id.is_some());
        Ok(())
    }

    /// One buffer per slot for the state machine to encode calls into (`poll_transmit`);
    /// [`ConnSet::flush`] hands them to the ring and empties them.
    pub fn send_bufs(&mut self) -> &mut [Vec<u8>] {
        &mut self.staged
    }

    /// Queues the staged calls on their connections. Calls the ring refuses for now stay
    /// pending and go first next time; a connection the ring refuses for good is broken.
    /// Calls staged for a connection that is down are dropped: the machine was told it is
    /// down and resends or counts them itself.
    pub fn flush(&mut self) {
        for (slot, c) in self.conns.iter_mut().enumerate() {
            let staged = &mut self.staged[slot];
            let Some(id) = c.ring_id else {
                staged.clear();
                continue;
            };
            if !c.pending.is_empty() {
                c.pending.extend_from_slice(staged);
                staged.clear();
            } else if staged.is_empty() {
                continue;
            } else {
                // Nothing waits: hand the staged bytes over without copying them first.
                std::mem::swap(staged, &mut c.pending);
            }
            match self.ring.send(id, &c.pending) {
                Ok(()) => c.pending.clear(),
                Err(SendError::Full) => {} // sent after the ring drains
                Err(e) => self.broken.push((slot, e.to_string())),
            }
        }
    }

    /// Waits up to `timeout` for the ring and calls `on_reply(xid, body, now)` for every
    /// whole reply, in arrival order. A connection whose bytes do not frame or decode as
    /// replies, or that closes, is broken: nothing more of it is delivered, and
    /// [`ConnSet::take_broken`] reports it.
    pub fn poll(
        &mut self,
        timeout: Duration,
        mut on_reply: impl FnMut(u32, ReplyBody<'_>, Instant),
    ) -> Result<usize, RingError> {
        let ConnSet {
            ring,
            conns,
            slot_of,
            broken,
            pool,
            ..
        } = self;
        ring.poll_steered(Some(timeout), &mut |ev, next| {
            let (conn, bytes) = match ev {
                RingEvent::Data { conn, bytes } => (conn, Framed::Lent(bytes)),
                RingEvent::Filled { conn, buf } => (
                    conn,
                    Framed::Owned(RecordBuf {
                        bytes: buf,
                        pool: Some(Arc::clone(pool)),
                    }),
                ),
                RingEvent::Closed { conn, error } => {
                    if let Some(&slot) = slot_of.get(conn.index()) {
                        if slot != NO_SLOT {
                            slot_of[conn.index()] = NO_SLOT;
                            conns[slot].ring_id = None;
                            let why =
                                error.map_or("closed by the server".into(), |e| e.to_string());
                            broken.push((slot, why));
                        }
                    }
                    return;
                }
                RingEvent::Writable { .. } => return,
            };
            let Some(&slot) = slot_of.get(conn.index()) else {
                return;
            };
            if slot == NO_SLOT || broken.iter().any(|(s, _)| *s == slot) {
                return;
            }
            let c = &mut conns[slot];
            let now = Instant::now();
            let mut deliver = |rec: Framed<'_>| -> Result<(), String> {
                let (xid, body) = match rec {
                    Framed::Lent(rec) => {
                        let reply =
                            Reply::decode(rec).map_err(|e| format!("undecodable reply: {e}"))?;
                        (reply.xid, ReplyBody::Lent(reply.outcome))
                    }
                    Framed::Owned(rec) => {
                        let reply =
                            Reply::decode(&rec).map_err(|e| format!("undecodable reply: {e}"))?;
                        match reply.outcome {
                            Ok(body) => {
                                // The result bytes are a slice of the record: find where.
                                let start = body.as_ptr() as usize - rec.as_ptr() as usize;
                                let body = start..start + body.len();
                                (reply.xid, ReplyBody::Owned(OwnedReply::new(rec, body)))
                            }
                            Err(e) => (reply.xid, ReplyBody::Lent(Err(e))),
                        }
                    }
                };
                c.failures = 0;
                on_reply(xid, body, now);
                Ok(())
            };
            let framed = match bytes {
                Framed::Lent(bytes) => c.framer.push(bytes, pool, next, &mut deliver),
                Framed::Owned(rec) => Framer::filled(rec, &mut deliver),
            };
            if let Err(why) = framed {
                broken.push((slot, why));
            }
        })
    }

    /// Closes the connections found broken and calls `on_down` with each slot, once per
    /// breakage. A broken connection loses its partial reply and unsent calls, counts a
    /// failure and is due again after 50 ms, doubling with the failures in a row, at most
    /// 1.6 s (a lost connection backs off one step less than a failed connect).
    pub fn take_broken(&mut self, now: Instant, mut on_down: impl FnMut(usize)) {
        for (slot, why) in self.broken.drain(..) {
            let c = &mut self.conns[slot];
            if let Some(id) = c.ring_id.take() {
                self.slot_of[id.index()] = NO_SLOT;
                self.ring.close(id);
            }
            tracing::debug!(conn = %c.addr, %why, "connection lost; reconnecting");
            c.framer.clear();
            c.pending.clear();
            self.staged[slot].clear();
            c.failures += 1;
            c.next_attempt = now
                + backoff(
                    c.failures
                        .min(RECONNECT_BACKOFF_DOUBLINGS_MAX)
                        .saturating_sub(1),
                );
            on_down(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::msg::{encode_accepted_reply, AcceptStat};
    use crate::rpc::record::{begin_record, end_record};
    use crate::xdr::XdrWriter;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread::JoinHandle;

    const WAIT_MAX: Duration = Duration::from_secs(5);

    fn policy(
        give_up: GiveUp,
        failures_max: u32,
        first_connect_failures_max: u32,
    ) -> ReconnectPolicy {
        ReconnectPolicy {
            source_port: SourcePort::Unprivileged,
            connect_timeout: Duration::from_secs(2),
            failures_max,
            first_connect_failures_max,
            give_up,
        }
    }

    fn set(addrs: &[SocketAddr]) -> (ConnSet, Instant) {
        let ring = Ring::new(Backend::Epoll, &RingConfig::default()).unwrap();
        let now = Instant::now();
        (ConnSet::new(ring, addrs, now), now)
    }

    /// An address nothing listens on (connects are refused at once), held by a bound socket
    /// so no other test can take the port meanwhile.
    fn refused_addr() -> (SocketAddr, socket2::Socket) {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        (addr, s)
    }

    /// A server that accepts `n` connections and closes each at once.
    fn accept_and_close(n: usize) -> (SocketAddr, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            for _ in 0..n {
                drop(l.accept().unwrap());
            }
        });
        (addr, h)
    }

    fn record(body: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let start = begin_record(&mut buf);
        buf.extend_from_slice(body);
        end_record(&mut buf, start);
        buf
    }

    fn reply_record(xid: u32, results: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        encode_accepted_reply(&mut XdrWriter::new(&mut body), xid, AcceptStat::Success);
        body.extend_from_slice(results);
        record(&body)
    }

    fn read_record(s: &mut TcpStream) -> Vec<u8> {
        let mut header = [0u8; 4];
        s.read_exact(&mut header).unwrap();
        let len = (u32::from_be_bytes(header) & 0x7fff_ffff) as usize;
        let mut body = vec![0; len];
        s.read_exact(&mut body).unwrap();
        body
    }

    /// Polls until `broken` slots are reported, collecting the replies delivered meanwhile.
    fn poll_until_down(set: &mut ConnSet) -> (Vec<usize>, Vec<(u32, Vec<u8>)>) {
        let deadline = Instant::now() + WAIT_MAX;
        let mut replies = Vec::new();
        let mut down = Vec::new();
        while down.is_empty() && Instant::now() < deadline {
            set.poll(Duration::from_millis(10), |xid, outcome, _| {
                replies.push((xid, outcome.result().unwrap().to_vec()))
            })
            .unwrap();
            set.take_broken(Instant::now(), |slot| down.push(slot));
        }
        (down, replies)
    }

    /// A stream of records as a server would send it: (record body, fragments it is sent in).
    fn stream_of(records: &[(Vec<u8>, usize)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (body, fragments) in records {
            let pieces: Vec<&[u8]> = if *fragments <= 1 || body.is_empty() {
                vec![body]
            } else {
                body.chunks(body.len().div_ceil(*fragments)).collect()
            };
            for (i, piece) in pieces.iter().enumerate() {
                let last = if i + 1 == pieces.len() {
                    LAST_FRAGMENT
                } else {
                    0
                };
                out.extend_from_slice(&(last | piece.len() as u32).to_be_bytes());
                out.extend_from_slice(piece);
            }
        }
        out
    }

    /// Feeds `stream` to a framer as a ring would: receives of the sizes `sizes` yields in
    /// turn (at most what the framer allows), steered ones filled in pieces of those sizes too.
    /// Returns the records delivered, each with whether it came in a buffer of its own.
    fn frame_like_a_ring(
        stream: &[u8],
        mut sizes: impl FnMut() -> usize,
    ) -> Result<Vec<(Vec<u8>, bool)>, String> {
        let pool = RecordPool::new(RECORD_POOL_BYTES_MAX);
        let mut framer = Framer::new(DEFAULT_RECORD_BYTES_MAX);
        let mut out = Vec::new();
        let mut deliver = |rec: Framed<'_>| {
            out.push(match rec {
                Framed::Lent(b) => (b.to_vec(), false),
                Framed::Owned(b) => (b.to_vec(), true),
            });
            Ok(())
        };
        let mut at = 0;
        let mut next = RecvNext::default();
        while at < stream.len() {
            match std::mem::take(&mut next) {
                RecvNext::Own { bytes_max } => {
                    let n = sizes().clamp(1, bytes_max).min(stream.len() - at);
                    framer.push(&stream[at..at + n], &pool, &mut next, &mut deliver)?;
                    at += n;
                }
                RecvNext::Into { mut buf, len } => {
                    assert!(buf.len() < len, "steered to a full buffer");
                    let n = sizes().max(1).min(len - buf.len()).min(stream.len() - at);
                    buf.extend_from_slice(&stream[at..at + n]);
                    at += n;
                    if buf.len() == len {
                        let rec = RecordBuf {
                            bytes: buf,
                            pool: Some(Arc::clone(&pool)),
                        };
                        Framer::filled(rec, &mut deliver)?;
                    } else {
                        next = RecvNext::Into { buf, len };
                    }
                }
            }
        }
        assert!(
            matches!(next, RecvNext::Own { .. }),
            "the stream ended inside a steered record"
        );
        assert!(framer.carry.is_empty() && framer.assembled.is_empty());
        Ok(out)
    }

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn records_are_framed_whole_whatever_the_receives_and_large_ones_land_in_own_buffers() {
        let own = OWN_RECORD_BYTES_MIN;
        let records: Vec<(Vec<u8>, usize)> = vec![
            (body(100, 1), 1),
            (body(own + 300_000, 2), 1),
            (body(own + 300_000, 3), 1),
            (body(0, 4), 1),
            (body(own - 1, 5), 1),
            (body(own, 6), 1),
            (body(3, 7), 1),
            (body(200_000, 8), 3), // multi-fragment: assembled by copying
            (body(1 << 20, 9), 1),
            (body(50, 10), 1),
        ];
        let stream = stream_of(&records);
        let want: Vec<&[u8]> = records.iter().map(|(b, _)| &b[..]).collect();
        let patterns: Vec<Box<dyn Fn(usize) -> usize>> = vec![
            Box::new(|_| 256 << 10),
            Box::new(|_| 1),
            Box::new(|_| 3),
            Box::new(|i| [5, 4096, 70_000, 2, 1 << 20][i % 5]),
            Box::new(|i| (i * 7919) % 100_003 + 1),
            Box::new(|_| usize::MAX),
        ];
        for (p, pattern) in patterns.iter().enumerate() {
            let mut i = 0;
            let got = frame_like_a_ring(&stream, || {
                i += 1;
                pattern(i)
            })
            .unwrap();
            let bodies: Vec<&[u8]> = got.iter().map(|(b, _)| &b[..]).collect();
            assert_eq!(bodies, want, "pattern {p}");
            for ((rec, owned), (_, fragments)) in got.iter().zip(&records) {
                if *owned {
                    assert!(rec.len() >= own && *fragments == 1, "pattern {p}");
                }
            }
            if p == 0 {
                // Receives of 256 KiB: the large records a receive does not bring whole are
                // received into their own buffers (the 64 KiB one comes whole with others,
                // and the 1 MiB one after a multi-fragment record is steered all the same).
                let owned: Vec<bool> = got.iter().map(|(_, o)| *o).collect();
                assert_eq!(
                    owned,
                    [false, true, true, false, false, false, false, false, true, false]
                );
            }
        }
    }

    #[test]
    fn oversized_records_break_the_stream() {
        let mut stream = (LAST_FRAGMENT | (DEFAULT_RECORD_BYTES_MAX + 1))
            .to_be_bytes()
            .to_vec();
        stream.extend_from_slice(&[0; 16]);
        let e = frame_like_a_ring(&stream, || 2).unwrap_err();
        assert!(e.contains("exceeds the limit"), "{e}");
    }

    #[test]
    fn record_buffers_go_back_to_their_pool_within_its_cap() {
        let pool = RecordPool::new(3 << 20);
        let bufs: Vec<Vec<u8>> = (0..4).map(|_| pool.take(1 << 20)).collect();
        assert!(bufs.iter().all(|b| b.capacity() >= 1 << 20 && b.is_empty()));
        let recs: Vec<RecordBuf> = bufs
            .into_iter()
            .map(|mut b| {
                b.extend_from_slice(&[7; 100]);
                RecordBuf {
                    bytes: b,
                    pool: Some(Arc::clone(&pool)),
                }
            })
            .collect();
        // Dropped on another thread, as the hashing threads do.
        std::thread::spawn(move || drop(recs)).join().unwrap();
        // Three fit under the cap; the fourth was freed.
        assert_eq!(pool.idle_bytes(), 3 << 20);
        let again = pool.take(1 << 20);
        assert!(again.is_empty() && again.capacity() == 1 << 20);
        assert_eq!(pool.idle_bytes(), 2 << 20);
        // A larger record than any idle buffer gets a new one.
        assert!(pool.take(3 << 20).capacity() >= 3 << 20);
        assert_eq!(pool.idle_bytes(), 2 << 20);
    }

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

    #[test]
    fn threads_take_the_addresses_in_turn() {
        let addrs: Vec<SocketAddr> = (1..=3)
            .map(|i| SocketAddr::from(([10, 0, 0, i], 2049)))
            .collect();
        // 2 threads × 2 connections: thread i connection j goes to addrs[(2i + j) % 3].
        assert_eq!(thread_addrs(&addrs, 4, 2, 0), vec![addrs[0], addrs[1]]);
        assert_eq!(thread_addrs(&addrs, 4, 2, 1), vec![addrs[2], addrs[0]]);
        // 5 over 2: the first thread takes the extra one.
        assert_eq!(thread_addrs(&addrs, 5, 2, 0).len(), 3);
        assert_eq!(thread_addrs(&addrs, 5, 2, 1), vec![addrs[0], addrs[1]]);
        assert!(thread_addrs(&[], 4, 2, 0).is_empty());
    }

    #[test]
    fn first_connect_fails_with_the_connect_error_after_its_attempts() {
        let (addr, _held) = refused_addr();
        let (mut conns, now) = set(&[addr]);
        let scan = policy(GiveUp::WhenDue, 20, 2);
        let mut ups = 0;
        // Two failures back off 100 ms, then 200 ms; the third is fatal.
        conns.connect_due(now, &scan, |_| ups += 1).unwrap();
        assert_eq!(
            conns.next_attempt_min(),
            Some(now + Duration::from_millis(100))
        );
        // Not due yet: nothing is tried.
        conns.connect_due(now, &scan, |_| ups += 1).unwrap();
        let t1 = now + Duration::from_millis(100);
        conns.connect_due(t1, &scan, |_| ups += 1).unwrap();
        assert_eq!(
            conns.next_attempt_min(),
            Some(t1 + Duration::from_millis(200))
        );
        let e = conns
            .connect_due(t1 + Duration::from_millis(200), &scan, |_| ups += 1)
            .unwrap_err();
        assert!(
            matches!(e, EngineError::Connect { addr: a, .. } if a == addr),
            "{e}"
        );
        assert_eq!((ups, conns.reconnects()), (0, 0));

        // The bench connects once before its start: the first failure is fatal.
        let (mut conns, now) = set(&[addr]);
        let e = conns
            .connect_due(now, &policy(GiveUp::AfterFailedConnect, 10, 0), |_| {})
            .unwrap_err();
        assert!(matches!(e, EngineError::Connect { .. }), "{e}");
    }

    #[test]
    fn calls_go_out_and_replies_come_back_with_their_xids() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut calls = Vec::new();
            for _ in 0..2 {
                let call = read_record(&mut s);
                let xid = u32::from_be_bytes(call[..4].try_into().unwrap());
                calls.push(call);
                s.write_all(&reply_record(xid, &xid.to_be_bytes())).unwrap();
            }
            // Both connections stay open (the second one in the backlog) until told.
            let _ = finish_rx.recv();
            calls
        });
        let (mut conns, now) = set(&[addr, addr]);
        let mut ups = Vec::new();
        conns
            .connect_due(now, &policy(GiveUp::WhenDue, 20, 2), |s| ups.push(s))
            .unwrap();
        assert_eq!(ups, vec![0, 1]);
        assert_eq!(conns.reconnects(), 0, "a first connect is not a reconnect");
        // Only slot 0 carries calls (the server answers the first connection it accepts).
        conns.send_bufs()[0].extend_from_slice(&record(&7u32.to_be_bytes()));
        conns.send_bufs()[0].extend_from_slice(&record(&[0, 0, 0, 9, 1, 2]));
        conns.flush();
        assert!(conns.send_bufs().iter().all(|b| b.is_empty()));
        let deadline = Instant::now() + WAIT_MAX;
        let mut replies = Vec::new();
        while replies.len() < 2 && Instant::now() < deadline {
            conns
                .poll(Duration::from_millis(10), |xid, outcome, _| {
                    replies.push((xid, outcome.result().unwrap().to_vec()))
                })
                .unwrap();
        }
        assert_eq!(
            replies,
            vec![
                (7, 7u32.to_be_bytes().to_vec()),
                (9, 9u32.to_be_bytes().to_vec())
            ]
        );
        let mut down = Vec::new();
        conns.take_broken(Instant::now(), |s| down.push(s));
        assert!(down.is_empty());
        finish_tx.send(()).unwrap();
        let calls = server.join().unwrap();
        assert_eq!(
            calls,
            vec![7u32.to_be_bytes().to_vec(), vec![0, 0, 0, 9, 1, 2]]
        );
    }

    #[test]
    fn a_lost_connection_goes_down_once_backs_off_and_counts_a_reconnect() {
        let (addr, server) = accept_and_close(2);
        let (mut conns, now) = set(&[addr]);
        let scan = policy(GiveUp::WhenDue, 20, 2);
        let mut ups = 0;
        conns.connect_due(now, &scan, |_| ups += 1).unwrap();
        assert!(conns.is_up(0));
        let (down, replies) = poll_until_down(&mut conns);
        assert_eq!(down, vec![0]);
        assert!(replies.is_empty());
        assert!(conns.all_down());
        let due = conns.next_attempt_min().unwrap();
        // One lost connection: 50 ms.
        assert!(due > now && due <= Instant::now() + Duration::from_millis(50));
        conns.connect_due(due, &scan, |_| ups += 1).unwrap();
        assert_eq!((ups, conns.reconnects()), (2, 1));
        server.join().unwrap();
    }

    #[test]
    fn an_undecodable_reply_breaks_the_connection_and_drops_what_follows() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut bytes = reply_record(1, &[]);
            // A CALL where a REPLY belongs, then a good reply on the same connection.
            bytes.extend(record(&[0, 0, 0, 2, 0, 0, 0, 0]));
            bytes.extend(reply_record(3, &[]));
            s.write_all(&bytes).unwrap();
            // Hold the connection until the client closes it.
            let _ = s.read(&mut [0; 1]);
        });
        let (mut conns, now) = set(&[addr]);
        conns
            .connect_due(now, &policy(GiveUp::WhenDue, 20, 2), |_| {})
            .unwrap();
        let (down, replies) = poll_until_down(&mut conns);
        assert_eq!(down, vec![0]);
        assert_eq!(replies, vec![(1, vec![])]);
        assert!(!conns.is_up(0));
        server.join().unwrap();
    }

    /// Connects slot 0 and loses it to [`accept_and_close`] `times` times; returns when the
    /// slot is due again.
    fn lose_connection(
        conns: &mut ConnSet,
        policy: &ReconnectPolicy,
        mut now: Instant,
        times: usize,
    ) -> Instant {
        for _ in 0..times {
            conns.connect_due(now, policy, |_| {}).unwrap();
            assert_eq!(poll_until_down(conns).0, vec![0]);
            now = conns.next_attempt_min().unwrap();
        }
        now
    }

    #[test]
    fn the_scan_gives_up_on_a_connection_that_keeps_dropping() {
        let (addr, server) = accept_and_close(2);
        let (mut conns, now) = set(&[addr]);
        let scan = policy(GiveUp::WhenDue, 1, 1);
        let due = lose_connection(&mut conns, &scan, now, 2);
        // Two losses in a row, one allowed: the scan ends when the slot is due again.
        let e = conns.connect_due(due, &scan, |_| {}).unwrap_err();
        assert!(
            matches!(&e, EngineError::ServerLost(m) if m.ends_with("failed 2 times in a row")),
            "{e}"
        );
        server.join().unwrap();
    }

    #[test]
    fn the_bench_gives_up_only_after_a_failed_connect() {
        let (addr, server) = accept_and_close(3);
        let (mut conns, now) = set(&[addr]);
        let bench = policy(GiveUp::AfterFailedConnect, 1, 0);
        let due = lose_connection(&mut conns, &bench, now, 3);
        server.join().unwrap();
        // The listener is gone: the next connect fails, past the limit.
        let e = conns.connect_due(due, &bench, |_| {}).unwrap_err();
        assert!(
            matches!(&e, EngineError::ServerLost(m) if m.contains("failed 4 times in a row: cannot connect")),
            "{e}"
        );
    }
}
