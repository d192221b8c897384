//! The content reader as a state machine, without sockets: READ calls out, canned replies in
//! (in shuffled order, with errors and files that change), an inline hasher that reports the
//! bytes it consumed late. Contents come from mock-nfsd's content function, so the expected
//! checksums are mock-nfsd's own.

use checksum::ChecksumAlgo;
use mock_nfsd::content::{content_seed, file_checksum, fill};
use nfs_walker::content::{
    ContentConfig, ContentDone, ContentError, ContentJob, ContentReader, HashStage, ReadCall,
};
use nfs_walker::rpc::nfs3::{
    encode_read_ok_with, Fattr3, FileHandle, FileType3, NfsTime3, Nfsstat3, ReadReply, SpecData3,
};
use nfs_walker::sched::conns::{OwnedReply, RecordBuf};
use nfs_walker::xdr::XdrWriter;
use std::collections::HashMap;
use std::ops::Range;

/// How the fake server treats a file.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Good,
    /// Every READ reports a new mtime (a file being rewritten all the time).
    Rewritten,
    /// The listing was taken before one change: the server's mtime differs, but is stable.
    ChangedBeforeRead,
    Denied,
    /// Returns half of what is asked, without eof.
    Short,
    /// Ends the file at half of its size.
    EarlyEof,
    Garbage,
    CallFails,
}

struct FakeFile {
    attrs: Fattr3,
    behaviour: Behaviour,
    reads: u32,
}

fn attrs(fileid: u64, size: u64) -> Fattr3 {
    Fattr3 {
        ftype: FileType3::Reg,
        mode: 0o644,
        nlink: 1,
        uid: 1,
        gid: 1,
        size,
        used: size,
        rdev: SpecData3::default(),
        fsid: 1,
        fileid,
        atime: NfsTime3::default(),
        mtime: NfsTime3 {
            seconds: 1000,
            nseconds: 0,
        },
        ctime: NfsTime3 {
            seconds: 1000,
            nseconds: 0,
        },
    }
}

fn fh(fileid: u64) -> FileHandle {
    FileHandle::from_bytes(&fileid.to_be_bytes()).unwrap()
}

struct FakeServer {
    files: HashMap<FileHandle, FakeFile>,
}

impl FakeServer {
    fn add(&mut self, fileid: u64, size: u64, behaviour: Behaviour) -> ContentJob<u64> {
        let a = attrs(fileid, size);
        self.files.insert(
            fh(fileid),
            FakeFile {
                attrs: a,
                behaviour,
                reads: 0,
            },
        );
        ContentJob {
            payload: fileid,
            fh: fh(fileid),
            attrs: a.to_entry_attrs(),
        }
    }

    fn reply(&mut self, call: &ReadCall) -> Result<Vec<u8>, String> {
        let f = self.files.get_mut(&call.fh).unwrap();
        f.reads += 1;
        let mut a = f.attrs;
        let generation = match f.behaviour {
            Behaviour::Rewritten => f.reads as u64,
            Behaviour::ChangedBeforeRead => 1,
            _ => 0,
        };
        a.mtime.seconds += generation as u32;
        let mut out = Vec::new();
        let size = a.size;
        let mut len = size.saturating_sub(call.offset).min(call.count as u64) as usize;
        let mut eof = call.offset + len as u64 >= size;
        match f.behaviour {
            Behaviour::Denied => {
                ReadReply::encode_fail(&mut XdrWriter::new(&mut out), Nfsstat3::Acces, Some(&a));
                return Ok(out);
            }
            Behaviour::Garbage => return Ok(vec![0, 0, 0, 0, 0, 0, 0, 7]),
            Behaviour::CallFails => return Err("no reply after 5 retries".into()),
            Behaviour::Short if len > 1 => len /= 2,
            Behaviour::EarlyEof => {
                let end = (size / 2).max(call.offset);
                len = (end - call.offset).min(len as u64) as usize;
                eof = true;
            }
            _ => {}
        }
        let seed = content_seed(a.fileid, generation);
        encode_read_ok_with(&mut out, Some(&a), len, eof, |b| fill(seed, call.offset, b));
        Ok(out)
    }
}

