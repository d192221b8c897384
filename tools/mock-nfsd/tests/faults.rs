//! Every fault kind, as a client sees it on the wire.

mod common;

use common::{accepted, config, start, status_of, xid_of, Conn, EXPORT};
use mock_nfsd::service::HOSTILE_NAMES;
use mock_nfsd::{Config, ServerHandle};
use nfs_proto::rpc::nfs3::{proc3, FileHandle, GetattrArgs, Nfsstat3};
use nfs_proto::rpc::record::RecordAssembler;
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn with_faults(tree: &str, faults: &str) -> (ServerHandle, Conn, FileHandle) {
    let cfg = Config {
        faults: faults.parse().expect("fault spec"),
        seed: 7,
        ..config(tree)
    };
    let server = start(cfg);
    // MOUNT is never faulted, so this works whatever the spec.
    let root = Conn::connect(server.port()).mount(EXPORT);
    let conn = Conn::connect(server.port());
    (server, conn, root)
}

fn getattr_bytes(conn: &mut Conn, fh: FileHandle) -> (u32, Vec<u8>) {
    conn.encode_call(
        nfs_proto::rpc::nfs3::NFS_PROGRAM,
        3,
        proc3::GETATTR,
        &GetattrArgs { fh },
    )
}

#[test]
fn reset_closes_the_connection_on_the_nth_call() {
    let (_server, mut conn, root) = with_faults("flat:10", "reset:every=3");
    let xids: Vec<u32> = (0..6)
        .map(|_| conn.send_nfs(proc3::GETATTR, &GetattrArgs { fh: root }))
        .collect();
    assert_eq!(xid_of(&conn.recv().unwrap()), xids[0]);
    assert_eq!(xid_of(&conn.recv().unwrap()), xids[1]);
    assert!(matches!(conn.recv(), Err(common::RecvError::Closed)));
    // A new connection starts counting afresh.
    let mut again = Conn::connect(_server.port());
    again.set_timeout(Duration::from_secs(5));
    let res = again.nfs(proc3::GETATTR, &GetattrArgs { fh: root });
    assert_eq!(status_of(&res), Nfsstat3::Ok);
}

#[test]
fn stall_holds_one_reply_without_blocking_the_others() {
    let (_server, mut conn, root) = with_faults("flat:10", "stall:every=2:ms=300");
    let t0 = Instant::now();
    let xids: Vec<u32> = (0..3)
        .map(|_| conn.send_nfs(proc3::GETATTR, &GetattrArgs { fh: root }))
        .collect();
    let first = xid_of(&conn.recv().unwrap());
    let second = xid_of(&conn.recv().unwrap());
    let fast = t0.elapsed();
    let third = xid_of(&conn.recv().unwrap());
    let slow = t0.elapsed();
    assert_eq!((first, second, third), (xids[0], xids[2], xids[1]));
    assert!(fast < Duration::from_millis(250), "{fast:?}");
    assert!(slow >= Duration::from_millis(300), "{slow:?}");
}

#[test]
fn jukebox_answers_nfs3err_jukebox_but_mount_still_works() {
    let (_server, mut conn, root) = with_faults("flat:10", "jukebox:p=1");
    for proc_ in [proc3::GETATTR, proc3::FSINFO] {
        let res = conn.nfs(proc_, &GetattrArgs { fh: root });
        assert_eq!(status_of(&res), Nfsstat3::Jukebox);
    }
    assert_eq!(conn.mount(EXPORT), root);
}

#[test]
fn dropped_calls_are_never_answered_while_later_ones_are() {
    let (_server, mut conn, root) = with_faults("flat:10", "drop:p=0.3");
    let sent: Vec<u32> = (0..40)
        .map(|_| conn.send_nfs(proc3::GETATTR, &GetattrArgs { fh: root }))
        .collect();
    conn.set_timeout(Duration::from_millis(500));
    let mut answered = HashSet::new();
    while let Ok(rec) = conn.recv() {
        assert_eq!(status_of(accepted(&rec).unwrap()), Nfsstat3::Ok);
        answered.insert(xid_of(&rec));
    }
    let dropped: Vec<u32> = sent
        .iter()
        .copied()
        .filter(|x| !answered.contains(x))
        .collect();
    assert!(!dropped.is_empty() && dropped.len() < 30, "{dropped:?}");
    let last_answered = answered.iter().max().unwrap();
    assert!(
        dropped.iter().any(|d| d < last_answered),
        "later calls still answered"
    );
}

#[test]
fn badcookie_fails_continued_listings_only() {
    let (_server, mut conn, root) = with_faults("flat:100", "badcookie:p=1");
    let first = conn
        .readdirplus(root, 0, [0; 8], 4096, 2048)
        .expect("cookie 0 works");
    assert!(!first.eof);
    let next = first.entries.last().unwrap().cookie;
    assert_eq!(
        conn.readdirplus(root, next, first.cookieverf, 4096, 2048)
            .unwrap_err(),
        Nfsstat3::BadCookie
    );
}

