//! Sockets and threads: one listening TCP port for PORTMAP, MOUNT and NFS, a thread per
//! connection, and a timer thread per connection for replies that are held back.
//!
//! A connection thread reads big chunks, answers every complete call in them into one reused
//! output buffer, and writes that buffer once: many calls per system call, no allocation per
//! call. A reply that must wait (latency, stall) is moved into a pooled buffer and handed to
//! the connection's timer thread, which keeps a heap of deadlines, so a delay never blocks the
//! calls behind it and replies go out in deadline order, not call order.

use crate::service::{ConnState, ReplyPlan, Service};
use crate::stats::StatsSnapshot;
use crate::Config;
use nfs_proto::rpc::record::RecordAssembler;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest call record accepted (a WRITE of 1 MiB plus headers fits).
pub const CALL_RECORD_BYTES_MAX: u32 = 2 << 20;
/// Most connections served at once; further ones are closed at once.
pub const CONNECTIONS_MAX: usize = 4096;
/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 256 << 10;
/// Output is written once it grows past this, even in the middle of a batch of calls.
const FLUSH_BYTES: usize = 1 << 20;
/// Replies held by one connection's timer at once; past it, calls wait (backpressure).
const DELAYED_REPLIES_MAX: usize = 65536;
/// Size of the small fragments of `--faults fragment`, cycled.
const FRAGMENT_SIZES: [usize; 4] = [1, 3, 7, 16];

/// Starts servers.
pub struct Server;

impl Server {
    /// Binds `config.listen`, builds the tree and starts accepting connections.
    pub fn start(config: Config) -> io::Result<ServerHandle> {
        if !config.export.starts_with('/') || config.export.len() > 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the export path must start with '/' and be at most 1024 bytes",
            ));
        }
        let listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let service = Arc::new(Service::new(&config, addr.port()));
        let shared = Arc::new(Shared {
            service,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            seed: config.seed,
        });
        let listener_fd = listener.as_raw_fd();
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name("mock-nfsd-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(ServerHandle {
            addr,
            listener_fd,
            export: config.export,
            shared,
            accept_thread: Some(accept_thread),
        })
    }
}

struct Shared {
    service: Arc<Service>,
    stopping: AtomicBool,
    /// Open connections, so shutdown can close them.
    conns: Mutex<HashMap<u64, TcpStream>>,
    seed: u64,
}

