//! NFS version 3 (RFC 1813): arguments and results of the procedures nfs-walker uses, in both
//! directions. The client encodes arguments and decodes results; the mock server decodes
//! arguments and encodes results. Each procedure's types and codecs sit together.
//!
//! Only read procedures have argument and result types. Modifying procedures exist here as
//! numbers (so a server can answer them with `NFS3ERR_ROFS`, see [`encode_modifying_proc_fail`])
//! because the walker never changes anything.
//!
//! Results of a procedure `P` are read with `PReply::decode(bytes)`, which returns the success
//! payload or an [`NfsReplyError`]; `decode_result` also keeps the status and post-op attributes
//! of a failed call. Directory listings ([`ReaddirPlusReply`], [`ReaddirReply`]) are validated in
//! one pass and then iterated without allocating; the server builds them with
//! [`ReaddirPlusReplyEncoder`] / [`ReaddirReplyEncoder`], which stop at the client's byte limits.

use crate::record::{EntryAttrs, EntryType};
use crate::rpc::msg::{encode_call_header, CallHeader};
use crate::rpc::record::{begin_record, end_record};
use crate::xdr::{pad_len, XdrDecode, XdrEncode, XdrError, XdrReader, XdrResult, XdrWriter};
use std::fmt;
use std::marker::PhantomData;
use thiserror::Error;

pub const NFS_PROGRAM: u32 = 100003;
pub const NFS_V3: u32 = 3;

/// NFSv3 procedure numbers (RFC 1813 section 3).
pub mod proc3 {
    pub const NULL: u32 = 0;
    pub const GETATTR: u32 = 1;
    pub const SETATTR: u32 = 2;
    pub const LOOKUP: u32 = 3;
    pub const ACCESS: u32 = 4;
    pub const READLINK: u32 = 5;
    pub const READ: u32 = 6;
    pub const WRITE: u32 = 7;
    pub const CREATE: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const SYMLINK: u32 = 10;
    pub const MKNOD: u32 = 11;
    pub const REMOVE: u32 = 12;
    pub const RMDIR: u32 = 13;
    pub const RENAME: u32 = 14;
    pub const LINK: u32 = 15;
    pub const READDIR: u32 = 16;
    pub const READDIRPLUS: u32 = 17;
    pub const FSSTAT: u32 = 18;
    pub const FSINFO: u32 = 19;
    pub const PATHCONF: u32 = 20;
    pub const COMMIT: u32 = 21;
}

/// Lower-case procedure name for logs and statistics ("getattr", "readdirplus", ...).
pub fn proc_name(p: u32) -> &'static str {
    match p {
        proc3::NULL => "null",
        proc3::GETATTR => "getattr",
        proc3::SETATTR => "setattr",
        proc3::LOOKUP => "lookup",
        proc3::ACCESS => "access",
        proc3::READLINK => "readlink",
        proc3::READ => "read",
        proc3::WRITE => "write",
        proc3::CREATE => "create",
        proc3::MKDIR => "mkdir",
        proc3::SYMLINK => "symlink",
        proc3::MKNOD => "mknod",
        proc3::REMOVE => "remove",
        proc3::RMDIR => "rmdir",
        proc3::RENAME => "rename",
        proc3::LINK => "link",
        proc3::READDIR => "readdir",
        proc3::READDIRPLUS => "readdirplus",
        proc3::FSSTAT => "fsstat",
        proc3::FSINFO => "fsinfo",
        proc3::PATHCONF => "pathconf",
        proc3::COMMIT => "commit",
        _ => "unknown",
    }
}

/// Whether procedure `p` changes the file system (a read-only server answers `NFS3ERR_ROFS`).
pub fn is_modifying_proc(p: u32) -> bool {
    matches!(
        p,
        proc3::SETATTR
            | proc3::WRITE
            | proc3::CREATE
            | proc3::MKDIR
            | proc3::SYMLINK
            | proc3::MKNOD
            | proc3::REMOVE
            | proc3::RMDIR
            | proc3::RENAME
            | proc3::LINK
            | proc3::COMMIT
    )
}

pub const NFS3_FHSIZE: usize = 64;
pub const NFS3_COOKIEVERFSIZE: usize = 8;

/// The longest name a server should accept in LOOKUP (the conventional NAME_MAX); longer
/// names get `NFS3ERR_NAMETOOLONG`.
pub const NAME_BYTES_MAX: usize = 255;
/// The longest name an argument decoder accepts, so a server can still answer
/// `NFS3ERR_NAMETOOLONG` for names over [`NAME_BYTES_MAX`] instead of `GARBAGE_ARGS`.
pub const ARG_NAME_BYTES_MAX: u32 = 1024;
/// The longest entry name accepted in a directory listing. A hostile or odd server may send
/// names longer than NAME_MAX; the walker decides what to do with them.
pub const ENTRY_NAME_BYTES_MAX: u32 = 4096;
/// The longest symbolic link target accepted (`nfspath3`).
pub const PATH_BYTES_MAX: u32 = 4096;

/// ACCESS3 permission bits (RFC 1813 section 3.3.4).
pub const ACCESS3_READ: u32 = 0x1;
pub const ACCESS3_LOOKUP: u32 = 0x2;
pub const ACCESS3_MODIFY: u32 = 0x4;
pub const ACCESS3_EXTEND: u32 = 0x8;
pub const ACCESS3_DELETE: u32 = 0x10;
pub const ACCESS3_EXECUTE: u32 = 0x20;

/// FSINFO3 `properties` bits (RFC 1813 section 3.3.19).
pub const FSF3_LINK: u32 = 0x1;
pub const FSF3_SYMLINK: u32 = 0x2;
pub const FSF3_HOMOGENEOUS: u32 = 0x8;
pub const FSF3_CANSETTIME: u32 = 0x10;

/// Bytes of an encoded `fattr3`.
pub const FATTR3_BYTES: usize = 84;

/// Encodes a whole NFSv3 CALL record (record mark, RPC header, arguments) at the end of `buf`.
/// `cred_xdr` is an [`crate::rpc::Auth`] encoded once with [`XdrEncode::to_xdr`].
pub fn encode_nfs3_call<A: XdrEncode + ?Sized>(
    buf: &mut Vec<u8>,
    xid: u32,
    proc_: u32,
    cred_xdr: &[u8],
    args: &A,
) {
    let start = begin_record(buf);
    let mut w = XdrWriter::new(buf);
    let hdr = CallHeader {
        prog: NFS_PROGRAM,
        vers: NFS_V3,
        proc_,
    };
    encode_call_header(&mut w, xid, &hdr, cred_xdr);
    args.encode(&mut w);
    end_record(buf, start);
}

// ---------------------------------------------------------------------------------------------
// Basic data types (RFC 1813 section 2.5)
// ---------------------------------------------------------------------------------------------

/// A file handle: an NFSv3 `nfs_fh3` (at most 64 bytes) or an NFSv4 `nfs_fh4` (at most 128,
/// the one size a directory task needs to hold either), stored inline so it is `Copy` and
/// never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileHandle {
    // Invariant: len <= FH_BYTES_MAX and bytes[len..] are zero (so derived Eq/Hash are exact).
    len: u8,
    bytes: [u8; FH_BYTES_MAX],
}

/// The longest handle a [`FileHandle`] holds: NFSv4's `NFS4_FHSIZE`. NFSv3 replies are held to
/// [`NFS3_FHSIZE`] when decoded.
pub const FH_BYTES_MAX: usize = crate::rpc::nfs4::NFS4_FHSIZE;

impl FileHandle {
    /// The zero-length handle.
    pub const EMPTY: FileHandle = FileHandle {
        len: 0,
        bytes: [0; FH_BYTES_MAX],
    };

    /// None if `b` is longer than [`FH_BYTES_MAX`].
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() > FH_BYTES_MAX {
            return None;
        }
        let mut bytes = [0u8; FH_BYTES_MAX];
        bytes[..b.len()].copy_from_slice(b);
        Some(FileHandle {
            len: b.len() as u8,
            bytes,
        })
    }

    /// A handle of either version, as a directory task's serialised form carries it.
    pub fn decode_any(r: &mut XdrReader<'_>) -> XdrResult<Self> {
        Self::decode_within(r, FH_BYTES_MAX)
    }

    fn decode_within(r: &mut XdrReader<'_>, max: usize) -> XdrResult<Self> {
        let b = r.opaque(max as u32)?;
        // Cannot fail: the length was checked against `max`.
        FileHandle::from_bytes(b).ok_or(XdrError::TooLong {
            len: b.len() as u32,
            max: max as u32,
        })
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for FileHandle {
    fn default() -> Self {
        FileHandle::EMPTY
    }
}

impl fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileHandle(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl XdrEncode for FileHandle {
    #[inline]
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.opaque(self.as_bytes());
    }
}

/// The NFSv3 wire form, `nfs_fh3`: at most [`NFS3_FHSIZE`] bytes.
impl<'a> XdrDecode<'a> for FileHandle {
    #[inline]
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        FileHandle::decode_within(r, NFS3_FHSIZE)
    }
}

macro_rules! nfsstat3 {
    ($( $variant:ident = $code:literal, $name:literal, $msg:literal; )*) => {
        /// `nfsstat3`: every status RFC 1813 defines, and `Other` for codes it does not.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Nfsstat3 {
            $( $variant, )*
            /// A code RFC 1813 does not define (never one that it does).
            Other(u32),
        }

        impl Nfsstat3 {
            /// Every defined status, in code order.
            pub const ALL: &'static [Nfsstat3] = &[$( Nfsstat3::$variant, )*];

            pub fn from_u32(v: u32) -> Self {
                match v {
                    $( $code => Nfsstat3::$variant, )*
                    other => Nfsstat3::Other(other),
                }
            }

            pub fn as_u32(self) -> u32 {
                match self {
                    $( Nfsstat3::$variant => $code, )*
                    Nfsstat3::Other(v) => v,
                }
            }

            /// The RFC's name, e.g. "NFS3ERR_ACCES".
            pub fn name(self) -> &'static str {
                match self {
                    $( Nfsstat3::$variant => $name, )*
                    Nfsstat3::Other(_) => "NFS3ERR_UNKNOWN",
                }
            }

            /// What the status means, in the words of `strerror` where there is one.
            pub fn message(self) -> &'static str {
                match self {
                    $( Nfsstat3::$variant => $msg, )*
                    Nfsstat3::Other(_) => "status code not defined by RFC 1813",
                }
            }
        }
    };
}

