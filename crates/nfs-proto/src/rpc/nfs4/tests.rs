use super::*;
use crate::rpc::msg::ReceivedCall;

fn session() -> SessionId {
    SessionId(*b"0123456789abcdef")
}

fn all_ops() -> Vec<ArgOp<'static>> {
    vec![
        ArgOp::Sequence(SequenceArgs {
            sessionid: session(),
            sequenceid: 7,
            slotid: 3,
            highest_slotid: 63,
            cachethis: false,
        }),
        ArgOp::PutRootFh,
        ArgOp::PutFh(b"handle"),
        ArgOp::Lookup(b"name"),
        ArgOp::Lookupp,
        ArgOp::GetFh,
        ArgOp::Getattr(AttrMask::RECORD),
        ArgOp::Access(ACCESS4_READ | ACCESS4_LOOKUP),
        ArgOp::Readdir(ReaddirArgs4 {
            cookie: 99,
            cookieverf: *b"verifier",
            dircount: 65536,
            maxcount: 1 << 20,
            attr_request: AttrMask::RECORD,
        }),
        ArgOp::Readlink,
        ArgOp::Read(ReadArgs4 {
            stateid: Stateid::ANONYMOUS,
            offset: 4096,
            count: 1 << 20,
        }),
        ArgOp::SaveFh,
        ArgOp::RestoreFh,
        ArgOp::ExchangeId(ExchangeIdArgs {
            verifier: *b"12345678",
            ownerid: b"nfs-walker/host/1",
            flags: EXCHGID4_FLAG_USE_NON_PNFS,
            impl_id: Some(ImplId {
                domain: b"example.com",
                name: b"nfs-walker",
                date: NfsTime4::default(),
            }),
        }),
        ArgOp::CreateSession(CreateSessionArgs {
            clientid: 0x1122_3344_5566_7788,
            sequence: 1,
            flags: 0,
            fore: ChannelAttrs {
                maxrequests: 1024,
                maxrequestsize: 1 << 20,
                ..Default::default()
            },
            back: ChannelAttrs {
                maxrequests: 1,
                rdma_ird: Some(0),
                ..Default::default()
            },
            cb_program: 0x4000_0000,
        }),
        ArgOp::BindConnToSession(BindConn {
            sessionid: session(),
            dir: CDFC4_FORE,
            use_rdma: false,
        }),
        ArgOp::ReclaimComplete { one_fs: false },
        ArgOp::DestroySession(session()),
        ArgOp::DestroyClientid(5),
        ArgOp::SecinfoNoName(SECINFO_STYLE4_CURRENT_FH),
        ArgOp::SetClientid(SetClientidArgs {
            verifier: *b"abcdefgh",
            id: b"client",
            cb_program: 1,
            cb_netid: b"tcp",
            cb_addr: b"127.0.0.1.0.0",
            callback_ident: 2,
        }),
        ArgOp::SetClientidConfirm {
            clientid: 9,
            verifier: *b"abcdefgh",
        },
        ArgOp::Renew(9),
    ]
}

#[test]
fn every_operation_round_trips_through_a_call() {
    let ops = all_ops();
    let mut buf = Vec::new();
    encode_compound_call(
        &mut buf,
        0x0102_0304,
        &[0, 0, 0, 0, 0, 0, 0, 0],
        b"t",
        1,
        &ops,
    );
    let call = ReceivedCall::decode(&buf[4..]).unwrap();
    assert_eq!((call.prog, call.vers, call.proc_), (100003, 4, 1));
    let mut args = CompoundArgs::decode(call.args).unwrap();
    assert_eq!(args.tag, b"t");
    assert_eq!(args.minorversion, 1);
    assert_eq!(args.op_count as usize, ops.len());
    for op in &ops {
        assert_eq!(args.next_op(), Some(Ok(*op)));
    }
    assert_eq!(args.next_op(), None);
}

