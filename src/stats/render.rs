//! The report as text tables and as JSON (`stats`, `stats --json`).

use super::model::*;
use crate::report::{format_utc, human_bytes};
use base64::Engine as _;
use serde_json::{json, Value};

/// A path for a terminal: valid UTF-8 as is, with control characters, backslashes and
/// invalid bytes escaped (`\n`, `\\`, `\xff`), so one entry is one line and bytes are exact.
pub fn display_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The label of a size bucket's lower bound: exact powers of two (`0`, `1 B`, `4 KiB`).
pub fn pow2_label(k: u32) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    format!("{} {}", 1u64 << (k % 10), UNITS[(k / 10) as usize])
}

pub fn size_bucket_label(i: usize) -> String {
    match i {
        0 => "0 B".to_string(),
        64 => format!("≥ {}", pow2_label(63)),
        _ => format!("{} – {}", pow2_label(i as u32 - 1), pow2_label(i as u32)),
    }
}

pub fn format_time_ns(ns: i64) -> String {
    format!("{} UTC", format_utc(ns.div_euclid(NS_PER_S)))
}

/// A text table; `aligns` has one letter per column: `l` left, `r` right. A left-aligned
/// last column is not padded (paths go last, so long ones do not widen the table).
pub struct Table {
    headers: Vec<&'static str>,
    aligns: &'static [u8],
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: Vec<&'static str>, aligns: &'static str) -> Self {
        Table {
            headers,
            aligns: aligns.as_bytes(),
            rows: Vec::new(),
        }
    }

    fn render(&self, out: &mut String) {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>, out: &mut String| {
            let mut s = String::new();
            for (i, cell) in cells.iter().enumerate().take(n) {
                let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
                s.push_str("  ");
                if self.aligns.get(i) == Some(&b'r') {
                    s.push_str(&pad);
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    if i + 1 < n {
                        s.push_str(&pad);
                    }
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(self.headers.clone(), out);
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect(), out);
        }
    }
}

