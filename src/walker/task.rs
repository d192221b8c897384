//! Units of work that move between threads (and, serialised, between hosts or runs).

use crate::rpc::nfs3::{Fattr3, FileHandle};
use crate::xdr::{XdrDecode, XdrEncode, XdrReader, XdrResult, XdrWriter};
use std::sync::Arc;

/// Longest path a serialised [`DirTask`] may carry: 10,000 levels of 255-byte names would be
/// more, but no real tree comes near it, and a hostile record must not allocate without bound.
pub const TASK_PATH_BYTES_MAX: u32 = 1 << 20;

/// A directory to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirTask {
    pub fh: FileHandle,
    /// Path relative to the scan root ("." for the root itself).
    pub path: Vec<u8>,
    /// Depth of the directory itself (the root is 0).
    pub depth: u32,
    /// The directory's file system (with its fileid, what the visited-directory set keys on).
    pub fsid: u64,
}

/// The serialised form of a directory task (a saved frontier, a shared queue's entry):
/// XDR `{ opaque fh<128>; opaque path<1 MiB>; unsigned depth; unsigned hyper fsid; }` (the
/// handle was `fh<64>` before NFSv4 scans shared tasks: those forms read the same).
impl XdrEncode for DirTask {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.opaque(self.fh.as_bytes())
            .opaque(&self.path)
            .u32(self.depth)
            .u64(self.fsid);
    }
}

impl<'a> XdrDecode<'a> for DirTask {
    fn decode(r: &mut XdrReader<'a>) -> XdrResult<Self> {
        Ok(DirTask {
            fh: FileHandle::decode_any(r)?,
            path: r.opaque(TASK_PATH_BYTES_MAX)?.to_vec(),
            depth: r.u32()?,
            fsid: r.u64()?,
        })
    }
}

/// One name whose handle and attributes must be fetched with LOOKUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupName {
    pub name: Box<[u8]>,
    pub fileid: u64,
    /// Attributes the listing already carried (a READDIRPLUS entry without a handle); boxed
    /// because it is rare and names may queue by the thousand.
    pub attrs: Option<Box<Fattr3>>,
}

/// Names of one directory to LOOKUP: in `getattr` mode every name of a listing, in `plus` mode
/// the entries a server sent without attributes or handle. A batch is a task of its own, so the
/// LOOKUPs of one huge directory spread over every thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupBatch {
    pub dir_fh: FileHandle,
    pub dir_path: Arc<[u8]>,
    /// Depth of the names (their directory's depth + 1).
    pub depth: u32,
    pub names: Vec<LookupName>,
}

/// A unit of work in the scheduler's deques.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    Dir(DirTask),
    Lookups(LookupBatch),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_tasks_round_trip_and_bad_bytes_are_refused() {
        let t = DirTask {
            fh: FileHandle::from_bytes(&[9; 28]).unwrap(),
            path: b"a/b\xffc".to_vec(),
            depth: 2,
            fsid: 0xfeed,
        };
        let bytes = t.to_xdr();
        assert_eq!(DirTask::from_xdr(&bytes).unwrap(), t);
        assert!(DirTask::from_xdr(&bytes[..bytes.len() - 1]).is_err());
        // An NFSv4 handle of the longest kind.
        let v4 = DirTask {
            fh: FileHandle::from_bytes(&[4; 128]).unwrap(),
            ..t
        };
        assert_eq!(DirTask::from_xdr(&v4.to_xdr()).unwrap(), v4);
        let mut long = Vec::new();
        XdrWriter::new(&mut long).opaque(&[0; 129]);
        assert!(DirTask::from_xdr(&long).is_err(), "handle over 128 bytes");
    }
}
