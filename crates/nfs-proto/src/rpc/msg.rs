//! ONC-RPC v2 messages (RFC 5531): call headers with AUTH_NONE / AUTH_SYS credentials, and
//! replies with every accept and reject status mapped to a typed error.

use crate::xdr::{XdrDecode, XdrEncode, XdrError, XdrReader, XdrResult, XdrWriter};
use thiserror::Error;

pub const RPC_VERSION: u32 = 2;
const MSG_CALL: u32 = 0;
const MSG_REPLY: u32 = 1;

pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;

/// RFC 5531: opaque_auth bodies are at most 400 bytes.
pub const AUTH_BODY_BYTES_MAX: u32 = 400;
/// RFC 5531 appendix A: at most 16 supplementary gids, machine name at most 255 bytes.
pub const AUTH_SYS_GIDS_MAX: u32 = 16;
pub const AUTH_SYS_MACHINE_NAME_BYTES_MAX: u32 = 255;

/// AUTH_SYS credential body (RFC 5531 appendix A, `authsys_parms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSys {
    pub stamp: u32,
    pub machine_name: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl AuthSys {
    /// Credentials of the calling process, named after this host.
    pub fn current_process() -> Self {
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        AuthSys::new(uid, gid)
    }

    pub fn new(uid: u32, gid: u32) -> Self {
        let mut name = [0u8; 256];
        let rc = unsafe { libc::gethostname(name.as_mut_ptr() as *mut libc::c_char, name.len()) };
        let mut machine_name = if rc == 0 {
            let n = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            name[..n].to_vec()
        } else {
            b"nfs-walker".to_vec()
        };
        machine_name.truncate(AUTH_SYS_MACHINE_NAME_BYTES_MAX as usize);
        AuthSys {
            stamp: 0,
            machine_name,
            uid,
            gid,
            gids: vec![gid],
        }
    }
}

impl XdrEncode for AuthSys {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.stamp)
            .string(&self.machine_name)
            .u32(self.uid)
            .u32(self.gid);
        let gids = &self.gids[..self.gids.len().min(AUTH_SYS_GIDS_MAX as usize)];
        w.u32(gids.len() as u32);
        for g in gids {
            w.u32(*g);
        }
    }
}

impl<'a> XdrDecode<'a> for AuthSys {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        let stamp = r.u32()?;
        let machine_name = r.string(AUTH_SYS_MACHINE_NAME_BYTES_MAX)?.to_vec();
        let uid = r.u32()?;
        let gid = r.u32()?;
        let n = r.array_len(AUTH_SYS_GIDS_MAX, 4)?;
        let mut gids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            gids.push(r.u32()?);
        }
        Ok(AuthSys {
            stamp,
            machine_name,
            uid,
            gid,
            gids,
        })
    }
}

/// The credential a client sends. Encoded once and copied into every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Sys(AuthSys),
}

impl XdrEncode for Auth {
    /// The `opaque_auth` form: flavor, then the body as an opaque.
    fn encode(&self, w: &mut XdrWriter<'_>) {
        match self {
            Auth::None => {
                w.u32(AUTH_NONE).opaque(&[]);
            }
            Auth::Sys(sys) => {
                w.u32(AUTH_SYS).opaque(&sys.to_xdr());
            }
        }
    }
}

/// The fixed part of a CALL message (RFC 5531 `call_body`), with the credential pre-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHeader {
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
}

/// Encodes the CALL header for `xid` (without record marking). `cred_xdr` is an
/// [`Auth`] already encoded with [`XdrEncode::to_xdr`]; the verifier is AUTH_NONE.
#[inline]
pub fn encode_call_header(w: &mut XdrWriter<'_>, xid: u32, hdr: &CallHeader, cred_xdr: &[u8]) {
    w.u32(xid)
        .u32(MSG_CALL)
        .u32(RPC_VERSION)
        .u32(hdr.prog)
        .u32(hdr.vers)
        .u32(hdr.proc_);
    w.buffer().extend_from_slice(cred_xdr);
    w.u32(AUTH_NONE).u32(0);
}

