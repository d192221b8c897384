//! Content reads during a scan, on the walk's own engine: [`ContentThread`] is the engine's
//! protocol user for one thread, the walk and the content reader side by side on the same
//! connections. The walk's regular files go to the reader instead of the output
//! ([`ContentOut`]); each is written once its checksum and type are known, every other entry at
//! once. Memory stays bounded: the reader holds at most `files_max` files being read plus as
//! many waiting, and while that many wait the walk sends no more calls (its calls in flight
//! still land).
//!
//! The walk's XIDs have the top bit clear (see [`crate::scan::run_wrapped`]); the reads' have
//! it set, so a reply finds its user without a map.
//!
//! A finished listing is announced to the output (durability, see [`crate::sched::tasks`])
//! only once every file submitted before its end has been written, so a resumed scan never
//! skips a file whose record was still waiting for its checksum.

use super::hash_pool::{HashClient, HashPool};
use super::reader::{
    ContentConfig, ContentError, ContentJob, ContentReader, ContentStats, ReadCall, ReadResult,
};
use crate::path_error::PathError;
use crate::record::{EntryContent, EntryRecord, EntryRef, EntryType};
use crate::rpc::nfs3::{encode_nfs3_call, proc3, FileHandle, Nfsstat3, ReadArgs};
use crate::rpc::nfs4::{
    encode_compound_call, fattr4, op4, ArgOp, AttrMask, CompoundReply, Nfs4ReplyError, Nfsstat4,
    ReadArgs4, Recovery, ResOk, SequenceArgs, Stateid, MINOR_VERSION_1, NFSPROC4_COMPOUND,
};
use crate::rpc::RpcError;
use crate::scan::{EntrySink, WalkMachine, WalkThread};
use crate::sched::conns::OwnedReply;
use crate::sched::{
    CallEngine, CallPolicy, Inflight, Protocol, Queued, TaskId, TaskQueue, ThreadSetup,
};
use crate::walk4::{slot_range, SharedSession, Walk4Setup};
use crate::walker::{ObjectRef, Task, Walker};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// XIDs of content reads have this bit set; the walk's never do.
const CONTENT_XID_BIT: u32 = 0x8000_0000;
/// How often a thread whose reads are all answered looks for digests from the hashing threads.
const HASH_POLL: Duration = Duration::from_micros(500);

/// What every thread's content reads share.
pub struct ContentSetup<'a> {
    pub cfg: ContentConfig,
    pub pool: &'a HashPool,
    pub cred_xdr: Vec<u8>,
    pub policy: CallPolicy,
    pub inflight_per_conn: usize,
    /// NFSv4.1: the walk's setup (its shared session) and the threads.
    pub v4: Option<(Arc<Walk4Setup>, usize)>,
}

/// A regular file's record, held until its contents are read.
#[derive(Debug)]
pub struct HeldEntry {
    record: EntryRecord,
    seq: u64,
}

/// One thread's sink in a content scan: regular files to the reader, the rest to `out`.
pub struct ContentOut<O> {
    out: O,
    reader: ContentReader<HeldEntry>,
    calls: CallEngine<ContentCall>,
    hasher: HashClient,
    cred_xdr: Vec<u8>,
    rpc_timeout: Duration,
    /// The handle of the file the walk just told about ([`EntrySink::object`] comes right
    /// before its [`EntrySink::entry`]).
    pending_fh: Option<(FileHandle, Box<[u8]>)>,
    next_seq: u64,
    /// Files submitted and not yet written, by submission order.
    outstanding: BTreeSet<u64>,
    /// Finished listings whose announcement waits for files submitted before their end.
    deferred: VecDeque<(u64, TaskId)>,
    /// Files written without contents because the walk gave no handle.
    no_handle: u64,
    /// NFSv4.1: the reads' slots of the shared session; `None` over v3.
    v4: Option<ReadSlots4>,
}

/// A READ on the wire, with (over v4) the session slot it holds.
#[derive(Debug, Clone, Copy)]
struct ContentCall {
    read: ReadCall,
    slot: Option<SlotClaim4>,
}

#[derive(Debug, Clone, Copy)]
struct SlotClaim4 {
    slot: u32,
    seq: u32,
    generation: u32,
}

