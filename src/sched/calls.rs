//! The call engine of one thread: every call a protocol user (the walk, the bench's load
//! generator, the content reads to come) has queued or on the wire, and what happens to it
//! until its reply is handed back.
//!
//! - **In-flight slab, XID layout, stale detection:** a call on the wire lives in a [`Slab`];
//!   its XID is `thread (4 bits) | send sequence | slab key`, the key taking only the bits the
//!   calls in flight need, so a reply finds its call without a map, and a reply to a call whose
//!   slot was reused (a late reply to a call that timed out) carries a stale sequence and is
//!   counted and dropped ([`CallEngine::take_reply`]).
//! - **Expiry sweep:** calls past the timeout are found by a periodic sweep of the slab (a tenth
//!   of the timeout, at most every 100 ms) instead of a heap of per-call deadlines, which would
//!   hold an entry for every call made in the last timeout period.
//! - **Retry with backoff, busy waits (NFS3ERR_JUKEBOX), resend after a lost connection:**
//!   bounded by [`CallPolicy`], delayed calls wait in a heap by due time and go back to the
//!   front of the queue when due.
//! - **Connections:** which connection a call goes on ([`ConnBalancer`]: round-robin over the
//!   connections that are up and below their in-flight limit).
//!
//! What a call means (`C`) and how its bytes are encoded stay with the protocol user: the
//! engine never looks inside `C`, and knows no procedure's semantics. A user keeps one
//! `CallEngine` per thread and is driven by [`super::drive`].

use super::balance::ConnBalancer;
use super::rate::RateLimiter;
use slab::Slab;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most bits of the XID that hold the slab key (about a million calls in flight per thread);
/// the bits left between the key and the thread make the send sequence.
pub const XID_KEY_BITS_MAX: u32 = 20;
const XID_THREAD_SHIFT: u32 = 28;
const XID_THREAD_MASK: u32 = 0xF000_0000;
/// Retries after a timeout or a malformed reply wait 50 ms, doubling up to 2 s.
pub const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(50);
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A server that says it is busy (NFS3ERR_JUKEBOX) is asked again after 100 ms, doubling up to
/// 2 s.
pub const BUSY_DELAY_FIRST: Duration = Duration::from_millis(100);
pub const BUSY_DELAY_MAX: Duration = Duration::from_secs(2);
/// The expiry sweep runs at most this far apart (and at least a tenth of the timeout apart).
const EXPIRY_SWEEP_PERIOD_MAX: Duration = Duration::from_millis(100);

/// What the engine does with calls that fail to get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    /// A call without a reply after this long is taken out of the slab
    /// ([`CallEngine::on_timeout`] hands it back).
    pub timeout: Duration,
    /// Retries of one call ([`CallEngine::retry`]) after a timeout, a malformed reply or an
    /// RPC-level refusal.
    pub retries: u32,
    /// Busy answers one call may get ([`CallEngine::wait_busy`]) before it is given up.
    pub busy_waits_max: u32,
    /// Calls in flight on a connection that fails are resent (every procedure of the user is
    /// idempotent) or handed back to the user ([`CallEngine::on_conn_down`]).
    pub resend_lost: bool,
}

/// A call's history, carried across its resends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    pub retries: u32,
    pub busy_waits: u32,
}

/// A call waiting to be sent, or to be sent again.
#[derive(Debug)]
pub struct Queued<C> {
    pub call: C,
    pub attempts: Attempts,
}

impl<C> Queued<C> {
    pub fn new(call: C) -> Self {
        Queued {
            call,
            attempts: Attempts::default(),
        }
    }
}

/// A call on the wire, or one just taken off it (answered, expired or lost).
#[derive(Debug)]
pub struct Inflight<C> {
    pub call: C,
    /// The RPC procedure the user encoded (for its per-procedure figures).
    pub proc_: u32,
    pub xid: u32,
    /// The connection slot it went on.
    pub conn: usize,
    pub sent_at: Instant,
    pub attempts: Attempts,
}

impl<C> Inflight<C> {
    /// The call, to be queued again with its history.
    pub fn into_queued(self) -> Queued<C> {
        Queued {
            call: self.call,
            attempts: self.attempts,
        }
    }
}

