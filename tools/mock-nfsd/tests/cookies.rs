//! Directory listings continued by cookie, around every batch boundary, in both cookie modes.

mod common;

use common::{config, start, Conn, Listing, EXPORT};
use mock_nfsd::{Config, CookieMode};
use nfs_proto::rpc::nfs3::{FileHandle, Nfsstat3};
use std::collections::HashSet;

/// How a listing is requested.
#[derive(Debug, Clone, Copy)]
enum Request {
    Plus { dircount: u32, maxcount: u32 },
    Plain { count: u32 },
}

fn list_once(
    conn: &mut Conn,
    dir: FileHandle,
    cookie: u64,
    verf: [u8; 8],
    req: Request,
) -> Result<Listing, Nfsstat3> {
    match req {
        Request::Plus { dircount, maxcount } => {
            conn.readdirplus(dir, cookie, verf, dircount, maxcount)
        }
        Request::Plain { count } => conn.readdir(dir, cookie, verf, count),
    }
}

/// Lists a directory to the end; returns the names and the entry count of every reply,
/// checking that eof is set on the last reply and only there.
fn list_all(conn: &mut Conn, dir: FileHandle, req: Request) -> (Vec<Vec<u8>>, Vec<usize>) {
    let mut names = Vec::new();
    let mut batches = Vec::new();
    let (mut cookie, mut verf) = (0u64, [0u8; 8]);
    loop {
        let l = list_once(conn, dir, cookie, verf, req).expect("listing succeeds");
        batches.push(l.entries.len());
        for e in &l.entries {
            assert_ne!(e.cookie, 0, "cookie 0 is never handed out");
            names.push(e.name.clone());
        }
        if l.eof {
            break;
        }
        assert!(
            !l.entries.is_empty(),
            "a reply without entries must have eof"
        );
        assert!(batches.len() < 100_000, "runaway listing");
        cookie = l.entries.last().map(|e| e.cookie).unwrap_or_default();
        verf = l.cookieverf;
        assert_ne!(verf, [0; 8], "verifier is nonzero");
    }
    (names, batches)
}

fn expected_root_names(cfg: &Config) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = mock_nfsd::listing(cfg, false)
        .filter(|r| r.depth == 1)
        .map(|r| r.path)
        .collect();
    if cfg.dot_entries {
        names.insert(0, b"..".to_vec());
        names.insert(0, b".".to_vec());
    }
    names
}

/// The number of flat-tree entries one reply holds under `req` (all names are 8 bytes).
fn batch_size(req: Request) -> usize {
    let mut cfg = config("flat:10000");
    cfg.dot_entries = false;
    let server = start(cfg);
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    list_once(&mut conn, root, 0, [0; 8], req)
        .unwrap()
        .entries
        .len()
}

#[test]
fn every_size_around_the_batch_boundary_lists_exactly_once() {
    let requests = [
        Request::Plus {
            dircount: 65536,
            maxcount: 4096,
        },
        Request::Plus {
            dircount: 512,
            maxcount: 1 << 20,
        },
        Request::Plus {
            dircount: 0,
            maxcount: 8192,
        },
        Request::Plain { count: 1024 },
    ];
    for req in requests {
        let batch = batch_size(req);
        assert!(batch >= 3, "{req:?}: batch {batch}");
        for mode in [CookieMode::Hash, CookieMode::Index] {
            for dots in [false, true] {
                for n in [0, 1, batch - 1, batch, batch + 1, 2 * batch, 7 * batch + 3] {
                    let mut cfg = config(&format!("flat:{n}"));
                    cfg.cookies = mode;
                    cfg.dot_entries = dots;
                    let server = start(cfg.clone());
                    let mut conn = Conn::connect(server.port());
                    let root = conn.mount(EXPORT);
                    let (names, batches) = list_all(&mut conn, root, req);
                    let ctx = format!("{req:?} {mode:?} dots={dots} n={n} batches={batches:?}");
                    assert_eq!(names, expected_root_names(&cfg), "{ctx}");
                    let unique: HashSet<&Vec<u8>> = names.iter().collect();
                    assert_eq!(unique.len(), names.len(), "no duplicates: {ctx}");
                    if !dots {
                        // eof exactly on the last batch: a batch ending at the last entry has
                        // eof set, so no trailing empty reply.
                        assert_eq!(batches.len(), n.div_ceil(batch).max(1), "{ctx}");
                    }
                }
            }
        }
    }
}

#[test]
fn mixed_tree_directories_list_completely_with_small_replies() {
    let mut cfg = config("mixed:3000:5");
    cfg.cookies = CookieMode::Hash;
    let server = start(cfg.clone());
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    let req = Request::Plus {
        dircount: 1024,
        maxcount: 2048,
    };
    // Walk everything with READDIRPLUS handles; the set of paths must match the oracle.
    let mut seen = Vec::new();
    let mut stack = vec![(root, Vec::new())];
    while let Some((dir, path)) = stack.pop() {
        let (names, _) = list_all_plus_entries(&mut conn, dir, req, |name, fh, is_dir| {
            let p = nfs_proto::record::join_path(if path.is_empty() { b"." } else { &path }, name);
            if is_dir {
                stack.push((fh, p.clone()));
            }
            seen.push(p);
        });
        assert!(names >= 2);
    }
    let mut expected: Vec<Vec<u8>> = mock_nfsd::listing(&cfg, false)
        .skip(1)
        .map(|r| r.path)
        .collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
}