nfsstat3! {
    Ok = 0, "NFS3_OK", "success";
    Perm = 1, "NFS3ERR_PERM", "operation not permitted (not the owner)";
    Noent = 2, "NFS3ERR_NOENT", "no such file or directory";
    Io = 5, "NFS3ERR_IO", "I/O error";
    Nxio = 6, "NFS3ERR_NXIO", "no such device or address";
    Acces = 13, "NFS3ERR_ACCES", "permission denied";
    Exist = 17, "NFS3ERR_EXIST", "file exists";
    Xdev = 18, "NFS3ERR_XDEV", "cross-device link";
    Nodev = 19, "NFS3ERR_NODEV", "no such device";
    Notdir = 20, "NFS3ERR_NOTDIR", "not a directory";
    Isdir = 21, "NFS3ERR_ISDIR", "is a directory";
    Inval = 22, "NFS3ERR_INVAL", "invalid argument";
    Fbig = 27, "NFS3ERR_FBIG", "file too large";
    Nospc = 28, "NFS3ERR_NOSPC", "no space left on device";
    Rofs = 30, "NFS3ERR_ROFS", "read-only file system";
    Mlink = 31, "NFS3ERR_MLINK", "too many hard links";
    Nametoolong = 63, "NFS3ERR_NAMETOOLONG", "file name too long";
    Notempty = 66, "NFS3ERR_NOTEMPTY", "directory not empty";
    Dquot = 69, "NFS3ERR_DQUOT", "disk quota exceeded";
    Stale = 70, "NFS3ERR_STALE", "stale file handle";
    Remote = 71, "NFS3ERR_REMOTE", "too many levels of remote in path";
    Badhandle = 10001, "NFS3ERR_BADHANDLE", "illegal NFS file handle";
    NotSync = 10002, "NFS3ERR_NOT_SYNC", "update synchronization mismatch";
    BadCookie = 10003, "NFS3ERR_BAD_COOKIE", "directory cookie is stale";
    Notsupp = 10004, "NFS3ERR_NOTSUPP", "operation not supported";
    Toosmall = 10005, "NFS3ERR_TOOSMALL", "buffer or request is too small";
    Serverfault = 10006, "NFS3ERR_SERVERFAULT", "server fault";
    Badtype = 10007, "NFS3ERR_BADTYPE", "object type not supported by the server";
    Jukebox = 10008, "NFS3ERR_JUKEBOX", "server busy, retry later";
}

impl Nfsstat3 {
    /// Whether retrying the same call later may succeed (RFC 1813: JUKEBOX).
    pub fn is_transient(self) -> bool {
        self == Nfsstat3::Jukebox
    }
}

impl fmt::Display for Nfsstat3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nfsstat3::Other(v) => write!(f, "NFS3ERR_UNKNOWN({v})"),
            s => f.write_str(s.name()),
        }
    }
}

impl XdrEncode for Nfsstat3 {
    #[inline]
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.as_u32());
    }
}

impl<'a> XdrDecode<'a> for Nfsstat3 {
    #[inline]
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(Nfsstat3::from_u32(r.u32()?))
    }
}

/// A non-OK NFS status as an error; displays as e.g. "NFS3ERR_ACCES: permission denied".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{}: {}", .0, .0.message())]
pub struct Nfs3Error(pub Nfsstat3);

/// Why a result could not be turned into its success payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NfsReplyError {
    /// The server answered with a non-OK status.
    #[error("{}", Nfs3Error(*.0))]
    Status(Nfsstat3),
    #[error("malformed NFS reply: {0}")]
    Xdr(#[from] XdrError),
}

/// `ftype3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum FileType3 {
    Reg = 1,
    Dir = 2,
    Blk = 3,
    Chr = 4,
    Lnk = 5,
    Sock = 6,
    Fifo = 7,
}

impl FileType3 {
    pub const ALL: [FileType3; 7] = [
        FileType3::Reg,
        FileType3::Dir,
        FileType3::Blk,
        FileType3::Chr,
        FileType3::Lnk,
        FileType3::Sock,
        FileType3::Fifo,
    ];

    pub fn from_u32(v: u32) -> XdrResult<Self> {
        Ok(match v {
            1 => FileType3::Reg,
            2 => FileType3::Dir,
            3 => FileType3::Blk,
            4 => FileType3::Chr,
            5 => FileType3::Lnk,
            6 => FileType3::Sock,
            7 => FileType3::Fifo,
            other => return Err(XdrError::BadDiscriminant(other)),
        })
    }

    pub fn to_entry_type(self) -> EntryType {
        match self {
            FileType3::Reg => EntryType::File,
            FileType3::Dir => EntryType::Dir,
            FileType3::Blk => EntryType::Block,
            FileType3::Chr => EntryType::Char,
            FileType3::Lnk => EntryType::Symlink,
            FileType3::Sock => EntryType::Socket,
            FileType3::Fifo => EntryType::Fifo,
        }
    }

    /// The wire type of a record type; `None` for [`EntryType::Unknown`], which has none.
    pub fn from_entry_type(t: EntryType) -> Option<Self> {
        Some(match t {
            EntryType::File => FileType3::Reg,
            EntryType::Dir => FileType3::Dir,
            EntryType::Block => FileType3::Blk,
            EntryType::Char => FileType3::Chr,
            EntryType::Symlink => FileType3::Lnk,
            EntryType::Socket => FileType3::Sock,
            EntryType::Fifo => FileType3::Fifo,
            EntryType::Unknown => return None,
        })
    }
}

/// `nfstime3`: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NfsTime3 {
    pub seconds: u32,
    pub nseconds: u32,
}

impl NfsTime3 {
    /// Nanoseconds since the epoch. Cannot overflow: u32::MAX seconds is about 4.3e18 ns.
    #[inline]
    pub fn to_ns(self) -> i64 {
        self.seconds as i64 * 1_000_000_000 + self.nseconds as i64
    }
}

impl XdrEncode for NfsTime3 {
    #[inline]
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.seconds).u32(self.nseconds);
    }
}

impl<'a> XdrDecode<'a> for NfsTime3 {
    #[inline]
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(NfsTime3 {
            seconds: r.u32()?,
            nseconds: r.u32()?,
        })
    }
}

/// `specdata3`: device numbers of block and character special files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpecData3 {
    pub major: u32,
    pub minor: u32,
}

/// `fattr3`: the attributes of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fattr3 {
    pub ftype: FileType3,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub used: u64,
    pub rdev: SpecData3,
    pub fsid: u64,
    pub fileid: u64,
    pub atime: NfsTime3,
    pub mtime: NfsTime3,
    pub ctime: NfsTime3,
}

impl Fattr3 {
    /// The attributes as the entry record carries them (mode reduced to its 12 permission bits,
    /// because servers may send file type bits there too).
    pub fn to_entry_attrs(&self) -> EntryAttrs {
        EntryAttrs {
            kind: self.ftype.to_entry_type(),
            size: self.size,
            used: self.used,
            mode: self.mode & 0o7777,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            fileid: self.fileid,
            fsid: self.fsid,
            atime_ns: self.atime.to_ns(),
            mtime_ns: self.mtime.to_ns(),
            ctime_ns: self.ctime.to_ns(),
        }
    }
}

impl XdrEncode for Fattr3 {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(self.ftype as u32)
            .u32(self.mode)
            .u32(self.nlink)
            .u32(self.uid)
            .u32(self.gid)
            .u64(self.size)
            .u64(self.used)
            .u32(self.rdev.major)
            .u32(self.rdev.minor)
            .u64(self.fsid)
            .u64(self.fileid);
        self.atime.encode(w);
        self.mtime.encode(w);
        self.ctime.encode(w);
    }
}

impl<'a> XdrDecode<'a> for Fattr3 {
    #[inline]
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        // One bounds check for the whole fixed-size structure; the field reads below index a
        // fixed-size array at constant offsets, so they compile to plain loads.
        let b: &[u8; FATTR3_BYTES] =
            r.opaque_fixed(FATTR3_BYTES)?
                .try_into()
                .map_err(|_| XdrError::Truncated {
                    needed: FATTR3_BYTES,
                    remaining: 0,
                })?;
        let u32_at = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| (u32_at(o) as u64) << 32 | u32_at(o + 4) as u64;
        let time_at = |o: usize| NfsTime3 {
            seconds: u32_at(o),
            nseconds: u32_at(o + 4),
        };
        Ok(Fattr3 {
            ftype: FileType3::from_u32(u32_at(0))?,
            mode: u32_at(4),
            nlink: u32_at(8),
            uid: u32_at(12),
            gid: u32_at(16),
            size: u64_at(20),
            used: u64_at(28),
            rdev: SpecData3 {
                major: u32_at(36),
                minor: u32_at(40),
            },
            fsid: u64_at(44),
            fileid: u64_at(52),
            atime: time_at(60),
            mtime: time_at(68),
            ctime: time_at(76),
        })
    }
}

/// Checks a `post_op_attr` without building it (the listing's validation pass).
#[inline]
fn skip_post_op_attr(r: &mut XdrReader<'_>) -> XdrResult<()> {
    if r.option_flag()? {
        FileType3::from_u32(r.u32()?)?;
        r.opaque_fixed(FATTR3_BYTES - 4)?;
    }
    Ok(())
}

/// Decodes a `post_op_attr`.
#[inline]
pub fn decode_post_op_attr(r: &mut XdrReader<'_>) -> XdrResult<Option<Fattr3>> {
    if r.option_flag()? {
        Ok(Some(Fattr3::decode(r)?))
    } else {
        Ok(None)
    }
}

/// Encodes a `post_op_attr`.
#[inline]
pub fn encode_post_op_attr(w: &mut XdrWriter<'_>, attrs: Option<&Fattr3>) {
    match attrs {
        Some(a) => {
            w.bool(true);
            a.encode(w);
        }
        None => {
            w.bool(false);
        }
    }
}

/// Decodes a `post_op_fh3`.
#[inline]
pub fn decode_post_op_fh3(r: &mut XdrReader<'_>) -> XdrResult<Option<FileHandle>> {
    if r.option_flag()? {
        Ok(Some(FileHandle::decode(r)?))
    } else {
        Ok(None)
    }
}

/// Encodes a `post_op_fh3`.
#[inline]
pub fn encode_post_op_fh3(w: &mut XdrWriter<'_>, fh: Option<&FileHandle>) {
    match fh {
        Some(fh) => {
            w.bool(true);
            fh.encode(w);
        }
        None => {
            w.bool(false);
        }
    }
}

#[inline]
fn decode_cookieverf(r: &mut XdrReader<'_>) -> XdrResult<[u8; NFS3_COOKIEVERFSIZE]> {
    let b = r.opaque_fixed(NFS3_COOKIEVERFSIZE)?;
    let mut v = [0u8; NFS3_COOKIEVERFSIZE];
    v.copy_from_slice(b);
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Results: the status switch shared by every procedure
// ---------------------------------------------------------------------------------------------

/// A failed result as RFC 1813 sends it: the status, and the post-op attributes of the object
/// (or directory) that most procedures return with a failure. Always `None` for GETATTR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResFail {
    pub status: Nfsstat3,
    pub attrs: Option<Fattr3>,
}