/// The reads' share of one thread's slots of the shared NFSv4.1 session (the walk has the
/// other share, see [`Walk4Setup::walk_share`]). The walk sets sessions up and re-creates them;
/// the reads report a lost one and wait for the next.
struct ReadSlots4 {
    setup: Arc<Walk4Setup>,
    share: (usize, usize),
    /// The session in use (`None`: none yet, or lost and not yet replaced).
    session: Option<SharedSession>,
    /// The generation last found lost: not taken again while it is still the current one.
    lost: u32,
    seq: Vec<u32>,
    free: Vec<u32>,
}

/// The attributes a v4 READ asks after its data: the record's, so a file that changed while
/// read is written with what it is now (as READ3's post-op attributes allow over v3).
const READ4_ATTRS: AttrMask = AttrMask::RECORD.without(AttrMask::of(&[
    fattr4::FILEHANDLE,
    fattr4::FS_LOCATIONS,
    fattr4::RDATTR_ERROR,
]));

impl ReadSlots4 {
    /// Takes the current shared session if it is newer than the one in use; `Err` when it is
    /// gone for good.
    fn refresh(&mut self) -> Result<(), String> {
        let shared = self
            .setup
            .shared
            .as_ref()
            .expect("content reads share a session");
        let Some(s) = shared.session()? else {
            self.session = None;
            return Ok(());
        };
        if s.generation == self.lost || self.session.is_some_and(|c| c.generation == s.generation) {
            return Ok(());
        }
        self.seq = vec![0; s.slots as usize];
        self.free = slot_range(s.slots, self.share.1, self.share.0)
            .map_or_else(Vec::new, |r| r.rev().collect());
        self.session = Some(s);
        Ok(())
    }

    fn claim(&mut self) -> Option<SlotClaim4> {
        let s = self.session?;
        let slot = self.free.pop()?;
        self.seq[slot as usize] = self.seq[slot as usize].wrapping_add(1);
        Some(SlotClaim4 {
            slot,
            seq: self.seq[slot as usize],
            generation: s.generation,
        })
    }

    /// Gives a slot back; `used`: the server took its sequence ID.
    fn release(&mut self, claim: SlotClaim4, used: bool) {
        if self
            .session
            .is_some_and(|s| s.generation == claim.generation)
        {
            if !used {
                self.seq[claim.slot as usize] = claim.seq.wrapping_sub(1);
            }
            self.free.push(claim.slot);
        }
    }

    /// Session `generation` is lost: the walk re-creates it; the reads wait for the next.
    fn lose(&mut self, generation: u32, client: bool) {
        if let Some(shared) = &self.setup.shared {
            shared.report_lost(generation, client);
        }
        if self.session.is_some_and(|s| s.generation == generation) {
            self.session = None;
        }
        self.lost = self.lost.max(generation);
    }
}

/// What a v4 READ reply says, after its SEQUENCE.
enum Read4Outcome {
    /// The reader's result (data or the server's refusal of the file).
    Result(Result<ReadResult, ContentError>),
    /// DELAY or GRACE: the same READ later.
    Busy,
    /// The session, client ID or slot is unusable: the READ again on a new one.
    Resend,
}