/// A decoded `opaque_auth` that borrows its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpaqueAuth<'a> {
    pub flavor: u32,
    pub body: &'a [u8],
}

impl<'a> XdrDecode<'a> for OpaqueAuth<'a> {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(OpaqueAuth {
            flavor: r.u32()?,
            body: r.opaque(AUTH_BODY_BYTES_MAX)?,
        })
    }
}

/// A CALL as a server sees it: the header and the undecoded procedure arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedCall<'a> {
    pub xid: u32,
    pub rpcvers: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub cred: OpaqueAuth<'a>,
    pub verf: OpaqueAuth<'a>,
    pub args: &'a [u8],
}

impl<'a> ReceivedCall<'a> {
    /// Decodes a CALL message (a whole record body).
    pub fn decode(msg: &'a [u8]) -> Result<Self, RpcError> {
        let mut r = XdrReader::new(msg);
        let xid = r.u32()?;
        let mtype = r.u32()?;
        if mtype != MSG_CALL {
            return Err(RpcError::NotACall(mtype));
        }
        let rpcvers = r.u32()?;
        let prog = r.u32()?;
        let vers = r.u32()?;
        let proc_ = r.u32()?;
        let cred = OpaqueAuth::decode(&mut r)?;
        let verf = OpaqueAuth::decode(&mut r)?;
        Ok(ReceivedCall {
            xid,
            rpcvers,
            prog,
            vers,
            proc_,
            cred,
            verf,
            args: r.rest(),
        })
    }
}

/// `accept_stat` values other than SUCCESS, as a server sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStat {
    Success,
    ProgUnavail,
    ProgMismatch { low: u32, high: u32 },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
}

/// Encodes an accepted REPLY header (AUTH_NONE verifier); for `Success`, the caller appends
/// the procedure's results.
pub fn encode_accepted_reply(w: &mut XdrWriter<'_>, xid: u32, stat: AcceptStat) {
    w.u32(xid).u32(MSG_REPLY).u32(0).u32(AUTH_NONE).u32(0);
    match stat {
        AcceptStat::Success => w.u32(0),
        AcceptStat::ProgUnavail => w.u32(1),
        AcceptStat::ProgMismatch { low, high } => w.u32(2).u32(low).u32(high),
        AcceptStat::ProcUnavail => w.u32(3),
        AcceptStat::GarbageArgs => w.u32(4),
        AcceptStat::SystemErr => w.u32(5),
    };
}

/// Encodes a denied REPLY.
pub fn encode_denied_reply(w: &mut XdrWriter<'_>, xid: u32, why: RejectReason) {
    w.u32(xid).u32(MSG_REPLY).u32(1);
    match why {
        RejectReason::RpcMismatch { low, high } => w.u32(0).u32(low).u32(high),
        RejectReason::Auth(stat) => w.u32(1).u32(stat as u32),
    };
}

/// Why a server rejected a call (`reject_stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    RpcMismatch { low: u32, high: u32 },
    Auth(AuthStat),
}

/// RFC 5531 `auth_stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum AuthStat {
    Ok = 0,
    BadCred = 1,
    RejectedCred = 2,
    BadVerf = 3,
    RejectedVerf = 4,
    TooWeak = 5,
    InvalidResp = 6,
    Failed = 7,
    KerbGeneric = 8,
    TimeExpire = 9,
    TktFile = 10,
    Decode = 11,
    NetAddr = 12,
    RpcsecGssCredProblem = 13,
    RpcsecGssCtxProblem = 14,
}

impl AuthStat {
    pub fn from_u32(v: u32) -> Option<Self> {
        use AuthStat::*;
        Some(match v {
            0 => Ok,
            1 => BadCred,
            2 => RejectedCred,
            3 => BadVerf,
            4 => RejectedVerf,
            5 => TooWeak,
            6 => InvalidResp,
            7 => Failed,
            8 => KerbGeneric,
            9 => TimeExpire,
            10 => TktFile,
            11 => Decode,
            12 => NetAddr,
            13 => RpcsecGssCredProblem,
            14 => RpcsecGssCtxProblem,
            _ => return None,
        })
    }
}

