//! PORTMAP, MOUNT and NFS on one port: procedures, RPC errors, read-only answers, latency and
//! pipelining.

mod common;

use common::{accepted, config, start, status_of, xid_of, Conn, EXPORT};
use mock_nfsd::{Config, LatencyDist};
use nfs_proto::record::{join_path, EntryRecord};
use nfs_proto::rpc::mount::{ExportList, MntArgs, MntReply, MountError, Mountstat3, MOUNT_PROGRAM};
use nfs_proto::rpc::msg::RpcError;
use nfs_proto::rpc::nfs3::{
    proc3, AccessArgs, AccessReply, FileType3, FsinfoReply, FsstatReply, GetattrArgs, GetattrReply,
    LookupArgs, LookupReply, NfsReplyError, Nfsstat3, PathconfReply, ReadlinkReply, ACCESS3_DELETE,
    ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ, NFS_PROGRAM,
};
use nfs_proto::rpc::portmap::{GetportReply, Mapping, IPPROTO_TCP, IPPROTO_UDP, PMAP_PROGRAM};
use nfs_proto::xdr::{XdrDecode, XdrEncode, XdrWriter};
use std::time::{Duration, Instant};

struct Raw(Vec<u8>);
impl XdrEncode for Raw {
    fn encode(&self, w: &mut XdrWriter<'_>) {
        w.buffer().extend_from_slice(&self.0);
    }
}

#[test]
fn portmap_answers_its_own_port_for_mount_and_nfs_only() {
    let server = start(config("flat:1"));
    let mut conn = Conn::connect(server.port());
    let port = |conn: &mut Conn, prog, vers, prot| {
        let m = Mapping {
            prog,
            vers,
            prot,
            port: 0,
        };
        let rec = conn.call(PMAP_PROGRAM, 2, 3, &m);
        GetportReply::from_xdr(accepted(&rec).unwrap())
            .unwrap()
            .port
    };
    let own = server.port() as u32;
    assert_eq!(port(&mut conn, MOUNT_PROGRAM, 3, IPPROTO_TCP), own);
    assert_eq!(port(&mut conn, NFS_PROGRAM, 3, IPPROTO_TCP), own);
    assert_eq!(port(&mut conn, NFS_PROGRAM, 3, IPPROTO_UDP), 0);
    assert_eq!(port(&mut conn, NFS_PROGRAM, 4, IPPROTO_TCP), 0);
    assert_eq!(port(&mut conn, 100021, 4, IPPROTO_TCP), 0);
    let stats = server.stats();
    assert_eq!(stats.get("getport"), 5);
}

#[test]
fn mount_exports_mounts_and_refuses_unknown_paths() {
    let server = start(config("mixed:500"));
    let mut conn = Conn::connect(server.port());
    let rec = conn.call(MOUNT_PROGRAM, 3, 5, &Raw(vec![]));
    let exports = ExportList::from_xdr(accepted(&rec).unwrap()).unwrap();
    assert_eq!(exports.entries.len(), 1);
    assert_eq!(exports.entries[0].dir, EXPORT);
    let root = conn.mount(EXPORT);
    assert_eq!(conn.mount(b"/export/"), root);
    let rec = conn.call(
        MOUNT_PROGRAM,
        3,
        1,
        &MntArgs {
            dirpath: b"/elsewhere",
        },
    );
    assert_eq!(
        MntReply::decode(accepted(&rec).unwrap()),
        Err(MountError::Status(Mountstat3::Noent))
    );
    // A subdirectory of the export mounts too, like Linux.
    let first_dir = mock_nfsd::listing(&config("mixed:500"), false)
        .find(|r| r.attrs.kind == nfs_proto::record::EntryType::Dir && r.depth == 1)
        .unwrap();
    let path = [b"/export/".as_slice(), &first_dir.path].concat();
    let sub = conn.mount(&path);
    let attrs = GetattrReply::decode(&conn.nfs(proc3::GETATTR, &GetattrArgs { fh: sub })).unwrap();
    assert_eq!(attrs.fileid, first_dir.attrs.fileid);
    // UMNT and NULL are void.
    let rec = conn.call(MOUNT_PROGRAM, 3, 3, &MntArgs { dirpath: EXPORT });
    assert!(accepted(&rec).unwrap().is_empty());
}