#[rustfmt::skip]
#[test]
fn the_listing_call_is_laid_out_as_rfc_8881_says() {
    let ops = [
        ArgOp::Sequence(SequenceArgs {
            sessionid: session(), sequenceid: 1, slotid: 2, highest_slotid: 3, cachethis: false,
        }),
        ArgOp::PutFh(b"fh"),
        ArgOp::Readdir(ReaddirArgs4 {
            cookie: 0, cookieverf: [0; 8], dircount: 8192, maxcount: 32768,
            attr_request: AttrMask::of(&[fattr4::TYPE, fattr4::FILEHANDLE]),
        }),
    ];
    let mut buf = Vec::new();
    encode_compound_call(&mut buf, 1, &[0, 0, 0, 0, 0, 0, 0, 0], b"", 1, &ops);
    // record mark, then xid, CALL, rpcvers 2, prog, vers 4, COMPOUND, cred, verf: 48 bytes
    let body = &buf[4 + 40..];
    let expected: Vec<u8> = [
        &[0, 0, 0, 0][..],                   // tag ""
        &[0, 0, 0, 1],                       // minorversion
        &[0, 0, 0, 3],                       // three ops
        &[0, 0, 0, 53], b"0123456789abcdef", // SEQUENCE, sessionid
        &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0],
        &[0, 0, 0, 22, 0, 0, 0, 2, b'f', b'h', 0, 0], // PUTFH
        &[0, 0, 0, 26],                      // READDIR
        &[0; 8], &[0; 8],                    // cookie, cookieverf
        &[0, 0, 0x20, 0, 0, 0, 0x80, 0],     // dircount, maxcount
        &[0, 0, 0, 1, 0, 0x08, 0, 0x02],     // bitmap: bits 1 and 19
    ]
    .concat();
    assert_eq!(body, &expected[..]);
}

#[rustfmt::skip]
fn listing_reply_bytes() -> Vec<u8> {
    [
        &[0, 0, 0, 0][..],                   // NFS4_OK
        &[0, 0, 0, 0],                       // tag ""
        &[0, 0, 0, 3],                       // three results
        &[0, 0, 0, 53, 0, 0, 0, 0], b"0123456789abcdef",
        &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 63, 0, 0, 0, 63, 0, 0, 0, 0],
        &[0, 0, 0, 22, 0, 0, 0, 0],          // PUTFH ok
        &[0, 0, 0, 26, 0, 0, 0, 0],          // READDIR ok
        b"cookieve",
        &[0, 0, 0, 1],                       // an entry follows
        &[0, 0, 0, 0, 0, 0, 0, 5],           // cookie 5
        &[0, 0, 0, 1, b'a', 0, 0, 0],        // name "a"
        &[0, 0, 0, 1, 0, 0x10, 0, 0x02],     // bitmap: type, fileid
        &[0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9],
        &[0, 0, 0, 0],                       // no more entries
        &[0, 0, 0, 1],                       // eof
    ]
    .concat()
}

#[test]
fn a_hand_built_listing_reply_decodes_op_by_op() {
    let bytes = listing_reply_bytes();
    let mut reply = CompoundReply::decode(&bytes).unwrap();
    assert_eq!(reply.status, Nfsstat4::Ok);
    let ResOk::Sequence(seq) = reply.expect(op4::SEQUENCE).unwrap() else {
        panic!("not a SEQUENCE result");
    };
    assert_eq!(
        (seq.sequenceid, seq.slotid, seq.target_highest_slotid),
        (1, 2, 63)
    );
    assert_eq!(reply.expect(op4::PUTFH), Ok(ResOk::Empty));
    let ResOk::Readdir(list) = reply.expect(op4::READDIR).unwrap() else {
        panic!("not a READDIR result");
    };
    reply.finish().unwrap();
    assert_eq!(&list.cookieverf, b"cookieve");
    assert!(list.eof);
    assert_eq!(list.last_cookie(), Some(5));
    let entries: Vec<_> = list.entries().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].name, b"a");
    assert_eq!(entries[0].attrs.ftype, FileType4::Dir);
    assert_eq!(entries[0].attrs.fileid, 9);
}

