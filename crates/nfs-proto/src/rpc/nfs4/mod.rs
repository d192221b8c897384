//! NFS version 4.1 (RFC 8881; XDR of RFC 7531 / RFC 5662) and the v4.0 client-ID operations
//! (RFC 7530) that common clients still send: one COMPOUND procedure carrying a list of
//! operations. The client encodes argument lists ([`encode_compound_call`]) and reads results op
//! by op ([`CompoundReply`]); a server decodes argument lists ([`CompoundArgs`]) and builds
//! results ([`CompoundReplyEncoder`], [`Readdir4ReplyEncoder`]). Each operation's arguments and
//! result sit together, as in [`super::nfs3`].
//!
//! Only read operations and session/client-ID management exist here: nothing that changes a
//! file system is ever encoded.

pub mod attr;
pub mod status;

pub use attr::{
    fattr4, AttrMask, Fattr4, FileType4, FsLocations, Fsid4, NfsTime4, Owner, NFS4_FHSIZE,
};
pub use status::{Nfsstat4, Recovery};

use crate::rpc::msg::{encode_call_header, CallHeader, AUTH_NONE, AUTH_SYS};
use crate::rpc::nfs3::NFS_PROGRAM;
use crate::rpc::record::{begin_record, end_record};
use crate::xdr::{pad_len, XdrError, XdrReader, XdrResult, XdrWriter};
use std::marker::PhantomData;
use thiserror::Error;

pub const NFS_V4: u32 = 4;
/// NFSv4 procedures: NULL and COMPOUND.
pub const NFSPROC4_NULL: u32 = 0;
pub const NFSPROC4_COMPOUND: u32 = 1;
/// The minor version nfs-walker speaks.
pub const MINOR_VERSION_1: u32 = 1;

/// Operations in one COMPOUND we accept (client: results; server: arguments). nfs-walker sends
/// at most a few; libnfs and Linux send up to about twenty for a path lookup.
pub const COMPOUND_OPS_MAX: u32 = 128;
/// Tags are echoed back; longer ones are hostile.
pub const TAG_BYTES_MAX: u32 = 1024;
/// `NFS4_OPAQUE_LIMIT`: client and server owners, scopes.
pub const OPAQUE_LIMIT: u32 = 1024;
/// Entry names longer than this are rejected in listings (as in v3).
pub const ENTRY_NAME_BYTES_MAX: u32 = 4096;
/// Names accepted in LOOKUP arguments.
pub const ARG_NAME_BYTES_MAX: u32 = 1024;
/// Symbolic link targets accepted.
pub const PATH_BYTES_MAX: u32 = 4096;
/// READ data accepted in one reply.
pub const READ_BYTES_MAX: u32 = 4 << 20;
pub const NFS4_VERIFIER_SIZE: usize = 8;
pub const NFS4_SESSIONID_SIZE: usize = 16;

/// Operation numbers (RFC 8881 section 16.2 and RFC 7530).
pub mod op4 {
    pub const ACCESS: u32 = 3;
    pub const CLOSE: u32 = 4;
    pub const GETATTR: u32 = 9;
    pub const GETFH: u32 = 10;
    pub const LOOKUP: u32 = 15;
    pub const LOOKUPP: u32 = 16;
    pub const PUTFH: u32 = 22;
    pub const PUTPUBFH: u32 = 23;
    pub const PUTROOTFH: u32 = 24;
    pub const READ: u32 = 25;
    pub const READDIR: u32 = 26;
    pub const READLINK: u32 = 27;
    pub const RENEW: u32 = 30;
    pub const RESTOREFH: u32 = 31;
    pub const SAVEFH: u32 = 32;
    pub const SETCLIENTID: u32 = 35;
    pub const SETCLIENTID_CONFIRM: u32 = 36;
    pub const BIND_CONN_TO_SESSION: u32 = 41;
    pub const EXCHANGE_ID: u32 = 42;
    pub const CREATE_SESSION: u32 = 43;
    pub const DESTROY_SESSION: u32 = 44;
    pub const SECINFO_NO_NAME: u32 = 52;
    pub const SEQUENCE: u32 = 53;
    pub const DESTROY_CLIENTID: u32 = 57;
    pub const RECLAIM_COMPLETE: u32 = 58;
    pub const ILLEGAL: u32 = 10044;
}

/// Lower-case operation name for logs and statistics.
pub fn op_name(op: u32) -> &'static str {
    match op {
        op4::ACCESS => "access",
        op4::CLOSE => "close",
        op4::GETATTR => "getattr",
        op4::GETFH => "getfh",
        op4::LOOKUP => "lookup",
        op4::LOOKUPP => "lookupp",
        op4::PUTFH => "putfh",
        op4::PUTPUBFH => "putpubfh",
        op4::PUTROOTFH => "putrootfh",
        op4::READ => "read",
        op4::READDIR => "readdir",
        op4::READLINK => "readlink",
        op4::RENEW => "renew",
        op4::RESTOREFH => "restorefh",
        op4::SAVEFH => "savefh",
        op4::SETCLIENTID => "setclientid",
        op4::SETCLIENTID_CONFIRM => "setclientid_confirm",
        op4::BIND_CONN_TO_SESSION => "bind_conn_to_session",
        op4::EXCHANGE_ID => "exchange_id",
        op4::CREATE_SESSION => "create_session",
        op4::DESTROY_SESSION => "destroy_session",
        op4::SECINFO_NO_NAME => "secinfo_no_name",
        op4::SEQUENCE => "sequence",
        op4::DESTROY_CLIENTID => "destroy_clientid",
        op4::RECLAIM_COMPLETE => "reclaim_complete",
        _ => "unknown",
    }
}

