//! NFSv4.1: `ls` over a session gives exactly what the server holds, against mock-nfsd (whose
//! trees come with their exact listing), through its faults (DELAY storms, sessions destroyed
//! under the client), and against nfs-ganesha (what `find` and `lstat` say).

mod common;

use common::*;
use mock_nfsd::{Config, Server};
use nfs_walker::record::EntryRecord;

fn v4_url(port: u16, sub: &str) -> String {
    format!(
        "nfs://127.0.0.1:{port}/export/{}?version=4",
        sub.trim_start_matches('/')
    )
}

/// The entries directly below `dir` ("" for the root) in the mock's exact listing, with paths
/// relative to `dir`.
fn mock_children(config: &Config, dir: &[u8]) -> Vec<EntryRecord> {
    let prefix: Vec<u8> = if dir.is_empty() {
        Vec::new()
    } else {
        [dir, b"/"].concat()
    };
    let depth = if dir.is_empty() {
        1
    } else {
        dir.iter().filter(|&&b| b == b'/').count() as u32 + 2
    };
    mock_nfsd::listing(config, false)
        .filter(|r| r.depth == depth && r.path.starts_with(&prefix))
        .map(|mut r| {
            r.path.drain(..prefix.len());
            r.depth = 1;
            r
        })
        .collect()
}

