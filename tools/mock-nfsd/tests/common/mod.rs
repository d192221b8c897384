//! A minimal blocking RPC client over std's TcpStream, for driving mock-nfsd on the wire.
#![allow(dead_code)]

use mock_nfsd::{Config, Server, ServerHandle};
use nfs_proto::rpc::mount::{MntArgs, MntReply, MOUNT_PROGRAM, MOUNT_V3};
use nfs_proto::rpc::msg::{encode_call_header, Auth, AuthSys, CallHeader, Reply, RpcError};
use nfs_proto::rpc::nfs3::{
    proc3, FileHandle, Nfsstat3, ReaddirArgs, ReaddirPlusArgs, ReaddirPlusReply, ReaddirReply,
    NFS_PROGRAM, NFS_V3,
};
use nfs_proto::rpc::record::{begin_record, end_record, RecordAssembler};
use nfs_proto::xdr::{XdrEncode, XdrWriter};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const EXPORT: &[u8] = b"/export";

pub fn start(config: Config) -> ServerHandle {
    Server::start(config).expect("server starts")
}

pub fn config(tree: &str) -> Config {
    Config {
        tree: tree.parse().expect("tree spec"),
        ..Default::default()
    }
}

/// One connection to the server.
pub struct Conn {
    pub stream: TcpStream,
    asm: RecordAssembler,
    pub next_xid: u32,
    cred: Vec<u8>,
}

