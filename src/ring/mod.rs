//! I/O backends: move bytes over TCP sockets for one thread.
//!
//! A [`Ring`] owns a set of connected TCP sockets and an event source (io_uring or epoll). It
//! knows nothing of RPC or NFS: bytes queued with [`Ring::send`] go out in order, bytes
//! received come back as [`RingEvent::Data`] borrowed from a per-connection buffer that is
//! reused for the next receive.
//!
//! Sends are batched: [`Ring::send`] only copies into the connection's send queue; the socket
//! is written during [`Ring::poll`], so many small calls queued between two polls leave in one
//! send. The queue is capped ([`RingConfig::send_buffer_bytes_max`]); when a send would
//! overflow it the caller gets [`SendError::Full`] and a [`RingEvent::Writable`] once the queue
//! has drained below half.
//!
//! Receives can be steered ([`Ring::poll_steered`]): while handling a connection's `Data` or
//! `Filled` event the caller may have the connection's next bytes received straight into a
//! buffer of its own, up to a length ([`RecvNext::Into`], reported as one [`RingEvent::Filled`]),
//! or take a short receive into the ring's buffer ([`RecvNext::Own`]). A large message whose
//! length the caller has just read then crosses memory once, from the socket to where it is
//! used, instead of through the ring's buffer and a copy.
//!
//! Both backends deliver the same events for the same traffic; only the chunking of `Data`
//! may differ.

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{eventfd, EventfdFlags};
use thiserror::Error;

mod epoll;
mod uring;

/// Most connections one ring serves; slot indices stay below this.
pub const CONNS_PER_RING_MAX: usize = 1024;

/// Largest receive buffer per connection (a single recv never needs more).
pub const RECV_BUFFER_BYTES_MAX: usize = 16 << 20;

/// Largest send queue per connection we accept in a config.
pub const SEND_BUFFER_BYTES_MAX_LIMIT: usize = 1 << 30;

/// Largest submission queue we ask the kernel for.
pub const RING_ENTRIES_MAX: u32 = 32 * 1024;

/// Which event mechanism a [`Ring`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Uring,
    Epoll,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown I/O backend {0:?} (expected \"uring\" or \"epoll\")")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uring" | "io_uring" | "io-uring" => Ok(Backend::Uring),
            "epoll" => Ok(Backend::Epoll),
            other => Err(UnknownBackend(other.to_owned())),
        }
    }
}

/// Sizes and limits of one ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingConfig {
    /// Receive buffer per connection; one receive delivers at most this many bytes.
    pub recv_buffer_bytes: usize,
    /// Cap on the bytes queued for sending per connection (including bytes being sent).
    pub send_buffer_bytes_max: usize,
    /// io_uring submission queue size (ignored by epoll).
    pub entries: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            recv_buffer_bytes: 256 << 10,
            send_buffer_bytes_max: 8 << 20,
            entries: 1024,
        }
    }
}

impl RingConfig {
    fn validate(&self) -> Result<(), RingError> {
        if self.recv_buffer_bytes == 0 || self.recv_buffer_bytes > RECV_BUFFER_BYTES_MAX {
            return Err(RingError::Config(format!(
                "recv_buffer_bytes {} is outside 1..={RECV_BUFFER_BYTES_MAX}",
                self.recv_buffer_bytes
            )));
        }
        if self.send_buffer_bytes_max == 0
            || self.send_buffer_bytes_max > SEND_BUFFER_BYTES_MAX_LIMIT
        {
            return Err(RingError::Config(format!(
                "send_buffer_bytes_max {} is outside 1..={SEND_BUFFER_BYTES_MAX_LIMIT}",
                self.send_buffer_bytes_max
            )));
        }
        if self.entries == 0 || self.entries > RING_ENTRIES_MAX {
            return Err(RingError::Config(format!(
                "entries {} is outside 1..={RING_ENTRIES_MAX}",
                self.entries
            )));
        }
        Ok(())
    }
}

/// A connection inside one ring: the index of its slot. A slot is reused after its connection
/// is closed, so an id must not be used after `close` or a `Closed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u32);

impl ConnId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What [`Ring::poll`] reports.
#[derive(Debug)]
pub enum RingEvent<'a> {
    /// Bytes received, borrowed from the connection's receive buffer.
    Data { conn: ConnId, bytes: &'a [u8] },
    /// A buffer given with [`RecvNext::Into`] holds its length: it is the caller's again.
    Filled { conn: ConnId, buf: Vec<u8> },
    /// The peer closed the connection (`error: None`) or it failed; the connection is gone.
    Closed {
        conn: ConnId,
        error: Option<io::Error>,
    },
    /// The send queue drained below half of its cap after a send was refused with `Full`.
    Writable { conn: ConnId },
}

