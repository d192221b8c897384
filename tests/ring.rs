//! Loopback tests of the I/O backends, each run on io_uring and on epoll.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nfs_walker::ring::{
    Backend, ConnId, RecvNext, Ring, RingConfig, RingError, RingEvent, SendError,
};

/// The backends this machine can run. io_uring is skipped (with a note) only when the kernel
/// refuses to set one up.
fn backends() -> Vec<Backend> {
    let mut out = Vec::new();
    match Ring::new(Backend::Uring, &RingConfig::default()) {
        Ok(_) => out.push(Backend::Uring),
        Err(RingError::Setup(e))
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::ENOSYS) | Some(libc::EACCES)
            ) =>
        {
            eprintln!("note: io_uring denied here ({e}); skipping io_uring tests");
        }
        Err(e) => panic!("io_uring setup failed unexpectedly: {e}"),
    }
    out.push(Backend::Epoll);
    out
}

fn new_ring(backend: Backend) -> Ring {
    let ring = Ring::new(backend, &RingConfig::default()).expect("ring");
    assert_eq!(ring.backend(), backend);
    ring
}

/// A connected pair: (our end, the peer's end).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let ours = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (theirs, _) = listener.accept().expect("accept");
    (ours, theirs)
}

struct EchoStats {
    bytes: u64,
    reads: u64,
}

/// Echoes everything until EOF; returns how much it echoed and in how many reads.
fn spawn_echo(mut peer: TcpStream) -> JoinHandle<EchoStats> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut stats = EchoStats { bytes: 0, reads: 0 };
        loop {
            match peer.read(&mut buf) {
                Ok(0) | Err(_) => return stats,
                Ok(n) => {
                    stats.bytes += n as u64;
                    stats.reads += 1;
                    if peer.write_all(&buf[..n]).is_err() {
                        return stats;
                    }
                }
            }
        }
    })
}

/// An event with its bytes copied out of the ring.
#[derive(Debug, PartialEq)]
enum Owned {
    Data(ConnId, Vec<u8>),
    Closed(ConnId, Option<ErrorKind>),
    Writable(ConnId),
}

fn own(ev: RingEvent<'_>) -> Owned {
    match ev {
        RingEvent::Data { conn, bytes } => Owned::Data(conn, bytes.to_vec()),
        // Only a steered receive (not used here) fills a buffer.
        RingEvent::Filled { conn, buf } => Owned::Data(conn, buf),
        RingEvent::Closed { conn, error } => Owned::Closed(conn, error.map(|e| e.kind())),
        RingEvent::Writable { conn } => Owned::Writable(conn),
    }
}

/// Polls until `done` says so; panics after `limit`.
fn poll_until(
    ring: &mut Ring,
    events: &mut Vec<Owned>,
    limit: Duration,
    mut done: impl FnMut(&[Owned]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(events) {
        assert!(
            Instant::now() < deadline,
            "{}: timed out; events so far: {:?}",
            ring.backend(),
            summarize(events)
        );
        let n = ring
            .poll(Some(Duration::from_millis(100)), &mut |ev| {
                events.push(own(ev))
            })
            .expect("poll");
        assert!(n <= events.len());
    }
}

/// Polls for `span` and returns what arrived.
fn poll_for(ring: &mut Ring, span: Duration) -> Vec<Owned> {
    let mut events = Vec::new();
    let deadline = Instant::now() + span;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        ring.poll(Some(left.min(Duration::from_millis(20))), &mut |ev| {
            events.push(own(ev))
        })
        .expect("poll");
    }
    events
}

fn summarize(events: &[Owned]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Owned::Data(c, b) => format!("Data({}, {} bytes)", c.index(), b.len()),
            other => format!("{other:?}"),
        })
        .collect()
}

fn data_of(events: &[Owned], conn: ConnId) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        if let Owned::Data(c, b) = e {
            if *c == conn {
                out.extend_from_slice(b);
            }
        }
    }
    out
}

fn closed_count(events: &[Owned]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Owned::Closed(..)))
        .count()
}

