//! io_uring backend.
//!
//! Per connection: one RECV always outstanding, into the connection's own receive buffer or
//! the caller's buffer it was steered to (with MSG_WAITALL: one completion per steered buffer), and
//! at most one SEND in flight from the send queue's active buffer while newer bytes collect in
//! its pending buffer. Every operation's `user_data` packs the slot index, the slot's
//! generation and an op tag, so a completion for a connection that was closed (and whose slot
//! may already hold a new connection) is recognised as stale. A closed connection's buffers
//! and socket are kept, as a "zombie", until the kernel has returned every operation that
//! points into them; its operations are cancelled and the socket shut down so that happens
//! promptly.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring};

use super::{
    steer_recv, ConnId, RecvInto, RecvNext, RingConfig, RingError, RingEvent, RingWaker, SendError,
    SendQueue, SlotTable, SteeredConn, WakeFd, CONNS_PER_RING_MAX,
};

/// Completions taken from the completion queue per batch before any is dispatched.
const COMPLETIONS_PER_BATCH: usize = 256;

/// Batches dispatched per `poll`; anything left waits for the next `poll`, which then does not
/// block.
const BATCHES_PER_POLL_MAX: usize = 16;

/// How long dropping a ring waits for the kernel to return cancelled operations before it
/// leaks their buffers rather than free memory the kernel may still write to.
const DROP_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Op tags in the low byte of `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum OpTag {
    Recv = 1,
    Send = 2,
    Wake = 3,
    Cancel = 4,
}

impl OpTag {
    fn from_u8(tag: u8) -> Option<OpTag> {
        match tag {
            1 => Some(OpTag::Recv),
            2 => Some(OpTag::Send),
            3 => Some(OpTag::Wake),
            4 => Some(OpTag::Cancel),
            _ => None,
        }
    }
}

/// Slot indices must fit in 24 bits of `user_data`.
const SLOT_BITS: u32 = 24;
const _: () = assert!(CONNS_PER_RING_MAX <= 1 << SLOT_BITS);

/// `user_data` layout: generation (bits 63..32) | slot (bits 31..8) | op tag (bits 7..0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpKey {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) tag: OpTag,
}

impl OpKey {
    pub(crate) fn pack(self) -> u64 {
        (u64::from(self.generation) << 32)
            | (u64::from(self.slot & ((1 << SLOT_BITS) - 1)) << 8)
            | self.tag as u64
    }

    pub(crate) fn unpack(user_data: u64) -> Option<OpKey> {
        Some(OpKey {
            slot: ((user_data >> 8) & ((1 << SLOT_BITS) - 1)) as u32,
            generation: (user_data >> 32) as u32,
            tag: OpTag::from_u8(user_data as u8)?,
        })
    }
}

const WAKE_KEY: OpKey = OpKey {
    slot: 0,
    generation: 0,
    tag: OpTag::Wake,
};

const CANCEL_KEY: OpKey = OpKey {
    slot: 0,
    generation: 0,
    tag: OpTag::Cancel,
};

#[derive(Debug, Clone, Copy, Default)]
struct Completion {
    user_data: u64,
    result: i32,
}

#[derive(Debug)]
struct UringConn {
    stream: TcpStream,
    generation: u32,
    /// The kernel writes into this while a RECV is in flight; never moved or freed before
    /// that RECV's completion.
    recv_buf: Box<[u8]>,
    /// The caller's buffer the RECV writes into instead, while steered there (the same rule
    /// holds for its heap bytes).
    into: Option<RecvInto>,
    /// Bytes the next RECV into `recv_buf` may take (the caller may ask for a short one).
    own_bytes_max: usize,
    send: SendQueue,
    recv_in_flight: bool,
    send_in_flight: bool,
    /// Listed in `send_ready`.
    send_scheduled: bool,
}

impl SteeredConn for UringConn {
    fn steer_to(&mut self, into: Option<RecvInto>, own_bytes_max: usize) {
        self.into = into;
        self.own_bytes_max = own_bytes_max;
    }
}

impl UringConn {
    fn ops_in_flight(&self) -> usize {
        usize::from(self.recv_in_flight) + usize::from(self.send_in_flight)
    }
}

/// A closed connection whose buffers the kernel may still use.
#[derive(Debug)]
struct Zombie {
    slot: u32,
    generation: u32,
    ops_in_flight: usize,
    conn: UringConn,
}

pub(crate) struct UringBackend {
    ring: IoUring,
    conns: SlotTable<UringConn>,
    zombies: Vec<Zombie>,
    /// Slots with bytes queued and no SEND in flight, to be sent at the next `poll`.
    send_ready: Vec<u32>,
    wake: WakeFd,
    wake_armed: bool,
    /// RECV, SEND and wake-poll operations the kernel holds (buffers it may touch).
    ops_in_flight: usize,
    recv_buffer_bytes: usize,
    send_buffer_bytes_max: usize,
    completions: Box<[Completion; COMPLETIONS_PER_BATCH]>,
}

fn build_ring(entries: u32) -> io::Result<IoUring> {
    let cq_entries = (entries.saturating_mul(2)).max(2 * CONNS_PER_RING_MAX as u32 + 64);
    // COOP_TASKRUN (5.19) saves interrupting the thread for completions it will collect at
    // its next io_uring_enter anyway; older kernels reject it, so try without.
    match IoUring::builder()
        .setup_coop_taskrun()
        .setup_cqsize(cq_entries)
        .build(entries)
    {
        Ok(ring) => Ok(ring),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            IoUring::builder().setup_cqsize(cq_entries).build(entries)
        }
        Err(e) => Err(e),
    }
}

/// Pushes one entry, submitting first if the submission queue is full.
///
/// # Safety
/// Every buffer the entry points to must stay valid until its completion is reaped.
unsafe fn push_entry(ring: &mut IoUring, entry: &squeue::Entry) -> io::Result<()> {
    for _ in 0..2 {
        if ring.submission().push(entry).is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
    Err(io::Error::other("io_uring submission queue stays full"))
}

/// Whether an io_uring_enter error only means "nothing more to do now".
fn is_benign_enter_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
    )
}

impl UringBackend {
    pub(crate) fn new(cfg: &RingConfig) -> Result<UringBackend, RingError> {
        let ring = build_ring(cfg.entries).map_err(RingError::Setup)?;
        if !ring.params().is_feature_ext_arg() {
            // We wait with a timeout through IORING_ENTER_EXT_ARG (Linux 5.11).
            return Err(RingError::Setup(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks IORING_FEAT_EXT_ARG (Linux 5.11+)",
            )));
        }
        let wake = WakeFd::new()?;
        Ok(UringBackend {
            ring,
            conns: SlotTable::new(CONNS_PER_RING_MAX),
            zombies: Vec::new(),
            send_ready: Vec::new(),
            wake,
            wake_armed: false,
            ops_in_flight: 0,
            recv_buffer_bytes: cfg.recv_buffer_bytes,
            send_buffer_bytes_max: cfg.send_buffer_bytes_max,
            completions: Box::new([Completion::default(); COMPLETIONS_PER_BATCH]),
        })
    }

    pub(crate) fn waker(&self) -> RingWaker {
        self.wake.waker()
    }

    pub(crate) fn conn_count(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn add_conn(&mut self, stream: TcpStream) -> Result<ConnId, RingError> {
        if self.conns.len() >= CONNS_PER_RING_MAX {
            return Err(RingError::TooManyConns {
                max: CONNS_PER_RING_MAX,
            });
        }
        stream.set_nonblocking(false).map_err(RingError::Io)?;
        let conn = UringConn {
            stream,
            generation: 0,
            recv_buf: vec![0u8; self.recv_buffer_bytes].into_boxed_slice(),
            into: None,
            own_bytes_max: usize::MAX,
            send: SendQueue::new(self.send_buffer_bytes_max),
            recv_in_flight: false,
            send_in_flight: false,
            send_scheduled: false,
        };
        let (slot, generation) = self
            .conns
            .insert(conn)
            .map_err(|_| RingError::TooManyConns {
                max: CONNS_PER_RING_MAX,
            })?;
        if let Some(conn) = self.conns.get_mut(slot) {
            conn.generation = generation;
        }
        if let Err(e) = self.arm_recv(slot) {
            if let Some(conn) = self.conns.remove(slot) {
                self.retire(slot, conn);
            }
            return Err(RingError::Io(e));
        }
        Ok(ConnId(slot))
    }

    pub(crate) fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        let c = self.conns.get_mut(conn.0).ok_or(SendError::Closed)?;
        c.send.push(bytes)?;
        if !c.send_in_flight && !c.send_scheduled {
            c.send_scheduled = true;
            self.send_ready.push(conn.0);
        }
        Ok(())
    }

    pub(crate) fn queued_send_bytes(&self, conn: ConnId) -> usize {
        self.conns.get(conn.0).map_or(0, |c| c.send.queued_bytes())
    }

    pub(crate) fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(conn.0) {
            self.retire(conn.0, c);
        }
    }

    pub(crate) fn poll(
        &mut self,
        timeout: Option<Duration>,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> Result<usize, RingError> {
        let mut events = self.start_sends(on_event);
        if !self.wake_armed {
            self.arm_wake().map_err(RingError::Io)?;
        }

        // Events already delivered are reason enough to return without blocking.
        let timeout = if events > 0 {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let waited = match timeout {
            Some(t) if t.is_zero() => self.ring.submit(),
            None => self.ring.submit_and_wait(1),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        if let Err(e) = waited {
            if !is_benign_enter_error(&e) {
                return Err(RingError::Io(e));
            }
        }

        for _ in 0..BATCHES_PER_POLL_MAX {
            // Copy completions out first: user code never runs with the queue borrowed.
            let taken = {
                let mut cq = self.ring.completion();
                let mut taken = 0;
                for (slot, cqe) in self.completions.iter_mut().zip(&mut cq) {
                    *slot = Completion {
                        user_data: cqe.user_data(),
                        result: cqe.result(),
                    };
                    taken += 1;
                }
                taken
            };
            for i in 0..taken {
                let completion = self.completions[i];
                events += self.dispatch(completion, on_event);
            }
            if taken < COMPLETIONS_PER_BATCH {
                break;
            }
        }
        Ok(events)
    }

    /// Handles one completion; returns the number of events delivered.
    fn dispatch(
        &mut self,
        completion: Completion,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> usize {
        let Some(key) = OpKey::unpack(completion.user_data) else {
            tracing::warn!(
                user_data = completion.user_data,
                "io_uring completion with unknown tag"
            );
            return 0;
        };
        match key.tag {
            OpTag::Cancel => 0,
            OpTag::Wake => {
                self.ops_in_flight = self.ops_in_flight.saturating_sub(1);
                self.wake_armed = false;
                self.wake.drain();
                0
            }
            OpTag::Recv => {
                self.ops_in_flight = self.ops_in_flight.saturating_sub(1);
                let Some(conn) = self.conns.get_current_mut(key.slot, key.generation) else {
                    self.zombie_op_done(key);
                    return 0;
                };
                conn.recv_in_flight = false;
                let result = completion.result;
                if result > 0 {
                    let n = result as usize;
                    let mut next = RecvNext::default();
                    let delivered = match conn.into.as_mut() {
                        Some(into) => {
                            let n = n.min(into.missing());
                            // SAFETY: the kernel wrote `n` bytes into the spare capacity this
                            // RECV was given (at most `missing()` of it).
                            unsafe { into.buf.set_len(into.buf.len() + n) };
                            if into.missing() > 0 {
                                // A short receive (a signal, or the peer closed): on with the rest.
                                return self.arm_recv_or_fail(key.slot, on_event);
                            }
                            let buf = conn.into.take().map(|i| i.buf).unwrap_or_default();
                            let conn = ConnId(key.slot);
                            on_event(RingEvent::Filled { conn, buf }, &mut next);
                            1
                        }
                        None => {
                            let len = n.min(conn.recv_buf.len());
                            on_event(
                                RingEvent::Data {
                                    conn: ConnId(key.slot),
                                    bytes: &conn.recv_buf[..len],
                                },
                                &mut next,
                            );
                            1
                        }
                    };
                    delivered
                        + steer_recv(&mut self.conns, key.slot, next, on_event)
                        + self.arm_recv_or_fail(key.slot, on_event)
                } else if result == 0 {
                    self.fail(key.slot, None, on_event)
                } else if is_retryable(-result) {
                    self.arm_recv_or_fail(key.slot, on_event)
                } else {
                    let error = io::Error::from_raw_os_error(-result);
                    self.fail(key.slot, Some(error), on_event)
                }
            }
            OpTag::Send => {
                self.ops_in_flight = self.ops_in_flight.saturating_sub(1);
                let Some(conn) = self.conns.get_current_mut(key.slot, key.generation) else {
                    self.zombie_op_done(key);
                    return 0;
                };
                conn.send_in_flight = false;
                let result = completion.result;
                if result < 0 && !is_retryable(-result) {
                    let error = io::Error::from_raw_os_error(-result);
                    return self.fail(key.slot, Some(error), on_event);
                }
                // A partial send leaves the rest in the active buffer for the next SEND.
                conn.send.advance(result.max(0) as usize);
                let writable = conn.send.take_writable();
                let failed = self.submit_send_or_fail(key.slot, on_event);
                if failed == 0 && writable {
                    on_event(
                        RingEvent::Writable {
                            conn: ConnId(key.slot),
                        },
                        &mut RecvNext::default(),
                    );
                    return 1;
                }
                failed
            }
        }
    }

    /// Drops a failed connection and reports it; returns the number of events delivered.
    fn fail(
        &mut self,
        slot: u32,
        error: Option<io::Error>,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> usize {
        let Some(conn) = self.conns.remove(slot) else {
            return 0;
        };
        self.retire(slot, conn);
        on_event(
            RingEvent::Closed {
                conn: ConnId(slot),
                error,
            },
            &mut RecvNext::default(),
        );
        1
    }

    /// Shuts a removed connection down; keeps its buffers until the kernel returns its
    /// operations.
    fn retire(&mut self, slot: u32, conn: UringConn) {
        // Shutdown makes in-flight RECV/SEND finish at once and shows the peer the close now,
        // even though the kernel's operations still hold the file open.
        let _ = conn.stream.shutdown(Shutdown::Both);
        let ops_in_flight = conn.ops_in_flight();
        if ops_in_flight == 0 {
            return;
        }
        let mut cancel = |tag: OpTag| {
            let target = OpKey {
                slot,
                generation: conn.generation,
                tag,
            };
            let entry = opcode::AsyncCancel::new(target.pack())
                .build()
                .user_data(CANCEL_KEY.pack());
            // SAFETY: a cancel points to no buffer.
            if let Err(e) = unsafe { push_entry(&mut self.ring, &entry) } {
                // The shutdown above still ends the operation.
                tracing::debug!(error = %e, "could not queue io_uring cancel");
            }
        };
        if conn.recv_in_flight {
            cancel(OpTag::Recv);
        }
        if conn.send_in_flight {
            cancel(OpTag::Send);
        }
        self.zombies.push(Zombie {
            slot,
            generation: conn.generation,
            ops_in_flight,
            conn,
        });
    }

    fn zombie_op_done(&mut self, key: OpKey) {
        let Some(i) = self
            .zombies
            .iter()
            .position(|z| z.slot == key.slot && z.generation == key.generation)
        else {
            tracing::warn!(?key, "io_uring completion for an unknown connection");
            return;
        };
        let zombie = &mut self.zombies[i];
        zombie.ops_in_flight = zombie.ops_in_flight.saturating_sub(1);
        match key.tag {
            OpTag::Recv => zombie.conn.recv_in_flight = false,
            OpTag::Send => zombie.conn.send_in_flight = false,
            OpTag::Wake | OpTag::Cancel => {}
        }
        if zombie.ops_in_flight == 0 {
            // The kernel holds nothing of it any more: free the buffers, close the socket.
            self.zombies.swap_remove(i);
        }
    }

    fn arm_recv(&mut self, slot: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Ok(());
        };
        let key = OpKey {
            slot,
            generation: conn.generation,
            tag: OpTag::Recv,
        };
        let fd = types::Fd(conn.stream.as_raw_fd());
        let entry = match conn.into.as_mut() {
            Some(into) => {
                let len = u32::try_from(into.missing()).unwrap_or(u32::MAX);
                let at = into.buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
                // WAITALL: the kernel completes the RECV once the whole length is in (or the
                // connection ends), not once per segment.
                opcode::Recv::new(fd, at, len).flags(libc::MSG_WAITALL)
            }
            None => {
                let len = conn.recv_buf.len().min(conn.own_bytes_max);
                // A short receive is asked for once.
                conn.own_bytes_max = usize::MAX;
                let len = u32::try_from(len).unwrap_or(u32::MAX);
                opcode::Recv::new(fd, conn.recv_buf.as_mut_ptr(), len)
            }
        }
        .build()
        .user_data(key.pack());
        // SAFETY: `recv_buf` is a boxed slice owned by the connection, and a steered buffer's
        // heap bytes (`missing()` of spare capacity reserved by `steer`) are owned by the
        // connection too, left alone until the RECV completes; the connection is kept (as a
        // zombie if need be) until then.
        unsafe { push_entry(&mut self.ring, &entry)? };
        conn.recv_in_flight = true;
        self.ops_in_flight += 1;
        Ok(())
    }

    fn submit_send(&mut self, slot: u32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot) else {
            return Ok(());
        };
        if conn.send_in_flight {
            return Ok(());
        }
        let key = OpKey {
            slot,
            generation: conn.generation,
            tag: OpTag::Send,
        };
        let fd: RawFd = conn.stream.as_raw_fd();
        let chunk = conn.send.next_chunk();
        if chunk.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        let entry = opcode::Send::new(types::Fd(fd), chunk.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(key.pack());
        // SAFETY: `chunk` lies in the send queue's active buffer, which is neither written
        // nor swapped while `send_in_flight` is set, and is kept (as a zombie if need be)
        // until this SEND completes.
        unsafe { push_entry(&mut self.ring, &entry)? };
        conn.send_in_flight = true;
        self.ops_in_flight += 1;
        Ok(())
    }

    /// Re-arms the connection's RECV; a connection that cannot get one is failed, since it
    /// would never receive again. Returns the number of events delivered.
    fn arm_recv_or_fail(
        &mut self,
        slot: u32,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> usize {
        match self.arm_recv(slot) {
            Ok(()) => 0,
            Err(e) => self.fail(slot, Some(e), on_event),
        }
    }

    /// Submits the connection's next SEND, if bytes are queued; failing like
    /// [`Self::arm_recv_or_fail`].
    fn submit_send_or_fail(
        &mut self,
        slot: u32,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> usize {
        match self.submit_send(slot) {
            Ok(()) => 0,
            Err(e) => self.fail(slot, Some(e), on_event),
        }
    }

    /// Submits a SEND for each connection that queued bytes since the last poll; returns the
    /// number of events delivered.
    fn start_sends(&mut self, on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext)) -> usize {
        let mut ready = std::mem::take(&mut self.send_ready);
        let mut delivered = 0;
        for &slot in &ready {
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.send_scheduled = false;
            }
            delivered += self.submit_send_or_fail(slot, on_event);
        }
        ready.clear();
        self.send_ready = ready;
        delivered
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let entry =
            opcode::PollAdd::new(types::Fd(self.wake.fd().as_raw_fd()), libc::POLLIN as u32)
                .build()
                .user_data(WAKE_KEY.pack());
        // SAFETY: a poll points to no buffer; the eventfd lives as long as the ring.
        unsafe { push_entry(&mut self.ring, &entry)? };
        self.wake_armed = true;
        self.ops_in_flight += 1;
        Ok(())
    }

    /// Cancels everything the kernel holds and waits for it to be returned.
    fn drain_for_drop(&mut self) -> bool {
        let mut targets = Vec::new();
        for slot in self.conns.occupied() {
            if let Some(conn) = self.conns.get(slot) {
                let _ = conn.stream.shutdown(Shutdown::Both);
                for (in_flight, tag) in [
                    (conn.recv_in_flight, OpTag::Recv),
                    (conn.send_in_flight, OpTag::Send),
                ] {
                    if in_flight {
                        targets.push(OpKey {
                            slot,
                            generation: conn.generation,
                            tag,
                        });
                    }
                }
            }
        }
        if self.wake_armed {
            targets.push(WAKE_KEY);
        }
        for target in targets {
            let entry = opcode::AsyncCancel::new(target.pack())
                .build()
                .user_data(CANCEL_KEY.pack());
            // SAFETY: a cancel points to no buffer.
            let _ = unsafe { push_entry(&mut self.ring, &entry) };
        }
        let deadline = std::time::Instant::now() + DROP_DRAIN_TIMEOUT;
        while self.ops_in_flight > 0 {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let ts = types::Timespec::from(deadline - now);
            let args = types::SubmitArgs::new().timespec(&ts);
            if let Err(e) = self.ring.submitter().submit_with_args(1, &args) {
                if !is_benign_enter_error(&e) {
                    return false;
                }
            }
            let mut cq = self.ring.completion();
            for cqe in &mut cq {
                let tag = OpKey::unpack(cqe.user_data()).map(|k| k.tag);
                if matches!(tag, Some(OpTag::Recv | OpTag::Send | OpTag::Wake)) {
                    self.ops_in_flight = self.ops_in_flight.saturating_sub(1);
                }
            }
        }
        true
    }
}

/// Errors after which the same operation is simply issued again.
fn is_retryable(errno: i32) -> bool {
    errno == libc::EINTR || errno == libc::EAGAIN
}

impl Drop for UringBackend {
    fn drop(&mut self) {
        if self.ops_in_flight == 0 || self.drain_for_drop() {
            return;
        }
        // The kernel may still write into these buffers: leaking them is the only safe
        // choice.
        tracing::warn!(
            ops_in_flight = self.ops_in_flight,
            "io_uring operations not returned at drop; leaking their buffers"
        );
        let conns = std::mem::replace(&mut self.conns, SlotTable::new(0));
        std::mem::forget(conns);
        std::mem::forget(std::mem::take(&mut self.zombies));
    }
}

impl std::fmt::Debug for UringBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringBackend")
            .field("conns", &self.conns.len())
            .field("zombies", &self.zombies.len())
            .field("ops_in_flight", &self.ops_in_flight)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_key_round_trips() {
        for key in [
            OpKey {
                slot: 0,
                generation: 0,
                tag: OpTag::Recv,
            },
            OpKey {
                slot: (1 << SLOT_BITS) - 1,
                generation: u32::MAX,
                tag: OpTag::Send,
            },
            OpKey {
                slot: 1023,
                generation: 7,
                tag: OpTag::Cancel,
            },
            WAKE_KEY,
        ] {
            assert_eq!(OpKey::unpack(key.pack()), Some(key));
        }
        assert_eq!(OpKey::unpack(0), None, "tag 0 is not an op");
        let a = OpKey {
            slot: 5,
            generation: 1,
            tag: OpTag::Recv,
        };
        let b = OpKey { generation: 2, ..a };
        assert_ne!(a.pack(), b.pack(), "generations tell reused slots apart");
    }
}