/// The success payload of a procedure's result (`XXX3resok`).
pub trait NfsResOk<'a>: Sized {
    /// Whether the failure arm of this result carries a `post_op_attr` (all read procedures
    /// but GETATTR).
    const FAIL_HAS_ATTRS: bool = true;

    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self>;
    fn encode_ok(&self, w: &mut XdrWriter<'_>);
}

/// Codec of a whole result (`XXX3res`: the status, then the success or failure arm) whose
/// success payload is `T`. Used through aliases such as [`GetattrReply`] and [`LookupReply`].
pub struct NfsRes<T>(PhantomData<T>);

impl<'a, T: NfsResOk<'a>> NfsRes<T> {
    /// The client's path: the success payload, or why there is none. On a non-OK status the
    /// rest of the result is not examined.
    pub fn decode(res: &'a [u8]) -> Result<T, NfsReplyError> {
        let mut r = XdrReader::new(res);
        match Nfsstat3::decode(&mut r)? {
            Nfsstat3::Ok => {
                let ok = T::decode_ok(&mut r)?;
                r.finish()?;
                Ok(ok)
            }
            status => Err(NfsReplyError::Status(status)),
        }
    }

    /// The whole result, including the failure arm's attributes; strict about its layout.
    pub fn decode_result(res: &'a [u8]) -> XdrResult<Result<T, ResFail>> {
        let mut r = XdrReader::new(res);
        let out = match Nfsstat3::decode(&mut r)? {
            Nfsstat3::Ok => Ok(T::decode_ok(&mut r)?),
            status => {
                let attrs = if T::FAIL_HAS_ATTRS {
                    decode_post_op_attr(&mut r)?
                } else {
                    None
                };
                Err(ResFail { status, attrs })
            }
        };
        r.finish()?;
        Ok(out)
    }

    /// Encodes `NFS3_OK` and the success payload.
    pub fn encode_ok(w: &mut XdrWriter<'_>, ok: &T) {
        w.u32(0);
        ok.encode_ok(w);
    }

    /// Encodes a failure. `status` must not be `Ok`; `attrs` is dropped where the procedure's
    /// failure arm has no attributes (GETATTR).
    pub fn encode_fail(w: &mut XdrWriter<'_>, status: Nfsstat3, attrs: Option<&Fattr3>) {
        debug_assert!(status != Nfsstat3::Ok, "a failure needs a non-OK status");
        status.encode(w);
        if T::FAIL_HAS_ATTRS {
            encode_post_op_attr(w, attrs);
        }
    }

    /// Encodes either arm.
    pub fn encode_result(w: &mut XdrWriter<'_>, res: &Result<T, ResFail>) {
        match res {
            Ok(ok) => Self::encode_ok(w, ok),
            Err(fail) => Self::encode_fail(w, fail.status, fail.attrs.as_ref()),
        }
    }
}

/// Encodes the failure result of a modifying procedure (empty `wcc_data` and attributes), e.g.
/// `NFS3ERR_ROFS` from a read-only server. Returns false, writing nothing, if `proc_` is not a
/// modifying procedure.
pub fn encode_modifying_proc_fail(w: &mut XdrWriter<'_>, proc_: u32, status: Nfsstat3) -> bool {
    // Count of empty post_op_attr / pre_op_attr discriminants in the failure arm.
    let empty_optionals = match proc_ {
        // wcc_data (pre_op_attr + post_op_attr)
        proc3::SETATTR
        | proc3::WRITE
        | proc3::CREATE
        | proc3::MKDIR
        | proc3::SYMLINK
        | proc3::MKNOD
        | proc3::REMOVE
        | proc3::RMDIR
        | proc3::COMMIT => 2,
        // fromdir_wcc + todir_wcc
        proc3::RENAME => 4,
        // file_attributes (post_op_attr) + linkdir_wcc
        proc3::LINK => 3,
        _ => return false,
    };
    status.encode(w);
    for _ in 0..empty_optionals {
        w.bool(false);
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Arguments of the read procedures
// ---------------------------------------------------------------------------------------------

macro_rules! fh_args {
    ($( $(#[$doc:meta])* $name:ident; )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            pub fh: FileHandle,
        }

        impl XdrEncode for $name {
            #[inline]
            fn encode(&self, w: &mut XdrWriter<'_>) {
                self.fh.encode(w);
            }
        }

        impl<'a> XdrDecode<'a> for $name {
            #[inline]
            fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
                Ok($name { fh: FileHandle::decode(r)? })
            }
        }
    )*};
}

fh_args! {
    /// `GETATTR3args`.
    GetattrArgs;
    /// `READLINK3args`.
    ReadlinkArgs;
    /// `FSSTAT3args`.
    FsstatArgs;
    /// `FSINFO3args`.
    FsinfoArgs;
    /// `PATHCONF3args`.
    PathconfArgs;
}

/// `LOOKUP3args` (`diropargs3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LookupArgs<'a> {
    pub dir: FileHandle,
    pub name: &'a [u8],
}

impl XdrEncode for LookupArgs<'_> {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        self.dir.encode(w);
        w.string(self.name);
    }
}

impl<'a> XdrDecode<'a> for LookupArgs<'a> {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(LookupArgs {
            dir: FileHandle::decode(r)?,
            name: r.string(ARG_NAME_BYTES_MAX)?,
        })
    }
}

/// `ACCESS3args`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessArgs {
    pub fh: FileHandle,
    /// ACCESS3_* bits to check.
    pub access: u32,
}

impl XdrEncode for AccessArgs {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        self.fh.encode(w);
        w.u32(self.access);
    }
}

impl<'a> XdrDecode<'a> for AccessArgs {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(AccessArgs {
            fh: FileHandle::decode(r)?,
            access: r.u32()?,
        })
    }
}

/// `READDIR3args`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReaddirArgs {
    pub dir: FileHandle,
    /// 0 for the first call, then the cookie of the last entry received.
    pub cookie: u64,
    /// Zero for the first call, then the verifier of the previous reply.
    pub cookieverf: [u8; NFS3_COOKIEVERFSIZE],
    /// Largest `READDIR3resok` the server may send, in bytes.
    pub count: u32,
}

impl XdrEncode for ReaddirArgs {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        self.dir.encode(w);
        w.u64(self.cookie)
            .opaque_fixed(&self.cookieverf)
            .u32(self.count);
    }
}

impl<'a> XdrDecode<'a> for ReaddirArgs {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(ReaddirArgs {
            dir: FileHandle::decode(r)?,
            cookie: r.u64()?,
            cookieverf: decode_cookieverf(r)?,
            count: r.u32()?,
        })
    }
}

/// `READDIRPLUS3args`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReaddirPlusArgs {
    pub dir: FileHandle,
    pub cookie: u64,
    pub cookieverf: [u8; NFS3_COOKIEVERFSIZE],
    /// Bytes of directory information (fileid, name, cookie) the server may return.
    pub dircount: u32,
    /// Largest `READDIRPLUS3resok` the server may send, in bytes.
    pub maxcount: u32,
}

impl XdrEncode for ReaddirPlusArgs {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        self.dir.encode(w);
        w.u64(self.cookie)
            .opaque_fixed(&self.cookieverf)
            .u32(self.dircount)
            .u32(self.maxcount);
    }
}

impl<'a> XdrDecode<'a> for ReaddirPlusArgs {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(ReaddirPlusArgs {
            dir: FileHandle::decode(r)?,
            cookie: r.u64()?,
            cookieverf: decode_cookieverf(r)?,
            dircount: r.u32()?,
            maxcount: r.u32()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Results of the simple read procedures
// ---------------------------------------------------------------------------------------------

/// GETATTR: the success payload is the object's `fattr3`; the failure arm is empty.
impl<'a> NfsResOk<'a> for Fattr3 {
    const FAIL_HAS_ATTRS: bool = false;

    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Fattr3::decode(r)
    }

    fn encode_ok(&self, w: &mut XdrWriter<'_>) {
        self.encode(w);
    }
}

/// `GETATTR3res`: `GetattrReply::decode(bytes) -> Result<Fattr3, NfsReplyError>`.
pub type GetattrReply = NfsRes<Fattr3>;

/// `LOOKUP3resok`. The failure arm carries the directory's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupOk {
    pub fh: FileHandle,
    pub obj_attrs: Option<Fattr3>,
    pub dir_attrs: Option<Fattr3>,
}

impl<'a> NfsResOk<'a> for LookupOk {
    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(LookupOk {
            fh: FileHandle::decode(r)?,
            obj_attrs: decode_post_op_attr(r)?,
            dir_attrs: decode_post_op_attr(r)?,
        })
    }

    fn encode_ok(&self, w: &mut XdrWriter<'_>) {
        self.fh.encode(w);
        encode_post_op_attr(w, self.obj_attrs.as_ref());
        encode_post_op_attr(w, self.dir_attrs.as_ref());
    }
}

/// `LOOKUP3res`.
pub type LookupReply = NfsRes<LookupOk>;

/// `ACCESS3resok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessOk {
    pub attrs: Option<Fattr3>,
    /// The ACCESS3_* bits granted (a subset of those asked for).
    pub access: u32,
}

impl<'a> NfsResOk<'a> for AccessOk {
    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(AccessOk {
            attrs: decode_post_op_attr(r)?,
            access: r.u32()?,
        })
    }

    fn encode_ok(&self, w: &mut XdrWriter<'_>) {
        encode_post_op_attr(w, self.attrs.as_ref());
        w.u32(self.access);
    }
}

/// `ACCESS3res`.
pub type AccessReply = NfsRes<AccessOk>;

/// `READLINK3resok`: the link's attributes and its target, borrowed from the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadlinkOk<'a> {
    pub attrs: Option<Fattr3>,
    pub target: &'a [u8],
}

impl<'a> NfsResOk<'a> for ReadlinkOk<'a> {
    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(ReadlinkOk {
            attrs: decode_post_op_attr(r)?,
            target: r.string(PATH_BYTES_MAX)?,
        })
    }

    fn encode_ok(&self, w: &mut XdrWriter<'_>) {
        encode_post_op_attr(w, self.attrs.as_ref());
        w.string(self.target);
    }
}

/// `READLINK3res`.
pub type ReadlinkReply<'a> = NfsRes<ReadlinkOk<'a>>;

