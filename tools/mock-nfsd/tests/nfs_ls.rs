//! A real third-party client, libnfs's `nfs-ls`, against mock-nfsd.
//!
//! Skipped with a note when nfs-ls is not installed, unless CI is set (then it must be there).

mod common;

use common::{config, start};
use nfs_proto::record::{EntryRecord, EntryType};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NFS_LS: &str = "/usr/bin/nfs-ls";

fn nfs_ls_available() -> bool {
    if Path::new(NFS_LS).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("{NFS_LS} is required in CI (apt-get install libnfs-utils)");
    }
    eprintln!("note: {NFS_LS} not found, skipping (install libnfs-utils to run this test)");
    false
}

fn run_nfs_ls(args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(NFS_LS)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nfs-ls starts");
    // Read stdout on a thread so a large listing cannot fill the pipe and stall nfs-ls.
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nfs-ls did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_end(&mut e, &mut stderr);
    }
    Output {
        status,
        stdout: reader.join().expect("reader").expect("read stdout"),
        stderr,
    }
}

/// The line nfs-ls prints for an entry: type (none for fifos and sockets), rwx bits, then
/// `%2d %5d %5d %12d` of nlink, uid, gid and size as signed C integers, then the path.
fn nfs_ls_line(r: &EntryRecord) -> Vec<u8> {
    let a = &r.attrs;
    let mut s = String::new();
    s.push_str(match a.kind {
        EntryType::File => "-",
        EntryType::Dir => "d",
        EntryType::Symlink => "l",
        EntryType::Char => "c",
        EntryType::Block => "b",
        EntryType::Fifo | EntryType::Socket | EntryType::Unknown => "",
    });
    for shift in [6, 3, 0] {
        let bits = (a.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s.push_str(&format!(
        " {:2} {:5} {:5} {:12} ",
        a.nlink as i32, a.uid as i32, a.gid as i32, a.size as i64
    ));
    let mut line = s.into_bytes();
    line.extend_from_slice(&r.path);
    line
}

/// The server's URL for NFS version `version` (v4: no MOUNT, the export path through the
/// pseudo file system).
fn url(server: &mock_nfsd::ServerHandle, version: u32) -> String {
    match version {
        4 => format!("nfs://127.0.0.1/export?version=4&nfsport={}", server.port()),
        _ => server.url(),
    }
}

#[test]
fn nfs_ls_lists_a_flat_directory_of_100000_files() {
    lists_a_flat_directory_of_100000_files(3);
}

#[test]
fn nfs_ls_v4_lists_a_flat_directory_of_100000_files() {
    lists_a_flat_directory_of_100000_files(4);
}

#[test]
fn nfs_ls_recursive_listing_matches_print_listing() {
    recursive_listing_matches_print_listing(3);
}

#[test]
fn nfs_ls_v4_recursive_listing_matches_print_listing() {
    recursive_listing_matches_print_listing(4);
}

fn lists_a_flat_directory_of_100000_files(version: u32) {
    if !nfs_ls_available() {
        return;
    }
    let server = start(config("flat:100000"));
    let out = run_nfs_ls(&[&url(&server, version)], Duration::from_secs(120));
    assert!(
        out.status.success(),
        "nfs-ls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 100_000);
    let mut names: Vec<&[u8]> = lines.iter().map(|l| &l[l.len() - 8..]).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 100_000, "every file exactly once");
    let listing_calls = match version {
        4 => server.stats().get("v4_readdir"),
        _ => server.stats().get("readdirplus"),
    };
    assert!(listing_calls > 1, "listed in several batches");
}

fn recursive_listing_matches_print_listing(version: u32) {
    if !nfs_ls_available() {
        return;
    }
    let cfg = config("mixed:4000:3");
    let expected_records: Vec<EntryRecord> = mock_nfsd::listing(&cfg, false).skip(1).collect();
    // Preconditions of a fair comparison: nfs-ls recurses 16 levels and builds paths in a
    // 1024-byte buffer.
    assert!(expected_records
        .iter()
        .all(|r| r.depth < 16 && r.path.len() < 1000));
    let server = start(cfg);
    let out = run_nfs_ls(&["-R", &url(&server, version)], Duration::from_secs(120));
    assert!(
        out.status.success(),
        "nfs-ls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // nfs-ls prints names raw, so a name with a newline spans two lines: compare lines.
    let mut expected: Vec<Vec<u8>> = expected_records
        .iter()
        .flat_map(|r| {
            nfs_ls_line(r)
                .split(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut got: Vec<Vec<u8>> = out
        .stdout
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(got.pop(), Some(Vec::new()), "output ends with a newline");
    expected.sort();
    got.sort();
    assert_eq!(got.len(), expected.len());
    assert!(
        got == expected,
        "nfs-ls output differs from --print-listing"
    );
    // The tree exercised what it promises.
    for kind in EntryType::ALL
        .into_iter()
        .filter(|&k| k != EntryType::Unknown)
    {
        assert!(
            expected_records.iter().any(|r| r.attrs.kind == kind),
            "{kind}"
        );
    }
}