#[test]
fn small_sends_are_batched_and_echoed_byte_exact() {
    for backend in backends() {
        let mut ring = new_ring(backend);
        let (ours, theirs) = tcp_pair();
        let echo = spawn_echo(theirs);
        let conn = ring.add_conn(ours).expect("add_conn");

        let mut sent = Vec::new();
        let records = 10_000;
        for i in 0..records {
            let record = format!("record {i} {}|", "x".repeat(i % 37));
            ring.send(conn, record.as_bytes()).expect("send");
            sent.extend_from_slice(record.as_bytes());
        }
        assert_eq!(ring.queued_send_bytes(conn), sent.len(), "{backend}");

        let mut events = Vec::new();
        poll_until(&mut ring, &mut events, Duration::from_secs(20), |ev| {
            data_of(ev, conn).len() >= sent.len() || closed_count(ev) > 0
        });
        assert_eq!(closed_count(&events), 0, "{backend}");
        assert_eq!(data_of(&events, conn), sent, "{backend}: echo differs");
        assert_eq!(ring.queued_send_bytes(conn), 0, "{backend}");

        ring.close(conn);
        let stats = echo.join().expect("echo thread");
        assert_eq!(stats.bytes, sent.len() as u64, "{backend}");
        // Queued before the first poll, the records leave in a handful of large writes, so
        // the peer reads far fewer times than there were sends.
        assert!(
            stats.reads * 20 < records as u64,
            "{backend}: {} reads for {records} sends; sends were not batched",
            stats.reads
        );
    }
}

/// A stream pattern that does not repeat with any small period.
fn pattern_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(2_654_435_761) >> 13) as u8
}

#[test]
fn large_transfer_both_ways_with_backpressure() {
    const TOTAL_BYTES: u64 = 64 << 20;
    const CHUNK_BYTES: usize = 64 << 10;
    for backend in backends() {
        let mut ring = new_ring(backend);
        let (ours, theirs) = tcp_pair();
        let echo = spawn_echo(theirs);
        let conn = ring.add_conn(ours).expect("add_conn");

        let mut sent_bytes = 0u64;
        let mut received_bytes = 0u64;
        let mut fulls = 0u32;
        let mut writables = 0u32;
        let mut blocked = false;
        let mut chunk = vec![0u8; CHUNK_BYTES];
        let deadline = Instant::now() + Duration::from_secs(120);
        while received_bytes < TOTAL_BYTES {
            assert!(Instant::now() < deadline, "{backend}: transfer stalled");
            while !blocked && sent_bytes < TOTAL_BYTES {
                let len = CHUNK_BYTES.min((TOTAL_BYTES - sent_bytes) as usize);
                for (i, b) in chunk[..len].iter_mut().enumerate() {
                    *b = pattern_byte(sent_bytes + i as u64);
                }
                match ring.send(conn, &chunk[..len]) {
                    Ok(()) => sent_bytes += len as u64,
                    Err(SendError::Full) => {
                        fulls += 1;
                        blocked = true;
                    }
                    Err(e) => panic!("{backend}: send: {e}"),
                }
            }
            assert!(ring.queued_send_bytes(conn) <= RingConfig::default().send_buffer_bytes_max);
            let mut mismatch = None;
            ring.poll(Some(Duration::from_secs(1)), &mut |ev| match ev {
                RingEvent::Data { conn: c, bytes } => {
                    assert_eq!(c, conn);
                    for (i, &b) in bytes.iter().enumerate() {
                        let offset = received_bytes + i as u64;
                        if b != pattern_byte(offset) && mismatch.is_none() {
                            mismatch = Some(offset);
                        }
                    }
                    received_bytes += bytes.len() as u64;
                }
                RingEvent::Writable { conn: c } => {
                    assert_eq!(c, conn);
                    writables += 1;
                    blocked = false;
                }
                RingEvent::Closed { error, .. } => panic!("{backend}: closed: {error:?}"),
                RingEvent::Filled { .. } => panic!("{backend}: no receive was steered"),
            })
            .expect("poll");
            assert_eq!(mismatch, None, "{backend}: corrupt byte at offset");
        }
        assert_eq!(received_bytes, TOTAL_BYTES, "{backend}");
        assert!(fulls > 0, "{backend}: the send cap never pushed back");
        assert!(writables > 0, "{backend}: no Writable after Full");
        ring.close(conn);
        assert_eq!(echo.join().expect("echo").bytes, TOTAL_BYTES, "{backend}");
    }
}

