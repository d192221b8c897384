//! Property tests of the PORTMAP, MOUNT3 and NFS3 codecs: every argument and result type
//! survives encode → decode unchanged, the listing encoders respect the client's byte limits,
//! no decoder panics on any input, and our READDIRPLUS codec agrees with an independent
//! implementation (the `nfs3_types` crate) in both directions.

use nfs_walker::rpc::mount::{
    ExportEntry, ExportList, MntArgs, MntReply, MountError, Mountstat3, AUTH_FLAVORS_MAX,
};
use nfs_walker::rpc::msg::{ReceivedCall, Reply};
use nfs_walker::rpc::nfs3::*;
use nfs_walker::rpc::portmap::{GetportReply, Mapping};
use nfs_walker::rpc::record::{begin_record, end_record, RecordAssembler};
use nfs_walker::xdr::{XdrDecode, XdrEncode, XdrReader, XdrWriter};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn file_handle() -> impl Strategy<Value = FileHandle> {
    vec(any::<u8>(), 0..=NFS3_FHSIZE).prop_map(|b| FileHandle::from_bytes(&b).unwrap())
}

fn nfs_time() -> impl Strategy<Value = NfsTime3> {
    (any::<u32>(), any::<u32>()).prop_map(|(seconds, nseconds)| NfsTime3 { seconds, nseconds })
}

fn fattr3() -> impl Strategy<Value = Fattr3> {
    (
        (
            proptest::sample::select(FileType3::ALL.to_vec()),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
        ),
        (
            any::<(u32, u32)>(),
            any::<u64>(),
            any::<u64>(),
            nfs_time(),
            nfs_time(),
            nfs_time(),
        ),
    )
        .prop_map(
            |(
                (ftype, mode, nlink, uid, gid, size, used),
                ((major, minor), fsid, fileid, atime, mtime, ctime),
            )| Fattr3 {
                ftype,
                mode,
                nlink,
                uid,
                gid,
                size,
                used,
                rdev: SpecData3 { major, minor },
                fsid,
                fileid,
                atime,
                mtime,
                ctime,
            },
        )
}

fn post_op_attr() -> impl Strategy<Value = Option<Fattr3>> {
    option::of(fattr3())
}

fn fail_status() -> impl Strategy<Value = Nfsstat3> {
    prop_oneof![
        proptest::sample::select(Nfsstat3::ALL[1..].to_vec()),
        (1u32..).prop_map(Nfsstat3::from_u32),
    ]
}

fn res_fail(has_attrs: bool) -> impl Strategy<Value = ResFail> {
    (fail_status(), post_op_attr()).prop_map(move |(status, attrs)| ResFail {
        status,
        attrs: if has_attrs { attrs } else { None },
    })
}

fn name(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..=24), vec(any::<u8>(), 0..=max),]
}

/// An owned `entryplus3`, to be borrowed as a `DirEntryPlus`.
#[derive(Debug, Clone)]
struct OwnedEntryPlus {
    fileid: u64,
    name: Vec<u8>,
    cookie: u64,
    attrs: Option<Fattr3>,
    fh: Option<FileHandle>,
}

impl OwnedEntryPlus {
    fn borrow(&self) -> DirEntryPlus<'_> {
        DirEntryPlus {
            fileid: self.fileid,
            name: &self.name,
            cookie: self.cookie,
            attrs: self.attrs,
            fh: self.fh,
        }
    }
}

fn entry_plus() -> impl Strategy<Value = OwnedEntryPlus> {
    (
        any::<u64>(),
        name(ENTRY_NAME_BYTES_MAX as usize),
        any::<u64>(),
        post_op_attr(),
        option::of(file_handle()),
    )
        .prop_map(|(fileid, name, cookie, attrs, fh)| OwnedEntryPlus {
            fileid,
            name,
            cookie,
            attrs,
            fh,
        })
}

/// Bytes that look like XDR: big-endian words biased towards small values (valid booleans,
/// discriminants, short lengths), so random inputs get deep into the decoders.
fn xdr_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        4 => 0u32..=2,
        2 => 0u32..=10,
        1 => 60u32..=70,
        1 => 4090u32..=4100,
        1 => any::<u32>(),
    ];
    (vec(word, 0..200), 0usize..4).prop_map(|(words, cut)| {
        let mut b: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        b.truncate(b.len().saturating_sub(cut));
        b
    })
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..600), xdr_like_bytes()]
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

