//! The procedures a bench can drive, and how each one's arguments are built from the sampled
//! targets. Every one of them only reads: a bench never changes the server.

use crate::rpc::nfs3::proc3;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// One NFSv3 read procedure a bench issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BenchOp {
    /// NULL: the RPC round trip alone, no file system work.
    Null,
    /// GETATTR of a sampled object.
    Getattr,
    /// LOOKUP of a sampled (directory, name) pair.
    Lookup,
    /// ACCESS of a sampled object, asking for every access bit.
    Access,
    /// READDIR of a sampled directory: its first page (cookie 0).
    Readdir,
    /// READDIRPLUS of a sampled directory: its first page (cookie 0).
    ReaddirPlus,
    /// READLINK of a sampled symlink.
    Readlink,
    /// FSSTAT of the export root.
    Fsstat,
    /// READ of sampled regular files, each read whole in order, a chunk a call (the chunk size
    /// from FSINFO or `--read-size`), several chunks of one file in flight at once.
    Read,
}

/// Most distinct operations in one bench (every one of them).
pub const BENCH_OPS_MAX: usize = BenchOp::ALL.len();

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpListError {
    #[error("unknown operation `{0}` (expected null, getattr, lookup, access, readdir, readdirplus, readlink, fsstat, read)")]
    Unknown(String),
    #[error("operation `{0}` is listed twice")]
    Duplicate(String),
    #[error("no operation given")]
    Empty,
}

impl BenchOp {
    pub const ALL: [BenchOp; 9] = [
        BenchOp::Null,
        BenchOp::Getattr,
        BenchOp::Lookup,
        BenchOp::Access,
        BenchOp::Readdir,
        BenchOp::ReaddirPlus,
        BenchOp::Readlink,
        BenchOp::Fsstat,
        BenchOp::Read,
    ];

    /// The lower-case name used on the command line, in reports and as the hlog tag.
    pub fn name(self) -> &'static str {
        match self {
            BenchOp::Null => "null",
            BenchOp::Getattr => "getattr",
            BenchOp::Lookup => "lookup",
            BenchOp::Access => "access",
            BenchOp::Readdir => "readdir",
            BenchOp::ReaddirPlus => "readdirplus",
            BenchOp::Readlink => "readlink",
            BenchOp::Fsstat => "fsstat",
            BenchOp::Read => "read",
        }
    }

    /// The NFSv3 procedure number.
    pub fn proc_(self) -> u32 {
        match self {
            BenchOp::Null => proc3::NULL,
            BenchOp::Getattr => proc3::GETATTR,
            BenchOp::Lookup => proc3::LOOKUP,
            BenchOp::Access => proc3::ACCESS,
            BenchOp::Readdir => proc3::READDIR,
            BenchOp::ReaddirPlus => proc3::READDIRPLUS,
            BenchOp::Readlink => proc3::READLINK,
            BenchOp::Fsstat => proc3::FSSTAT,
            BenchOp::Read => proc3::READ,
        }
    }

    /// Parses `getattr,lookup,...`; order is kept, duplicates are refused.
    pub fn parse_list(s: &str) -> Result<Vec<BenchOp>, OpListError> {
        let mut ops = Vec::new();
        for item in s.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let op: BenchOp = item.parse()?;
            if ops.contains(&op) {
                return Err(OpListError::Duplicate(item.to_string()));
            }
            ops.push(op);
        }
        if ops.is_empty() {
            return Err(OpListError::Empty);
        }
        Ok(ops)
    }
}

impl fmt::Display for BenchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BenchOp {
    type Err = OpListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        BenchOp::ALL
            .iter()
            .copied()
            .find(|op| op.name() == lower)
            .ok_or_else(|| OpListError::Unknown(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_lists_parse_in_order() {
        assert_eq!(
            BenchOp::parse_list("getattr, READDIRPLUS,null"),
            Ok(vec![BenchOp::Getattr, BenchOp::ReaddirPlus, BenchOp::Null])
        );
        assert_eq!(
            BenchOp::parse_list("getattr,getattr"),
            Err(OpListError::Duplicate("getattr".into()))
        );
        assert_eq!(
            BenchOp::parse_list("write"),
            Err(OpListError::Unknown("write".into()))
        );
        assert_eq!(BenchOp::parse_list(" , "), Err(OpListError::Empty));
        for op in BenchOp::ALL {
            assert_eq!(op.name().parse::<BenchOp>(), Ok(op));
            assert_eq!(crate::rpc::nfs3::proc_name(op.proc_()), op.name());
        }
    }
}