impl<O: EntrySink> ContentOut<O> {
    pub fn new(out: O, setup: &ContentSetup<'_>, thread: usize, conns: usize) -> Self {
        ContentOut {
            out,
            reader: ContentReader::new(setup.cfg.clone()),
            calls: CallEngine::new(
                setup.policy,
                conns,
                setup.inflight_per_conn,
                (thread & 7) | 8,
            ),
            hasher: setup.pool.client(),
            cred_xdr: setup.cred_xdr.clone(),
            rpc_timeout: setup.policy.timeout,
            pending_fh: None,
            next_seq: 0,
            outstanding: BTreeSet::new(),
            deferred: VecDeque::new(),
            no_handle: 0,
            v4: setup.v4.as_ref().map(|(v4, threads)| ReadSlots4 {
                share: {
                    let (walk, of) = v4.walk_share(thread, *threads);
                    (walk + 1, of)
                },
                setup: v4.clone(),
                session: None,
                lost: 0,
                seq: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    /// The inner sink and what the reader counted.
    pub fn into_parts(self) -> (O, ContentStats) {
        (self.out, self.reader.stats())
    }

    fn is_full(&self) -> bool {
        self.reader.is_full()
    }

    fn is_idle(&self) -> bool {
        self.reader.is_idle() && self.calls.is_idle()
    }

    /// Writes the files the reader is done with, and announces listings they held back.
    fn write_done(&mut self) {
        self.hasher.drain(&mut self.reader);
        while let Some(d) = self.reader.poll_done() {
            let mut rec = d.payload.record;
            if let Some(fresh) = d.attrs {
                rec.attrs = fresh;
            }
            let content = EntryContent {
                checksum: d.checksum.as_deref(),
                mime: d.mime,
            };
            self.out.entry_with_content(&rec.as_ref(), &content);
            if let Some(e) = d.error {
                self.out.error(PathError {
                    path: rec.path,
                    op: "read",
                    message: e.to_string(),
                    status: e.status(),
                });
            }
            self.outstanding.remove(&d.payload.seq);
        }
        let first_open = self.outstanding.first().copied().unwrap_or(u64::MAX);
        while let Some(&(bound, id)) = self.deferred.front() {
            if first_open < bound {
                break;
            }
            self.deferred.pop_front();
            self.out.task_finished(id);
        }
    }

    fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize {
        self.write_done();
        while let Some(read) = self.reader.poll_read() {
            self.calls
                .push_back(Queued::new(ContentCall { read, slot: None }));
        }
        if let Some(v4) = &mut self.v4 {
            if let Err(why) = v4.refresh() {
                // The walk gave up on the session: so do the reads, rather than wait.
                for q in self.calls.take_unsent() {
                    self.reader
                        .on_read_reply(&q.call.read, Err(why.clone()), &mut self.hasher);
                }
                return 0;
            }
        }
        let mut n = 0;
        let cred = &self.cred_xdr;
        while let Some((conn, mut q)) = self.calls.next_ready(now) {
            let sequence = match &mut self.v4 {
                None => None,
                Some(v4) => {
                    // A resend keeps its slot and sequence ID within its session.
                    let current = v4.session.map(|s| s.generation);
                    if q.call.slot.is_some_and(|c| Some(c.generation) != current) {
                        q.call.slot = None;
                    }
                    if q.call.slot.is_none() {
                        q.call.slot = v4.claim();
                    }
                    let (Some(s), Some(c)) = (v4.session, q.call.slot) else {
                        // No session or no free slot: wait for one.
                        self.calls.push_front(q);
                        break;
                    };
                    Some(SequenceArgs {
                        sessionid: s.id,
                        sequenceid: c.seq,
                        slotid: c.slot,
                        highest_slotid: s.slots.saturating_sub(1),
                        cachethis: false,
                    })
                }
            };
            let buf = &mut bufs[conn];
            self.calls.send(conn, q, now, |call, xid| {
                let read = call.read;
                match sequence {
                    None => {
                        let args = ReadArgs {
                            file: read.fh,
                            offset: read.offset,
                            count: read.count,
                        };
                        encode_nfs3_call(buf, xid, proc3::READ, cred, &args);
                        proc3::READ
                    }
                    Some(seq) => {
                        let ops = [
                            ArgOp::Sequence(seq),
                            ArgOp::PutFh(read.fh.as_bytes()),
                            ArgOp::Read(ReadArgs4 {
                                stateid: Stateid::default(),
                                offset: read.offset,
                                count: read.count,
                            }),
                            ArgOp::Getattr(READ4_ATTRS),
                        ];
                        encode_compound_call(buf, xid, cred, b"nfs-walker", MINOR_VERSION_1, &ops);
                        NFSPROC4_COMPOUND
                    }
                }
            });
            n += 1;
        }
        n
    }

    fn on_reply(&mut self, xid: u32, outcome: Result<&[u8], RpcError>, now: Instant) {
        let Some(call) = self.calls.take_reply(xid) else {
            return;
        };
        let body = match outcome {
            Ok(b) => b,
            Err(e) => return self.retry_or_fail(call.into_queued(), e.to_string(), now),
        };
        let Some((call, result)) = self.settle(call, body, now) else {
            return;
        };
        self.observe_latency(&call, now);
        let result = result.map(|r| (r, body));
        self.reader
            .on_read_result(&call.call.read, result, &mut self.hasher);
        self.write_done();
    }

    /// A reply in a buffer of its own: as `on_reply`, the data kept where it lies.
    fn on_reply_owned(&mut self, xid: u32, reply: OwnedReply, now: Instant) {
        let Some(call) = self.calls.take_reply(xid) else {
            return;
        };
        let Some((call, result)) = self.settle(call, reply.body(), now) else {
            return;
        };
        self.observe_latency(&call, now);
        self.reader
            .on_read_result_owned(&call.call.read, result, reply, &mut self.hasher);
        self.write_done();
    }

    fn observe_latency(&mut self, call: &Inflight<ContentCall>, now: Instant) {
        let before = self.reader.chunks_per_file();
        let latency = now.saturating_duration_since(call.sent_at);
        self.reader.on_read_latency(&call.call.read, latency);
        let after = self.reader.chunks_per_file();
        if after != before {
            tracing::debug!(chunks_per_file = after, ?latency, "READ window");
        }
    }

    /// Decodes a READ reply by its protocol; retries one that is malformed, waits out one the
    /// server is too busy for, resends one whose session is gone; gives back the others, with
    /// their result, for the reader.
    fn settle(
        &mut self,
        call: Inflight<ContentCall>,
        body: &[u8],
        now: Instant,
    ) -> Option<(Inflight<ContentCall>, Result<ReadResult, ContentError>)> {
        let outcome = match &mut self.v4 {
            None => match ReadResult::of_v3(body) {
                Err(ContentError::Nfs(Nfsstat3::Jukebox)) => Read4Outcome::Busy,
                r => Read4Outcome::Result(r),
            },
            Some(v4) => read4_outcome(v4, call.call.slot, body),
        };
        match outcome {
            Read4Outcome::Result(Err(ContentError::Malformed(e))) => {
                let msg = format!("malformed READ reply: {e}");
                self.retry_or_fail(call.into_queued(), msg, now);
                None
            }
            Read4Outcome::Busy => {
                let mut q = call.into_queued();
                q.call.slot = None; // its slot was given back
                let delay = CallEngine::<ContentCall>::busy_delay(q.attempts.busy_waits);
                if let Err(q) = self.calls.wait_busy(q, delay, now) {
                    let msg = "server still busy (JUKEBOX or DELAY); given up".to_string();
                    self.reader
                        .on_read_reply(&q.call.read, Err(msg), &mut self.hasher);
                }
                None
            }
            Read4Outcome::Resend => {
                let mut q = call.into_queued();
                q.call.slot = None;
                self.calls.push_front(q);
                None
            }
            Read4Outcome::Result(r) => Some((call, r)),
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        for call in self.calls.on_timeout(now) {
            let msg = format!("no reply within {} ms", self.rpc_timeout.as_millis());
            self.retry_or_fail(call.into_queued(), msg, now);
        }
        self.write_done();
    }

    /// Resends a READ after a failed call (over v4 on the same slot and sequence ID, so the
    /// server answers from its reply cache or runs it once), or gives it up.
    fn retry_or_fail(&mut self, q: Queued<ContentCall>, message: String, now: Instant) {
        if let Err(q) = self.calls.retry(q, now) {
            // Over v4 its slot is not given back: whether the server saw its sequence ID is
            // unknown, so the slot is not used again in this session.
            self.reader
                .on_read_reply(&q.call.read, Err(message), &mut self.hasher);
        }
    }

    /// Over v4: reads wait for the walk to set up a session.
    fn waiting_for_session(&self) -> bool {
        self.v4
            .as_ref()
            .is_some_and(|v4| v4.session.is_none() && !self.calls.is_idle())
    }

    fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let calls = self.calls.poll_timeout(now);
        let waiting_for_session = self.waiting_for_session();
        if waiting_for_session || (!self.reader.is_idle() && self.calls.inflight() == 0) {
            // Only the hashing threads (or the walk re-creating the session) can move this
            // thread's reads on now.
            let soon = now + HASH_POLL;
            return Some(calls.map_or(soon, |c| c.min(soon)));
        }
        calls
    }
}

/// Reads a v4 READ reply (SEQUENCE, PUTFH, READ, GETATTR): settles its slot and says what it
/// means for the read.
fn read4_outcome(v4: &mut ReadSlots4, claim: Option<SlotClaim4>, body: &[u8]) -> Read4Outcome {
    let malformed = |e: String| Read4Outcome::Result(Err(ContentError::Malformed(e)));
    let mut r = match CompoundReply::decode(body) {
        Ok(r) => r,
        // Whether the server took the sequence ID is unknown: the call is resent as it is.
        Err(e) => return malformed(e.to_string()),
    };
    let first = match r.next_op() {
        Ok(Some(op)) if op.op == op4::SEQUENCE => op,
        Ok(_) => return malformed("no SEQUENCE result".into()),
        Err(e) => return malformed(e.to_string()),
    };
    if let Err(status) = first.result {
        return match (status.recovery(), claim) {
            (Recovery::RetryLater, Some(c)) => {
                v4.release(c, false);
                Read4Outcome::Busy
            }
            (Recovery::NewSession, Some(c)) => {
                let client = matches!(status, Nfsstat4::StaleClientid | Nfsstat4::Expired);
                v4.lose(c.generation, client);
                Read4Outcome::Resend
            }
            (Recovery::ResetSlot, Some(c)) => {
                if matches!(status, Nfsstat4::RetryUncachedRep | Nfsstat4::SeqFalseRetry) {
                    // The server has this sequence ID: the next call takes the next one.
                    v4.release(c, true);
                } else {
                    v4.lose(c.generation, false);
                }
                Read4Outcome::Resend
            }
            (_, c) => {
                if let Some(c) = c {
                    v4.release(c, true);
                }
                Read4Outcome::Result(Err(ContentError::Nfs4(status)))
            }
        };
    }
    if let Some(c) = claim {
        v4.release(c, true);
    }
    let read = match r.expect(op4::PUTFH).and_then(|_| r.expect(op4::READ)) {
        Ok(ResOk::Read { eof, data }) => {
            let start = data.as_ptr() as usize - body.as_ptr() as usize;
            (eof, start..start + data.len())
        }
        Ok(_) => return malformed("no READ result".into()),
        Err(Nfs4ReplyError::Status {
            status: Nfsstat4::Delay | Nfsstat4::Grace,
            ..
        }) => return Read4Outcome::Busy,
        Err(Nfs4ReplyError::Status { status, .. }) => {
            return Read4Outcome::Result(Err(ContentError::Nfs4(status)))
        }
        Err(e) => return malformed(e.to_string()),
    };
    // The attributes after the data; a reply without them is read as READ3's without
    // post-op attributes.
    let idmap = &v4.setup.idmap;
    let attrs = match r.expect(op4::GETATTR) {
        Ok(ResOk::Getattr(a)) => {
            let (uid, gid) = (idmap.resolve(a.owner).0, idmap.resolve(a.owner_group).0);
            Some(a.to_entry_attrs(uid, gid))
        }
        _ => None,
    };
    Read4Outcome::Result(Ok(ReadResult {
        attrs,
        data: read.1,
        eof: read.0,
        count_matches: true,
    }))
}

fn last_component(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

impl<O: EntrySink> EntrySink for ContentOut<O> {
    const WANTS_OBJECTS: bool = true;

    fn entry(&mut self, e: &EntryRef<'_>) {
        if e.attrs.kind == EntryType::File {
            match self.pending_fh.take() {
                Some((fh, name)) if *name == *last_component(e.path) => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.outstanding.insert(seq);
                    self.reader.submit(ContentJob {
                        payload: HeldEntry {
                            record: e.to_owned(),
                            seq,
                        },
                        fh,
                        attrs: *e.attrs,
                    });
                    return;
                }
                _ => self.no_handle += 1,
            }
        }
        self.out.entry(e);
    }

    fn entry_with_content(&mut self, e: &EntryRef<'_>, content: &EntryContent<'_>) {
        self.out.entry_with_content(e, content);
    }

    fn error(&mut self, e: PathError) {
        self.out.error(e);
    }

    fn object(&mut self, o: &ObjectRef<'_>) {
        if o.kind == EntryType::File {
            self.pending_fh = o.fh.map(|fh| (*fh, o.name.into()));
        }
        if O::WANTS_OBJECTS {
            self.out.object(o);
        }
    }

    fn task_finished(&mut self, id: TaskId) {
        if self.outstanding.is_empty() {
            self.out.task_finished(id);
        } else {
            self.deferred.push_back((self.next_seq, id));
        }
    }

    fn idle(&mut self) {
        self.out.idle();
    }

    fn flush(&mut self) {
        self.write_done();
        self.out.flush();
    }
}

/// The walk and the content reads of one thread, as the engine's protocol user.
pub struct ContentThread<O, W = Walker> {
    walk: WalkThread<ContentOut<O>, W>,
}

impl<O: EntrySink, W: WalkMachine> ContentThread<O, W> {
    pub fn new(walk: WalkThread<ContentOut<O>, W>, _t: &ThreadSetup) -> Self {
        ContentThread { walk }
    }

    fn content(&mut self) -> &mut ContentOut<O> {
        self.walk.out_mut()
    }
}

impl<O, W> From<ContentThread<O, W>> for WalkThread<ContentOut<O>, W> {
    fn from(t: ContentThread<O, W>) -> Self {
        t.walk
    }
}

impl<O: EntrySink, W: WalkMachine> Protocol for ContentThread<O, W> {
    type Task = Task;

    fn on_conn_up(&mut self, slot: usize) {
        self.walk.on_conn_up(slot);
        self.content().calls.on_conn_up(slot);
    }

    fn on_conn_down(&mut self, slot: usize) {
        self.walk.on_conn_down(slot);
        // Reads are idempotent: the policy resends them, nothing comes back here.
        let lost = self.content().calls.on_conn_down(slot);
        debug_assert!(lost.is_empty());
    }

    fn wants_task(&self) -> bool {
        self.walk.wants_task() && !self.walk.out().is_full()
    }

    fn add_task<Q: TaskQueue<Task = Task>>(&mut self, id: TaskId, task: Task, queue: &mut Q) {
        self.walk.add_task(id, task, queue);
    }

    fn on_reply<Q: TaskQueue<Task = Task>>(
        &mut self,
        xid: u32,
        outcome: Result<&[u8], RpcError>,
        now: Instant,
        queue: &mut Q,
    ) {
        if xid & CONTENT_XID_BIT != 0 {
            self.content().on_reply(xid, outcome, now);
        } else {
            self.walk.on_reply(xid, outcome, now, queue);
        }
    }

    fn on_reply_owned<Q: TaskQueue<Task = Task>>(
        &mut self,
        xid: u32,
        reply: OwnedReply,
        now: Instant,
        queue: &mut Q,
    ) {
        if xid & CONTENT_XID_BIT != 0 {
            self.content().on_reply_owned(xid, reply, now);
        } else {
            self.walk.on_reply(xid, Ok(reply.body()), now, queue);
        }
    }

    fn on_timeout<Q: TaskQueue<Task = Task>>(&mut self, now: Instant, queue: &mut Q) {
        self.walk.on_timeout(now, queue);
        self.content().on_timeout(now);
    }

    fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize {
        let mut n = self.content().poll_transmit(now, bufs);
        // While the reader is full the walk waits: its entries would only pile up. (A session
        // set-up still goes out: the reads may be waiting for it.)
        if !self.walk.out().is_full()
            || self.walk.walker_needs_setup()
            || self.walk.out().waiting_for_session()
        {
            n += self.walk.poll_transmit(now, bufs);
        }
        n
    }

    fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let walk = self.walk.poll_timeout(now);
        let content = self.walk.out().poll_timeout(now);
        match (walk, content) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn has_deferred(&self) -> bool {
        self.walk.has_deferred()
    }

    fn run_deferred<Q: TaskQueue<Task = Task>>(&mut self, now: Instant, queue: &mut Q) {
        self.walk.run_deferred(now, queue);
    }

    fn after_turn<Q: TaskQueue<Task = Task>>(&mut self, now: Instant, queue: &Q) {
        self.content().write_done();
        self.walk.after_turn(now, queue);
    }

    fn finish(&mut self) {
        self.walk.finish();
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.walk.is_idle(now) && self.walk.out().is_idle()
    }

    fn stop(&mut self, now: Instant) -> bool {
        self.walk.stop(now)
    }
}