#[test]
fn a_detached_page_attaches_to_a_copy_of_its_bytes() {
    let bytes = listing_reply_bytes();
    let mut reply = CompoundReply::decode(&bytes).unwrap();
    reply.expect(op4::SEQUENCE).unwrap();
    reply.expect(op4::PUTFH).unwrap();
    let ResOk::Readdir(list) = reply.expect(op4::READDIR).unwrap() else {
        panic!("not a READDIR result");
    };
    let view = list.detach(&bytes).expect("the page lies within its bytes");
    assert_eq!(list.detach(&bytes[..8]), None, "not within these bytes");
    assert_eq!(list.detach(&[0u8; 4096]), None, "other bytes");
    let copy = bytes.clone();
    let again = view.attach(&copy).unwrap();
    assert_eq!(
        (again.cookieverf, again.eof, again.last_cookie()),
        (list.cookieverf, list.eof, list.last_cookie())
    );
    assert_eq!(
        again.entries().collect::<Vec<_>>(),
        list.entries().collect::<Vec<_>>()
    );
    assert!(view.attach(&copy[..copy.len() - 12]).is_none(), "too short");
}

#[test]
fn every_truncation_of_a_reply_is_an_error() {
    let bytes = listing_reply_bytes();
    for len in 0..bytes.len() {
        let ok = CompoundReply::decode(&bytes[..len]).and_then(|mut r| {
            while r.next_op()?.is_some() {}
            Ok(())
        });
        assert!(ok.is_err(), "a reply cut at {len} bytes decoded");
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0, 0, 0, 0]);
    let mut r = CompoundReply::decode(&longer).unwrap();
    for _ in 0..3 {
        r.next_op().unwrap();
    }
    assert!(r.next_op().is_err());
}

#[test]
fn a_failed_operation_ends_the_results() {
    let mut buf = Vec::new();
    let mut enc = CompoundReplyEncoder::begin(&mut buf, b"tag");
    enc.ok(
        &mut buf,
        op4::SEQUENCE,
        &ResOk::Sequence(SequenceOk {
            sessionid: session(),
            sequenceid: 1,
            slotid: 0,
            highest_slotid: 0,
            target_highest_slotid: 0,
            status_flags: 0,
        }),
    );
    enc.fail(&mut buf, op4::PUTFH, Nfsstat4::Stale);
    enc.finish(&mut buf);
    let mut reply = CompoundReply::decode(&buf).unwrap();
    assert_eq!(reply.status, Nfsstat4::Stale);
    assert_eq!(reply.tag, b"tag");
    assert!(reply.expect(op4::SEQUENCE).is_ok());
    assert_eq!(
        reply.clone().expect(op4::PUTFH),
        Err(Nfs4ReplyError::Status {
            op: op4::PUTFH,
            status: Nfsstat4::Stale
        })
    );
    assert_eq!(
        reply.clone().expect(op4::GETFH),
        Err(Nfs4ReplyError::WrongOp {
            expected: op4::GETFH,
            got: op4::PUTFH
        })
    );
    reply.next_op().unwrap();
    // past the failed op: the overall status explains why READDIR has no result
    assert_eq!(
        reply.expect(op4::READDIR),
        Err(Nfs4ReplyError::Status {
            op: op4::READDIR,
            status: Nfsstat4::Stale
        })
    );
}

