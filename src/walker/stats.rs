//! What a walk counts: per procedure and per thread, merged at the end.

use crate::record::EntryType;
use crate::rpc::nfs3::proc3;
use crate::sched::CallCounters;

/// Per-procedure figures of one thread.
#[derive(Debug, Clone)]
pub struct ProcStats {
    pub calls: u64,
    pub errors: u64,
    /// Round-trip times in microseconds.
    pub latency_us: hdrhistogram::Histogram<u64>,
}

impl Default for ProcStats {
    fn default() -> Self {
        ProcStats {
            calls: 0,
            errors: 0,
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds"),
        }
    }
}

/// Counters of one thread's walk.
#[derive(Debug, Clone, Default)]
pub struct WalkStats {
    /// Indexed by NFS procedure number.
    pub procs: Vec<ProcStats>,
    pub entries: u64,
    pub entries_by_type: [u64; 8],
    pub bytes: u64,
    pub retries: u64,
    pub timeouts: u64,
    pub jukebox: u64,
    pub bad_cookie_restarts: u64,
    pub resent_after_reconnect: u64,
    pub unknown_xids: u64,
    pub duplicates_skipped: u64,
    pub hostile_names: u64,
    pub errors: u64,
}

impl WalkStats {
    pub fn new() -> Self {
        WalkStats {
            procs: (0..=proc3::COMMIT).map(|_| ProcStats::default()).collect(),
            ..Default::default()
        }
    }

    /// Adds what the call engine counted.
    pub fn add_calls(&mut self, c: &CallCounters) {
        for (total, n) in [
            (&mut self.retries, c.retries),
            (&mut self.timeouts, c.timeouts),
            (&mut self.jukebox, c.busy_waits),
            (&mut self.resent_after_reconnect, c.resent_after_reconnect),
            (&mut self.unknown_xids, c.unknown_xids),
        ] {
            *total += n;
        }
    }

    pub fn merge(&mut self, o: &WalkStats) {
        if self.procs.is_empty() {
            *self = WalkStats::new();
        }
        for (a, b) in self.procs.iter_mut().zip(&o.procs) {
            a.calls += b.calls;
            a.errors += b.errors;
            let _ = a.latency_us.add(&b.latency_us);
        }
        self.entries += o.entries;
        for (a, b) in self.entries_by_type.iter_mut().zip(o.entries_by_type) {
            *a += b;
        }
        crate::add_counters!(self, o;
            bytes, retries, timeouts, jukebox, bad_cookie_restarts, resent_after_reconnect,
            unknown_xids, duplicates_skipped, hostile_names, errors);
    }
}

impl WalkStats {
    /// Counts an entry written (by either walk, v3 or v4).
    pub fn count_entry(&mut self, attrs: &crate::record::EntryAttrs) {
        self.entries += 1;
        self.entries_by_type[type_index(attrs.kind)] += 1;
        self.bytes += attrs.size;
    }
}

/// Index of an entry type in [`WalkStats::entries_by_type`].
pub fn type_index(t: EntryType) -> usize {
    EntryType::ALL.iter().position(|x| *x == t).unwrap_or(7)
}