/// `FSSTAT3resok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsstatOk {
    pub attrs: Option<Fattr3>,
    /// Total, free, and free-to-this-user bytes.
    pub tbytes: u64,
    pub fbytes: u64,
    pub abytes: u64,
    /// Total, free, and free-to-this-user file slots.
    pub tfiles: u64,
    pub ffiles: u64,
    pub afiles: u64,
    /// Seconds for which the file system is not expected to change.
    pub invarsec: u32,
}

impl<'a> NfsResOk<'a> for FsstatOk {
    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(FsstatOk {
            attrs: decode_post_op_attr(r)?,
            tbytes: r.u64()?,
            fbytes: r.u64()?,
            abytes: r.u64()?,
            tfiles: r.u64()?,
            ffiles: r.u64()?,
            afiles: r.u64()?,
            invarsec: r.u32()?,
        })
    }

    fn encode_ok(&self, w: &mut XdrWriter<'_>) {
        encode_post_op_attr(w, self.attrs.as_ref());
        w.u64(self.tbytes)
            .u64(self.fbytes)
            .u64(self.abytes)
            .u64(self.tfiles)
            .u64(self.ffiles)
            .u64(self.afiles)
            .u32(self.invarsec);
    }
}

/// `FSSTAT3res`.
pub type FsstatReply = NfsRes<FsstatOk>;

/// `FSINFO3resok`: the server's transfer sizes and capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsinfoOk {
    pub attrs: Option<Fattr3>,
    pub rtmax: u32,
    pub rtpref: u32,
    pub rtmult: u32,
    pub wtmax: u32,
    pub wtpref: u32,
    pub wtmult: u32,
    /// Preferred READDIR request size, in bytes.
    pub dtpref: u32,
    pub maxfilesize: u64,
    pub time_delta: NfsTime3,
    /// FSF3_* bits.
    pub properties: u32,
}

impl<'a> NfsResOk<'a> for FsinfoOk {
    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(FsinfoOk {
            attrs: decode_post_op_attr(r)?,
            rtmax: r.u32()?,
            rtpref: r.u32()?,
            rtmult: r.u32()?,
            wtmax: r.u32()?,
            wtpref: r.u32()?,
            wtmult: r.u32()?,
            dtpref: r.u32()?,
            maxfilesize: r.u64()?,
            time_delta: NfsTime3::decode(r)?,
            properties: r.u32()?,
        })
    }

    fn encode_ok(&self, w: &mut XdrWriter<'_>) {
        encode_post_op_attr(w, self.attrs.as_ref());
        w.u32(self.rtmax)
            .u32(self.rtpref)
            .u32(self.rtmult)
            .u32(self.wtmax)
            .u32(self.wtpref)
            .u32(self.wtmult)
            .u32(self.dtpref)
            .u64(self.maxfilesize);
        self.time_delta.encode(w);
        w.u32(self.properties);
    }
}

/// `FSINFO3res`.
pub type FsinfoReply = NfsRes<FsinfoOk>;

/// `PATHCONF3resok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathconfOk {
    pub attrs: Option<Fattr3>,
    pub linkmax: u32,
    pub name_max: u32,
    pub no_trunc: bool,
    pub chown_restricted: bool,
    pub case_insensitive: bool,
    pub case_preserving: bool,
}

impl<'a> NfsResOk<'a> for PathconfOk {
    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(PathconfOk {
            attrs: decode_post_op_attr(r)?,
            linkmax: r.u32()?,
            name_max: r.u32()?,
            no_trunc: r.bool()?,
            chown_restricted: r.bool()?,
            case_insensitive: r.bool()?,
            case_preserving: r.bool()?,
        })
    }

    fn encode_ok(&self, w: &mut XdrWriter<'_>) {
        encode_post_op_attr(w, self.attrs.as_ref());
        w.u32(self.linkmax)
            .u32(self.name_max)
            .bool(self.no_trunc)
            .bool(self.chown_restricted)
            .bool(self.case_insensitive)
            .bool(self.case_preserving);
    }
}

/// `PATHCONF3res`.
pub type PathconfReply = NfsRes<PathconfOk>;

// ---------------------------------------------------------------------------------------------
// READ: file contents
// ---------------------------------------------------------------------------------------------

/// The most data a READ result may carry: a reply is one record of at most 4 MiB (the record
/// assembler's limit), so no longer `data` can arrive, and none is accepted.
pub const READ_DATA_BYTES_MAX: u32 = 4 << 20;

/// `READ3args`: `count` bytes of `file` from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadArgs {
    pub file: FileHandle,
    pub offset: u64,
    pub count: u32,
}

impl XdrEncode for ReadArgs {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        self.file.encode(w);
        w.u64(self.offset).u32(self.count);
    }
}

impl<'a> XdrDecode<'a> for ReadArgs {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(ReadArgs {
            file: FileHandle::decode(r)?,
            offset: r.u64()?,
            count: r.u32()?,
        })
    }
}

/// `READ3resok`: the file's attributes after the read, and the data, borrowed from the reply
/// (no copy). `count` is what the server says it read; a well-formed reply has
/// `count == data.len()`, which the decoder does not demand so that the reader can report a
/// server that disagrees with itself (see [`ReadOk::count_matches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOk<'a> {
    pub attrs: Option<Fattr3>,
    pub count: u32,
    /// The read reached the end of the file.
    pub eof: bool,
    pub data: &'a [u8],
}

impl ReadOk<'_> {
    /// Whether `count` agrees with the data actually sent.
    pub fn count_matches(&self) -> bool {
        self.count as usize == self.data.len()
    }
}

impl<'a> NfsResOk<'a> for ReadOk<'a> {
    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(ReadOk {
            attrs: decode_post_op_attr(r)?,
            count: r.u32()?,
            eof: r.bool()?,
            data: r.opaque(READ_DATA_BYTES_MAX)?,
        })
    }

    fn encode_ok(&self, w: &mut XdrWriter<'_>) {
        encode_post_op_attr(w, self.attrs.as_ref());
        w.u32(self.count).bool(self.eof).opaque(self.data);
    }
}

/// `READ3res`: `ReadReply::decode(bytes) -> Result<ReadOk, NfsReplyError>`.
pub type ReadReply<'a> = NfsRes<ReadOk<'a>>;

/// Encodes a successful `READ3res` of `len` bytes produced in place by `fill` (the server's
/// path: the data is written straight into the reply, never staged). `len` must not exceed
/// [`READ_DATA_BYTES_MAX`].
pub fn encode_read_ok_with(
    out: &mut Vec<u8>,
    attrs: Option<&Fattr3>,
    len: usize,
    eof: bool,
    fill: impl FnOnce(&mut [u8]),
) {
    debug_assert!(len <= READ_DATA_BYTES_MAX as usize);
    let mut w = XdrWriter::new(out);
    w.u32(0);
    encode_post_op_attr(&mut w, attrs);
    w.u32(len as u32).bool(eof).u32(len as u32);
    let start = out.len();
    out.resize(start + len + pad_len(len), 0);
    fill(&mut out[start..start + len]);
}

// ---------------------------------------------------------------------------------------------
// READDIRPLUS: the hot path
// ---------------------------------------------------------------------------------------------

/// One `entryplus3`, borrowing its name from the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntryPlus<'a> {
    pub fileid: u64,
    pub name: &'a [u8],
    pub cookie: u64,
    pub attrs: Option<Fattr3>,
    pub fh: Option<FileHandle>,
}

impl<'a> ListedEntry<'a> for DirEntryPlus<'a> {
    /// Decodes the entry that follows a `value_follows` = TRUE.
    #[inline]
    fn decode_body(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(DirEntryPlus {
            fileid: r.u64()?,
            name: r.string(ENTRY_NAME_BYTES_MAX)?,
            cookie: r.u64()?,
            attrs: decode_post_op_attr(r)?,
            fh: decode_post_op_fh3(r)?,
        })
    }

    /// Checks the entry that follows a `value_follows` = TRUE, as `decode_body` would, without
    /// building it; returns its cookie.
    #[inline]
    fn skip_body(r: &mut XdrReader<'a>) -> XdrResult<u64> {
        r.u64()?;
        r.string(ENTRY_NAME_BYTES_MAX)?;
        let cookie = r.u64()?;
        skip_post_op_attr(r)?;
        if r.option_flag()? {
            r.opaque(NFS3_FHSIZE as u32)?;
        }
        Ok(cookie)
    }

    #[inline]
    fn encode_body(&self, w: &mut XdrWriter<'_>) {
        w.u64(self.fileid).string(self.name).u64(self.cookie);
        encode_post_op_attr(w, self.attrs.as_ref());
        encode_post_op_fh3(w, self.fh.as_ref());
    }

    #[inline]
    fn cookie(&self) -> u64 {
        self.cookie
    }
}

/// Bytes of an `entry3`-like prefix with its `value_follows`: what READDIRPLUS's `dircount`
/// and READDIR's entries count.
#[inline]
fn dir_entry_wire_bytes(name_len: usize) -> usize {
    4 + 8 + 4 + name_len + pad_len(name_len) + 8
}

/// An entry of a directory listing reply: what READDIR's `entry3` and READDIRPLUS's
/// `entryplus3` share, so one reply type and one iterator serve both procedures.
pub trait ListedEntry<'a>: Sized {
    /// Decodes the entry that follows a `value_follows` = TRUE.
    fn decode_body(r: &mut XdrReader<'a>) -> XdrResult<Self>;
    /// Checks the entry as `decode_body` would, without building it (the validation pass);
    /// returns its cookie.
    fn skip_body(r: &mut XdrReader<'a>) -> XdrResult<u64> {
        Self::decode_body(r).map(|e| e.cookie())
    }
    fn encode_body(&self, w: &mut XdrWriter<'_>);
    /// Where a listing continues after this entry.
    fn cookie(&self) -> u64;
}

/// A decoded, validated directory listing result (`READDIR3resok`, `READDIRPLUS3resok`). The
/// entries stay in the reply's bytes and are decoded again by [`DirListReply::entries`], which
/// cannot fail and does not allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirListReply<'a, E> {
    pub dir_attrs: Option<Fattr3>,
    pub cookieverf: [u8; NFS3_COOKIEVERFSIZE],
    pub eof: bool,
    pub entry_count: usize,
    /// The validated entry list, from the first `value_follows` through the final FALSE.
    entries_xdr: &'a [u8],
    /// Found by the validation pass, so continuing a chain needs no second decode.
    last_cookie: Option<u64>,
    entry: PhantomData<E>,
}

/// A decoded `READDIRPLUS3resok`.
pub type ReaddirPlusReply<'a> = DirListReply<'a, DirEntryPlus<'a>>;
/// Iterator over the entries of a [`ReaddirPlusReply`].
pub type DirEntryPlusIter<'a> = DirListIter<'a, DirEntryPlus<'a>>;

