//! `nfsstat4`: every status of NFSv4.0 (RFC 7530), v4.1 (RFC 8881) and v4.2 (RFC 7862), typed.

use crate::xdr::{XdrDecode, XdrEncode, XdrReader, XdrResult, XdrWriter};
use std::fmt;

macro_rules! nfsstat4 {
    ($( $variant:ident = $code:literal, $name:literal; )*) => {
        /// `nfsstat4`: every status the NFSv4 RFCs define, and `Other` for codes they do not.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Nfsstat4 {
            $( $variant, )*
            /// A code no NFSv4 RFC defines (never one that one does).
            Other(u32),
        }

        impl Nfsstat4 {
            /// Every defined status, in code order.
            pub const ALL: &'static [Nfsstat4] = &[$( Nfsstat4::$variant, )*];

            pub fn from_u32(v: u32) -> Self {
                match v {
                    $( $code => Nfsstat4::$variant, )*
                    other => Nfsstat4::Other(other),
                }
            }

            pub fn as_u32(self) -> u32 {
                match self {
                    $( Nfsstat4::$variant => $code, )*
                    Nfsstat4::Other(v) => v,
                }
            }

            /// The RFC's name, e.g. "NFS4ERR_DELAY".
            pub fn name(self) -> &'static str {
                match self {
                    $( Nfsstat4::$variant => $name, )*
                    Nfsstat4::Other(_) => "NFS4ERR_UNKNOWN",
                }
            }
        }
    };
}