/// Where a connection's next received bytes go: chosen by the [`Ring::poll_steered`] callback
/// while it handles a `Data` or `Filled` event of that connection (other events ignore it).
#[derive(Debug)]
pub enum RecvNext {
    /// The ring's own buffer, at most `bytes_max` bytes for the next receive (fewer than the
    /// buffer holds: a short receive that leaves the rest in the socket for a later steer).
    Own { bytes_max: usize },
    /// Straight into `buf`, appended until it holds `len` bytes (room is reserved as needed),
    /// however many receives that takes; then one [`RingEvent::Filled`] gives it back. Every
    /// byte in between goes there, none through `Data`.
    Into { buf: Vec<u8>, len: usize },
}

impl Default for RecvNext {
    /// As many bytes as the ring's buffer holds, into it.
    fn default() -> Self {
        RecvNext::Own {
            bytes_max: usize::MAX,
        }
    }
}

/// A connection's steered receive: `buf` is filled to `len` (the kernel may be writing into it).
#[derive(Debug)]
pub(crate) struct RecvInto {
    pub(crate) buf: Vec<u8>,
    pub(crate) len: usize,
}

impl RecvInto {
    /// The bytes still to receive.
    pub(crate) fn missing(&self) -> usize {
        self.len - self.buf.len()
    }
}

/// Applies a callback's choice: `Ok` with the connection's steered receive (if any) and the
/// own buffer's next receive size, or `Err(buf)` when the buffer is full already (to be
/// reported as `Filled` at once).
pub(crate) fn steer(next: RecvNext) -> Result<(Option<RecvInto>, usize), Vec<u8>> {
    match next {
        RecvNext::Own { bytes_max } => Ok((None, bytes_max.max(1))),
        RecvNext::Into { buf, len } if buf.len() >= len => Err(buf),
        RecvNext::Into { mut buf, len } => {
            buf.reserve_exact(len - buf.len());
            Ok((Some(RecvInto { buf, len }), usize::MAX))
        }
    }
}

/// A backend's connection, as [`steer_recv`] sets where its next bytes go.
pub(crate) trait SteeredConn {
    /// Its next bytes go into `into` (a buffer the caller steered it to) or, without one, the
    /// ring's buffer, `own_bytes_max` at most.
    fn steer_to(&mut self, into: Option<RecvInto>, own_bytes_max: usize);
}

/// Applies the callback's choice of where connection `slot`'s next bytes go; a steered buffer
/// that is full already is given back at once. Returns the events delivered. (One place for
/// both backends.)
pub(crate) fn steer_recv<C: SteeredConn>(
    conns: &mut SlotTable<C>,
    slot: u32,
    mut next: RecvNext,
    on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
) -> usize {
    let mut delivered = 0;
    loop {
        let Some(conn) = conns.get_mut(slot) else {
            return delivered;
        };
        match steer(next) {
            Ok((into, own_bytes_max)) => {
                conn.steer_to(into, own_bytes_max);
                return delivered;
            }
            Err(buf) => {
                next = RecvNext::default();
                on_event(
                    RingEvent::Filled {
                        conn: ConnId(slot),
                        buf,
                    },
                    &mut next,
                );
                delivered += 1;
            }
        }
    }
}

#[derive(Debug, Error)]
pub enum RingError {
    /// The backend could not be created (io_uring_setup, epoll_create, eventfd).
    #[error("I/O backend setup failed: {0}")]
    Setup(#[source] io::Error),
    /// A system call on the ring itself failed.
    #[error("I/O backend error: {0}")]
    Io(#[source] io::Error),
    /// `add_conn` on a ring that already holds its maximum number of connections.
    #[error("ring already holds its maximum of {max} connections")]
    TooManyConns { max: usize },
    #[error("invalid ring config: {0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SendError {
    /// Queuing these bytes would exceed the send cap; retry after a `Writable` event.
    #[error("send queue full")]
    Full,
    /// No such connection (closed, or never opened).
    #[error("connection closed")]
    Closed,
    /// The bytes alone exceed the send cap; they can never be queued.
    #[error("{len} bytes exceed the send queue cap of {max}")]
    TooLarge { len: usize, max: usize },
}

/// Wakes a ring's `poll` from another thread.
#[derive(Debug, Clone)]
pub struct RingWaker {
    eventfd: Arc<OwnedFd>,
}

impl RingWaker {
    pub fn wake(&self) {
        // A full counter (EAGAIN) means a wakeup is already pending; nothing else can fail on
        // a valid eventfd.
        let _ = rustix::io::write(&*self.eventfd, &1u64.to_ne_bytes());
    }
}

/// The eventfd behind a [`RingWaker`], owned by the ring.
#[derive(Debug)]
pub(crate) struct WakeFd {
    eventfd: Arc<OwnedFd>,
}

impl WakeFd {
    pub(crate) fn new() -> Result<WakeFd, RingError> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| RingError::Setup(e.into()))?;
        Ok(WakeFd {
            eventfd: Arc::new(fd),
        })
    }

