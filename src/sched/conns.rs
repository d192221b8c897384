//! The TCP connections of one thread's ring, shared by the scan's threads and the
//! bench ([`crate::bench::engine`]): connecting and reconnecting with backoff, reassembling
//! replies per connection, and noticing when a connection breaks. What the replies mean is the
//! caller's state machine's business; a [`ConnSet`] calls back with each reply's XID and
//! outcome, and with the slots that come up or go down.
//!
//! A slot is a connection's place in the set (`0..len`), stable across reconnects: it is what
//! the state machines call a connection.

use super::EngineError;
use crate::client::{connect_tcp, SourcePort};
use crate::ring::{Backend, ConnId, Ring, RingConfig, RingError, RingEvent, SendError};
use crate::rpc::{RecordAssembler, Reply, RpcError, DEFAULT_RECORD_BYTES_MAX};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const RECONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(50);
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The most a backoff doubles (50 ms × 2⁶ is past the 2 s cap anyway).
const RECONNECT_BACKOFF_DOUBLINGS_MAX: u32 = 6;
/// What a connection's send buffers start with: one batch of calls without growing.
const SEND_BUFFER_BYTES_INITIAL: usize = 64 << 10;
/// `slot_of` entry of a ring connection that belongs to no slot (closed, or never ours).
const NO_SLOT: usize = usize::MAX;

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
    assembler: RecordAssembler,
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
                    assembler: RecordAssembler::new(DEFAULT_RECORD_BYTES_MAX),
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

    /// Waits up to `timeout` for the ring and calls `on_reply(xid, outcome, now)` for every
    /// whole reply, in arrival order. A connection whose bytes do not frame or decode as
    /// replies, or that closes, is broken: nothing more of it is delivered, and
    /// [`ConnSet::take_broken`] reports it.
    pub fn poll(
        &mut self,
        timeout: Duration,
        mut on_reply: impl FnMut(u32, Result<&[u8], RpcError>, Instant),
    ) -> Result<usize, RingError> {
        let ConnSet {
            ring,
            conns,
            slot_of,
            broken,
            ..
        } = self;
        ring.poll(Some(timeout), &mut |ev| match ev {
            RingEvent::Data { conn, bytes } => {
                let Some(&slot) = slot_of.get(conn.index()) else {
                    return;
                };
                if slot == NO_SLOT || broken.iter().any(|(s, _)| *s == slot) {
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
                                on_reply(reply.xid, reply.outcome, now);
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
                    if slot != NO_SLOT {
                        slot_of[conn.index()] = NO_SLOT;
                        conns[slot].ring_id = None;
                        let why = error.map_or("closed by the server".into(), |e| e.to_string());
                        broken.push((slot, why));
                    }
                }
            }
            RingEvent::Writable { .. } => {}
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
            c.assembler.clear();
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
                replies.push((xid, outcome.unwrap().to_vec()))
            })
            .unwrap();
            set.take_broken(Instant::now(), |slot| down.push(slot));
        }
        (down, replies)
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
                    replies.push((xid, outcome.unwrap().to_vec()))
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