nfsstat4! {
    Ok = 0, "NFS4_OK";
    Perm = 1, "NFS4ERR_PERM";
    Noent = 2, "NFS4ERR_NOENT";
    Io = 5, "NFS4ERR_IO";
    Nxio = 6, "NFS4ERR_NXIO";
    Access = 13, "NFS4ERR_ACCESS";
    Exist = 17, "NFS4ERR_EXIST";
    Xdev = 18, "NFS4ERR_XDEV";
    Notdir = 20, "NFS4ERR_NOTDIR";
    Isdir = 21, "NFS4ERR_ISDIR";
    Inval = 22, "NFS4ERR_INVAL";
    Fbig = 27, "NFS4ERR_FBIG";
    Nospc = 28, "NFS4ERR_NOSPC";
    Rofs = 30, "NFS4ERR_ROFS";
    Mlink = 31, "NFS4ERR_MLINK";
    Nametoolong = 63, "NFS4ERR_NAMETOOLONG";
    Notempty = 66, "NFS4ERR_NOTEMPTY";
    Dquot = 69, "NFS4ERR_DQUOT";
    Stale = 70, "NFS4ERR_STALE";
    Badhandle = 10001, "NFS4ERR_BADHANDLE";
    BadCookie = 10003, "NFS4ERR_BAD_COOKIE";
    Notsupp = 10004, "NFS4ERR_NOTSUPP";
    Toosmall = 10005, "NFS4ERR_TOOSMALL";
    Serverfault = 10006, "NFS4ERR_SERVERFAULT";
    Badtype = 10007, "NFS4ERR_BADTYPE";
    Delay = 10008, "NFS4ERR_DELAY";
    Same = 10009, "NFS4ERR_SAME";
    Denied = 10010, "NFS4ERR_DENIED";
    Expired = 10011, "NFS4ERR_EXPIRED";
    Locked = 10012, "NFS4ERR_LOCKED";
    Grace = 10013, "NFS4ERR_GRACE";
    Fhexpired = 10014, "NFS4ERR_FHEXPIRED";
    ShareDenied = 10015, "NFS4ERR_SHARE_DENIED";
    Wrongsec = 10016, "NFS4ERR_WRONGSEC";
    ClidInuse = 10017, "NFS4ERR_CLID_INUSE";
    Resource = 10018, "NFS4ERR_RESOURCE";
    Moved = 10019, "NFS4ERR_MOVED";
    Nofilehandle = 10020, "NFS4ERR_NOFILEHANDLE";
    MinorVersMismatch = 10021, "NFS4ERR_MINOR_VERS_MISMATCH";
    StaleClientid = 10022, "NFS4ERR_STALE_CLIENTID";
    StaleStateid = 10023, "NFS4ERR_STALE_STATEID";
    OldStateid = 10024, "NFS4ERR_OLD_STATEID";
    BadStateid = 10025, "NFS4ERR_BAD_STATEID";
    BadSeqid = 10026, "NFS4ERR_BAD_SEQID";
    NotSame = 10027, "NFS4ERR_NOT_SAME";
    LockRange = 10028, "NFS4ERR_LOCK_RANGE";
    Symlink = 10029, "NFS4ERR_SYMLINK";
    Restorefh = 10030, "NFS4ERR_RESTOREFH";
    LeaseMoved = 10031, "NFS4ERR_LEASE_MOVED";
    Attrnotsupp = 10032, "NFS4ERR_ATTRNOTSUPP";
    NoGrace = 10033, "NFS4ERR_NO_GRACE";
    ReclaimBad = 10034, "NFS4ERR_RECLAIM_BAD";
    ReclaimConflict = 10035, "NFS4ERR_RECLAIM_CONFLICT";
    Badxdr = 10036, "NFS4ERR_BADXDR";
    LocksHeld = 10037, "NFS4ERR_LOCKS_HELD";
    Openmode = 10038, "NFS4ERR_OPENMODE";
    Badowner = 10039, "NFS4ERR_BADOWNER";
    Badchar = 10040, "NFS4ERR_BADCHAR";
    Badname = 10041, "NFS4ERR_BADNAME";
    BadRange = 10042, "NFS4ERR_BAD_RANGE";
    LockNotsupp = 10043, "NFS4ERR_LOCK_NOTSUPP";
    OpIllegal = 10044, "NFS4ERR_OP_ILLEGAL";
    Deadlock = 10045, "NFS4ERR_DEADLOCK";
    FileOpen = 10046, "NFS4ERR_FILE_OPEN";
    AdminRevoked = 10047, "NFS4ERR_ADMIN_REVOKED";
    CbPathDown = 10048, "NFS4ERR_CB_PATH_DOWN";
    Badiomode = 10049, "NFS4ERR_BADIOMODE";
    Badlayout = 10050, "NFS4ERR_BADLAYOUT";
    BadSessionDigest = 10051, "NFS4ERR_BAD_SESSION_DIGEST";
    Badsession = 10052, "NFS4ERR_BADSESSION";
    Badslot = 10053, "NFS4ERR_BADSLOT";
    CompleteAlready = 10054, "NFS4ERR_COMPLETE_ALREADY";
    ConnNotBoundToSession = 10055, "NFS4ERR_CONN_NOT_BOUND_TO_SESSION";
    DelegAlreadyWanted = 10056, "NFS4ERR_DELEG_ALREADY_WANTED";
    BackChanBusy = 10057, "NFS4ERR_BACK_CHAN_BUSY";
    Layouttrylater = 10058, "NFS4ERR_LAYOUTTRYLATER";
    Layoutunavailable = 10059, "NFS4ERR_LAYOUTUNAVAILABLE";
    NomatchingLayout = 10060, "NFS4ERR_NOMATCHING_LAYOUT";
    Recallconflict = 10061, "NFS4ERR_RECALLCONFLICT";
    UnknownLayouttype = 10062, "NFS4ERR_UNKNOWN_LAYOUTTYPE";
    SeqMisordered = 10063, "NFS4ERR_SEQ_MISORDERED";
    SequencePos = 10064, "NFS4ERR_SEQUENCE_POS";
    ReqTooBig = 10065, "NFS4ERR_REQ_TOO_BIG";
    RepTooBig = 10066, "NFS4ERR_REP_TOO_BIG";
    RepTooBigToCache = 10067, "NFS4ERR_REP_TOO_BIG_TO_CACHE";
    RetryUncachedRep = 10068, "NFS4ERR_RETRY_UNCACHED_REP";
    UnsafeCompound = 10069, "NFS4ERR_UNSAFE_COMPOUND";
    TooManyOps = 10070, "NFS4ERR_TOO_MANY_OPS";
    OpNotInSession = 10071, "NFS4ERR_OP_NOT_IN_SESSION";
    HashAlgUnsupp = 10072, "NFS4ERR_HASH_ALG_UNSUPP";
    ClientidBusy = 10074, "NFS4ERR_CLIENTID_BUSY";
    PnfsIoHole = 10075, "NFS4ERR_PNFS_IO_HOLE";
    SeqFalseRetry = 10076, "NFS4ERR_SEQ_FALSE_RETRY";
    BadHighSlot = 10077, "NFS4ERR_BAD_HIGH_SLOT";
    Deadsession = 10078, "NFS4ERR_DEADSESSION";
    EncrAlgUnsupp = 10079, "NFS4ERR_ENCR_ALG_UNSUPP";
    PnfsNoLayout = 10080, "NFS4ERR_PNFS_NO_LAYOUT";
    NotOnlyOp = 10081, "NFS4ERR_NOT_ONLY_OP";
    WrongCred = 10082, "NFS4ERR_WRONG_CRED";
    WrongType = 10083, "NFS4ERR_WRONG_TYPE";
    DirdelegUnavail = 10084, "NFS4ERR_DIRDELEG_UNAVAIL";
    RejectDeleg = 10085, "NFS4ERR_REJECT_DELEG";
    Returnconflict = 10086, "NFS4ERR_RETURNCONFLICT";
    DelegRevoked = 10087, "NFS4ERR_DELEG_REVOKED";
    PartnerNotsupp = 10088, "NFS4ERR_PARTNER_NOTSUPP";
    PartnerNoAuth = 10089, "NFS4ERR_PARTNER_NO_AUTH";
    UnionNotsupp = 10090, "NFS4ERR_UNION_NOTSUPP";
    OffloadDenied = 10091, "NFS4ERR_OFFLOAD_DENIED";
    WrongLfs = 10092, "NFS4ERR_WRONG_LFS";
    Badlabel = 10093, "NFS4ERR_BADLABEL";
    OffloadNoReqs = 10094, "NFS4ERR_OFFLOAD_NO_REQS";
}

