//! Content scans against nfs-ganesha, over the files of tests/fixtures/make-content.py (made by
//! tests/run.sh in the exported directory, under `content/`): checksums equal b3sum,
//! sha256sum, md5sum and `xxhsum -H3` of the exported files (in NDJSON, and in a scan
//! database's `checksum` column); `mime` equals
//! `file --mime-type`; an unreadable file is a per-path NFS3ERR_ACCES and the scan goes on;
//! `stats --duplicates` finds exactly the planted groups, `--hardlinks` the linked pair.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The content tree, or None (skipped) without a server.
fn content() -> Option<(String, std::path::PathBuf)> {
    let (url, dir) = ganesha()?;
    let dir = dir.join("content");
    assert!(
        dir.join("sizes").is_dir(),
        "{} missing: tests/run.sh makes it with tests/fixtures/make-content.py",
        dir.display()
    );
    Some((url_with_path(&url, "content"), dir))
}

fn scan(url: &str, extra: &[&str]) -> (BTreeMap<String, serde_json::Value>, String, Option<i32>) {
    let mut args = vec!["scan", url, "-q"];
    args.extend_from_slice(extra);
    let out = run_walker(&args);
    let mut by_path = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        by_path.insert(v["path"].as_str().unwrap().to_string(), v);
    }
    (
        by_path,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

/// The digest a local tool prints for each file (the hex word next to the name).
fn tool_digests(tool: &[&str], dir: &Path, files: &[String]) -> BTreeMap<String, String> {
    let out = Command::new(tool[0])
        .args(&tool[1..])
        .args(files)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (install b3sum, xxhash, coreutils)", tool[0]));
    assert!(out.status.success(), "{tool:?} failed");
    let mut m = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        // "HEX  NAME" (coreutils, b3sum) or "XXH3 (NAME) = HEX" (xxhsum's BSD style)
        if let Some(rest) = line.strip_prefix("XXH3 (") {
            let (name, hex) = rest.rsplit_once(") = ").unwrap();
            m.insert(name.to_string(), hex.to_string());
        } else {
            let (hex, name) = line.split_once("  ").unwrap();
            m.insert(name.to_string(), hex.to_string());
        }
    }
    m
}

#[test]
fn checksums_equal_the_local_tools() {
    let Some((url, dir)) = content() else { return };
    let files = fixture_files(&dir);
    assert!(files.iter().any(|f| f == "sizes/big-1g"));
    for (algo, tool) in [
        ("blake3", &["b3sum"][..]),
        ("sha256", &["sha256sum"][..]),
        ("md5", &["md5sum"][..]),
        ("xxh3", &["xxhsum", "-H3"][..]),
    ] {
        let (got, err, code) = scan(&url, &["--checksum", algo]);
        assert_eq!(code, Some(0), "{err}");
        let want = tool_digests(tool, &dir, &files);
        assert_eq!(want.len(), files.len());
        for (name, hex) in &want {
            assert_eq!(
                got[name]["checksum"].as_str(),
                Some(format!("{algo}:{hex}").as_str()),
                "{algo} of {name}"
            );
        }
        assert!(got["."]["checksum"].is_null() && got["sizes"]["checksum"].is_null());
    }
}

/// The fixture files' names, relative to the content directory.
fn fixture_files(dir: &Path) -> Vec<String> {
    ["sizes", "types", "dups"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(dir.join(d))
                .unwrap()
                .map(move |e| format!("{d}/{}", e.unwrap().file_name().to_string_lossy()))
        })
        .collect()
}