#[test]
fn an_unknown_xid_reply_precedes_the_real_one() {
    let (_server, mut conn, root) = with_faults("flat:10", "xid:every=1");
    let xid = conn.send_nfs(proc3::GETATTR, &GetattrArgs { fh: root });
    let decoy = conn.recv().unwrap();
    let real = conn.recv().unwrap();
    assert_ne!(xid_of(&decoy), xid);
    assert_eq!(xid_of(&real), xid);
    assert_eq!(decoy[4..], real[4..], "same reply, other XID");
    assert_eq!(status_of(accepted(&real).unwrap()), Nfsstat3::Ok);
}

#[test]
fn truncate_cuts_a_record_short_then_closes() {
    let (_server, mut conn, root) = with_faults("flat:10", "truncate:every=2");
    let (_, a) = getattr_bytes(&mut conn, root);
    let (_, b) = getattr_bytes(&mut conn, root);
    conn.send_bytes(&[a, b].concat());
    let (raw, closed) = conn.read_raw_until_close(Duration::from_secs(5));
    assert!(closed, "connection closed");
    // The first reply is whole; the second's header claims more than follows.
    let first_len = (u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) & 0x7fff_ffff) as usize;
    let rest = &raw[4 + first_len..];
    let claimed = (u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) & 0x7fff_ffff) as usize;
    assert_eq!(claimed, first_len, "same GETATTR reply size");
    assert!(rest.len() - 4 < claimed, "record cut short");
}

#[test]
fn hugerecord_claims_the_largest_record_then_closes() {
    let (_server, mut conn, root) = with_faults("flat:10", "hugerecord:every=1");
    conn.send_nfs(proc3::GETATTR, &GetattrArgs { fh: root });
    let (raw, closed) = conn.read_raw_until_close(Duration::from_secs(5));
    assert!(closed);
    assert_eq!(raw, [0xff, 0xff, 0xff, 0xff]);
}

#[test]
fn fragmented_replies_reassemble_to_the_same_reply() {
    let (_server, mut conn, root) = with_faults("flat:10", "fragment:every=2");
    let (_, a) = getattr_bytes(&mut conn, root);
    let (_, b) = getattr_bytes(&mut conn, root);
    conn.send_bytes(&[a, b].concat());
    let mut raw = Vec::new();
    let mut asm = RecordAssembler::new(1 << 20);
    let mut records = Vec::new();
    conn.set_timeout(Duration::from_secs(5));
    while records.len() < 2 {
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut conn.stream, &mut buf).expect("read");
        assert!(n > 0, "server closed early");
        raw.extend_from_slice(&buf[..n]);
        asm.push(&buf[..n]);
        while let Some(r) = asm.next_record().unwrap() {
            records.push(r.to_vec());
        }
    }
    assert_eq!(records[0][4..], records[1][4..], "same reply, other XID");
    // Count the fragments of the second record: the first is one fragment.
    let first_len = records[0].len();
    let mut at = 4 + first_len;
    let mut fragments = 0;
    while at < raw.len() {
        let h = u32::from_be_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        fragments += 1;
        at += 4 + (h & 0x7fff_ffff) as usize;
    }
    assert!(fragments > 10, "many small fragments ({fragments})");
}

#[test]
fn hostile_names_are_injected_and_real_entries_still_delivered() {
    let (_server, mut conn, root) = with_faults("flat:30", "names:p=1");
    let mut names = Vec::new();
    let (mut cookie, mut verf) = (0, [0; 8]);
    loop {
        let l = conn
            .readdirplus(root, cookie, verf, 64 << 10, 16 << 10)
            .unwrap();
        names.extend(l.entries.iter().map(|e| e.name.clone()));
        if l.eof {
            break;
        }
        cookie = l.entries.last().unwrap().cookie;
        verf = l.cookieverf;
    }
    for hostile in HOSTILE_NAMES {
        assert!(
            names.iter().any(|n| n == hostile),
            "{:?}",
            String::from_utf8_lossy(&hostile[..hostile.len().min(20)])
        );
    }
    assert!(names.iter().any(|n| n.len() == 4096));
    let real: HashSet<&Vec<u8>> = names.iter().filter(|n| n.starts_with(b"f0")).collect();
    assert_eq!(real.len(), 30);

    // With small replies, continuing from any cookie, bogus or not, loses no real entry.
    let mut real = HashSet::new();
    let (mut cookie, mut verf) = (0, [0; 8]);
    loop {
        let l = conn.readdir(root, cookie, verf, 512).unwrap();
        for e in &l.entries {
            if e.name.starts_with(b"f0") {
                real.insert(e.name.clone());
            }
        }
        if l.eof {
            break;
        }
        cookie = l.entries.last().unwrap().cookie;
        verf = l.cookieverf;
    }
    assert_eq!(real.len(), 30);
}
