//! A path a scan could not read completely: made by the walk, written by the outputs (the
//! error stream, the scan database's `errors` table).

use crate::rpc::nfs3::Nfsstat3;

/// A path that could not be read completely; the scan goes on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathError {
    pub path: Vec<u8>,
    /// The procedure that failed ("readdirplus", "lookup", ...) or "walk".
    pub op: &'static str,
    pub message: String,
    /// The NFS status where the server gave one.
    pub status: Option<Nfsstat3>,
}

impl PathError {
    /// The `op` of an error stored by name (the scan database's `procedure`): a procedure or
    /// step the walk reports, or "unknown" for a name no version of it wrote.
    pub fn op_named(name: &str) -> &'static str {
        const STEPS: &[&str] = &["walk", "readdir", "readdirplus", "readlink", "read"];
        if let Some(step) = STEPS.iter().find(|s| **s == name) {
            return step;
        }
        (0..=21)
            .map(crate::rpc::nfs3::proc_name)
            .find(|p| *p == name)
            .unwrap_or("unknown")
    }

    /// The `status` of an error stored by name (the scan database's `status`).
    pub fn status_named(name: &str) -> Option<Nfsstat3> {
        Nfsstat3::ALL.iter().copied().find(|s| s.name() == name)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_op_names_come_back_as_the_same_names() {
        for name in [
            "walk",
            "readdirplus",
            "lookup",
            "getattr",
            "readlink",
            "read",
            "readdir",
        ] {
            assert_eq!(PathError::op_named(name), name);
        }
        assert_eq!(PathError::op_named("frobnicate"), "unknown");
        for &s in Nfsstat3::ALL {
            assert_eq!(PathError::status_named(s.name()), Some(s));
        }
        assert_eq!(PathError::status_named("NFS3ERR_FROB"), None);
    }
}