/// What a client should do about a failed COMPOUND, by status: the walk's error policy in one
/// place, so every protocol user reads the same table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The server is busy (DELAY) or in its grace period (GRACE): resend the same call later.
    RetryLater,
    /// The session or client ID is gone (BADSESSION, DEADSESSION, STALE_CLIENTID, EXPIRED):
    /// establish a new session, then resend.
    NewSession,
    /// The slot's sequence state is out of step (SEQ_MISORDERED, BADSLOT, BAD_HIGH_SLOT,
    /// SEQ_FALSE_RETRY, RETRY_UNCACHED_REP): resend on a fresh slot state.
    ResetSlot,
    /// The failure is about this object (NOENT, ACCESS, STALE, ...): report it for the path.
    Fail,
}

impl Nfsstat4 {
    /// Whether retrying the same call later may succeed (DELAY, GRACE).
    pub fn is_transient(self) -> bool {
        matches!(self, Nfsstat4::Delay | Nfsstat4::Grace)
    }

    pub fn recovery(self) -> Recovery {
        match self {
            Nfsstat4::Delay | Nfsstat4::Grace => Recovery::RetryLater,
            Nfsstat4::Badsession
            | Nfsstat4::Deadsession
            | Nfsstat4::StaleClientid
            | Nfsstat4::Expired
            | Nfsstat4::ConnNotBoundToSession => Recovery::NewSession,
            Nfsstat4::SeqMisordered
            | Nfsstat4::Badslot
            | Nfsstat4::BadHighSlot
            | Nfsstat4::SeqFalseRetry
            | Nfsstat4::RetryUncachedRep => Recovery::ResetSlot,
            _ => Recovery::Fail,
        }
    }

    /// The closest `errno`, for messages in the words of `strerror`.
    pub fn errno(self) -> Option<i32> {
        Some(match self {
            Nfsstat4::Perm => libc::EPERM,
            Nfsstat4::Noent => libc::ENOENT,
            Nfsstat4::Io => libc::EIO,
            Nfsstat4::Nxio => libc::ENXIO,
            Nfsstat4::Access => libc::EACCES,
            Nfsstat4::Exist => libc::EEXIST,
            Nfsstat4::Xdev => libc::EXDEV,
            Nfsstat4::Notdir => libc::ENOTDIR,
            Nfsstat4::Isdir => libc::EISDIR,
            Nfsstat4::Inval => libc::EINVAL,
            Nfsstat4::Fbig => libc::EFBIG,
            Nfsstat4::Nospc => libc::ENOSPC,
            Nfsstat4::Rofs => libc::EROFS,
            Nfsstat4::Mlink => libc::EMLINK,
            Nfsstat4::Nametoolong => libc::ENAMETOOLONG,
            Nfsstat4::Notempty => libc::ENOTEMPTY,
            Nfsstat4::Dquot => libc::EDQUOT,
            Nfsstat4::Stale => libc::ESTALE,
            _ => return None,
        })
    }
}

impl fmt::Display for Nfsstat4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nfsstat4::Other(v) => write!(f, "NFS4ERR_UNKNOWN({v})"),
            s => {
                f.write_str(s.name())?;
                if let Some(errno) = s.errno() {
                    write!(f, ": {}", std::io::Error::from_raw_os_error(errno))?;
                }
                Ok(())
            }
        }
    }
}

impl XdrEncode for Nfsstat4 {
    #[inline]
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.as_u32());
    }
}

impl<'a> XdrDecode<'a> for Nfsstat4 {
    #[inline]
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(Nfsstat4::from_u32(r.u32()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &s in Nfsstat4::ALL {
            assert!(seen.insert(s.as_u32()), "{s:?} repeats a code");
            assert_eq!(Nfsstat4::from_u32(s.as_u32()), s);
        }
        assert_eq!(Nfsstat4::from_u32(10073), Nfsstat4::Other(10073));
        assert_eq!(Nfsstat4::Delay.as_u32(), 10008);
        assert_eq!(Nfsstat4::Badsession.as_u32(), 10052);
        assert_eq!(Nfsstat4::Deadsession.as_u32(), 10078);
    }

    #[test]
    fn recovery_policy() {
        assert_eq!(Nfsstat4::Delay.recovery(), Recovery::RetryLater);
        assert_eq!(Nfsstat4::Grace.recovery(), Recovery::RetryLater);
        assert_eq!(Nfsstat4::Badsession.recovery(), Recovery::NewSession);
        assert_eq!(Nfsstat4::StaleClientid.recovery(), Recovery::NewSession);
        assert_eq!(Nfsstat4::SeqMisordered.recovery(), Recovery::ResetSlot);
        assert_eq!(Nfsstat4::Noent.recovery(), Recovery::Fail);
        assert_eq!(
            Nfsstat4::Noent.to_string(),
            "NFS4ERR_NOENT: No such file or directory (os error 2)"
        );
    }
}