/// EXCHANGE_ID flags (RFC 8881 section 18.35).
pub const EXCHGID4_FLAG_SUPP_MOVED_REFER: u32 = 0x0000_0001;
pub const EXCHGID4_FLAG_USE_NON_PNFS: u32 = 0x0001_0000;
pub const EXCHGID4_FLAG_CONFIRMED_R: u32 = 0x8000_0000;
/// `state_protect_how4`.
pub const SP4_NONE: u32 = 0;
pub const SP4_MACH_CRED: u32 = 1;
/// `channel_dir_from_client4` / `channel_dir_from_server4`.
pub const CDFC4_FORE: u32 = 1;
pub const CDFC4_FORE_OR_BOTH: u32 = 3;
pub const CDFS4_FORE: u32 = 1;
pub const CDFS4_BOTH: u32 = 3;
/// `secinfo_style4`.
pub const SECINFO_STYLE4_CURRENT_FH: u32 = 0;
/// ACCESS4 bits.
pub const ACCESS4_READ: u32 = 0x1;
pub const ACCESS4_LOOKUP: u32 = 0x2;
pub const ACCESS4_EXECUTE: u32 = 0x20;
const RPCSEC_GSS: u32 = 6;

/// Why a COMPOUND result could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Nfs4ReplyError {
    /// An operation failed: which one, and its status.
    #[error("{} failed: {status}", op_name(*.op))]
    Status { op: u32, status: Nfsstat4 },
    /// The reply holds an operation other than the one the call placed there.
    #[error("NFSv4 reply has operation {got} where {expected} was sent")]
    WrongOp { expected: u32, got: u32 },
    /// The reply ended before the operation the caller needs.
    #[error("NFSv4 reply ends before {}", op_name(*.0))]
    Missing(u32),
    #[error("malformed NFSv4 reply: {0}")]
    Xdr(#[from] XdrError),
}

// ---------------------------------------------------------------------------------------------
// Session and client-ID types
// ---------------------------------------------------------------------------------------------

/// `sessionid4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionId(pub [u8; NFS4_SESSIONID_SIZE]);

impl SessionId {
    fn decode(r: &mut XdrReader<'_>) -> XdrResult<Self> {
        let mut id = [0u8; NFS4_SESSIONID_SIZE];
        id.copy_from_slice(r.opaque_fixed(NFS4_SESSIONID_SIZE)?);
        Ok(SessionId(id))
    }
}

fn decode_verifier(r: &mut XdrReader<'_>) -> XdrResult<[u8; NFS4_VERIFIER_SIZE]> {
    let mut v = [0u8; NFS4_VERIFIER_SIZE];
    v.copy_from_slice(r.opaque_fixed(NFS4_VERIFIER_SIZE)?);
    Ok(v)
}

/// `SEQUENCE4args`: the first operation of every v4.1 COMPOUND but the session set-up ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceArgs {
    pub sessionid: SessionId,
    pub sequenceid: u32,
    pub slotid: u32,
    pub highest_slotid: u32,
    pub cachethis: bool,
}

/// `SEQUENCE4resok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceOk {
    pub sessionid: SessionId,
    pub sequenceid: u32,
    pub slotid: u32,
    pub highest_slotid: u32,
    pub target_highest_slotid: u32,
    /// SEQ4_STATUS_* bits (callback path down, state revoked, ...).
    pub status_flags: u32,
}

/// `nfs_impl_id4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImplId<'a> {
    pub domain: &'a [u8],
    pub name: &'a [u8],
    pub date: NfsTime4,
}

impl<'a> ImplId<'a> {
    fn decode_opt(r: &mut XdrReader<'a>) -> XdrResult<Option<Self>> {
        match r.array_len(1, 20)? {
            0 => Ok(None),
            _ => Ok(Some(ImplId {
                domain: r.string(OPAQUE_LIMIT)?,
                name: r.string(OPAQUE_LIMIT)?,
                date: NfsTime4 {
                    seconds: r.i64()?,
                    nseconds: r.u32()?,
                },
            })),
        }
    }

    fn encode_opt(id: Option<&Self>, w: &mut XdrWriter<'_>) {
        match id {
            None => {
                w.u32(0);
            }
            Some(id) => {
                w.u32(1)
                    .string(id.domain)
                    .string(id.name)
                    .i64(id.date.seconds)
                    .u32(id.date.nseconds);
            }
        }
    }
}

/// `EXCHANGE_ID4args` with `SP4_NONE` state protection (the only kind nfs-walker asks for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeIdArgs<'a> {
    pub verifier: [u8; NFS4_VERIFIER_SIZE],
    pub ownerid: &'a [u8],
    pub flags: u32,
    pub impl_id: Option<ImplId<'a>>,
}

/// `EXCHANGE_ID4resok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeIdOk<'a> {
    pub clientid: u64,
    pub sequenceid: u32,
    pub flags: u32,
    /// `state_protect_how4`: SP4_NONE or SP4_MACH_CRED (whose bitmaps are checked, not kept).
    pub state_protect: u32,
    pub server_minor_id: u64,
    pub server_major_id: &'a [u8],
    pub server_scope: &'a [u8],
    pub impl_id: Option<ImplId<'a>>,
}

/// `channel_attrs4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelAttrs {
    pub headerpadsize: u32,
    pub maxrequestsize: u32,
    pub maxresponsesize: u32,
    pub maxresponsesize_cached: u32,
    pub maxoperations: u32,
    /// Slots: how many requests may be in flight on the session at once.
    pub maxrequests: u32,
    pub rdma_ird: Option<u32>,
}

impl ChannelAttrs {
    fn decode(r: &mut XdrReader<'_>) -> XdrResult<Self> {
        let mut a = ChannelAttrs {
            headerpadsize: r.u32()?,
            maxrequestsize: r.u32()?,
            maxresponsesize: r.u32()?,
            maxresponsesize_cached: r.u32()?,
            maxoperations: r.u32()?,
            maxrequests: r.u32()?,
            rdma_ird: None,
        };
        if r.array_len(1, 4)? == 1 {
            a.rdma_ird = Some(r.u32()?);
        }
        Ok(a)
    }

    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.headerpadsize)
            .u32(self.maxrequestsize)
            .u32(self.maxresponsesize)
            .u32(self.maxresponsesize_cached)
            .u32(self.maxoperations)
            .u32(self.maxrequests);
        match self.rdma_ird {
            Some(v) => w.u32(1).u32(v),
            None => w.u32(0),
        };
    }
}