    pub(crate) fn waker(&self) -> RingWaker {
        RingWaker {
            eventfd: Arc::clone(&self.eventfd),
        }
    }

    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.eventfd.as_fd()
    }

    /// Resets the counter so the next wait blocks again.
    pub(crate) fn drain(&self) {
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(&*self.eventfd, &mut counter);
    }
}

/// One thread's I/O: a set of TCP connections served by io_uring or epoll.
pub struct Ring {
    inner: RingInner,
}

// One ring per thread, rarely moved: a pointer chase per call would cost more than the size.
#[allow(clippy::large_enum_variant)]
enum RingInner {
    Uring(uring::UringBackend),
    Epoll(epoll::EpollBackend),
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Whether an io_uring setup error means "not allowed or not there here" (seccomp in
/// containers, old kernels) rather than a real failure.
fn is_uring_unavailable(error: &RingError) -> bool {
    let RingError::Setup(e) = error else {
        return false;
    };
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM) | Some(libc::ENOSYS) | Some(libc::EACCES)
    ) || e.kind() == io::ErrorKind::Unsupported
}

impl Ring {
    /// Creates a ring on `backend`; fails with [`RingError::Setup`] if the kernel refuses.
    pub fn new(backend: Backend, cfg: &RingConfig) -> Result<Ring, RingError> {
        cfg.validate()?;
        let inner = match backend {
            Backend::Uring => RingInner::Uring(uring::UringBackend::new(cfg)?),
            Backend::Epoll => RingInner::Epoll(epoll::EpollBackend::new(cfg)?),
        };
        Ok(Ring { inner })
    }

    /// Tries io_uring and falls back to epoll when io_uring is denied or missing (EPERM,
    /// ENOSYS, EACCES: typical in containers; or a kernel without the features we need).
    pub fn open_auto(cfg: &RingConfig) -> Result<Ring, RingError> {
        match Ring::new(Backend::Uring, cfg) {
            Ok(ring) => Ok(ring),
            Err(error) if is_uring_unavailable(&error) => {
                tracing::info!(%error, "io_uring unavailable, using epoll");
                Ring::new(Backend::Epoll, cfg)
            }
            Err(error) => Err(error),
        }
    }

    pub fn backend(&self) -> Backend {
        match &self.inner {
            RingInner::Uring(_) => Backend::Uring,
            RingInner::Epoll(_) => Backend::Epoll,
        }
    }

    /// Takes ownership of a connected stream and starts receiving on it. TCP_NODELAY is set.
    /// The epoll backend makes the socket non-blocking; the io_uring backend keeps it
    /// blocking, because io_uring waits for readiness itself and some kernels fail operations
    /// on non-blocking files with EAGAIN instead of waiting.
    pub fn add_conn(&mut self, stream: TcpStream) -> Result<ConnId, RingError> {
        stream.set_nodelay(true).map_err(RingError::Io)?;
        match &mut self.inner {
            RingInner::Uring(b) => b.add_conn(stream),
            RingInner::Epoll(b) => b.add_conn(stream),
        }
    }

