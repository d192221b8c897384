//! Property tests of the NFSv4.1 codec: attributes and listings survive encode → decode
//! unchanged, the listing encoder respects the client's byte limits, and no decoder of server
//! (or client) bytes panics on arbitrary or mutated input.

use nfs_walker::rpc::nfs4::*;
use nfs_walker::xdr::{XdrReader, XdrWriter};
use proptest::collection::vec;
use proptest::prelude::*;

fn nfs_time() -> impl Strategy<Value = NfsTime4> {
    (any::<i64>(), 0u32..1_000_000_000)
        .prop_map(|(seconds, nseconds)| NfsTime4 { seconds, nseconds })
}

/// The raw material of one `Fattr4`: mask, 64-bit and 32-bit values, times, strings.
type Fattr4Parts = (u64, Vec<u64>, Vec<u32>, [NfsTime4; 3], Vec<Vec<u8>>);

/// Attributes with a random subset of the record's mask, borrowing from `strings`.
fn fattr4_parts() -> impl Strategy<Value = Fattr4Parts> {
    (
        any::<u64>(),
        vec(any::<u64>(), 6),
        vec(any::<u32>(), 4),
        [nfs_time(), nfs_time(), nfs_time()],
        vec(vec(any::<u8>(), 0..40), 3),
    )
}

fn build<'a>((mask, w64, w32, times, strings): &'a Fattr4Parts) -> Fattr4<'a> {
    let types = [
        FileType4::Reg,
        FileType4::Dir,
        FileType4::Lnk,
        FileType4::Blk,
        FileType4::Chr,
        FileType4::Sock,
        FileType4::Fifo,
    ];
    let mut a = Fattr4 {
        // FS_LOCATIONS holds wire bytes: exercised by its own test
        mask: AttrMask(mask & AttrMask::RECORD.0).without(AttrMask::of(&[fattr4::FS_LOCATIONS])),
        ftype: types[(w32[0] % 7) as usize],
        size: w64[0],
        fsid: Fsid4 {
            major: w64[1],
            minor: w64[2],
        },
        rdattr_error: Some(Nfsstat4::from_u32(w32[1] % 11000)),
        filehandle: &strings[0][..strings[0].len().min(NFS4_FHSIZE)],
        fileid: w64[3],
        mode: w32[2],
        numlinks: w32[3],
        owner: &strings[1],
        owner_group: &strings[2],
        space_used: w64[4],
        time_access: times[0],
        time_metadata: times[1],
        time_modify: times[2],
        mounted_on_fileid: w64[5],
        ..Default::default()
    };
    if !a.mask.has(fattr4::RDATTR_ERROR) {
        a.rdattr_error = None;
    }
    a
}