fn list_all_plus_entries(
    conn: &mut Conn,
    dir: FileHandle,
    req: Request,
    mut f: impl FnMut(&[u8], FileHandle, bool),
) -> (usize, ()) {
    let (mut cookie, mut verf) = (0u64, [0u8; 8]);
    let mut count = 0;
    loop {
        let l = list_once(conn, dir, cookie, verf, req).expect("listing");
        for e in &l.entries {
            count += 1;
            if e.name == b"." || e.name == b".." {
                continue;
            }
            let attrs = e.attrs.expect("READDIRPLUS attributes");
            let is_dir = attrs.ftype == nfs_proto::rpc::nfs3::FileType3::Dir;
            f(&e.name, e.fh.expect("READDIRPLUS handle"), is_dir);
        }
        if l.eof {
            return (count, ());
        }
        cookie = l.entries.last().expect("entries").cookie;
        verf = l.cookieverf;
    }
}

#[test]
fn stale_verifiers_and_unknown_cookies_are_bad_cookie() {
    for mode in [CookieMode::Hash, CookieMode::Index] {
        let mut cfg = config("wide:2:100");
        cfg.cookies = mode;
        let server = start(cfg);
        let mut conn = Conn::connect(server.port());
        let root = conn.mount(EXPORT);
        let req = Request::Plus {
            dircount: 4096,
            maxcount: 1000,
        };
        let top = list_once(&mut conn, root, 0, [0; 8], req).unwrap();
        let subdir = |name: &[u8]| {
            top.entries
                .iter()
                .find(|e| e.name == name)
                .and_then(|e| e.fh)
                .unwrap()
        };
        let (dir, other_dir) = (subdir(b"d00000"), subdir(b"d00001"));
        let first = list_once(&mut conn, dir, 0, [0; 8], req).unwrap();
        assert!(!first.eof);
        let last = first.entries.last().unwrap().cookie;
        // The right verifier continues.
        assert!(list_once(&mut conn, dir, last, first.cookieverf, req).is_ok());
        // A stale verifier does not.
        let mut stale = first.cookieverf;
        stale[7] ^= 0x40;
        assert_eq!(
            list_once(&mut conn, dir, last, stale, req).unwrap_err(),
            Nfsstat3::BadCookie,
            "{mode:?}"
        );
        // Nor does a zero verifier with a nonzero cookie.
        assert_eq!(
            list_once(&mut conn, dir, last, [0; 8], req).unwrap_err(),
            Nfsstat3::BadCookie
        );
        // An unknown cookie with the right verifier.
        for bogus in [u64::MAX, 1 << 41, 0x0123_4567_89ab_cdef] {
            assert_eq!(
                list_once(&mut conn, dir, bogus, first.cookieverf, req).unwrap_err(),
                Nfsstat3::BadCookie,
                "{mode:?} cookie {bogus:#x}"
            );
        }
        // A cookie of another directory (hash cookies carry the directory).
        let other = list_once(&mut conn, other_dir, 0, [0; 8], req).unwrap();
        assert_ne!(
            other.cookieverf, first.cookieverf,
            "verifiers are per directory"
        );
        if mode == CookieMode::Hash {
            let other_dirs_cookie = other.entries[3].cookie;
            assert_eq!(
                list_once(&mut conn, dir, other_dirs_cookie, first.cookieverf, req).unwrap_err(),
                Nfsstat3::BadCookie
            );
        }
        // Cookie 0 with the zero verifier always starts over.
        let again = list_once(&mut conn, dir, 0, [0; 8], req).unwrap();
        assert_eq!(again.entries.len(), first.entries.len());
    }
}

#[test]
fn hash_cookies_are_opaque_and_index_cookies_are_positions() {
    let mut cfg = config("flat:200");
    cfg.cookies = CookieMode::Hash;
    let server = start(cfg.clone());
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    let req = Request::Plus {
        dircount: 1 << 20,
        maxcount: 1 << 20,
    };
    let l = list_once(&mut conn, root, 0, [0; 8], req).unwrap();
    let cookies: Vec<u64> = l.entries.iter().map(|e| e.cookie).collect();
    assert!(l.eof && cookies.len() == 202);
    let ascending = cookies.windows(2).filter(|w| w[0] < w[1]).count();
    assert!(
        ascending < 150,
        "hash cookies are not monotonic ({ascending})"
    );
    assert!(
        cookies.iter().any(|&c| c > u32::MAX as u64),
        "64-bit cookies"
    );

    cfg.cookies = CookieMode::Index;
    let server = start(cfg);
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    let l = list_once(&mut conn, root, 0, [0; 8], req).unwrap();
    let cookies: Vec<u64> = l.entries.iter().map(|e| e.cookie).collect();
    assert_eq!(cookies, (1..=202).collect::<Vec<u64>>());
}

#[test]
fn a_reply_too_small_for_one_entry_is_toosmall() {
    let server = start(config("flat:10"));
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    assert_eq!(
        conn.readdirplus(root, 0, [0; 8], 4096, 150).unwrap_err(),
        Nfsstat3::Toosmall
    );
    assert_eq!(
        conn.readdir(root, 0, [0; 8], 100).unwrap_err(),
        Nfsstat3::Toosmall
    );
}