/// A running server. Dropping it shuts the server down.
pub struct ServerHandle {
    addr: SocketAddr,
    /// The listening socket (owned by the accept thread), to wake its blocking accept.
    listener_fd: RawFd,
    export: String,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The TCP port of PORTMAP, MOUNT and NFS.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nfs://HOST/EXPORT?nfsport=P&mountport=P`, for nfs-walker and libnfs clients.
    pub fn url(&self) -> String {
        let host = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => "127.0.0.1".to_string(),
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) if a.ip().is_unspecified() => "[::1]".to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let port = self.port();
        format!(
            "nfs://{host}{}?nfsport={port}&mountport={port}",
            self.export
        )
    }

    /// Calls per procedure so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.service.stats.snapshot()
    }

    /// Stops accepting, closes every connection and waits for the accept thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept_thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let wake_addr = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from(([127, 0, 0, 1], a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
            }
            a => a,
        };
        if TcpStream::connect_timeout(&wake_addr, Duration::from_secs(1)).is_err() {
            // SAFETY: the accept thread owns the socket and is still running (not joined), so
            // the descriptor is open; shutting down a listening socket makes accept fail.
            unsafe {
                libc::shutdown(self.listener_fd, libc::SHUT_RDWR);
            }
        }
        let _ = accept.join();
        if let Ok(conns) = self.shared.conns.lock() {
            for stream in conns.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_conn = 0u64;
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // e.g. EMFILE: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let id = next_conn;
        next_conn += 1;
        {
            let Ok(mut conns) = shared.conns.lock() else {
                break;
            };
            if conns.len() >= CONNECTIONS_MAX {
                continue; // dropping `stream` closes it
            }
            match stream.try_clone() {
                Ok(clone) => {
                    conns.insert(id, clone);
                }
                Err(_) => continue,
            }
        }
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("mock-nfsd-conn-{id}"))
            .spawn(move || {
                let _ = serve_connection(&conn_shared, stream, id);
                if let Ok(mut conns) = conn_shared.conns.lock() {
                    conns.remove(&id);
                }
            });
        if spawned.is_err() {
            if let Ok(mut conns) = shared.conns.lock() {
                if let Some(s) = conns.remove(&id) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// A reply held until `due`.
struct DelayedReply {
    due: Instant,
    seq: u64,
    bytes: Vec<u8>,
}

impl PartialEq for DelayedReply {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for DelayedReply {}
impl PartialOrd for DelayedReply {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DelayedReply {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// The sending side of a connection's timer thread, started on the first delayed reply.
struct Timer {
    tx: Sender<DelayedReply>,
    /// Buffers the timer has sent, back for reuse.
    pool: Arc<Mutex<Vec<Vec<u8>>>>,
    seq: u64,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl Timer {
    fn start(writer: Arc<Mutex<TcpStream>>) -> io::Result<Timer> {
        let (tx, rx) = mpsc::channel();
        let pool = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (pool2, in_flight2) = (Arc::clone(&pool), Arc::clone(&in_flight));
        thread::Builder::new()
            .name("mock-nfsd-timer".into())
            .spawn(move || timer_loop(rx, writer, pool2, in_flight2))?;
        Ok(Timer {
            tx,
            pool,
            seq: 0,
            in_flight,
        })
    }

    fn buffer(&self) -> Vec<u8> {
        self.pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default()
    }

    fn schedule(&mut self, due: Instant, bytes: Vec<u8>) {
        while self.in_flight.load(Ordering::Relaxed) >= DELAYED_REPLIES_MAX {
            thread::sleep(Duration::from_micros(200));
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.seq += 1;
        let _ = self.tx.send(DelayedReply {
            due,
            seq: self.seq,
            bytes,
        });
    }
}

fn timer_loop(
    rx: Receiver<DelayedReply>,
    writer: Arc<Mutex<TcpStream>>,
    pool: Arc<Mutex<Vec<Vec<u8>>>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut heap: BinaryHeap<Reverse<DelayedReply>> = BinaryHeap::new();
    let mut batch = Vec::new();
    let mut sender_gone = false;
    let mut dead = false;
    loop {
        if dead {
            // The connection is gone: nobody is waiting for these.
            in_flight.fetch_sub(heap.len(), Ordering::Relaxed);
            heap.clear();
        }
        let next_due = heap.peek().map(|r| r.0.due);
        let received = match (next_due, sender_gone) {
            (None, true) => return,
            (None, false) => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            (Some(due), false) => rx.recv_timeout(due.saturating_duration_since(Instant::now())),
            (Some(due), true) => {
                thread::sleep(due.saturating_duration_since(Instant::now()));
                Err(RecvTimeoutError::Timeout)
            }
        };
        match received {
            Ok(r) => heap.push(Reverse(r)),
            Err(RecvTimeoutError::Disconnected) => sender_gone = true,
            Err(RecvTimeoutError::Timeout) => {}
        }
        while let Ok(r) = rx.try_recv() {
            heap.push(Reverse(r));
        }
        let now = Instant::now();
        batch.clear();
        let mut sent = 0usize;
        while heap.peek().is_some_and(|r| r.0.due <= now) {
            let Some(Reverse(r)) = heap.pop() else { break };
            batch.extend_from_slice(&r.bytes);
            sent += 1;
            let mut bytes = r.bytes;
            bytes.clear();
            if let Ok(mut p) = pool.lock() {
                if p.len() < 1024 {
                    p.push(bytes);
                }
            }
        }
        if sent > 0 {
            if !dead {
                if let Ok(mut w) = writer.lock() {
                    dead = w.write_all(&batch).is_err();
                }
            }
            in_flight.fetch_sub(sent, Ordering::Relaxed);
        }
    }
}

fn serve_connection(shared: &Shared, stream: TcpStream, id: u64) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let service: &Service = &shared.service;
    let mut conn = ConnState::new(shared.seed, id);
    let mut assembler = RecordAssembler::new(CALL_RECORD_BYTES_MAX);
    let mut read_buf = vec![0u8; READ_CHUNK_BYTES];
    let mut out: Vec<u8> = Vec::with_capacity(FLUSH_BYTES + (1 << 20));
    let mut scratch: Vec<u8> = Vec::new();
    let mut timer: Option<Timer> = None;
    let mut reader = &stream;
    let flush = |out: &mut Vec<u8>| -> io::Result<()> {
        if !out.is_empty() {
            let mut w = writer
                .lock()
                .map_err(|_| io::Error::other("writer lock poisoned"))?;
            w.write_all(out)?;
            out.clear();
        }
        Ok(())
    };
    let close = |out: &mut Vec<u8>| -> io::Result<()> {
        let _ = flush(out);
        let _ = stream.shutdown(Shutdown::Both);
        Ok(())
    };
    loop {
        let n = match reader.read(&mut read_buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        assembler.push(&read_buf[..n]);
        loop {
            let record = match assembler.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                // A hostile record header: nothing more on this stream can be trusted.
                Err(_) => return close(&mut out),
            };
            let start = out.len();
            let plan = service.handle(&mut conn, record, &mut out);
            if plan.reset {
                return close(&mut out);
            }
            if plan.dropped || out.len() == start {
                continue;
            }
            if plan.hugerecord {
                out.truncate(start);
                out.extend_from_slice(&u32::MAX.to_be_bytes());
                return close(&mut out);
            }
            if plan.truncate {
                let body = out.len() - start - 4;
                out.truncate(start + 4 + body / 2);
                return close(&mut out);
            }
            if plan.fragment || plan.xid_decoy {
                reshape_reply(&mut out, start, &plan, &mut scratch);
            }
            if !plan.delay.is_zero() {
                let timer = match timer.as_mut() {
                    Some(t) => t,
                    None => timer.insert(Timer::start(Arc::clone(&writer))?),
                };
                let mut bytes = timer.buffer();
                bytes.extend_from_slice(&out[start..]);
                out.truncate(start);
                timer.schedule(Instant::now() + plan.delay, bytes);
            }
            if out.len() >= FLUSH_BYTES {
                flush(&mut out)?;
            }
        }
        flush(&mut out)?;
    }
    flush(&mut out)
}

/// Rewrites the reply record at `out[start..]`: split into small fragments and/or preceded
/// by a copy under an XID nobody asked for.
fn reshape_reply(out: &mut Vec<u8>, start: usize, plan: &ReplyPlan, scratch: &mut Vec<u8>) {
    scratch.clear();
    scratch.extend_from_slice(&out[start..]);
    out.truncate(start);
    if plan.xid_decoy && scratch.len() >= 8 {
        let decoy_at = out.len();
        out.extend_from_slice(scratch);
        let xid = u32::from_be_bytes([scratch[4], scratch[5], scratch[6], scratch[7]]);
        out[decoy_at + 4..decoy_at + 8].copy_from_slice(&(!xid).to_be_bytes());
    }
    if plan.fragment {
        let body = &scratch[4..];
        let mut at = 0;
        let mut k = 0;
        loop {
            let size = FRAGMENT_SIZES[k % FRAGMENT_SIZES.len()].min(body.len() - at);
            k += 1;
            let last = at + size == body.len();
            let header = if last { 0x8000_0000 } else { 0 } | size as u32;
            out.extend_from_slice(&header.to_be_bytes());
            out.extend_from_slice(&body[at..at + size]);
            at += size;
            if last {
                break;
            }
        }
    } else {
        out.extend_from_slice(scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragmenting_keeps_the_body() {
        let mut out = vec![9u8];
        let body: Vec<u8> = (0..50).collect();
        out.extend_from_slice(&(0x8000_0000u32 | 50).to_be_bytes());
        out.extend_from_slice(&body);
        let plan = ReplyPlan {
            fragment: true,
            ..Default::default()
        };
        reshape_reply(&mut out, 1, &plan, &mut Vec::new());
        let mut asm = RecordAssembler::new(1024);
        asm.push(&out[1..]);
        assert_eq!(asm.next_record().unwrap().unwrap(), &body[..]);
        assert!(out.len() > 1 + 4 + 50 + 4 * 5, "many fragments");
    }
}
