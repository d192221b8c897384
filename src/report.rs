//! The human summary printed after a scan: entries by type, bytes, rates, RPC counts and
//! latency percentiles per procedure.

use crate::record::EntryType;
use crate::rpc::nfs3::proc_name;
use crate::scan::ScanReport;
use std::fmt::Write as _;

/// `1.2 GiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// `YYYY-MM-DD HH:MM` in UTC for seconds since the epoch (days-from-civil inverse, so no
/// time-zone database is needed).
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Microseconds as a short readable duration.
pub fn human_us(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// Adds the counter fields named of `$from` into `$into` (merging per-thread figures).
#[macro_export]
macro_rules! add_counters {
    ($into:expr, $from:expr; $($field:ident),+ $(,)?) => {
        $( $into.$field += $from.$field; )+
    };
}

/// "what n" for each counter that is not zero, for a summary's notes line.
pub fn nonzero_notes(counters: &[(&str, u64)]) -> Vec<String> {
    counters
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect()
}

/// The summary of a scan, several lines, ending with a newline.
pub fn scan_summary(r: &ScanReport, root_entries: u64) -> String {
    let s = &r.stats;
    let mut o = String::new();
    let entries = s.entries + root_entries;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let _ =
        writeln!(
        o,
        "{} {} entries in {:.2} s ({:.0} entries/s), {} in files; {} threads, {} connections, {}",
        if r.completed { "scanned" } else { "INTERRUPTED after" },
        entries,
        secs,
        s.entries as f64 / secs,
        human_bytes(s.bytes),
        r.threads,
        r.connections,
        r.backend,
    );
    let mut by_type = Vec::new();
    for (i, t) in EntryType::ALL.iter().enumerate() {
        let mut n = s.entries_by_type.get(i).copied().unwrap_or(0);
        if *t == EntryType::Dir {
            n += root_entries;
        }
        if n > 0 {
            by_type.push(format!("{t} {n}"));
        }
    }
    let _ = writeln!(o, "  by type: {}", by_type.join(", "));
    if let Some(f) = r.first_entry_after {
        let _ = writeln!(o, "  first entry after {}", human_us(f.as_micros() as u64));
    }
    let _ = writeln!(
        o,
        "  {:<12} {:>10} {:>7} {:>10} {:>10} {:>10}",
        "rpc", "calls", "errors", "p50", "p99", "max"
    );
    for (p, ps) in s.procs.iter().enumerate() {
        if ps.calls == 0 {
            continue;
        }
        let h = &ps.latency_us;
        let _ = writeln!(
            o,
            "  {:<12} {:>10} {:>7} {:>10} {:>10} {:>10}",
            proc_name(p as u32),
            ps.calls,
            ps.errors,
            human_us(h.value_at_quantile(0.5)),
            human_us(h.value_at_quantile(0.99)),
            human_us(h.max()),
        );
    }
    let notes = nonzero_notes(&[
        ("path errors", s.errors),
        ("retries", s.retries),
        ("timeouts", s.timeouts),
        ("jukebox waits", s.jukebox),
        ("bad-cookie restarts", s.bad_cookie_restarts),
        ("reconnects", r.reconnects),
        ("calls resent after reconnect", s.resent_after_reconnect),
        ("replies with unknown xid", s.unknown_xids),
        ("duplicate entries skipped", s.duplicates_skipped),
        ("invalid names skipped", s.hostile_names),
    ]);
    if !notes.is_empty() {
        let _ = writeln!(o, "  {}", notes.join(", "));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 40), "1.0 TiB");
        assert_eq!(human_us(999), "999 µs");
        assert_eq!(human_us(1500), "1.50 ms");
        assert_eq!(human_us(2_500_000), "2.50 s");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(2_147_483_648), "2038-01-19 03:14");
        assert_eq!(format_utc(4_102_444_800), "2100-01-01 00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00");
    }
}