impl<'a, E: ListedEntry<'a>> DirListReply<'a, E> {
    /// Decodes the result; a non-OK status is [`NfsReplyError::Status`].
    pub fn decode(res: &'a [u8]) -> Result<Self, NfsReplyError> {
        NfsRes::<Self>::decode(res)
    }

    /// Decodes either arm of the result.
    pub fn decode_result(res: &'a [u8]) -> XdrResult<Result<Self, ResFail>> {
        NfsRes::<Self>::decode_result(res)
    }

    /// The entries, in server order.
    #[inline]
    pub fn entries(&self) -> DirListIter<'a, E> {
        DirListIter {
            r: XdrReader::new(self.entries_xdr),
            remaining: self.entry_count,
            entry: PhantomData,
        }
    }

    /// The cookie of the last entry: where the next call continues.
    pub fn last_cookie(&self) -> Option<u64> {
        self.last_cookie
    }

    /// The listing without its borrow of `from`, the bytes it was decoded from: kept beside a
    /// copy of them, it is attached again without a second validation pass. `None` if the
    /// entries do not lie within `from`.
    pub fn detach(&self, from: &[u8]) -> Option<DetachedDirList> {
        Some(DetachedDirList {
            dir_attrs: self.dir_attrs,
            cookieverf: self.cookieverf,
            eof: self.eof,
            entry_count: self.entry_count,
            entries: crate::xdr::span_within(from, self.entries_xdr)?,
            last_cookie: self.last_cookie,
        })
    }
}

/// A validated [`DirListReply`] apart from its bytes (see [`DirListReply::detach`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachedDirList {
    dir_attrs: Option<Fattr3>,
    cookieverf: [u8; NFS3_COOKIEVERFSIZE],
    eof: bool,
    entry_count: usize,
    entries: std::ops::Range<usize>,
    last_cookie: Option<u64>,
}

impl DetachedDirList {
    /// The listing over `to`, a copy of the bytes it was detached from, read as entries of
    /// kind `E` (those it was validated as); `None` if `to` is too short. (Over other bytes
    /// the entries would not be those validated: iterating them stays safe, and ends at the
    /// first that does not decode.)
    pub fn attach<'a, E: ListedEntry<'a>>(&self, to: &'a [u8]) -> Option<DirListReply<'a, E>> {
        Some(DirListReply {
            dir_attrs: self.dir_attrs,
            cookieverf: self.cookieverf,
            eof: self.eof,
            entry_count: self.entry_count,
            entries_xdr: to.get(self.entries.clone())?,
            last_cookie: self.last_cookie,
            entry: PhantomData,
        })
    }
}

impl<'a, E: ListedEntry<'a>> NfsResOk<'a> for DirListReply<'a, E> {
    fn decode_ok(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        let dir_attrs = decode_post_op_attr(r)?;
        let cookieverf = decode_cookieverf(r)?;
        let list = r.rest();
        let list_start = r.position();
        let mut entry_count = 0usize;
        let mut last_cookie = None;
        while r.option_flag()? {
            last_cookie = Some(E::skip_body(r)?);
            entry_count += 1;
        }
        let list_len = r.position() - list_start;
        let eof = r.bool()?;
        Ok(DirListReply {
            dir_attrs,
            cookieverf,
            eof,
            entry_count,
            entries_xdr: &list[..list_len],
            last_cookie,
            entry: PhantomData,
        })
    }

    fn encode_ok(&self, w: &mut XdrWriter<'_>) {
        encode_post_op_attr(w, self.dir_attrs.as_ref());
        w.opaque_fixed(&self.cookieverf);
        // Already valid XDR, terminated by its final FALSE.
        w.buffer().extend_from_slice(self.entries_xdr);
        w.bool(self.eof);
    }
}

/// Iterator over the entries of a validated [`DirListReply`].
#[derive(Debug, Clone)]
pub struct DirListIter<'a, E> {
    r: XdrReader<'a>,
    remaining: usize,
    entry: PhantomData<E>,
}

impl<'a, E: ListedEntry<'a>> Iterator for DirListIter<'a, E> {
    type Item = E;

    #[inline]
    fn next(&mut self) -> Option<E> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The bytes were validated by decode_ok, so these cannot fail; if they somehow did,
        // the iteration ends instead of panicking.
        if !self.r.option_flag().ok()? {
            return None;
        }
        E::decode_body(&mut self.r).ok()
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a, E: ListedEntry<'a>> ExactSizeIterator for DirListIter<'a, E> {}

/// Builds a `READDIRPLUS3res` (success arm) in place, stopping before the client's limits.
///
/// `maxcount` bounds the bytes of the whole result body from `begin` to `finish` (the RPC
/// header the caller wrote before is not counted); `dircount` bounds the directory part of
/// the entries (`value_follows`, fileid, name, cookie), as RFC 1813 describes it. A server that
/// cannot fit even one entry should answer `NFS3ERR_TOOSMALL` instead
/// ([`ReaddirPlusReplyEncoder::encode_fail`]).
#[derive(Debug)]
pub struct ReaddirPlusReplyEncoder {
    body_start: usize,
    dir_bytes: usize,
    dircount: usize,
    maxcount: usize,
    entry_count: usize,
}

impl ReaddirPlusReplyEncoder {
    /// Bytes `finish` appends: the final `value_follows` and `eof`.
    const TRAILER_BYTES: usize = 8;

    pub fn begin(
        buf: &mut Vec<u8>,
        dir_attrs: Option<&Fattr3>,
        cookieverf: [u8; NFS3_COOKIEVERFSIZE],
        dircount: u32,
        maxcount: u32,
    ) -> Self {
        let body_start = buf.len();
        let mut w = XdrWriter::new(buf);
        w.u32(Nfsstat3::Ok.as_u32());
        encode_post_op_attr(&mut w, dir_attrs);
        w.opaque_fixed(&cookieverf);
        ReaddirPlusReplyEncoder {
            body_start,
            dir_bytes: 0,
            dircount: dircount as usize,
            maxcount: maxcount as usize,
            entry_count: 0,
        }
    }

    /// Appends one entry; returns false, writing nothing, when it would exceed `dircount` or
    /// `maxcount`. Names must be at most [`ENTRY_NAME_BYTES_MAX`] bytes.
    pub fn push(&mut self, buf: &mut Vec<u8>, entry: &DirEntryPlus<'_>) -> bool {
        let dir_bytes = dir_entry_wire_bytes(entry.name.len());
        let fh_bytes = entry.fh.map_or(0, |fh| 4 + fh.len() + pad_len(fh.len()));
        let entry_bytes = dir_bytes + 4 + entry.attrs.map_or(0, |_| FATTR3_BYTES) + 4 + fh_bytes;
        let body_bytes = buf.len().saturating_sub(self.body_start);
        if self.dir_bytes + dir_bytes > self.dircount
            || body_bytes + entry_bytes + Self::TRAILER_BYTES > self.maxcount
        {
            return false;
        }
        let mut w = XdrWriter::new(buf);
        w.bool(true);
        entry.encode_body(&mut w);
        self.dir_bytes += dir_bytes;
        self.entry_count += 1;
        true
    }

    pub fn entry_count(&self) -> usize {
        self.entry_count
    }

    /// Ends the entry list.
    pub fn finish(self, buf: &mut Vec<u8>, eof: bool) {
        XdrWriter::new(buf).bool(false).bool(eof);
    }

    /// Encodes a failed `READDIRPLUS3res` (status and the directory's attributes).
    pub fn encode_fail(buf: &mut Vec<u8>, status: Nfsstat3, dir_attrs: Option<&Fattr3>) {
        NfsRes::<ReaddirPlusReply<'_>>::encode_fail(&mut XdrWriter::new(buf), status, dir_attrs);
    }
}

// ---------------------------------------------------------------------------------------------
// READDIR
// ---------------------------------------------------------------------------------------------

/// One `entry3`, borrowing its name from the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirEntry<'a> {
    pub fileid: u64,
    pub name: &'a [u8],
    pub cookie: u64,
}

impl<'a> ListedEntry<'a> for DirEntry<'a> {
    #[inline]
    fn decode_body(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(DirEntry {
            fileid: r.u64()?,
            name: r.string(ENTRY_NAME_BYTES_MAX)?,
            cookie: r.u64()?,
        })
    }

    #[inline]
    fn encode_body(&self, w: &mut XdrWriter<'_>) {
        w.u64(self.fileid).string(self.name).u64(self.cookie);
    }

    #[inline]
    fn cookie(&self) -> u64 {
        self.cookie
    }
}

/// A decoded `READDIR3resok`.
pub type ReaddirReply<'a> = DirListReply<'a, DirEntry<'a>>;
/// Iterator over the entries of a [`ReaddirReply`].
pub type DirEntryIter<'a> = DirListIter<'a, DirEntry<'a>>;

/// Builds a `READDIR3res` (success arm) in place. `count` bounds the bytes of the whole result
/// body from `begin` to `finish`.
#[derive(Debug)]
pub struct ReaddirReplyEncoder {
    body_start: usize,
    count: usize,
    entry_count: usize,
}

impl ReaddirReplyEncoder {
    const TRAILER_BYTES: usize = 8;

    pub fn begin(
        buf: &mut Vec<u8>,
        dir_attrs: Option<&Fattr3>,
        cookieverf: [u8; NFS3_COOKIEVERFSIZE],
        count: u32,
    ) -> Self {
        let body_start = buf.len();
        let mut w = XdrWriter::new(buf);
        w.u32(Nfsstat3::Ok.as_u32());
        encode_post_op_attr(&mut w, dir_attrs);
        w.opaque_fixed(&cookieverf);
        ReaddirReplyEncoder {
            body_start,
            count: count as usize,
            entry_count: 0,
        }
    }

    /// Appends one entry; returns false, writing nothing, when it would exceed `count`.
    pub fn push(&mut self, buf: &mut Vec<u8>, entry: &DirEntry<'_>) -> bool {
        let entry_bytes = dir_entry_wire_bytes(entry.name.len());
        let body_bytes = buf.len().saturating_sub(self.body_start);
        if body_bytes + entry_bytes + Self::TRAILER_BYTES > self.count {
            return false;
        }
        let mut w = XdrWriter::new(buf);
        w.bool(true);
        entry.encode_body(&mut w);
        self.entry_count += 1;
        true
    }

    pub fn entry_count(&self) -> usize {
        self.entry_count
    }

    pub fn finish(self, buf: &mut Vec<u8>, eof: bool) {
        XdrWriter::new(buf).bool(false).bool(eof);
    }