/// What the engine counted on one thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounters {
    pub sent: u64,
    pub retries: u64,
    /// Calls taken out of the slab by the expiry sweep.
    pub timeouts: u64,
    pub busy_waits: u64,
    pub resent_after_reconnect: u64,
    /// Replies whose XID matches no call in flight (late replies to calls that timed out, or a
    /// confused server).
    pub unknown_xids: u64,
}

/// How XIDs are made on one thread.
#[derive(Debug, Clone, Copy)]
struct XidLayout {
    base: u32,
    seq: u32,
    key_bits: u32,
}

impl XidLayout {
    fn new(thread: usize, calls_max: usize) -> Self {
        XidLayout {
            base: ((thread as u32) << XID_THREAD_SHIFT) & XID_THREAD_MASK,
            seq: 0,
            key_bits: (usize::BITS - calls_max.saturating_sub(1).leading_zeros())
                .clamp(1, XID_KEY_BITS_MAX),
        }
    }

    /// top 4 bits: the thread; then a sequence, so a reused slot gets a new XID; low bits:
    /// the slab key, so a reply finds its call without a map.
    fn next(&mut self, key: usize) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.base | ((self.seq << self.key_bits) & !XID_THREAD_MASK) | key as u32
    }

    fn key(&self, xid: u32) -> usize {
        (xid & ((1 << self.key_bits) - 1)) as usize
    }
}

/// The calls of one thread: queued, delayed and in flight.
pub struct CallEngine<C> {
    policy: CallPolicy,
    inflight: Slab<Inflight<C>>,
    conns: ConnBalancer,
    ready: VecDeque<Queued<C>>,
    /// Calls held back (retry backoff, busy waits), by due time.
    delayed: BinaryHeap<Reverse<(Instant, usize)>>,
    delayed_calls: Slab<Queued<C>>,
    /// When the calls in flight are next swept for expiry (set by the first send).
    next_sweep: Option<Instant>,
    xid: XidLayout,
    rate: Option<Arc<RateLimiter>>,
    /// When the rate limit last refused a call: when the next one may go.
    rate_wait: Option<Instant>,
    counters: CallCounters,
}

impl<C> CallEngine<C> {
    /// An engine over `conns` connection slots (all down until [`CallEngine::on_conn_up`]),
    /// each allowed `inflight_per_conn` calls in flight. The low 4 bits of `thread` go into
    /// the XID's top bits (XIDs need only be unique per connection; the thread bits make a
    /// packet capture readable).
    pub fn new(policy: CallPolicy, conns: usize, inflight_per_conn: usize, thread: usize) -> Self {
        let inflight_per_conn = inflight_per_conn.max(1);
        CallEngine {
            policy,
            inflight: Slab::with_capacity((conns * inflight_per_conn).min(4096)),
            conns: ConnBalancer::new(conns, inflight_per_conn),
            ready: VecDeque::new(),
            delayed: BinaryHeap::new(),
            delayed_calls: Slab::new(),
            next_sweep: None,
            xid: XidLayout::new(thread, conns.saturating_mul(inflight_per_conn)),
            rate: None,
            rate_wait: None,
            counters: CallCounters::default(),
        }
    }

    /// Calls go out no faster than `rate` allows (shared by every thread of the run).
    pub fn with_rate_limit(mut self, rate: Option<Arc<RateLimiter>>) -> Self {
        self.rate = rate;
        self
    }

    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    pub fn counters(&self) -> &CallCounters {
        &self.counters
    }

    /// Calls on the wire.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Calls queued to be sent now.
    pub fn queued(&self) -> usize {
        self.ready.len()
    }

    /// Whether nothing is queued, delayed or on the wire.
    pub fn is_idle(&self) -> bool {
        self.inflight.is_empty() && self.ready.is_empty() && self.delayed_calls.is_empty()
    }

    /// Calls the connections that are up may hold at once.
    pub fn capacity(&self) -> usize {
        self.conns.up_count() * self.conns.inflight_max()
    }

    /// Whether a connection could take a call now.
    pub fn has_room(&self) -> bool {
        self.conns.has_room()
    }

    pub fn on_conn_up(&mut self, conn: usize) {
        self.conns.set_up(conn);
    }