/// Everything that can go wrong at the RPC layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RpcError {
    #[error("malformed RPC message: {0}")]
    Xdr(#[from] XdrError),
    #[error("expected an RPC reply, got message type {0}")]
    NotAReply(u32),
    #[error("expected an RPC call, got message type {0}")]
    NotACall(u32),
    #[error("server does not offer this RPC program")]
    ProgUnavail,
    #[error("server offers versions {low}..={high} of this RPC program only")]
    ProgMismatch { low: u32, high: u32 },
    #[error("server does not implement this procedure")]
    ProcUnavail,
    #[error("server could not decode the call's arguments")]
    GarbageArgs,
    #[error("server reported a system error")]
    SystemErr,
    #[error("server speaks RPC versions {low}..={high} only")]
    RpcMismatch { low: u32, high: u32 },
    #[error("{}", auth_message(*.0))]
    Auth(AuthStat),
    #[error("unknown RPC reply status {0}")]
    UnknownStatus(u32),
}

fn auth_message(stat: AuthStat) -> String {
    match stat {
        AuthStat::TooWeak => {
            "server refused the credentials as too weak (AUTH_TOOWEAK): the export \
             probably requires a privileged source port (<1024); run as root or grant \
             CAP_NET_BIND_SERVICE, or mark the export `insecure`"
                .to_string()
        }
        AuthStat::BadCred | AuthStat::RejectedCred => {
            format!("server rejected the credentials ({stat:?})")
        }
        other => format!("RPC authentication error {other:?}"),
    }
}

/// A REPLY as a client sees it: the XID it answers, and either the procedure's result bytes or
/// why the call failed. A reply too malformed to carry an XID is an outer error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    pub xid: u32,
    pub outcome: Result<&'a [u8], RpcError>,
}

impl<'a> Reply<'a> {
    pub fn decode(msg: &'a [u8]) -> Result<Self, RpcError> {
        let mut r = XdrReader::new(msg);
        let xid = r.u32()?;
        let mtype = r.u32()?;
        if mtype != MSG_REPLY {
            return Err(RpcError::NotAReply(mtype));
        }
        let outcome = Self::decode_body(&mut r);
        Ok(Reply { xid, outcome })
    }