#[test]
fn peer_close_gives_exactly_one_closed() {
    for backend in backends() {
        let mut ring = new_ring(backend);
        let (ours, mut theirs) = tcp_pair();
        let conn = ring.add_conn(ours).expect("add_conn");
        theirs.write_all(b"bye").expect("peer write");
        drop(theirs);

        let mut events = Vec::new();
        poll_until(&mut ring, &mut events, Duration::from_secs(5), |ev| {
            closed_count(ev) > 0
        });
        events.extend(poll_for(&mut ring, Duration::from_millis(200)));
        assert_eq!(data_of(&events, conn), b"bye", "{backend}");
        assert_eq!(
            events.last(),
            Some(&Owned::Closed(conn, None)),
            "{backend}: {:?}",
            summarize(&events)
        );
        assert_eq!(closed_count(&events), 1, "{backend}");
        assert_eq!(ring.conn_count(), 0, "{backend}");
        assert_eq!(ring.send(conn, b"x"), Err(SendError::Closed), "{backend}");
        assert_eq!(ring.queued_send_bytes(conn), 0);
        ring.close(conn); // closing a gone connection is harmless
    }
}

#[test]
fn peer_reset_gives_exactly_one_closed_with_error() {
    for backend in backends() {
        let mut ring = new_ring(backend);
        let (ours, theirs) = tcp_pair();
        let conn = ring.add_conn(ours).expect("add_conn");
        // Pending outgoing bytes make the failure visible on the send side too.
        ring.send(conn, &[7u8; 1024]).expect("send");
        ring.poll(Some(Duration::ZERO), &mut |_| {}).expect("poll");
        // Linger 0 turns the close into a reset.
        socket2::SockRef::from(&theirs)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(theirs);

        let mut events = Vec::new();
        poll_until(&mut ring, &mut events, Duration::from_secs(5), |ev| {
            closed_count(ev) > 0
        });
        events.extend(poll_for(&mut ring, Duration::from_millis(200)));
        assert_eq!(
            events,
            vec![Owned::Closed(conn, Some(ErrorKind::ConnectionReset))],
            "{backend}"
        );
        assert_eq!(ring.conn_count(), 0);
    }
}

#[test]
fn close_with_ops_in_flight_then_slot_reuse_has_no_stale_events() {
    for backend in backends() {
        let mut ring = new_ring(backend);
        for round in 0..10 {
            // A: a big send the peer does not read yet (a SEND stays in flight) and the
            // always-outstanding receive.
            let (ours_a, mut theirs_a) = tcp_pair();
            let a = ring.add_conn(ours_a).expect("add a");
            ring.send(a, &vec![0xAA; 6 << 20]).expect("send a");
            ring.poll(Some(Duration::ZERO), &mut |ev| {
                panic!("{backend}: unexpected {:?}", own(ev))
            })
            .expect("poll");
            ring.poll(Some(Duration::from_millis(5)), &mut |ev| {
                panic!("{backend}: unexpected {:?}", own(ev))
            })
            .expect("poll");
            assert!(
                ring.queued_send_bytes(a) > 0,
                "{backend}: send finished early"
            );
            ring.close(a);

            // The old peer now talks and then drains: none of it may surface, and it must
            // see the connection end.
            let (peer_done_tx, peer_done_rx) = mpsc::channel();
            thread::spawn(move || {
                let _ = theirs_a.write_all(b"stale bytes for a closed connection");
                let mut sink = vec![0u8; 1 << 20];
                let mut drained = 0usize;
                while let Ok(n) = theirs_a.read(&mut sink) {
                    if n == 0 {
                        break;
                    }
                    drained += n;
                }
                let _ = peer_done_tx.send(drained);
            });

            // B takes A's slot at once.
            let (ours_b, theirs_b) = tcp_pair();
            let echo_b = spawn_echo(theirs_b);
            let b = ring.add_conn(ours_b).expect("add b");
            assert_eq!(b.index(), a.index(), "{backend}: slot not reused");
            let fresh = format!("fresh {round}");
            ring.send(b, fresh.as_bytes()).expect("send b");

            let mut events = Vec::new();
            poll_until(&mut ring, &mut events, Duration::from_secs(5), |ev| {
                data_of(ev, b).len() >= fresh.len()
            });
            events.extend(poll_for(&mut ring, Duration::from_millis(50)));
            assert_eq!(
                events,
                vec![Owned::Data(b, fresh.clone().into_bytes())],
                "{backend}: round {round}"
            );

            let drained = peer_done_rx
                .recv_timeout(Duration::from_secs(5))
                .expect("closed connection's peer never saw the close");
            assert!(drained <= 6 << 20);

            ring.close(b);
            assert_eq!(echo_b.join().expect("echo").bytes, fresh.len() as u64);
        }
        assert_eq!(ring.conn_count(), 0);
    }
}