#[test]
fn database_checksums_and_types_equal_b3sum_and_file() {
    let Some((url, dir)) = content() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("content.db");
    let out = run_walker(&[
        "scan",
        &url,
        "-q",
        "--checksum",
        "blake3",
        "--file-type",
        "-o",
        db.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = fixture_files(&dir);
    let want = tool_digests(&["b3sum"], &dir, &files);
    assert_eq!(want.len(), files.len());
    let conn = rusqlite::Connection::open(&db).unwrap();
    for (name, hex) in &want {
        let (sum, mime): (Option<String>, Option<String>) = conn
            .query_row(
                "SELECT checksum, mime FROM entries WHERE path = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(sum, Some(format!("blake3:{hex}")), "{name}");
        if name.starts_with("types/") {
            let out = Command::new("file")
                .args(["--mime-type", "-b", name])
                .current_dir(&dir)
                .output()
                .expect("file(1) is installed");
            let want = String::from_utf8(out.stdout).unwrap().trim().to_string();
            assert_eq!(mime, Some(want), "{name}");
        }
    }
    let not_files_with_content: i64 = conn
        .query_row(
            "SELECT count(*) FROM entries WHERE type <> 'file' \
             AND (checksum IS NOT NULL OR mime IS NOT NULL)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(not_files_with_content, 0, "only regular files are read");
}

#[test]
fn mime_types_agree_with_file() {
    let Some((url, dir)) = content() else { return };
    let (got, err, code) = scan(&url, &["--file-type"]);
    assert_eq!(code, Some(0), "{err}");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.join("types")).unwrap() {
        let name = format!("types/{}", entry.unwrap().file_name().to_string_lossy());
        let out = Command::new("file")
            .args(["--mime-type", "-b", &name])
            .current_dir(&dir)
            .output()
            .expect("file(1) is installed");
        let want = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert_eq!(got[&name]["mime"].as_str(), Some(want.as_str()), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 8, "PNG, JPEG, GIF, PDF, gzip, zip, ELF, text");
    assert!(got.values().all(|v| v.get("checksum").is_none()));
}

#[test]
fn an_unreadable_file_is_a_per_path_error_and_the_scan_goes_on() {
    let Some((url, _)) = content() else { return };
    // Not root: mode 000 keeps uid 1000 out (the export squashes nobody).
    let url = url.replace('?', "?uid=1000&gid=1000&");
    let (got, err, code) = scan(&url, &["--checksum", "blake3"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(got["secret"]["checksum"].is_null());
    assert!(
        err.contains("secret: read: NFS3ERR_ACCES"),
        "the error names the path and status: {err}"
    );
    assert!(got["dups/a0"]["checksum"].as_str().is_some());
    assert!(err.contains("1 read errors"), "{err}");
}

#[test]
fn duplicates_and_hard_links_are_exactly_the_planted_ones() {
    let Some((url, _)) = content() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // NDJSON and a database: one grouped in memory, the other by SQLite.
    for name in ["scan.ndjson", "scan.db"] {
        let scan_file = tmp.path().join(name);
        planted_groups_are_found(&url, &scan_file);
    }
}

fn planted_groups_are_found(url: &str, scan_file: &Path) {
    let out = run_walker(&[
        "scan",
        url,
        "-q",
        "--checksum",
        "xxh3",
        "-o",
        scan_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let groups = |min_size: &str| -> BTreeSet<Vec<String>> {
        let out = run_walker(&[
            "stats",
            scan_file.to_str().unwrap(),
            "--duplicates",
            "--min-size",
            min_size,
            "--json",
            "-n",
            "100",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["duplicates"]["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let mut p: Vec<String> = g["paths"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
                    .collect();
                p.sort();
                p
            })
            .collect()
    };
    let a: Vec<String> = (0..3).map(|i| format!("dups/a{i}")).collect();
    let b: Vec<String> = (0..2).map(|i| format!("dups/b{i}")).collect();
    let c: Vec<String> = (0..4).map(|i| format!("dups/c{i}")).collect();
    assert_eq!(groups("1"), BTreeSet::from([a.clone(), b.clone(), c]));
    assert_eq!(groups("2"), BTreeSet::from([a, b]));
    let out = run_walker(&[
        "stats",
        scan_file.to_str().unwrap(),
        "--hardlinks",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hardlinks"]["groups"], 1);
    let mut linked: Vec<&str> = v["hardlinks"]["top"][0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    linked.sort();
    assert_eq!(linked, ["dups/linked", "dups/linked-too"]);
}

/// Over NFSv4.1 (READ COMPOUNDs on the shared session) the checksums equal b3sum and the
/// types `file --mime-type`, as over v3 (the 1 GiB file included: many chunks in flight).
#[test]
fn v4_checksums_and_types_equal_b3sum_and_file() {
    let Some((url, dir)) = content() else { return };
    let v4 = ganesha_v4(&url, "");
    let files = fixture_files(&dir);
    let (got, err, code) = scan(&v4, &["--checksum", "blake3", "--file-type"]);
    assert_eq!(code, Some(0), "{err}");
    let want = tool_digests(&["b3sum"], &dir, &files);
    for (name, hex) in &want {
        assert_eq!(
            got[name]["checksum"].as_str(),
            Some(format!("blake3:{hex}").as_str()),
            "blake3 of {name} over v4"
        );
    }
    let (v3, err, code) = scan(&url, &["--file-type"]);
    assert_eq!(code, Some(0), "{err}");
    for name in files.iter().filter(|f| f.starts_with("types/")) {
        assert_eq!(got[name]["mime"], v3[name]["mime"], "{name}");
        assert!(got[name]["mime"].is_string(), "{name}");
    }
}