/// Hashes inline, but reports consumed bytes and digests only when asked (late, like a pool).
#[derive(Default)]
struct LateHasher {
    jobs: HashMap<u64, checksum::Hasher>,
    released: u64,
    digests: Vec<(u64, String)>,
    held_bytes_max: u64,
    /// Bytes handed over in the reply buffers they were received in.
    in_record_bytes: u64,
}

impl HashStage for LateHasher {
    fn begin(&mut self, key: u64, algo: ChecksumAlgo) {
        assert!(
            self.jobs.insert(key, algo.hasher()).is_none(),
            "begun twice"
        );
    }
    fn data(&mut self, key: u64, chunk: Vec<u8>) {
        self.jobs
            .get_mut(&key)
            .expect("data after begin")
            .update(&chunk);
        self.released += chunk.len() as u64;
        self.held_bytes_max = self.held_bytes_max.max(self.released);
    }
    fn data_in_record(&mut self, key: u64, record: RecordBuf, range: Range<usize>) {
        // Hashed where it lies, as the pool does.
        self.in_record_bytes += range.len() as u64;
        self.jobs
            .get_mut(&key)
            .expect("data after begin")
            .update(&record[range.clone()]);
        self.released += range.len() as u64;
        self.held_bytes_max = self.held_bytes_max.max(self.released);
    }
    fn end(&mut self, key: u64) {
        let h = self.jobs.remove(&key).expect("end after begin");
        self.digests.push((key, h.finish()));
    }
    fn abort(&mut self, key: u64) {
        self.jobs.remove(&key);
    }
}

impl LateHasher {
    fn report<T>(&mut self, reader: &mut ContentReader<T>) {
        reader.on_hashed(std::mem::take(&mut self.released));
        for (key, digest) in self.digests.drain(..) {
            reader.on_digest(key, digest);
        }
    }
}

/// A small deterministic generator for delivery order.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Runs the reader to the end, delivering replies in a shuffled order, some lent and some in
/// buffers of their own; checks the budget and per-file limits on the way.
fn run(
    cfg: ContentConfig,
    server: &mut FakeServer,
    jobs: Vec<ContentJob<u64>>,
    seed: u64,
) -> (Vec<ContentDone<u64>>, ContentReader<u64>) {
    let mut reader = ContentReader::new(cfg.clone());
    let mut hasher = LateHasher::default();
    let mut rng = Lcg(seed);
    let mut inflight: Vec<ReadCall> = Vec::new();
    let mut done = Vec::new();
    let mut jobs = jobs.into_iter();
    let mut turns = 0;
    loop {
        turns += 1;
        assert!(turns < 1_000_000, "the reader does not finish");
        // Feed files while the reader takes them.
        while !reader.is_full() {
            match jobs.next() {
                Some(j) => reader.submit(j),
                None => break,
            }
        }
        while let Some(call) = reader.poll_read() {
            assert!(call.count <= cfg.chunk_bytes.max(8192));
            inflight.push(call);
        }
        assert!(
            reader.reserved_bytes() <= cfg.budget_bytes,
            "{} bytes reserved over a budget of {}",
            reader.reserved_bytes(),
            cfg.budget_bytes
        );
        let mut per_file: HashMap<u64, u32> = HashMap::new();
        for c in &inflight {
            *per_file.entry(c.key.as_u64()).or_default() += 1;
        }
        assert!(per_file.values().all(|&n| n <= cfg.chunks_per_file_max));
        assert!(per_file.len() <= cfg.files_max);
        // Deliver up to three replies, any of those in flight.
        for _ in 0..3 {
            if inflight.is_empty() {
                break;
            }
            let call = inflight.swap_remove(rng.below(inflight.len()));
            match server.reply(&call) {
                Ok(result) if rng.below(2) == 0 => {
                    // As received into a buffer of its own: the result after other bytes of
                    // the record (the RPC header's place).
                    let mut record = vec![0xa5; 24];
                    record.extend_from_slice(&result);
                    let body = 24..record.len();
                    let reply = OwnedReply::new(RecordBuf::from_vec(record), body);
                    reader.on_read_reply_owned(&call, reply, &mut hasher);
                }
                reply => {
                    reader.on_read_reply(&call, reply.as_deref().map_err(Clone::clone), &mut hasher)
                }
            }
        }
        if rng.below(3) == 0 || inflight.is_empty() {
            hasher.report(&mut reader);
        }
        while let Some(d) = reader.poll_done() {
            done.push(d);
        }
        if reader.is_idle() && inflight.is_empty() && jobs.len() == 0 {
            break;
        }
    }
    assert_eq!(reader.reserved_bytes(), 0, "every byte released");
    IN_RECORD_BYTES.with(|b| b.set(b.get() + hasher.in_record_bytes));
    (done, reader)
}

