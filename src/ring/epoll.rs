//! epoll backend (level-triggered).
//!
//! Sockets are non-blocking. Readable sockets are read until they would block (up to a bound
//! per wakeup, for fairness) into one receive buffer shared by all connections (each `Data`
//! event borrows it only for the duration of the callback), or into the buffer a connection
//! was steered to. Queued bytes are written at the
//! start of `poll`; EPOLLOUT is registered only while bytes remain that the socket did not
//! take. The epoll token packs the slot index and its generation, like io_uring's
//! `user_data`, so an event for a connection closed earlier in the same batch is dropped.

use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::epoll;
use rustix::event::Timespec;
use rustix::net::{RecvFlags, SendFlags};

use super::{
    steer_recv, ConnId, RecvInto, RecvNext, RingConfig, RingError, RingEvent, RingWaker, SendError,
    SendQueue, SlotTable, SteeredConn, WakeFd, CONNS_PER_RING_MAX,
};

/// Readiness events taken per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

/// Reads per connection per readiness event; a socket still readable after that is reported
/// again by the next wait (level-triggered), so one busy peer cannot starve the others.
const READS_PER_EVENT_MAX: usize = 16;

/// The longest single wait epoll_pwait takes (milliseconds in a C int).
const WAIT_MAX: Duration = Duration::from_millis(i32::MAX as u64 - 1);

const WAKE_TOKEN: u64 = u64::MAX;

fn conn_token(slot: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(slot)
}

fn token_parts(token: u64) -> (u32, u32) {
    (token as u32, (token >> 32) as u32)
}

#[derive(Debug)]
struct EpollConn {
    stream: TcpStream,
    generation: u32,
    send: SendQueue,
    /// EPOLLOUT is part of the registration.
    out_registered: bool,
    /// Listed in `send_ready`.
    send_scheduled: bool,
    /// Where the next bytes go instead of the shared buffer, while steered.
    into: Option<RecvInto>,
    /// Bytes the next read into the shared buffer may take (the caller may ask for a short one).
    own_bytes_max: usize,
}

impl SteeredConn for EpollConn {
    fn steer_to(&mut self, into: Option<RecvInto>, own_bytes_max: usize) {
        self.into = into;
        self.own_bytes_max = own_bytes_max;
    }
}

pub(crate) struct EpollBackend {
    epoll: OwnedFd,
    conns: SlotTable<EpollConn>,
    recv_buf: Box<[u8]>,
    /// Slots with bytes queued and no EPOLLOUT registered, to be written at the next `poll`.
    send_ready: Vec<u32>,
    wake: WakeFd,
    send_buffer_bytes_max: usize,
}

fn interest(out: bool) -> epoll::EventFlags {
    if out {
        epoll::EventFlags::IN | epoll::EventFlags::OUT
    } else {
        epoll::EventFlags::IN
    }
}

impl EpollBackend {
    pub(crate) fn new(cfg: &RingConfig) -> Result<EpollBackend, RingError> {
        let epoll =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| RingError::Setup(e.into()))?;
        let wake = WakeFd::new()?;
        epoll::add(
            &epoll,
            wake.fd(),
            epoll::EventData::new_u64(WAKE_TOKEN),
            epoll::EventFlags::IN,
        )
        .map_err(|e| RingError::Setup(e.into()))?;
        Ok(EpollBackend {
            epoll,
            conns: SlotTable::new(CONNS_PER_RING_MAX),
            recv_buf: vec![0u8; cfg.recv_buffer_bytes].into_boxed_slice(),
            send_ready: Vec::new(),
            wake,
            send_buffer_bytes_max: cfg.send_buffer_bytes_max,
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
        stream.set_nonblocking(true).map_err(RingError::Io)?;
        let conn = EpollConn {
            stream,
            generation: 0,
            send: SendQueue::new(self.send_buffer_bytes_max),
            out_registered: false,
            send_scheduled: false,
            into: None,
            own_bytes_max: usize::MAX,
        };
        let (slot, generation) = self
            .conns
            .insert(conn)
            .map_err(|_| RingError::TooManyConns {
                max: CONNS_PER_RING_MAX,
            })?;
        let registered = match self.conns.get_mut(slot) {
            Some(conn) => {
                conn.generation = generation;
                epoll::add(
                    &self.epoll,
                    &conn.stream,
                    epoll::EventData::new_u64(conn_token(slot, generation)),
                    interest(false),
                )
            }
            None => Ok(()),
        };
        if let Err(e) = registered {
            self.conns.remove(slot);
            return Err(RingError::Io(e.into()));
        }
        Ok(ConnId(slot))
    }

    pub(crate) fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        let c = self.conns.get_mut(conn.0).ok_or(SendError::Closed)?;
        c.send.push(bytes)?;
        if !c.out_registered && !c.send_scheduled {
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
            self.deregister(&c);
        }
    }

