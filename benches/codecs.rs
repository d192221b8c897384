//! Codec throughput: the READDIRPLUS reply decode (the scan's hot path), a GETATTR call and
//! reply as the smallest round trip, and the scan database's record encoding.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nfs_walker::rpc::msg::{encode_accepted_reply, AcceptStat, Auth, AuthSys, Reply};
use nfs_walker::rpc::nfs3::*;
use nfs_walker::xdr::{XdrEncode, XdrWriter};
use std::hint::black_box;

fn sample_attrs(fileid: u64) -> Fattr3 {
    Fattr3 {
        ftype: FileType3::Reg,
        mode: 0o100644,
        nlink: 1,
        uid: 1000,
        gid: 1000,
        size: 123_456,
        used: 126_976,
        rdev: SpecData3::default(),
        fsid: 0x0803,
        fileid,
        atime: NfsTime3 {
            seconds: 1_700_000_000,
            nseconds: 1,
        },
        mtime: NfsTime3 {
            seconds: 1_700_000_000,
            nseconds: 2,
        },
        ctime: NfsTime3 {
            seconds: 1_700_000_000,
            nseconds: 3,
        },
    }
}

/// A READDIRPLUS result body that fills `maxcount` bytes with typical entries (16-byte
/// names, full attributes, 28-byte handles like Linux knfsd's). Returns (bytes, entries).
fn readdirplus_body(maxcount: u32) -> (Vec<u8>, usize) {
    let mut buf = Vec::with_capacity(maxcount as usize);
    let dir = sample_attrs(2);
    let mut enc = ReaddirPlusReplyEncoder::begin(&mut buf, Some(&dir), [1; 8], maxcount, maxcount);
    let mut i = 0u64;
    loop {
        let name = format!("file-{i:011}");
        let fh = FileHandle::from_bytes(&[(i & 0xff) as u8; 28]).unwrap();
        let entry = DirEntryPlus {
            fileid: 1000 + i,
            name: name.as_bytes(),
            cookie: i + 1,
            attrs: Some(sample_attrs(1000 + i)),
            fh: Some(fh),
        };
        if !enc.push(&mut buf, &entry) {
            break;
        }
        i += 1;
    }
    let n = enc.entry_count();
    enc.finish(&mut buf, false);
    (buf, n)
}

fn bench_readdirplus(c: &mut Criterion) {
    let (body, entries) = readdirplus_body(64 * 1024);
    let mut g = c.benchmark_group("readdirplus_64KiB");
    g.throughput(Throughput::Elements(entries as u64));
    g.bench_function("decode_validate", |b| {
        b.iter(|| {
            let reply = ReaddirPlusReply::decode(black_box(&body)).unwrap();
            black_box(reply.entry_count)
        })
    });
    g.bench_function("decode_and_iterate", |b| {
        b.iter(|| {
            let reply = ReaddirPlusReply::decode(black_box(&body)).unwrap();
            let mut sum = 0u64;
            for e in reply.entries() {
                sum = sum
                    .wrapping_add(e.fileid)
                    .wrapping_add(e.name.len() as u64)
                    .wrapping_add(e.attrs.map_or(0, |a| a.size))
                    .wrapping_add(e.fh.map_or(0, |f| f.len() as u64));
            }
            black_box(sum)
        })
    });
    g.bench_function("decode_to_entry_attrs", |b| {
        b.iter(|| {
            let reply = ReaddirPlusReply::decode(black_box(&body)).unwrap();
            let mut sum = 0i64;
            for e in reply.entries() {
                if let Some(a) = e.attrs {
                    sum = sum.wrapping_add(a.to_entry_attrs().mtime_ns);
                }
            }
            black_box(sum)
        })
    });
    g.bench_function("encode", |b| {
        let mut buf = Vec::with_capacity(64 * 1024);
        let names: Vec<String> = (0..entries).map(|i| format!("file-{i:011}")).collect();
        let fh = FileHandle::from_bytes(&[7; 28]).unwrap();
        let dir = sample_attrs(2);
        b.iter(|| {
            buf.clear();
            let mut enc =
                ReaddirPlusReplyEncoder::begin(&mut buf, Some(&dir), [1; 8], 65536, 65536);
            for (i, name) in names.iter().enumerate() {
                let entry = DirEntryPlus {
                    fileid: i as u64,
                    name: name.as_bytes(),
                    cookie: i as u64 + 1,
                    attrs: Some(sample_attrs(i as u64)),
                    fh: Some(fh),
                };
                enc.push(&mut buf, &entry);
            }
            enc.finish(&mut buf, true);
            black_box(buf.len())
        })
    });
    g.finish();
}

fn bench_getattr(c: &mut Criterion) {
    let mut g = c.benchmark_group("getattr");
    g.throughput(Throughput::Elements(1));
    let cred = Auth::Sys(AuthSys {
        stamp: 0,
        machine_name: b"scanner-host".to_vec(),
        uid: 1000,
        gid: 1000,
        gids: vec![1000],
    })
    .to_xdr();
    let fh = FileHandle::from_bytes(&[0x5a; 28]).unwrap();
    g.bench_function("encode_call", |b| {
        let mut buf = Vec::with_capacity(256);
        let mut xid = 0u32;
        b.iter(|| {
            buf.clear();
            xid = xid.wrapping_add(1);
            encode_nfs3_call(
                &mut buf,
                xid,
                proc3::GETATTR,
                &cred,
                &GetattrArgs { fh: black_box(fh) },
            );
            black_box(buf.len())
        })
    });

    let mut reply = Vec::new();
    let mut w = XdrWriter::new(&mut reply);
    encode_accepted_reply(&mut w, 7, AcceptStat::Success);
    GetattrReply::encode_ok(&mut w, &sample_attrs(42));
    g.bench_function("decode_reply", |b| {
        b.iter(|| {
            let r = Reply::decode(black_box(&reply)).unwrap();
            let res = r.outcome.unwrap();
            black_box(GetattrReply::decode(res).unwrap())
        })
    });
    g.finish();
}

/// The scan database's per-entry cost in the writer: one `entries` record.
fn bench_entries_record(c: &mut Criterion) {
    use nfs_walker::output::btree::{encode_record, Value};
    let mut g = c.benchmark_group("entries_record");
    g.throughput(Throughput::Elements(1));
    let path = b"projects/alpha/build/output/objects/module-0042/generated/source_file_0123.rs";
    let name = &path[path.len() - 18..];
    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            let values = [
                Value::Null,
                Value::Int(black_box(40_211)),
                Value::Text(name),
                Value::Text(path),
                Value::Text(b"file"),
                Value::Int(123_456),
                Value::Int(126_976),
                Value::Int(0o644),
                Value::Int(1),
                Value::Int(1000),
                Value::Int(1000),
                Value::Int(black_box(987_654_321)),
                Value::Int(0x0803),
                Value::Int(1_700_000_000_000_000_001),
                Value::Int(1_700_000_000_000_000_002),
                Value::Int(1_700_000_000_000_000_003),
                Value::Int(9),
                Value::Text(b"rs"),
                Value::Null,
            ];
            encode_record(&values, &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_readdirplus,
    bench_getattr,
    bench_entries_record
);
criterion_main!(benches);
