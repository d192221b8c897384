//! The content reader of one thread as a state machine (sans-IO): regular files in, READ
//! calls out, replies in, checksums and types out. The call engine (XIDs, timeouts, retries,
//! resends) and the hashing threads are outside; this machine only decides what to read next
//! and what the replies mean, so it is tested with canned replies and an inline hasher.
//!
//! - **Pipelining:** many files are read at once ([`ContentConfig::files_max`]), and a large
//!   file several chunks at once, the oldest file first so files finish (and their entries are
//!   written) soon. How many chunks of a file are in flight adapts to the READ latencies the
//!   caller reports ([`ContentReader::on_read_latency`]): from [`CHUNKS_PER_FILE_MIN`] up to
//!   [`ContentConfig::chunks_per_file_max`], as many as wait on the path rather than queue at
//!   the server (see `Window`).
//! - **Budget:** every byte asked for counts against [`ContentConfig::budget_bytes`] from the
//!   READ until the hasher is done with it; a chunk that arrives ahead of its predecessors
//!   waits within that budget. No READ is sent that would exceed it (but one always may, so a
//!   chunk larger than the budget cannot stall).
//! - **No copies of large reads:** a READ reply received into a buffer of its own
//!   ([`ContentReader::on_read_reply_owned`]) is kept as the chunk, waiting and hashed in place;
//!   only replies lent by the caller are copied (into [`HashStage::buffer`]s).
//! - **Hashing off the loop:** chunks go, in file order, to a [`HashStage`]; digests and the
//!   bytes hashed come back as events ([`ContentReader::on_digest`],
//!   [`ContentReader::on_hashed`]).
//! - **Honest results:** every READ's post-op attributes are compared with the listing's size,
//!   mtime and ctime. On the first difference the file is read again from the start, against
//!   the attributes just seen (the record then carries those); a second difference reports
//!   [`ContentError::Changed`] and no checksum. Short reads, an end of file before the size,
//!   malformed replies and NFS errors are per-file errors.

use super::mime::{self, FILE_TYPE_BYTES};
use crate::record::EntryAttrs;
use crate::rpc::nfs3::{Fattr3, FileHandle, Nfs3Error, Nfsstat3, ReadReply};
use crate::sched::conns::{OwnedReply, RecordBuf};
use checksum::ChecksumAlgo;
use slab::Slab;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use thiserror::Error;

/// Settings of content reads, shared by every thread.
#[derive(Debug, Clone)]
pub struct ContentConfig {
    /// Checksum every regular file whole with this algorithm.
    pub checksum: Option<ChecksumAlgo>,
    /// Files larger than this get no checksum (counted as skipped).
    pub checksum_max_size: Option<u64>,
    /// Detect each regular file's type from its first bytes.
    pub file_type: bool,
    /// Bytes asked for by one READ (from FSINFO's rtpref, at most rtmax).
    pub chunk_bytes: u32,
    /// Bytes one thread has asked for and not yet hashed, at most.
    pub budget_bytes: u64,
    /// Files one thread reads at once.
    pub files_max: usize,
    /// READs of one file in flight at once.
    pub chunks_per_file_max: u32,
}

/// Default bytes in flight per thread: 64 MiB keeps a 1 GiB/s stream going over a link with
/// 60 ms of round trip, and bounds memory at 64 MiB per thread whatever the tree holds.
pub const BUDGET_BYTES_DEFAULT: u64 = 64 << 20;
/// Default files read at once per thread: enough to hide a round trip behind small files.
pub const FILES_MAX_DEFAULT: usize = 256;
/// Default most READs of one file in flight: 16 chunks of 1 MiB keep one large file streaming
/// over a path of up to about 16 ms of round trip at 1 GB/s.
pub const CHUNKS_PER_FILE_MAX_DEFAULT: u32 = 16;
/// Fewest READs of one file in flight the window shrinks to (and starts at). Fewer leave the
/// server idle whenever the client thread is late: nfs-ganesha on loopback, a 1 GiB file,
/// 0.77 s with 2 in flight, 0.67 s with 4 (and 0.1 s more client CPU with 2).
pub const CHUNKS_PER_FILE_MIN: u32 = 4;
/// The window grows while fewer READs than this seem queued behind each other ...
const WINDOW_GROW_QUEUED_MAX: f64 = 1.0;
/// ... and shrinks while more than this do (TCP Vegas' alpha and beta, in READs).
const WINDOW_SHRINK_QUEUED_MIN: f64 = 3.0;
/// Weight of a new latency in the running mean (1/8, as TCP's smoothed RTT).
const LATENCY_MEAN_WEIGHT: f64 = 0.125;
/// READ size used until FSINFO says otherwise.
pub const CHUNK_BYTES_DEFAULT: u32 = 1 << 20;
/// The largest READ asked for, whatever FSINFO offers: servers advertise up to 64 MiB
/// (nfs-ganesha) but stream best at about 1 MiB (ganesha served 4 MiB READs at a sixth of the
/// rate of 1 MiB ones here), and smaller READs keep more of them in flight within the budget.
pub const CHUNK_BYTES_MAX: u32 = 1 << 20;

