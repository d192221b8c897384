//! The MOUNT version 3 protocol (RFC 1813 appendix I): how a client turns an export path into
//! the root file handle, and lists what a server exports.

use crate::rpc::nfs3::{FileHandle, NFS3_FHSIZE};
use crate::xdr::{XdrDecode, XdrEncode, XdrError, XdrReader, XdrResult, XdrWriter};
use std::fmt;
use thiserror::Error;

pub const MOUNT_PROGRAM: u32 = 100005;
pub const MOUNT_V3: u32 = 3;

/// MOUNTv3 procedure numbers.
pub mod mountproc3 {
    pub const NULL: u32 = 0;
    pub const MNT: u32 = 1;
    pub const DUMP: u32 = 2;
    pub const UMNT: u32 = 3;
    pub const UMNTALL: u32 = 4;
    pub const EXPORT: u32 = 5;
}

/// Longest export path (`dirpath`).
pub const MNTPATHLEN: u32 = 1024;
/// Longest host or group name (`name`).
pub const MNTNAMLEN: u32 = 255;
/// Most security flavors accepted in a MNT reply (servers send a handful).
pub const AUTH_FLAVORS_MAX: u32 = 64;
/// Most exports accepted in an EXPORT reply.
pub const EXPORTS_MAX: usize = 65536;
/// Most groups accepted per export.
pub const EXPORT_GROUPS_MAX: usize = 1024;

/// `mountstat3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mountstat3 {
    Ok,
    Perm,
    Noent,
    Io,
    Acces,
    Notdir,
    Inval,
    Nametoolong,
    Notsupp,
    Serverfault,
    /// A code RFC 1813 does not define.
    Other(u32),
}

impl Mountstat3 {
    pub const ALL: [Mountstat3; 10] = [
        Mountstat3::Ok,
        Mountstat3::Perm,
        Mountstat3::Noent,
        Mountstat3::Io,
        Mountstat3::Acces,
        Mountstat3::Notdir,
        Mountstat3::Inval,
        Mountstat3::Nametoolong,
        Mountstat3::Notsupp,
        Mountstat3::Serverfault,
    ];

    pub fn from_u32(v: u32) -> Self {
        match v {
            0 => Mountstat3::Ok,
            1 => Mountstat3::Perm,
            2 => Mountstat3::Noent,
            5 => Mountstat3::Io,
            13 => Mountstat3::Acces,
            20 => Mountstat3::Notdir,
            22 => Mountstat3::Inval,
            63 => Mountstat3::Nametoolong,
            10004 => Mountstat3::Notsupp,
            10006 => Mountstat3::Serverfault,
            other => Mountstat3::Other(other),
        }
    }

    pub fn as_u32(self) -> u32 {
        match self {
            Mountstat3::Ok => 0,
            Mountstat3::Perm => 1,
            Mountstat3::Noent => 2,
            Mountstat3::Io => 5,
            Mountstat3::Acces => 13,
            Mountstat3::Notdir => 20,
            Mountstat3::Inval => 22,
            Mountstat3::Nametoolong => 63,
            Mountstat3::Notsupp => 10004,
            Mountstat3::Serverfault => 10006,
            Mountstat3::Other(v) => v,
        }
    }

    /// The RFC's name, e.g. "MNT3ERR_ACCES".
    pub fn name(self) -> &'static str {
        match self {
            Mountstat3::Ok => "MNT3_OK",
            Mountstat3::Perm => "MNT3ERR_PERM",
            Mountstat3::Noent => "MNT3ERR_NOENT",
            Mountstat3::Io => "MNT3ERR_IO",
            Mountstat3::Acces => "MNT3ERR_ACCES",
            Mountstat3::Notdir => "MNT3ERR_NOTDIR",
            Mountstat3::Inval => "MNT3ERR_INVAL",
            Mountstat3::Nametoolong => "MNT3ERR_NAMETOOLONG",
            Mountstat3::Notsupp => "MNT3ERR_NOTSUPP",
            Mountstat3::Serverfault => "MNT3ERR_SERVERFAULT",
            Mountstat3::Other(_) => "MNT3ERR_UNKNOWN",
        }
    }
}

impl fmt::Display for Mountstat3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            Mountstat3::Ok => "success",
            Mountstat3::Perm => "not the owner (the server refused the mount)",
            Mountstat3::Noent => "no such export or directory",
            Mountstat3::Io => "I/O error on the server",
            Mountstat3::Acces => {
                "permission denied: the export may require a privileged source port (<1024; \
                 run as root or grant CAP_NET_BIND_SERVICE, or mark the export `insecure`) \
                 or may restrict which clients can mount it"
            }
            Mountstat3::Notdir => "the export path is not a directory",
            Mountstat3::Inval => "invalid argument",
            Mountstat3::Nametoolong => "export path too long",
            Mountstat3::Notsupp => "operation not supported",
            Mountstat3::Serverfault => "server fault",
            Mountstat3::Other(v) => return write!(f, "MNT3ERR_UNKNOWN({v}): unknown mount status"),
        };
        write!(f, "{}: {msg}", self.name())
    }
}