    /// Appends a copy of `bytes` to the connection's send queue; the socket is written during
    /// the next [`Ring::poll`].
    pub fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        match &mut self.inner {
            RingInner::Uring(b) => b.send(conn, bytes),
            RingInner::Epoll(b) => b.send(conn, bytes),
        }
    }

    /// Bytes queued and not yet written to the socket (0 for an unknown connection).
    pub fn queued_send_bytes(&self, conn: ConnId) -> usize {
        match &self.inner {
            RingInner::Uring(b) => b.queued_send_bytes(conn),
            RingInner::Epoll(b) => b.queued_send_bytes(conn),
        }
    }

    /// Closes the connection and drops its queued bytes. No `Closed` event follows, and no
    /// event for it is delivered afterwards, even if its slot is reused at once.
    pub fn close(&mut self, conn: ConnId) {
        match &mut self.inner {
            RingInner::Uring(b) => b.close(conn),
            RingInner::Epoll(b) => b.close(conn),
        }
    }

    /// Number of open connections.
    pub fn conn_count(&self) -> usize {
        match &self.inner {
            RingInner::Uring(b) => b.conn_count(),
            RingInner::Epoll(b) => b.conn_count(),
        }
    }

    /// Writes queued bytes, waits up to `timeout` (`None`: until something happens,
    /// `Some(ZERO)`: not at all) and calls `on_event` for each event. Returns the number of
    /// events delivered; that can be 0 after a wakeup, a timeout or internal progress.
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        on_event: &mut impl FnMut(RingEvent<'_>),
    ) -> Result<usize, RingError> {
        self.poll_steered(timeout, &mut |ev, _| on_event(ev))
    }

    /// [`Ring::poll`] whose callback may also steer the connection's next receive (see
    /// [`RecvNext`]; left alone it is a full receive into the ring's buffer).
    pub fn poll_steered(
        &mut self,
        timeout: Option<Duration>,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> Result<usize, RingError> {
        match &mut self.inner {
            RingInner::Uring(b) => b.poll(timeout, on_event),
            RingInner::Epoll(b) => b.poll(timeout, on_event),
        }
    }

    /// A handle that wakes this ring's `poll` from any thread.
    pub fn waker(&self) -> RingWaker {
        match &self.inner {
            RingInner::Uring(b) => b.waker(),
            RingInner::Epoll(b) => b.waker(),
        }
    }
}

