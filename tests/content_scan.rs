//! Content scans against mock-nfsd, whose files read as known contents: every checksum equals
//! the one mock-nfsd computes itself, in every algorithm, over a realistic mixed tree (sparse
//! and huge files skipped by --checksum-max-size), with files rewritten while read reported
//! and not hashed, and the scan going on to exit 2.

mod common;

use checksum::ChecksumAlgo;
use common::*;
use mock_nfsd::content::file_checksum;
use mock_nfsd::{Config, Server};
use nfs_walker::record::EntryType;
use std::collections::HashMap;
use std::process::Command;

const MAX_SIZE: u64 = 4 << 20;

fn scan(url: &str, extra: &[&str]) -> (Vec<serde_json::Value>, String, Option<i32>) {
    let out = Command::new(walker_bin())
        .arg("scan")
        .arg(url)
        .arg("-q")
        .args(extra)
        .output()
        .expect("run nfs-walker");
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn checksums_equal_mock_contents_and_rewritten_files_are_reported() {
    let config = Config {
        tree: "mixed:3000:7".parse().unwrap(),
        faults: "rewrite:p=0.02".parse().unwrap(),
        seed: 11,
        ..Default::default()
    };
    let server = Server::start(config.clone()).unwrap();
    let listing: Vec<_> = mock_nfsd::listing(&config, false).collect();
    for (algo, threads) in [
        (ChecksumAlgo::Xxh3, "2"),
        (ChecksumAlgo::Blake3, "1"),
        (ChecksumAlgo::Sha256, "2"),
        (ChecksumAlgo::Md5, "2"),
    ] {
        let max = MAX_SIZE.to_string();
        let (lines, err, code) = scan(
            &server.url(),
            &[
                "--checksum",
                algo.name(),
                "--checksum-max-size",
                &max,
                "--threads",
                threads,
            ],
        );
        let by_path: HashMap<&str, &serde_json::Value> = lines
            .iter()
            .map(|v| (v["path"].as_str().unwrap(), v))
            .collect();
        assert_eq!(lines.len(), listing.len(), "every entry once: {err}");
        let (mut summed, mut rewritten, mut too_large) = (0, 0, 0);
        for rec in &listing {
            let path = String::from_utf8_lossy(&rec.path);
            let Some(v) = by_path.get(path.as_ref()) else {
                continue; // invalid UTF-8 names: checked by path_b64 elsewhere
            };
            let got = v["checksum"].as_str();
            let a = &rec.attrs;
            if a.kind != EntryType::File {
                assert_eq!(got, None, "{path}");
            } else if a.size > MAX_SIZE {
                assert_eq!(got, None, "{path}");
                too_large += 1;
            } else if config.faults.rewrites(config.seed, a.fileid) {
                assert_eq!(got, None, "{path} changes on every READ");
                assert!(
                    err.contains(&format!("{path}: read: changed while read")),
                    "{path}"
                );
                rewritten += 1;
            } else {
                let want = file_checksum(algo, a.fileid, a.size);
                assert_eq!(got, Some(want.as_str()), "{path} ({} bytes)", a.size);
                summed += 1;
            }
        }
        assert!(
            summed > 1000 && rewritten > 5 && too_large > 10,
            "{summed} {rewritten} {too_large}"
        );
        assert_eq!(code, Some(2), "changed files are per-path errors: {err}");
        assert!(
            err.contains(&format!("{rewritten} changed while read, 0 read errors")),
            "{err}"
        );
    }
    server.shutdown();
}
