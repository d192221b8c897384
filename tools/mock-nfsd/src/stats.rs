//! Per-procedure call counters, shared by all connections.

use nfs_proto::rpc::mount::{self, MOUNT_PROGRAM};
use nfs_proto::rpc::nfs3::{self, NFS_PROGRAM};
use nfs_proto::rpc::portmap::PMAP_PROGRAM;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

const PMAP_NAMES: [&str; 6] = [
    "pmap_null",
    "pmap_set",
    "pmap_unset",
    "getport",
    "pmap_dump",
    "pmap_callit",
];
const MOUNT_NAMES: [&str; 6] = ["mount_null", "mnt", "dump", "umnt", "umntall", "export"];
const NFS_PROCS: usize = 22;
/// Calls of other programs or procedures, and undecodable calls.
const UNKNOWN_NAME: &str = "unknown";

/// Counters of calls per procedure.
#[derive(Debug, Default)]
pub struct Stats {
    pmap: [AtomicU64; PMAP_NAMES.len()],
    mount: [AtomicU64; MOUNT_NAMES.len()],
    nfs: [AtomicU64; NFS_PROCS],
    /// NFSv4 operations, by operation number (each COMPOUND counts once per operation).
    nfs4_ops: Nfs4Ops,
    unknown: AtomicU64,
    /// Data bytes sent in successful READ replies (shown as `read_bytes`), so a client's
    /// count of bytes read can be checked.
    read_bytes: AtomicU64,
}

#[derive(Debug)]
struct Nfs4Ops([AtomicU64; NFS4_OPS]);

impl Default for Nfs4Ops {
    fn default() -> Self {
        Nfs4Ops(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// Operation numbers below this are counted by name (RFC 8881 defines 3 to 58).
const NFS4_OPS: usize = 59;

/// The counter name of NFSv4 operation `op`: "v4_" and the operation's name.
fn nfs4_name(op: u32) -> &'static str {
    use nfs_proto::rpc::nfs4::op4;
    match op {
        op4::ACCESS => "v4_access",
        op4::GETATTR => "v4_getattr",
        op4::GETFH => "v4_getfh",
        op4::LOOKUP => "v4_lookup",
        op4::LOOKUPP => "v4_lookupp",
        op4::PUTFH => "v4_putfh",
        op4::PUTROOTFH => "v4_putrootfh",
        op4::READ => "v4_read",
        op4::READDIR => "v4_readdir",
        op4::READLINK => "v4_readlink",
        op4::RENEW => "v4_renew",
        op4::RESTOREFH => "v4_restorefh",
        op4::SAVEFH => "v4_savefh",
        op4::SETCLIENTID => "v4_setclientid",
        op4::SETCLIENTID_CONFIRM => "v4_setclientid_confirm",
        op4::BIND_CONN_TO_SESSION => "v4_bind_conn_to_session",
        op4::EXCHANGE_ID => "v4_exchange_id",
        op4::CREATE_SESSION => "v4_create_session",
        op4::DESTROY_SESSION => "v4_destroy_session",
        op4::SECINFO_NO_NAME => "v4_secinfo_no_name",
        op4::SEQUENCE => "v4_sequence",
        op4::DESTROY_CLIENTID => "v4_destroy_clientid",
        op4::RECLAIM_COMPLETE => "v4_reclaim_complete",
        _ => "v4_other",
    }
}

impl Stats {
    /// Counts one call of `proc_` of program `prog`. NFSv4 calls are counted op by op
    /// ([`Stats::count_nfs4_op`]), not here.
    #[inline]
    pub fn count(&self, prog: u32, proc_: u32) {
        let p = proc_ as usize;
        let counter = match prog {
            PMAP_PROGRAM if p < PMAP_NAMES.len() => &self.pmap[p],
            MOUNT_PROGRAM if p < MOUNT_NAMES.len() => &self.mount[p],
            NFS_PROGRAM if p < NFS_PROCS => &self.nfs[p],
            _ => &self.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one NFSv4 operation.
    #[inline]
    pub fn count_nfs4_op(&self, op: u32) {
        let i = if (op as usize) < NFS4_OPS {
            op as usize
        } else {
            0
        };
        self.nfs4_ops.0[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the data of a successful READ reply.
    #[inline]
    pub fn count_read_bytes(&self, bytes: u64) {
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a call that could not be decoded.
    pub fn count_unknown(&self) {
        self.unknown.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts of every procedure that was called at least once.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut counts = Vec::new();
        let mut add = |name: &'static str, c: &AtomicU64| {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                counts.push((name, n));
            }
        };
        for (name, c) in PMAP_NAMES.iter().zip(&self.pmap) {
            add(name, c);
        }
        for (i, c) in self.mount.iter().enumerate() {
            add(MOUNT_NAMES[i], c);
        }
        debug_assert_eq!(mount::mountproc3::EXPORT as usize, MOUNT_NAMES.len() - 1);
        for (p, c) in self.nfs.iter().enumerate() {
            add(nfs3::proc_name(p as u32), c);
        }
        let other = AtomicU64::new(0);
        for (op, c) in self.nfs4_ops.0.iter().enumerate() {
            match nfs4_name(op as u32) {
                "v4_other" => {
                    other.fetch_add(c.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                name => add(name, c),
            }
        }
        add("v4_other", &other);
        add(UNKNOWN_NAME, &self.unknown);
        add("read_bytes", &self.read_bytes);
        StatsSnapshot { counts }
    }
}

/// Call counts at one moment: `(procedure name, count)` for every procedure called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub counts: Vec<(&'static str, u64)>,
}

impl StatsSnapshot {
    /// The count of one procedure ("getattr", "readdirplus", "mnt", "getport", ...), or the
    /// data bytes READ replies carried ("read_bytes"); 0 if it was never called.
    pub fn get(&self, name: &str) -> u64 {
        self.counts
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |&(_, c)| c)
    }

    /// Total calls of all procedures.
    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .filter(|(n, _)| *n != "read_bytes")
            .map(|&(_, c)| c)
            .sum()
    }

    /// Writes `# rpc counts` and one `<name> <count>` line per procedure called.
    pub fn write_report(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out, "# rpc counts")?;
        for (name, count) in &self.counts {
            writeln!(out, "{name} {count}")?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_program_and_procedure() {
        let stats = Stats::default();
        stats.count(NFS_PROGRAM, 1);
        stats.count(NFS_PROGRAM, 1);
        stats.count(NFS_PROGRAM, 17);
        stats.count(MOUNT_PROGRAM, 1);
        stats.count(PMAP_PROGRAM, 3);
        stats.count(NFS_PROGRAM, 99);
        stats.count(4242, 0);
        let snap = stats.snapshot();
        assert_eq!(snap.get("getattr"), 2);
        assert_eq!(snap.get("readdirplus"), 1);
        assert_eq!(snap.get("mnt"), 1);
        assert_eq!(snap.get("getport"), 1);
        assert_eq!(snap.get("unknown"), 2);
        assert_eq!(snap.get("lookup"), 0);
        let mut out = Vec::new();
        snap.write_report(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# rpc counts\ngetport 1\nmnt 1\ngetattr 2\nreaddirplus 1\nunknown 2\n"
        );
    }
}