    /// A connection failed. Its calls in flight go back to the front of the queue when the
    /// policy resends them (returning nothing), or are returned to the caller (in slab order).
    pub fn on_conn_down(&mut self, conn: usize) -> Vec<Inflight<C>> {
        self.conns.set_down(conn);
        let keys: Vec<usize> = self
            .inflight
            .iter()
            .filter(|(_, c)| c.conn == conn)
            .map(|(k, _)| k)
            .collect();
        let lost = keys.into_iter().map(|k| self.inflight.remove(k));
        if !self.policy.resend_lost {
            return lost.collect();
        }
        for call in lost {
            self.counters.resent_after_reconnect += 1;
            self.ready.push_front(call.into_queued());
        }
        Vec::new()
    }

    /// Queues a new call behind the others.
    pub fn push_back(&mut self, q: Queued<C>) {
        self.ready.push_back(q);
    }

    /// Queues a call before the others (the next call of a chain, a resend).
    pub fn push_front(&mut self, q: Queued<C>) {
        self.ready.push_front(q);
    }

    /// The next queued call and the connection it may go on, when a connection has room (and
    /// the rate limit allows a call). The caller sends it with [`CallEngine::send`] or drops it
    /// (a call whose purpose went away while it waited).
    pub fn next_ready(&mut self, now: Instant) -> Option<(usize, Queued<C>)> {
        if self.ready.is_empty() {
            return None;
        }
        let conn = self.pick_conn(now)?;
        self.ready.pop_front().map(|q| (conn, q))
    }

    /// A connection with room for one more call (the rate limit allowing), for users that make
    /// their calls on the spot instead of queueing them.
    pub fn pick_conn(&mut self, now: Instant) -> Option<usize> {
        if !self.conns.has_room() {
            return None;
        }
        if let Some(rate) = &self.rate {
            if !rate.try_take(now) {
                self.rate_wait = Some(rate.next_available());
                return None;
            }
            self.rate_wait = None;
        }
        self.conns.pick()
    }