impl Default for ContentConfig {
    fn default() -> Self {
        ContentConfig {
            checksum: None,
            checksum_max_size: None,
            file_type: false,
            chunk_bytes: CHUNK_BYTES_DEFAULT,
            budget_bytes: BUDGET_BYTES_DEFAULT,
            files_max: FILES_MAX_DEFAULT,
            chunks_per_file_max: CHUNKS_PER_FILE_MAX_DEFAULT,
        }
    }
}

impl ContentConfig {
    /// Whether the scan reads any contents at all.
    pub fn enabled(&self) -> bool {
        self.checksum.is_some() || self.file_type
    }

    /// The READ size for a server's FSINFO: `rtpref`, at most `rtmax`, and at most
    /// [`CHUNK_BYTES_MAX`]; never below what type detection needs (unless `rtmax` is).
    pub fn chunk_for_server(rtpref: u32, rtmax: u32) -> u32 {
        let pref = if rtpref == 0 {
            CHUNK_BYTES_DEFAULT
        } else {
            rtpref
        };
        let max = if rtmax == 0 { pref } else { rtmax };
        pref.min(max)
            .min(CHUNK_BYTES_MAX)
            .max(FILE_TYPE_BYTES.min(max))
    }
}

/// A regular file to read: the caller's `payload` (e.g. the record to write once done), the
/// handle, and the attributes the listing gave.
#[derive(Debug)]
pub struct ContentJob<T> {
    pub payload: T,
    pub fh: FileHandle,
    pub attrs: EntryAttrs,
}

/// Which file (and which attempt at it) a READ or a hash job belongs to: the slot in the
/// reader's slab and an epoch unique to the attempt, so replies to an attempt that was given up
/// (or to a file whose slot was reused) are recognised and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    slot: u32,
    epoch: u32,
}

impl FileKey {
    pub fn as_u64(self) -> u64 {
        (self.slot as u64) << 32 | self.epoch as u64
    }

    pub fn from_u64(v: u64) -> Self {
        FileKey {
            slot: (v >> 32) as u32,
            epoch: v as u32,
        }
    }
}

/// A READ the reader wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCall {
    pub key: FileKey,
    pub fh: FileHandle,
    pub offset: u64,
    pub count: u32,
}

/// A READ reply as the reader takes it, whatever the protocol that carried it (READ3res, or a
/// COMPOUND's READ and GETATTR): the data as a range of the reply's bytes, and the file's
/// attributes after the read where the reply has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub attrs: Option<EntryAttrs>,
    pub data: Range<usize>,
    pub eof: bool,
    /// Whether the reply's own byte count agrees with its data (v4 has no separate count).
    pub count_matches: bool,
}

impl ReadResult {
    /// A READ3res: the server's status, or the result with its data located in `body`.
    pub fn of_v3(body: &[u8]) -> Result<ReadResult, ContentError> {
        match ReadReply::decode_result(body) {
            Err(e) => Err(ContentError::Malformed(e.to_string())),
            Ok(Err(fail)) => Err(ContentError::Nfs(fail.status)),
            Ok(Ok(ok)) => {
                let start = ok.data.as_ptr() as usize - body.as_ptr() as usize;
                Ok(ReadResult {
                    attrs: ok.attrs.as_ref().map(Fattr3::to_entry_attrs),
                    data: start..start + ok.data.len(),
                    eof: ok.eof,
                    count_matches: ok.count_matches(),
                })
            }
        }
    }
}

/// Why a file has no checksum or type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContentError {
    #[error("changed while read: size, mtime or ctime changed between READs (no checksum)")]
    Changed,
    #[error("{}", Nfs3Error(*.0))]
    Nfs(Nfsstat3),
    /// Over NFSv4.1.
    #[error("{0}")]
    Nfs4(crate::rpc::nfs4::Nfsstat4),
    #[error("short read: {got} of {asked} bytes at offset {offset}")]
    ShortRead { offset: u64, asked: u32, got: u32 },
    #[error("end of file at {at} bytes, before the listed size of {size}")]
    EarlyEof { at: u64, size: u64 },
    #[error("malformed READ reply: {0}")]
    Malformed(String),
    /// The call engine gave up (timeouts, lost connections, refused calls).
    #[error("{0}")]
    Call(String),
}