/// A table of connection slots with a generation per slot, so that a completion or readiness
/// token naming an old occupant of a reused slot can be told apart from the current one.
#[derive(Debug)]
pub(crate) struct SlotTable<T> {
    slots: Vec<Slot<T>>,
    /// Free slot indices; reused last-in first-out.
    free: Vec<u32>,
    len: usize,
    len_max: usize,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> SlotTable<T> {
    pub(crate) fn new(len_max: usize) -> Self {
        SlotTable {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            len_max,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` and returns its slot index and generation, or gives it back when full.
    pub(crate) fn insert(&mut self, value: T) -> Result<(u32, u32), T> {
        if self.len >= self.len_max {
            return Err(value);
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.value = Some(value);
        self.len += 1;
        Ok((index, slot.generation))
    }

    pub(crate) fn get(&self, index: u32) -> Option<&T> {
        self.slots.get(index as usize)?.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        self.slots.get_mut(index as usize)?.value.as_mut()
    }

    /// The value in `index` if it is still the occupant of `generation`.
    pub(crate) fn get_current_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation != generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// Takes the value out and retires its generation.
    pub(crate) fn remove(&mut self, index: u32) -> Option<T> {
        let slot = self.slots.get_mut(index as usize)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.len -= 1;
        self.free.push(index);
        Some(value)
    }

    /// Indices of occupied slots.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, _)| i as u32)
    }
}

/// A connection's outgoing bytes, double buffered: `active` is being written (io_uring may
/// hold a pointer into it), `pending` collects bytes queued meanwhile. When `active` is done
/// the two swap, so both keep their capacity and steady state allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    active: Vec<u8>,
    active_sent_bytes: usize,
    pending: Vec<u8>,
    bytes_max: usize,
    /// A `send` was refused since the last `Writable`.
    full_reported: bool,
}

impl SendQueue {
    pub(crate) fn new(bytes_max: usize) -> Self {
        SendQueue {
            bytes_max,
            ..SendQueue::default()
        }
    }

    /// Bytes not yet written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.active.len() - self.active_sent_bytes + self.pending.len()
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        if bytes.len() > self.bytes_max {
            return Err(SendError::TooLarge {
                len: bytes.len(),
                max: self.bytes_max,
            });
        }
        if self.queued_bytes() + bytes.len() > self.bytes_max {
            self.full_reported = true;
            return Err(SendError::Full);
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    /// The unwritten part of `active`, first moving `pending` in when `active` is done.
    /// Empty when nothing is queued. Must not be called while a write from `active` is in
    /// flight (the swap would move the buffer under the kernel).
    pub(crate) fn next_chunk(&mut self) -> &[u8] {
        if self.active_sent_bytes == self.active.len() && !self.pending.is_empty() {
            self.active.clear();
            self.active_sent_bytes = 0;
            std::mem::swap(&mut self.active, &mut self.pending);
        }
        &self.active[self.active_sent_bytes..]
    }

    /// Records that `n` bytes of the current chunk were written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.active_sent_bytes = (self.active_sent_bytes + n).min(self.active.len());
        if self.active_sent_bytes == self.active.len() {
            self.active.clear();
            self.active_sent_bytes = 0;
        }
    }

    /// Whether a refused sender should now be told to retry (and forget that it was refused).
    pub(crate) fn take_writable(&mut self) -> bool {
        if self.full_reported && self.queued_bytes() < self.bytes_max / 2 {
            self.full_reported = false;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_parses_and_displays() {
        assert_eq!("uring".parse::<Backend>(), Ok(Backend::Uring));
        assert_eq!("epoll".parse::<Backend>(), Ok(Backend::Epoll));
        assert_eq!(
            "kqueue".parse::<Backend>(),
            Err(UnknownBackend("kqueue".into()))
        );
        for b in [Backend::Uring, Backend::Epoll] {
            assert_eq!(b.to_string().parse::<Backend>(), Ok(b));
        }
    }

    #[test]
    fn config_limits_are_checked() {
        assert!(RingConfig::default().validate().is_ok());
        let zero_recv = RingConfig {
            recv_buffer_bytes: 0,
            ..RingConfig::default()
        };
        assert!(matches!(zero_recv.validate(), Err(RingError::Config(_))));
        let huge_entries = RingConfig {
            entries: RING_ENTRIES_MAX + 1,
            ..RingConfig::default()
        };
        assert!(matches!(huge_entries.validate(), Err(RingError::Config(_))));
    }

    #[test]
    fn slot_table_reuses_slots_with_new_generation() {
        let mut t = SlotTable::new(2);
        let (a, ga) = t.insert("a").unwrap();
        let (b, _) = t.insert("b").unwrap();
        assert_ne!(a, b);
        assert_eq!(t.insert("c"), Err("c"));
        assert_eq!(t.remove(a), Some("a"));
        assert_eq!(t.remove(a), None);
        let (c, gc) = t.insert("c").unwrap();
        assert_eq!(c, a);
        assert_ne!(gc, ga);
        assert!(t.get_current_mut(a, ga).is_none());
        assert_eq!(t.get_current_mut(c, gc).copied(), Some("c"));
        assert_eq!(t.len(), 2);
        let mut occupied: Vec<u32> = t.occupied().collect();
        occupied.sort();
        assert_eq!(occupied, vec![0, 1]);
    }

    #[test]
    fn send_queue_double_buffers_and_caps() {
        let mut q = SendQueue::new(10);
        q.push(b"abcd").unwrap();
        assert_eq!(q.next_chunk(), b"abcd");
        // While "abcd" is being written, more bytes go to the other buffer.
        q.push(b"ef").unwrap();
        assert_eq!(q.queued_bytes(), 6);
        assert_eq!(q.push(b"12345"), Err(SendError::Full));
        assert_eq!(
            q.push(&[0; 11]),
            Err(SendError::TooLarge { len: 11, max: 10 })
        );
        q.advance(3); // partial write
        assert_eq!(q.queued_bytes(), 3);
        assert!(q.take_writable(), "3 < 10/2 after a refusal");
        assert!(!q.take_writable(), "reported once");
        assert_eq!(q.next_chunk(), b"d");
        q.advance(1);
        assert_eq!(q.next_chunk(), b"ef");
        q.advance(2);
        assert_eq!(q.next_chunk(), b"");
        assert_eq!(q.queued_bytes(), 0);
        assert!(!q.take_writable(), "no refusal, no Writable");
    }

    #[test]
    fn send_queue_keeps_capacity_in_steady_state() {
        let mut q = SendQueue::new(1 << 20);
        for _ in 0..3 {
            q.push(&[1; 1000]).unwrap();
            let n = q.next_chunk().len();
            q.advance(n);
        }
        let caps = (q.active.capacity(), q.pending.capacity());
        for _ in 0..100 {
            q.push(&[1; 1000]).unwrap();
            let n = q.next_chunk().len();
            q.advance(n);
        }
        assert_eq!((q.active.capacity(), q.pending.capacity()), caps);
    }
}