#[test]
fn rpc_errors_use_the_proper_accept_and_reject_status() {
    let server = start(config("flat:1"));
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    let rec = conn.call(100099, 1, 0, &Raw(vec![]));
    assert_eq!(accepted(&rec), Err(RpcError::ProgUnavail));
    let rec = conn.call(NFS_PROGRAM, 2, 0, &Raw(vec![]));
    // NFS versions 3 and 4 (v4.1 and the v4.0 client-ID operations).
    assert_eq!(
        accepted(&rec),
        Err(RpcError::ProgMismatch { low: 3, high: 4 })
    );
    let rec = conn.call(MOUNT_PROGRAM, 1, 0, &Raw(vec![]));
    assert_eq!(
        accepted(&rec),
        Err(RpcError::ProgMismatch { low: 3, high: 3 })
    );
    let rec = conn.call(NFS_PROGRAM, 3, 22, &Raw(vec![]));
    assert_eq!(accepted(&rec), Err(RpcError::ProcUnavail));
    let rec = conn.call(PMAP_PROGRAM, 2, 1, &Raw(vec![]));
    assert_eq!(accepted(&rec), Err(RpcError::ProcUnavail));
    // GETATTR with a truncated handle.
    let rec = conn.call(
        NFS_PROGRAM,
        3,
        proc3::GETATTR,
        &Raw(vec![0, 0, 0, 24, 1, 2]),
    );
    assert_eq!(accepted(&rec), Err(RpcError::GarbageArgs));
    // A handle longer than 64 bytes.
    let rec = conn.call(
        NFS_PROGRAM,
        3,
        proc3::GETATTR,
        &Raw([&[0, 0, 0, 68][..], &[0; 68]].concat()),
    );
    assert_eq!(accepted(&rec), Err(RpcError::GarbageArgs));
    // RPC version 3 is refused with RPC_MISMATCH.
    let (xid, mut bytes) = conn.encode_call(NFS_PROGRAM, 3, 0, &Raw(vec![]));
    bytes[4 + 8..4 + 12].copy_from_slice(&3u32.to_be_bytes());
    conn.send_bytes(&bytes);
    let rec = conn.recv().unwrap();
    assert_eq!(xid_of(&rec), xid);
    assert_eq!(
        accepted(&rec),
        Err(RpcError::RpcMismatch { low: 2, high: 2 })
    );
    // Handles that are not ours.
    let fh = nfs_proto::rpc::nfs3::FileHandle::from_bytes(&[1, 2, 3]).unwrap();
    let res = conn.nfs(proc3::GETATTR, &GetattrArgs { fh });
    assert_eq!(
        GetattrReply::decode(&res),
        Err(NfsReplyError::Status(Nfsstat3::Badhandle))
    );
    let mut stale = root.as_bytes().to_vec();
    stale[0] ^= 1;
    let fh = nfs_proto::rpc::nfs3::FileHandle::from_bytes(&stale).unwrap();
    let res = conn.nfs(proc3::GETATTR, &GetattrArgs { fh });
    assert_eq!(
        GetattrReply::decode(&res),
        Err(NfsReplyError::Status(Nfsstat3::Stale))
    );
    // The connection still works after all that.
    let res = conn.nfs(proc3::GETATTR, &GetattrArgs { fh: root });
    assert_eq!(status_of(&res), Nfsstat3::Ok);
}

#[test]
fn write_procedures_answer_rofs() {
    let server = start(config("flat:3"));
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    let fh_and_name = {
        let mut v = root.to_xdr();
        XdrWriter::new(&mut v).string(b"f0000000");
        v
    };
    // (procedure, result bytes after the status: count of empty optionals * 4)
    for (proc_, optionals) in [
        (proc3::SETATTR, 2),
        (proc3::WRITE, 2),
        (proc3::CREATE, 2),
        (proc3::MKDIR, 2),
        (proc3::SYMLINK, 2),
        (proc3::MKNOD, 2),
        (proc3::REMOVE, 2),
        (proc3::RMDIR, 2),
        (proc3::RENAME, 4),
        (proc3::LINK, 3),
        (proc3::COMMIT, 2),
    ] {
        let res = conn.nfs(proc_, &Raw(fh_and_name.clone()));
        assert_eq!(status_of(&res), Nfsstat3::Rofs, "proc {proc_}");
        assert_eq!(res.len(), 4 + 4 * optionals, "proc {proc_}");
    }
    assert_eq!(server.stats().get("write"), 1);
    assert_eq!(server.stats().get("rename"), 1);
}