fn args_round_trip<T>(v: &T)
where
    T: XdrEncode + for<'a> XdrDecode<'a> + PartialEq + std::fmt::Debug,
{
    let bytes = v.to_xdr();
    assert_eq!(bytes.len() % 4, 0);
    assert_eq!(&T::from_xdr(&bytes).unwrap(), v);
}

/// encode_result → decode_result gives back the value; decode gives the payload or the status.
macro_rules! result_round_trip {
    ($codec:ty, $res:expr) => {{
        let res = $res;
        let mut bytes = Vec::new();
        <$codec>::encode_result(&mut XdrWriter::new(&mut bytes), &res);
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(<$codec>::decode_result(&bytes).unwrap(), res);
        match (&res, <$codec>::decode(&bytes)) {
            (Ok(want), Ok(got)) => assert_eq!(&got, want),
            (Err(fail), Err(NfsReplyError::Status(s))) => assert_eq!(s, fail.status),
            (want, got) => panic!("{want:?} decoded as {got:?}"),
        }
    }};
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fh_args_round_trip(fh in file_handle()) {
        args_round_trip(&GetattrArgs { fh });
        args_round_trip(&ReadlinkArgs { fh });
        args_round_trip(&FsstatArgs { fh });
        args_round_trip(&FsinfoArgs { fh });
        args_round_trip(&PathconfArgs { fh });
        args_round_trip(&fh);
    }

    #[test]
    fn lookup_access_readdir_args_round_trip(
        dir in file_handle(),
        name in name(ARG_NAME_BYTES_MAX as usize),
        access: u32,
        cookie: u64,
        cookieverf: [u8; 8],
        count: u32,
        maxcount: u32,
    ) {
        let lookup = LookupArgs { dir, name: &name };
        let bytes = lookup.to_xdr();
        prop_assert_eq!(LookupArgs::from_xdr(&bytes).unwrap(), lookup);
        args_round_trip(&AccessArgs { fh: dir, access });
        args_round_trip(&ReaddirArgs { dir, cookie, cookieverf, count });
        args_round_trip(&ReaddirPlusArgs { dir, cookie, cookieverf, dircount: count, maxcount });
    }

    #[test]
    fn read_args_and_result_round_trip(
        file in file_handle(),
        offset: u64,
        count: u32,
        attrs in post_op_attr(),
        eof: bool,
        data in vec(any::<u8>(), 0..2000),
        fail in res_fail(true),
        use_ok: bool,
    ) {
        args_round_trip(&ReadArgs { file, offset, count });
        let ok = ReadOk { attrs, count: data.len() as u32, eof, data: &data };
        result_round_trip!(ReadReply, if use_ok { Ok(ok) } else { Err(fail) });
        // the server's in-place encoder writes the same bytes
        let mut a = Vec::new();
        ReadReply::encode_ok(&mut XdrWriter::new(&mut a), &ok);
        let mut b = Vec::new();
        encode_read_ok_with(&mut b, attrs.as_ref(), data.len(), eof, |buf| buf.copy_from_slice(&data));
        prop_assert_eq!(a, b);
    }

    #[test]
    fn mount_and_portmap_args_round_trip(
        path in vec(any::<u8>(), 0..=1024),
        m: (u32, u32, u32, u32),
    ) {
        let args = MntArgs { dirpath: &path };
        let bytes = args.to_xdr();
        prop_assert_eq!(MntArgs::from_xdr(&bytes).unwrap(), args);
        args_round_trip(&Mapping { prog: m.0, vers: m.1, prot: m.2, port: m.3 });
        args_round_trip(&GetportReply { port: m.3 });
    }

    #[test]
    fn getattr_result_round_trip(
        res in prop_oneof![fattr3().prop_map(Ok), res_fail(false).prop_map(Err)]
    ) {
        result_round_trip!(GetattrReply, res);
    }

    #[test]
    fn lookup_result_round_trip(
        res in prop_oneof![
            (file_handle(), post_op_attr(), post_op_attr())
                .prop_map(|(fh, obj_attrs, dir_attrs)| Ok(LookupOk { fh, obj_attrs, dir_attrs })),
            res_fail(true).prop_map(Err),
        ]
    ) {
        result_round_trip!(LookupReply, res);
    }

    #[test]
    fn access_result_round_trip(
        res in prop_oneof![
            (post_op_attr(), any::<u32>()).prop_map(|(attrs, access)| Ok(AccessOk { attrs, access })),
            res_fail(true).prop_map(Err),
        ]
    ) {
        result_round_trip!(AccessReply, res);
    }

    #[test]
    fn readlink_result_round_trip(
        ok in (post_op_attr(), name(PATH_BYTES_MAX as usize)),
        fail in res_fail(true),
        use_ok: bool,
    ) {
        let res = if use_ok { Ok(ReadlinkOk { attrs: ok.0, target: &ok.1 }) } else { Err(fail) };
        result_round_trip!(ReadlinkReply, res);
    }

    #[test]
    fn fsstat_result_round_trip(
        attrs in post_op_attr(),
        n: (u64, u64, u64, u64, u64, u64, u32),
        fail in res_fail(true),
        use_ok: bool,
    ) {
        let ok = FsstatOk {
            attrs, tbytes: n.0, fbytes: n.1, abytes: n.2, tfiles: n.3, ffiles: n.4, afiles: n.5,
            invarsec: n.6,
        };
        result_round_trip!(FsstatReply, if use_ok { Ok(ok) } else { Err(fail) });
    }

    #[test]
    fn fsinfo_result_round_trip(
        attrs in post_op_attr(),
        n: (u32, u32, u32, u32, u32, u32, u32, u64, u32),
        time_delta in nfs_time(),
        fail in res_fail(true),
        use_ok: bool,
    ) {
        let ok = FsinfoOk {
            attrs, rtmax: n.0, rtpref: n.1, rtmult: n.2, wtmax: n.3, wtpref: n.4, wtmult: n.5,
            dtpref: n.6, maxfilesize: n.7, time_delta, properties: n.8,
        };
        result_round_trip!(FsinfoReply, if use_ok { Ok(ok) } else { Err(fail) });
    }

    #[test]
    fn pathconf_result_round_trip(
        attrs in post_op_attr(),
        n: (u32, u32, bool, bool, bool, bool),
        fail in res_fail(true),
        use_ok: bool,
    ) {
        let ok = PathconfOk {
            attrs, linkmax: n.0, name_max: n.1, no_trunc: n.2, chown_restricted: n.3,
            case_insensitive: n.4, case_preserving: n.5,
        };
        result_round_trip!(PathconfReply, if use_ok { Ok(ok) } else { Err(fail) });
    }

    #[test]
    fn readdirplus_round_trip(
        dir_attrs in post_op_attr(),
        cookieverf: [u8; 8],
        entries in vec(entry_plus(), 0..40),
        eof: bool,
    ) {
        let mut buf = vec![0xab; 28]; // an RPC reply header written before
        let mut enc = ReaddirPlusReplyEncoder::begin(
            &mut buf, dir_attrs.as_ref(), cookieverf, u32::MAX, u32::MAX);
        for e in &entries {
            prop_assert!(enc.push(&mut buf, &e.borrow()));
        }
        enc.finish(&mut buf, eof);
        let reply = ReaddirPlusReply::decode(&buf[28..]).unwrap();
        prop_assert_eq!(reply.dir_attrs, dir_attrs);
        prop_assert_eq!(reply.cookieverf, cookieverf);
        prop_assert_eq!(reply.eof, eof);
        prop_assert_eq!(reply.entry_count, entries.len());
        prop_assert_eq!(reply.entries().len(), entries.len());
        let got: Vec<_> = reply.entries().collect();
        let want: Vec<_> = entries.iter().map(OwnedEntryPlus::borrow).collect();
        prop_assert_eq!(got, want);
        // The generic codec re-encodes the same bytes.
        let mut again = Vec::new();
        NfsRes::<ReaddirPlusReply>::encode_ok(&mut XdrWriter::new(&mut again), &reply);
        prop_assert_eq!(&again[..], &buf[28..]);
    }

    #[test]
    fn readdirplus_encoder_respects_limits(
        entries in vec(entry_plus(), 1..30),
        dircount in 0u32..4096,
        maxcount in 0u32..16384,
        dir_attrs in post_op_attr(),
    ) {
        let mut buf = Vec::new();
        let mut enc = ReaddirPlusReplyEncoder::begin(
            &mut buf, dir_attrs.as_ref(), [0; 8], dircount, maxcount);
        let header = buf.len();
        let mut pushed = 0;
        for e in &entries {
            let before = buf.len();
            if !enc.push(&mut buf, &e.borrow()) {
                prop_assert_eq!(buf.len(), before, "a refused entry writes nothing");
                break;
            }
            pushed += 1;
        }
        enc.finish(&mut buf, false);
        prop_assert!(buf.len() <= (maxcount as usize).max(header + 8));
        let reply = ReaddirPlusReply::decode(&buf).unwrap();
        prop_assert_eq!(reply.entry_count, pushed);
        let dir_bytes: usize = reply
            .entries()
            .map(|e| 24 + e.name.len().div_ceil(4) * 4)
            .sum();
        prop_assert!(dir_bytes <= dircount as usize);
        for (got, want) in reply.entries().zip(&entries) {
            prop_assert_eq!(got, want.borrow());
        }
    }

    #[test]
    fn readdir_round_trip_and_limit(
        dir_attrs in post_op_attr(),
        cookieverf: [u8; 8],
        entries in vec((any::<u64>(), name(300), any::<u64>()), 0..40),
        count in 0u32..8192,
        eof: bool,
    ) {
        let mut buf = Vec::new();
        let mut enc = ReaddirReplyEncoder::begin(&mut buf, dir_attrs.as_ref(), cookieverf, count);
        let header = buf.len();
        let mut pushed = 0;
        for (fileid, name, cookie) in &entries {
            if !enc.push(&mut buf, &DirEntry { fileid: *fileid, name, cookie: *cookie }) {
                break;
            }
            pushed += 1;
        }
        enc.finish(&mut buf, eof);
        prop_assert!(buf.len() <= (count as usize).max(header + 8));
        let reply = ReaddirReply::decode(&buf).unwrap();
        prop_assert_eq!((reply.dir_attrs, reply.cookieverf, reply.eof), (dir_attrs, cookieverf, eof));
        prop_assert_eq!(reply.entry_count, pushed);
        for (got, (fileid, name, cookie)) in reply.entries().zip(&entries) {
            prop_assert_eq!(got, DirEntry { fileid: *fileid, name, cookie: *cookie });
        }
    }

    #[test]
    fn listing_failures_round_trip(fail in res_fail(true)) {
        let mut buf = Vec::new();
        ReaddirPlusReplyEncoder::encode_fail(&mut buf, fail.status, fail.attrs.as_ref());
        prop_assert_eq!(ReaddirPlusReply::decode_result(&buf).unwrap(), Err(fail));
        prop_assert_eq!(ReaddirPlusReply::decode(&buf), Err(NfsReplyError::Status(fail.status)));
        let mut buf = Vec::new();
        ReaddirReplyEncoder::encode_fail(&mut buf, fail.status, fail.attrs.as_ref());
        prop_assert_eq!(ReaddirReply::decode_result(&buf).unwrap(), Err(fail));
    }

    #[test]
    fn mnt_reply_round_trip(
        fh in file_handle(),
        auth_flavors in vec(any::<u32>(), 0..=AUTH_FLAVORS_MAX as usize),
        code in 1u32..,
    ) {
        let reply = MntReply { fh, auth_flavors };
        let mut buf = Vec::new();
        reply.encode(&mut XdrWriter::new(&mut buf));
        prop_assert_eq!(MntReply::decode(&buf).unwrap(), reply);
        let status = Mountstat3::from_u32(code);
        let mut buf = Vec::new();
        MntReply::encode_fail(&mut XdrWriter::new(&mut buf), status);
        prop_assert_eq!(MntReply::decode(&buf), Err(MountError::Status(status)));
        prop_assert_eq!(status.as_u32(), code);
    }

    #[test]
    fn export_list_round_trip(
        entries in vec(
            (vec(any::<u8>(), 0..=64), vec(vec(any::<u8>(), 0..=32), 0..5))
                .prop_map(|(dir, groups)| ExportEntry { dir, groups }),
            0..10,
        )
    ) {
        let list = ExportList { entries };
        prop_assert_eq!(ExportList::from_xdr(&list.to_xdr()).unwrap(), list);
    }
}

