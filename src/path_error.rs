//! A path a scan could not read completely: made by the walk, written by the outputs (the
//! error stream, the scan database's `errors` table).

use crate::rpc::nfs3::Nfsstat3;

/// A path that could not be read completely; the scan goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub path: Vec<u8>,
    /// The procedure that failed ("readdirplus", "lookup", ...) or "walk".
    pub op: &'static str,
    pub message: String,
    /// The NFS status where the server gave one.
    pub status: Option<Nfsstat3>,
}

impl PathError {
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"path\":\"");
        crate::record::json_escape_into(out, &self.path);
        out.extend_from_slice(b"\",\"op\":\"");
        out.extend_from_slice(self.op.as_bytes());
        out.extend_from_slice(b"\",\"status\":\"");
        if let Some(s) = self.status {
            out.extend_from_slice(s.name().as_bytes());
        }
        out.extend_from_slice(b"\",\"error\":\"");
        crate::record::json_escape_into(out, self.message.as_bytes());
        out.extend_from_slice(b"\"}\n");
    }
}