pub fn render_text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let s = &r.summary;
    match &r.scan {
        Some(m) => {
            let _ = writeln!(o, "{} ({}): {}", r.source, r.format, m.url);
            let mut line = format!("  {}, started {}", m.status, format_time_ns(m.started_ns));
            if let Some(f) = m.finished_ns {
                let secs = (f - m.started_ns) as f64 / 1e9;
                let _ = write!(line, ", {secs:.2} s");
                if secs > 0.0 {
                    let n = m.entries.unwrap_or(s.entries);
                    let _ = write!(line, ", {:.0} entries/s", n as f64 / secs);
                }
            }
            if let Some(e) = m.errors {
                let _ = write!(line, ", {e} errors");
            }
            let _ = writeln!(o, "{line}");
            if let Some(msg) = &m.message {
                let _ = writeln!(o, "  {msg}");
            }
            if m.status == "running" {
                // A running scan commits its rows at checkpoints.
                let _ = writeln!(
                    o,
                    "  not finished: the scan is still going, or it was killed (the rows are \
                     those of its last checkpoint; directory totals and indexes come at the end)"
                );
            }
        }
        None => {
            let _ = writeln!(o, "{} ({}; no scan duration in NDJSON)", r.source, r.format);
        }
    }
    let depth_mean = if s.entries > 0 {
        s.depth_sum as f64 / s.entries as f64
    } else {
        0.0
    };
    let _ = writeln!(
        o,
        "{} entries, {} ({} used), depth max {}, mean {:.1}",
        s.entries,
        human_bytes(s.bytes),
        human_bytes(s.used),
        s.depth_max,
        depth_mean
    );
    let mut t = Table::new(vec!["type", "entries", "size", "used"], "lrrr");
    for row in &s.by_type {
        t.rows.push(vec![
            row.kind.clone(),
            row.entries.to_string(),
            human_bytes(row.bytes),
            human_bytes(row.used),
        ]);
    }
    t.render(&mut o);
    let group_table =
        |title: &str, key: &'static str, rows: Vec<(String, u64, u64, u64)>, o: &mut String| {
            let _ = writeln!(o, "\n{title}");
            let mut t = Table::new(vec![key, "entries", "size", "used"], "lrrr");
            for (k, entries, bytes, used) in rows {
                t.rows.push(vec![
                    k,
                    entries.to_string(),
                    human_bytes(bytes),
                    human_bytes(used),
                ]);
            }
            t.render(o);
        };
    if let Some(rows) = &r.by_extension {
        group_table(
            "files by extension (by size)",
            "extension",
            rows.iter()
                .map(|g| {
                    (
                        g.key.clone().unwrap_or_else(|| "(none)".into()),
                        g.entries,
                        g.bytes,
                        g.used,
                    )
                })
                .collect(),
            &mut o,
        );
    }
    for (title, key, rows) in [
        ("entries by owner (by size)", "owner", &r.by_uid),
        ("entries by group (by size)", "group", &r.by_gid),
    ] {
        if let Some(rows) = rows {
            group_table(
                title,
                key,
                rows.iter()
                    .map(|g| (g.key.to_string(), g.entries, g.bytes, g.used))
                    .collect(),
                &mut o,
            );
        }
    }
    let file_table = |title: &str, rows: &[FileRow], o: &mut String| {
        let _ = writeln!(o, "\n{title}");
        let mut t = Table::new(vec!["size", "used", "modified", "owner", "path"], "rrlrl");
        for f in rows {
            t.rows.push(vec![
                human_bytes(f.size),
                human_bytes(f.used),
                format_utc(f.mtime_ns.div_euclid(NS_PER_S)),
                f.owner_key().to_string(),
                display_path(&f.path),
            ]);
        }
        t.render(o);
    };
    if let Some(rows) = &r.largest_files {
        file_table("largest files", rows, &mut o);
    }
    if let Some(rows) = &r.oldest_files {
        file_table("oldest files (by modification time)", rows, &mut o);
    }
    for (title, rows) in [
        (
            "largest directories by recursive size",
            &r.largest_dirs_by_bytes,
        ),
        (
            "largest directories by recursive entry count",
            &r.largest_dirs_by_entries,
        ),
    ] {
        if let Some(rows) = rows {
            let _ = writeln!(o, "\n{title}");
            let mut t = Table::new(vec!["size", "entries", "path"], "rrl");
            for d in rows {
                t.rows.push(vec![
                    human_bytes(d.recursive_bytes),
                    d.recursive_entries.to_string(),
                    display_path(&d.path),
                ]);
            }
            t.render(&mut o);
        }
    }
    if let Some(rows) = &r.most_links {
        let _ = writeln!(o, "\nmost hard links (one name of each)");
        let mut t = Table::new(vec!["links", "fileid", "path"], "rrl");
        for l in rows {
            t.rows.push(vec![
                l.nlink.to_string(),
                l.fileid.to_string(),
                display_path(&l.path),
            ]);
        }
        t.render(&mut o);
    }
    if let Some(buckets) = &r.size_histogram {
        let _ = writeln!(o, "\nfile sizes");
        let mut t = Table::new(vec!["size", "files", "total"], "lrr");
        let used: Vec<usize> = (0..buckets.len())
            .filter(|&i| buckets[i].files > 0)
            .collect();
        if let (Some(&lo), Some(&hi)) = (used.first(), used.last()) {
            for (i, b) in buckets.iter().enumerate().take(hi + 1).skip(lo) {
                t.rows.push(vec![
                    size_bucket_label(i),
                    b.files.to_string(),
                    human_bytes(b.bytes),
                ]);
            }
        }
        t.render(&mut o);
    }
    if let Some(buckets) = &r.age_histogram {
        let _ = writeln!(
            o,
            "\nfile ages (modification time before {})",
            format_time_ns(r.age_reference_ns)
        );
        let mut t = Table::new(vec!["age", "files", "total"], "lrr");
        for (label, b) in AGE_BUCKETS.iter().zip(buckets) {
            t.rows.push(vec![
                label.to_string(),
                b.files.to_string(),
                human_bytes(b.bytes),
            ]);
        }
        t.render(&mut o);
    }
    o
}

/// A path as JSON fields: `path` (lossy where not UTF-8) and `path_b64` with the exact bytes.
pub fn path_json(obj: &mut serde_json::Map<String, Value>, path: &[u8]) {
    obj.insert(
        "path".into(),
        Value::String(String::from_utf8_lossy(path).into_owned()),
    );
    if std::str::from_utf8(path).is_err() {
        obj.insert(
            "path_b64".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(path)),
        );
    }
}

pub fn with_path(path: &[u8], v: Value) -> Value {
    let mut obj = match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    path_json(&mut obj, path);
    Value::Object(obj)
}

