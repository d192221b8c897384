//! Multi-host scans as users run them: several `nfs-walker scan --queue` processes against
//! mock-nfsd and a private redis-server; one is SIGKILLed, restarted, another joins late, Redis
//! restarts; `nfs-walker merge` of the parts must equal mock-nfsd's exact listing.

mod common;

use checksum::ChecksumAlgo;
use common::redis::RedisServer;
use common::*;
use mock_nfsd::content::file_checksum;
use mock_nfsd::{Config, Server, ServerHandle};
use nfs_walker::record::{ContentFields, EntryContent, EntryType};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn mixed_with_latency() -> Config {
    Config {
        tree: "mixed:200000".parse().unwrap(),
        latency: Some("fixed:5ms".parse().unwrap()),
        ..Default::default()
    }
}

/// One host: a scan process writing `part` through `queue`, slowed down (one thread, few calls
/// in flight) so that the test can act while it runs.
fn host(url: &str, queue: &str, part: &Path) -> Child {
    host_with(url, queue, part, &[])
}

/// [`host`] with `extra` scan options.
fn host_with(url: &str, queue: &str, part: &Path, extra: &[&str]) -> Child {
    Command::new(walker_bin())
        .args(["scan", url, "--queue", queue, "-o"])
        .arg(part)
        .args(["--threads", "1", "--inflight", "4"])
        .args(["--claim-idle", "1s", "--checkpoint-secs", "0.2"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a scan")
}

fn wait(child: Child, what: &str) -> Output {
    let out = child.wait_with_output().expect("wait for a scan");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn merge_parts(parts: &[PathBuf], out: &Path) -> String {
    let o = Command::new(walker_bin())
        .arg("merge")
        .args(parts)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run merge");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "merge: {err}");
    err
}

/// A scan that exits 1 with one line on stderr saying `what`.
fn assert_one_line_refusal(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(what), "{err}");
}

/// mock-nfsd's URL over NFSv4.1 (no MOUNT: the NFS port alone).
fn v4_url(server: &ServerHandle) -> String {
    format!("nfs://127.0.0.1/export?version=4&nfsport={}", server.port())
}

/// Waits for every host of `hosts` (writing `parts`) to say the scan is complete, and checks
/// that each wrote a share of it.
fn wait_all_shared(hosts: Vec<Child>, parts: &[PathBuf]) {
    for (h, part) in hosts.into_iter().zip(parts) {
        let what = part.display().to_string();
        let err = String::from_utf8_lossy(&wait(h, &what).stderr).into_owned();
        assert!(err.contains("the scan is complete"), "{what}: {err}");
        assert!(part_rows(part) > 1, "{what}: this host listed nothing");
    }
}

#[test]
fn hosts_killed_restarted_and_late_merge_to_the_exact_listing() {
    killed_restarted_and_late("ndjson");
}

#[test]
fn database_parts_of_hosts_killed_restarted_and_late_merge_to_the_exact_listing() {
    killed_restarted_and_late("db");
}

/// Rows in a part: entries of a database, lines of NDJSON (the last possibly torn).
fn part_rows(path: &Path) -> usize {
    if path.extension().is_some_and(|e| e == "db") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM entries", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize
    } else {
        std::fs::read(path).unwrap().split(|&x| x == b'\n').count()
    }
}

/// Four hosts writing parts of kind `ext`: two killed mid-scan (one comes back, one never),
/// one joining late; the merged parts are exactly the listing.
fn killed_restarted_and_late(ext: &str) {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let config = mixed_with_latency();
    let server = Server::start(config.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let part = |n: &str| dir.path().join(format!("part-{n}.{ext}"));
    let queue = redis.url(&format!("mixed-{ext}"));
    let a = host(&server.url(), &queue, &part("a"));
    let mut b = host(&server.url(), &queue, &part("b"));
    let mut c = host(&server.url(), &queue, &part("c"));
    // Once b and c have written (so they hold tasks: the first host holds the root's subtree
    // and they work on what it offers), they die mid-scan; their parts may end in a torn line.
    // c never comes back: its tasks are taken over by the others after --claim-idle.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while [part("b"), part("c")]
        .iter()
        .any(|p| !p.exists() || part_rows(p) <= 1)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "b or c got no work in 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for h in [&mut b, &mut c] {
        h.kill().unwrap();
        h.wait().unwrap();
    }
    assert!(
        part_rows(&part("b")) > 1,
        "b wrote nothing before it was killed"
    );
    std::thread::sleep(Duration::from_millis(300));
    // d joins late; b comes back with the same command (its earlier part is kept aside).
    let d = host(&server.url(), &queue, &part("d"));
    std::thread::sleep(Duration::from_millis(300));
    let b2 = host(&server.url(), &queue, &part("b"));
    let mut taken_over = 0;
    for (h, name) in [(a, "a"), (d, "d"), (b2, "b restarted")] {
        let err = String::from_utf8_lossy(&wait(h, name).stderr).into_owned();
        assert!(err.contains("the scan is complete"), "{name}: {err}");
        taken_over += err
            .split(" taken over from stopped hosts")
            .next()
            .and_then(|s| s.rsplit('(').next())
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert!(taken_over > 0, "no host took over the killed host's tasks");
    // The late host found work: directories are offered to idle hosts while others hold
    // large subtrees.
    assert!(part_rows(&part("d")) > 1, "the late host listed nothing");
    let mut parts: Vec<PathBuf> = ["a", "b", "c", "d"].iter().map(|n| part(n)).collect();
    let aside = dir.path().join(format!("part-b.1.{ext}"));
    assert!(aside.exists(), "the killed run's part was not kept aside");
    parts.push(aside);
    let merged = dir.path().join("scan.ndjson");
    let summary = merge_parts(&parts, &merged);
    assert!(summary.contains("duplicate copies dropped"), "{summary}");
    assert_exact_ndjson(
        &std::fs::read(&merged).unwrap(),
        mock_nfsd::listing(&config, false),
        "merged parts",
    );
    // The queue is empty and says so.
    let status = Command::new(walker_bin())
        .args(["queue", "status", &queue, "--json", "--interval", "0.1"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["state"], "complete");
    assert_eq!(v["queued"], 0);
    assert_eq!(v["pending"], 0);
    assert_eq!(v["tasks_found"], v["tasks_done"]);
    // The same parts as a database: one row per entry, parents resolved.
    let db = dir.path().join("scan.db");
    merge_parts(&parts, &db);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (rows, orphans): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(parent_id IS NULL AND path <> '.') FROM entries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows as usize, mock_nfsd::listing(&config, false).count());
    assert_eq!(orphans, 0);
    server.shutdown();
}

#[test]
fn a_redis_restart_mid_scan_loses_nothing() {
    let Some(mut redis) = RedisServer::start(None, true) else {
        return;
    };
    let config = mixed_with_latency();
    let server = Server::start(config.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let parts: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| dir.path().join(format!("part-{n}.ndjson")))
        .collect();
    let queue = redis.url("restart");
    let hosts: Vec<Child> = parts
        .iter()
        .map(|p| host(&server.url(), &queue, p))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    redis.stop();
    std::thread::sleep(Duration::from_millis(1500));
    redis.restart();
    let mut said_so = false;
    for (i, h) in hosts.into_iter().enumerate() {
        let out = wait(h, &format!("host {i}"));
        said_so |= String::from_utf8_lossy(&out.stderr).contains("retrying");
    }
    assert!(said_so, "no host said it was waiting for Redis");
    let merged = dir.path().join("scan.ndjson");
    merge_parts(&parts, &merged);
    assert_exact_ndjson(
        &std::fs::read(&merged).unwrap(),
        mock_nfsd::listing(&config, false),
        "merged parts after a Redis restart",
    );
    server.shutdown();
}

#[test]
fn a_wrong_password_and_another_scans_queue_are_refused_in_one_line() {
    let Some(redis) = RedisServer::start(Some("pw-right"), false) else {
        return;
    };
    let small = Config {
        tree: "mixed:2000".parse().unwrap(),
        ..Default::default()
    };
    let one = Server::start(small.clone()).unwrap();
    let other = Server::start(small).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scan = |url: &str, queue: &str, part: &str, env_pw: Option<&str>| {
        let mut c = Command::new(walker_bin());
        c.args(["scan", url, "--queue", queue, "-q", "-o"])
            .arg(dir.path().join(part));
        c.env_remove("NFS_WALKER_REDIS_PASSWORD");
        if let Some(p) = env_pw {
            c.env("NFS_WALKER_REDIS_PASSWORD", p);
        }
        c.output().unwrap()
    };
    let one_line_refusal = |o: &Output, what: &str| {
        assert_one_line_refusal(o, what);
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("pw-"),
            "a password shows"
        );
    };
    let wrong = format!("redis://:pw-wrong@127.0.0.1:{}/0/q", redis.port);
    one_line_refusal(
        &scan(&one.url(), &wrong, "w.ndjson", None),
        "refused the password",
    );
    // The password from the environment works, and the scan completes.
    let queue = redis.url_without_password("q");
    let ok = scan(&one.url(), &queue, "one.ndjson", Some("pw-right"));
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Another server's scan cannot use that queue.
    one_line_refusal(
        &scan(&other.url(), &queue, "other.ndjson", Some("pw-right")),
        "belongs to another scan",
    );
    one.shutdown();
    other.shutdown();
}

/// Two hosts over NFSv4.1 share a scan: the tasks carry v4 handles of 128 bytes (twice what
/// NFSv3 allows), and the merged parts are exactly the listing. A host that would speak NFSv3
/// to the scan is refused, whether its URL says so or the URL is the same and `--nfs-version 4`
/// made the difference.
#[test]
fn hosts_over_nfs4_merge_to_the_exact_listing_and_v3_hosts_are_refused() {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let config = Config {
        tree: "mixed:50000".parse().unwrap(),
        latency: Some("fixed:2ms".parse().unwrap()),
        v4_long_handles: true,
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = v4_url(&server);
    let queue = redis.url("v4");
    let parts: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| dir.path().join(format!("part-{n}.ndjson")))
        .collect();
    let hosts = parts.iter().map(|p| host(&url, &queue, p)).collect();
    wait_all_shared(hosts, &parts);
    let merged = dir.path().join("scan.ndjson");
    merge_parts(&parts, &merged);
    assert_exact_ndjson(
        &std::fs::read(&merged).unwrap(),
        mock_nfsd::listing(&config, false),
        "merged parts of a v4 scan",
    );

    let scan = |url: &str, queue: &str, part: &str, extra: &[&str]| {
        Command::new(walker_bin())
            .args(["scan", url, "--queue", queue, "-q", "-o"])
            .arg(dir.path().join(part))
            .args(extra)
            .output()
            .unwrap()
    };
    assert_one_line_refusal(
        &scan(&server.url(), &queue, "v3.ndjson", &[]),
        "belongs to another scan",
    );
    // The same URL: only the version spoken differs.
    let small = Server::start(Config {
        tree: "mixed:2000".parse().unwrap(),
        ..Default::default()
    })
    .unwrap();
    let queue = redis.url("nfs-version");
    let v4 = scan(&small.url(), &queue, "v4.ndjson", &["--nfs-version", "4"]);
    assert_eq!(
        v4.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v4.stderr)
    );
    assert_one_line_refusal(
        &scan(&small.url(), &queue, "small-v3.ndjson", &[]),
        "belongs to another scan",
    );
    small.shutdown();
    server.shutdown();
}

