//! File contents over READ: what the server sends is what `--print-listing --checksum` says a
//! correct reader finds, in any chunking; files under the `rewrite` fault change on every READ.

mod common;

use common::{config, start, Conn, EXPORT};
use mock_nfsd::FaultSpec;
use nfs_proto::rpc::nfs3::{proc3, FileHandle, FileType3, ReadArgs, ReadReply};
use std::collections::HashMap;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mock-nfsd");

/// Reads a whole file in READs of `chunk` bytes; returns its checksum and whether the post-op
/// mtime stayed the same throughout.
fn read_whole(conn: &mut Conn, fh: FileHandle, chunk: u32) -> (String, bool) {
    let mut hasher = checksum::ChecksumAlgo::Sha256.hasher();
    let mut offset = 0u64;
    let mut mtimes = Vec::new();
    loop {
        let res = conn.nfs(
            proc3::READ,
            &ReadArgs {
                file: fh,
                offset,
                count: chunk,
            },
        );
        let ok = ReadReply::decode(&res).expect("READ succeeds");
        assert!(ok.count_matches());
        let attrs = ok.attrs.expect("post-op attributes");
        mtimes.push(attrs.mtime);
        hasher.update(ok.data);
        offset += ok.data.len() as u64;
        assert!(offset <= attrs.size);
        if ok.eof {
            assert_eq!(offset, attrs.size, "eof exactly at the size");
            break;
        }
        assert_eq!(ok.data.len(), chunk as usize, "full chunks before eof");
    }
    let stable = mtimes.windows(2).all(|w| w[0] == w[1]);
    (hasher.finish(), stable)
}

#[test]
fn reads_match_print_listing_checksums_and_rewrite_changes_files() {
    let faults = "rewrite:p=0.3";
    let mut cfg = config("flat:40");
    cfg.faults = faults.parse::<FaultSpec>().unwrap();
    cfg.seed = 5;
    let out = Command::new(BIN)
        .args(["--tree", "flat:40", "--seed", "5", "--faults", faults])
        .args(["--print-listing", "--checksum", "sha256"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut expected: HashMap<String, Option<String>> = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let sum = v["checksum"].as_str().map(str::to_string);
        assert_eq!(
            sum.is_some(),
            v["type"] == "file" && !cfg.faults.rewrites(5, v["fileid"].as_u64().unwrap())
        );
        expected.insert(v["path"].as_str().unwrap().to_string(), sum);
    }

    let server = start(cfg);
    let mut conn = Conn::connect(server.local_addr().port());
    let root = conn.mount(EXPORT);
    let listing = conn
        .readdirplus(root, 0, [0; 8], 1 << 16, 1 << 20)
        .expect("listing");
    assert!(listing.eof);
    let (mut checked, mut rewritten) = (0, 0);
    for e in listing.entries {
        let attrs = e.attrs.expect("attributes");
        if attrs.ftype != FileType3::Reg {
            continue;
        }
        let name = String::from_utf8(e.name).unwrap();
        let fh = e.fh.expect("handle");
        // Two different chunkings (the second not a multiple of 8) give the same bytes.
        let (a, stable_a) = read_whole(&mut conn, fh, 4096);
        let (b, stable_b) = read_whole(&mut conn, fh, 1001);
        match &expected[&name] {
            Some(sum) => {
                assert!(stable_a && stable_b);
                assert_eq!((&a, &b), (sum, sum), "{name}");
                checked += 1;
            }
            None if attrs.size > 4096 => {
                assert!(!stable_a && !stable_b, "{name} changes on every READ");
                assert_ne!(a, b);
                rewritten += 1;
            }
            None => rewritten += 1,
        }
    }
    assert!(checked > 15 && rewritten > 3, "{checked} {rewritten}");
    server.shutdown();
}
