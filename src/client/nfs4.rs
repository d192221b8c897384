//! The blocking NFSv4.1 client of the cold paths (`ls`, resolving a scan's root): a client ID
//! and a session (EXCHANGE_ID, CREATE_SESSION, RECLAIM_COMPLETE), SEQUENCE on one slot for
//! every COMPOUND, the URL's path through the server's pseudo file system (PUTROOTFH, LOOKUP),
//! and DESTROY_SESSION / DESTROY_CLIENTID at the end. No portmapper, no MOUNT: port 2049
//! unless the URL gives one.
//!
//! Errors are handled as the walk handles them: NFS4ERR_DELAY and NFS4ERR_GRACE wait and resend,
//! a lost session or client ID is re-established and the call resent, slot errors resend on a
//! corrected sequence ID; every retry is bounded.

use super::idmap::{IdMap, IdMapError};
use super::mount::ClientOptions;
use super::transport::{CallError, RpcClient};
use super::url::{NfsUrl, UrlError};
use crate::rpc::nfs3::NFS_PROGRAM;
use crate::rpc::nfs4::{
    op4, ArgOp, AttrMask, ChannelAttrs, CompoundReply, CreateSessionArgs, ExchangeIdArgs, Fattr4,
    FileType4, ImplId, Nfs4ReplyError, NfsTime4, Nfsstat4, ReaddirArgs4, Recovery, ResOk,
    SequenceArgs, SessionId, EXCHGID4_FLAG_USE_NON_PNFS, MINOR_VERSION_1, NFSPROC4_COMPOUND,
    NFS_V4,
};
use crate::rpc::{Auth, AuthSys};
use crate::xdr::{XdrEncode, XdrError};
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// The NFSv4 port (RFC 7530 section 3.1): no portmapper is asked.
pub const NFS4_PORT: u16 = 2049;
/// Slots asked for in CREATE_SESSION: what the engine keeps in flight, at most. The server
/// grants what it will; the session uses exactly what was granted.
pub const SESSION_SLOTS_WANTED: u32 = 1024;
/// Largest request and reply asked for: a listing page of 1 MiB and its headers.
pub const SESSION_MESSAGE_BYTES: u32 = (1 << 20) + (64 << 10);
/// Resends of one COMPOUND after DELAY, GRACE, a lost session or a slot error before giving up.
pub const COMPOUND_RETRIES_MAX: u32 = 20;
/// The first wait after NFS4ERR_DELAY, doubled up to [`DELAY_BACKOFF_MAX`] (as v3 JUKEBOX).
pub const DELAY_BACKOFF_FIRST: Duration = Duration::from_millis(100);
pub const DELAY_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Operations per COMPOUND when resolving a path (servers allow at least 8; ganesha 100).
const LOOKUPS_PER_COMPOUND: usize = 6;

#[derive(Debug, Error)]
pub enum Nfs4ClientError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    IdMap(#[from] IdMapError),
    #[error("NFSv4 service at {addr}: {source}")]
    Call { addr: SocketAddr, source: CallError },
    #[error("NFSv4 service at {addr}: {source}")]
    Reply {
        addr: SocketAddr,
        source: Nfs4ReplyError,
    },
    #[error("{path}: {status}")]
    Path { path: String, status: Nfsstat4 },
    #[error("{path} is a referral to {locations}: not followed")]
    Referral { path: String, locations: String },
    #[error("{path} is not a directory")]
    NotADirectory { path: String },
    #[error("NFSv4 service at {addr}: {what} still failing after {COMPOUND_RETRIES_MAX} resends")]
    Retries { addr: SocketAddr, what: Nfsstat4 },
}

/// The attributes of one object, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object4 {
    pub fh: Vec<u8>,
    pub ftype: FileType4,
    pub attrs: crate::record::EntryAttrs,
    /// The owner and group names, where the server sent names rather than numbers (see
    /// [`crate::record::EntryRecord::owner`]).
    pub owner: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
    pub mounted_on_fileid: u64,
}