fn ls_json(url: &str, extra: &[&str]) -> Vec<EntryRecord> {
    let mut args = vec!["ls", "--json", url];
    args.extend_from_slice(extra);
    let out = run_walker(&args);
    assert!(
        out.status.success(),
        "ls {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_ndjson(&out.stdout)
}

#[test]
fn ls_over_v4_lists_mock_trees_exactly() {
    let config = Config {
        tree: "mixed:3000:7".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let root = mock_children(&config, b"");
    assert!(root.len() > 5);
    assert_same_listing(
        ls_json(&v4_url(server.port(), ""), &[]),
        root.clone(),
        Fields::All,
        false,
        "ls / over v4",
    );
    // a directory below the export, reached with LOOKUP; and --nfs-version instead of the URL
    let sub = root
        .iter()
        .find(|r| r.attrs.kind == nfs_walker::record::EntryType::Dir)
        .expect("a subdirectory")
        .path
        .clone();
    let url = format!(
        "nfs://127.0.0.1:{}/export/{}",
        server.port(),
        String::from_utf8(sub.clone()).unwrap()
    );
    assert_same_listing(
        ls_json(&url, &["--nfs-version", "4"]),
        mock_children(&config, &sub),
        Fields::All,
        false,
        "ls of a subdirectory over v4",
    );
    let stats = server.stats();
    assert!(stats.get("v4_exchange_id") >= 2);
    assert_eq!(
        stats.get("v4_destroy_session"),
        stats.get("v4_create_session"),
        "every session is destroyed at the end"
    );
    assert_eq!(stats.get("mnt"), 0, "no MOUNT over v4");
}

#[test]
fn ls_over_v4_is_exact_through_delay_storms_and_lost_sessions() {
    let config = Config {
        tree: "flat:20000".parse().unwrap(),
        faults: "delay:p=0.2,badsession:every=4".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let got = ls_json(&v4_url(server.port(), ""), &[]);
    assert_eq!(got.len(), 20000);
    assert_same_listing(
        got,
        mock_children(&config, b""),
        Fields::All,
        false,
        "ls over v4 with faults",
    );
    let stats = server.stats();
    assert!(
        stats.get("v4_create_session") > 2,
        "sessions were re-created: {stats:?}"
    );
}

#[test]
fn v4_errors_name_the_path() {
    let server = Server::start(Config {
        tree: "flat:10".parse().unwrap(),
        ..Default::default()
    })
    .unwrap();
    let out = run_walker(&["ls", &v4_url(server.port(), "no-such-dir")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NFS4ERR_NOENT"), "{err}");
    let out = run_walker(&["ls", &v4_url(server.port(), "f0000003")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ganesha URL for NFSv4.1: the same host and NFS port, no MOUNT.
fn ganesha_v4(url: &str, sub: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let port = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("nfsport="))
        .unwrap_or("2049");
    let rest = base.strip_prefix("nfs://").expect("nfs URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    format!(
        "nfs://{host}:{port}/{}/{}?version=4",
        path.trim_end_matches('/'),
        sub.trim_start_matches('/')
    )
}

/// Owner names to ids for servers that send names: the local users and groups (the test
/// server runs on this host, so its names are ours).
fn local_idmap() -> std::path::PathBuf {
    let mut map = String::new();
    for file in ["/etc/group", "/etc/passwd"] {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() > 2 {
                map.push_str(&format!("{} {}\n", f[0], f[2]));
            }
        }
    }
    let path = std::env::temp_dir().join(format!("nfs-walker-idmap-{}", std::process::id()));
    std::fs::write(&path, map).unwrap();
    path
}

#[test]
fn ls_over_v4_matches_find_and_stat_on_ganesha() {
    let Some((url, dir)) = ganesha() else { return };
    let idmap = local_idmap();
    let idmap_arg = idmap.to_str().unwrap();
    for sub in [
        "",
        "mixed",
        "mixed/special",
        "mixed/links",
        "flat10k",
        "names",
    ] {
        let got = ls_json(&ganesha_v4(&url, sub), &["--idmap", idmap_arg]);
        let expected = find_listing(&dir.join(sub), Some(1), false);
        assert_same_listing(got, expected, Fields::All, false, &format!("v4 ls /{sub}"));
    }
    let _ = std::fs::remove_file(idmap);
}

fn scan_v4(url: &str, extra: &[&str]) -> (Vec<u8>, String, Option<i32>) {
    let mut args = vec!["scan", url, "-q"];
    args.extend_from_slice(extra);
    let out = run_walker(&args);
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn scan_over_v4_is_exact_on_mock_trees_on_both_backends() {
    let config = Config {
        tree: "mixed:30000:5".parse().unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    for io in ["uring", "epoll"] {
        let (out, err, code) = scan_v4(&v4_url(server.port(), ""), &["--io", io]);
        assert_eq!(code, Some(0), "{err}");
        assert_exact_ndjson(&out, mock_nfsd::listing(&config, false), "v4 scan of mixed");
    }
    let stats = server.stats();
    assert!(stats.get("v4_readdir") > 100);
    assert_eq!(stats.get("readdirplus"), 0, "no v3 call in a v4 scan");
}

#[test]
fn scan_over_v4_is_exact_through_session_loss_delay_storms_and_resets() {
    let config = Config {
        tree: "flat:100000".parse().unwrap(),
        faults: "delay:p=0.05,badsession:every=25,reset:every=300,drop:p=0.002"
            .parse()
            .unwrap(),
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let (out, err, code) = scan_v4(
        &v4_url(server.port(), ""),
        &["--timeout", "1", "--maxcount", "8192"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_exact_ndjson(
        &out,
        mock_nfsd::listing(&config, false),
        "v4 scan with faults",
    );
    let stats = server.stats();
    assert!(
        stats.get("v4_create_session") > 4,
        "sessions were lost and re-created: {stats:?}"
    );
}

#[test]
fn scan_over_v4_matches_find_on_ganesha() {
    let Some((url, dir)) = ganesha() else { return };
    let idmap = local_idmap();
    let idmap_arg = idmap.to_str().unwrap();
    for tree in ["mixed", "names", "deep", "flat"] {
        let expected = find_listing(&dir.join(tree), None, true);
        let (out, err, code) = scan_v4(&ganesha_v4(&url, tree), &["--idmap", idmap_arg]);
        assert_eq!(code, Some(0), "v4 scan {tree}: {err}");
        assert_same_listing(
            parse_ndjson(&out),
            expected,
            Fields::All,
            false,
            &format!("v4 scan {tree}"),
        );
    }
    let _ = std::fs::remove_file(idmap);
}
