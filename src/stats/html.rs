//! The report as one self-contained HTML page: inline CSS and SVG, no script, no font or
//! image fetched, so it opens anywhere, offline. Every chart has its numbers in a table beside
//! it, in human units (exact figures in the tables' titles). Built from the same [`Report`]
//! as `stats` and `stats --json`.

use super::model::*;
use super::render::{display_path, size_bucket_label};
use crate::report::{format_utc, human_bytes};
use std::fmt::Write as _;

/// Series colours (colour-blind-safe: Okabe–Ito).
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999",
];

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1d2330;background:#f3f5f8}
header{background:#1d2b45;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}
header .sub{color:#b8c4da;font-size:13px;word-break:break-all}
main{padding:20px 32px 40px;max-width:1400px;margin:0 auto}
.banner{padding:14px 18px;border-radius:8px;margin:0 0 18px;font-weight:600}
.banner.bad{background:#fde8e6;color:#8a1c12;border:1px solid #f3b3ab}
.banner.warn{background:#fff4d6;color:#6b4a00;border:1px solid #f0d48a}
.banner.ok{background:#e5f5ec;color:#17563a;border:1px solid #a9dcbf}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin-bottom:18px}
.kpi{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.kpi .v{font-size:22px;font-weight:650;color:#1d2b45}
.kpi .l{color:#5b6579;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
section{background:#fff;border-radius:10px;padding:16px 20px 18px;margin-bottom:18px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{margin:0 0 2px;font-size:17px}
section .note{color:#5b6579;font-size:12.5px;margin:0 0 10px}
.pair{display:grid;grid-template-columns:minmax(0,1.15fr) minmax(0,1fr);gap:22px;align-items:start}
@media (max-width:900px){.pair{grid-template-columns:1fr}}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th{text-align:left;color:#5b6579;font-weight:600;border-bottom:1px solid #dde2ea;padding:4px 6px}
td{border-bottom:1px solid #eef1f5;padding:3px 6px;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.p{word-break:break-all;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:middle}
svg text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#1d2330}
svg .muted{fill:#5b6579}
.empty{color:#5b6579;font-style:italic}
footer{color:#5b6579;font-size:12px;text-align:center;padding:10px}
"#;

/// Text for HTML: `&`, `<`, `>`, `"` escaped.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

/// `1,234,567`.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// One bar of a chart: label, value it is drawn by, and a short text printed at its end.
struct Bar {
    label: String,
    value: u64,
    text: String,
    indent: u32,
}

/// Horizontal bars, one row each, scaled to the largest value (or to `scale` when given).
fn hbars(bars: &[Bar], scale: Option<u64>, colour_by_row: bool) -> String {
    if bars.is_empty() {
        return "<p class=\"empty\">nothing to show</p>".into();
    }
    const W: f64 = 620.0;
    const LABEL_W: f64 = 200.0;
    const ROW_H: f64 = 22.0;
    let max = scale
        .unwrap_or_else(|| bars.iter().map(|b| b.value).max().unwrap_or(0))
        .max(1);
    let h = ROW_H * bars.len() as f64 + 4.0;
    let mut o = format!("<svg viewBox=\"0 0 {W} {h}\" width=\"100%\" role=\"img\">");
    for (i, b) in bars.iter().enumerate() {
        let y = i as f64 * ROW_H + 2.0;
        let indent = f64::from(b.indent) * 12.0;
        let bar_w = ((W - LABEL_W - 90.0) * b.value as f64 / max as f64).max(1.0);
        let colour = if colour_by_row {
            PALETTE[i % PALETTE.len()]
        } else {
            PALETTE[(b.indent as usize) % PALETTE.len()]
        };
        let mut label: String = b.label.chars().take(30 - b.indent as usize * 2).collect();
        if label.chars().count() < b.label.chars().count() {
            label.push('…');
        }
        let _ = write!(
            o,
            "<text x=\"{:.0}\" y=\"{:.0}\">{}</text>\
             <rect x=\"{LABEL_W}\" y=\"{:.0}\" width=\"{bar_w:.1}\" height=\"{:.0}\" rx=\"2\" fill=\"{colour}\"><title>{}: {}</title></rect>\
             <text class=\"muted\" x=\"{:.1}\" y=\"{:.0}\">{}</text>",
            indent + 2.0,
            y + 15.0,
            esc(&label),
            y + 3.0,
            ROW_H - 6.0,
            esc(&b.label),
            esc(&b.text),
            LABEL_W + bar_w + 6.0,
            y + 15.0,
            esc(&b.text),
        );
    }
    o.push_str("</svg>");
    o
}

/// Vertical bars (a histogram): one column per bucket, labels below.
fn vbars(bars: &[Bar]) -> String {
    if bars.is_empty() {
        return "<p class=\"empty\">nothing to show</p>".into();
    }
    const W: f64 = 640.0;
    const H: f64 = 230.0;
    const BOTTOM: f64 = 70.0;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let slot = W / bars.len() as f64;
    // Every k-th label where there are too many to read.
    let label_every = bars.len().div_ceil(24).max(1);
    let mut o = format!(
        "<svg viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\">\
         <line x1=\"0\" y1=\"{:.0}\" x2=\"{W}\" y2=\"{:.0}\" stroke=\"#c9d0dc\"/>",
        H - BOTTOM,
        H - BOTTOM
    );
    for (i, b) in bars.iter().enumerate() {
        let bh = ((H - BOTTOM - 18.0) * b.value as f64 / max as f64).max(if b.value > 0 {
            1.0
        } else {
            0.0
        });
        let x = i as f64 * slot + slot * 0.12;
        let y = H - BOTTOM - bh;
        let cx = i as f64 * slot + slot / 2.0;
        let _ = write!(
            o,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" rx=\"2\" fill=\"{}\"><title>{}: {}</title></rect>",
            slot * 0.76,
            PALETTE[0],
            esc(&b.label),
            esc(&b.text),
        );
        if i % label_every == 0 {
            let _ = write!(
                o,
                "<text text-anchor=\"end\" transform=\"translate({:.1},{:.0}) rotate(-45)\">{}</text>",
                cx + 4.0,
                H - BOTTOM + 12.0,
                esc(&b.label),
            );
        }
        if bars.len() <= 12 && b.value > 0 {
            let _ = write!(
                o,
                "<text class=\"muted\" text-anchor=\"middle\" x=\"{cx:.1}\" y=\"{:.1}\">{}</text>",
                y - 4.0,
                esc(&b.text)
            );
        }
    }
    o.push_str("</svg>");
    o
}

/// A table: headers (a leading `#` marks a numeric, right-aligned column) and rows of cells
/// (already escaped HTML).
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut o = String::from("<table><thead><tr>");
    let numeric: Vec<bool> = headers.iter().map(|h| h.starts_with('#')).collect();
    for h in headers {
        let (class, text) = match h.strip_prefix('#') {
            Some(t) => (" class=\"n\"", t),
            None => ("", *h),
        };
        let _ = write!(o, "<th{class}>{}</th>", esc(text));
    }
    o.push_str("</tr></thead><tbody>");
    for r in rows {
        o.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let class = if numeric.get(i) == Some(&true) {
                " class=\"n\""
            } else if c.starts_with("<span class=\"path\">") {
                " class=\"p\""
            } else {
                ""
            };
            let _ = write!(o, "<td{class}>{c}</td>");
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
    o
}

/// Bytes in human units, with the exact count in a tooltip.
fn bytes_cell(n: u64) -> String {
    format!(
        "<span title=\"{} bytes\">{}</span>",
        grouped(n),
        esc(&human_bytes(n))
    )
}

fn count_cell(n: u64) -> String {
    grouped(n)
}

/// A path in a table: at most [`PATH_CELL_CHARS`] characters shown (the middle elided), the
/// whole path in the tooltip.
fn path_cell(p: &[u8]) -> String {
    let full = display_path(p);
    let n = full.chars().count();
    let shown = if n > PATH_CELL_CHARS {
        let head: String = full.chars().take(PATH_CELL_CHARS / 2 - 1).collect();
        let tail: String = full.chars().skip(n - PATH_CELL_CHARS / 2).collect();
        format!("{head}…{tail}")
    } else {
        full.clone()
    };
    format!(
        "<span class=\"path\" title=\"{}\">{}</span>",
        esc(&full),
        esc(&shown)
    )
}

const PATH_CELL_CHARS: usize = 72;

fn section(o: &mut String, id: &str, title: &str, note: &str, chart: &str, table: &str) {
    let _ = write!(
        o,
        "<section id=\"{id}\"><h2>{}</h2><p class=\"note\">{}</p><div class=\"pair\"><div>{chart}</div><div>{table}</div></div></section>",
        esc(title),
        note
    );
}

fn time_ns(ns: i64) -> String {
    format!("{} UTC", format_utc(ns.div_euclid(1_000_000_000)))
}

/// The whole page.
pub fn render_html(r: &Report) -> String {
    let s = &r.summary;
    let mut o = String::with_capacity(64 << 10);
    let title = match &r.scan {
        Some(m) if !m.url.is_empty() => m.url.clone(),
        _ => r.source.clone(),
    };
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>nfs-walker report: {}</title><style>{CSS}</style></head><body>\
         <header><h1>nfs-walker report</h1><div class=\"sub\">{} &middot; {} ({})</div></header><main>",
        esc(&title),
        esc(&title),
        esc(&r.source),
        r.format
    );
    // Status first: a scan that did not complete is never shown as a complete picture.
    match &r.scan {
        Some(m) if m.status == "completed" => {
            let _ = write!(
                o,
                "<div class=\"banner ok\" data-status=\"completed\">Complete scan: every directory below the root was listed{}.</div>",
                match m.errors {
                    Some(e) if e > 0 => format!(" (but {} paths could not be read: see Errors)", grouped(e)),
                    _ => String::new(),
                }
            );
        }
        Some(m) => {
            let what = match m.status.as_str() {
                "running" => {
                    "NOT FINISHED: the scan is still running, or was killed before it ended"
                }
                "interrupted" => "INTERRUPTED: the scan was stopped before it ended",
                "failed" => "FAILED: the scan ended with an error",
                other => other,
            };
            let _ = write!(
                o,
                "<div class=\"banner bad\" data-status=\"{}\">{}. The figures below cover only what was read; this is not a complete picture of the tree.{}</div>",
                esc(&m.status),
                esc(what),
                m.message
                    .as_ref()
                    .map(|msg| format!(" ({})", esc(msg)))
                    .unwrap_or_default()
            );
        }
        None => {
            o.push_str(
                "<div class=\"banner warn\" data-status=\"unknown\">This input records no scan (NDJSON output): whether the scan completed is not known.</div>",
            );
        }
    }
    // Key figures.
    let files = s
        .by_type
        .iter()
        .find(|t| t.kind == "file")
        .map_or(0, |t| t.entries);
    let dirs = s
        .by_type
        .iter()
        .find(|t| t.kind == "dir")
        .map_or(0, |t| t.entries);
    o.push_str("<div class=\"kpis\">");
    for (label, value, total) in [
        (
            "entries",
            grouped(s.entries),
            format!("data-total=\"entries\" data-value=\"{}\"", s.entries),
        ),
        (
            "size",
            esc(&human_bytes(s.bytes)),
            format!("data-total=\"bytes\" data-value=\"{}\"", s.bytes),
        ),
        (
            "used on disk",
            esc(&human_bytes(s.used)),
            format!("data-total=\"used\" data-value=\"{}\"", s.used),
        ),
        (
            "files",
            grouped(files),
            format!("data-total=\"files\" data-value=\"{files}\""),
        ),
        (
            "directories",
            grouped(dirs),
            format!("data-total=\"dirs\" data-value=\"{dirs}\""),
        ),
        (
            "deepest level",
            s.depth_max.to_string(),
            format!("data-total=\"depth_max\" data-value=\"{}\"", s.depth_max),
        ),
    ] {
        let _ = write!(
            o,
            "<div class=\"kpi\" {total}><div class=\"v\">{value}</div><div class=\"l\">{label}</div></div>"
        );
    }
    o.push_str("</div>");
    scan_section(&mut o, r);
    dir_tree_section(&mut o, r);
    histogram_sections(&mut o, r);
    group_sections(&mut o, r);
    largest_sections(&mut o, r);
    errors_section(&mut o, r);
    let _ = writeln!(
        o,
        "</main><footer>nfs-walker {} &middot; ages relative to {}</footer></body></html>",
        env!("CARGO_PKG_VERSION"),
        time_ns(r.age_reference_ns)
    );
    o
}

fn scan_section(o: &mut String, r: &Report) {
    let s = &r.summary;
    let mut rows: Vec<Vec<String>> = Vec::new();
    if let Some(m) = &r.scan {
        rows.push(vec!["URL".into(), esc(&m.url)]);
        rows.push(vec!["status".into(), esc(&m.status)]);
        rows.push(vec!["started".into(), time_ns(m.started_ns)]);
        if let Some(f) = m.finished_ns {
            let secs = (f - m.started_ns) as f64 / 1e9;
            rows.push(vec!["duration".into(), format!("{secs:.2} s")]);
            if secs > 0.0 {
                rows.push(vec![
                    "rate".into(),
                    format!(
                        "{} entries/s",
                        grouped((m.entries.unwrap_or(s.entries) as f64 / secs) as u64)
                    ),
                ]);
            }
        }
        if let Some(e) = m.errors {
            rows.push(vec!["paths not read".into(), grouped(e)]);
        }
        if let (Some(t), Some(c)) = (m.threads, m.connections) {
            if t > 0 {
                rows.push(vec![
                    "engine".into(),
                    format!(
                        "{t} threads, {c} connections{}",
                        m.backend
                            .as_ref()
                            .map(|b| format!(", {}", esc(b)))
                            .unwrap_or_default()
                    ),
                ]);
            }
        }
    } else {
        rows.push(vec!["scan".into(), "not recorded in this input".into()]);
    }
    let depth_mean = if s.entries > 0 {
        s.depth_sum as f64 / s.entries as f64
    } else {
        0.0
    };
    rows.push(vec![
        "depth".into(),
        format!("max {}, mean {depth_mean:.1}", s.depth_max),
    ]);
    let mut facts = String::from("<table><tbody>");
    for r in &rows {
        let _ = write!(facts, "<tr><th>{}</th><td>{}</td></tr>", r[0], r[1]);
    }
    facts.push_str("</tbody></table>");
    let bars: Vec<Bar> = s
        .by_type
        .iter()
        .map(|t| Bar {
            label: t.kind.clone(),
            value: t.entries,
            text: grouped(t.entries),
            indent: 0,
        })
        .collect();
    let type_rows: Vec<Vec<String>> = s
        .by_type
        .iter()
        .enumerate()
        .map(|(i, t)| {
            vec![
                format!(
                    "<span class=\"sw\" style=\"background:{}\"></span>{}",
                    PALETTE[i % PALETTE.len()],
                    esc(&t.kind)
                ),
                count_cell(t.entries),
                bytes_cell(t.bytes),
                bytes_cell(t.used),
            ]
        })
        .collect();
    let _ = write!(
        o,
        "<section id=\"scan\"><h2>The scan</h2><p class=\"note\">What was scanned, when, how fast, and the entries by type.</p>\
         <div class=\"pair\"><div>{facts}</div><div>{}{}</div></div></section>",
        hbars(&bars, None, true),
        table(&["type", "#entries", "#size", "#used"], &type_rows)
    );
}

fn dir_tree_section(o: &mut String, r: &Report) {
    let Some(tree) = &r.dir_tree else {
        return;
    };
    let total = r.summary.bytes;
    let bars: Vec<Bar> = tree
        .rows
        .iter()
        .map(|d| {
            let level = d.path.iter().filter(|&&b| b == b'/').count() as u32;
            let name = d
                .path
                .rsplit(|&b| b == b'/')
                .next()
                .unwrap_or(d.path.as_slice());
            Bar {
                label: display_path(name),
                value: d.recursive_bytes,
                text: human_bytes(d.recursive_bytes),
                indent: level,
            }
        })
        .collect();
    let rows: Vec<Vec<String>> = tree
        .rows
        .iter()
        .map(|d| {
            vec![
                path_cell(&d.path),
                bytes_cell(d.recursive_bytes),
                count_cell(d.recursive_entries),
                pct(d.recursive_bytes, total),
            ]
        })
        .collect();
    let note = format!(
        "Recursive size of the directories of the first {} levels below the root ({} largest at the first level, then {} and {} of each), nested; bars to the scale of the whole tree ({}).{}",
        super::stream::DIR_TREE_DEPTH,
        DIR_TREE_CHILDREN[0],
        DIR_TREE_CHILDREN[1],
        DIR_TREE_CHILDREN[2],
        esc(&human_bytes(total)),
        if tree.incomplete {
            " Some directories were left out: the input held more directories of these levels than the report keeps."
        } else {
            ""
        }
    );
    section(
        o,
        "capacity",
        "Capacity by directory",
        &note,
        &hbars(&bars, Some(total), false),
        &table(&["directory", "#size", "#entries", "#of all"], &rows),
    );
}

fn histogram_sections(o: &mut String, r: &Report) {
    if let Some(buckets) = &r.size_histogram {
        let used: Vec<usize> = (0..buckets.len())
            .filter(|&i| buckets[i].files > 0)
            .collect();
        let range = match (used.first(), used.last()) {
            (Some(&lo), Some(&hi)) => lo..hi + 1,
            _ => 0..0,
        };
        let bars: Vec<Bar> = range
            .clone()
            .map(|i| Bar {
                label: size_bucket_label(i),
                value: buckets[i].files,
                text: grouped(buckets[i].files),
                indent: 0,
            })
            .collect();
        let rows: Vec<Vec<String>> = range
            .map(|i| {
                vec![
                    esc(&size_bucket_label(i)),
                    count_cell(buckets[i].files),
                    bytes_cell(buckets[i].bytes),
                ]
            })
            .collect();
        section(
            o,
            "sizes",
            "File sizes",
            "Files per power-of-two size range, and the bytes they hold.",
            &vbars(&bars),
            &table(&["size", "#files", "#total"], &rows),
        );
    }
    for (id, title, buckets) in [
        ("mtime", "Age by modification time", &r.age_histogram),
        ("atime", "Age by access time", &r.atime_histogram),
    ] {
        let Some(buckets) = buckets else {
            continue;
        };
        let bars: Vec<Bar> = AGE_BUCKETS
            .iter()
            .zip(buckets)
            .map(|(l, b)| Bar {
                label: l.to_string(),
                value: b.bytes,
                text: human_bytes(b.bytes),
                indent: 0,
            })
            .collect();
        let rows: Vec<Vec<String>> = AGE_BUCKETS
            .iter()
            .zip(buckets)
            .map(|(l, b)| vec![esc(l), count_cell(b.files), bytes_cell(b.bytes)])
            .collect();
        section(
            o,
            id,
            title,
            &format!(
                "Bytes of files by age before {} (&lt;1m is 30 days, &lt;1y 365 days; “future” are times after it).",
                time_ns(r.age_reference_ns)
            ),
            &vbars(&bars),
            &table(&["age", "#files", "#size"], &rows),
        );
    }
}

fn group_sections(o: &mut String, r: &Report) {
    let total = r.summary.bytes;
    let mut one =
        |id: &str, title: &str, key: &str, note: &str, rows: Vec<(String, u64, u64, u64)>| {
            let bars: Vec<Bar> = rows
                .iter()
                .map(|(k, _, b, _)| Bar {
                    label: k.clone(),
                    value: *b,
                    text: human_bytes(*b),
                    indent: 0,
                })
                .collect();
            let cells: Vec<Vec<String>> = rows
                .iter()
                .enumerate()
                .map(|(i, (k, n, b, u))| {
                    vec![
                        format!(
                            "<span class=\"sw\" style=\"background:{}\"></span>{}",
                            PALETTE[i % PALETTE.len()],
                            esc(k)
                        ),
                        count_cell(*n),
                        bytes_cell(*b),
                        bytes_cell(*u),
                        pct(*b, total),
                    ]
                })
                .collect();
            section(
                o,
                id,
                title,
                note,
                &hbars(&bars, None, true),
                &table(&[key, "#entries", "#size", "#used", "#of all"], &cells),
            );
        };
    if let Some(rows) = &r.by_uid {
        one(
            "owners",
            "Usage by owner",
            "owner",
            "Entries and bytes per owner (the name where an NFSv4 server sends one, else the \
             numeric uid, as the server reports it), largest first.",
            rows.iter()
                .map(|g| (g.key.to_string(), g.entries, g.bytes, g.used))
                .collect(),
        );
    }
    if let Some(rows) = &r.by_gid {
        one(
            "groups",
            "Usage by group",
            "group",
            "Entries and bytes per group (the NFSv4 name, else the numeric gid), largest first.",
            rows.iter()
                .map(|g| (g.key.to_string(), g.entries, g.bytes, g.used))
                .collect(),
        );
    }
    if let Some(rows) = &r.by_extension {
        one(
            "extensions",
            "Usage by extension",
            "extension",
            "Files and bytes per file name extension (lowercased), largest first.",
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
        );
    }
}

fn largest_sections(o: &mut String, r: &Report) {
    let dirs: Option<(Vec<DirRow>, &str)> = match (&r.largest_dirs_by_bytes, &r.dir_tree) {
        (Some(d), _) => Some((
            d.clone(),
            "Directories by the size of everything below them.",
        )),
        (None, Some(t)) => {
            let mut d = t.rows.clone();
            d.sort_by(|a, b| {
                b.recursive_bytes
                    .cmp(&a.recursive_bytes)
                    .then(a.path.cmp(&b.path))
            });
            d.truncate(20);
            Some((
                d,
                "Directories of the first levels by the size of everything below them (a stream input keeps totals for the first levels only; a scan database has them for every directory).",
            ))
        }
        _ => None,
    };
    if let Some((d, note)) = dirs {
        let bars: Vec<Bar> = d
            .iter()
            .map(|x| Bar {
                label: display_path(&x.path),
                value: x.recursive_bytes,
                text: human_bytes(x.recursive_bytes),
                indent: 0,
            })
            .collect();
        let rows: Vec<Vec<String>> = d
            .iter()
            .map(|x| {
                vec![
                    path_cell(&x.path),
                    bytes_cell(x.recursive_bytes),
                    count_cell(x.recursive_entries),
                ]
            })
            .collect();
        section(
            o,
            "largest-dirs",
            "Largest directories",
            note,
            &hbars(&bars, None, false),
            &table(&["directory", "#size", "#entries"], &rows),
        );
    }
    if let Some(f) = &r.largest_files {
        let bars: Vec<Bar> = f
            .iter()
            .map(|x| Bar {
                label: display_path(x.path.rsplit(|&b| b == b'/').next().unwrap_or(&x.path)),
                value: x.size,
                text: human_bytes(x.size),
                indent: 0,
            })
            .collect();
        let rows: Vec<Vec<String>> = f
            .iter()
            .map(|x| {
                vec![
                    path_cell(&x.path),
                    bytes_cell(x.size),
                    format_utc(x.mtime_ns.div_euclid(1_000_000_000)),
                    x.owner_key().to_string(),
                ]
            })
            .collect();
        section(
            o,
            "largest-files",
            "Largest files",
            "By size (apparent size, as the server reports it).",
            &hbars(&bars, None, false),
            &table(&["file", "#size", "modified (UTC)", "owner"], &rows),
        );
    }
}

fn errors_section(o: &mut String, r: &Report) {
    let _ = write!(o, "<section id=\"errors\"><h2>Errors</h2>");
    match &r.errors {
        None => o.push_str(
            "<p class=\"note\">This input does not record per-path errors (a scan database does; NDJSON and Parquet scans write them to stderr and <code>--errors FILE</code>).</p>",
        ),
        Some(e) if e.total == 0 => o.push_str(
            "<p class=\"note\" data-total=\"errors\" data-value=\"0\">No path failed: every directory and entry was read.</p>",
        ),
        Some(e) => {
            let _ = write!(
                o,
                "<p class=\"note\" data-total=\"errors\" data-value=\"{}\">{} paths could not be read. By procedure and status, and the first ones:</p>",
                e.total,
                grouped(e.total)
            );
            let bars: Vec<Bar> = e
                .by_kind
                .iter()
                .map(|(p, s, n)| Bar {
                    label: format!("{p} {s}"),
                    value: *n,
                    text: grouped(*n),
                    indent: 0,
                })
                .collect();
            let kinds: Vec<Vec<String>> = e
                .by_kind
                .iter()
                .map(|(p, s, n)| vec![esc(p), esc(s), count_cell(*n)])
                .collect();
            let first: Vec<Vec<String>> = e
                .first
                .iter()
                .map(|(path, p, s, m)| vec![path_cell(path), esc(p), esc(s), esc(m)])
                .collect();
            let _ = write!(
                o,
                "<div class=\"pair\"><div>{}</div><div>{}</div></div>{}",
                hbars(&bars, None, true),
                table(&["procedure", "status", "#paths"], &kinds),
                table(&["path", "procedure", "status", "message"], &first)
            );
        }
    }
    o.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_groups() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1234), "1,234");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(pct(1, 4), "25.0%");
    }

    #[test]
    fn a_page_says_an_interrupted_scan_is_not_complete() {
        let mut r = Report {
            source: "x.db".into(),
            format: "sqlite",
            scan: Some(ScanMeta {
                url: "nfs://h/<e>".into(),
                status: "interrupted".into(),
                started_ns: 0,
                finished_ns: Some(1_000_000_000),
                entries: Some(3),
                errors: Some(0),
                message: None,
                threads: None,
                connections: None,
                backend: None,
            }),
            ..Report::default()
        };
        r.summary.entries = 3;
        let page = render_html(&r);
        assert!(page.contains("data-status=\"interrupted\""));
        assert!(page.contains("not a complete picture"));
        assert!(page.contains("nfs://h/&lt;e&gt;"));
        assert!(!page.contains("<script"));
        // Nothing is fetched: no script, no link, no URL but the scanned one.
        assert!(!page.contains("<link") && !page.contains("src="));
        r.scan.as_mut().unwrap().status = "completed".into();
        assert!(render_html(&r).contains("data-status=\"completed\""));
    }
}