/// A client ID and a session on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session4 {
    pub clientid: u64,
    pub sessionid: SessionId,
    /// Fore-channel slots granted.
    pub slots: u32,
    pub max_request_bytes: u32,
    pub max_response_bytes: u32,
    pub max_operations: u32,
}

/// A blocking NFSv4.1 client on one connection, one call at a time on slot 0.
pub struct Nfs4Client {
    rpc: RpcClient,
    /// The encoded AUTH_SYS credential every call carries.
    pub cred_xdr: Vec<u8>,
    /// Every address of the host, with the NFS port.
    pub addrs: Vec<SocketAddr>,
    pub session: Session4,
    /// The client owner: the same for every session of this process, so a re-created session
    /// finds the same client ID.
    pub owner: Vec<u8>,
    pub verifier: [u8; 8],
    /// The sequence ID of the client ID's next CREATE_SESSION.
    pub create_seq: u32,
    slot_seq: u32,
    pub idmap: IdMap,
    tag: &'static [u8],
}

/// The client owner string for this process: host and pid, so two scans never share state.
pub fn client_owner() -> Vec<u8> {
    let host = AuthSys::current_process().machine_name;
    let mut o = b"nfs-walker/".to_vec();
    o.extend_from_slice(&host);
    o.extend_from_slice(format!("/{}", std::process::id()).as_bytes());
    o
}

fn boot_verifier() -> [u8; 8] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ (std::process::id() as u64) << 32).to_be_bytes()
}

/// Splits an absolute path into its components (empty ones and `.` dropped).
pub fn path_components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