impl ContentError {
    pub fn status(&self) -> Option<Nfsstat3> {
        match self {
            ContentError::Nfs(s) => Some(*s),
            // The codes below 10000 mean the same in both versions.
            ContentError::Nfs4(s) if s.as_u32() < 10_000 => Some(Nfsstat3::from_u32(s.as_u32())),
            _ => None,
        }
    }
}

/// A file the reader is done with.
#[derive(Debug)]
pub struct ContentDone<T> {
    pub payload: T,
    /// `ALGO:HEX`, where the whole file was read and hashed.
    pub checksum: Option<String>,
    pub mime: Option<&'static str>,
    /// The attributes the checksum belongs to, where the file changed since it was listed and
    /// was read again (the record should carry these).
    pub attrs: Option<EntryAttrs>,
    /// Larger than `checksum_max_size`: not hashed.
    pub skipped_too_large: bool,
    pub error: Option<ContentError>,
}

/// Where chunks go to be hashed, in file order. Every byte handed over must be reported back
/// through [`ContentReader::on_hashed`] (also after `abort`), and every `end` answered with
/// [`ContentReader::on_digest`].
pub trait HashStage {
    /// An empty buffer to copy a chunk into (a stage may hand back buffers it is done with,
    /// so chunks do not cost a fresh allocation and its page faults each).
    fn buffer(&mut self) -> Vec<u8> {
        Vec::new()
    }
    fn begin(&mut self, key: u64, algo: ChecksumAlgo);
    fn data(&mut self, key: u64, chunk: Vec<u8>);
    /// A chunk that lies in a reply's own buffer, at `record[range]`: a stage that keeps the
    /// buffer until it is hashed saves a copy. By default it is copied into a
    /// [`HashStage::buffer`] and handed to [`HashStage::data`].
    fn data_in_record(&mut self, key: u64, record: RecordBuf, range: Range<usize>) {
        let mut chunk = self.buffer();
        chunk.clear();
        chunk.extend_from_slice(&record[range]);
        self.data(key, chunk);
    }
    fn end(&mut self, key: u64);
    fn abort(&mut self, key: u64);
}

/// What one thread's reader counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentStats {
    pub files: u64,
    pub checksummed: u64,
    pub typed: u64,
    pub bytes_read: u64,
    pub skipped_too_large: u64,
    pub changed: u64,
    /// Files read again after their attributes changed.
    pub reread: u64,
    pub errors: u64,
    /// Chunks that arrived ahead of an earlier one and waited.
    pub out_of_order_chunks: u64,
}

impl ContentStats {
    pub fn merge(&mut self, o: &ContentStats) {
        self.files += o.files;
        self.checksummed += o.checksummed;
        self.typed += o.typed;
        self.bytes_read += o.bytes_read;
        self.skipped_too_large += o.skipped_too_large;
        self.changed += o.changed;
        self.reread += o.reread;
        self.errors += o.errors;
        self.out_of_order_chunks += o.out_of_order_chunks;
    }
}

/// Size, mtime and ctime: what must not change while a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Identity {
    fn of(a: &EntryAttrs) -> Self {
        Identity {
            size: a.size,
            mtime_ns: a.mtime_ns,
            ctime_ns: a.ctime_ns,
        }
    }
}

/// A chunk's bytes, held until the hasher takes them.
#[derive(Debug)]
enum Chunk {
    /// Copied into a buffer of the hasher's.
    Copied(Vec<u8>),
    /// Where they were received: `record[range]`.
    InRecord(RecordBuf, Range<usize>),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Copied(c) => c.len(),
            Chunk::InRecord(_, range) => range.len(),
        }
    }

    fn hash<H: HashStage>(self, key: u64, hasher: &mut H) {
        match self {
            Chunk::Copied(c) => hasher.data(key, c),
            Chunk::InRecord(record, range) => hasher.data_in_record(key, record, range),
        }
    }
}

/// A READ's data as it came: lent by the caller, or `record[range]` in a reply buffer of its
/// own that the reader may keep.
enum ReadData<'a> {
    Lent(&'a [u8]),
    Owned(RecordBuf, Range<usize>),
}

impl ReadData<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            ReadData::Lent(b) => b,
            ReadData::Owned(record, range) => &record[range.clone()],
        }
    }
}

