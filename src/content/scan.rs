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
use super::reader::{ContentConfig, ContentJob, ContentReader, ContentStats, ReadCall};
use crate::path_error::PathError;
use crate::record::{EntryContent, EntryRecord, EntryRef, EntryType};
use crate::rpc::nfs3::{encode_nfs3_call, proc3, FileHandle, Nfsstat3, ReadArgs, ReadReply};
use crate::rpc::RpcError;
use crate::scan::{EntrySink, WalkThread};
use crate::sched::conns::OwnedReply;
use crate::sched::{
    CallEngine, CallPolicy, Inflight, Protocol, Queued, TaskId, TaskQueue, ThreadSetup,
};
use crate::walker::{ObjectRef, Task};
use std::collections::{BTreeSet, VecDeque};
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
    calls: CallEngine<ReadCall>,
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
            self.calls.push_back(Queued::new(read));
        }
        let mut n = 0;
        let cred = &self.cred_xdr;
        while let Some((conn, q)) = self.calls.next_ready(now) {
            let buf = &mut bufs[conn];
            self.calls.send(conn, q, now, |read, xid| {
                let args = ReadArgs {
                    file: read.fh,
                    offset: read.offset,
                    count: read.count,
                };
                encode_nfs3_call(buf, xid, proc3::READ, cred, &args);
                proc3::READ
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
        let Some(call) = self.settle_busy_or_malformed(call, body, now) else {
            return;
        };
        self.observe_latency(&call, now);
        self.reader
            .on_read_reply(&call.call, Ok(body), &mut self.hasher);
        self.write_done();
    }

    /// A reply in a buffer of its own: as `on_reply`, the data kept where it lies.
    fn on_reply_owned(&mut self, xid: u32, reply: OwnedReply, now: Instant) {
        let Some(call) = self.calls.take_reply(xid) else {
            return;
        };
        let Some(call) = self.settle_busy_or_malformed(call, reply.body(), now) else {
            return;
        };
        self.observe_latency(&call, now);
        self.reader
            .on_read_reply_owned(&call.call, reply, &mut self.hasher);
        self.write_done();
    }

    fn observe_latency(&mut self, call: &Inflight<ReadCall>, now: Instant) {
        let before = self.reader.chunks_per_file();
        let latency = now.saturating_duration_since(call.sent_at);
        self.reader.on_read_latency(&call.call, latency);
        let after = self.reader.chunks_per_file();
        if after != before {
            tracing::debug!(chunks_per_file = after, ?latency, "READ window");
        }
    }

    /// Retries a READ whose reply is malformed and waits out one the server is too busy for;
    /// gives back the others, for the reader.
    fn settle_busy_or_malformed(
        &mut self,
        call: Inflight<ReadCall>,
        body: &[u8],
        now: Instant,
    ) -> Option<Inflight<ReadCall>> {
        match ReadReply::decode_result(body) {
            Err(e) => {
                let msg = format!("malformed READ reply: {e}");
                self.retry_or_fail(call.into_queued(), msg, now);
                None
            }
            Ok(Err(fail)) if fail.status == Nfsstat3::Jukebox => {
                let delay = CallEngine::<ReadCall>::busy_delay(call.attempts.busy_waits);
                if let Err(q) = self.calls.wait_busy(call.into_queued(), delay, now) {
                    let msg = "server still busy (NFS3ERR_JUKEBOX); given up".to_string();
                    self.reader
                        .on_read_reply(&q.call, Err(msg), &mut self.hasher);
                }
                None
            }
            Ok(_) => Some(call),
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        for call in self.calls.on_timeout(now) {
            let msg = format!("no reply within {} ms", self.rpc_timeout.as_millis());
            self.retry_or_fail(call.into_queued(), msg, now);
        }
        self.write_done();
    }

    fn retry_or_fail(&mut self, q: Queued<ReadCall>, message: String, now: Instant) {
        if let Err(q) = self.calls.retry(q, now) {
            self.reader
                .on_read_reply(&q.call, Err(message), &mut self.hasher);
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let calls = self.calls.poll_timeout(now);
        if !self.reader.is_idle() && self.calls.inflight() == 0 {
            // Only the hashing threads can move this thread's reads on now.
            let soon = now + HASH_POLL;
            return Some(calls.map_or(soon, |c| c.min(soon)));
        }
        calls
    }
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
pub struct ContentThread<O> {
    walk: WalkThread<ContentOut<O>>,
}

impl<O: EntrySink> ContentThread<O> {
    pub fn new(walk: WalkThread<ContentOut<O>>, _t: &ThreadSetup) -> Self {
        ContentThread { walk }
    }

    fn content(&mut self) -> &mut ContentOut<O> {
        self.walk.out_mut()
    }
}

impl<O> From<ContentThread<O>> for WalkThread<ContentOut<O>> {
    fn from(t: ContentThread<O>) -> Self {
        t.walk
    }
}

impl<O: EntrySink> Protocol for ContentThread<O> {
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
        // While the reader is full the walk waits: its entries would only pile up.
        if !self.walk.out().is_full() {
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