#[test]
fn read_procedures_answer_from_the_tree() {
    let cfg = config("mixed:400:2");
    let server = start(cfg.clone());
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    let listing: Vec<EntryRecord> = mock_nfsd::listing(&cfg, true).collect();
    let root_attrs =
        GetattrReply::decode(&conn.nfs(proc3::GETATTR, &GetattrArgs { fh: root })).unwrap();
    assert_eq!(root_attrs.to_entry_attrs(), listing[0].attrs);

    // LOOKUP every child of the root; READLINK the symlinks.
    for rec in listing.iter().filter(|r| r.depth == 1) {
        let res = conn.nfs(
            proc3::LOOKUP,
            &LookupArgs {
                dir: root,
                name: &rec.path,
            },
        );
        let ok = LookupReply::decode(&res).unwrap();
        assert_eq!(ok.obj_attrs.unwrap().to_entry_attrs(), rec.attrs);
        assert_eq!(ok.dir_attrs, Some(root_attrs));
        if let Some(target) = &rec.target {
            let res = conn.nfs(proc3::READLINK, &GetattrArgs { fh: ok.fh });
            assert_eq!(ReadlinkReply::decode(&res).unwrap().target, &target[..]);
        } else {
            let res = conn.nfs(proc3::READLINK, &GetattrArgs { fh: ok.fh });
            assert_eq!(
                ReadlinkReply::decode(&res).unwrap_err(),
                NfsReplyError::Status(Nfsstat3::Inval)
            );
        }
    }
    let lookup_status = |conn: &mut Conn, dir, name: &[u8]| match LookupReply::decode(
        &conn.nfs(proc3::LOOKUP, &LookupArgs { dir, name }),
    ) {
        Ok(ok) => Ok(ok.fh),
        Err(e) => Err(e),
    };
    assert_eq!(lookup_status(&mut conn, root, b"."), Ok(root));
    assert_eq!(lookup_status(&mut conn, root, b".."), Ok(root));
    assert_eq!(
        lookup_status(&mut conn, root, b"nothing here"),
        Err(NfsReplyError::Status(Nfsstat3::Noent))
    );
    assert_eq!(
        lookup_status(&mut conn, root, &[b'a'; 256]),
        Err(NfsReplyError::Status(Nfsstat3::Nametoolong))
    );
    let file = listing
        .iter()
        .find(|r| r.depth == 1 && r.attrs.kind == nfs_proto::record::EntryType::File)
        .unwrap();
    let file_fh = lookup_status(&mut conn, root, &file.path).unwrap();
    assert_eq!(
        lookup_status(&mut conn, file_fh, b"x"),
        Err(NfsReplyError::Status(Nfsstat3::Notdir))
    );

    // ACCESS grants reads, never modifications.
    let all = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_DELETE;
    let ok = AccessReply::decode(&conn.nfs(
        proc3::ACCESS,
        &AccessArgs {
            fh: root,
            access: all,
        },
    ))
    .unwrap();
    assert_eq!(ok.access, ACCESS3_READ | ACCESS3_LOOKUP);

    let fsinfo = FsinfoReply::decode(&conn.nfs(proc3::FSINFO, &GetattrArgs { fh: root })).unwrap();
    assert_eq!(fsinfo.rtmax, 1 << 20);
    let fsstat = FsstatReply::decode(&conn.nfs(proc3::FSSTAT, &GetattrArgs { fh: root })).unwrap();
    assert_eq!(fsstat.tfiles, listing.len() as u64);
    let pathconf =
        PathconfReply::decode(&conn.nfs(proc3::PATHCONF, &GetattrArgs { fh: root })).unwrap();
    assert_eq!(pathconf.name_max, 255);
}