struct FileState<T> {
    payload: T,
    fh: FileHandle,
    expect: Identity,
    epoch: u32,
    reread: bool,
    fresh_attrs: Option<EntryAttrs>,
    hash: Option<ChecksumAlgo>,
    skipped_too_large: bool,
    /// Bytes to read: the whole file when hashing, else the head for type detection.
    read_len: u64,
    next_request: u64,
    requested_any: bool,
    next_hash: u64,
    /// Chunks ahead of `next_hash`, by offset.
    pending: BTreeMap<u64, Chunk>,
    inflight: u32,
    queued: bool,
    parked: bool,
    hash_begun: bool,
    awaiting_digest: bool,
    mime: Option<&'static str>,
    error: Option<ContentError>,
}

impl<T> FileState<T> {
    fn has_more(&self) -> bool {
        self.error.is_none() && (!self.requested_any || self.next_request < self.read_len)
    }

    fn key(&self, slot: usize) -> FileKey {
        FileKey {
            slot: slot as u32,
            epoch: self.epoch,
        }
    }

    fn pending_bytes(&self) -> u64 {
        self.pending.values().map(|c| c.len() as u64).sum()
    }
}

/// How many READs of one file are in flight at once, adapted to the server and the path with
/// the rule of TCP Vegas over the latencies of full-chunk READs. READs in flight help while
/// each waits on the path's latency, not once they queue at the server: there each is buffered
/// and copied while it waits, for nothing (nfs-ganesha on loopback, a 1 GiB file: 0.67 to
/// 0.78 s of server CPU with 16 READs of 1 MiB in flight, 0.47 to 0.57 s with 4 to 8, 0.40 s
/// for libnfs' one at a time).
///
/// From the lowest latency seen (`lat_min`: the path and one READ's service) and the running
/// mean (`lat_mean`), `chunks × (1 − lat_min / lat_mean)` estimates the READs queued rather
/// than travelling; once per window of replies the window grows by one while that is below
/// [`WINDOW_GROW_QUEUED_MAX`] and shrinks by one while it is above [`WINDOW_SHRINK_QUEUED_MIN`].
/// Over a long path the latency stays near `lat_min` and the window opens to its maximum; on
/// loopback it stays near its minimum. `lat_min` is kept for the whole scan: a path that gets
/// slower for good reads as queueing, and the window stays smaller than it could be (the side
/// that costs throughput, never the server's memory).
#[derive(Debug, Clone)]
struct Window {
    chunks: u32,
    chunks_max: u32,
    lat_min_s: f64,
    lat_mean_s: f64,
    /// Replies since the last decision.
    replies: u32,
}

impl Window {
    fn new(chunks_max: u32) -> Window {
        let chunks_max = chunks_max.max(1);
        Window {
            chunks: CHUNKS_PER_FILE_MIN.min(chunks_max),
            chunks_max,
            lat_min_s: f64::INFINITY,
            lat_mean_s: 0.0,
            replies: 0,
        }
    }

    fn observe(&mut self, latency: std::time::Duration) {
        let lat = latency.as_secs_f64().max(1e-9);
        self.lat_min_s = self.lat_min_s.min(lat);
        self.lat_mean_s = if self.lat_mean_s == 0.0 {
            lat
        } else {
            self.lat_mean_s + (lat - self.lat_mean_s) * LATENCY_MEAN_WEIGHT
        };
        self.replies += 1;
        if self.replies < self.chunks {
            return;
        }
        self.replies = 0;
        let queued = self.chunks as f64 * (1.0 - self.lat_min_s / self.lat_mean_s);
        if queued < WINDOW_GROW_QUEUED_MAX && self.chunks < self.chunks_max {
            self.chunks += 1;
        } else if queued > WINDOW_SHRINK_QUEUED_MIN && self.chunks > CHUNKS_PER_FILE_MIN {
            self.chunks -= 1;
        }
    }
}

/// The content reads of one thread.
pub struct ContentReader<T> {
    cfg: ContentConfig,
    files: Slab<FileState<T>>,
    waiting: VecDeque<ContentJob<T>>,
    /// Files with bytes not yet asked for, oldest first.
    to_request: VecDeque<usize>,
    /// Bytes asked for or held and not yet hashed.
    reserved_bytes: u64,
    next_epoch: u32,
    done: VecDeque<ContentDone<T>>,
    stats: ContentStats,
    window: Window,
}

impl<T> ContentReader<T> {
    pub fn new(cfg: ContentConfig) -> Self {
        ContentReader {
            files: Slab::with_capacity(cfg.files_max.min(4096)),
            window: Window::new(cfg.chunks_per_file_max),
            cfg,
            waiting: VecDeque::new(),
            to_request: VecDeque::new(),
            reserved_bytes: 0,
            next_epoch: 0,
            done: VecDeque::new(),
            stats: ContentStats::default(),
        }
    }