    /// Puts `q` on the wire on `conn` (from [`CallEngine::next_ready`] or
    /// [`CallEngine::pick_conn`]): `encode` writes the call with the XID it is given and
    /// returns the RPC procedure it encoded, which `send` returns.
    pub fn send(
        &mut self,
        conn: usize,
        mut q: Queued<C>,
        now: Instant,
        encode: impl FnOnce(&mut C, u32) -> u32,
    ) -> u32 {
        let entry = self.inflight.vacant_entry();
        let key = entry.key();
        debug_assert!(key < 1 << self.xid.key_bits);
        let xid = self.xid.next(key);
        let proc_ = encode(&mut q.call, xid);
        entry.insert(Inflight {
            call: q.call,
            proc_,
            xid,
            conn,
            sent_at: now,
            attempts: q.attempts,
        });
        self.conns.on_sent(conn);
        self.counters.sent += 1;
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + self.sweep_period());
        }
        proc_
    }

    /// The call a reply with `xid` answers, taken out of the slab; `None` (and counted) when
    /// no call in flight has that XID.
    #[inline]
    pub fn take_reply(&mut self, xid: u32) -> Option<Inflight<C>> {
        let key = self.xid.key(xid);
        if self.inflight.get(key).is_none_or(|c| c.xid != xid) {
            self.counters.unknown_xids += 1;
            return None;
        }
        let call = self.inflight.remove(key);
        self.conns.on_done(call.conn);
        Some(call)
    }

    /// Sends `q` again after a backoff (50 ms doubling up to 2 s, over its retries so far), or
    /// hands it back when its retries are used up.
    pub fn retry(&mut self, mut q: Queued<C>, now: Instant) -> Result<(), Queued<C>> {
        if q.attempts.retries >= self.policy.retries {
            return Err(q);
        }
        // A server that timed out or sent garbage is likely struggling; hammering it again at
        // once helps nobody.
        let delay = RETRY_BACKOFF_FIRST
            .saturating_mul(1 << q.attempts.retries.min(6))
            .min(RETRY_BACKOFF_MAX);
        q.attempts.retries += 1;
        tracing::info!(target: "nfs_walker::verbose", "retry {} of {} after {delay:?}",
            q.attempts.retries, self.policy.retries);
        q.attempts.busy_waits = 0;
        self.counters.retries += 1;
        self.delay(q, now + delay);
        Ok(())
    }

    /// The server said it is busy (NFS3ERR_JUKEBOX): sends `q` again after `delay`, or hands
    /// it back when it has waited [`CallPolicy::busy_waits_max`] times already.
    pub fn wait_busy(
        &mut self,
        mut q: Queued<C>,
        delay: Duration,
        now: Instant,
    ) -> Result<(), Queued<C>> {
        if q.attempts.busy_waits >= self.policy.busy_waits_max {
            return Err(q);
        }
        q.attempts.busy_waits += 1;
        self.counters.busy_waits += 1;
        self.delay(q, now + delay);
        Ok(())
    }

    /// The default wait after `waits` busy answers: 100 ms doubling up to 2 s.
    pub fn busy_delay(waits: u32) -> Duration {
        BUSY_DELAY_FIRST
            .saturating_mul(1 << waits.min(5))
            .min(BUSY_DELAY_MAX)
    }

    fn delay(&mut self, q: Queued<C>, due: Instant) {
        let k = self.delayed_calls.insert(q);
        self.delayed.push(Reverse((due, k)));
    }

    /// The earliest time at which the engine has something to do: the expiry sweep, a delayed
    /// call falling due ([`CallEngine::on_timeout`]) or the rate limit granting a call that it
    /// refused ([`CallEngine::next_ready`] again).
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let sweep = if self.inflight.is_empty() {
            None
        } else {
            self.next_sweep
        };
        let delayed = self.delayed.peek().map(|Reverse((t, _))| *t);
        // A refusal in the past is stale: the user has not asked again since.
        let rate = self.rate_wait.filter(|t| *t > now);
        [sweep, delayed, rate].into_iter().flatten().min()
    }

    /// Releases delayed calls whose time has come (to the front of the queue) and, when the
    /// sweep is due, takes the calls past their deadline out of the slab and returns them.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Inflight<C>> {
        while let Some(Reverse((t, k))) = self.delayed.peek().copied() {
            if t > now {
                break;
            }
            self.delayed.pop();
            let q = self.delayed_calls.remove(k);
            self.ready.push_front(q);
        }
        if self.next_sweep.is_some_and(|t| t > now) {
            return Vec::new();
        }
        self.next_sweep = Some(now + self.sweep_period());
        let timeout = self.policy.timeout;
        let expired: Vec<usize> = self
            .inflight
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.sent_at) >= timeout)
            .map(|(k, _)| k)
            .collect();
        self.counters.timeouts += expired.len() as u64;
        expired
            .into_iter()
            .map(|k| {
                let call = self.inflight.remove(k);
                self.conns.on_done(call.conn);
                call
            })
            .collect()
    }

    /// Drops the queued calls `pred` picks (calls whose purpose went away while they waited).
    pub fn drop_queued(&mut self, mut pred: impl FnMut(&C) -> bool) {
        self.ready.retain(|q| !pred(&q.call));
    }

    /// Takes every call not on the wire: queued ones in order, then those held back (the
    /// protocol user can no longer send anything and fails them).
    pub fn take_unsent(&mut self) -> Vec<Queued<C>> {
        self.delayed.clear();
        let mut calls: Vec<Queued<C>> = self.ready.drain(..).collect();
        calls.extend(self.delayed_calls.drain());
        calls
    }

    /// Takes every call off the wire (the run ends), in slab order.
    pub fn drain_inflight(&mut self) -> Vec<Inflight<C>> {
        let calls: Vec<Inflight<C>> = self.inflight.drain().collect();
        for c in &calls {
            self.conns.on_done(c.conn);
        }
        calls
    }

    /// The expiry sweep runs this often: a tenth of the timeout, at most every 100 ms.
    fn sweep_period(&self) -> Duration {
        (self.policy.timeout / 10).clamp(Duration::from_millis(1), EXPIRY_SWEEP_PERIOD_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy(retries: u32, resend_lost: bool) -> CallPolicy {
        CallPolicy {
            timeout: Duration::from_secs(1),
            retries,
            busy_waits_max: 2,
            resend_lost,
        }
    }

    /// Sends every queued call; returns their XIDs.
    fn send_all(e: &mut CallEngine<u32>, now: Instant) -> Vec<u32> {
        let mut xids = Vec::new();
        while let Some((conn, q)) = e.next_ready(now) {
            assert_eq!(
                e.send(conn, q, now, |_, xid| {
                    xids.push(xid);
                    1
                }),
                1
            );
        }
        xids
    }

    #[test]
    fn xids_carry_thread_and_key_and_stale_replies_are_dropped() {
        let t0 = Instant::now();
        let mut e = CallEngine::new(policy(1, true), 2, 4, 3);
        e.on_conn_up(0);
        e.on_conn_up(1);
        for i in 0..8 {
            e.push_back(Queued::new(i));
        }
        e.push_back(Queued::new(99));
        let xids = send_all(&mut e, t0);
        assert_eq!(xids.len(), 8, "two connections of four calls each");
        assert_eq!(e.queued(), 1);
        assert!(xids.iter().all(|x| x >> 28 == 3));
        let answered = e.take_reply(xids[2]).expect("in flight");
        assert_eq!(answered.call, 2);
        assert!(e.take_reply(xids[2]).is_none(), "answered twice");
        // The slot is reused by the next call, under a new XID: the old one stays stale.
        let again = send_all(&mut e, t0);
        assert_eq!(again.len(), 1);
        assert_ne!(again[0], xids[2]);
        assert_eq!(again[0] & 7, xids[2] & 7, "same slot");
        assert!(e.take_reply(xids[2]).is_none());
        assert_eq!(e.counters().unknown_xids, 2);
        assert_eq!(e.take_reply(again[0]).unwrap().call, 99);
    }

    #[test]
    fn expiry_retry_backoff_and_give_up() {
        let t0 = Instant::now();
        let mut e = CallEngine::new(policy(1, true), 1, 8, 0);
        e.on_conn_up(0);
        e.push_back(Queued::new(7));
        let x = send_all(&mut e, t0);
        assert_eq!(e.poll_timeout(t0), Some(t0 + 100 * MS), "the sweep");
        assert!(e.on_timeout(t0 + 500 * MS).is_empty(), "not yet expired");
        let expired = e.on_timeout(t0 + 1100 * MS);
        assert_eq!(expired.len(), 1);
        assert_eq!(e.counters().timeouts, 1);
        let t1 = t0 + 1100 * MS;
        e.retry(expired.into_iter().next().unwrap().into_queued(), t1)
            .unwrap();
        assert_eq!(e.poll_timeout(t1), Some(t1 + 50 * MS), "first backoff");
        assert!(send_all(&mut e, t1).is_empty(), "held back");
        assert!(e.on_timeout(t1 + 50 * MS).is_empty());
        let y = send_all(&mut e, t1 + 50 * MS);
        assert_eq!(y.len(), 1);
        assert!(e.take_reply(x[0]).is_none(), "the first send is stale");
        let second = e.take_reply(y[0]).unwrap();
        assert_eq!(second.attempts.retries, 1);
        assert_eq!(e.retry(second.into_queued(), t1).unwrap_err().call, 7);
        assert!(e.is_idle());
    }

    #[test]
    fn busy_waits_are_bounded_and_lost_calls_resent_or_returned() {
        let t0 = Instant::now();
        let mut e = CallEngine::new(policy(0, true), 2, 8, 0);
        e.on_conn_up(0);
        e.on_conn_up(1);
        e.push_back(Queued::new(1));
        e.push_back(Queued::new(2));
        let x = send_all(&mut e, t0);
        let mut q = e.take_reply(x[0]).unwrap().into_queued();
        for _ in 0..2 {
            e.wait_busy(q, 10 * MS, t0).unwrap();
            e.on_timeout(t0 + 10 * MS);
            q = e.next_ready(t0 + 10 * MS).unwrap().1;
        }
        assert_eq!(
            e.wait_busy(q, 10 * MS, t0).unwrap_err().attempts.busy_waits,
            2
        );
        // Connection 1 fails: its call is queued again (resend policy)...
        assert!(e.on_conn_down(1).is_empty());
        assert_eq!((e.inflight(), e.queued()), (0, 1));
        assert_eq!(e.counters().resent_after_reconnect, 1);
        // ...or handed back (the bench's policy).
        let mut b = CallEngine::new(policy(0, false), 1, 8, 0);
        b.on_conn_up(0);
        b.push_back(Queued::new(5));
        send_all(&mut b, t0);
        let lost = b.on_conn_down(0);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].call, 5);
        assert!(b.next_ready(t0).is_none(), "no connection up");
    }
}