/// The fields of `a` that its mask names, for comparison.
fn masked(a: &Fattr4<'_>) -> Fattr4<'static> {
    let m = a.mask;
    let owned = |s: &[u8]| -> &'static [u8] { Box::leak(s.to_vec().into_boxed_slice()) };
    Fattr4 {
        mask: m,
        ftype: if m.has(fattr4::TYPE) {
            a.ftype
        } else {
            Default::default()
        },
        size: if m.has(fattr4::SIZE) { a.size } else { 0 },
        fsid: if m.has(fattr4::FSID) {
            a.fsid
        } else {
            Default::default()
        },
        rdattr_error: a.rdattr_error,
        filehandle: if m.has(fattr4::FILEHANDLE) {
            owned(a.filehandle)
        } else {
            b""
        },
        fileid: if m.has(fattr4::FILEID) { a.fileid } else { 0 },
        mode: if m.has(fattr4::MODE) { a.mode } else { 0 },
        numlinks: if m.has(fattr4::NUMLINKS) {
            a.numlinks
        } else {
            0
        },
        owner: if m.has(fattr4::OWNER) {
            owned(a.owner)
        } else {
            b""
        },
        owner_group: if m.has(fattr4::OWNER_GROUP) {
            owned(a.owner_group)
        } else {
            b""
        },
        space_used: if m.has(fattr4::SPACE_USED) {
            a.space_used
        } else {
            0
        },
        time_access: if m.has(fattr4::TIME_ACCESS) {
            a.time_access
        } else {
            Default::default()
        },
        time_metadata: if m.has(fattr4::TIME_METADATA) {
            a.time_metadata
        } else {
            Default::default()
        },
        time_modify: if m.has(fattr4::TIME_MODIFY) {
            a.time_modify
        } else {
            Default::default()
        },
        mounted_on_fileid: if m.has(fattr4::MOUNTED_ON_FILEID) {
            a.mounted_on_fileid
        } else {
            0
        },
        ..Default::default()
    }
}

proptest! {
    #[test]
    fn fattr4_round_trips(parts in fattr4_parts()) {
        let a = build(&parts);
        let mut buf = Vec::new();
        a.encode(&mut XdrWriter::new(&mut buf));
        let mut r = XdrReader::new(&buf);
        let b = Fattr4::decode(&mut r).unwrap();
        prop_assert_eq!(r.remaining(), 0);
        prop_assert_eq!(masked(&b), masked(&a));
    }

    #[test]
    fn listings_round_trip_within_maxcount(
        entries in vec((vec(any::<u8>(), 1..64), fattr4_parts()), 0..40),
        maxcount in 64u32..8192,
        eof in any::<bool>(),
    ) {
        let mut buf = Vec::new();
        let mut enc = CompoundReplyEncoder::begin(&mut buf, b"");
        let body_at = buf.len() + 8;
        let mut rd = enc.readdir(&mut buf, *b"verifier", 0, maxcount);
        let mut pushed = Vec::new();
        for (i, (name, parts)) in entries.iter().enumerate() {
            let a = build(parts);
            if !rd.push(&mut buf, i as u64 + 3, name, &a) {
                break;
            }
            pushed.push((i as u64 + 3, name.clone(), masked(&a)));
        }
        prop_assert!(buf.len() - body_at + 8 <= maxcount as usize);
        enc.finish_readdir(&mut buf, rd, eof);
        enc.finish(&mut buf);
        let mut reply = CompoundReply::decode(&buf).unwrap();
        let ResOk::Readdir(list) = reply.expect(op4::READDIR).unwrap() else {
            panic!("not a listing");
        };
        reply.finish().unwrap();
        prop_assert_eq!(list.eof, eof);
        let got: Vec<_> = list.entries().map(|e| (e.cookie, e.name.to_vec(), masked(&e.attrs))).collect();
        prop_assert_eq!(got, pushed);
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
        if let Ok(mut reply) = CompoundReply::decode(&bytes) {
            while let Ok(Some(op)) = reply.next_op() {
                if let Ok(ResOk::Readdir(list)) = op.result {
                    prop_assert_eq!(list.entries().count(), list.entry_count);
                }
            }
        }
        if let Ok(mut args) = CompoundArgs::decode(&bytes) {
            while let Some(Ok(_)) = args.next_op() {}
        }
        let _ = Fattr4::decode(&mut XdrReader::new(&bytes));
    }

    #[test]
    fn decoders_never_panic_on_mutated_replies(
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        // A real listing reply, then mutated and cut.
        let attrs = Fattr4 {
            mask: AttrMask::RECORD.without(AttrMask::of(&[fattr4::FS_LOCATIONS])),
            owner: b"1000",
            owner_group: b"staff@example.com",
            filehandle: b"0123456789abcdef",
            rdattr_error: Some(Nfsstat4::Ok),
            ..Default::default()
        };
        let mut buf = Vec::new();
        let mut enc = CompoundReplyEncoder::begin(&mut buf, b"");
        let mut rd = enc.readdir(&mut buf, [7; 8], 0, 4096);
        for i in 0..10u64 {
            rd.push(&mut buf, i + 1, format!("f{i}").as_bytes(), &attrs);
        }
        enc.finish_readdir(&mut buf, rd, true);
        enc.finish(&mut buf);
        for (at, byte) in flips {
            let i = at.index(buf.len());
            buf[i] ^= byte;
        }
        let buf = &buf[..cut.index(buf.len() + 1)];
        if let Ok(mut reply) = CompoundReply::decode(buf) {
            while let Ok(Some(op)) = reply.next_op() {
                if let Ok(ResOk::Readdir(list)) = op.result {
                    prop_assert_eq!(list.entries().count(), list.entry_count);
                }
            }
        }
    }
}