#[test]
fn dropping_a_ring_with_ops_in_flight_is_prompt() {
    for backend in backends() {
        let mut ring = new_ring(backend);
        let (ours, theirs) = tcp_pair();
        let conn = ring.add_conn(ours).expect("add_conn");
        ring.send(conn, &vec![1u8; 8 << 20]).expect("send");
        ring.poll(Some(Duration::from_millis(5)), &mut |_| {})
            .expect("poll");
        let start = Instant::now();
        drop(ring);
        // The io_uring backend cancels and waits for its operations; it gives up (and leaks)
        // only after 2 s.
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{backend}: drop took {:?}",
            start.elapsed()
        );
        drop(theirs);
    }
}

#[test]
fn waker_wakes_a_blocked_poll_from_another_thread() {
    for backend in backends() {
        let mut ring = new_ring(backend);
        let waker = ring.waker();

        // Woken before it waits: returns at once.
        waker.wake();
        let start = Instant::now();
        assert_eq!(ring.poll(None, &mut |_| {}).expect("poll"), 0);
        assert!(start.elapsed() < Duration::from_secs(1), "{backend}");

        let (tx, rx) = mpsc::channel();
        let sleeper = thread::spawn(move || {
            let start = Instant::now();
            let n = ring.poll(None, &mut |_| {}).expect("poll");
            tx.send((n, start.elapsed())).expect("report");
            ring
        });
        thread::sleep(Duration::from_millis(100));
        let other = waker.clone();
        thread::spawn(move || other.wake())
            .join()
            .expect("waker thread");
        let (n, waited) = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{backend}: poll(None) was not woken"));
        assert_eq!(n, 0);
        assert!(waited >= Duration::from_millis(80), "{backend}: {waited:?}");
        let mut ring = sleeper.join().expect("sleeper");

        // The wakeup was consumed: the next timed poll waits its full time.
        let start = Instant::now();
        ring.poll(Some(Duration::from_millis(50)), &mut |_| {})
            .expect("poll");
        ring.poll(Some(Duration::from_millis(50)), &mut |_| {})
            .expect("poll");
        assert!(
            start.elapsed() >= Duration::from_millis(45),
            "{backend}: a consumed wakeup still fires"
        );
    }
}

#[test]
fn open_auto_returns_a_working_ring() {
    let mut ring = Ring::open_auto(&RingConfig::default()).expect("open_auto");
    eprintln!("open_auto chose {}", ring.backend());
    if backends().contains(&Backend::Uring) {
        assert_eq!(ring.backend(), Backend::Uring);
    }
    let (ours, theirs) = tcp_pair();
    let echo = spawn_echo(theirs);
    let conn = ring.add_conn(ours).expect("add_conn");
    ring.send(conn, b"ping").expect("send");
    let mut events = Vec::new();
    poll_until(&mut ring, &mut events, Duration::from_secs(5), |ev| {
        data_of(ev, conn).len() >= 4
    });
    assert_eq!(data_of(&events, conn), b"ping");
    ring.close(conn);
    echo.join().expect("echo");
}

#[test]
fn send_limits_and_unknown_connections() {
    for backend in backends() {
        let cfg = RingConfig {
            send_buffer_bytes_max: 1000,
            ..RingConfig::default()
        };
        let mut ring = Ring::new(backend, &cfg).expect("ring");
        let (ours, _theirs) = tcp_pair();
        let conn = ring.add_conn(ours).expect("add_conn");
        assert_eq!(
            ring.send(conn, &[0; 1001]),
            Err(SendError::TooLarge {
                len: 1001,
                max: 1000
            })
        );
        ring.send(conn, &[0; 600]).expect("send");
        assert_eq!(ring.send(conn, &[0; 401]), Err(SendError::Full));
        ring.send(conn, &[0; 400]).expect("exactly at the cap");
        assert_eq!(ring.queued_send_bytes(conn), 1000);
        // The peer's socket buffer takes it all: the queue drains and the refused sender
        // hears about it.
        let mut events = Vec::new();
        poll_until(&mut ring, &mut events, Duration::from_secs(5), |ev| {
            ev.contains(&Owned::Writable(conn))
        });
        assert_eq!(ring.queued_send_bytes(conn), 0);
        assert_eq!(events, vec![Owned::Writable(conn)], "{backend}");

        let bogus = {
            ring.close(conn);
            conn
        };
        assert_eq!(ring.send(bogus, b"x"), Err(SendError::Closed));
    }
}