    /// Encodes a failed `READDIR3res` (status and the directory's attributes).
    pub fn encode_fail(buf: &mut Vec<u8>, status: Nfsstat3, dir_attrs: Option<&Fattr3>) {
        NfsRes::<ReaddirReply<'_>>::encode_fail(&mut XdrWriter::new(buf), status, dir_attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `fattr3` written out field by field (RFC 1813 section 2.6).
    #[rustfmt::skip]
    fn fattr3_bytes(ftype: u8, fileid: u8) -> Vec<u8> {
        [
            &[0, 0, 0, ftype][..],              // type
            &[0, 0, 0x81, 0xed],                // mode 0o100755 (type bits included)
            &[0, 0, 0, 2],                      // nlink
            &[0, 0, 0x03, 0xe8],                // uid 1000
            &[0, 0, 0, 100],                    // gid
            &[0, 0, 0, 1, 0, 0, 0, 0],          // size 4 GiB
            &[0, 0, 0, 0, 0, 0, 0x10, 0],       // used 4096
            &[0, 0, 0, 8], &[0, 0, 0, 1],       // rdev 8:1
            &[0, 0, 0, 0, 0, 0, 0, 0x2a],       // fsid 42
            &[0, 0, 0, 0, 0, 0, 0, fileid],     // fileid
            &[0x65, 0x53, 0xf1, 0x00], &[0, 0, 0, 1],          // atime 1700000000.000000001
            &[0x65, 0x53, 0xf1, 0x01], &[0x3b, 0x9a, 0xc9, 0xff], // mtime 1700000001.999999999
            &[0, 0, 0, 0], &[0, 0, 0, 0],       // ctime 0
        ].concat()
    }

    fn fattr3_value(ftype: FileType3, fileid: u64) -> Fattr3 {
        Fattr3 {
            ftype,
            mode: 0o100755,
            nlink: 2,
            uid: 1000,
            gid: 100,
            size: 1 << 32,
            used: 4096,
            rdev: SpecData3 { major: 8, minor: 1 },
            fsid: 42,
            fileid,
            atime: NfsTime3 {
                seconds: 1_700_000_000,
                nseconds: 1,
            },
            mtime: NfsTime3 {
                seconds: 1_700_000_001,
                nseconds: 999_999_999,
            },
            ctime: NfsTime3::default(),
        }
    }

    fn be(v: u32) -> [u8; 4] {
        v.to_be_bytes()
    }

    #[test]
    fn getattr_reply_with_full_fattr3() {
        let mut bytes = be(0).to_vec(); // NFS3_OK
        bytes.extend(fattr3_bytes(1, 7));
        assert_eq!(bytes.len(), 4 + FATTR3_BYTES);
        let attrs = GetattrReply::decode(&bytes).unwrap();
        assert_eq!(attrs, fattr3_value(FileType3::Reg, 7));

        let e = attrs.to_entry_attrs();
        assert_eq!(e.kind, EntryType::File);
        assert_eq!(e.mode, 0o755, "file type bits are masked off");
        assert_eq!(e.atime_ns, 1_700_000_000_000_000_001);
        assert_eq!(e.mtime_ns, 1_700_000_001_999_999_999);
        assert_eq!((e.size, e.used, e.fsid, e.fileid), (1 << 32, 4096, 42, 7));

        let mut out = Vec::new();
        GetattrReply::encode_ok(&mut XdrWriter::new(&mut out), &attrs);
        assert_eq!(out, bytes);
    }

    #[test]
    fn getattr_failure_has_no_attributes() {
        let bytes = be(70); // NFS3ERR_STALE
        assert_eq!(
            GetattrReply::decode(&bytes),
            Err(NfsReplyError::Status(Nfsstat3::Stale))
        );
        assert_eq!(
            GetattrReply::decode_result(&bytes),
            Ok(Err(ResFail {
                status: Nfsstat3::Stale,
                attrs: None
            }))
        );
        let mut out = Vec::new();
        GetattrReply::encode_fail(
            &mut XdrWriter::new(&mut out),
            Nfsstat3::Stale,
            Some(&fattr3_value(FileType3::Dir, 1)),
        );
        assert_eq!(out, bytes, "GETATTR3resfail is void");
    }

    #[test]
    fn getattr_reply_errors() {
        let mut good = be(0).to_vec();
        good.extend(fattr3_bytes(2, 9));
        // truncated anywhere
        for cut in 0..good.len() {
            assert!(
                matches!(
                    GetattrReply::decode(&good[..cut]),
                    Err(NfsReplyError::Xdr(XdrError::Truncated { .. }))
                ),
                "cut at {cut}"
            );
        }
        // unknown file type
        for bad_type in [0u8, 8, 255] {
            let mut bytes = good.clone();
            bytes[7] = bad_type;
            assert_eq!(
                GetattrReply::decode(&bytes),
                Err(NfsReplyError::Xdr(XdrError::BadDiscriminant(
                    bad_type as u32
                )))
            );
        }
        // trailing bytes
        let mut bytes = good.clone();
        bytes.extend_from_slice(&[0; 4]);
        assert_eq!(
            GetattrReply::decode(&bytes),
            Err(NfsReplyError::Xdr(XdrError::TrailingBytes(4)))
        );
    }

    #[test]
    fn lookup_reply_success_and_failure_with_dir_attrs() {
        #[rustfmt::skip]
        let ok: Vec<u8> = [
            &be(0)[..],                        // NFS3_OK
            &be(3), &[0xaa, 0xbb, 0xcc, 0],    // object handle, 3 bytes + pad
            &be(1), &fattr3_bytes(5, 11),      // obj_attributes: symlink
            &be(0),                            // dir_attributes absent
        ].concat();
        let res = LookupReply::decode(&ok).unwrap();
        assert_eq!(res.fh.as_bytes(), &[0xaa, 0xbb, 0xcc]);
        assert_eq!(res.obj_attrs, Some(fattr3_value(FileType3::Lnk, 11)));
        assert_eq!(res.dir_attrs, None);
        let mut out = Vec::new();
        LookupReply::encode_ok(&mut XdrWriter::new(&mut out), &res);
        assert_eq!(out, ok);

        #[rustfmt::skip]
        let fail: Vec<u8> = [
            &be(2)[..],                        // NFS3ERR_NOENT
            &be(1), &fattr3_bytes(2, 1),       // dir_attributes
        ].concat();
        assert_eq!(
            LookupReply::decode(&fail).unwrap_err(),
            NfsReplyError::Status(Nfsstat3::Noent)
        );
        let full = LookupReply::decode_result(&fail).unwrap().unwrap_err();
        assert_eq!(full.status, Nfsstat3::Noent);
        assert_eq!(full.attrs, Some(fattr3_value(FileType3::Dir, 1)));
        let mut out = Vec::new();
        LookupReply::encode_result(&mut XdrWriter::new(&mut out), &Err(full));
        assert_eq!(out, fail);
    }

    #[test]
    fn over_long_handle_is_rejected() {
        let mut bytes = be(0).to_vec();
        bytes.extend(be(65));
        bytes.extend([7u8; 68]);
        bytes.extend(be(0));
        bytes.extend(be(0));
        assert_eq!(
            LookupReply::decode(&bytes),
            Err(NfsReplyError::Xdr(XdrError::TooLong { len: 65, max: 64 }))
        );
        let max = FileHandle::from_bytes(&[9; 64]).unwrap();
        assert_eq!(FileHandle::from_xdr(&max.to_xdr()), Ok(max));
        // An NFSv4 handle is held, and read back as either version's, not as NFSv3's.
        assert!(FileHandle::from_bytes(&[0; 129]).is_none());
        let v4 = FileHandle::from_bytes(&[9; 128]).unwrap();
        let xdr = v4.to_xdr();
        assert_eq!(FileHandle::decode_any(&mut XdrReader::new(&xdr)), Ok(v4));
        assert_eq!(
            FileHandle::from_xdr(&xdr),
            Err(XdrError::TooLong { len: 128, max: 64 })
        );
    }

    #[test]
    fn bad_bool_in_post_op_attr() {
        let bytes = [be(0), be(3), *b"abc\0", be(2)].concat();
        assert_eq!(
            LookupReply::decode(&bytes),
            Err(NfsReplyError::Xdr(XdrError::BadBool(2)))
        );
    }

    /// RFC 1813 section 3.3.17: READDIRPLUS3resok with two entries, the second without
    /// attributes or handle, and eof.
    #[rustfmt::skip]
    fn readdirplus_two_entries() -> Vec<u8> {
        [
            &be(0)[..],                           // NFS3_OK
            &be(1), &fattr3_bytes(2, 1),          // dir_attributes
            &[1, 2, 3, 4, 5, 6, 7, 8],            // cookieverf
            &be(1),                               // value_follows
            &[0, 0, 0, 0, 0, 0, 0, 10],           //   fileid 10
            &be(5), b"alpha\0\0\0",               //   name
            &[0, 0, 0, 0, 0, 0, 0, 0x64],         //   cookie 100
            &be(1), &fattr3_bytes(1, 10),         //   name_attributes
            &be(1), &be(8), &[0xf0; 8],           //   name_handle, 8 bytes
            &be(1),                               // value_follows
            &[0, 0, 0, 0, 0, 0, 0, 11],           //   fileid 11
            &be(4), b"beta",                      //   name
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // cookie u64::MAX
            &be(0),                               //   no attributes
            &be(0),                               //   no handle
            &be(0),                               // no more entries
            &be(1),                               // eof
        ].concat()
    }

    #[test]
    fn readdirplus_reply_two_entries_eof() {
        let bytes = readdirplus_two_entries();
        let reply = ReaddirPlusReply::decode(&bytes).unwrap();
        assert_eq!(reply.dir_attrs, Some(fattr3_value(FileType3::Dir, 1)));
        assert_eq!(reply.cookieverf, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(reply.eof);
        assert_eq!(reply.entry_count, 2);
        let entries: Vec<_> = reply.entries().collect();
        assert_eq!(reply.entries().len(), 2);
        assert_eq!(
            entries,
            vec![
                DirEntryPlus {
                    fileid: 10,
                    name: b"alpha",
                    cookie: 100,
                    attrs: Some(fattr3_value(FileType3::Reg, 10)),
                    fh: FileHandle::from_bytes(&[0xf0; 8]),
                },
                DirEntryPlus {
                    fileid: 11,
                    name: b"beta",
                    cookie: u64::MAX,
                    attrs: None,
                    fh: None,
                },
            ]
        );
        assert_eq!(reply.last_cookie(), Some(u64::MAX));
        // names borrow from the reply
        let name_ptr = entries[0].name.as_ptr() as usize;
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        assert!(range.contains(&name_ptr));

        // re-encoding gives the same bytes
        let mut out = Vec::new();
        NfsRes::<ReaddirPlusReply>::encode_ok(&mut XdrWriter::new(&mut out), &reply);
        assert_eq!(out, bytes);

        // the server-side encoder produces the same bytes
        let mut out = Vec::new();
        let dir = fattr3_value(FileType3::Dir, 1);
        let mut enc = ReaddirPlusReplyEncoder::begin(
            &mut out,
            Some(&dir),
            [1, 2, 3, 4, 5, 6, 7, 8],
            4096,
            65536,
        );
        for e in &entries {
            assert!(enc.push(&mut out, e));
        }
        assert_eq!(enc.entry_count(), 2);
        enc.finish(&mut out, true);
        assert_eq!(out, bytes);
    }

    #[test]
    fn a_detached_listing_attaches_to_a_copy_of_its_bytes() {
        let bytes = readdirplus_two_entries();
        let reply = ReaddirPlusReply::decode(&bytes).unwrap();
        let view = reply
            .detach(&bytes)
            .expect("the entries lie within the bytes");
        assert_eq!(reply.detach(&bytes[..8]), None, "not within these bytes");
        let copy = bytes.clone();
        let again: ReaddirPlusReply = view.attach(&copy).unwrap();
        assert_eq!(
            (
                again.dir_attrs,
                again.cookieverf,
                again.eof,
                again.last_cookie()
            ),
            (
                reply.dir_attrs,
                reply.cookieverf,
                reply.eof,
                reply.last_cookie()
            )
        );
        assert_eq!(
            again.entries().collect::<Vec<_>>(),
            reply.entries().collect::<Vec<_>>()
        );
        assert!(view
            .attach::<DirEntryPlus>(&copy[..copy.len() - 12])
            .is_none());
    }

    #[test]
    fn readdirplus_reply_errors() {
        let good = readdirplus_two_entries();
        for cut in 0..good.len() {
            assert!(
                ReaddirPlusReply::decode(&good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // bad value_follows of the second entry
        let second_flag = 4 + 4 + FATTR3_BYTES + 8 + 4 + 8 + 12 + 8 + 4 + FATTR3_BYTES + 4 + 12;
        assert_eq!(&good[second_flag..second_flag + 4], &be(1));
        let mut bytes = good.clone();
        bytes[second_flag + 3] = 7;
        assert_eq!(
            ReaddirPlusReply::decode(&bytes),
            Err(NfsReplyError::Xdr(XdrError::BadBool(7)))
        );
        // bad eof
        let mut bytes = good.clone();
        let n = bytes.len();
        bytes[n - 1] = 2;
        assert_eq!(
            ReaddirPlusReply::decode(&bytes),
            Err(NfsReplyError::Xdr(XdrError::BadBool(2)))
        );
        // a name longer than ENTRY_NAME_BYTES_MAX
        let mut bytes = good[..4 + 4 + FATTR3_BYTES + 8 + 4 + 8].to_vec();
        bytes.extend(be(4097));
        bytes.extend(vec![b'x'; 4100]);
        assert_eq!(
            ReaddirPlusReply::decode(&bytes),
            Err(NfsReplyError::Xdr(XdrError::TooLong {
                len: 4097,
                max: 4096
            }))
        );
        // unknown file type in an entry's attributes
        let mut bytes = good.clone();
        let entry_attrs_type = 4 + 4 + FATTR3_BYTES + 8 + 4 + 8 + 12 + 8 + 4;
        assert_eq!(&bytes[entry_attrs_type..entry_attrs_type + 4], &be(1));
        bytes[entry_attrs_type + 3] = 9;
        assert_eq!(
            ReaddirPlusReply::decode(&bytes),
            Err(NfsReplyError::Xdr(XdrError::BadDiscriminant(9)))
        );
    }

    #[test]
    fn readdirplus_failure_keeps_dir_attrs() {
        let mut out = Vec::new();
        let dir = fattr3_value(FileType3::Dir, 3);
        ReaddirPlusReplyEncoder::encode_fail(&mut out, Nfsstat3::BadCookie, Some(&dir));
        assert_eq!(&out[..8], &[0, 0, 0x27, 0x13, 0, 0, 0, 1]);
        assert_eq!(
            ReaddirPlusReply::decode(&out),
            Err(NfsReplyError::Status(Nfsstat3::BadCookie))
        );
        assert_eq!(
            ReaddirPlusReply::decode_result(&out),
            Ok(Err(ResFail {
                status: Nfsstat3::BadCookie,
                attrs: Some(dir)
            }))
        );
    }

    #[test]
    fn readdirplus_encoder_respects_maxcount_and_dircount() {
        let attrs = fattr3_value(FileType3::Reg, 5);
        let fh = FileHandle::from_bytes(&[1; 32]).unwrap();
        let entry = |i: u64| DirEntryPlus {
            fileid: i,
            name: b"file-name",
            cookie: i + 1,
            attrs: Some(attrs),
            fh: Some(fh),
        };
        // header: status 4 + post_op_attr 4 (absent) + verf 8 = 16; trailer 8
        // entry: dir part 4 + 8 + 4 + 12 + 8 = 36; attrs 4 + 84; fh 4 + 4 + 32 -> 164
        for maxcount in [0u32, 23, 24, 187, 188, 351, 352, 1000] {
            let mut buf = vec![0xee; 40]; // an RPC header written before
            let mut enc = ReaddirPlusReplyEncoder::begin(&mut buf, None, [0; 8], 65536, maxcount);
            let mut i = 0;
            while enc.push(&mut buf, &entry(i)) {
                i += 1;
            }
            let n = enc.entry_count();
            enc.finish(&mut buf, false);
            let body = &buf[40..];
            assert!(
                body.len() <= (maxcount as usize).max(24),
                "maxcount {maxcount}"
            );
            assert_eq!(n, (maxcount as usize).saturating_sub(24) / 164);
            let reply = ReaddirPlusReply::decode(body).unwrap();
            assert_eq!(reply.entry_count, n);
            assert!(reply
                .entries()
                .enumerate()
                .all(|(i, e)| e == entry(i as u64)));
        }
        for dircount in [0u32, 35, 36, 71, 72] {
            let mut buf = Vec::new();
            let mut enc = ReaddirPlusReplyEncoder::begin(&mut buf, None, [0; 8], dircount, 1 << 20);
            let mut i = 0;
            while enc.push(&mut buf, &entry(i)) {
                i += 1;
            }
            assert_eq!(
                enc.entry_count(),
                dircount as usize / 36,
                "dircount {dircount}"
            );
        }
    }

    #[test]
    fn readdir_reply_layout_and_encoder() {
        #[rustfmt::skip]
        let bytes: Vec<u8> = [
            &be(0)[..],                             // NFS3_OK
            &be(0),                                 // no dir_attributes
            &[0; 8],                                // cookieverf
            &be(1), &[0, 0, 0, 0, 0, 0, 0, 2], &be(1), b".\0\0\0", &[0, 0, 0, 0, 0, 0, 0, 1],
            &be(1), &[0, 0, 0, 0, 0, 0, 0, 3], &be(5), b"\xffname\0\0\0", &[0, 0, 0, 0, 0, 0, 0, 2],
            &be(0),                                 // end of list
            &be(0),                                 // not eof
        ].concat();
        let reply = ReaddirReply::decode(&bytes).unwrap();
        assert_eq!(reply.dir_attrs, None);
        assert!(!reply.eof);
        let entries: Vec<_> = reply.entries().collect();
        assert_eq!(
            entries,
            vec![
                DirEntry {
                    fileid: 2,
                    name: b".",
                    cookie: 1
                },
                DirEntry {
                    fileid: 3,
                    name: b"\xffname",
                    cookie: 2
                },
            ]
        );
        assert_eq!(reply.last_cookie(), Some(2));

        let mut out = Vec::new();
        let mut enc = ReaddirReplyEncoder::begin(&mut out, None, [0; 8], bytes.len() as u32);
        for e in &entries {
            assert!(enc.push(&mut out, e));
        }
        // one more would exceed `count`
        assert!(!enc.push(&mut out, &entries[0]));
        enc.finish(&mut out, false);
        assert_eq!(out, bytes);

        // an empty, final listing
        let mut out = Vec::new();
        ReaddirReplyEncoder::begin(&mut out, None, [0; 8], 100).finish(&mut out, true);
        let reply = ReaddirReply::decode(&out).unwrap();
        assert_eq!((reply.entry_count, reply.eof), (0, true));
        assert_eq!(reply.entries().next(), None);
    }

    #[test]
    fn args_layouts() {
        let dir = FileHandle::from_bytes(&[1, 2, 3, 4, 5]).unwrap();
        let lookup = LookupArgs { dir, name: b"etc" };
        assert_eq!(
            lookup.to_xdr(),
            [&be(5)[..], &[1, 2, 3, 4, 5, 0, 0, 0], &be(3), b"etc\0"].concat()
        );
        assert_eq!(LookupArgs::from_xdr(&lookup.to_xdr()), Ok(lookup));
        // names up to ARG_NAME_BYTES_MAX decode (the server answers NAMETOOLONG)
        let long = vec![b'n'; 1024];
        let args = LookupArgs { dir, name: &long };
        assert_eq!(LookupArgs::from_xdr(&args.to_xdr()), Ok(args));
        let longer = vec![b'n'; 1025];
        assert_eq!(
            LookupArgs::from_xdr(&LookupArgs { dir, name: &longer }.to_xdr()),
            Err(XdrError::TooLong {
                len: 1025,
                max: 1024
            })
        );

        let rdp = ReaddirPlusArgs {
            dir,
            cookie: 0x0102030405060708,
            cookieverf: [9; 8],
            dircount: 65536,
            maxcount: 1 << 20,
        };
        #[rustfmt::skip]
        let expected = [
            &be(5)[..], &[1, 2, 3, 4, 5, 0, 0, 0],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            &[9; 8],
            &[0, 1, 0, 0], &[0, 0x10, 0, 0],
        ].concat();
        assert_eq!(rdp.to_xdr(), expected);
        assert_eq!(ReaddirPlusArgs::from_xdr(&expected), Ok(rdp));

        let access = AccessArgs {
            fh: dir,
            access: ACCESS3_READ | ACCESS3_LOOKUP,
        };
        assert_eq!(&access.to_xdr()[12..], &be(3));
        assert_eq!(
            GetattrArgs::from_xdr(&GetattrArgs { fh: dir }.to_xdr()),
            Ok(GetattrArgs { fh: dir })
        );
    }

    #[test]
    fn nfs3_call_is_record_marked() {
        let fh = FileHandle::from_bytes(&[7; 4]).unwrap();
        let cred = crate::rpc::Auth::None.to_xdr();
        let mut buf = Vec::new();
        encode_nfs3_call(&mut buf, 0x42, proc3::GETATTR, &cred, &GetattrArgs { fh });
        assert_eq!(
            &buf[..4],
            &(0x8000_0000u32 | (buf.len() as u32 - 4)).to_be_bytes()
        );
        let call = crate::rpc::msg::ReceivedCall::decode(&buf[4..]).unwrap();
        assert_eq!(
            (call.xid, call.prog, call.vers, call.proc_),
            (0x42, NFS_PROGRAM, NFS_V3, proc3::GETATTR)
        );
        assert_eq!(GetattrArgs::from_xdr(call.args), Ok(GetattrArgs { fh }));
    }

    #[test]
    fn status_codes_and_messages() {
        assert_eq!(Nfsstat3::ALL.len(), 29);
        for &s in Nfsstat3::ALL {
            assert_eq!(Nfsstat3::from_u32(s.as_u32()), s);
            assert!(s.name().starts_with("NFS3"));
        }
        assert_eq!(Nfsstat3::from_u32(13), Nfsstat3::Acces);
        assert_eq!(Nfsstat3::from_u32(10008), Nfsstat3::Jukebox);
        assert_eq!(Nfsstat3::from_u32(4), Nfsstat3::Other(4));
        assert_eq!(
            Nfs3Error(Nfsstat3::Acces).to_string(),
            "NFS3ERR_ACCES: permission denied"
        );
        assert_eq!(
            NfsReplyError::Status(Nfsstat3::Stale).to_string(),
            "NFS3ERR_STALE: stale file handle"
        );
        assert!(Nfs3Error(Nfsstat3::Other(77)).to_string().contains("77"));
        assert!(Nfsstat3::Jukebox.is_transient());
        assert!(!Nfsstat3::Io.is_transient());
    }

    #[test]
    fn modifying_procs_answer_rofs() {
        let cases = [
            (proc3::SETATTR, 8),
            (proc3::WRITE, 8),
            (proc3::CREATE, 8),
            (proc3::MKDIR, 8),
            (proc3::SYMLINK, 8),
            (proc3::MKNOD, 8),
            (proc3::REMOVE, 8),
            (proc3::RMDIR, 8),
            (proc3::RENAME, 16),
            (proc3::LINK, 12),
            (proc3::COMMIT, 8),
        ];
        for (p, body_bytes) in cases {
            assert!(is_modifying_proc(p));
            let mut out = Vec::new();
            assert!(encode_modifying_proc_fail(
                &mut XdrWriter::new(&mut out),
                p,
                Nfsstat3::Rofs
            ));
            assert_eq!(&out[..4], &be(30), "{}", proc_name(p));
            assert_eq!(out.len(), 4 + body_bytes, "{}", proc_name(p));
            assert!(out[4..].iter().all(|&b| b == 0));
        }
        for p in [
            proc3::NULL,
            proc3::GETATTR,
            proc3::READDIRPLUS,
            proc3::READ,
            22,
        ] {
            assert!(!is_modifying_proc(p));
            let mut out = Vec::new();
            assert!(!encode_modifying_proc_fail(
                &mut XdrWriter::new(&mut out),
                p,
                Nfsstat3::Rofs
            ));
            assert!(out.is_empty());
        }
        assert_eq!(proc_name(proc3::READDIRPLUS), "readdirplus");
        assert_eq!(proc_name(99), "unknown");
    }

    #[test]
    fn fsinfo_fsstat_pathconf_readlink_access_layouts() {
        #[rustfmt::skip]
        let fsinfo: Vec<u8> = [
            &be(0)[..], &be(0),
            &be(1 << 20), &be(1 << 20), &be(4096),   // rtmax, rtpref, rtmult
            &be(1 << 20), &be(1 << 20), &be(4096),   // wtmax, wtpref, wtmult
            &be(1 << 16),                            // dtpref
            &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // maxfilesize
            &be(0), &be(1),                          // time_delta 1 ns
            &be(FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME),
        ].concat();
        let info = FsinfoReply::decode(&fsinfo).unwrap();
        assert_eq!(info.dtpref, 65536);
        assert_eq!(info.maxfilesize, i64::MAX as u64);
        assert_eq!(info.time_delta.to_ns(), 1);
        assert_eq!(info.properties, 0x1b);
        let mut out = Vec::new();
        FsinfoReply::encode_ok(&mut XdrWriter::new(&mut out), &info);
        assert_eq!(out, fsinfo);

        #[rustfmt::skip]
        let fsstat: Vec<u8> = [
            &be(0)[..], &be(0),
            &[0, 0, 0, 0, 0, 0, 0, 1], &[0, 0, 0, 0, 0, 0, 0, 2], &[0, 0, 0, 0, 0, 0, 0, 3],
            &[0, 0, 0, 0, 0, 0, 0, 4], &[0, 0, 0, 0, 0, 0, 0, 5], &[0, 0, 0, 0, 0, 0, 0, 6],
            &be(0),
        ].concat();
        let st = FsstatReply::decode(&fsstat).unwrap();
        assert_eq!(
            (st.tbytes, st.fbytes, st.abytes, st.tfiles, st.ffiles, st.afiles),
            (1, 2, 3, 4, 5, 6)
        );

        let pathconf = [be(0), be(0), be(32000), be(255), be(1), be(0), be(0), be(1)].concat();
        let pc = PathconfReply::decode(&pathconf).unwrap();
        assert_eq!((pc.linkmax, pc.name_max), (32000, 255));
        assert!(pc.no_trunc && !pc.chown_restricted && !pc.case_insensitive && pc.case_preserving);
        let mut bad = pathconf.clone();
        bad[23] = 3;
        assert_eq!(
            PathconfReply::decode(&bad),
            Err(NfsReplyError::Xdr(XdrError::BadBool(3)))
        );

        let readlink = [&be(0)[..], &be(0), &be(6), b"../tgt\0\0"].concat();
        let rl = ReadlinkReply::decode(&readlink).unwrap();
        assert_eq!(rl.target, b"../tgt");
        let mut too_long = [be(0), be(0), be(4097)].concat();
        too_long.extend(vec![b'a'; 4100]);
        assert_eq!(
            ReadlinkReply::decode(&too_long),
            Err(NfsReplyError::Xdr(XdrError::TooLong {
                len: 4097,
                max: 4096
            }))
        );

        let access = [be(0), be(0), be(ACCESS3_READ | ACCESS3_EXECUTE)].concat();
        assert_eq!(
            AccessReply::decode(&access),
            Ok(AccessOk {
                attrs: None,
                access: 0x21
            })
        );
    }

    #[test]
    fn read_layouts() {
        let file = FileHandle::from_bytes(&[7, 7, 7]).unwrap();
        let args = ReadArgs {
            file,
            offset: 0x0000_0001_0000_0002,
            count: 65536,
        };
        #[rustfmt::skip]
        let expected = [
            &be(3)[..], &[7, 7, 7, 0],          // nfs_fh3, padded
            &[0, 0, 0, 1, 0, 0, 0, 2],          // offset3
            &be(65536),                         // count3
        ].concat();
        assert_eq!(args.to_xdr(), expected);
        assert_eq!(ReadArgs::from_xdr(&expected), Ok(args));
        assert!(ReadArgs::from_xdr(&expected[..expected.len() - 1]).is_err());

        let attrs = fattr3_value(FileType3::Reg, 9);
        #[rustfmt::skip]
        let reply: Vec<u8> = [
            &be(0)[..],                         // NFS3_OK
            &be(1), &fattr3_bytes(1, 9),        // file_attributes
            &be(5),                             // count
            &be(1),                             // eof
            &be(5), b"hello\0\0\0",             // data, padded to 8
        ].concat();
        let ok = ReadReply::decode(&reply).unwrap();
        assert_eq!(ok.attrs, Some(attrs));
        assert_eq!((ok.count, ok.eof, ok.data), (5, true, &b"hello"[..]));
        assert!(ok.count_matches());
        // zero-copy: the data is a slice of the reply
        let at = reply.len() - 8;
        assert_eq!(ok.data.as_ptr(), reply[at..].as_ptr());
        let mut out = Vec::new();
        ReadReply::encode_ok(&mut XdrWriter::new(&mut out), &ok);
        assert_eq!(out, reply);
        let mut out = Vec::new();
        encode_read_ok_with(&mut out, Some(&attrs), 5, true, |b| {
            b.copy_from_slice(b"hello")
        });
        assert_eq!(out, reply);
        for cut in 0..reply.len() {
            assert!(ReadReply::decode(&reply[..cut]).is_err(), "cut at {cut}");
        }
        // a count that disagrees with the data is kept for the reader to judge
        let mut bad = reply.clone();
        bad[4 + 4 + FATTR3_BYTES + 3] = 9;
        assert!(!ReadReply::decode(&bad).unwrap().count_matches());
        // data longer than any record is refused before it is used
        let mut huge = reply[..4 + 4 + FATTR3_BYTES + 8].to_vec();
        huge.extend(be(READ_DATA_BYTES_MAX + 1));
        assert_eq!(
            ReadReply::decode(&huge),
            Err(NfsReplyError::Xdr(XdrError::TooLong {
                len: READ_DATA_BYTES_MAX + 1,
                max: READ_DATA_BYTES_MAX
            }))
        );
        // an empty read at end of file, without attributes
        let empty = [be(0), be(0), be(0), be(1), be(0)].concat();
        let ok = ReadReply::decode(&empty).unwrap();
        assert_eq!(
            (ok.attrs, ok.count, ok.eof, ok.data),
            (None, 0, true, &b""[..])
        );
        // a failure keeps the file's attributes
        let mut out = Vec::new();
        ReadReply::encode_fail(&mut XdrWriter::new(&mut out), Nfsstat3::Acces, Some(&attrs));
        assert_eq!(&out[..8], &[0, 0, 0, 13, 0, 0, 0, 1]);
        assert_eq!(
            ReadReply::decode(&out),
            Err(NfsReplyError::Status(Nfsstat3::Acces))
        );
        assert_eq!(
            ReadReply::decode_result(&out),
            Ok(Err(ResFail {
                status: Nfsstat3::Acces,
                attrs: Some(attrs)
            }))
        );
    }

    #[test]
    fn file_handle_debug_and_identity() {
        let a = FileHandle::from_bytes(&[0xde, 0xad]).unwrap();
        assert_eq!(format!("{a:?}"), "FileHandle(dead)");
        let b = FileHandle::from_bytes(&[0xde, 0xad, 0]).unwrap();
        assert_ne!(a, b, "length is part of a handle's identity");
        assert_eq!(FileHandle::default(), FileHandle::EMPTY);
        assert!(FileHandle::EMPTY.is_empty());
    }
}