    fn decode_body(r: &mut XdrReader<'a>) -> Result<&'a [u8], RpcError> {
        match r.u32()? {
            0 => {
                let _verf = OpaqueAuth::decode(r)?;
                match r.u32()? {
                    0 => Ok(r.rest()),
                    1 => Err(RpcError::ProgUnavail),
                    2 => Err(RpcError::ProgMismatch {
                        low: r.u32()?,
                        high: r.u32()?,
                    }),
                    3 => Err(RpcError::ProcUnavail),
                    4 => Err(RpcError::GarbageArgs),
                    5 => Err(RpcError::SystemErr),
                    s => Err(RpcError::UnknownStatus(s)),
                }
            }
            1 => match r.u32()? {
                0 => Err(RpcError::RpcMismatch {
                    low: r.u32()?,
                    high: r.u32()?,
                }),
                1 => {
                    let s = r.u32()?;
                    Err(AuthStat::from_u32(s)
                        .map(RpcError::Auth)
                        .unwrap_or(RpcError::UnknownStatus(s)))
                }
                s => Err(RpcError::UnknownStatus(s)),
            },
            s => Err(RpcError::UnknownStatus(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_header_layout_matches_rfc5531() {
        let cred = Auth::Sys(AuthSys {
            stamp: 7,
            machine_name: b"host".to_vec(),
            uid: 1000,
            gid: 100,
            gids: vec![100, 4],
        })
        .to_xdr();
        let mut buf = Vec::new();
        let hdr = CallHeader {
            prog: 100003,
            vers: 3,
            proc_: 1,
        };
        encode_call_header(&mut XdrWriter::new(&mut buf), 0x11223344, &hdr, &cred);
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[0x11, 0x22, 0x33, 0x44][..], // xid
            &[0, 0, 0, 0],                 // CALL
            &[0, 0, 0, 2],                 // rpcvers
            &[0, 1, 0x86, 0xa3],           // prog 100003
            &[0, 0, 0, 3], &[0, 0, 0, 1],  // vers, proc
            &[0, 0, 0, 1],                 // AUTH_SYS
            &[0, 0, 0, 32],                // body length
            &[0, 0, 0, 7],                 // stamp
            &[0, 0, 0, 4], b"host",        // machine name
            &[0, 0, 0x03, 0xe8], &[0, 0, 0, 100], // uid, gid
            &[0, 0, 0, 2], &[0, 0, 0, 100], &[0, 0, 0, 4], // gids
            &[0, 0, 0, 0], &[0, 0, 0, 0],  // verifier AUTH_NONE
        ].concat();
        assert_eq!(buf, expected);
        let call = ReceivedCall::decode(&buf).unwrap();
        assert_eq!(
            (call.xid, call.prog, call.vers, call.proc_),
            (0x11223344, 100003, 3, 1)
        );
        assert_eq!(call.cred.flavor, AUTH_SYS);
        let sys = AuthSys::from_xdr(call.cred.body).unwrap();
        assert_eq!(sys.uid, 1000);
        assert_eq!(sys.gids, vec![100, 4]);
        assert!(call.args.is_empty());
    }

    #[test]
    fn reply_statuses_map_to_typed_errors() {
        let cases: Vec<(AcceptStat, Result<&[u8], RpcError>)> = vec![
            (AcceptStat::Success, Ok(&[0, 0, 0, 9])),
            (AcceptStat::ProgUnavail, Err(RpcError::ProgUnavail)),
            (
                AcceptStat::ProgMismatch { low: 2, high: 3 },
                Err(RpcError::ProgMismatch { low: 2, high: 3 }),
            ),
            (AcceptStat::ProcUnavail, Err(RpcError::ProcUnavail)),
            (AcceptStat::GarbageArgs, Err(RpcError::GarbageArgs)),
            (AcceptStat::SystemErr, Err(RpcError::SystemErr)),
        ];
        for (stat, expected) in cases {
            let mut buf = Vec::new();
            let mut w = XdrWriter::new(&mut buf);
            encode_accepted_reply(&mut w, 42, stat);
            if stat == AcceptStat::Success {
                w.u32(9);
            }
            let reply = Reply::decode(&buf).unwrap();
            assert_eq!(reply.xid, 42);
            assert_eq!(reply.outcome, expected);
        }
        for (why, expected) in [
            (
                RejectReason::RpcMismatch { low: 2, high: 2 },
                RpcError::RpcMismatch { low: 2, high: 2 },
            ),
            (
                RejectReason::Auth(AuthStat::TooWeak),
                RpcError::Auth(AuthStat::TooWeak),
            ),
        ] {
            let mut buf = Vec::new();
            encode_denied_reply(&mut XdrWriter::new(&mut buf), 5, why);
            assert_eq!(Reply::decode(&buf).unwrap().outcome, Err(expected));
        }
        assert!(RpcError::Auth(AuthStat::TooWeak)
            .to_string()
            .contains("privileged source port"));
    }

    #[test]
    fn a_call_is_not_a_reply() {
        let mut buf = Vec::new();
        encode_call_header(
            &mut XdrWriter::new(&mut buf),
            1,
            &CallHeader {
                prog: 1,
                vers: 1,
                proc_: 0,
            },
            &Auth::None.to_xdr(),
        );
        assert_eq!(Reply::decode(&buf), Err(RpcError::NotAReply(0)));
    }
}