thread_local! {
    /// Bytes the runs of this test thread hashed in the buffers they were received in.
    static IN_RECORD_BYTES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn by_id(done: Vec<ContentDone<u64>>) -> HashMap<u64, ContentDone<u64>> {
    done.into_iter().map(|d| (d.payload, d)).collect()
}

#[test]
fn pipelined_out_of_order_reads_give_the_right_checksums_within_the_budget() {
    let chunk = 4096u32;
    let cfg = ContentConfig {
        checksum: Some(ChecksumAlgo::Blake3),
        chunk_bytes: chunk,
        budget_bytes: 48 << 10,
        files_max: 6,
        chunks_per_file_max: 4,
        ..Default::default()
    };
    let mut server = FakeServer {
        files: HashMap::new(),
    };
    let c = chunk as u64;
    let sizes = [0, 1, c - 1, c, c + 1, 7 * c + 3, 40 * c, 3, 100_000, 2 * c];
    let mut jobs = Vec::new();
    for (i, &size) in sizes.iter().cycle().take(60).enumerate() {
        jobs.push(server.add(i as u64 + 10, size, Behaviour::Good));
    }
    for seed in [1, 2, 3] {
        for f in server.files.values_mut() {
            f.reads = 0;
        }
        let (done, reader) = run(cfg.clone(), &mut server, jobs_again(&jobs), seed);
        let done = by_id(done);
        assert_eq!(done.len(), 60);
        for (i, &size) in sizes.iter().cycle().take(60).enumerate() {
            let d = &done[&(i as u64 + 10)];
            assert_eq!(d.error, None);
            assert_eq!(
                d.checksum.as_deref(),
                Some(file_checksum(ChecksumAlgo::Blake3, i as u64 + 10, size).as_str()),
                "file of {size} bytes"
            );
            // One READ per chunk, and one for an empty file.
            let reads = server.files[&fh(i as u64 + 10)].reads as u64;
            assert_eq!(reads, size.div_ceil(c).max(1));
        }
        let st = reader.stats();
        assert_eq!((st.files, st.checksummed, st.errors), (60, 60, 0));
        assert!(
            st.out_of_order_chunks > 0,
            "shuffled replies arrive out of order"
        );
        assert!(
            IN_RECORD_BYTES.with(|b| b.take()) > 0,
            "some chunks were hashed where they were received"
        );
        assert_eq!(st.bytes_read, sizes.iter().cycle().take(60).sum::<u64>());
    }
}

fn jobs_again(jobs: &[ContentJob<u64>]) -> Vec<ContentJob<u64>> {
    jobs.iter()
        .map(|j| ContentJob {
            payload: j.payload,
            fh: j.fh,
            attrs: j.attrs,
        })
        .collect()
}

#[test]
fn changed_files_are_read_again_once_then_reported_without_checksum() {
    let cfg = ContentConfig {
        checksum: Some(ChecksumAlgo::Sha256),
        chunk_bytes: 1000,
        budget_bytes: 20_000,
        ..Default::default()
    };
    let mut server = FakeServer {
        files: HashMap::new(),
    };
    let jobs = vec![
        server.add(1, 5500, Behaviour::Rewritten),
        server.add(2, 5500, Behaviour::ChangedBeforeRead),
        server.add(3, 5500, Behaviour::Good),
        server.add(4, 10, Behaviour::Rewritten),
    ];
    let (done, reader) = run(cfg, &mut server, jobs, 7);
    let done = by_id(done);
    for id in [1, 4] {
        assert_eq!(done[&id].error, Some(ContentError::Changed));
        assert_eq!(done[&id].checksum, None);
    }
    // Read again against the attributes the server reported; the record gets those.
    let d2 = &done[&2];
    assert_eq!(d2.error, None);
    let mut buf = vec![0u8; 5500];
    fill(content_seed(2, 1), 0, &mut buf);
    assert_eq!(d2.checksum, Some(ChecksumAlgo::Sha256.checksum(&buf)));
    assert_eq!(d2.attrs.unwrap().mtime_ns, 1001 * 1_000_000_000);
    assert_eq!(done[&3].attrs, None);
    assert_eq!(
        done[&3].checksum.as_deref(),
        Some(file_checksum(ChecksumAlgo::Sha256, 3, 5500).as_str())
    );
    let st = reader.stats();
    assert_eq!((st.changed, st.reread, st.checksummed), (2, 3, 2));
}

#[test]
fn read_failures_are_per_file_errors_and_the_rest_goes_on() {
    let cfg = ContentConfig {
        checksum: Some(ChecksumAlgo::Md5),
        chunk_bytes: 1024,
        ..Default::default()
    };
    let mut server = FakeServer {
        files: HashMap::new(),
    };
    let behaviours = [
        Behaviour::Denied,
        Behaviour::Short,
        Behaviour::EarlyEof,
        Behaviour::Garbage,
        Behaviour::CallFails,
        Behaviour::Good,
    ];
    let jobs = behaviours
        .iter()
        .enumerate()
        .map(|(i, &b)| server.add(i as u64, 10_000, b))
        .collect();
    let (done, reader) = run(cfg, &mut server, jobs, 3);
    let done = by_id(done);
    assert_eq!(done[&0].error, Some(ContentError::Nfs(Nfsstat3::Acces)));
    assert_eq!(
        done[&0].error.as_ref().unwrap().status(),
        Some(Nfsstat3::Acces)
    );
    assert!(matches!(
        done[&1].error,
        Some(ContentError::ShortRead { .. })
    ));
    assert!(matches!(
        done[&2].error,
        Some(ContentError::EarlyEof { size: 10_000, .. })
    ));
    assert!(matches!(done[&3].error, Some(ContentError::Malformed(_))));
    assert!(matches!(done[&4].error, Some(ContentError::Call(_))));
    for id in 0..5 {
        assert_eq!(done[&id].checksum, None, "no checksum for a failed read");
    }
    assert_eq!(
        done[&5].checksum.as_deref(),
        Some(file_checksum(ChecksumAlgo::Md5, 5, 10_000).as_str())
    );
    assert_eq!(reader.stats().errors, 5);
}

#[test]
fn file_type_reads_one_head_and_large_files_skip_the_checksum() {
    let cfg = ContentConfig {
        checksum: Some(ChecksumAlgo::Xxh3),
        checksum_max_size: Some(20_000),
        file_type: true,
        chunk_bytes: 64 << 10,
        ..Default::default()
    };
    let mut server = FakeServer {
        files: HashMap::new(),
    };
    let jobs = vec![
        server.add(1, 5_000, Behaviour::Good),
        server.add(2, 1 << 30, Behaviour::Good),
    ];
    let (done, reader) = run(cfg, &mut server, jobs, 9);
    let done = by_id(done);
    assert!(done[&1].checksum.is_some() && !done[&1].skipped_too_large);
    assert!(done[&2].checksum.is_none() && done[&2].skipped_too_large);
    // the 1 GiB file: one READ of the head, for its type
    assert_eq!(server.files[&fh(2)].reads, 1);
    // mock contents are not a known type
    assert_eq!(done[&2].mime, None);
    let st = reader.stats();
    assert_eq!((st.skipped_too_large, st.checksummed), (1, 1));
    assert_eq!(st.bytes_read, 5_000 + 8192);
}