/// `CREATE_SESSION4args`, with AUTH_NONE as the (unused) callback security: nfs-walker asks for
/// no back channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateSessionArgs {
    pub clientid: u64,
    pub sequence: u32,
    pub flags: u32,
    pub fore: ChannelAttrs,
    pub back: ChannelAttrs,
    pub cb_program: u32,
}

/// `CREATE_SESSION4resok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateSessionOk {
    pub sessionid: SessionId,
    pub sequence: u32,
    pub flags: u32,
    pub fore: ChannelAttrs,
    pub back: ChannelAttrs,
}

/// `BIND_CONN_TO_SESSION4args` / `BIND_CONN_TO_SESSION4resok` (the same three fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindConn {
    pub sessionid: SessionId,
    pub dir: u32,
    pub use_rdma: bool,
}

/// `SETCLIENTID4args` (v4.0): the callback fields are carried, never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetClientidArgs<'a> {
    pub verifier: [u8; NFS4_VERIFIER_SIZE],
    pub id: &'a [u8],
    pub cb_program: u32,
    pub cb_netid: &'a [u8],
    pub cb_addr: &'a [u8],
    pub callback_ident: u32,
}

/// `stateid4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stateid {
    pub seqid: u32,
    pub other: [u8; 12],
}

impl Stateid {
    /// The anonymous stateid (all zeros): READ without OPEN, as read-only clients may.
    pub const ANONYMOUS: Stateid = Stateid {
        seqid: 0,
        other: [0; 12],
    };
}

/// `READDIR4args`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaddirArgs4 {
    pub cookie: u64,
    pub cookieverf: [u8; NFS4_VERIFIER_SIZE],
    /// Bytes of names and cookies the server should return (a hint).
    pub dircount: u32,
    /// Largest `READDIR4resok` the server may send.
    pub maxcount: u32,
    pub attr_request: AttrMask,
}

/// `READ4args`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadArgs4 {
    pub stateid: Stateid,
    pub offset: u64,
    pub count: u32,
}

// ---------------------------------------------------------------------------------------------
// Operations: arguments
// ---------------------------------------------------------------------------------------------