/// Messages framed by a 4-byte length, as a caller of `poll_steered` would: a message not whole
/// in the bytes received is steered into a buffer of its own; after one, a short receive of at
/// most `SHORT` bytes is asked for.
#[test]
fn steered_receives_fill_the_callers_buffer_with_exactly_its_bytes() {
    const SHORT: usize = 7;
    let sizes = [3 << 20, 10, 200_000, 5, 0, 1 << 20];
    let mut wire = Vec::new();
    let mut want = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let msg: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
        wire.extend_from_slice(&(size as u32).to_be_bytes());
        wire.extend_from_slice(&msg);
        want.push(msg);
    }
    for backend in backends() {
        let mut ring = new_ring(backend);
        let (ours, mut theirs) = tcp_pair();
        let wire = wire.clone();
        let peer = thread::spawn(move || theirs.write_all(&wire).expect("write"));
        let conn = ring.add_conn(ours).expect("add_conn");
        let mut pending = Vec::new();
        // (message, came in a steered buffer)
        let mut got: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut after_filled = false;
        let mut closed = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !closed && got.len() < sizes.len() {
            assert!(Instant::now() < deadline, "{backend}: timed out");
            ring.poll_steered(Some(Duration::from_millis(100)), &mut |ev, next| match ev {
                RingEvent::Data { conn: c, bytes } => {
                    assert_eq!(c, conn);
                    if after_filled {
                        assert!(bytes.len() <= SHORT, "{backend}: {} bytes", bytes.len());
                        after_filled = false;
                    }
                    pending.extend_from_slice(bytes);
                    while pending.len() >= 4 {
                        let len = u32::from_be_bytes(pending[..4].try_into().unwrap()) as usize;
                        if pending.len() - 4 >= len {
                            got.push((pending[4..4 + len].to_vec(), false));
                            pending.drain(..4 + len);
                        } else {
                            // Everything received belongs to this message.
                            let buf = pending.split_off(4);
                            pending.clear();
                            *next = RecvNext::Into { buf, len };
                            break;
                        }
                    }
                }
                RingEvent::Filled { conn: c, buf } => {
                    assert_eq!(c, conn);
                    got.push((buf, true));
                    *next = RecvNext::Own { bytes_max: SHORT };
                    after_filled = true;
                }
                RingEvent::Closed { .. } => closed = true,
                RingEvent::Writable { .. } => {}
            })
            .expect("poll");
        }
        peer.join().expect("peer");
        let messages: Vec<&Vec<u8>> = got.iter().map(|(m, _)| m).collect();
        assert_eq!(messages, want.iter().collect::<Vec<_>>(), "{backend}");
        // The large ones cannot come whole in the ring's buffer; the one after a short
        // receive cannot either.
        assert!(got[0].1 && got[2].1 && got[5].1, "{backend}");
        assert!(pending.is_empty());
    }
}

/// A connection closed while its receive is steered into a buffer: nothing of it is reported
/// afterwards, not even when its slot is reused at once.
#[test]
fn closing_a_connection_with_a_steered_receive_in_flight() {
    for backend in backends() {
        let mut ring = new_ring(backend);
        let (ours, mut theirs) = tcp_pair();
        let conn = ring.add_conn(ours).expect("add_conn");
        theirs.write_all(b"head").expect("write");
        let mut steered = false;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !steered {
            assert!(Instant::now() < deadline, "{backend}: no data");
            ring.poll_steered(Some(Duration::from_millis(50)), &mut |ev, next| {
                if let RingEvent::Data { .. } = ev {
                    *next = RecvNext::Into {
                        buf: Vec::new(),
                        len: 1 << 20,
                    };
                    steered = true;
                }
            })
            .expect("poll");
        }
        // Some of the steered bytes arrive, then the connection is closed under the receive.
        theirs.write_all(&[1; 1000]).expect("write");
        let events = poll_for(&mut ring, Duration::from_millis(50));
        assert!(events.is_empty(), "{backend}: {:?}", summarize(&events));
        ring.close(conn);
        let (ours2, mut theirs2) = tcp_pair();
        let conn2 = ring.add_conn(ours2).expect("add_conn");
        assert_eq!(conn2, conn, "the slot is reused");
        theirs.write_all(&[2; 1000]).expect("write");
        theirs2.write_all(b"fresh").expect("write");
        let mut events = Vec::new();
        poll_until(&mut ring, &mut events, Duration::from_secs(5), |ev| {
            data_of(ev, conn2).len() >= 5
        });
        assert_eq!(data_of(&events, conn2), b"fresh", "{backend}");
        drop(ring);
    }
}

