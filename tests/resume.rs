//! `scan --resume`: a scan killed (SIGKILL) or stopped (Ctrl-C) at any moment and resumed,
//! perhaps killed again while resuming, ends with exactly the tree's listing — every path
//! once, every field right, status `completed` — for databases, NDJSON and CSV, against
//! mock-nfsd and nfs-ganesha; and the refusals say why.

mod common;

use common::*;
use mock_nfsd::{Config, Server};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("resume", name)
}

/// A scan writing `out`; `--max-rate` stretches a run over seconds so kills land anywhere.
fn scan_command(url: &str, out: &Path, max_rate: Option<u32>) -> Command {
    let mut cmd = Command::new(walker_bin());
    cmd.args(["scan", url, "-q", "--checkpoint-secs", "0.2", "-o"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(r) = max_rate {
        cmd.args(["--max-rate", &r.to_string()]);
    }
    cmd
}

fn resume_command(out: &Path) -> Command {
    let mut cmd = Command::new(walker_bin());
    cmd.args(["scan", "-q", "--resume"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn ok(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cmd` and kills it with SIGKILL after `after`, or lets it end.
fn run_killed(mut cmd: Command, after: Duration) {
    let mut child = cmd.spawn().unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A database's integrity (SQLite's own check), after `stats` opened it as users do.
fn assert_sound(db: &Path, what: &str) {
    let out = Command::new(walker_bin())
        .args(["stats", "--json"])
        .arg(db)
        .output()
        .unwrap();
    ok(out, &format!("{what}: stats"));
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{what}");
}

/// The output as NDJSON (a database is converted by the tool itself; CSV outputs are
/// compared by path, see [`csv_paths`]).
fn as_ndjson(out: &Path, dir: &Path) -> Vec<u8> {
    match out.extension().and_then(|e| e.to_str()) {
        Some("db") => {
            let nd = dir.join("converted.ndjson");
            let _ = std::fs::remove_file(&nd);
            ok(
                Command::new(walker_bin())
                    .args(["convert", "-q"])
                    .arg(out)
                    .arg(&nd)
                    .output()
                    .unwrap(),
                "convert",
            );
            std::fs::read(&nd).unwrap()
        }
        _ => std::fs::read(out).unwrap(),
    }
}

fn db_status(db: &Path) -> (String, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT status, resumes FROM scan", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

/// Kills a scan of `tree` into `name` at `moments` points of its run (and, every third time,
/// its resume too), resumes it to the end each time, and checks the result is the listing.
fn kill_and_resume_sweep(tree: &str, name: &str, moments: usize, max_rate: u32) {
    let config = Config {
        tree: tree.parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let dir = temp_dir(&format!("{}-{name}", tree.replace(':', "-")));
    let out = dir.join(name);
    let t0 = Instant::now();
    ok(
        scan_command(&server.url(), &out, Some(max_rate))
            .output()
            .unwrap(),
        "the whole scan",
    );
    let duration = t0.elapsed();
    let is_db = name.ends_with(".db");
    let (mut cut_short, mut resumed_twice) = (0, 0);
    for i in 0..moments {
        // Over the whole run, the last tenth (the finish) included.
        let at = duration.mul_f64((i as f64 + 0.5) / moments as f64 * 1.05);
        let what = format!(
            "{tree} {name} killed at {:.2} s of {:.2} s",
            at.as_secs_f64(),
            duration.as_secs_f64()
        );
        for side in ["", ".frontier", "-prior", "-journal"] {
            let mut p = out.as_os_str().to_owned();
            p.push(side);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
        run_killed(scan_command(&server.url(), &out, Some(max_rate)), at);
        // (Killed before the database was made, there is none: the resume starts anew.)
        if is_db && out.exists() {
            assert_sound(&out, &what);
            if db_status(&out).0 != "completed" {
                cut_short += 1;
            }
        } else if !std::fs::read(&out).unwrap_or_default().is_empty() {
            cut_short += 1;
        }
        if i % 3 == 1 {
            // Killed again while resuming (copying, or listing).
            run_killed(resume_command(&out), duration.mul_f64(0.3));
            if is_db && out.exists() {
                assert_sound(&out, &format!("{what}, resume killed"));
            }
            resumed_twice += 1;
        }
        ok(resume_command(&out).output().unwrap(), &what);
        if is_db {
            assert_sound(&out, &what);
            let (status, _) = db_status(&out);
            assert_eq!(status, "completed", "{what}");
            assert!(!dir.join(format!("{name}-prior")).exists(), "{what}");
        }
        assert_exact_ndjson(
            &as_ndjson(&out, &dir),
            mock_nfsd::listing(&config, false),
            &what,
        );
        // A completed scan is not resumed again.
        let again = resume_command(&out).output().unwrap();
        assert!(again.status.success(), "{what}: resume of a completed scan");
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("nothing to resume"),
            "{what}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
    }
    eprintln!("{tree} {name}: {moments} kills, {cut_short} cut a scan short, {resumed_twice} resumes killed too");
    assert!(
        cut_short * 2 >= moments,
        "most kills must land before the end"
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn database_of_a_flat_tree_killed_anywhere_resumes_to_the_listing() {
    kill_and_resume_sweep("flat:1000000", "scan.db", 20, 4000);
}

#[test]
fn database_of_a_mixed_tree_killed_anywhere_resumes_to_the_listing() {
    kill_and_resume_sweep("mixed:200000", "scan.db", 21, 3000);
}

#[test]
fn ndjson_of_a_mixed_tree_killed_anywhere_resumes_to_the_listing() {
    kill_and_resume_sweep("mixed:200000", "scan.ndjson", 21, 3000);
}

/// The scan's paths as a CSV output holds them (the `path_b64` column where a path is not
/// UTF-8), each with its count.
fn csv_paths(out: &Path) -> std::collections::BTreeMap<Vec<u8>, u32> {
    use base64::Engine as _;
    let text = std::fs::read(out).unwrap();
    let mut rdr = csv_rows(&text);
    let header = rdr.remove(0);
    let b64 = header.iter().position(|h| h == b"path_b64").unwrap();
    let mut paths = std::collections::BTreeMap::new();
    for row in rdr {
        let p = if row[b64].is_empty() {
            row[0].clone()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(&row[b64])
                .unwrap()
        };
        *paths.entry(p).or_insert(0) += 1;
    }
    paths
}

/// RFC 4180 rows (quoted fields may hold commas, quotes and line breaks).
fn csv_rows(text: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), Vec::new());
    let (mut quoted, mut i) = (false, 0);
    while i < text.len() {
        let b = text[i];
        match (quoted, b) {
            (true, b'"') if text.get(i + 1) == Some(&b'"') => {
                field.push(b'"');
                i += 1;
            }
            (true, b'"') => quoted = false,
            (true, _) => field.push(b),
            (false, b'"') => quoted = true,
            (false, b',') => row.push(std::mem::take(&mut field)),
            (false, b'\r') if text.get(i + 1) == Some(&b'\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                i += 1;
            }
            (false, _) => field.push(b),
        }
        i += 1;
    }
    assert!(field.is_empty() && row.is_empty(), "a torn CSV record");
    rows
}

#[test]
fn ctrl_c_then_resume_for_database_ndjson_and_csv() {
    let config = Config {
        tree: "mixed:100000".parse().unwrap(),
        ..Default::default()
    };
    let expected: std::collections::BTreeMap<Vec<u8>, u32> = mock_nfsd::listing(&config, false)
        .map(|r| (r.path, 1))
        .collect();
    let server = Server::start(config.clone()).unwrap();
    let dir = temp_dir("ctrl-c");
    for name in ["scan.db", "scan.ndjson", "scan.csv"] {
        let out = dir.join(name);
        let child = scan_command(&server.url(), &out, Some(1500))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(800));
        // SAFETY: sending a signal to our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        let stopped = child.wait_with_output().unwrap();
        assert_eq!(stopped.status.code(), Some(1), "{name}: stopped by Ctrl-C");
        if name.ends_with(".db") {
            assert_eq!(db_status(&out).0, "interrupted");
        }
        // Resumed with a runtime option changed: allowed.
        let mut resume = resume_command(&out);
        resume.args(["--max-rate", "100000", "--threads", "1"]);
        let resumed = resume.output().unwrap();
        ok(resumed, name);
        match name {
            "scan.csv" => assert_eq!(csv_paths(&out), expected, "{name}"),
            _ => assert_exact_ndjson(
                &as_ndjson(&out, &dir),
                mock_nfsd::listing(&config, false),
                name,
            ),
        }
        if name.ends_with(".db") {
            assert_eq!(db_status(&out), ("completed".into(), 1));
        }
    }
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refusals_say_why() {
    let config = Config {
        tree: "mixed:20000".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config).unwrap();
    let dir = temp_dir("refusals");
    let out = dir.join("scan.ndjson");
    let mut child = scan_command(&server.url(), &out, Some(300))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let _ = child.kill();
    let _ = child.wait();
    // What is scanned cannot change.
    let mut cmd = resume_command(&out);
    cmd.args(["--mode", "names"]);
    let r = cmd.output().unwrap();
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("--mode") && err.contains("resume"),
        "refused with the reason: {err}"
    );
    // A URL with --resume is refused by the argument parser (the URL is the scan's own).
    let r = Command::new(walker_bin())
        .args(["scan", &server.url(), "--resume"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!r.status.success());
    // Output without a journal (stdout): nothing to resume from.
    let lone = dir.join("lone.ndjson");
    std::fs::write(&lone, b"").unwrap();
    let r = resume_command(&lone).output().unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("no frontier journal"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ganesha_scan_killed_half_way_and_resumed_equals_find() {
    let Some((url, dir)) = ganesha() else {
        return;
    };
    let tmp = temp_dir("ganesha");
    let tree_url = url_with_path(&url, "mixed");
    let expected = find_listing(&dir.join("mixed"), None, true);
    for name in ["scan.db", "scan.ndjson"] {
        let out = tmp.join(name);
        // More than a second at 200 calls/s; killed half way.
        run_killed(
            scan_command(&tree_url, &out, Some(200)),
            Duration::from_millis(600),
        );
        let killed_short = match name {
            "scan.db" => db_status(&out).0 != "completed",
            _ => true,
        };
        let mut resume = resume_command(&out);
        resume.args(["--max-rate", "100000"]);
        ok(resume.output().unwrap(), name);
        let got = parse_ndjson(&as_ndjson(&out, &tmp));
        assert_same_listing(got, expected.clone(), Fields::All, false, name);
        eprintln!("ganesha {name}: killed before its end: {killed_short}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