/// One operation of a COMPOUND call (`nfs_argop4`), borrowing names and handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgOp<'a> {
    Sequence(SequenceArgs),
    PutRootFh,
    PutFh(&'a [u8]),
    Lookup(&'a [u8]),
    Lookupp,
    GetFh,
    /// The mask holds the requested attributes we know; a server answers the others as
    /// unsupported by leaving them out.
    Getattr(AttrMask),
    Access(u32),
    Readdir(ReaddirArgs4),
    Readlink,
    Read(ReadArgs4),
    SaveFh,
    RestoreFh,
    ExchangeId(ExchangeIdArgs<'a>),
    CreateSession(CreateSessionArgs),
    BindConnToSession(BindConn),
    ReclaimComplete {
        one_fs: bool,
    },
    DestroySession(SessionId),
    DestroyClientid(u64),
    SecinfoNoName(u32),
    SetClientid(SetClientidArgs<'a>),
    SetClientidConfirm {
        clientid: u64,
        verifier: [u8; NFS4_VERIFIER_SIZE],
    },
    Renew(u64),
}

/// Why a server could not read an operation's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgOpError {
    /// The operation is one this codec does not read (modifying, or unused): answer
    /// NFS4ERR_NOTSUPP (or NFS4ERR_OP_ILLEGAL for numbers no RFC defines), and stop.
    Unsupported(u32),
    /// The arguments are malformed: NFS4ERR_BADXDR.
    Xdr(u32, XdrError),
}

impl<'a> ArgOp<'a> {
    pub fn opnum(&self) -> u32 {
        match self {
            ArgOp::Sequence(_) => op4::SEQUENCE,
            ArgOp::PutRootFh => op4::PUTROOTFH,
            ArgOp::PutFh(_) => op4::PUTFH,
            ArgOp::Lookup(_) => op4::LOOKUP,
            ArgOp::Lookupp => op4::LOOKUPP,
            ArgOp::GetFh => op4::GETFH,
            ArgOp::Getattr(_) => op4::GETATTR,
            ArgOp::Access(_) => op4::ACCESS,
            ArgOp::Readdir(_) => op4::READDIR,
            ArgOp::Readlink => op4::READLINK,
            ArgOp::Read(_) => op4::READ,
            ArgOp::SaveFh => op4::SAVEFH,
            ArgOp::RestoreFh => op4::RESTOREFH,
            ArgOp::ExchangeId(_) => op4::EXCHANGE_ID,
            ArgOp::CreateSession(_) => op4::CREATE_SESSION,
            ArgOp::BindConnToSession(_) => op4::BIND_CONN_TO_SESSION,
            ArgOp::ReclaimComplete { .. } => op4::RECLAIM_COMPLETE,
            ArgOp::DestroySession(_) => op4::DESTROY_SESSION,
            ArgOp::DestroyClientid(_) => op4::DESTROY_CLIENTID,
            ArgOp::SecinfoNoName(_) => op4::SECINFO_NO_NAME,
            ArgOp::SetClientid(_) => op4::SETCLIENTID,
            ArgOp::SetClientidConfirm { .. } => op4::SETCLIENTID_CONFIRM,
            ArgOp::Renew(_) => op4::RENEW,
        }
    }

    pub fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.opnum());
        match self {
            ArgOp::Sequence(a) => {
                w.opaque_fixed(&a.sessionid.0)
                    .u32(a.sequenceid)
                    .u32(a.slotid)
                    .u32(a.highest_slotid)
                    .bool(a.cachethis);
            }
            ArgOp::PutRootFh
            | ArgOp::Lookupp
            | ArgOp::GetFh
            | ArgOp::Readlink
            | ArgOp::SaveFh
            | ArgOp::RestoreFh => {}
            ArgOp::PutFh(fh) => {
                w.opaque(fh);
            }
            ArgOp::Lookup(name) => {
                w.string(name);
            }
            ArgOp::Getattr(mask) => mask.encode(w),
            ArgOp::Access(bits) => {
                w.u32(*bits);
            }
            ArgOp::Readdir(a) => {
                w.u64(a.cookie)
                    .opaque_fixed(&a.cookieverf)
                    .u32(a.dircount)
                    .u32(a.maxcount);
                a.attr_request.encode(w);
            }
            ArgOp::Read(a) => {
                w.u32(a.stateid.seqid)
                    .opaque_fixed(&a.stateid.other)
                    .u64(a.offset)
                    .u32(a.count);
            }
            ArgOp::ExchangeId(a) => {
                w.opaque_fixed(&a.verifier)
                    .opaque(a.ownerid)
                    .u32(a.flags)
                    .u32(SP4_NONE);
                ImplId::encode_opt(a.impl_id.as_ref(), w);
            }
            ArgOp::CreateSession(a) => {
                w.u64(a.clientid).u32(a.sequence).u32(a.flags);
                a.fore.encode(w);
                a.back.encode(w);
                // one callback_sec_parms4: AUTH_NONE
                w.u32(a.cb_program).u32(1).u32(AUTH_NONE);
            }
            ArgOp::BindConnToSession(a) => {
                w.opaque_fixed(&a.sessionid.0).u32(a.dir).bool(a.use_rdma);
            }
            ArgOp::ReclaimComplete { one_fs } => {
                w.bool(*one_fs);
            }
            ArgOp::DestroySession(id) => {
                w.opaque_fixed(&id.0);
            }
            ArgOp::DestroyClientid(id) | ArgOp::Renew(id) => {
                w.u64(*id);
            }
            ArgOp::SecinfoNoName(style) => {
                w.u32(*style);
            }
            ArgOp::SetClientid(a) => {
                w.opaque_fixed(&a.verifier)
                    .opaque(a.id)
                    .u32(a.cb_program)
                    .string(a.cb_netid)
                    .string(a.cb_addr)
                    .u32(a.callback_ident);
            }
            ArgOp::SetClientidConfirm { clientid, verifier } => {
                w.u64(*clientid).opaque_fixed(verifier);
            }
        }
    }

    /// Reads one operation (its number, then its arguments).
    pub fn decode(r: &mut XdrReader<'a>) -> Result<Self, ArgOpError> {
        let op = r.u32().map_err(|e| ArgOpError::Xdr(op4::ILLEGAL, e))?;
        Self::decode_args(op, r).map_err(|e| match e {
            DecodeArgs::Unsupported => ArgOpError::Unsupported(op),
            DecodeArgs::Xdr(e) => ArgOpError::Xdr(op, e),
        })
    }

    fn decode_args(op: u32, r: &mut XdrReader<'a>) -> Result<Self, DecodeArgs> {
        Ok(match op {
            op4::SEQUENCE => ArgOp::Sequence(SequenceArgs {
                sessionid: SessionId::decode(r)?,
                sequenceid: r.u32()?,
                slotid: r.u32()?,
                highest_slotid: r.u32()?,
                cachethis: r.bool()?,
            }),
            op4::PUTROOTFH => ArgOp::PutRootFh,
            op4::LOOKUPP => ArgOp::Lookupp,
            op4::GETFH => ArgOp::GetFh,
            op4::READLINK => ArgOp::Readlink,
            op4::SAVEFH => ArgOp::SaveFh,
            op4::RESTOREFH => ArgOp::RestoreFh,
            op4::PUTFH => ArgOp::PutFh(r.opaque(NFS4_FHSIZE as u32)?),
            op4::LOOKUP => ArgOp::Lookup(r.string(ARG_NAME_BYTES_MAX)?),
            op4::GETATTR => ArgOp::Getattr(AttrMask::decode(r)?.0.and(AttrMask::KNOWN)),
            op4::ACCESS => ArgOp::Access(r.u32()?),
            op4::READDIR => ArgOp::Readdir(ReaddirArgs4 {
                cookie: r.u64()?,
                cookieverf: decode_verifier(r)?,
                dircount: r.u32()?,
                maxcount: r.u32()?,
                attr_request: AttrMask::decode(r)?.0.and(AttrMask::KNOWN),
            }),
            op4::READ => {
                let seqid = r.u32()?;
                let mut other = [0u8; 12];
                other.copy_from_slice(r.opaque_fixed(12)?);
                ArgOp::Read(ReadArgs4 {
                    stateid: Stateid { seqid, other },
                    offset: r.u64()?,
                    count: r.u32()?,
                })
            }
            op4::EXCHANGE_ID => {
                let verifier = decode_verifier(r)?;
                let ownerid = r.opaque(OPAQUE_LIMIT)?;
                let flags = r.u32()?;
                match r.u32()? {
                    SP4_NONE => {}
                    SP4_MACH_CRED => {
                        AttrMask::decode(r)?;
                        AttrMask::decode(r)?;
                    }
                    _ => return Err(DecodeArgs::Unsupported),
                }
                ArgOp::ExchangeId(ExchangeIdArgs {
                    verifier,
                    ownerid,
                    flags,
                    impl_id: ImplId::decode_opt(r)?,
                })
            }
            op4::CREATE_SESSION => {
                let a = CreateSessionArgs {
                    clientid: r.u64()?,
                    sequence: r.u32()?,
                    flags: r.u32()?,
                    fore: ChannelAttrs::decode(r)?,
                    back: ChannelAttrs::decode(r)?,
                    cb_program: r.u32()?,
                };
                let parms = r.array_len(16, 4)?;
                for _ in 0..parms {
                    match r.u32()? {
                        AUTH_NONE => {}
                        AUTH_SYS => {
                            r.u32()?;
                            r.string(255)?;
                            r.u32()?;
                            r.u32()?;
                            let gids = r.array_len(16, 4)?;
                            for _ in 0..gids {
                                r.u32()?;
                            }
                        }
                        RPCSEC_GSS => {
                            r.u32()?;
                            r.opaque(OPAQUE_LIMIT)?;
                            r.opaque(OPAQUE_LIMIT)?;
                        }
                        other => return Err(XdrError::BadDiscriminant(other).into()),
                    }
                }
                ArgOp::CreateSession(a)
            }
            op4::BIND_CONN_TO_SESSION => ArgOp::BindConnToSession(BindConn {
                sessionid: SessionId::decode(r)?,
                dir: r.u32()?,
                use_rdma: r.bool()?,
            }),
            op4::RECLAIM_COMPLETE => ArgOp::ReclaimComplete { one_fs: r.bool()? },
            op4::DESTROY_SESSION => ArgOp::DestroySession(SessionId::decode(r)?),
            op4::DESTROY_CLIENTID => ArgOp::DestroyClientid(r.u64()?),
            op4::RENEW => ArgOp::Renew(r.u64()?),
            op4::SECINFO_NO_NAME => ArgOp::SecinfoNoName(r.u32()?),
            op4::SETCLIENTID => ArgOp::SetClientid(SetClientidArgs {
                verifier: decode_verifier(r)?,
                id: r.opaque(OPAQUE_LIMIT)?,
                cb_program: r.u32()?,
                cb_netid: r.string(OPAQUE_LIMIT)?,
                cb_addr: r.string(OPAQUE_LIMIT)?,
                callback_ident: r.u32()?,
            }),
            op4::SETCLIENTID_CONFIRM => ArgOp::SetClientidConfirm {
                clientid: r.u64()?,
                verifier: decode_verifier(r)?,
            },
            _ => return Err(DecodeArgs::Unsupported),
        })
    }
}