/// The same traffic gives the same events (up to the chunking of data) on both backends.
#[test]
fn both_backends_report_the_same_conversation() {
    let mut transcripts = Vec::new();
    for backend in backends() {
        let mut ring = new_ring(backend);
        let (ours, mut theirs) = tcp_pair();
        let peer = thread::spawn(move || {
            theirs.write_all(b"hello").expect("write");
            let mut got = [0u8; 5];
            theirs.read_exact(&mut got).expect("read");
            theirs.write_all(b" bye").expect("write");
            got
        });
        let conn = ring.add_conn(ours).expect("add_conn");
        let mut events = Vec::new();
        poll_until(&mut ring, &mut events, Duration::from_secs(5), |ev| {
            data_of(ev, conn).len() >= 5
        });
        ring.send(conn, b"world").expect("send");
        poll_until(&mut ring, &mut events, Duration::from_secs(5), |ev| {
            closed_count(ev) > 0
        });
        assert_eq!(&peer.join().expect("peer"), b"world");
        let transcript = (
            data_of(&events, conn),
            events
                .iter()
                .filter(|e| !matches!(e, Owned::Data(..)))
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>(),
        );
        assert_eq!(transcript.0, b"hello bye", "{backend}");
        assert_eq!(transcript.1, vec![format!("Closed({conn:?}, None)")]);
        transcripts.push(transcript);
    }
    transcripts.dedup();
    assert_eq!(transcripts.len(), 1);
}

/// Prints round-trip and streaming throughput for each backend (for information only).
#[test]
fn throughput_report() {
    let span = Duration::from_millis(300);
    for backend in backends() {
        let mut ring = new_ring(backend);

        // 1-byte ping-pong.
        let (ours, theirs) = tcp_pair();
        let echo = spawn_echo(theirs);
        let conn = ring.add_conn(ours).expect("add_conn");
        let start = Instant::now();
        let mut round_trips = 0u64;
        while start.elapsed() < span {
            ring.send(conn, b"p").expect("send");
            let mut got = 0;
            while got == 0 {
                ring.poll(None, &mut |ev| {
                    if let RingEvent::Data { bytes, .. } = ev {
                        got += bytes.len();
                    }
                })
                .expect("poll");
            }
            assert_eq!(got, 1);
            round_trips += 1;
        }
        let ping_elapsed = start.elapsed();
        ring.close(conn);
        echo.join().expect("echo");

        // 64 KiB stream through an echo peer, up to 4 MiB outstanding.
        let (ours, theirs) = tcp_pair();
        let echo = spawn_echo(theirs);
        let conn = ring.add_conn(ours).expect("add_conn");
        let chunk = vec![0x5Au8; 64 << 10];
        let (mut sent, mut received) = (0u64, 0u64);
        let start = Instant::now();
        while start.elapsed() < span {
            while sent - received < 4 << 20 {
                if ring.send(conn, &chunk).is_err() {
                    break;
                }
                sent += chunk.len() as u64;
            }
            ring.poll(Some(Duration::from_millis(100)), &mut |ev| {
                if let RingEvent::Data { bytes, .. } = ev {
                    received += bytes.len() as u64;
                }
            })
            .expect("poll");
        }
        let stream_elapsed = start.elapsed();
        ring.close(conn);
        echo.join().expect("echo");

        eprintln!(
            "{backend}: 1-byte ping-pong {:.0} round trips/s ({:.1} us each); \
             64 KiB stream echoed {:.0} MiB/s",
            round_trips as f64 / ping_elapsed.as_secs_f64(),
            ping_elapsed.as_secs_f64() * 1e6 / round_trips as f64,
            received as f64 / (1 << 20) as f64 / stream_elapsed.as_secs_f64(),
        );
        assert!(round_trips > 0 && received > 0);
    }
}

#[test]
fn ring_moves_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Ring>();
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<nfs_walker::ring::RingWaker>();
}