pub fn report_json(r: &Report) -> Value {
    let s = &r.summary;
    let mut out = serde_json::Map::new();
    out.insert("source".into(), json!(r.source));
    out.insert("format".into(), json!(r.format));
    out.insert(
        "scan".into(),
        match &r.scan {
            Some(m) => json!({
                "url": m.url,
                "status": m.status,
                "started_ns": m.started_ns,
                "finished_ns": m.finished_ns,
                "duration_s": m.finished_ns.map(|f| (f - m.started_ns) as f64 / 1e9),
                "entries_per_s": m.finished_ns.and_then(|f| {
                    let secs = (f - m.started_ns) as f64 / 1e9;
                    (secs > 0.0).then(|| m.entries.unwrap_or(s.entries) as f64 / secs)
                }),
                "errors": m.errors,
                "message": m.message,
            }),
            None => Value::Null,
        },
    );
    out.insert(
        "summary".into(),
        json!({
            "entries": s.entries,
            "bytes": s.bytes,
            "used": s.used,
            "depth_max": s.depth_max,
            "depth_mean": if s.entries > 0 { s.depth_sum as f64 / s.entries as f64 } else { 0.0 },
            "by_type": s.by_type.iter().map(|t| json!({
                "type": t.kind, "entries": t.entries, "bytes": t.bytes, "used": t.used,
            })).collect::<Vec<_>>(),
        }),
    );
    if let Some(rows) = &r.by_extension {
        out.insert(
            "by_extension".into(),
            rows.iter()
                .map(|g| json!({"extension": g.key, "files": g.entries, "bytes": g.bytes, "used": g.used}))
                .collect(),
        );
    }
    // A numeric owner as `uid` (`gid`), a name as `owner` (`group`).
    for (key, id, name, rows) in [
        ("by_uid", "uid", "owner", &r.by_uid),
        ("by_gid", "gid", "group", &r.by_gid),
    ] {
        if let Some(rows) = rows {
            out.insert(
                key.into(),
                rows.iter()
                    .map(|g| {
                        let mut row =
                            json!({"entries": g.entries, "bytes": g.bytes, "used": g.used});
                        match &g.key {
                            OwnerKey::Id(n) => row[id] = json!(n),
                            OwnerKey::Name(_) => row[name] = json!(g.key.to_string()),
                        }
                        row
                    })
                    .collect(),
            );
        }
    }
    let files = |rows: &[FileRow]| -> Value {
        rows.iter()
            .map(|f| {
                let mut v = json!({"size": f.size, "used": f.used, "mtime_ns": f.mtime_ns, "uid": f.uid, "gid": f.gid});
                // Names where the server sent them, as in `by_uid` / `by_gid`.
                for (key, name) in [("owner", &f.owner), ("group", &f.group)] {
                    if let Some(n) = name {
                        v[key] = Value::String(String::from_utf8_lossy(n).into_owned());
                    }
                }
                with_path(&f.path, v)
            })
            .collect()
    };
    if let Some(rows) = &r.largest_files {
        out.insert("largest_files".into(), files(rows));
    }
    if let Some(rows) = &r.oldest_files {
        out.insert("oldest_files".into(), files(rows));
    }
    let dirs = |rows: &[DirRow]| -> Value {
        rows.iter()
            .map(|d| {
                with_path(
                    &d.path,
                    json!({"recursive_entries": d.recursive_entries, "recursive_bytes": d.recursive_bytes}),
                )
            })
            .collect()
    };
    if let Some(rows) = &r.largest_dirs_by_bytes {
        out.insert("largest_dirs_by_bytes".into(), dirs(rows));
    }
    if let Some(rows) = &r.largest_dirs_by_entries {
        out.insert("largest_dirs_by_entries".into(), dirs(rows));
    }
    if let Some(rows) = &r.most_links {
        out.insert(
            "most_links".into(),
            rows.iter()
                .map(|l| {
                    with_path(
                        &l.path,
                        json!({"nlink": l.nlink, "fsid": l.fsid, "fileid": l.fileid}),
                    )
                })
                .collect(),
        );
    }
    if let Some(buckets) = &r.size_histogram {
        out.insert(
            "size_histogram".into(),
            buckets
                .iter()
                .enumerate()
                .filter(|(_, b)| b.files > 0)
                .map(|(i, b)| {
                    let (min, max_exclusive) = match i {
                        0 => (0u64, Some(1u64)),
                        64 => (1u64 << 63, None),
                        _ => (1u64 << (i - 1), Some(1u64 << i)),
                    };
                    json!({"min": min, "max_exclusive": max_exclusive, "files": b.files, "bytes": b.bytes})
                })
                .collect(),
        );
    }
    if let Some(buckets) = &r.age_histogram {
        out.insert("age_reference_ns".into(), json!(r.age_reference_ns));
        out.insert(
            "age_histogram".into(),
            AGE_BUCKETS
                .iter()
                .zip(buckets)
                .map(|(label, b)| json!({"age": label, "files": b.files, "bytes": b.bytes}))
                .collect(),
        );
    }
    Value::Object(out)
}