enum DecodeArgs {
    Unsupported,
    Xdr(XdrError),
}

impl From<XdrError> for DecodeArgs {
    fn from(e: XdrError) -> Self {
        DecodeArgs::Xdr(e)
    }
}

/// Encodes a whole COMPOUND call record (record mark, RPC header, tag, minor version, ops) at
/// the end of `buf`. `cred_xdr` is an [`crate::rpc::Auth`] encoded once.
pub fn encode_compound_call(
    buf: &mut Vec<u8>,
    xid: u32,
    cred_xdr: &[u8],
    tag: &[u8],
    minorversion: u32,
    ops: &[ArgOp<'_>],
) {
    let start = begin_record(buf);
    let mut w = XdrWriter::new(buf);
    let hdr = CallHeader {
        prog: NFS_PROGRAM,
        vers: NFS_V4,
        proc_: NFSPROC4_COMPOUND,
    };
    encode_call_header(&mut w, xid, &hdr, cred_xdr);
    w.string(tag).u32(minorversion).u32(ops.len() as u32);
    for op in ops {
        op.encode(&mut w);
    }
    end_record(buf, start);
}

/// The arguments of a COMPOUND as a server reads them: header first, then op by op.
#[derive(Debug, Clone)]
pub struct CompoundArgs<'a> {
    pub tag: &'a [u8],
    pub minorversion: u32,
    pub op_count: u32,
    r: XdrReader<'a>,
    read: u32,
}

impl<'a> CompoundArgs<'a> {
    pub fn decode(args: &'a [u8]) -> XdrResult<Self> {
        let mut r = XdrReader::new(args);
        let tag = r.string(TAG_BYTES_MAX)?;
        let minorversion = r.u32()?;
        let op_count = r.array_len(COMPOUND_OPS_MAX, 4)?;
        Ok(CompoundArgs {
            tag,
            minorversion,
            op_count,
            r,
            read: 0,
        })
    }

    /// The next operation, or None after the last. After an error, stop: the position of later
    /// operations is unknown.
    pub fn next_op(&mut self) -> Option<Result<ArgOp<'a>, ArgOpError>> {
        if self.read == self.op_count {
            return None;
        }
        self.read += 1;
        Some(ArgOp::decode(&mut self.r))
    }
}

// ---------------------------------------------------------------------------------------------
// Operations: results
// ---------------------------------------------------------------------------------------------