/// The per-path errors of a scan database: (path, procedure, status, message), each row.
fn db_errors(path: &Path) -> Vec<(Vec<u8>, String, Option<String>, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(path AS BLOB), procedure, status, message FROM errors ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Hosts writing database parts, against a server that adds hostile names to some listings
/// (each a per-path error, never an entry): `merge` gives the entries exactly and every part's
/// errors once each, with their procedure and message.
#[test]
fn database_parts_merge_their_per_path_errors_once_each() {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let config = Config {
        tree: "mixed:30000".parse().unwrap(),
        latency: Some("fixed:1ms".parse().unwrap()),
        faults: "names:p=0.2".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let queue = redis.url("errors");
    let parts: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| dir.path().join(format!("part-{n}.db")))
        .collect();
    let hosts: Vec<Child> = parts
        .iter()
        .map(|p| host(&server.url(), &queue, p))
        .collect();
    for (h, part) in hosts.into_iter().zip(&parts) {
        let out = h.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // 2: some paths failed, the scan went on
        assert_eq!(out.status.code(), Some(2), "{}: {err}", part.display());
        assert!(err.contains("the scan is complete"), "{err}");
    }
    let mut want: Vec<_> = parts.iter().flat_map(|p| db_errors(p)).collect();
    want.sort();
    want.dedup();
    assert!(want.len() > 10, "{} errors in the parts", want.len());
    // Hostile names (no status), and LOOKUPs of names sent without attributes that the server
    // then does not know (NFS3ERR_NOENT): both kinds go through the merge.
    assert!(want
        .iter()
        .any(|e| e.1 == "readdirplus" && e.2.is_none() && e.3.contains("invalid entry name")));
    assert!(want
        .iter()
        .any(|e| e.1 == "lookup" && e.2.as_deref() == Some("NFS3ERR_NOENT")));
    // A copy of a part stands for a host whose directories were taken over and listed again:
    // its errors are in two parts, and merged once.
    let copy = dir.path().join("part-a-again.db");
    std::fs::copy(&parts[0], &copy).unwrap();
    let mut with_copy = parts.clone();
    with_copy.push(copy);
    let merged = dir.path().join("scan.db");
    let said = merge_parts(&with_copy, &merged);
    let mut got = db_errors(&merged);
    assert_eq!(got.len(), want.len(), "each error once");
    got.sort();
    assert_eq!(got, want);
    assert!(
        said.contains(&format!("{} per-path errors", want.len())),
        "{said}"
    );
    let rows: i64 = rusqlite::Connection::open(&merged)
        .unwrap()
        .query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows as usize, mock_nfsd::listing(&config, false).count());
    server.shutdown();
}