/// A whole READDIRPLUS walk with READLINK gives exactly `--print-listing --readlink`.
#[test]
fn a_readdirplus_walk_sees_exactly_the_listing() {
    for tree in ["mixed:5000:11", "wide:3:50", "deep:40", "flat:0"] {
        let cfg = config(tree);
        let server = start(cfg.clone());
        let mut conn = Conn::connect(server.port());
        let root = conn.mount(EXPORT);
        let root_attrs =
            GetattrReply::decode(&conn.nfs(proc3::GETATTR, &GetattrArgs { fh: root })).unwrap();
        let mut seen = vec![EntryRecord {
            path: b".".to_vec(),
            attrs: root_attrs.to_entry_attrs(),
            depth: 0,
            target: None,
            owner: None,
            group: None,
        }];
        let mut stack = vec![(root, b".".to_vec(), 0u32)];
        while let Some((dir, path, depth)) = stack.pop() {
            let (mut cookie, mut verf) = (0, [0; 8]);
            loop {
                let l = conn.readdirplus(dir, cookie, verf, 8192, 32768).unwrap();
                for e in &l.entries {
                    if e.name == b"." || e.name == b".." {
                        continue;
                    }
                    let attrs = e.attrs.unwrap();
                    assert_eq!(attrs.fileid, e.fileid);
                    let child = join_path(&path, &e.name);
                    let fh = e.fh.unwrap();
                    let target = (attrs.ftype == FileType3::Lnk).then(|| {
                        let res = conn.nfs(proc3::READLINK, &GetattrArgs { fh });
                        ReadlinkReply::decode(&res).unwrap().target.to_vec()
                    });
                    if attrs.ftype == FileType3::Dir {
                        stack.push((fh, child.clone(), depth + 1));
                    }
                    seen.push(EntryRecord {
                        path: child,
                        attrs: attrs.to_entry_attrs(),
                        depth: depth + 1,
                        target,
                        owner: None,
                        group: None,
                    });
                }
                if l.eof {
                    break;
                }
                cookie = l.entries.last().unwrap().cookie;
                verf = l.cookieverf;
            }
        }
        let mut expected: Vec<EntryRecord> = mock_nfsd::listing(&cfg, true).collect();
        expected.sort_by(|a, b| a.path.cmp(&b.path));
        seen.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(seen.len(), expected.len(), "{tree}");
        for (s, e) in seen.iter().zip(&expected) {
            assert_eq!(s, e, "{tree}");
        }
    }
}

#[test]
fn latency_delays_replies_without_blocking_other_calls() {
    let cfg = Config {
        latency: Some("fixed:20ms".parse::<LatencyDist>().unwrap()),
        ..config("flat:10")
    };
    let server = start(cfg);
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    let t0 = Instant::now();
    let mut batch = Vec::new();
    let mut xids = Vec::new();
    for _ in 0..50 {
        let (xid, bytes) =
            conn.encode_call(NFS_PROGRAM, 3, proc3::GETATTR, &GetattrArgs { fh: root });
        xids.push(xid);
        batch.extend_from_slice(&bytes);
    }
    conn.send_bytes(&batch);
    let mut got = Vec::new();
    for _ in 0..50 {
        let rec = conn.recv().unwrap();
        assert_eq!(status_of(accepted(&rec).unwrap()), Nfsstat3::Ok);
        got.push(xid_of(&rec));
    }
    let elapsed = t0.elapsed();
    got.sort();
    assert_eq!(got, xids);
    assert!(elapsed >= Duration::from_millis(20), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(500),
        "{elapsed:?}: calls were serialized"
    );
}

#[test]
fn random_latency_reorders_replies() {
    let cfg = Config {
        latency: Some("uniform:1ms-30ms".parse::<LatencyDist>().unwrap()),
        ..config("flat:10")
    };
    let server = start(cfg);
    let mut conn = Conn::connect(server.port());
    let root = conn.mount(EXPORT);
    let xids: Vec<u32> = (0..100)
        .map(|_| conn.send_nfs(proc3::GETATTR, &GetattrArgs { fh: root }))
        .collect();
    let got: Vec<u32> = (0..100).map(|_| xid_of(&conn.recv().unwrap())).collect();
    assert_ne!(got, xids, "replies come in deadline order, not call order");
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, xids);
}

#[test]
fn many_connections_with_many_calls_in_flight() {
    let server = start(config("flat:1000"));
    let root = Conn::connect(server.port()).mount(EXPORT);
    let port = server.port();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut conn = Conn::connect(port);
                let mut batch = Vec::new();
                let mut xids = Vec::new();
                for _ in 0..500 {
                    let (xid, b) =
                        conn.encode_call(NFS_PROGRAM, 3, proc3::GETATTR, &GetattrArgs { fh: root });
                    xids.push(xid);
                    batch.extend_from_slice(&b);
                }
                conn.send_bytes(&batch);
                for xid in xids {
                    let rec = conn.recv().unwrap();
                    assert_eq!(xid_of(&rec), xid);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.stats().get("getattr"), 4000);
    assert_eq!(server.stats().get("mnt"), 1);
}

#[test]
fn shutdown_closes_connections_and_the_port() {
    let server = start(config("flat:10"));
    let port = server.port();
    let url = server.url();
    assert_eq!(
        url,
        format!("nfs://127.0.0.1/export?nfsport={port}&mountport={port}")
    );
    let mut conn = Conn::connect(port);
    conn.mount(EXPORT);
    server.shutdown();
    assert!(matches!(conn.recv(), Err(common::RecvError::Closed)));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