/// The success payload of one operation (`nfs_resop4` with NFS4_OK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResOk<'a> {
    /// Operations whose success carries nothing (PUTFH, LOOKUP, RECLAIM_COMPLETE, ...).
    Empty,
    Sequence(SequenceOk),
    GetFh(&'a [u8]),
    Getattr(Fattr4<'a>),
    Access {
        supported: u32,
        access: u32,
    },
    Readdir(Readdir4Ok<'a>),
    Readlink(&'a [u8]),
    Read {
        eof: bool,
        data: &'a [u8],
    },
    ExchangeId(ExchangeIdOk<'a>),
    CreateSession(CreateSessionOk),
    BindConnToSession(BindConn),
    /// `secinfo4` flavors (RPCSEC_GSS details are checked, not kept).
    SecinfoNoName {
        flavors: u32,
    },
    SetClientid {
        clientid: u64,
        verifier: [u8; NFS4_VERIFIER_SIZE],
    },
}

/// One operation's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResOp<'a> {
    pub op: u32,
    pub result: Result<ResOk<'a>, Nfsstat4>,
}

impl<'a> ResOp<'a> {
    /// The success payload of operation `expected`, or why there is none.
    pub fn expect(self, expected: u32) -> Result<ResOk<'a>, Nfs4ReplyError> {
        if self.op != expected {
            return Err(Nfs4ReplyError::WrongOp {
                expected,
                got: self.op,
            });
        }
        self.result.map_err(|status| Nfs4ReplyError::Status {
            op: expected,
            status,
        })
    }

    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        let op = r.u32()?;
        let status = Nfsstat4::from_u32(r.u32()?);
        if status != Nfsstat4::Ok {
            if op == op4::SETCLIENTID && status == Nfsstat4::ClidInuse {
                // clientaddr4: the address already using the client ID
                r.string(OPAQUE_LIMIT)?;
                r.string(OPAQUE_LIMIT)?;
            }
            if !is_known_op(op) {
                return Err(XdrError::BadDiscriminant(op));
            }
            return Ok(ResOp {
                op,
                result: Err(status),
            });
        }
        let ok = match op {
            op4::PUTFH
            | op4::PUTROOTFH
            | op4::PUTPUBFH
            | op4::LOOKUP
            | op4::LOOKUPP
            | op4::SAVEFH
            | op4::RESTOREFH
            | op4::RECLAIM_COMPLETE
            | op4::DESTROY_SESSION
            | op4::DESTROY_CLIENTID
            | op4::RENEW
            | op4::SETCLIENTID_CONFIRM => ResOk::Empty,
            op4::SEQUENCE => ResOk::Sequence(SequenceOk {
                sessionid: SessionId::decode(r)?,
                sequenceid: r.u32()?,
                slotid: r.u32()?,
                highest_slotid: r.u32()?,
                target_highest_slotid: r.u32()?,
                status_flags: r.u32()?,
            }),
            op4::GETFH => ResOk::GetFh(r.opaque(NFS4_FHSIZE as u32)?),
            op4::GETATTR => ResOk::Getattr(Fattr4::decode(r)?),
            op4::ACCESS => ResOk::Access {
                supported: r.u32()?,
                access: r.u32()?,
            },
            op4::READDIR => ResOk::Readdir(Readdir4Ok::decode(r)?),
            op4::READLINK => ResOk::Readlink(r.string(PATH_BYTES_MAX)?),
            op4::READ => ResOk::Read {
                eof: r.bool()?,
                data: r.opaque(READ_BYTES_MAX)?,
            },
            op4::EXCHANGE_ID => {
                let clientid = r.u64()?;
                let sequenceid = r.u32()?;
                let flags = r.u32()?;
                let state_protect = r.u32()?;
                match state_protect {
                    SP4_NONE => {}
                    SP4_MACH_CRED => {
                        AttrMask::decode(r)?;
                        AttrMask::decode(r)?;
                    }
                    // SP4_SSV: we never ask for it, so a server must not grant it.
                    other => return Err(XdrError::BadDiscriminant(other)),
                }
                ResOk::ExchangeId(ExchangeIdOk {
                    clientid,
                    sequenceid,
                    flags,
                    state_protect,
                    server_minor_id: r.u64()?,
                    server_major_id: r.opaque(OPAQUE_LIMIT)?,
                    server_scope: r.opaque(OPAQUE_LIMIT)?,
                    impl_id: ImplId::decode_opt(r)?,
                })
            }
            op4::CREATE_SESSION => ResOk::CreateSession(CreateSessionOk {
                sessionid: SessionId::decode(r)?,
                sequence: r.u32()?,
                flags: r.u32()?,
                fore: ChannelAttrs::decode(r)?,
                back: ChannelAttrs::decode(r)?,
            }),
            op4::BIND_CONN_TO_SESSION => ResOk::BindConnToSession(BindConn {
                sessionid: SessionId::decode(r)?,
                dir: r.u32()?,
                use_rdma: r.bool()?,
            }),
            op4::SECINFO_NO_NAME => {
                let n = r.array_len(64, 4)?;
                for _ in 0..n {
                    if r.u32()? == RPCSEC_GSS {
                        r.opaque(OPAQUE_LIMIT)?;
                        r.u32()?;
                        r.u32()?;
                    }
                }
                ResOk::SecinfoNoName { flavors: n }
            }
            op4::SETCLIENTID => ResOk::SetClientid {
                clientid: r.u64()?,
                verifier: decode_verifier(r)?,
            },
            other => return Err(XdrError::BadDiscriminant(other)),
        };
        Ok(ResOp { op, result: Ok(ok) })
    }
}

fn is_known_op(op: u32) -> bool {
    (3..=58).contains(&op) || op == op4::ILLEGAL
}

/// A COMPOUND result as a client reads it: the overall status and tag, then op by op. The
/// result list ends at the first failed operation (or holds them all).
#[derive(Debug, Clone)]
pub struct CompoundReply<'a> {
    pub status: Nfsstat4,
    pub tag: &'a [u8],
    pub op_count: u32,
    r: XdrReader<'a>,
    read: u32,
}

impl<'a> CompoundReply<'a> {
    pub fn decode(res: &'a [u8]) -> XdrResult<Self> {
        let mut r = XdrReader::new(res);
        let status = Nfsstat4::from_u32(r.u32()?);
        let tag = r.string(TAG_BYTES_MAX)?;
        // each result is at least an op number and a status
        let op_count = r.array_len(COMPOUND_OPS_MAX, 8)?;
        Ok(CompoundReply {
            status,
            tag,
            op_count,
            r,
            read: 0,
        })
    }

    /// The next operation's result; `Ok(None)` after the last, when the reply must also be
    /// fully consumed.
    pub fn next_op(&mut self) -> XdrResult<Option<ResOp<'a>>> {
        if self.read == self.op_count {
            self.r.finish()?;
            return Ok(None);
        }
        self.read += 1;
        ResOp::decode(&mut self.r).map(Some)
    }

    /// The success payload of the next operation, which must be `op`. A failed operation (or
    /// an overall failure before it) is [`Nfs4ReplyError::Status`].
    pub fn expect(&mut self, op: u32) -> Result<ResOk<'a>, Nfs4ReplyError> {
        match self.next_op()? {
            Some(res) => res.expect(op),
            None if self.status != Nfsstat4::Ok => Err(Nfs4ReplyError::Status {
                op,
                status: self.status,
            }),
            None => Err(Nfs4ReplyError::Missing(op)),
        }
    }

    /// Checks that nothing follows the operations read so far.
    pub fn finish(mut self) -> Result<(), Nfs4ReplyError> {
        while self.next_op()?.is_some() {}
        Ok(())
    }
}