const CHECKSUM_MAX_SIZE: u64 = 256 << 10;

/// The hashes of the lines `mock-nfsd --print-listing --checksum ALGO --checksum-max-size
/// CHECKSUM_MAX_SIZE` prints, from the same library calls.
fn checksummed_listing(config: &Config, algo: ChecksumAlgo) -> impl Iterator<Item = u64> + '_ {
    let fields = ContentFields {
        checksum: true,
        mime: false,
    };
    let mut line = Vec::new();
    mock_nfsd::listing(config, false).map(move |rec| {
        let a = &rec.attrs;
        let sum = (a.kind == EntryType::File && a.size <= CHECKSUM_MAX_SIZE)
            .then(|| file_checksum(algo, a.fileid, a.size));
        let content = EntryContent {
            checksum: sum.as_deref(),
            mime: None,
        };
        line.clear();
        rec.as_ref()
            .write_ndjson_content(&mut line, fields, &content);
        line_hash(&line[..line.len() - 1])
    })
}

/// Two hosts reading contents (`--checksum blake3`), one killed mid-scan and restarted: a
/// task is acknowledged only once its files' records, checksums included, are durable, so
/// the merged parts are exactly the checksummed listing.
fn content_hosts_killed_and_restarted(url: &str, config: &Config, queue: &str, ext: &str) {
    let dir = tempfile::tempdir().unwrap();
    let part = |n: &str| dir.path().join(format!("part-{n}.{ext}"));
    let max = CHECKSUM_MAX_SIZE.to_string();
    let content = ["--checksum", "blake3", "--checksum-max-size", &max];
    let a = host_with(url, queue, &part("a"), &content);
    let mut b = host_with(url, queue, &part("b"), &content);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !part("b").exists() || part_rows(&part("b")) <= 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "b got no work in 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    b.kill().unwrap();
    b.wait().unwrap();
    let b2 = host_with(url, queue, &part("b"), &content);
    let parts = [part("a"), part("b")];
    wait_all_shared(vec![a, b2], &parts);
    let mut parts = parts.to_vec();
    parts.push(dir.path().join(format!("part-b.1.{ext}")));
    let merged = dir.path().join("scan.ndjson");
    let summary = merge_parts(&parts, &merged);
    assert!(summary.contains("duplicate copies dropped"), "{summary}");
    assert_exact_line_hashes(
        &std::fs::read(&merged).unwrap(),
        checksummed_listing(config, ChecksumAlgo::Blake3),
        "merged parts of a content scan",
    );
}

fn content_config() -> Config {
    Config {
        tree: "mixed:10000".parse().unwrap(),
        latency: Some("fixed:2ms".parse().unwrap()),
        ..Default::default()
    }
}

#[test]
fn content_hosts_killed_and_restarted_merge_to_the_exact_checksummed_listing() {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let config = content_config();
    let server = Server::start(config.clone()).unwrap();
    content_hosts_killed_and_restarted(&server.url(), &config, &redis.url("content"), "ndjson");
    server.shutdown();
}

/// Over NFSv4.1, with 128-byte handles: the reads' PUTFH carries them whole.
#[test]
fn content_database_parts_over_nfs4_merge_to_the_exact_checksummed_listing() {
    let Some(redis) = RedisServer::start(None, false) else {
        return;
    };
    let config = Config {
        v4_long_handles: true,
        ..content_config()
    };
    let server = Server::start(config.clone()).unwrap();
    content_hosts_killed_and_restarted(&v4_url(&server), &config, &redis.url("content4"), "db");
    server.shutdown();
}