// ---------------------------------------------------------------------------------------------
// No decoder panics, whatever the bytes
// ---------------------------------------------------------------------------------------------

/// Runs every decoder that reads bytes from the network over `b`.
fn decode_everything(b: &[u8]) {
    // Server-sent: RPC reply header and every result.
    if let Ok(reply) = Reply::decode(b) {
        let _ = reply.outcome;
    }
    let _ = GetattrReply::decode(b);
    let _ = GetattrReply::decode_result(b);
    let _ = LookupReply::decode_result(b);
    let _ = AccessReply::decode_result(b);
    let _ = ReadlinkReply::decode_result(b);
    let _ = FsstatReply::decode_result(b);
    let _ = FsinfoReply::decode_result(b);
    let _ = PathconfReply::decode_result(b);
    if let Ok(Ok(r)) = ReadReply::decode_result(b) {
        assert!(r.data.len() <= READ_DATA_BYTES_MAX as usize);
        assert_eq!(ReadReply::decode(b), Ok(r));
    }
    if let Ok(Ok(r)) = ReaddirPlusReply::decode_result(b) {
        assert_eq!(r.entries().count(), r.entry_count);
    }
    if let Ok(r) = ReaddirReply::decode(b) {
        assert_eq!(r.entries().count(), r.entry_count);
    }
    let _ = MntReply::decode(b);
    let _ = ExportList::from_xdr(b);
    let _ = GetportReply::from_xdr(b);
    // Client-sent, decoded by the server: the call header and every argument.
    if let Ok(call) = ReceivedCall::decode(b) {
        let _ = LookupArgs::from_xdr(call.args);
    }
    let _ = GetattrArgs::from_xdr(b);
    let _ = LookupArgs::from_xdr(b);
    let _ = AccessArgs::from_xdr(b);
    let _ = ReadlinkArgs::from_xdr(b);
    let _ = ReaddirArgs::from_xdr(b);
    let _ = ReaddirPlusArgs::from_xdr(b);
    let _ = FsstatArgs::from_xdr(b);
    let _ = FsinfoArgs::from_xdr(b);
    let _ = PathconfArgs::from_xdr(b);
    let _ = ReadArgs::from_xdr(b);
    let _ = MntArgs::from_xdr(b);
    let _ = Mapping::from_xdr(b);
    let _ = decode_post_op_attr(&mut XdrReader::new(b));
    let _ = decode_post_op_fh3(&mut XdrReader::new(b));
}