#[test]
fn the_listing_encoder_keeps_to_maxcount_and_dircount() {
    let attrs = Fattr4 {
        mask: AttrMask::of(&[fattr4::TYPE, fattr4::FILEID, fattr4::OWNER]),
        fileid: 1,
        owner: b"1000",
        ..Default::default()
    };
    for maxcount in [64u32, 200, 1000, 4096] {
        let mut buf = Vec::new();
        let mut enc = CompoundReplyEncoder::begin(&mut buf, b"");
        let body_at = buf.len() + 8;
        let mut rd = enc.readdir(&mut buf, [1; 8], 0, maxcount);
        let mut n = 0u64;
        while rd.push(&mut buf, n + 1, format!("name{n}").as_bytes(), &attrs) {
            n += 1;
        }
        assert!(buf.len() - body_at + 8 <= maxcount as usize);
        assert_eq!(rd.entry_count() as u64, n);
        enc.finish_readdir(&mut buf, rd, false);
        enc.finish(&mut buf);
        let mut reply = CompoundReply::decode(&buf).unwrap();
        let ResOk::Readdir(list) = reply.expect(op4::READDIR).unwrap() else {
            panic!("not a READDIR result");
        };
        assert_eq!(list.entry_count as u64, n);
        assert_eq!(list.last_cookie(), if n == 0 { None } else { Some(n) });
        assert!(list.entries().all(|e| e.attrs.owner == b"1000"));
        reply.finish().unwrap();
    }
    // dircount: names and cookies only
    let mut buf = Vec::new();
    let mut enc = CompoundReplyEncoder::begin(&mut buf, b"");
    let mut rd = enc.readdir(&mut buf, [1; 8], 40, 1 << 20);
    let mut n = 0;
    while rd.push(&mut buf, n + 1, b"abcd", &attrs) {
        n += 1;
    }
    // 8 (cookie) + 4 + 4 (name) = 16 bytes each: two fit in 40
    assert_eq!(n, 2);
    let before = buf.len();
    rd.abandon(&mut buf);
    assert!(buf.len() < before);
    enc.fail(&mut buf, op4::READDIR, Nfsstat4::Toosmall);
    enc.finish(&mut buf);
    let mut reply = CompoundReply::decode(&buf).unwrap();
    assert_eq!(reply.status, Nfsstat4::Toosmall);
    assert!(reply.next_op().unwrap().unwrap().result.is_err());
    reply.finish().unwrap();
}

#[test]
fn session_results_round_trip() {
    let results = [
        (
            op4::EXCHANGE_ID,
            ResOk::ExchangeId(ExchangeIdOk {
                clientid: 42,
                sequenceid: 1,
                flags: EXCHGID4_FLAG_USE_NON_PNFS | EXCHGID4_FLAG_CONFIRMED_R,
                state_protect: SP4_NONE,
                server_minor_id: 3,
                server_major_id: b"major",
                server_scope: b"scope",
                impl_id: None,
            }),
        ),
        (
            op4::CREATE_SESSION,
            ResOk::CreateSession(CreateSessionOk {
                sessionid: session(),
                sequence: 1,
                flags: 0,
                fore: ChannelAttrs {
                    maxrequests: 256,
                    ..Default::default()
                },
                back: ChannelAttrs::default(),
            }),
        ),
        (
            op4::BIND_CONN_TO_SESSION,
            ResOk::BindConnToSession(BindConn {
                sessionid: session(),
                dir: CDFS4_FORE,
                use_rdma: false,
            }),
        ),
        (op4::GETFH, ResOk::GetFh(b"\x01\x02\x03")),
        (op4::READLINK, ResOk::Readlink(b"../target")),
        (
            op4::READ,
            ResOk::Read {
                eof: true,
                data: b"hello",
            },
        ),
        (
            op4::ACCESS,
            ResOk::Access {
                supported: 3,
                access: 1,
            },
        ),
        (op4::SECINFO_NO_NAME, ResOk::SecinfoNoName { flavors: 2 }),
        (
            op4::SETCLIENTID,
            ResOk::SetClientid {
                clientid: 7,
                verifier: *b"confirm!",
            },
        ),
        (op4::RECLAIM_COMPLETE, ResOk::Empty),
        (op4::DESTROY_SESSION, ResOk::Empty),
        (op4::DESTROY_CLIENTID, ResOk::Empty),
    ];
    let mut buf = Vec::new();
    let mut enc = CompoundReplyEncoder::begin(&mut buf, b"");
    for (op, ok) in &results {
        enc.ok(&mut buf, *op, ok);
    }
    enc.finish(&mut buf);
    let mut reply = CompoundReply::decode(&buf).unwrap();
    for (op, ok) in &results {
        assert_eq!(reply.expect(*op).as_ref(), Ok(ok));
    }
    reply.finish().unwrap();
}