/// Why a MNT result could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MountError {
    #[error("mount refused: {0}")]
    Status(Mountstat3),
    #[error("malformed MOUNT reply: {0}")]
    Xdr(#[from] XdrError),
}

/// `MNT` arguments: the export path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MntArgs<'a> {
    pub dirpath: &'a [u8],
}

impl XdrEncode for MntArgs<'_> {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.string(self.dirpath);
    }
}

impl<'a> XdrDecode<'a> for MntArgs<'a> {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(MntArgs {
            dirpath: r.string(MNTPATHLEN)?,
        })
    }
}

/// `UMNT` arguments: the export path.
pub type UmntArgs<'a> = MntArgs<'a>;

/// `mountres3_ok`: the root handle of the export and the security flavors it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MntReply {
    pub fh: FileHandle,
    pub auth_flavors: Vec<u32>,
}

impl MntReply {
    /// Decodes a `mountres3`; a non-OK status is [`MountError::Status`].
    pub fn decode(res: &[u8]) -> Result<Self, MountError> {
        match Self::decode_result(res)? {
            Ok(ok) => Ok(ok),
            Err(status) => Err(MountError::Status(status)),
        }
    }

    /// Decodes either arm of a `mountres3`.
    pub fn decode_result(res: &[u8]) -> XdrResult<Result<Self, Mountstat3>> {
        let mut r = XdrReader::new(res);
        let status = Mountstat3::from_u32(r.u32()?);
        let out = if status == Mountstat3::Ok {
            let fh = FileHandle::decode(&mut r)?;
            let n = r.array_len(AUTH_FLAVORS_MAX, 4)?;
            let mut auth_flavors = Vec::with_capacity(n as usize);
            for _ in 0..n {
                auth_flavors.push(r.u32()?);
            }
            Ok(MntReply { fh, auth_flavors })
        } else {
            Err(status)
        };
        r.finish()?;
        Ok(out)
    }

    /// Encodes `MNT3_OK` and this reply (at most [`AUTH_FLAVORS_MAX`] flavors are written).
    pub fn encode(&self, w: &mut XdrWriter<'_>) {
        w.u32(Mountstat3::Ok.as_u32());
        self.fh.encode(w);
        let flavors = &self.auth_flavors[..self.auth_flavors.len().min(AUTH_FLAVORS_MAX as usize)];
        w.u32(flavors.len() as u32);
        for f in flavors {
            w.u32(*f);
        }
    }

    /// Encodes a failed `mountres3`; `status` must not be `Ok`.
    pub fn encode_fail(w: &mut XdrWriter<'_>, status: Mountstat3) {
        debug_assert!(status != Mountstat3::Ok, "a failure needs a non-OK status");
        w.u32(status.as_u32());
    }
}

/// One `exportnode`: an exported path and the groups (hosts, netgroups) allowed to mount it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportEntry {
    pub dir: Vec<u8>,
    pub groups: Vec<Vec<u8>>,
}

/// The `exports` list an EXPORT call returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportList {
    pub entries: Vec<ExportEntry>,
}

impl XdrEncode for ExportList {
    /// At most [`EXPORTS_MAX`] exports with [`EXPORT_GROUPS_MAX`] groups each are written.
    fn encode(&self, w: &mut XdrWriter<'_>) {
        for e in self.entries.iter().take(EXPORTS_MAX) {
            w.bool(true).string(&e.dir);
            for g in e.groups.iter().take(EXPORT_GROUPS_MAX) {
                w.bool(true).string(g);
            }
            w.bool(false);
        }
        w.bool(false);
    }
}

impl<'a> XdrDecode<'a> for ExportList {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        // Linked lists on the wire: the vectors grow with the bytes actually present, never
        // with a count the server claims.
        let mut entries = Vec::new();
        while r.option_flag()? {
            if entries.len() == EXPORTS_MAX {
                return Err(XdrError::TooLong {
                    len: EXPORTS_MAX as u32 + 1,
                    max: EXPORTS_MAX as u32,
                });
            }
            let dir = r.string(MNTPATHLEN)?.to_vec();
            let mut groups = Vec::new();
            while r.option_flag()? {
                if groups.len() == EXPORT_GROUPS_MAX {
                    return Err(XdrError::TooLong {
                        len: EXPORT_GROUPS_MAX as u32 + 1,
                        max: EXPORT_GROUPS_MAX as u32,
                    });
                }
                groups.push(r.string(MNTNAMLEN)?.to_vec());
            }
            entries.push(ExportEntry { dir, groups });
        }
        Ok(ExportList { entries })
    }
}

