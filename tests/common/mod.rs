//! Shared helpers of the integration tests: the local oracle (what `find` and `lstat` say about
//! an exported directory), running the binary, and locating the test servers.
#![allow(dead_code)]

pub mod redis;

use nfs_walker::record::{EntryAttrs, EntryRecord, EntryType};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Whether CI is set: then what a test needs (nfs-ganesha, sqlite3, a test tree) must be there,
/// and its absence is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The nfs-ganesha URL and exported directory, or None (with a note) when no server was set
/// up. Under CI the server is required.
pub fn ganesha() -> Option<(String, PathBuf)> {
    match (
        std::env::var("NFS_WALKER_GANESHA_URL"),
        std::env::var("NFS_WALKER_GANESHA_DIR"),
    ) {
        (Ok(u), Ok(d)) => Some((u, PathBuf::from(d))),
        _ => {
            assert!(
                !in_ci(),
                "CI must run these tests against nfs-ganesha: run them through tests/run.sh"
            );
            eprintln!("note: NFS_WALKER_GANESHA_URL/_DIR unset; skipping (tests/run.sh sets them)");
            None
        }
    }
}

/// `base` (nfs://host/export?query) with `sub` appended to its path.
pub fn url_with_path(base: &str, sub: &str) -> String {
    let (path, query) = base.split_once('?').unwrap_or((base, ""));
    let mut u = format!(
        "{}/{}",
        path.trim_end_matches('/'),
        sub.trim_start_matches('/')
    );
    if !query.is_empty() {
        u.push('?');
        u.push_str(query);
    }
    u
}

pub fn walker_bin() -> &'static str {
    env!("CARGO_BIN_EXE_nfs-walker")
}

/// Runs nfs-walker with `args`, bounded in time.
pub fn run_walker(args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .arg("300")
        .arg(walker_bin())
        .args(args)
        .output()
        .expect("run nfs-walker");
    assert_ne!(
        out.status.code(),
        Some(124),
        "nfs-walker timed out: {args:?}"
    );
    out
}

