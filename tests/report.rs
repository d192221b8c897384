//! `nfs-walker report`, end to end: the HTML report of an nfs-ganesha scan (from the database
//! and from Parquet) is one self-contained page; headless Chromium opens it with the network
//! cut off, logs no console message, renders a page that is not blank, and the totals it shows
//! are those of `stats --json`.
//!
//! Needs nfs-ganesha (NFS_WALKER_GANESHA_URL/_DIR) and Debian's `chromium` (tests/run.sh
//! installs it); without them the test is skipped with a note, unless CI is set.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<&'static str> {
    match Command::new("chromium").arg("--version").output() {
        Ok(o) if o.status.success() => Some("chromium"),
        _ => require("chromium"),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("report-it", name)
}

/// The `data-value` of the element marked `data-total="NAME"`.
fn total(page: &str, name: &str) -> Option<u64> {
    let marker = format!("data-total=\"{name}\" data-value=\"");
    let at = page.find(&marker)? + marker.len();
    page[at..].split('"').next()?.parse().ok()
}

/// Distinct colours of a PNG (8-bit RGB or RGBA, as Chromium writes screenshots), decoded
/// with Python's standard library: zlib and the five PNG row filters.
const COUNT_COLOURS_PY: &str = r#"
import sys, zlib, struct
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w, h, bpp = 8, b"", 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, colour = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and colour in (2, 6), (depth, colour)
        bpp = 3 if colour == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colours = set()
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    if y % 4 == 0:
        for x in range(0, stride, bpp * 2):
            colours.add(bytes(line[x:x + 3]))
    prev = line
print(len(colours))
"#;

/// Opens `page` in headless Chromium with every network request failing; returns (stderr
/// log, DOM) and writes a screenshot to `png`.
fn open_in_chromium(chromium: &str, page: &Path, png: &Path) -> (String, String) {
    let url = format!("file://{}", page.display());
    let run = |extra: &[String]| {
        let profile = page.with_extension(format!("profile-{}", extra.len()));
        let out = Command::new("timeout")
            .arg("120")
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // The network is off: any request the page made would fail and be logged.
                "--proxy-server=127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium");
        let _ = std::fs::remove_dir_all(&profile);
        assert!(out.status.success(), "chromium: {out:?}");
        out
    };
    let shot = run(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1000,1600".into(),
    ]);
    let dom = run(&["--dump-dom".into()]);
    (
        String::from_utf8_lossy(&shot.stderr).into_owned() + &String::from_utf8_lossy(&dom.stderr),
        String::from_utf8_lossy(&dom.stdout).into_owned(),
    )
}

#[test]
fn chromium_shows_the_report_offline_with_the_totals_of_stats() {
    let Some((url, _export)) = ganesha() else {
        return;
    };
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = temp_dir("report");
    let tree_url = url_with_path(&url, "mixed");
    let db = dir.join("mixed.db");
    let pq = dir.join("mixed.parquet");
    common::run_walker_ok(&[
        common::os("scan"),
        common::os(&tree_url),
        common::os("-q"),
        common::os("-o"),
        db.as_os_str(),
    ]);
    common::run_walker_ok(&[
        common::os("scan"),
        common::os(&tree_url),
        common::os("-q"),
        common::os("-o"),
        pq.as_os_str(),
    ]);
    for input in [&db, &pq] {
        let what = input.display().to_string();
        let html = input.with_extension("html");
        common::run_walker_ok(&[
            common::os("report"),
            common::os("-q"),
            input.as_os_str(),
            common::os("-o"),
            html.as_os_str(),
        ]);
        let page = std::fs::read_to_string(&html).unwrap();
        // Self-contained: nothing to fetch.
        for banned in [
            "<script", "<link", "src=", "url(", "@import", "http://", "https://",
        ] {
            assert!(!page.contains(banned), "{what}: the page holds {banned}");
        }
        let stats: Value = serde_json::from_slice(
            &common::run_walker_ok(&[common::os("stats"), input.as_os_str(), common::os("--json")])
                .stdout,
        )
        .unwrap();
        let s = &stats["summary"];
        let by_type = |t: &str| -> u64 {
            s["by_type"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["type"] == t)
                .map_or(0, |r| r["entries"].as_u64().unwrap())
        };
        assert!(s["entries"].as_u64().unwrap() > 1000, "{what}: {s}");
        assert_eq!(total(&page, "entries"), s["entries"].as_u64(), "{what}");
        assert_eq!(total(&page, "bytes"), s["bytes"].as_u64(), "{what}");
        assert_eq!(total(&page, "used"), s["used"].as_u64(), "{what}");
        assert_eq!(total(&page, "files"), Some(by_type("file")), "{what}");
        assert_eq!(total(&page, "dirs"), Some(by_type("dir")), "{what}");
        assert_eq!(total(&page, "depth_max"), s["depth_max"].as_u64(), "{what}");
        assert_eq!(stats["scan"]["status"], "completed", "{what}");
        assert!(page.contains("data-status=\"completed\""), "{what}");
        if input == &db {
            assert_eq!(
                total(&page, "errors"),
                stats["scan"]["errors"].as_u64(),
                "{what}"
            );
        }
        let png = input.with_extension("png");
        let (log, dom) = open_in_chromium(chromium, &html, &png);
        let console: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("CONSOLE") || l.contains("net::ERR"))
            .collect();
        assert!(console.is_empty(), "{what}: console messages: {console:#?}");
        for heading in [
            "Capacity by directory",
            "File sizes",
            "Age by modification time",
            "Age by access time",
            "Usage by owner",
            "Usage by group",
            "Usage by extension",
            "Largest directories",
            "Largest files",
            "Errors",
        ] {
            assert!(dom.contains(heading), "{what}: the page lacks {heading}");
        }
        let colours = Command::new("python3")
            .arg("-c")
            .arg(COUNT_COLOURS_PY)
            .arg(&png)
            .output()
            .expect("run python3");
        assert!(colours.status.success(), "{colours:?}");
        let colours: usize = String::from_utf8_lossy(&colours.stdout)
            .trim()
            .parse()
            .unwrap();
        // A blank page has one colour; text, bars and the palette give hundreds.
        assert!(colours > 50, "{what}: screenshot has {colours} colours");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