fn sample_readdirplus() -> Vec<u8> {
    let attrs = Fattr3 {
        ftype: FileType3::Reg,
        mode: 0o644,
        nlink: 1,
        uid: 1,
        gid: 2,
        size: 3,
        used: 4,
        rdev: SpecData3::default(),
        fsid: 5,
        fileid: 6,
        atime: NfsTime3::default(),
        mtime: NfsTime3::default(),
        ctime: NfsTime3::default(),
    };
    let fh = FileHandle::from_bytes(b"0123456789abcdefghij").unwrap();
    let mut buf = Vec::new();
    let mut enc = ReaddirPlusReplyEncoder::begin(&mut buf, Some(&attrs), [7; 8], 1 << 16, 1 << 20);
    for (i, name) in [&b"a"[..], b"bb", b"ccc", b"dddd", b"eeeee"]
        .iter()
        .enumerate()
    {
        let e = DirEntryPlus {
            fileid: i as u64,
            name,
            cookie: i as u64 + 1,
            attrs: (i % 2 == 0).then_some(attrs),
            fh: (i % 3 != 0).then_some(fh),
        };
        assert!(enc.push(&mut buf, &e));
    }
    enc.finish(&mut buf, true);
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic(b in any_bytes()) {
        decode_everything(&b);
    }

    #[test]
    fn mutated_listings_never_panic(
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        do_cut: bool,
    ) {
        let mut b = sample_readdirplus();
        for (at, v) in flips {
            let i = at.index(b.len());
            b[i] = v;
        }
        if do_cut {
            let n = cut.index(b.len());
            b.truncate(n);
        }
        decode_everything(&b);
    }

    #[test]
    fn record_assembler_never_panics(
        stream in any_bytes(),
        chunks in vec(1usize..64, 1..20),
        max in 0u32..256,
    ) {
        let mut asm = RecordAssembler::new(max);
        let mut rest = &stream[..];
        let mut i = 0;
        'feed: while !rest.is_empty() {
            let n = chunks[i % chunks.len()].min(rest.len());
            asm.push(&rest[..n]);
            rest = &rest[n..];
            i += 1;
            loop {
                match asm.next_record() {
                    Ok(Some(r)) => prop_assert!(r.len() <= max as usize),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    #[test]
    fn record_assembler_reassembles_any_chunking(
        bodies in vec(vec(any::<u8>(), 0..100), 0..8),
        chunks in vec(1usize..40, 1..10),
    ) {
        let mut stream = Vec::new();
        for body in &bodies {
            let start = begin_record(&mut stream);
            stream.extend_from_slice(body);
            end_record(&mut stream, start);
        }
        let mut asm = RecordAssembler::new(1024);
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = chunks[i % chunks.len()].min(rest.len());
            asm.push(&rest[..n]);
            rest = &rest[n..];
            i += 1;
            while let Some(r) = asm.next_record().unwrap() {
                got.push(r.to_vec());
            }
        }
        prop_assert_eq!(got, bodies);
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-check against an independent implementation: the nfs3_types crate
// ---------------------------------------------------------------------------------------------

mod independent {
    use super::*;
    use nfs3_types::nfs3 as theirs;
    use nfs3_types::xdr_codec::{List, Opaque, Pack, Unpack};

    fn their_fattr(a: &Fattr3) -> theirs::fattr3 {
        let t = |t: NfsTime3| theirs::nfstime3 {
            seconds: t.seconds,
            nseconds: t.nseconds,
        };
        theirs::fattr3 {
            type_: match a.ftype {
                FileType3::Reg => theirs::ftype3::NF3REG,
                FileType3::Dir => theirs::ftype3::NF3DIR,
                FileType3::Blk => theirs::ftype3::NF3BLK,
                FileType3::Chr => theirs::ftype3::NF3CHR,
                FileType3::Lnk => theirs::ftype3::NF3LNK,
                FileType3::Sock => theirs::ftype3::NF3SOCK,
                FileType3::Fifo => theirs::ftype3::NF3FIFO,
            },
            mode: a.mode,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            used: a.used,
            rdev: theirs::specdata3 {
                specdata1: a.rdev.major,
                specdata2: a.rdev.minor,
            },
            fsid: a.fsid,
            fileid: a.fileid,
            atime: t(a.atime),
            mtime: t(a.mtime),
            ctime: t(a.ctime),
        }
    }

    fn their_post_op_attr(a: Option<&Fattr3>) -> theirs::post_op_attr {
        match a {
            Some(a) => theirs::Nfs3Option::Some(their_fattr(a)),
            None => theirs::Nfs3Option::None,
        }
    }

    fn their_fh(fh: &FileHandle) -> theirs::nfs_fh3 {
        theirs::nfs_fh3 {
            data: Opaque::owned(fh.as_bytes().to_vec()),
        }
    }

    fn their_readdirplus(
        dir_attrs: Option<&Fattr3>,
        verf: [u8; 8],
        entries: &[OwnedEntryPlus],
        eof: bool,
    ) -> theirs::READDIRPLUS3res<'static> {
        let entries = entries
            .iter()
            .map(|e| theirs::entryplus3 {
                fileid: e.fileid,
                name: theirs::filename3(Opaque::owned(e.name.clone())),
                cookie: e.cookie,
                name_attributes: their_post_op_attr(e.attrs.as_ref()),
                name_handle: match &e.fh {
                    Some(fh) => theirs::Nfs3Option::Some(their_fh(fh)),
                    None => theirs::Nfs3Option::None,
                },
            })
            .collect();
        theirs::Nfs3Result::Ok(theirs::READDIRPLUS3resok {
            dir_attributes: their_post_op_attr(dir_attrs),
            cookieverf: theirs::cookieverf3(verf),
            reply: theirs::dirlistplus3 {
                entries: List(entries),
                eof,
            },
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Their encoder, our decoder; our encoder, their decoder; byte-identical output.
        #[test]
        fn readdirplus_agrees_with_nfs3_types(
            dir_attrs in post_op_attr(),
            verf: [u8; 8],
            entries in vec(entry_plus(), 0..20),
            eof: bool,
        ) {
            let res = their_readdirplus(dir_attrs.as_ref(), verf, &entries, eof);
            let mut their_bytes = Vec::new();
            res.pack(&mut their_bytes).unwrap();

            let ours = ReaddirPlusReply::decode(&their_bytes).unwrap();
            prop_assert_eq!(ours.dir_attrs, dir_attrs);
            prop_assert_eq!(ours.cookieverf, verf);
            prop_assert_eq!(ours.eof, eof);
            let got: Vec<_> = ours.entries().collect();
            let want: Vec<_> = entries.iter().map(OwnedEntryPlus::borrow).collect();
            prop_assert_eq!(got, want);

            let mut our_bytes = Vec::new();
            let mut enc = ReaddirPlusReplyEncoder::begin(
                &mut our_bytes, dir_attrs.as_ref(), verf, u32::MAX, u32::MAX);
            for e in &entries {
                prop_assert!(enc.push(&mut our_bytes, &e.borrow()));
            }
            enc.finish(&mut our_bytes, eof);
            prop_assert_eq!(&our_bytes, &their_bytes);

            let (back, n) = theirs::READDIRPLUS3res::unpack(&mut &our_bytes[..]).unwrap();
            prop_assert_eq!(n, our_bytes.len());
            let theirs::Nfs3Result::Ok(ok) = back else {
                panic!("nfs3_types decoded a failure");
            };
            prop_assert_eq!(ok.reply.entries.0.len(), entries.len());
            for (t, e) in ok.reply.entries.0.iter().zip(&entries) {
                prop_assert_eq!(t.name.as_ref(), &e.name[..]);
                prop_assert_eq!((t.fileid, t.cookie), (e.fileid, e.cookie));
            }
        }

        #[test]
        fn args_agree_with_nfs3_types(
            dir in file_handle(),
            name in vec(any::<u8>(), 0..=255),
            cookie: u64,
            verf: [u8; 8],
            dircount: u32,
            maxcount: u32,
        ) {
            let ours = ReaddirPlusArgs { dir, cookie, cookieverf: verf, dircount, maxcount };
            let t = theirs::READDIRPLUS3args {
                dir: their_fh(&dir),
                cookie,
                cookieverf: theirs::cookieverf3(verf),
                dircount,
                maxcount,
            };
            let mut tb = Vec::new();
            t.pack(&mut tb).unwrap();
            prop_assert_eq!(ours.to_xdr(), tb);

            let t = theirs::LOOKUP3args {
                what: theirs::diropargs3 {
                    dir: their_fh(&dir),
                    name: theirs::filename3(Opaque::borrowed(&name)),
                },
            };
            let mut tb = Vec::new();
            t.pack(&mut tb).unwrap();
            prop_assert_eq!(LookupArgs { dir, name: &name }.to_xdr(), tb);
        }

        #[test]
        fn getattr_agrees_with_nfs3_types(a in fattr3()) {
            let t: theirs::GETATTR3res = theirs::Nfs3Result::Ok(theirs::GETATTR3resok {
                obj_attributes: their_fattr(&a),
            });
            let mut tb = Vec::new();
            t.pack(&mut tb).unwrap();
            prop_assert_eq!(GetattrReply::decode(&tb).unwrap(), a);
        }
    }
}
