//! TCP connections to RPC servers, and a simple blocking RPC client for the cold paths
//! (portmapper, MOUNT, path resolution, `ls`). The scan engine has its own I/O (src/ring).

use crate::rpc::msg::{encode_call_header, CallHeader, Reply};
use crate::rpc::record::{begin_record, end_record, RecordAssembler};
use crate::rpc::RpcError;
use crate::xdr::{XdrEncode, XdrWriter};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use thiserror::Error;

/// Reserved ports we try, highest first (below 512 many are claimed by well-known services).
const RESERVED_PORT_HIGH: u16 = 1023;
const RESERVED_PORT_LOW: u16 = 512;

/// Whether connections come from a privileged (reserved, < 1024) source port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourcePort {
    /// A reserved port where the process may bind one, an ordinary port otherwise.
    #[default]
    Auto,
    /// Always an ordinary port.
    Unprivileged,
}

/// Rotates through the reserved range so concurrent connections (and ports lingering in
/// TIME_WAIT from earlier ones) do not collide.
static NEXT_RESERVED: AtomicU32 = AtomicU32::new(0);

/// Connects to `addr` with a timeout, from a reserved source port where allowed.
/// Returns the stream and whether its source port is privileged.
pub fn connect_tcp(
    addr: SocketAddr,
    policy: SourcePort,
    timeout: Duration,
) -> io::Result<(TcpStream, bool)> {
    if policy == SourcePort::Auto {
        let span = (RESERVED_PORT_HIGH - RESERVED_PORT_LOW + 1) as u32;
        let start = NEXT_RESERVED.fetch_add(1, Ordering::Relaxed) + std::process::id();
        for i in 0..span.min(64) {
            let port = RESERVED_PORT_HIGH - ((start + i) % span) as u16;
            match connect_from(addr, Some(port), timeout) {
                Ok(s) => return Ok((s, true)),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AddrInUse | io::ErrorKind::AddrNotAvailable
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }
    connect_from(addr, None, timeout).map(|s| (s, false))
}

fn connect_from(addr: SocketAddr, port: Option<u16>, timeout: Duration) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(port) = port {
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, port).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, port).into(),
        };
        sock.bind(&SockAddr::from(local))?;
    }
    sock.connect_timeout(&SockAddr::from(addr), timeout)?;
    sock.set_tcp_nodelay(true)?;
    Ok(sock.into())
}

/// Errors of a blocking RPC exchange.
#[derive(Debug, Error)]
pub enum CallError {
    #[error("connection to {addr} failed: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("I/O error talking to {addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
    #[error("no reply from {addr} within {timeout_ms} ms")]
    Timeout { addr: SocketAddr, timeout_ms: u64 },
    #[error("{addr} closed the connection")]
    Closed { addr: SocketAddr },
    #[error("{addr} does not speak ONC-RPC: {reason}")]
    NotRpc { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Rpc(#[from] RpcError),
}

/// A blocking ONC-RPC client over one TCP connection, one call at a time.
pub struct RpcClient {
    stream: TcpStream,
    addr: SocketAddr,
    cred_xdr: Vec<u8>,
    next_xid: u32,
    send_buf: Vec<u8>,
    recv: RecordAssembler,
    read_buf: Vec<u8>,
    reply: Vec<u8>,
    timeout: Duration,
    privileged: bool,
}

impl RpcClient {
    /// Connects to `addr`; `cred_xdr` is an encoded [`crate::rpc::Auth`].
    pub fn connect(
        addr: SocketAddr,
        cred_xdr: Vec<u8>,
        policy: SourcePort,
        timeout: Duration,
    ) -> Result<Self, CallError> {
        let (stream, privileged) = connect_tcp(addr, policy, timeout)
            .map_err(|source| CallError::Connect { addr, source })?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|source| CallError::Io { addr, source })?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|source| CallError::Io { addr, source })?;
        Ok(RpcClient {
            stream,
            addr,
            cred_xdr,
            next_xid: initial_xid(),
            send_buf: Vec::with_capacity(512),
            recv: RecordAssembler::new(crate::rpc::DEFAULT_RECORD_BYTES_MAX),
            read_buf: vec![0; 256 << 10],
            reply: Vec::new(),
            timeout,
            privileged,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the connection comes from a reserved source port.
    pub fn privileged(&self) -> bool {
        self.privileged
    }

    /// Sends one call and waits for its reply; returns the procedure's result bytes.
    pub fn call(
        &mut self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &dyn Fn(&mut XdrWriter<'_>),
    ) -> Result<&[u8], CallError> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        self.send_buf.clear();
        let start = begin_record(&mut self.send_buf);
        {
            let mut w = XdrWriter::new(&mut self.send_buf);
            encode_call_header(
                &mut w,
                xid,
                &CallHeader { prog, vers, proc_ },
                &self.cred_xdr,
            );
            args(&mut w);
        }
        end_record(&mut self.send_buf, start);
        let addr = self.addr;
        self.stream
            .write_all(&self.send_buf)
            .map_err(|source| CallError::Io { addr, source })?;
        loop {
            if let Some(rec) = self.recv.next_record().map_err(|e| CallError::NotRpc {
                addr,
                reason: e.to_string(),
            })? {
                let reply = Reply::decode(rec).map_err(|e| CallError::NotRpc {
                    addr,
                    reason: e.to_string(),
                })?;
                if reply.xid != xid {
                    continue; // a late reply to an earlier call: not ours
                }
                let body = reply.outcome?;
                self.reply.clear();
                self.reply.extend_from_slice(body);
                return Ok(&self.reply);
            }
            let n = match self.stream.read(&mut self.read_buf) {
                Ok(0) => return Err(CallError::Closed { addr }),
                Ok(n) => n,
                // A signal delivered to this thread (a handler installed elsewhere in the
                // process) is no failure of the server: read again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(CallError::Timeout {
                        addr,
                        timeout_ms: self.timeout.as_millis() as u64,
                    })
                }
                Err(source) => return Err(CallError::Io { addr, source }),
            };
            self.recv.push(&self.read_buf[..n]);
        }
    }

    /// Convenience for a call whose arguments are one encodable value.
    pub fn call_with<A: XdrEncode>(
        &mut self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &A,
    ) -> Result<&[u8], CallError> {
        self.call(prog, vers, proc_, &|w| args.encode(w))
    }
}

/// XIDs start at a value that differs between processes and runs, so a server's duplicate
/// request cache never mistakes our calls for another client's.
pub fn initial_xid() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn garbage_server_is_reported_not_rpc() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 64];
            let _ = s.read(&mut b);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let mut c = RpcClient::connect(
            addr,
            crate::rpc::Auth::None.to_xdr(),
            SourcePort::Unprivileged,
            Duration::from_secs(2),
        )
        .unwrap();
        let err = c.call(100003, 3, 0, &|_| {}).unwrap_err();
        assert!(
            matches!(err, CallError::NotRpc { .. } | CallError::Closed { .. }),
            "{err}"
        );
        t.join().unwrap();
    }

    #[test]
    fn silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut c = RpcClient::connect(
            addr,
            crate::rpc::Auth::None.to_xdr(),
            SourcePort::Unprivileged,
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(matches!(
            c.call(100003, 3, 0, &|_| {}),
            Err(CallError::Timeout { .. })
        ));
        drop(l);
    }
}