    fn deregister(&self, conn: &EpollConn) {
        // Closing the fd would deregister it too, unless a duplicate of it exists.
        let _ = epoll::delete(&self.epoll, &conn.stream);
    }

    pub(crate) fn poll(
        &mut self,
        timeout: Option<Duration>,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> Result<usize, RingError> {
        let mut delivered = self.start_sends(on_event)?;

        // Events already delivered are reason enough to return without blocking.
        let timeout = if delivered > 0 {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let timespec = timeout.map(|t| {
            let t = t.min(WAIT_MAX);
            Timespec {
                tv_sec: t.as_secs() as _,
                tv_nsec: t.subsec_nanos() as _,
            }
        });
        // On the stack: epoll events hold a pointer-typed union, which would make the ring
        // lose `Send` if kept in it.
        let mut event_buf = [MaybeUninit::<epoll::Event>::uninit(); EVENTS_PER_WAIT];
        let events: &[epoll::Event] =
            match epoll::wait(&self.epoll, &mut event_buf, timespec.as_ref()) {
                Ok((events, _)) => events,
                Err(rustix::io::Errno::INTR) => &[],
                Err(e) => return Err(RingError::Io(e.into())),
            };
        let mut result = Ok(());
        for event in events {
            let flags = event.flags;
            let token = event.data.u64();
            if token == WAKE_TOKEN {
                self.wake.drain();
                continue;
            }
            let (slot, generation) = token_parts(token);
            if flags
                .intersects(epoll::EventFlags::IN | epoll::EventFlags::HUP | epoll::EventFlags::ERR)
            {
                delivered += self.read_ready(slot, generation, on_event);
            }
            if flags.contains(epoll::EventFlags::OUT) {
                match self.flush(slot, generation, on_event) {
                    Ok(n) => delivered += n,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        result.map(|()| delivered)
    }

    /// Reads until the socket would block; returns the number of events delivered.
    fn read_ready(
        &mut self,
        slot: u32,
        generation: u32,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> usize {
        let mut delivered = 0;
        for _ in 0..READS_PER_EVENT_MAX {
            let Some(conn) = self.conns.get_current_mut(slot, generation) else {
                return delivered;
            };
            let mut next = RecvNext::default();
            let (n, asked) = if let Some(into) = conn.into.as_mut() {
                let asked = into.missing();
                let spare = &mut into.buf.spare_capacity_mut()[..asked];
                match rustix::net::recv(&conn.stream, spare, RecvFlags::empty()) {
                    Ok((_, 0)) => return delivered + self.fail(slot, None, on_event),
                    Ok((_, n)) => {
                        let n = n.min(asked);
                        // SAFETY: recv initialised the first `n` bytes of the spare capacity.
                        unsafe { into.buf.set_len(into.buf.len() + n) };
                        if into.missing() > 0 {
                            if n < asked {
                                // The socket is empty for now (see below).
                                return delivered;
                            }
                            continue;
                        }
                        let buf = conn.into.take().map(|i| i.buf).unwrap_or_default();
                        on_event(
                            RingEvent::Filled {
                                conn: ConnId(slot),
                                buf,
                            },
                            &mut next,
                        );
                        (n, asked)
                    }
                    Err(rustix::io::Errno::AGAIN) => return delivered,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return delivered + self.fail(slot, Some(e.into()), on_event),
                }
            } else {
                let asked = self.recv_buf.len().min(conn.own_bytes_max);
                // A short read is asked for once.
                conn.own_bytes_max = usize::MAX;
                match (&conn.stream).read(&mut self.recv_buf[..asked]) {
                    Ok(0) => return delivered + self.fail(slot, None, on_event),
                    Ok(n) => {
                        on_event(
                            RingEvent::Data {
                                conn: ConnId(slot),
                                bytes: &self.recv_buf[..n],
                            },
                            &mut next,
                        );
                        (n, asked)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return delivered,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return delivered + self.fail(slot, Some(e), on_event),
                }
            };
            delivered += 1 + steer_recv(&mut self.conns, slot, next, on_event);
            if n < asked {
                // A short read emptied the socket buffer; skip the read that would only say so.
                return delivered;
            }
        }
        delivered
    }

    /// Writes queued bytes until done or the socket is full, and registers EPOLLOUT only if
    /// bytes remain; returns the number of events delivered.
    fn flush(
        &mut self,
        slot: u32,
        generation: u32,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> Result<usize, RingError> {
        let Some(conn) = self.conns.get_current_mut(slot, generation) else {
            return Ok(0);
        };
        loop {
            let chunk = conn.send.next_chunk();
            if chunk.is_empty() {
                break;
            }
            match rustix::net::send(&conn.stream, chunk, SendFlags::NOSIGNAL) {
                Ok(n) => conn.send.advance(n),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Ok(self.fail(slot, Some(e.into()), on_event)),
            }
        }
        let want_out = conn.send.queued_bytes() > 0;
        let writable = conn.send.take_writable();
        if want_out != conn.out_registered {
            epoll::modify(
                &self.epoll,
                &conn.stream,
                epoll::EventData::new_u64(conn_token(slot, generation)),
                interest(want_out),
            )
            .map_err(|e| RingError::Io(e.into()))?;
            conn.out_registered = want_out;
        }
        if writable {
            on_event(
                RingEvent::Writable { conn: ConnId(slot) },
                &mut RecvNext::default(),
            );
            return Ok(1);
        }
        Ok(0)
    }

    fn start_sends(
        &mut self,
        on_event: &mut impl FnMut(RingEvent<'_>, &mut RecvNext),
    ) -> Result<usize, RingError> {
        let mut ready = std::mem::take(&mut self.send_ready);
        let mut delivered = 0;
        let mut result = Ok(());
        for (i, &slot) in ready.iter().enumerate() {
            let Some(conn) = self.conns.get_mut(slot) else {
                continue;
            };
            if conn.out_registered {
                // EPOLLOUT will report when the socket takes more.
                conn.send_scheduled = false;
                continue;
            }
            let generation = conn.generation;
            match self.flush(slot, generation, on_event) {
                Ok(n) => delivered += n,
                Err(e) => {
                    // Keep this and the remaining slots listed for the next poll.
                    self.send_ready.extend_from_slice(&ready[i..]);
                    result = Err(e);
                    break;
                }
            }
            if let Some(conn) = self.conns.get_mut(slot) {
                conn.send_scheduled = false;
            }
        }
        ready.clear();
        if self.send_ready.is_empty() {
            // Hand the (larger) list back so its capacity is reused.
            self.send_ready = ready;
        }
        result.map(|()| delivered)
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
        self.deregister(&conn);
        drop(conn);
        on_event(
            RingEvent::Closed {
                conn: ConnId(slot),
                error,
            },
            &mut RecvNext::default(),
        );
        1
    }
}

impl std::fmt::Debug for EpollBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpollBackend")
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_differ_from_wake() {
        for (slot, generation) in [(0, 0), (1023, 5), (7, u32::MAX - 1)] {
            let token = conn_token(slot, generation);
            assert_eq!(token_parts(token), (slot, generation));
            assert_ne!(token, WAKE_TOKEN);
        }
    }
}
