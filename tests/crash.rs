//! Crash safety of the scan database: a scan killed with SIGKILL at any moment of its load
//! or its finish, or stopped by a full disk (a file-size limit), leaves a database SQLite
//! finds sound and `stats` opens, holding no row twice.

mod common;

use common::*;
use mock_nfsd::{Config, Server};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("crash", name)
}

fn scan_command(url: &str, db: &Path) -> Command {
    let mut cmd = Command::new(walker_bin());
    cmd.args(["scan", url, "-q", "--checkpoint-secs", "1", "-o"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// What a database holds, checked: integrity, its status, its rows, with no path twice.
struct Checked {
    status: String,
    rows: u64,
}

fn check_database(db: &Path, what: &str) -> Checked {
    // stats opens it first, as users run it (rolling back a hot journal a kill during a
    // commit left).
    let out = Command::new(walker_bin())
        .args(["stats", "--json"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(db).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(check, ["ok"], "{what}");
    let status: String = conn
        .query_row("SELECT status FROM scan", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{what}: scan row: {e}"));
    let (rows, distinct): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT CAST(path AS BLOB)) FROM entries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, distinct, "{what}: a path stored twice");
    Checked {
        status,
        rows: rows as u64,
    }
}

/// Runs the scan to its end once (for its duration), then kills it with SIGKILL at
/// `moments` points spread over that time, more of them near the end (the finish: indexes,
/// the final commit, the last transaction), checking every file left.
fn kill_sweep(tree: &str, latency: Option<&str>, moments: usize) {
    let config = Config {
        tree: tree.parse().unwrap(),
        latency: latency.map(|l| l.parse().unwrap()),
        ..Default::default()
    };
    let expected = mock_nfsd::listing(&config, false).count() as u64;
    let server = Server::start(config).unwrap();
    let dir = temp_dir(&tree.replace(':', "-"));
    let db = dir.join("scan.db");
    let t0 = Instant::now();
    let full = scan_command(&server.url(), &db).output().unwrap();
    let duration = t0.elapsed();
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    let whole = check_database(&db, tree);
    assert_eq!((whole.status.as_str(), whole.rows), ("completed", expected));

    let (mut empty, mut partial, mut completed) = (0, 0, 0);
    for i in 0..moments {
        // Half spread over the whole run, half around its end (under load a run takes
        // longer, so past its measured time too).
        let fraction = if i % 2 == 0 {
            (i as f64 + 1.0) / moments as f64
        } else {
            0.85 + 0.35 * (i as f64 / moments as f64)
        };
        let at = duration.mul_f64(fraction);
        let what = format!(
            "{tree} killed at {:.3} s of {:.3} s",
            at.as_secs_f64(),
            duration.as_secs_f64()
        );
        let mut child = scan_command(&server.url(), &db).spawn().unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        let _ = child.wait();
        let c = check_database(&db, &what);
        assert!(c.rows <= expected, "{what}");
        match c.status.as_str() {
            "running" if c.rows == 0 => empty += 1,
            "running" => partial += 1,
            // Finished, or killed before the new file replaced the old (completed) one.
            "completed" => {
                assert_eq!(c.rows, expected, "{what}");
                completed += 1
            }
            other => panic!("{what}: status {other}"),
        }
        eprintln!("{what}: {} rows, {}", c.rows, c.status);
    }
    eprintln!("{tree}: {empty} empty, {partial} checkpointed part way, {completed} completed");
    // Checkpoints kept work of killed scans.
    assert!(partial > 0, "no kill left a checkpointed database");
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_at_any_moment_of_a_flat_scan_leaves_a_sound_database() {
    kill_sweep("flat:1000000", Some("fixed:5ms"), 12);
}

#[test]
fn sigkill_at_any_moment_of_a_mixed_scan_leaves_a_sound_database() {
    kill_sweep("mixed:200000", Some("fixed:20ms"), 12);
}

/// A file-size limit (as a full disk) stops the writer during the load, the index build or
/// the final commit: the scan reports the error and exits 1, and the file holds its last
/// commit.
#[test]
fn a_full_disk_at_any_stage_leaves_a_sound_database() {
    let config = Config {
        tree: "flat:1000000".parse().unwrap(),
        latency: Some("fixed:5ms".parse().unwrap()),
        ..Default::default()
    };
    let server = Server::start(config).unwrap();
    let dir = temp_dir("fsize");
    let db = dir.join("scan.db");
    let full = scan_command(&server.url(), &db).output().unwrap();
    assert!(full.status.success());
    let size = std::fs::metadata(&db).unwrap().len();
    let mut kept = 0;
    for fraction in [0.3, 0.7, 0.9, 0.97, 0.995] {
        let limit = (size as f64 * fraction) as u64;
        let what = format!("limit {limit} of {size} bytes");
        let mut cmd = scan_command(&server.url(), &db);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(stderr.contains("File too large"), "{what}: {stderr}");
        let c = check_database(&db, &what);
        assert_eq!(c.status, "failed", "{what}");
        eprintln!("{what}: {} rows kept", c.rows);
        kept += u64::from(c.rows > 0);
    }
    assert!(kept > 0, "no checkpoint survived a full disk");
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