    pub fn config(&self) -> &ContentConfig {
        &self.cfg
    }

    pub fn set_chunk_bytes(&mut self, chunk_bytes: u32) {
        self.cfg.chunk_bytes = chunk_bytes.max(1);
    }

    pub fn stats(&self) -> ContentStats {
        self.stats
    }

    /// READs of one file in flight at once, at most, as things stand.
    pub fn chunks_per_file(&self) -> u32 {
        self.window.chunks
    }

    /// How long a READ took from its call to its reply (to adapt the READs in flight per file;
    /// only full-chunk READs count, their latencies being comparable).
    pub fn on_read_latency(&mut self, call: &ReadCall, latency: std::time::Duration) {
        if call.count == self.cfg.chunk_bytes {
            self.window.observe(latency);
        }
    }

    /// Bytes asked for or held and not yet hashed (at most about the budget).
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved_bytes
    }

    /// Files being read, waiting to be read, or done and not yet taken.
    pub fn files_held(&self) -> usize {
        self.files.len() + self.waiting.len() + self.done.len()
    }

    /// Whether the caller should hold back new files: as many wait as are being read.
    pub fn is_full(&self) -> bool {
        self.waiting.len() >= self.cfg.files_max
    }

    /// Nothing being read, waiting, or done and not yet taken.
    pub fn is_idle(&self) -> bool {
        self.files.is_empty() && self.waiting.is_empty() && self.done.is_empty()
    }

    /// Files whose last bytes went to the hasher and whose digest has not come back.
    pub fn awaiting_digests(&self) -> usize {
        self.files.iter().filter(|(_, f)| f.awaiting_digest).count()
    }

    /// A regular file to read.
    pub fn submit(&mut self, job: ContentJob<T>) {
        self.stats.files += 1;
        if self.files.len() < self.cfg.files_max {
            self.activate(job);
        } else {
            self.waiting.push_back(job);
        }
    }

    fn activate(&mut self, job: ContentJob<T>) {
        let size = job.attrs.size;
        let hash = self
            .cfg
            .checksum
            .filter(|_| self.cfg.checksum_max_size.is_none_or(|m| size <= m));
        let skipped_too_large = self.cfg.checksum.is_some() && hash.is_none();
        let epoch = self.new_epoch();
        let mut f = FileState {
            payload: job.payload,
            fh: job.fh,
            expect: Identity::of(&job.attrs),
            epoch,
            reread: false,
            fresh_attrs: None,
            hash,
            skipped_too_large,
            read_len: 0,
            next_request: 0,
            requested_any: false,
            next_hash: 0,
            pending: BTreeMap::new(),
            inflight: 0,
            queued: false,
            parked: false,
            hash_begun: false,
            awaiting_digest: false,
            mime: None,
            error: None,
        };
        f.read_len = self.read_len(&f, size);
        if hash.is_none() && !self.cfg.file_type {
            // Nothing to read (too large for a checksum, no type wanted).
            self.stats.skipped_too_large += 1;
            self.done.push_back(ContentDone {
                payload: f.payload,
                checksum: None,
                mime: None,
                attrs: None,
                skipped_too_large,
                error: None,
            });
            return;
        }
        let slot = self.files.insert(f);
        self.files[slot].queued = true;
        self.to_request.push_back(slot);
    }

    fn read_len<U>(&self, f: &FileState<U>, size: u64) -> u64 {
        if f.hash.is_some() {
            size
        } else {
            size.min(FILE_TYPE_BYTES as u64)
        }
    }

    fn new_epoch(&mut self) -> u32 {
        self.next_epoch = self.next_epoch.wrapping_add(1);
        self.next_epoch
    }

    /// The next READ to send, if the budget and the per-file limit allow one.
    pub fn poll_read(&mut self) -> Option<ReadCall> {
        loop {
            let &slot = self.to_request.front()?;
            let chunk = self.cfg.chunk_bytes as u64;
            let f = &mut self.files[slot];
            if !f.has_more() {
                f.queued = false;
                self.to_request.pop_front();
                continue;
            }
            let count = if f.read_len == 0 {
                // An empty file is still read once: permissions and changes are checked, and
                // the server's eof is the proof of emptiness.
                FILE_TYPE_BYTES as u64
            } else {
                (f.read_len - f.next_request).min(chunk)
            };
            if self.reserved_bytes > 0 && self.reserved_bytes + count > self.cfg.budget_bytes {
                return None;
            }
            let call = ReadCall {
                key: f.key(slot),
                fh: f.fh,
                offset: f.next_request,
                count: count as u32,
            };
            f.next_request += count;
            f.requested_any = true;
            f.inflight += 1;
            self.reserved_bytes += count;
            if !f.has_more() {
                f.queued = false;
                self.to_request.pop_front();
            } else if f.inflight >= self.window.chunks {
                f.queued = false;
                f.parked = true;
                self.to_request.pop_front();
            }
            return Some(call);
        }
    }

    /// The outcome of a READ: the result bytes (`READ3res`), or why the call engine has none.
    pub fn on_read_reply<H: HashStage>(
        &mut self,
        call: &ReadCall,
        result: Result<&[u8], String>,
        hasher: &mut H,
    ) {
        let decoded = match result {
            Err(why) => Err(ContentError::Call(why)),
            Ok(bytes) => ReadResult::of_v3(bytes).map(|r| (r, bytes)),
        };
        self.on_read_result(call, decoded, hasher);
    }

    /// A READ reply decoded by its protocol (see [`ReadResult`]), with the bytes its data
    /// range is in; or why there is none.
    pub fn on_read_result<H: HashStage>(
        &mut self,
        call: &ReadCall,
        result: Result<(ReadResult, &[u8]), ContentError>,
        hasher: &mut H,
    ) {
        let Some(slot) = self.reply_slot(call, hasher) else {
            return;
        };
        let outcome = result.and_then(|(r, bytes)| {
            let data = bytes.get(r.data.clone()).ok_or_else(|| {
                ContentError::Malformed("READ data outside the reply".to_string())
            })?;
            let data = ReadData::Lent(data);
            self.on_data(slot, call, r.attrs, data, r.eof, r.count_matches, hasher)
        });
        self.conclude(slot, outcome, hasher);
    }

    /// A READ's reply in a buffer of its own (`READ3res` at its body): as
    /// [`ContentReader::on_read_reply`], but the data is kept where it lies, not copied.
    pub fn on_read_reply_owned<H: HashStage>(
        &mut self,
        call: &ReadCall,
        reply: OwnedReply,
        hasher: &mut H,
    ) {
        let body = reply.body();
        let decoded = ReadResult::of_v3(body);
        self.on_read_result_owned(call, decoded, reply, hasher);
    }

    /// [`ContentReader::on_read_result`] of a reply in a buffer of its own (the result's data
    /// range is within its body): the data is kept where it lies, not copied.
    pub fn on_read_result_owned<H: HashStage>(
        &mut self,
        call: &ReadCall,
        result: Result<ReadResult, ContentError>,
        reply: OwnedReply,
        hasher: &mut H,
    ) {
        let Some(slot) = self.reply_slot(call, hasher) else {
            return;
        };
        let (record, body) = reply.into_parts();
        let outcome = result.and_then(|r| {
            let range = body.start + r.data.start..body.start + r.data.end;
            if range.end > body.end {
                return Err(ContentError::Malformed(
                    "READ data outside the reply".to_string(),
                ));
            }
            let data = ReadData::Owned(record, range);
            self.on_data(slot, call, r.attrs, data, r.eof, r.count_matches, hasher)
        });
        self.conclude(slot, outcome, hasher);
    }

    /// Releases a replied READ's budget; the slot of its file if the reply still matters.
    fn reply_slot<H: HashStage>(&mut self, call: &ReadCall, hasher: &mut H) -> Option<usize> {
        self.reserved_bytes -= call.count as u64;
        let slot = call.key.slot as usize;
        match self.files.get(slot) {
            Some(f) if f.epoch == call.key.epoch => {}
            // A reply for an attempt that was given up.
            _ => return None,
        }
        self.files[slot].inflight -= 1;
        if self.files[slot].error.is_some() {
            // Given up already; this reply only had to come back.
            self.settle(slot, hasher);
            return None;
        }
        Some(slot)
    }

    fn conclude<H: HashStage>(
        &mut self,
        slot: usize,
        outcome: Result<(), ContentError>,
        hasher: &mut H,
    ) {
        if let Err(e) = outcome {
            self.fail(slot, e, hasher);
        }
        self.settle(slot, hasher);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_data<H: HashStage>(
        &mut self,
        slot: usize,
        call: &ReadCall,
        attrs: Option<EntryAttrs>,
        data: ReadData<'_>,
        eof: bool,
        count_matches: bool,
        hasher: &mut H,
    ) -> Result<(), ContentError> {
        if let Some(seen) = attrs {
            if Identity::of(&seen) != self.files[slot].expect {
                self.changed(slot, seen, hasher);
                return Ok(());
            }
        }
        let bytes = data.bytes();
        if !count_matches || bytes.len() > call.count as usize {
            return Err(ContentError::Malformed(format!(
                "{} bytes of data for a READ of {}",
                bytes.len(),
                call.count
            )));
        }
        let f = &mut self.files[slot];
        let got = bytes.len() as u64;
        let end = call.offset + got;
        let wanted_end = (call.offset + call.count as u64).min(f.read_len);
        if end < wanted_end {
            return Err(if eof {
                ContentError::EarlyEof {
                    at: end,
                    size: f.expect.size,
                }
            } else {
                ContentError::ShortRead {
                    offset: call.offset,
                    asked: call.count,
                    got: got as u32,
                }
            });
        }
        if end > f.read_len && f.read_len == f.expect.size {
            // More bytes than the listed size, and no attributes said so.
            return Err(ContentError::Changed);
        }
        self.stats.bytes_read += got;
        if call.offset == 0 && self.cfg.file_type {
            f.mime = mime::detect(&bytes[..bytes.len().min(FILE_TYPE_BYTES as usize)]);
        }
        let Some(algo) = f.hash else {
            return Ok(());
        };
        let key = f.key(slot).as_u64();
        let take = f.read_len.saturating_sub(call.offset).min(got) as usize;
        let chunk = match data {
            ReadData::Lent(bytes) => {
                let mut chunk = hasher.buffer();
                chunk.clear();
                chunk.extend_from_slice(&bytes[..take]);
                Chunk::Copied(chunk)
            }
            ReadData::Owned(record, range) => {
                Chunk::InRecord(record, range.start..range.start + take)
            }
        };
        self.reserved_bytes += chunk.len() as u64;
        if call.offset != f.next_hash {
            self.stats.out_of_order_chunks += 1;
            f.pending.insert(call.offset, chunk);
            return Ok(());
        }
        if !f.hash_begun {
            f.hash_begun = true;
            hasher.begin(key, algo);
        }
        f.next_hash += chunk.len() as u64;
        if chunk.len() > 0 {
            chunk.hash(key, hasher);
        }
        while let Some(next) = f.pending.remove(&f.next_hash) {
            f.next_hash += next.len() as u64;
            next.hash(key, hasher);
        }
        Ok(())
    }

    /// The file's attributes differ from what it is read against: read it again once.
    fn changed<H: HashStage>(&mut self, slot: usize, seen: EntryAttrs, hasher: &mut H) {
        if self.files[slot].reread {
            return self.fail(slot, ContentError::Changed, hasher);
        }
        self.stats.reread += 1;
        self.drop_attempt(slot, hasher);
        let epoch = self.new_epoch();
        let f = &mut self.files[slot];
        f.reread = true;
        f.epoch = epoch;
        f.expect = Identity::of(&seen);
        f.fresh_attrs = Some(seen);
        f.hash = self
            .cfg
            .checksum
            .filter(|_| self.cfg.checksum_max_size.is_none_or(|m| seen.size <= m));
        f.skipped_too_large = self.cfg.checksum.is_some() && f.hash.is_none();
        f.read_len = if f.hash.is_some() {
            seen.size
        } else {
            seen.size.min(FILE_TYPE_BYTES as u64)
        };
        f.next_request = 0;
        f.requested_any = false;
        f.next_hash = 0;
        f.mime = None;
        // Replies to the old attempt are dropped by epoch; their bytes were released already.
        f.inflight = 0;
        f.parked = false;
        if !f.queued {
            f.queued = true;
            self.to_request.push_front(slot);
        }
    }

    /// Gives up the current attempt's held chunks and hash state.
    fn drop_attempt<H: HashStage>(&mut self, slot: usize, hasher: &mut H) {
        let f = &mut self.files[slot];
        self.reserved_bytes -= f.pending_bytes();
        f.pending.clear();
        if f.hash_begun {
            f.hash_begun = false;
            hasher.abort(f.key(slot).as_u64());
        }
    }

    fn fail<H: HashStage>(&mut self, slot: usize, e: ContentError, hasher: &mut H) {
        if self.files[slot].error.is_some() {
            return;
        }
        self.drop_attempt(slot, hasher);
        self.files[slot].error = Some(e);
    }

    /// Finishes the file when nothing of it is in flight and all its bytes are in.
    fn settle<H: HashStage>(&mut self, slot: usize, hasher: &mut H) {
        let cap = self.window.chunks;
        let f = &mut self.files[slot];
        if f.parked && f.has_more() && f.inflight < cap {
            f.parked = false;
            if !f.queued {
                f.queued = true;
                self.to_request.push_front(slot);
            }
        }
        if f.inflight > 0 || f.has_more() || f.awaiting_digest {
            return;
        }
        if f.error.is_none() && f.hash.is_some() {
            if f.next_hash < f.read_len {
                // Bytes still missing can only follow from a bug; never hash a hole.
                let at = f.next_hash;
                let size = f.read_len;
                self.fail(slot, ContentError::EarlyEof { at, size }, hasher);
            } else {
                let key = f.key(slot).as_u64();
                if !f.hash_begun {
                    f.hash_begun = true;
                    hasher.begin(key, f.hash.unwrap_or(ChecksumAlgo::Blake3));
                }
                f.awaiting_digest = true;
                hasher.end(key);
                return;
            }
        }
        self.finish(slot, None);
    }

    fn finish(&mut self, slot: usize, checksum: Option<String>) {
        let f = self.files.remove(slot);
        match &f.error {
            Some(ContentError::Changed) => self.stats.changed += 1,
            Some(_) => self.stats.errors += 1,
            None => {
                self.stats.checksummed += checksum.is_some() as u64;
                self.stats.typed += f.mime.is_some() as u64;
            }
        }
        self.stats.skipped_too_large += f.skipped_too_large as u64;
        let ok = f.error.is_none();
        self.done.push_back(ContentDone {
            payload: f.payload,
            checksum: if ok { checksum } else { None },
            mime: if ok { f.mime } else { None },
            attrs: f.fresh_attrs,
            skipped_too_large: f.skipped_too_large,
            error: f.error,
        });
        while self.files.len() < self.cfg.files_max {
            match self.waiting.pop_front() {
                Some(job) => self.activate(job),
                None => break,
            }
        }
    }

    /// The hasher consumed `bytes` (of any file, aborted ones included).
    pub fn on_hashed(&mut self, bytes: u64) {
        self.reserved_bytes -= bytes;
    }

    /// The digest of hash job `key` (see [`HashStage::end`]).
    pub fn on_digest(&mut self, key: u64, checksum: String) {
        let key = FileKey::from_u64(key);
        let slot = key.slot as usize;
        match self.files.get(slot) {
            Some(f) if f.epoch == key.epoch && f.awaiting_digest => {}
            _ => return,
        }
        self.finish(slot, Some(checksum));
    }

    /// A file done, if any.
    pub fn poll_done(&mut self) -> Option<ContentDone<T>> {
        self.done.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Runs the window over READs whose latency depends on the window (`latency(chunks)`).
    fn settle(chunks_max: u32, latency: impl Fn(u32) -> Duration) -> Window {
        let mut w = Window::new(chunks_max);
        for _ in 0..5_000 {
            w.observe(latency(w.chunks));
        }
        w
    }

    #[test]
    fn the_window_opens_on_a_long_path_and_stays_small_when_reads_queue() {
        // 60 ms of path, a server that serves READs side by side: all 16.
        assert_eq!(settle(16, |_| Duration::from_millis(60)).chunks, 16);
        // A server that serves one READ at a time (0.5 ms each): more only wait longer. The
        // lowest latency seen is already that of the first window's queue, so the window
        // takes a READ or two more before the queue shows.
        let w = settle(16, |n| Duration::from_micros(500) * n);
        assert!(w.chunks <= CHUNKS_PER_FILE_MIN + 2, "{}", w.chunks);
        // 10 ms of path, one READ per ms at most: about 10 fill the path, a few queue.
        let w = settle(16, |n| {
            Duration::from_millis(10).max(Duration::from_millis(1) * n)
        });
        assert!((10..=13).contains(&w.chunks), "{}", w.chunks);
        // Never past the configured maximum, nor below 1.
        assert_eq!(settle(3, |_| Duration::from_millis(60)).chunks, 3);
        assert_eq!(settle(1, |_| Duration::from_millis(60)).chunks, 1);
    }

    #[test]
    fn the_window_closes_again_when_the_server_slows_down() {
        let mut w = Window::new(16);
        for _ in 0..1_000 {
            w.observe(Duration::from_millis(20));
        }
        assert_eq!(w.chunks, 16);
        // The server now serves one READ at a time, 5 ms each.
        for _ in 0..5_000 {
            w.observe(Duration::from_millis(20).max(Duration::from_millis(5) * w.chunks));
        }
        assert!(w.chunks <= 7, "{}", w.chunks);
    }
}