/// Builds a COMPOUND result in place: status and tag, then one result per operation. The status
/// is that of the last result, patched by [`CompoundReplyEncoder::finish`].
#[derive(Debug)]
pub struct CompoundReplyEncoder {
    status_at: usize,
    count_at: usize,
    count: u32,
    status: Nfsstat4,
}

impl CompoundReplyEncoder {
    pub fn begin(buf: &mut Vec<u8>, tag: &[u8]) -> Self {
        let status_at = buf.len();
        let mut w = XdrWriter::new(buf);
        w.u32(0).string(tag);
        let count_at = w.len();
        w.u32(0);
        CompoundReplyEncoder {
            status_at,
            count_at,
            count: 0,
            status: Nfsstat4::Ok,
        }
    }

    /// Appends a successful result of `op`.
    pub fn ok(&mut self, buf: &mut Vec<u8>, op: u32, ok: &ResOk<'_>) {
        self.count += 1;
        let mut w = XdrWriter::new(buf);
        w.u32(op).u32(0);
        match ok {
            ResOk::Empty => {}
            ResOk::Sequence(s) => {
                w.opaque_fixed(&s.sessionid.0)
                    .u32(s.sequenceid)
                    .u32(s.slotid)
                    .u32(s.highest_slotid)
                    .u32(s.target_highest_slotid)
                    .u32(s.status_flags);
            }
            ResOk::GetFh(fh) => {
                w.opaque(fh);
            }
            ResOk::Getattr(a) => a.encode(&mut w),
            ResOk::Access { supported, access } => {
                w.u32(*supported).u32(*access);
            }
            ResOk::Readdir(r) => {
                w.opaque_fixed(&r.cookieverf);
                w.buffer().extend_from_slice(r.entries_xdr);
                w.bool(r.eof);
            }
            ResOk::Readlink(t) => {
                w.string(t);
            }
            ResOk::Read { eof, data } => {
                w.bool(*eof).opaque(data);
            }
            ResOk::ExchangeId(e) => {
                w.u64(e.clientid)
                    .u32(e.sequenceid)
                    .u32(e.flags)
                    .u32(SP4_NONE)
                    .u64(e.server_minor_id)
                    .opaque(e.server_major_id)
                    .opaque(e.server_scope);
                ImplId::encode_opt(e.impl_id.as_ref(), &mut w);
            }
            ResOk::CreateSession(c) => {
                w.opaque_fixed(&c.sessionid.0).u32(c.sequence).u32(c.flags);
                c.fore.encode(&mut w);
                c.back.encode(&mut w);
            }
            ResOk::BindConnToSession(b) => {
                w.opaque_fixed(&b.sessionid.0).u32(b.dir).bool(b.use_rdma);
            }
            ResOk::SecinfoNoName { flavors } => {
                // AUTH_SYS (and AUTH_NONE) only: no GSS details to send
                w.u32(*flavors);
                for i in 0..*flavors {
                    w.u32(if i == 0 { AUTH_SYS } else { AUTH_NONE });
                }
            }
            ResOk::SetClientid { clientid, verifier } => {
                w.u64(*clientid).opaque_fixed(verifier);
            }
        }
    }

    /// Appends a failed result of `op`; the caller stops there (RFC 8881 section 15.2).
    pub fn fail(&mut self, buf: &mut Vec<u8>, op: u32, status: Nfsstat4) {
        debug_assert!(status != Nfsstat4::Ok);
        self.count += 1;
        self.status = status;
        XdrWriter::new(buf).u32(op).u32(status.as_u32());
    }

    /// Starts a READDIR result; the caller pushes entries, then ends it with
    /// [`CompoundReplyEncoder::finish_readdir`] or drops it with [`Readdir4ReplyEncoder::abandon`]
    /// (to answer a failure such as NFS4ERR_TOOSMALL instead).
    pub fn readdir(
        &mut self,
        buf: &mut Vec<u8>,
        cookieverf: [u8; NFS4_VERIFIER_SIZE],
        dircount: u32,
        maxcount: u32,
    ) -> Readdir4ReplyEncoder {
        let op_start = buf.len();
        XdrWriter::new(buf).u32(op4::READDIR).u32(0);
        Readdir4ReplyEncoder::begin(buf, op_start, cookieverf, dircount, maxcount)
    }

    /// Ends a READDIR result begun with [`CompoundReplyEncoder::readdir`].
    pub fn finish_readdir(&mut self, buf: &mut Vec<u8>, enc: Readdir4ReplyEncoder, eof: bool) {
        self.count += 1;
        debug_assert!(enc.body_start <= buf.len());
        XdrWriter::new(buf).bool(false).bool(eof);
    }

    /// Fails the whole COMPOUND before any operation ran (MINOR_VERS_MISMATCH): no results.
    pub fn fail_before_ops(&mut self, status: Nfsstat4) {
        debug_assert!(self.count == 0);
        self.status = status;
    }

    /// The status of the last failed result, if any.
    pub fn status(&self) -> Nfsstat4 {
        self.status
    }