/// Runs nfs-walker with `args` (paths among them) and asserts it succeeded.
pub fn run_walker_ok(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(walker_bin())
        .args(args)
        .output()
        .expect("run nfs-walker");
    assert!(
        out.status.success(),
        "nfs-walker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// A fresh directory `nfs-walker-SUITE-PID-NAME` under the system's temp directory.
pub fn temp_dir(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nfs-walker-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// None, with a note, when a test's requirement `what` is missing; under CI a failure.
pub fn require<T>(what: &str) -> Option<T> {
    assert!(
        !in_ci(),
        "{what} is required in CI (tests/run.sh provides it)"
    );
    eprintln!("note: skipping: {what} is not available");
    None
}

pub fn parse_ndjson(bytes: &[u8]) -> Vec<EntryRecord> {
    std::str::from_utf8(bytes)
        .expect("NDJSON is UTF-8")
        .lines()
        .map(|l| EntryRecord::from_json(l).unwrap_or_else(|e| panic!("bad record {l}: {e}")))
        .collect()
}

fn find_time_ns(s: &[u8]) -> i64 {
    // `%T@` prints seconds with a fraction of 10 digits: 1234567890.1234567890
    let s = std::str::from_utf8(s).unwrap();
    let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
    let mut frac = frac.to_string();
    frac.truncate(9);
    while frac.len() < 9 {
        frac.push('0');
    }
    sec.parse::<i64>().unwrap() * 1_000_000_000 + frac.parse::<i64>().unwrap()
}

/// What `find DIR [-maxdepth N] -printf ...` says about DIR: the oracle for a listing of DIR.
/// find walks with directory descriptors, so trees deeper than PATH_MAX are fine. The root
/// itself is included as "." when `with_root`.
pub fn find_listing(dir: &Path, maxdepth: Option<u32>, with_root: bool) -> Vec<EntryRecord> {
    const FIELDS: usize = 13;
    let mut cmd = Command::new("find");
    cmd.arg(dir)
        .arg("-mindepth")
        .arg(if with_root { "0" } else { "1" });
    if let Some(d) = maxdepth {
        cmd.arg("-maxdepth").arg(d.to_string());
    }
    let out = cmd
        .arg("-printf")
        .arg("%P\\0%y\\0%s\\0%b\\0%m\\0%n\\0%U\\0%G\\0%i\\0%A@\\0%T@\\0%C@\\0%l\\0")
        .output()
        .expect("run find");
    assert!(out.status.success(), "find failed: {out:?}");
    let fields: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
    let num = |b: &[u8]| -> u64 { std::str::from_utf8(b).unwrap().parse().unwrap() };
    fields
        .chunks_exact(FIELDS)
        .map(|f| {
            let rel: &[u8] = if f[0].is_empty() { b"." } else { f[0] };
            let depth = if f[0].is_empty() {
                0
            } else {
                rel.iter().filter(|&&b| b == b'/').count() as u32 + 1
            };
            let kind = match f[1] {
                b"d" => EntryType::Dir,
                b"l" => EntryType::Symlink,
                b"b" => EntryType::Block,
                b"c" => EntryType::Char,
                b"p" => EntryType::Fifo,
                b"s" => EntryType::Socket,
                _ => EntryType::File,
            };
            EntryRecord {
                path: rel.to_vec(),
                attrs: EntryAttrs {
                    kind,
                    size: num(f[2]),
                    used: num(f[3]) * 512,
                    mode: u32::from_str_radix(std::str::from_utf8(f[4]).unwrap(), 8).unwrap(),
                    nlink: num(f[5]) as u32,
                    uid: num(f[6]) as u32,
                    gid: num(f[7]) as u32,
                    fileid: num(f[8]),
                    fsid: 0,
                    atime_ns: find_time_ns(f[9]),
                    mtime_ns: find_time_ns(f[10]),
                    ctime_ns: find_time_ns(f[11]),
                },
                depth,
                target: (kind == EntryType::Symlink).then(|| f[12].to_vec()),
                owner: None,
                group: None,
            }
        })
        .collect()
}

/// Which fields to compare.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    /// Everything the server should report exactly; atimes of directories and symlinks
    /// excluded (reading them updates them) and fsid (the server's choice).
    All,
    /// Path, fileid and depth (what `--mode names` knows without attributes).
    Names,
}

fn normalize(mut r: EntryRecord, fields: Fields, with_targets: bool) -> EntryRecord {
    r.attrs.fsid = 0;
    // Reading a directory or a link (through the server, or the oracle's own readlink)
    // updates its atime, so those atimes are not stable between the two views.
    if matches!(r.attrs.kind, EntryType::Dir | EntryType::Symlink) {
        r.attrs.atime_ns = 0;
    }
    if !with_targets {
        r.target = None;
    }
    if fields == Fields::Names {
        r.attrs = EntryAttrs::names_only(r.attrs.fileid);
    }
    r
}

/// Asserts that two listings hold the same records (as sets keyed by path), with a readable
/// report of the first differences. Duplicated paths in `got` are an error.
pub fn assert_same_listing(
    got: Vec<EntryRecord>,
    expected: Vec<EntryRecord>,
    fields: Fields,
    with_targets: bool,
    what: &str,
) {
    let mut g: BTreeMap<Vec<u8>, EntryRecord> = BTreeMap::new();
    for r in got {
        let r = normalize(r, fields, with_targets);
        let path = r.path.clone();
        assert!(
            g.insert(path.clone(), r).is_none(),
            "{what}: duplicate path {:?}",
            String::from_utf8_lossy(&path)
        );
    }
    let e: BTreeMap<Vec<u8>, EntryRecord> = expected
        .into_iter()
        .map(|r| (r.path.clone(), normalize(r, fields, with_targets)))
        .collect();
    let missing: Vec<_> = e.keys().filter(|k| !g.contains_key(*k)).take(5).collect();
    let extra: Vec<_> = g.keys().filter(|k| !e.contains_key(*k)).take(5).collect();
    let differ: Vec<_> = e
        .iter()
        .filter_map(|(k, v)| g.get(k).filter(|x| *x != v).map(|x| (v, x)))
        .take(3)
        .map(|(a, b)| {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            a.write_ndjson(&mut x);
            b.write_ndjson(&mut y);
            format!(
                "  expected {}  got      {}",
                String::from_utf8_lossy(&x),
                String::from_utf8_lossy(&y)
            )
        })
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{what}: {} expected, {} got\nmissing: {:?}\nextra: {:?}\ndiffering:\n{}",
        e.len(),
        g.len(),
        missing
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect::<Vec<_>>(),
        extra
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect::<Vec<_>>(),
        differ.concat()
    );
}

/// A 64-bit hash of a byte string (FNV-1a), for comparing large listings as multisets.
pub fn line_hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Compares an NDJSON output with an expected listing exactly (every field, fsid included),
/// as multisets of lines, without holding either in memory as records: the counts and the
/// sorted line hashes must agree (the expected listing has each entry once, so a duplicate
/// written in place of a missing entry shows as a differing hash).
pub fn assert_exact_ndjson(got: &[u8], expected: impl Iterator<Item = EntryRecord>, what: &str) {
    let mut buf = Vec::new();
    let lines = expected.map(|r| {
        buf.clear();
        r.write_ndjson(&mut buf);
        line_hash(&buf[..buf.len() - 1])
    });
    assert_exact_line_hashes(got, lines, what);
}

/// [`assert_exact_ndjson`] with the expected lines given as the [`line_hash`]es of their
/// bytes (without the newline): for records with content fields.
pub fn assert_exact_line_hashes(got: &[u8], expected: impl Iterator<Item = u64>, what: &str) {
    let mut exp_lines: Vec<u64> = expected.collect();
    let mut got_lines: Vec<u64> = got
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(line_hash)
        .collect();
    assert_eq!(
        got_lines.len(),
        exp_lines.len(),
        "{what}: {} records written, {} expected",
        got_lines.len(),
        exp_lines.len()
    );
    got_lines.sort_unstable();
    exp_lines.sort_unstable();
    let first_diff = got_lines.iter().zip(&exp_lines).position(|(a, b)| a != b);
    assert!(
        first_diff.is_none(),
        "{what}: records differ from the expected listing"
    );
}

/// The ganesha URL for NFSv4.1: the same host and NFS port, no MOUNT.
pub fn ganesha_v4(url: &str, sub: &str) -> String {
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