impl Nfs4Client {
    /// Connects to the URL's host (port 2049 unless given) and sets up a client ID and a
    /// session.
    pub fn connect(url: &NfsUrl, opts: &ClientOptions) -> Result<Self, Nfs4ClientError> {
        let mut sys = AuthSys::current_process();
        if let Some(u) = url.uid.or(opts.uid) {
            sys.uid = u;
        }
        if let Some(g) = url.gid.or(opts.gid) {
            sys.gid = g;
            sys.gids = vec![g];
        }
        let cred_xdr = Auth::Sys(sys).to_xdr();
        let addrs = url.resolve(url.nfs_port.unwrap_or(NFS4_PORT))?;
        let addr = addrs[0];
        let rpc = RpcClient::connect(addr, cred_xdr.clone(), opts.source_port, opts.timeout)
            .map_err(|source| Nfs4ClientError::Call { addr, source })?;
        let idmap = match &opts.idmap {
            Some(p) => IdMap::load(p)?,
            None => IdMap::default(),
        };
        let mut c = Nfs4Client {
            rpc,
            cred_xdr,
            addrs,
            session: Session4 {
                clientid: 0,
                sessionid: SessionId::default(),
                slots: 0,
                max_request_bytes: 0,
                max_response_bytes: 0,
                max_operations: 0,
            },
            owner: client_owner(),
            verifier: boot_verifier(),
            create_seq: 0,
            slot_seq: 0,
            idmap,
            tag: b"nfs-walker",
        };
        c.establish()?;
        // Nothing to reclaim: we hold no state. Servers wait for this before leaving grace for
        // this client.
        match c.compound(&[ArgOp::ReclaimComplete { one_fs: false }]) {
            Ok(_) => {}
            Err(Nfs4ClientError::Reply {
                source:
                    Nfs4ReplyError::Status {
                        status: Nfsstat4::CompleteAlready,
                        ..
                    },
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        Ok(c)
    }

    pub fn addr(&self) -> SocketAddr {
        self.rpc.addr()
    }

    fn reply_err(&self, source: impl Into<Nfs4ReplyError>) -> Nfs4ClientError {
        Nfs4ClientError::Reply {
            addr: self.rpc.addr(),
            source: source.into(),
        }
    }

    /// Sends a COMPOUND without SEQUENCE (session set-up) and returns its result bytes.
    fn raw(&mut self, ops: &[ArgOp<'_>]) -> Result<Vec<u8>, Nfs4ClientError> {
        let addr = self.rpc.addr();
        let tag = self.tag;
        let body = self
            .rpc
            .call(NFS_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, &|w| {
                w.string(tag).u32(MINOR_VERSION_1).u32(ops.len() as u32);
                for op in ops {
                    op.encode(w);
                }
            })
            .map_err(|source| Nfs4ClientError::Call { addr, source })?;
        Ok(body.to_vec())
    }

    /// [`Nfs4Client::raw`], resent while the server answers DELAY or GRACE (session set-up has
    /// no SEQUENCE, so it is retried here rather than in [`Nfs4Client::compound`]).
    fn raw_patient(&mut self, ops: &[ArgOp<'_>]) -> Result<Vec<u8>, Nfs4ClientError> {
        let mut backoff = DELAY_BACKOFF_FIRST;
        for _ in 0..COMPOUND_RETRIES_MAX {
            let bytes = self.raw(ops)?;
            let status = CompoundReply::decode(&bytes)
                .map_err(|e| self.reply_err(e))?
                .status;
            if !status.is_transient() {
                return Ok(bytes);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(DELAY_BACKOFF_MAX);
        }
        Err(Nfs4ClientError::Retries {
            addr: self.rpc.addr(),
            what: Nfsstat4::Delay,
        })
    }

    /// EXCHANGE_ID and CREATE_SESSION, taking every slot granted.
    fn establish(&mut self) -> Result<(), Nfs4ClientError> {
        let owner = self.owner.clone();
        let bytes = self.raw_patient(&[ArgOp::ExchangeId(ExchangeIdArgs {
            verifier: self.verifier,
            ownerid: &owner,
            flags: EXCHGID4_FLAG_USE_NON_PNFS,
            impl_id: Some(ImplId {
                domain: b"nfs-walker",
                name: concat!("nfs-walker ", env!("CARGO_PKG_VERSION")).as_bytes(),
                date: NfsTime4::default(),
            }),
        })])?;
        let mut r = CompoundReply::decode(&bytes).map_err(|e| self.reply_err(e))?;
        let ResOk::ExchangeId(x) = r.expect(op4::EXCHANGE_ID).map_err(|e| self.reply_err(e))?
        else {
            return Err(self.reply_err(XdrError::BadDiscriminant(op4::EXCHANGE_ID)));
        };
        self.session.clientid = x.clientid;
        self.create_seq = x.sequenceid;
        let fore = ChannelAttrs {
            headerpadsize: 0,
            maxrequestsize: SESSION_MESSAGE_BYTES,
            maxresponsesize: SESSION_MESSAGE_BYTES,
            maxresponsesize_cached: 4096,
            maxoperations: 16,
            maxrequests: SESSION_SLOTS_WANTED,
            rdma_ird: None,
        };
        let back = ChannelAttrs {
            maxrequests: 1,
            maxoperations: 2,
            maxrequestsize: 4096,
            maxresponsesize: 4096,
            ..Default::default()
        };
        let bytes = self.raw_patient(&[ArgOp::CreateSession(CreateSessionArgs {
            clientid: x.clientid,
            sequence: self.create_seq,
            flags: 0,
            fore,
            back,
            cb_program: 0x4000_0000,
        })])?;
        let mut r = CompoundReply::decode(&bytes).map_err(|e| self.reply_err(e))?;
        let ResOk::CreateSession(s) = r
            .expect(op4::CREATE_SESSION)
            .map_err(|e| self.reply_err(e))?
        else {
            return Err(self.reply_err(XdrError::BadDiscriminant(op4::CREATE_SESSION)));
        };
        self.create_seq = self.create_seq.wrapping_add(1);
        self.session = Session4 {
            clientid: x.clientid,
            sessionid: s.sessionid,
            slots: s.fore.maxrequests.max(1),
            max_request_bytes: s.fore.maxrequestsize,
            max_response_bytes: s.fore.maxresponsesize,
            max_operations: s.fore.maxoperations,
        };
        self.slot_seq = 0;
        Ok(())
    }

    /// Sends SEQUENCE plus `ops` and returns the result bytes, positioned so that
    /// [`results`] skips the SEQUENCE result. DELAY/GRACE, lost sessions and slot errors are
    /// handled here; any other failure is the caller's (in the bytes, or as an error when the
    /// SEQUENCE itself failed).
    pub fn compound(&mut self, ops: &[ArgOp<'_>]) -> Result<Vec<u8>, Nfs4ClientError> {
        let mut backoff = DELAY_BACKOFF_FIRST;
        let mut all = Vec::with_capacity(ops.len() + 1);
        for _ in 0..COMPOUND_RETRIES_MAX {
            all.clear();
            all.push(ArgOp::Sequence(SequenceArgs {
                sessionid: self.session.sessionid,
                sequenceid: self.slot_seq.wrapping_add(1),
                slotid: 0,
                highest_slotid: 0,
                cachethis: false,
            }));
            all.extend_from_slice(ops);
            let bytes = self.raw(&all)?;
            let mut r = CompoundReply::decode(&bytes).map_err(|e| self.reply_err(e))?;
            let first = r
                .next_op()
                .map_err(|e| self.reply_err(e))?
                .ok_or_else(|| self.reply_err(Nfs4ReplyError::Missing(op4::SEQUENCE)))?;
            let status = match first.result {
                Ok(ResOk::Sequence(_)) if first.op == op4::SEQUENCE => {
                    // The slot is used: the next call takes the next sequence ID.
                    self.slot_seq = self.slot_seq.wrapping_add(1);
                    if !r.status.is_transient() {
                        return Ok(bytes);
                    }
                    r.status
                }
                Ok(_) => {
                    return Err(self.reply_err(Nfs4ReplyError::WrongOp {
                        expected: op4::SEQUENCE,
                        got: first.op,
                    }))
                }
                Err(status) => status,
            };
            match status.recovery() {
                Recovery::RetryLater => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(DELAY_BACKOFF_MAX);
                }
                Recovery::NewSession => self.establish()?,
                Recovery::ResetSlot => match status {
                    // The server has this sequence ID: the next one is new to it.
                    Nfsstat4::RetryUncachedRep | Nfsstat4::SeqFalseRetry => {
                        self.slot_seq = self.slot_seq.wrapping_add(1)
                    }
                    // Our count is off in a way we cannot tell: a new session starts at 1.
                    _ => self.establish()?,
                },
                Recovery::Fail => {
                    return Err(self.reply_err(Nfs4ReplyError::Status {
                        op: op4::SEQUENCE,
                        status,
                    }))
                }
            }
        }
        Err(Nfs4ClientError::Retries {
            addr: self.rpc.addr(),
            what: Nfsstat4::Delay,
        })
    }

    /// Resolves an absolute path through the pseudo file system: its handle and attributes.
    pub fn lookup_path(&mut self, path: &[u8]) -> Result<Object4, Nfs4ClientError> {
        let shown = String::from_utf8_lossy(path).into_owned();
        let components: Vec<&[u8]> = path_components(path).collect();
        let mut fh: Option<Vec<u8>> = None;
        let mut chunks: Vec<&[&[u8]]> = components.chunks(LOOKUPS_PER_COMPOUND).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut ops = Vec::with_capacity(chunk.len() + 3);
            let current = fh.take();
            match &current {
                None => ops.push(ArgOp::PutRootFh),
                Some(h) => ops.push(ArgOp::PutFh(h)),
            }
            ops.extend(chunk.iter().map(|c| ArgOp::Lookup(c)));
            ops.push(ArgOp::GetFh);
            if i + 1 == n {
                ops.push(ArgOp::Getattr(AttrMask::RECORD));
            }
            let bytes = self.compound(&ops)?;
            let mut r = results(&bytes).map_err(|e| self.reply_err(e))?;
            for op in &ops {
                let res = r.expect(op.opnum()).map_err(|e| match e {
                    Nfs4ReplyError::Status { status, .. } => Nfs4ClientError::Path {
                        path: shown.clone(),
                        status,
                    },
                    other => self.reply_err(other),
                })?;
                match res {
                    ResOk::GetFh(h) => fh = Some(h.to_vec()),
                    ResOk::Getattr(a) => {
                        if a.is_referral() {
                            return Err(Nfs4ClientError::Referral {
                                path: shown,
                                locations: a.fs_locations.describe(),
                            });
                        }
                        let fh = fh.clone().unwrap_or_default();
                        return Ok(self.object(fh, &a));
                    }
                    _ => {}
                }
            }
        }
        Err(self.reply_err(Nfs4ReplyError::Missing(op4::GETATTR)))
    }

    /// The owned form of attributes, owners resolved through the id map.
    pub fn object(&self, fh: Vec<u8>, a: &Fattr4<'_>) -> Object4 {
        let (uid, owner) = self.idmap.resolve(a.owner);
        let (gid, group) = self.idmap.resolve(a.owner_group);
        Object4 {
            fh,
            ftype: a.ftype,
            attrs: a.to_entry_attrs(uid, gid),
            owner: owner.map(<[u8]>::to_vec),
            group: group.map(<[u8]>::to_vec),
            mounted_on_fileid: a.mounted_on_fileid,
        }
    }

    /// One listing page of directory `fh`: the result bytes; read them with
    /// [`read_listing`].
    pub fn readdir(
        &mut self,
        fh: &[u8],
        cookie: u64,
        cookieverf: [u8; 8],
        maxcount: u32,
    ) -> Result<Vec<u8>, Nfs4ClientError> {
        let maxcount = maxcount.min(
            self.session
                .max_response_bytes
                .saturating_sub(512)
                .max(4096),
        );
        self.compound(&[
            ArgOp::PutFh(fh),
            ArgOp::Readdir(ReaddirArgs4 {
                cookie,
                cookieverf,
                dircount: maxcount,
                maxcount,
                attr_request: AttrMask::RECORD,
            }),
        ])
    }

    /// The target of symlink `fh`.
    pub fn readlink(&mut self, fh: &[u8]) -> Result<Vec<u8>, Nfs4ClientError> {
        let bytes = self.compound(&[ArgOp::PutFh(fh), ArgOp::Readlink])?;
        let mut r = results(&bytes).map_err(|e| self.reply_err(e))?;
        r.expect(op4::PUTFH).map_err(|e| self.reply_err(e))?;
        match r.expect(op4::READLINK).map_err(|e| self.reply_err(e))? {
            ResOk::Readlink(t) => Ok(t.to_vec()),
            _ => Err(self.reply_err(Nfs4ReplyError::Missing(op4::READLINK))),
        }
    }

    /// DESTROY_SESSION, then DESTROY_CLIENTID: the server frees our state now instead of at
    /// lease expiry. Best effort.
    /// Destroys session `old` (one whose slots other clients of this process used, so their
    /// sequence IDs are unknown here) and sets up a fresh one, every slot at its start.
    pub fn replace_session(&mut self, old: SessionId) -> Result<(), Nfs4ClientError> {
        let _ = self.raw(&[ArgOp::DestroySession(old)]);
        self.establish()
    }

    pub fn close(mut self) {
        let id = self.session.sessionid;
        let _ = self.raw(&[ArgOp::DestroySession(id)]);
        let clientid = self.session.clientid;
        let _ = self.raw(&[ArgOp::DestroyClientid(clientid)]);
    }
}

/// The results of a COMPOUND sent by [`Nfs4Client::compound`], after its SEQUENCE result.
pub fn results(bytes: &[u8]) -> Result<CompoundReply<'_>, Nfs4ReplyError> {
    let mut r = CompoundReply::decode(bytes)?;
    r.expect(op4::SEQUENCE)?;
    Ok(r)
}