    pub fn finish(self, buf: &mut [u8]) {
        buf[self.status_at..self.status_at + 4]
            .copy_from_slice(&self.status.as_u32().to_be_bytes());
        buf[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_be_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// READDIR: the hot path
// ---------------------------------------------------------------------------------------------

/// One `entry4`: its cookie, name (borrowed) and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry4<'a> {
    pub cookie: u64,
    pub name: &'a [u8],
    pub attrs: Fattr4<'a>,
}

impl<'a> Entry4<'a> {
    #[inline]
    fn decode_body(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(Entry4 {
            cookie: r.u64()?,
            name: r.string(ENTRY_NAME_BYTES_MAX)?,
            attrs: Fattr4::decode(r)?,
        })
    }
}

/// A validated `READDIR4resok`: the entries stay in the reply's bytes and are decoded again by
/// [`Readdir4Ok::entries`], which cannot fail and does not allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readdir4Ok<'a> {
    pub cookieverf: [u8; NFS4_VERIFIER_SIZE],
    pub eof: bool,
    pub entry_count: usize,
    entries_xdr: &'a [u8],
    last_cookie: Option<u64>,
}

impl<'a> Readdir4Ok<'a> {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        let cookieverf = decode_verifier(r)?;
        let list = r.rest();
        let list_start = r.position();
        let mut entry_count = 0usize;
        let mut last_cookie = None;
        while r.option_flag()? {
            last_cookie = Some(Entry4::decode_body(r)?.cookie);
            entry_count += 1;
        }
        let list_len = r.position() - list_start;
        let eof = r.bool()?;
        Ok(Readdir4Ok {
            cookieverf,
            eof,
            entry_count,
            entries_xdr: &list[..list_len],
            last_cookie,
        })
    }

    /// The entries, in server order.
    pub fn entries(&self) -> Entry4Iter<'a> {
        Entry4Iter {
            r: XdrReader::new(self.entries_xdr),
            remaining: self.entry_count,
            entry: PhantomData,
        }
    }

    /// Where the next call continues.
    pub fn last_cookie(&self) -> Option<u64> {
        self.last_cookie
    }

    /// The page without its borrow of `from`, the bytes it was decoded from: kept beside a
    /// copy of them, it is attached again without a second validation pass. `None` if the
    /// page's entries do not lie within `from`.
    pub fn detach(&self, from: &[u8]) -> Option<DetachedReaddir4> {
        Some(DetachedReaddir4 {
            cookieverf: self.cookieverf,
            eof: self.eof,
            entry_count: self.entry_count,
            entries: crate::xdr::span_within(from, self.entries_xdr)?,
            last_cookie: self.last_cookie,
        })
    }
}

/// A validated [`Readdir4Ok`] apart from its bytes (see [`Readdir4Ok::detach`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachedReaddir4 {
    cookieverf: [u8; NFS4_VERIFIER_SIZE],
    eof: bool,
    entry_count: usize,
    entries: std::ops::Range<usize>,
    last_cookie: Option<u64>,
}

impl DetachedReaddir4 {
    /// The page over `to`, a copy of the bytes it was detached from; `None` if `to` is too
    /// short. (Over other bytes the entries would not be those validated: iterating them
    /// stays safe, and ends at the first that does not decode.)
    pub fn attach<'a>(&self, to: &'a [u8]) -> Option<Readdir4Ok<'a>> {
        Some(Readdir4Ok {
            cookieverf: self.cookieverf,
            eof: self.eof,
            entry_count: self.entry_count,
            entries_xdr: to.get(self.entries.clone())?,
            last_cookie: self.last_cookie,
        })
    }
}

/// Iterator over the entries of a validated [`Readdir4Ok`].
#[derive(Debug, Clone)]
pub struct Entry4Iter<'a> {
    r: XdrReader<'a>,
    remaining: usize,
    entry: PhantomData<&'a ()>,
}

impl<'a> Iterator for Entry4Iter<'a> {
    type Item = Entry4<'a>;

    #[inline]
    fn next(&mut self) -> Option<Entry4<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // Validated by Readdir4Ok::decode; if it somehow failed, the iteration ends.
        if !self.r.option_flag().ok()? {
            return None;
        }
        Entry4::decode_body(&mut self.r).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Entry4Iter<'_> {}

/// Builds the body of a successful READDIR result in place, stopping before the client's
/// limits: `maxcount` bounds the whole `READDIR4resok` (verifier, entries, trailer),
/// `dircount` the names and cookies (as RFC 8881 section 18.23 describes it; 0 means none).
#[derive(Debug)]
pub struct Readdir4ReplyEncoder {
    op_start: usize,
    body_start: usize,
    dir_bytes: usize,
    dircount: usize,
    maxcount: usize,
    entry_count: usize,
}

impl Readdir4ReplyEncoder {
    /// Bytes `finish` appends: the final `value_follows` and `eof`.
    const TRAILER_BYTES: usize = 8;

    fn begin(
        buf: &mut Vec<u8>,
        op_start: usize,
        cookieverf: [u8; NFS4_VERIFIER_SIZE],
        dircount: u32,
        maxcount: u32,
    ) -> Self {
        let body_start = buf.len();
        XdrWriter::new(buf).opaque_fixed(&cookieverf);
        Readdir4ReplyEncoder {
            op_start,
            body_start,
            dir_bytes: 0,
            dircount: if dircount == 0 {
                usize::MAX
            } else {
                dircount as usize
            },
            maxcount: maxcount as usize,
            entry_count: 0,
        }
    }

    /// Appends one entry; returns false, leaving `buf` as it was, when it would exceed a limit.
    pub fn push(
        &mut self,
        buf: &mut Vec<u8>,
        cookie: u64,
        name: &[u8],
        attrs: &Fattr4<'_>,
    ) -> bool {
        let mark = buf.len();
        let mut w = XdrWriter::new(buf);
        w.bool(true).u64(cookie).string(name);
        attrs.encode(&mut w);
        let dir_bytes = 8 + 4 + name.len() + pad_len(name.len());
        let body_bytes = buf.len() - self.body_start;
        if self.dir_bytes + dir_bytes > self.dircount
            || body_bytes + Self::TRAILER_BYTES > self.maxcount
        {
            buf.truncate(mark);
            return false;
        }
        self.dir_bytes += dir_bytes;
        self.entry_count += 1;
        true
    }

    pub fn entry_count(&self) -> usize {
        self.entry_count
    }

    /// Removes the result begun so far, so a failure can be encoded in its place.
    pub fn abandon(self, buf: &mut Vec<u8>) {
        buf.truncate(self.op_start);
    }
}

#[cfg(test)]
mod tests;
