//! `scan --big-dirs N`: exactly the directories holding N entries or more, with their entry
//! counts and fileids, on mock-nfsd trees (against their exact listings) and on nfs-ganesha
//! (against the exported directory itself).

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// path -> (entries, fileid) of the directories --big-dirs reports.
fn big_dirs(url: &str, n: u64, extra: &[&str]) -> BTreeMap<String, (u64, u64)> {
    let n = n.to_string();
    let mut args = vec!["scan", url, "-q", "--big-dirs", &n];
    args.extend_from_slice(extra);
    let out = run_walker(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let path = v["path"].as_str().unwrap().to_string();
        let entry = (
            v["entries"].as_u64().unwrap(),
            v["fileid"].as_u64().unwrap(),
        );
        assert!(got.insert(path, entry).is_none(), "reported twice: {line}");
    }
    got
}

#[test]
fn mock_trees_report_exactly_the_directories_at_or_above_n() {
    for (tree, thresholds) in [
        ("mixed:60000:2", &[1u64, 100, 500, 2000][..]),
        ("wide:40:300", &[300, 301][..]),
        ("flat:50000", &[50_000, 50_001][..]),
    ] {
        let config = mock_nfsd::Config {
            tree: tree.parse().unwrap(),
            ..Default::default()
        };
        // The oracle: entries per directory, from the exact listing.
        let listing: Vec<_> = mock_nfsd::listing(&config, false).collect();
        let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let mut fileids: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for r in &listing {
            if r.attrs.kind == nfs_walker::record::EntryType::Dir {
                counts.entry(r.path.clone()).or_default();
                fileids.insert(r.path.clone(), r.attrs.fileid);
            }
            if r.path != b"." {
                let parent = match r.path.iter().rposition(|&b| b == b'/') {
                    Some(i) => r.path[..i].to_vec(),
                    None => b".".to_vec(),
                };
                *counts.entry(parent).or_default() += 1;
            }
        }
        let server = mock_nfsd::Server::start(config).unwrap();
        for &n in thresholds {
            let expected: BTreeMap<String, (u64, u64)> = counts
                .iter()
                .filter(|(_, &c)| c >= n)
                .map(|(p, &c)| (String::from_utf8_lossy(p).into_owned(), (c, fileids[p])))
                .collect();
            let got = big_dirs(&server.url(), n, &[]);
            assert_eq!(got, expected, "{tree} --big-dirs {n}");
            if n == 1 {
                assert!(expected.len() > 100, "mixed has many directories");
            }
        }
        server.shutdown();
    }
}

/// path -> entries of every directory below `root`, read from the file system.
fn local_counts(root: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            n += 1;
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
        let rel = dir
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        out.insert(if rel.is_empty() { ".".into() } else { rel }, n);
    }
    out
}

#[test]
fn ganesha_flat_and_wide_report_exactly_the_directories_at_or_above_n() {
    let Some((url, dir)) = ganesha() else {
        return;
    };
    for (tree, thresholds) in [
        ("flat", &[100_000u64, 100_001][..]),
        ("wide", &[1, 500, 501][..]),
    ] {
        let counts = local_counts(&dir.join(tree));
        for &n in thresholds {
            let expected: BTreeMap<String, u64> = counts
                .iter()
                .filter(|(_, &c)| c >= n)
                .map(|(p, &c)| (p.clone(), c))
                .collect();
            let got: BTreeMap<String, u64> = big_dirs(&url_with_path(&url, tree), n, &[])
                .into_iter()
                .map(|(p, (c, _))| (p, c))
                .collect();
            assert_eq!(got, expected, "{tree} --big-dirs {n}");
        }
    }
    // The fileid is the directory's own.
    use std::os::unix::fs::MetadataExt;
    let flat = big_dirs(&url_with_path(&url, "flat"), 1, &[]);
    assert_eq!(
        flat["."].1,
        std::fs::metadata(dir.join("flat")).unwrap().ino()
    );
}