#[derive(Debug)]
pub enum RecvError {
    /// The server closed the connection (EOF or reset).
    Closed,
    TimedOut,
    Io(io::Error),
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Conn {
            stream,
            asm: RecordAssembler::new(16 << 20),
            next_xid: 0x1000,
            cred: Auth::Sys(AuthSys::new(1000, 1000)).to_xdr(),
        }
    }

    pub fn set_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).ok();
    }

    /// The bytes of a call record, with a fresh XID.
    pub fn encode_call(
        &mut self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &dyn XdrEncode,
    ) -> (u32, Vec<u8>) {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1);
        let mut buf = Vec::new();
        let start = begin_record(&mut buf);
        let mut w = XdrWriter::new(&mut buf);
        encode_call_header(&mut w, xid, &CallHeader { prog, vers, proc_ }, &self.cred);
        args.encode(&mut w);
        end_record(&mut buf, start);
        (xid, buf)
    }

    pub fn send(&mut self, prog: u32, vers: u32, proc_: u32, args: &dyn XdrEncode) -> u32 {
        let (xid, buf) = self.encode_call(prog, vers, proc_, args);
        self.stream.write_all(&buf).expect("send");
        xid
    }

    pub fn send_nfs(&mut self, proc_: u32, args: &dyn XdrEncode) -> u32 {
        self.send(NFS_PROGRAM, NFS_V3, proc_, args)
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next whole reply record.
    pub fn recv(&mut self) -> Result<Vec<u8>, RecvError> {
        let mut buf = [0u8; 64 << 10];
        loop {
            match self.asm.next_record() {
                Ok(Some(r)) => return Ok(r.to_vec()),
                Ok(None) => {}
                Err(e) => return Err(RecvError::Io(io::Error::other(e))),
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.asm.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(RecvError::TimedOut)
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Err(RecvError::Closed)
                }
                Err(e) => return Err(RecvError::Io(e)),
            }
        }
    }

    /// Raw bytes until the server closes the connection or `timeout` passes without data.
    pub fn read_raw_until_close(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        self.set_timeout(timeout);
        let mut out = Vec::new();
        let mut buf = [0u8; 64 << 10];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (out, true),
                Err(_) => return (out, false),
            }
        }
    }

    /// Sends a call and returns its reply record (asserting the XIDs match).
    pub fn call(&mut self, prog: u32, vers: u32, proc_: u32, args: &dyn XdrEncode) -> Vec<u8> {
        let xid = self.send(prog, vers, proc_, args);
        let rec = self.recv().expect("a reply");
        assert_eq!(xid_of(&rec), xid, "reply to the call just sent");
        rec
    }

    /// An NFS call's result bytes (the RPC layer must have accepted it).
    pub fn nfs(&mut self, proc_: u32, args: &dyn XdrEncode) -> Vec<u8> {
        let rec = self.call(NFS_PROGRAM, NFS_V3, proc_, args);
        accepted(&rec).expect("accepted").to_vec()
    }

    pub fn mount(&mut self, path: &[u8]) -> FileHandle {
        let rec = self.call(MOUNT_PROGRAM, MOUNT_V3, 1, &MntArgs { dirpath: path });
        MntReply::decode(accepted(&rec).expect("accepted"))
            .expect("mounted")
            .fh
    }

    /// One READDIRPLUS call: the entries `(name, cookie, fileid)`, verifier and eof, or the
    /// failure status.
    pub fn readdirplus(
        &mut self,
        dir: FileHandle,
        cookie: u64,
        cookieverf: [u8; 8],
        dircount: u32,
        maxcount: u32,
    ) -> Result<Listing, Nfsstat3> {
        let args = ReaddirPlusArgs {
            dir,
            cookie,
            cookieverf,
            dircount,
            maxcount,
        };
        let res = self.nfs(proc3::READDIRPLUS, &args);
        assert!(res.len() <= maxcount as usize, "reply body within maxcount");
        match ReaddirPlusReply::decode_result(&res).expect("well-formed READDIRPLUS") {
            Ok(r) => Ok(Listing {
                entries: r
                    .entries()
                    .map(|e| ListedEntry {
                        name: e.name.to_vec(),
                        cookie: e.cookie,
                        fileid: e.fileid,
                        attrs: e.attrs,
                        fh: e.fh,
                    })
                    .collect(),
                cookieverf: r.cookieverf,
                eof: r.eof,
            }),
            Err(fail) => Err(fail.status),
        }
    }

    pub fn readdir(
        &mut self,
        dir: FileHandle,
        cookie: u64,
        cookieverf: [u8; 8],
        count: u32,
    ) -> Result<Listing, Nfsstat3> {
        let args = ReaddirArgs {
            dir,
            cookie,
            cookieverf,
            count,
        };
        let res = self.nfs(proc3::READDIR, &args);
        assert!(res.len() <= count as usize, "reply body within count");
        match ReaddirReply::decode_result(&res).expect("well-formed READDIR") {
            Ok(r) => Ok(Listing {
                entries: r
                    .entries()
                    .map(|e| ListedEntry {
                        name: e.name.to_vec(),
                        cookie: e.cookie,
                        fileid: e.fileid,
                        attrs: None,
                        fh: None,
                    })
                    .collect(),
                cookieverf: r.cookieverf,
                eof: r.eof,
            }),
            Err(fail) => Err(fail.status),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListedEntry {
    pub name: Vec<u8>,
    pub cookie: u64,
    pub fileid: u64,
    pub attrs: Option<nfs_proto::rpc::nfs3::Fattr3>,
    pub fh: Option<FileHandle>,
}

#[derive(Debug, Clone)]
pub struct Listing {
    pub entries: Vec<ListedEntry>,
    pub cookieverf: [u8; 8],
    pub eof: bool,
}

pub fn xid_of(record: &[u8]) -> u32 {
    u32::from_be_bytes([record[0], record[1], record[2], record[3]])
}

/// The result bytes of an accepted, successful reply, or the RPC error.
pub fn accepted(record: &[u8]) -> Result<&[u8], RpcError> {
    Reply::decode(record)?.outcome
}

/// The nfsstat3 a result starts with.
pub fn status_of(result: &[u8]) -> Nfsstat3 {
    Nfsstat3::from_u32(u32::from_be_bytes([
        result[0], result[1], result[2], result[3],
    ]))
}