// The handle size MOUNTv3 uses is NFSv3's.
const _: () = assert!(NFS3_FHSIZE == 64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnt_reply_layout() {
        #[rustfmt::skip]
        let bytes: Vec<u8> = [
            &[0, 0, 0, 0][..],          // MNT3_OK
            &[0, 0, 0, 5], &[1, 2, 3, 4, 5, 0, 0, 0], // fhandle3 opaque<64>
            &[0, 0, 0, 2], &[0, 0, 0, 1], &[0, 0, 0, 0], // auth_flavors <AUTH_SYS, AUTH_NONE>
        ].concat();
        let reply = MntReply::decode(&bytes).unwrap();
        assert_eq!(reply.fh.as_bytes(), &[1, 2, 3, 4, 5]);
        assert_eq!(reply.auth_flavors, vec![1, 0]);
        let mut out = Vec::new();
        reply.encode(&mut XdrWriter::new(&mut out));
        assert_eq!(out, bytes);
    }

    #[test]
    fn mnt_failure_is_a_typed_status_with_advice() {
        let err = MntReply::decode(&[0, 0, 0, 13]).unwrap_err();
        assert_eq!(err, MountError::Status(Mountstat3::Acces));
        let msg = err.to_string();
        assert!(msg.contains("MNT3ERR_ACCES"), "{msg}");
        assert!(msg.contains("privileged source port"), "{msg}");
        assert!(msg.contains("restrict"), "{msg}");
        assert_eq!(
            MntReply::decode_result(&[0, 0, 0x27, 0x16]).unwrap(),
            Err(Mountstat3::Serverfault)
        );
        assert_eq!(
            MntReply::decode(&[0, 0, 0, 99]).unwrap_err(),
            MountError::Status(Mountstat3::Other(99))
        );
    }

    #[test]
    fn mnt_reply_limits() {
        // handle of 65 bytes
        let mut bytes = vec![0, 0, 0, 0, 0, 0, 0, 65];
        bytes.extend_from_slice(&[0; 68]);
        bytes.extend_from_slice(&[0; 4]);
        assert_eq!(
            MntReply::decode(&bytes).unwrap_err(),
            MountError::Xdr(XdrError::TooLong { len: 65, max: 64 })
        );
        // 65 flavors
        let mut bytes = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 65];
        bytes.extend_from_slice(&[0; 65 * 4]);
        assert_eq!(
            MntReply::decode(&bytes).unwrap_err(),
            MountError::Xdr(XdrError::TooLong { len: 65, max: 64 })
        );
        // a flavor count larger than the bytes present
        let bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60, 0, 0, 0, 1];
        assert!(matches!(
            MntReply::decode(&bytes),
            Err(MountError::Xdr(XdrError::Truncated { .. }))
        ));
    }

    #[test]
    fn mnt_args_layout() {
        let args = MntArgs {
            dirpath: b"/export",
        };
        let bytes = args.to_xdr();
        assert_eq!(bytes, b"\0\0\0\x07/export\0");
        assert_eq!(MntArgs::from_xdr(&bytes).unwrap(), args);
        let mut long = vec![0, 0, 0x04, 0x01];
        long.extend_from_slice(&[b'a'; 1028]);
        assert_eq!(
            MntArgs::from_xdr(&long),
            Err(XdrError::TooLong {
                len: 1025,
                max: 1024
            })
        );
    }

    #[test]
    fn export_list_layout() {
        #[rustfmt::skip]
        let bytes: Vec<u8> = [
            &[0, 0, 0, 1][..], &[0, 0, 0, 4], b"/srv",     // export "/srv"
            &[0, 0, 0, 1], &[0, 0, 0, 1], b"*\0\0\0",      //   group "*"
            &[0, 0, 0, 1], &[0, 0, 0, 5], b"admin\0\0\0",  //   group "admin"
            &[0, 0, 0, 0],                                 //   end of groups
            &[0, 0, 0, 1], &[0, 0, 0, 2], b"/a\0\0",       // export "/a"
            &[0, 0, 0, 0],                                 //   no groups
            &[0, 0, 0, 0],                                 // end of exports
        ].concat();
        let list = ExportList::from_xdr(&bytes).unwrap();
        assert_eq!(
            list.entries,
            vec![
                ExportEntry {
                    dir: b"/srv".to_vec(),
                    groups: vec![b"*".to_vec(), b"admin".to_vec()]
                },
                ExportEntry {
                    dir: b"/a".to_vec(),
                    groups: vec![]
                },
            ]
        );
        assert_eq!(list.to_xdr(), bytes);
        assert_eq!(ExportList::from_xdr(&[0, 0, 0, 0]).unwrap().entries, vec![]);
        // a bad boolean in the list
        assert_eq!(
            ExportList::from_xdr(&[0, 0, 0, 2]),
            Err(XdrError::BadBool(2))
        );
        // a list cut short
        assert!(matches!(
            ExportList::from_xdr(&bytes[..bytes.len() - 4]),
            Err(XdrError::Truncated { .. })
        ));
    }

    #[test]
    fn export_list_group_limit() {
        let mut bytes = vec![0, 0, 0, 1, 0, 0, 0, 0];
        for _ in 0..=EXPORT_GROUPS_MAX {
            bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        }
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            ExportList::from_xdr(&bytes),
            Err(XdrError::TooLong {
                len: 1025,
                max: 1024
            })
        );
    }

    #[test]
    fn mountstat_codes_round_trip() {
        for s in Mountstat3::ALL {
            assert_eq!(Mountstat3::from_u32(s.as_u32()), s);
        }
        assert_eq!(Mountstat3::Acces.as_u32(), 13);
        assert_eq!(Mountstat3::Notsupp.as_u32(), 10004);
    }
}
