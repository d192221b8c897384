//! The walk over NFSv4.1 of one thread, as a sans-IO protocol user of the call engine: one
//! COMPOUND (SEQUENCE, PUTFH, READDIR asking the record's attributes and each entry's handle)
//! per listing page, chained by cookie and verifier like v3, with the same guards (entries
//! remembered per listing, cookies seen twice, replies that bring nothing new).
//!
//! Every thread uses the one client ID and session the cold path set up ([`Shared4`]), each
//! with a disjoint range of its slots (slot 0 stays the cold path's), so no thread ever waits
//! for another on the hot path: a call takes a free slot of the thread's range and carries its
//! sequence ID; a reply frees it. Each connection is bound with BIND_CONN_TO_SESSION before its
//! first call of a session. A lost session is re-created by the first thread that sees it lost
//! (in-band: CREATE_SESSION, or EXCHANGE_ID first when the client ID is gone); the others wait
//! for it and take the new session's ranges. (Where the server grants fewer slots than there
//! are threads, each thread sets up a session of its own instead, in-band as above.) Errors:
//! NFS4ERR_DELAY and NFS4ERR_GRACE wait like JUKEBOX; BADSESSION / DEADSESSION set up a new
//! session, STALE_CLIENTID a new client ID, and the call is resent; a retry the server already
//! saw (RETRY_UNCACHED_REP) moves its slot on; a misordered slot means a new session; the lease
//! is kept by the traffic itself, and a lone SEQUENCE when idle. With `--readlink`, a symbolic
//! link is written once its target is read (SEQUENCE, PUTFH, READLINK), and its listing is
//! done only when all of its links are.

use crate::client::idmap::IdMap;
use crate::path_error::PathError;
use crate::record::{join_path, EntryAttrs, EntryRef, EntryType};
use crate::rpc::nfs3::{proc3, FileHandle, Nfsstat3};
use crate::rpc::nfs4::{
    encode_compound_call, op4, ArgOp, AttrMask, BindConn, ChannelAttrs, CompoundReply,
    CreateSessionArgs, DetachedReaddir4, Entry4, ExchangeIdArgs, FileType4, Nfs4ReplyError,
    Nfsstat4, ReaddirArgs4, Recovery, ResOk, SequenceArgs, SessionId, CDFC4_FORE,
    EXCHGID4_FLAG_USE_NON_PNFS, MINOR_VERSION_1,
};
use crate::rpc::RpcError;
use crate::sched::{CallEngine, CallPolicy, Queued, RateLimiter, TaskId};
use crate::walker::config::{
    WalkConfig, CONTINUED_COOKIES_MAX, DEPTH_HARD_MAX, FIRST_MAXCOUNT_BYTES, FRUITLESS_REPLIES_MAX,
    JUKEBOX_WAITS_MAX, LISTED_NAME_BYTES_MAX, LISTING_RESTARTS_MAX,
};
use crate::walker::deferred::DeferredPages;
use crate::walker::machine::listing::entry_key;
use crate::walker::seen::{EmittedSet, HashSet64, KeyedAhead};
use crate::walker::{DirTask, ObjectRef, Task, VisitedDirs, WalkSink, WalkStats};
use slab::Slab;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Slots asked of the server per thread's session; it grants what it will.
pub const THREAD_SLOTS_WANTED: u32 = 1024;
/// A thread with no call for this long sends a lone SEQUENCE, so its lease does not lapse while
/// other threads finish (leases are 90 s on most servers).
pub const LEASE_RENEW_IDLE: Duration = Duration::from_secs(20);
/// Session set-ups in a row (without a listing reply between them) before the thread gives up.
const SESSION_SETUPS_MAX: u32 = 20;
const TAG: &[u8] = b"nfs-walker";
/// Largest listing page asked over v4 (`--maxcount` above it is cut): measured on nfs-ganesha
/// (wide 100 x 1000) and mock-nfsd (flat 1M), pages of 1 MiB took several times longer per
/// entry than pages of 64-128 KiB (replies of 1 MiB waited on the server between pages); the
/// cause is not understood yet, see benches/nfs4.sh.
pub const V4_PAGE_BYTES_MAX: u32 = 128 << 10;

/// How often a thread waiting for another to re-create the shared session looks again.
const SHARED_SESSION_POLL: Duration = Duration::from_millis(2);

/// What every v4 walk thread shares.
pub struct Walk4Setup {
    /// The client owner (threads with sessions of their own append their number).
    pub owner: Vec<u8>,
    pub verifier: [u8; 8],
    pub idmap: Arc<IdMap>,
    /// The session the threads share; `None`: each thread sets up its own.
    pub shared: Option<Shared4>,
    /// Content reads go beside the walk on the shared session: each thread's slots are split
    /// between its walk and its reads.
    pub reads: bool,
}

impl Walk4Setup {
    /// Which share of the session's slots (index, of how many) the walk of thread `thread`
    /// of `threads` takes; its reads take the next one.
    pub fn walk_share(&self, thread: usize, threads: usize) -> (usize, usize) {
        if self.reads {
            (2 * thread, 2 * threads)
        } else {
            (thread, threads)
        }
    }
}

/// A session as the threads share it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedSession {
    pub(crate) clientid: u64,
    pub(crate) id: SessionId,
    /// Fore-channel slots granted (slot 0 is the cold path's; the rest are divided).
    pub(crate) slots: u32,
    pub(crate) max_response: u32,
    /// Bumped by every re-creation.
    pub(crate) generation: u32,
}

/// The client ID and session every walk thread uses, and its re-creation after a loss: the
/// first thread to see the current session lost re-creates it, the others wait. Locked only
/// when a session is lost or taken, never per call.
pub struct Shared4 {
    state: Mutex<SharedState>,
    /// The generation last reported lost by [`Shared4::report_lost`] (0: none).
    lost_generation: std::sync::atomic::AtomicU32,
}

struct SharedState {
    /// `None` while a thread re-creates it.
    current: Option<SharedSession>,
    /// A session another user of it (content reads) found lost, with whether the client ID
    /// went too: the walk of some thread re-creates it.
    lost: Option<(u32, bool)>,
    generation: u32,
    clientid: u64,
    /// The sequence ID of the client ID's next CREATE_SESSION.
    create_seq: u32,
    /// Set when the re-creating thread gave up: every thread fails with it.
    broken: Option<String>,
}

impl Shared4 {
    /// The session the cold path set up (`create_seq`: its client ID's next CREATE_SESSION).
    pub fn new(
        clientid: u64,
        create_seq: u32,
        id: SessionId,
        slots: u32,
        max_response: u32,
    ) -> Self {
        Shared4 {
            state: Mutex::new(SharedState {
                current: Some(SharedSession {
                    clientid,
                    id,
                    slots,
                    max_response,
                    generation: 1,
                }),
                generation: 1,
                clientid,
                create_seq,
                broken: None,
                lost: None,
            }),
            lost_generation: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The session to use now: `Ok(None)` while it is being re-created, `Err` when it cannot
    /// be any more.
    pub(crate) fn session(&self) -> Result<Option<SharedSession>, String> {
        let st = self.lock();
        match &st.broken {
            Some(why) => Err(why.clone()),
            None => Ok(st.current),
        }
    }

    /// A user other than the walk (content reads) found session `generation` lost: the next
    /// walk thread that looks re-creates it. (Checked by the walks without the lock.)
    pub(crate) fn report_lost(&self, generation: u32, client: bool) {
        let mut st = self.lock();
        if st.current.is_some_and(|s| s.generation == generation) {
            st.lost = Some((generation, client));
            self.lost_generation
                .store(generation, std::sync::atomic::Ordering::Release);
        }
    }

    fn lock(&self) -> MutexGuard<'_, SharedState> {
        // A thread that panicked holding it left a consistent state (plain fields).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client ID and session in use now, to be destroyed at the end.
    pub fn current(&self) -> Option<(u64, SessionId)> {
        self.lock().current.map(|s| (s.clientid, s.id))
    }

    /// Makes a session set up elsewhere the current one (a bench's fresh session for its load).
    pub fn set_current(
        &self,
        clientid: u64,
        create_seq: u32,
        id: SessionId,
        slots: u32,
        max_response: u32,
    ) {
        let mut st = self.lock();
        st.generation += 1;
        st.clientid = clientid;
        st.create_seq = create_seq;
        st.current = Some(SharedSession {
            clientid,
            id,
            slots,
            max_response,
            generation: st.generation,
        });
    }

    /// The session in use now and its slots (a bench's load goes on it).
    pub fn session_slots(&self) -> Option<(SessionId, u32)> {
        self.lock().current.map(|s| (s.id, s.slots))
    }

    /// Whether `threads` threads can each have slots of their own (beside the cold path's).
    pub fn fits(&self, threads: usize) -> bool {
        self.lock()
            .current
            .is_some_and(|s| slot_range(s.slots, threads, threads - 1).is_some())
    }
}

/// The slots of thread `thread` of `threads` in a session of `slots` slots: slot 0 is the cold
/// path's, the rest divided evenly; `None` where there are too few for one each.
pub(crate) fn slot_range(
    slots: u32,
    threads: usize,
    thread: usize,
) -> Option<std::ops::Range<u32>> {
    let usable = u64::from(slots.saturating_sub(1));
    let (t, n) = (thread as u64, threads.max(1) as u64);
    let lo = 1 + (t * usable / n) as u32;
    let hi = 1 + ((t + 1) * usable / n) as u32;
    (lo < hi).then_some(lo..hi)
}

/// The session of this thread.
enum Session {
    /// No client ID: EXCHANGE_ID next.
    NoClient,
    /// A client ID without a session: CREATE_SESSION next.
    ClientOnly {
        clientid: u64,
        sequence: u32,
    },
    Ready(Box<Slots>),
    /// The shared session was lost and another thread re-creates it.
    Waiting,
}

struct Slots {
    clientid: u64,
    create_seq: u32,
    id: SessionId,
    /// Bumped whenever a session is replaced: slot claims of older generations are void.
    generation: u32,
    /// The last sequence ID sent on each slot.
    seq: Vec<u32>,
    free: Vec<u32>,
    max_response: u32,
    /// The shared session's generation this is (0 for a session of the thread's own).
    shared_gen: u32,
}

/// A claimed slot: which, with which sequence ID, in which session generation.
#[derive(Debug, Clone, Copy)]
struct SlotClaim {
    slot: u32,
    seq: u32,
    generation: u32,
}

#[derive(Debug)]
enum Op4 {
    List {
        task: usize,
        slot: Option<SlotClaim>,
    },
    ExchangeId,
    CreateSession,
    /// A lone SEQUENCE keeping the lease.
    Renew {
        slot: Option<SlotClaim>,
    },
    /// The target of a symbolic link a listing found (`--readlink`).
    Readlink {
        link: Box<PendingLink>,
        slot: Option<SlotClaim>,
    },
    /// BIND_CONN_TO_SESSION: the connection it goes on serves this session.
    Bind(SessionId),
}

impl Op4 {
    fn slot(&mut self) -> Option<&mut Option<SlotClaim>> {
        match self {
            Op4::List { slot, .. } | Op4::Renew { slot } | Op4::Readlink { slot, .. } => Some(slot),
            _ => None,
        }
    }
}

/// A symbolic link held back until its target is read: the record without the target.
#[derive(Debug)]
struct PendingLink {
    /// The listing that found it (its slab key and id: a key may be reused once the listing
    /// is gone, the id not).
    task: usize,
    id: TaskId,
    path: Vec<u8>,
    attrs: EntryAttrs,
    depth: u32,
    owner: Option<Vec<u8>>,
    group: Option<Vec<u8>>,
    fh: Vec<u8>,
}

struct Listing4 {
    id: TaskId,
    task: DirTask,
    cookie: u64,
    verf: [u8; 8],
    calls: u32,
    seen: EmittedSet,
    entries_new: u64,
    continued_from: HashSet64,
    restarts: u32,
    catch_up: u64,
    fruitless: u32,
    busy_delay: Duration,
    /// The last page came (eof): the listing is done once `links` is 0 too.
    eof: bool,
    /// A verdict reached on a deferred page while the chain's next call was already made:
    /// the listing fails with it when that call returns or fails (so its slab key is not
    /// reused while the call is out).
    fail_next: Option<String>,
    /// Links of this listing whose targets are being read.
    links: u32,
}

/// The v4 walk state machine of one thread.
pub struct Walker4 {
    cfg: Arc<WalkConfig>,
    setup: Arc<Walk4Setup>,
    visited: Arc<VisitedDirs>,
    thread: usize,
    tasks: Slab<Listing4>,
    calls: CallEngine<Op4>,
    session: Session,
    /// A session set-up call is queued or on the wire.
    setting_up: bool,
    setups_in_a_row: u32,
    generation: u32,
    last_send: Option<Instant>,
    /// Listing pages to process once their next calls went out (see
    /// [`crate::walker::deferred`]), each with its validated view.
    deferred: DeferredPages<DetachedReaddir4>,
    scratch_path: Vec<u8>,
    stats: WalkStats,
    /// Why the thread cannot reach the server any more (session set-up failing): every listing
    /// is failed with it.
    broken: Option<String>,
    /// Threads of the walk.
    threads: usize,
    /// This thread has a session of its own (the shared one has too few slots).
    private: bool,
    /// This thread re-creates the shared session.
    recreator: bool,
    /// Per connection: the `generation` of the session it was bound to (0: none).
    bound: Vec<u32>,
    /// Which share of the shared session's slots is this walk's: (index, of how many).
    share: (usize, usize),
}

impl Walker4 {
    pub fn new(
        cfg: Arc<WalkConfig>,
        setup: Arc<Walk4Setup>,
        visited: Arc<VisitedDirs>,
        conns: usize,
        thread: usize,
        threads: usize,
    ) -> Self {
        let policy = CallPolicy {
            timeout: cfg.rpc_timeout,
            retries: cfg.retries,
            busy_waits_max: JUKEBOX_WAITS_MAX,
            resend_lost: true,
        };
        // Beside content reads, the walk's XIDs keep their top bit clear (see content::scan).
        let xid_thread = if setup.reads { thread & 7 } else { thread };
        let calls = CallEngine::new(policy, conns, cfg.inflight_per_conn, xid_thread);
        let share = setup.walk_share(thread, threads);
        let private = !setup.shared.as_ref().is_some_and(|s| s.fits(share.1));
        let mut w = Walker4 {
            cfg,
            setup,
            visited,
            thread,
            tasks: Slab::new(),
            calls,
            session: Session::NoClient,
            setting_up: false,
            setups_in_a_row: 0,
            generation: 0,
            last_send: None,
            deferred: DeferredPages::default(),
            scratch_path: Vec::with_capacity(4096),
            stats: WalkStats::new(),
            broken: None,
            threads,
            private,
            recreator: false,
            bound: vec![0; conns],
            share,
        };
        if !private {
            w.take_shared();
        }
        w
    }

    /// Takes the shared session's current state: its session (this thread's slots of it), a
    /// wait while another thread re-creates it, or the reason it is gone for good.
    fn take_shared(&mut self) {
        let Some(shared) = &self.setup.shared else {
            return;
        };
        let st = shared.lock();
        if let Some(why) = &st.broken {
            self.broken = Some(why.clone());
            return;
        }
        let Some(s) = st.current else {
            self.session = Session::Waiting;
            return;
        };
        drop(st);
        self.ready_shared(s);
    }

    /// Whether session set-up calls wait to be sent (see [`crate::scan::WalkMachine`]).
    pub fn needs_setup(&self) -> bool {
        self.broken.is_none()
            && matches!(self.session, Session::NoClient | Session::ClientOnly { .. })
    }

    /// Acts on a loss of the shared session that content reads reported: as if a call of the
    /// walk had found it (one atomic load when there is none).
    ///
    /// The reads of this thread wait on this walk alone (the other threads' walks may be done
    /// and asleep), so a loss of a session newer than the walk's own counts too: the walk takes
    /// the newer one first, then acts on its loss.
    fn take_reported_loss(&mut self) {
        let setup = self.setup.clone();
        let Some(shared) = &setup.shared else {
            return;
        };
        let lost = shared
            .lost_generation
            .load(std::sync::atomic::Ordering::Acquire);
        let mine = match &self.session {
            Session::Ready(s) if !self.private && lost != 0 => s.shared_gen,
            _ => return,
        };
        if lost < mine {
            return;
        }
        if lost > mine {
            self.take_shared();
        }
        let Session::Ready(s) = &self.session else {
            return;
        };
        let client = match shared.lock().lost {
            Some((g, client)) if g == s.shared_gen => client,
            _ => return,
        };
        self.lose_session(client);
    }

    /// Uses (this thread's slots of) a shared session.
    fn ready_shared(&mut self, s: SharedSession) {
        let Some(range) = slot_range(s.slots, self.share.1, self.share.0) else {
            self.broken = Some(format!(
                "the server granted {} session slots, too few for {} threads; run with fewer \
                 --threads",
                s.slots, self.threads
            ));
            return;
        };
        self.generation += 1;
        self.session = Session::Ready(Box::new(Slots {
            clientid: s.clientid,
            create_seq: 0,
            id: s.id,
            generation: self.generation,
            seq: vec![0; s.slots as usize],
            free: range.rev().collect(),
            max_response: s.max_response,
            shared_gen: s.generation,
        }));
    }

    /// The walker of engine thread `t` of `threads` for a scan set up as `walk` (configuration,
    /// visited directories, rate limit).
    pub fn for_thread(
        walk: &crate::scan::WalkSetup,
        v4: &Arc<Walk4Setup>,
        t: &crate::sched::ThreadSetup,
        threads: usize,
    ) -> Self {
        Walker4::new(
            walk.walk.clone(),
            v4.clone(),
            walk.visited.clone(),
            t.conns,
            t.index,
            threads,
        )
        .with_rate_limit(walk.rate.clone())
    }

    pub fn with_rate_limit(mut self, rate: Option<Arc<RateLimiter>>) -> Self {
        self.calls = self.calls.with_rate_limit(rate);
        self
    }

    pub fn take_stats(&mut self) -> WalkStats {
        let mut s = std::mem::replace(&mut self.stats, WalkStats::new());
        s.add_calls(self.calls.counters());
        s
    }

    pub fn inflight(&self) -> usize {
        self.calls.inflight()
    }

    pub fn calls_sent(&self) -> u64 {
        self.calls.counters().sent
    }

    pub fn is_idle(&self) -> bool {
        self.tasks.is_empty() && self.calls.is_idle() && self.deferred.is_empty()
    }

    pub fn wants_task(&self) -> bool {
        self.tasks.len() < self.cfg.listings_max && self.calls.queued() < self.calls.capacity()
    }

    pub fn on_conn_up(&mut self, conn: usize) {
        self.calls.on_conn_up(conn);
        // A new connection serves no session yet.
        if let Some(b) = self.bound.get_mut(conn) {
            *b = 0;
        }
    }

    pub fn on_conn_down(&mut self, conn: usize) {
        if let Some(b) = self.bound.get_mut(conn) {
            *b = 0;
        }
        let lost = self.calls.on_conn_down(conn);
        debug_assert!(lost.is_empty(), "the walk's policy resends lost calls");
    }

    pub fn add_task(&mut self, id: TaskId, task: Task, sink: &mut impl WalkSink) {
        match task {
            Task::Dir(dir) => {
                let key = self.tasks.insert(Listing4 {
                    id,
                    task: dir,
                    cookie: 0,
                    verf: [0; 8],
                    calls: 0,
                    seen: EmittedSet::new(self.cfg.emitted_keys_in_memory),
                    entries_new: 0,
                    continued_from: HashSet64::default(),
                    restarts: 0,
                    catch_up: 0,
                    fruitless: 0,
                    busy_delay: crate::sched::calls::BUSY_DELAY_FIRST,
                    eof: false,
                    fail_next: None,
                    links: 0,
                });
                if let Some(why) = self.broken.clone() {
                    return self.fail_listing(key, why, None, sink);
                }
                self.calls.push_back(Queued::new(Op4::List {
                    task: key,
                    slot: None,
                }));
            }
            // v4 listings carry every entry's attributes and handle: no lookup batches.
            Task::Lookups(_) => sink.task_done(id, true),
        }
    }

    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let renew = match (&self.session, self.last_send) {
            (Session::Ready(_), Some(t)) if self.calls.is_idle() => Some(t + LEASE_RENEW_IDLE),
            // Only a wake-up: the next turn's `poll_transmit` looks at the shared session.
            (Session::Waiting, _) => Some(now + SHARED_SESSION_POLL),
            _ => None,
        };
        match (self.calls.poll_timeout(now), renew) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn on_timeout(&mut self, now: Instant, sink: &mut impl WalkSink) {
        self.run_deferred(sink);
        self.take_reported_loss();
        for call in self.calls.on_timeout(now) {
            let msg = format!("no reply within {} ms", self.cfg.rpc_timeout.as_millis());
            let q = call.into_queued();
            if let Err(q) = self.calls.retry(q, now) {
                self.give_up(q.call, msg, None, sink);
            }
        }
        if matches!(self.session, Session::Ready(_))
            && self.calls.is_idle()
            && self.last_send.is_some_and(|t| now >= t + LEASE_RENEW_IDLE)
        {
            self.last_send = Some(now);
            self.calls.push_back(Queued::new(Op4::Renew { slot: None }));
        }
        self.fail_all_if_broken(sink);
    }

    /// Encodes queued calls while connections have room and (for session calls) slots are
    /// free. Session set-up goes first; nothing else leaves before a session is ready.
    pub fn poll_transmit(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> usize {
        // Every turn of the loop, not only on a timer: `poll_timeout` can only say "in
        // 2 ms" while another thread re-creates the session, a time that never falls due (a
        // thread waited forever once the session was back, with its listings queued).
        if matches!(self.session, Session::Waiting) {
            self.take_shared();
        }
        self.take_reported_loss();
        if !matches!(self.session, Session::Ready(_)) && !self.setting_up {
            if self.broken.is_some() || matches!(self.session, Session::Waiting) {
                return 0;
            }
            let op = match self.session {
                Session::NoClient => Op4::ExchangeId,
                _ => Op4::CreateSession,
            };
            self.setting_up = true;
            self.calls.push_front(Queued::new(op));
        }
        let mut n = 0;
        loop {
            let ready = matches!(self.session, Session::Ready(_));
            if !ready && !self.setting_up {
                break;
            }
            let free = match &self.session {
                Session::Ready(s) => !s.free.is_empty(),
                _ => true,
            };
            if !free {
                break;
            }
            let Some((conn, mut q)) = self.calls.next_ready(now) else {
                break;
            };
            let setup_call = matches!(q.call, Op4::ExchangeId | Op4::CreateSession);
            if !ready && !setup_call {
                // Waits for the session: back to the front, and stop for now.
                self.calls.push_front(q);
                break;
            }
            if let Op4::List { task, .. } = q.call {
                if !self.tasks.contains(task) {
                    continue; // the listing failed while this call waited
                }
            }
            // A connection serves a session once bound to it: BIND_CONN_TO_SESSION goes first
            // (SP4_NONE lets a SEQUENCE bind it implicitly too, so the calls behind it need
            // not wait for its reply).
            let bind = match &self.session {
                Session::Ready(s) if !setup_call && self.bound[conn] != self.generation => {
                    Some(s.id)
                }
                _ => None,
            };
            if let Some(id) = bind {
                self.bound[conn] = self.generation;
                self.calls.push_front(q);
                q = Queued::new(Op4::Bind(id));
            }
            // Claim a slot (or keep the one a resend holds, in this session generation).
            if let (Session::Ready(s), Some(claim)) = (&mut self.session, q.call.slot()) {
                let valid = claim.is_some_and(|c| c.generation == s.generation);
                if !valid {
                    let slot = s.free.pop().expect("checked above");
                    s.seq[slot as usize] = s.seq[slot as usize].wrapping_add(1);
                    *claim = Some(SlotClaim {
                        slot,
                        seq: s.seq[slot as usize],
                        generation: s.generation,
                    });
                }
            }
            let (cfg, setup, tasks, session, buf) = (
                &self.cfg,
                &self.setup,
                &mut self.tasks,
                &self.session,
                &mut bufs[conn],
            );
            // A thread with a session of its own has a client ID of its own too.
            let suffix = self.private.then_some(self.thread);
            let proc_ = stats_proc(&q.call);
            self.calls.send(conn, q, now, |op, xid| {
                encode_op4(cfg, setup, tasks, session, suffix, op, xid, buf)
            });
            self.stats.procs[proc_].calls += 1;
            self.last_send = Some(now);
            n += 1;
        }
        n
    }

    pub fn on_reply(
        &mut self,
        xid: u32,
        outcome: Result<&[u8], RpcError>,
        now: Instant,
        sink: &mut impl WalkSink,
    ) {
        let Some(call) = self.calls.take_reply(xid) else {
            return;
        };
        // Pages deferred earlier come first: their entries precede this reply's.
        self.run_deferred(sink);
        let rtt_us = now.saturating_duration_since(call.sent_at).as_micros() as u64;
        let _ = self.stats.procs[stats_proc(&call.call)]
            .latency_us
            .record(rtt_us.max(1));
        let mut q = call.into_queued();
        let body = match outcome {
            Ok(b) => b,
            Err(e) => {
                self.release_slot(&mut q.call, false);
                if let Err(q) = self.calls.retry(q, now) {
                    self.give_up(q.call, e.to_string(), None, sink);
                }
                return;
            }
        };
        let result = match q.call {
            Op4::ExchangeId => self.on_exchange_id(body),
            Op4::CreateSession => self.on_create_session(body),
            Op4::Renew { .. } | Op4::List { .. } | Op4::Readlink { .. } => {
                self.on_session_reply(&mut q, body, now, sink)
            }
            // A failed binding is not acted on: the connection's next SEQUENCE binds it
            // implicitly (SP4_NONE) or reports the session lost, which is handled there.
            Op4::Bind(_) => Ok(()),
        };
        if let Err(e) = result {
            self.release_slot(&mut q.call, false);
            let msg = format!("malformed reply: {e}");
            if let Err(q) = self.calls.retry(q, now) {
                self.give_up(q.call, msg, None, sink);
            }
        }
        self.fail_all_if_broken(sink);
    }

    /// A thread that cannot set up a session any more sends nothing: every listing and every
    /// call waiting to be sent fails with the reason (links are written without targets), so
    /// the walk ends instead of waiting for calls that never leave.
    fn fail_all_if_broken(&mut self, sink: &mut impl WalkSink) {
        let Some(why) = self.broken.clone() else {
            return;
        };
        for q in self.calls.take_unsent() {
            self.give_up(q.call, why.clone(), None, sink);
        }
        let keys: Vec<usize> = self.tasks.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.fail_listing(k, why.clone(), None, sink);
        }
    }

    fn on_exchange_id(&mut self, body: &[u8]) -> Result<(), Nfs4ReplyError> {
        self.setting_up = false;
        let mut r = CompoundReply::decode(body)?;
        match r.expect(op4::EXCHANGE_ID) {
            Ok(ResOk::ExchangeId(x)) => {
                self.session = Session::ClientOnly {
                    clientid: x.clientid,
                    sequence: x.sequenceid,
                };
                Ok(())
            }
            Ok(_) => Err(Nfs4ReplyError::Missing(op4::EXCHANGE_ID)),
            Err(Nfs4ReplyError::Status { status, .. }) => {
                self.setup_failed(status);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn on_create_session(&mut self, body: &[u8]) -> Result<(), Nfs4ReplyError> {
        self.setting_up = false;
        let Session::ClientOnly { clientid, sequence } = self.session else {
            return Ok(());
        };
        let mut r = CompoundReply::decode(body)?;
        match r.expect(op4::CREATE_SESSION) {
            Ok(ResOk::CreateSession(s)) => {
                let slots = s.fore.maxrequests.clamp(1, THREAD_SLOTS_WANTED);
                if self.recreator {
                    // The new shared session: published for the threads waiting for it.
                    self.recreator = false;
                    let shared = self.setup.shared.as_ref().expect("recreators share");
                    let mut st = shared.lock();
                    st.generation += 1;
                    st.clientid = clientid;
                    st.create_seq = sequence.wrapping_add(1);
                    let new = SharedSession {
                        clientid,
                        id: s.sessionid,
                        slots,
                        max_response: s.fore.maxresponsesize,
                        generation: st.generation,
                    };
                    st.current = Some(new);
                    drop(st);
                    self.ready_shared(new);
                    return Ok(());
                }
                self.generation += 1;
                self.session = Session::Ready(Box::new(Slots {
                    clientid,
                    create_seq: sequence.wrapping_add(1),
                    id: s.sessionid,
                    generation: self.generation,
                    seq: vec![0; slots as usize],
                    free: (0..slots).rev().collect(),
                    max_response: s.fore.maxresponsesize,
                    shared_gen: 0,
                }));
                Ok(())
            }
            Ok(_) => Err(Nfs4ReplyError::Missing(op4::CREATE_SESSION)),
            Err(Nfs4ReplyError::Status { status, .. }) => {
                match status.recovery() {
                    Recovery::RetryLater => {}
                    Recovery::NewSession => self.session = Session::NoClient,
                    _ => self.setup_failed(status),
                }
                self.count_setup(status);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn count_setup(&mut self, status: Nfsstat4) {
        self.setups_in_a_row += 1;
        if self.setups_in_a_row > SESSION_SETUPS_MAX {
            self.setup_failed(status);
        }
    }

    /// Session set-up keeps failing: every listing of this thread fails with the reason (and
    /// of every thread, when this one was re-creating the shared session).
    fn setup_failed(&mut self, status: Nfsstat4) {
        let why = format!("NFSv4.1 session set-up failed: {status}");
        self.publish_broken(&why);
        self.broken = Some(why);
    }

    fn publish_broken(&mut self, why: &str) {
        if std::mem::take(&mut self.recreator) {
            if let Some(shared) = &self.setup.shared {
                shared.lock().broken = Some(why.to_string());
            }
        }
    }

    /// Frees a call's slot. `used`: the server accepted its SEQUENCE (the sequence ID stands);
    /// otherwise the slot goes back with its last sequence ID withdrawn.
    fn release_slot(&mut self, op: &mut Op4, used: bool) {
        let Some(claim) = op.slot().and_then(|c| c.take()) else {
            return;
        };
        if let Session::Ready(s) = &mut self.session {
            if claim.generation == s.generation {
                if !used {
                    s.seq[claim.slot as usize] = claim.seq.wrapping_sub(1);
                }
                s.free.push(claim.slot);
            }
        }
    }

    /// Whether a call's slot belongs to the session this thread holds now.
    fn of_current_session(&self, op: &mut Op4) -> bool {
        match (&self.session, op.slot()) {
            (Session::Ready(s), Some(Some(c))) => c.generation == s.generation,
            _ => false,
        }
    }

    /// Forgets the session (and with `client`, the client ID): the next poll sets up anew;
    /// calls holding slots of it claim new ones.
    fn lose_session(&mut self, client: bool) {
        if let (Session::Ready(s), false) = (&self.session, self.private) {
            let mine = s.shared_gen;
            let shared = self
                .setup
                .shared
                .as_ref()
                .expect("threads without sessions share");
            let mut st = shared.lock();
            if let Some(why) = &st.broken {
                self.broken = Some(why.clone());
                return;
            }
            match st.current {
                // Another thread has re-created it already: take the new one.
                Some(s) if s.generation != mine => {
                    drop(st);
                    self.ready_shared(s);
                }
                // This thread is the first to see it lost: it re-creates it.
                Some(_) => {
                    st.current = None;
                    self.recreator = true;
                    self.session = if client {
                        Session::NoClient
                    } else {
                        Session::ClientOnly {
                            clientid: st.clientid,
                            sequence: st.create_seq,
                        }
                    };
                }
                None => self.session = Session::Waiting,
            }
            return;
        }
        if let Session::Ready(s) = &self.session {
            self.session = if client {
                Session::NoClient
            } else {
                Session::ClientOnly {
                    clientid: s.clientid,
                    sequence: s.create_seq,
                }
            };
        }
    }

    fn on_session_reply(
        &mut self,
        q: &mut Queued<Op4>,
        body: &[u8],
        now: Instant,
        sink: &mut impl WalkSink,
    ) -> Result<(), Nfs4ReplyError> {
        let mut r = CompoundReply::decode(body)?;
        let first = r.next_op()?.ok_or(Nfs4ReplyError::Missing(op4::SEQUENCE))?;
        if first.op != op4::SEQUENCE {
            return Err(Nfs4ReplyError::WrongOp {
                expected: op4::SEQUENCE,
                got: first.op,
            });
        }
        let q_taken = std::mem::replace(q, Queued::new(Op4::ExchangeId));
        let mut q = q_taken;
        match first.result {
            Ok(_) => {
                self.setups_in_a_row = 0;
                self.release_slot(&mut q.call, true);
            }
            Err(status) => {
                match status.recovery() {
                    Recovery::RetryLater => {
                        // The slot was not used (same sequence ID next time): it goes back to
                        // the free ones while the call waits. Kept by the waiting call, slots
                        // ran out when every one was held by a call waiting in the queue, and
                        // then nothing could be sent again (a scan hung through DELAY storms).
                        self.release_slot(&mut q.call, false);
                        if let Err(q) =
                            self.calls
                                .wait_busy(q, CallEngine::<Op4>::busy_delay(0), now)
                        {
                            self.give_up(
                                q.call,
                                format!("server still busy ({status})"),
                                Some(status),
                                sink,
                            );
                        }
                        self.stats.jukebox += 1;
                        return Ok(());
                    }
                    // Every call in flight on a lost session comes back with this: the loss
                    // counts once, for the calls of the current session; the others are resent.
                    Recovery::NewSession if self.of_current_session(&mut q.call) => {
                        self.count_setup(status);
                        self.lose_session(
                            status == Nfsstat4::StaleClientid || status == Nfsstat4::Expired,
                        );
                    }
                    Recovery::NewSession => {}
                    Recovery::ResetSlot => match status {
                        Nfsstat4::RetryUncachedRep | Nfsstat4::SeqFalseRetry => {
                            // The server has this sequence ID already: the call goes again on a
                            // fresh claim (the slot keeps the server's count).
                            self.release_slot(&mut q.call, true);
                        }
                        _ if self.of_current_session(&mut q.call) => {
                            self.count_setup(status);
                            self.lose_session(false);
                        }
                        _ => {}
                    },
                    Recovery::Fail => {
                        self.release_slot(&mut q.call, true);
                        self.give_up(
                            q.call,
                            format!("SEQUENCE failed: {status}"),
                            Some(status),
                            sink,
                        );
                        return Ok(());
                    }
                }
                if let Some(c) = q.call.slot() {
                    *c = None;
                }
                self.calls.push_front(q);
                return Ok(());
            }
        }
        let task = match q.call {
            Op4::List { task, .. } => task,
            Op4::Readlink { .. } => return self.on_readlink_reply(q, r, now, sink),
            _ => return Ok(()), // a lease renewal: nothing more
        };
        if let Some(msg) = self.tasks.get_mut(task).and_then(|l| l.fail_next.take()) {
            self.fail_listing(task, msg, None, sink);
            return Ok(());
        }
        let listing = r.expect(op4::PUTFH).and_then(|_| r.expect(op4::READDIR));
        match listing {
            Ok(ResOk::Readdir(list)) => {
                r.finish()?;
                self.on_page(task, &list, body, sink);
                Ok(())
            }
            Ok(_) => Err(Nfs4ReplyError::Missing(op4::READDIR)),
            Err(Nfs4ReplyError::Status { status, op }) => {
                match status {
                    Nfsstat4::Delay | Nfsstat4::Grace => {
                        self.stats.jukebox += 1;
                        let delay = match self.tasks.get_mut(task) {
                            Some(l) => {
                                let d = l.busy_delay;
                                l.busy_delay = (d * 2).min(crate::sched::calls::BUSY_DELAY_MAX);
                                d
                            }
                            None => return Ok(()),
                        };
                        if let Err(q) = self.calls.wait_busy(q, delay, now) {
                            self.give_up(
                                q.call,
                                format!("server still busy ({status})"),
                                Some(status),
                                sink,
                            );
                        }
                    }
                    Nfsstat4::BadCookie => self.restart_listing(task, sink),
                    _ => {
                        let msg = format!("{} failed: {status}", crate::rpc::nfs4::op_name(op));
                        self.fail_listing(task, msg, Some(status), sink);
                    }
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The rest of a READLINK reply after its SEQUENCE: the link is written with its target;
    /// DELAY and GRACE wait; any other status writes it without one and reports why (the
    /// link exists, only its target is unknown), as over v3.
    fn on_readlink_reply(
        &mut self,
        q: Queued<Op4>,
        mut r: CompoundReply<'_>,
        now: Instant,
        sink: &mut impl WalkSink,
    ) -> Result<(), Nfs4ReplyError> {
        match r.expect(op4::PUTFH).and_then(|_| r.expect(op4::READLINK)) {
            Ok(ResOk::Readlink(target)) => {
                r.finish()?;
                let Op4::Readlink { link, .. } = q.call else {
                    unreachable!("called for READLINK calls only")
                };
                self.link_done(&link, Some(target), sink);
                Ok(())
            }
            Ok(_) => Err(Nfs4ReplyError::Missing(op4::READLINK)),
            Err(Nfs4ReplyError::Status { status, .. })
                if matches!(status, Nfsstat4::Delay | Nfsstat4::Grace) =>
            {
                self.stats.jukebox += 1;
                let delay = CallEngine::<Op4>::busy_delay(q.attempts.busy_waits);
                if let Err(q) = self.calls.wait_busy(q, delay, now) {
                    let msg = format!("server still busy ({status})");
                    self.give_up(q.call, msg, Some(status), sink);
                }
                Ok(())
            }
            Err(Nfs4ReplyError::Status { status, op }) => {
                let msg = format!("{} failed: {status}", crate::rpc::nfs4::op_name(op));
                self.give_up(q.call, msg, Some(status), sink);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes a link held for its target, and finishes its listing if that was the last.
    fn link_done(&mut self, link: &PendingLink, target: Option<&[u8]>, sink: &mut impl WalkSink) {
        self.emit(
            &link.path,
            &link.attrs,
            link.depth,
            target,
            link.owner.as_deref(),
            link.group.as_deref(),
            sink,
        );
        if let Some(l) = self.tasks.get_mut(link.task).filter(|l| l.id == link.id) {
            l.links -= 1;
            self.maybe_finish(link.task, sink);
        }
    }

    /// A listing is done when its last page came and its links are written.
    fn maybe_finish(&mut self, task: usize, sink: &mut impl WalkSink) {
        if self.tasks.get(task).is_some_and(|l| l.eof && l.links == 0) {
            let l = self.tasks.remove(task);
            sink.task_done(l.id, false);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        path: &[u8],
        attrs: &EntryAttrs,
        depth: u32,
        target: Option<&[u8]>,
        owner: Option<&[u8]>,
        group: Option<&[u8]>,
        sink: &mut impl WalkSink,
    ) {
        self.stats.count_entry(attrs);
        sink.entry(&EntryRef {
            path,
            attrs,
            depth,
            target,
            owner,
            group,
        });
    }

    fn restart_listing(&mut self, task: usize, sink: &mut impl WalkSink) {
        let Some(l) = self.tasks.get_mut(task) else {
            return;
        };
        l.restarts += 1;
        self.stats.bad_cookie_restarts += 1;
        if l.restarts > LISTING_RESTARTS_MAX {
            let msg = format!(
                "directory cookies went stale {LISTING_RESTARTS_MAX} times; listing abandoned"
            );
            return self.fail_listing(task, msg, Some(Nfsstat4::BadCookie), sink);
        }
        l.seen.prepare_restart();
        l.cookie = 0;
        l.verf = [0; 8];
        l.continued_from = HashSet64::default();
        l.catch_up = l.entries_new;
        l.fruitless = 0;
        self.calls
            .push_front(Queued::new(Op4::List { task, slot: None }));
    }

    fn give_up(
        &mut self,
        op: Op4,
        message: String,
        status: Option<Nfsstat4>,
        sink: &mut impl WalkSink,
    ) {
        match op {
            Op4::List { task, .. } => {
                match self.tasks.get_mut(task).and_then(|l| l.fail_next.take()) {
                    Some(msg) => self.fail_listing(task, msg, None, sink),
                    None => self.fail_listing(task, message, status, sink),
                }
            }
            Op4::ExchangeId | Op4::CreateSession => {
                self.setting_up = false;
                let why = format!("NFSv4.1 session set-up: {message}");
                self.publish_broken(&why);
                self.broken = Some(why);
                let keys: Vec<usize> = self.tasks.iter().map(|(k, _)| k).collect();
                for k in keys {
                    self.fail_listing(k, message.clone(), status, sink);
                }
            }
            Op4::Renew { .. } | Op4::Bind(_) => {}
            Op4::Readlink { link, .. } => {
                self.report(
                    PathError {
                        path: link.path.clone(),
                        op: "readlink",
                        message,
                        status: status.and_then(v3_status),
                    },
                    sink,
                );
                self.link_done(&link, None, sink);
            }
        }
    }

    fn fail_listing(
        &mut self,
        task: usize,
        message: String,
        status: Option<Nfsstat4>,
        sink: &mut impl WalkSink,
    ) {
        if !self.tasks.contains(task) {
            return;
        }
        let l = self.tasks.remove(task);
        self.calls
            .drop_queued(|op| matches!(op, Op4::List { task: t, .. } if *t == task));
        self.report(
            PathError {
                path: l.task.path.clone(),
                op: "readdir",
                message,
                status: status.and_then(v3_status),
            },
            sink,
        );
        sink.task_done(l.id, false);
    }

    fn report(&mut self, err: PathError, sink: &mut impl WalkSink) {
        self.stats.errors += 1;
        sink.error(err);
    }

    /// A validated listing page (`body`: the reply it came in): continue the chain first, then
    /// emit its entries, at once or once the next call went out.
    fn on_page(
        &mut self,
        task: usize,
        list: &crate::rpc::nfs4::Readdir4Ok<'_>,
        body: &[u8],
        sink: &mut impl WalkSink,
    ) {
        let Some(l) = self.tasks.get_mut(task) else {
            return;
        };
        l.busy_delay = crate::sched::calls::BUSY_DELAY_FIRST;
        if !list.eof {
            match list.last_cookie() {
                None => {
                    let msg = "server returned no entries and no eof; listing stopped".into();
                    return self.fail_listing(task, msg, None, sink);
                }
                Some(c) => {
                    if l.continued_from.len() >= CONTINUED_COOKIES_MAX {
                        l.continued_from = HashSet64::default();
                    }
                    if !l.continued_from.insert(c) || c == l.cookie {
                        self.emit_page(task, list, sink);
                        let msg = format!(
                            "server returned cookie {c:#x} twice; listing stopped to avoid a loop"
                        );
                        return self.fail_listing(task, msg, None, sink);
                    }
                    l.cookie = c;
                    l.verf = list.cookieverf;
                    self.calls
                        .push_front(Queued::new(Op4::List { task, slot: None }));
                    if body.len() >= self.cfg.defer_page_bytes_min
                        && self.deferred.has_room(body.len())
                    {
                        if let Some(view) = list.detach(body) {
                            self.deferred.push(task, body, view);
                            return;
                        }
                    }
                }
            }
        }
        self.page_entries(task, list, sink);
    }

    /// Emits a page's entries; then the listing ends (eof) or is checked for progress.
    fn page_entries(
        &mut self,
        task: usize,
        list: &crate::rpc::nfs4::Readdir4Ok<'_>,
        sink: &mut impl WalkSink,
    ) {
        let dups_before = self.stats.duplicates_skipped;
        let new = self.emit_page(task, list, sink);
        if list.eof {
            if let Some(l) = self.tasks.get_mut(task) {
                l.eof = true;
            }
            return self.maybe_finish(task, sink);
        }
        let dups = self.stats.duplicates_skipped - dups_before;
        let Some(l) = self.tasks.get_mut(task) else {
            return;
        };
        let expected = dups.min(l.catch_up);
        l.catch_up -= expected;
        if new > 0 || (dups > 0 && expected == dups) {
            l.fruitless = 0;
            return;
        }
        l.fruitless += 1;
        if l.fruitless >= FRUITLESS_REPLIES_MAX {
            // The chain's next call is made already (it may be out): the listing fails when
            // it returns.
            l.fail_next = Some(format!(
                "server sent {FRUITLESS_REPLIES_MAX} replies in a row without a new entry and \
                 without eof (after {} entries); listing stopped",
                l.entries_new
            ));
        }
    }

    /// Whether pages wait to be processed.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Processes the deferred pages in the order they came (the driver calls it once their
    /// next calls were handed to the kernel; a reply or timeout handles any left first).
    pub fn run_deferred(&mut self, sink: &mut impl WalkSink) {
        if self.deferred.is_empty() {
            return;
        }
        let mut deferred = std::mem::take(&mut self.deferred);
        deferred.drain(|page| {
            match page.view.attach(&page.body) {
                Some(list) => self.page_entries(page.task, &list, sink),
                None => unreachable!("a deferred page is detached from a copy of its bytes"),
            }
            page.body
        });
        self.deferred = deferred;
    }

    /// Emits a page's entries; returns how many were new to the listing.
    fn emit_page(
        &mut self,
        task: usize,
        list: &crate::rpc::nfs4::Readdir4Ok<'_>,
        sink: &mut impl WalkSink,
    ) -> u64 {
        let Some(l) = self.tasks.get(task) else {
            return 0;
        };
        let new_before = l.entries_new;
        let dir_path = l.task.path.clone();
        let depth = l.task.depth + 1;
        let id = l.id;
        let mut path = std::mem::take(&mut self.scratch_path);
        let mut entries = KeyedAhead::new(list.entries(), |e| entry_key(e.name, e.attrs.fileid));
        let prefetch = |tasks: &Slab<Listing4>, k| {
            if let Some(l) = tasks.get(task) {
                l.seen.prefetch(k)
            }
        };
        while let Some((e, key)) = entries.next_with(|k| prefetch(&self.tasks, k)) {
            self.on_entry(task, id, &dir_path, depth, &e, key, &mut path, sink);
        }
        self.scratch_path = path;
        self.tasks
            .get(task)
            .map_or(0, |l| l.entries_new - new_before)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_entry<S: WalkSink>(
        &mut self,
        task: usize,
        id: TaskId,
        dir_path: &[u8],
        depth: u32,
        e: &Entry4<'_>,
        key: u64,
        path: &mut Vec<u8>,
        sink: &mut S,
    ) {
        let name = e.name;
        let bad = if name.is_empty() {
            Some("empty name")
        } else if name.len() > LISTED_NAME_BYTES_MAX {
            Some("name longer than 1024 bytes")
        } else if name.contains(&b'/') {
            Some("name contains '/'")
        } else if name.contains(&0) {
            Some("name contains NUL")
        } else if name == b"." || name == b".." {
            Some("'.' or '..' in a v4 listing")
        } else {
            None
        };
        if let Some(why) = bad {
            self.stats.hostile_names += 1;
            let shown = &name[..name.len().min(64)];
            return self.report(
                PathError {
                    path: join_path(dir_path, shown),
                    op: "readdir",
                    message: format!("server sent an invalid entry name ({why}); skipped"),
                    status: None,
                },
                sink,
            );
        }
        let a = &e.attrs;
        let Some(l) = self.tasks.get_mut(task) else {
            return;
        };
        if !l.seen.insert(key) {
            self.stats.duplicates_skipped += 1;
            return;
        }
        l.entries_new += 1;
        if self.cfg.max_depth.is_some_and(|m| depth > m) {
            return;
        }
        path.clear();
        if dir_path != b"." {
            path.extend_from_slice(dir_path);
            path.push(b'/');
        }
        path.extend_from_slice(name);
        if self.cfg.excludes.excludes(name, path) {
            return;
        }
        if a.is_referral() {
            return self.report(
                PathError {
                    path: path.clone(),
                    op: "readdir",
                    message: format!("referral to {}: not followed", a.fs_locations.describe()),
                    status: None,
                },
                sink,
            );
        }
        if let Some(status) = a.rdattr_error.filter(|&s| s != Nfsstat4::Ok) {
            return self.report(
                PathError {
                    path: path.clone(),
                    op: "readdir",
                    message: format!("attributes unreadable: {status}"),
                    status: v3_status(status),
                },
                sink,
            );
        }
        let need = AttrMask::of(&[
            crate::rpc::nfs4::fattr4::TYPE,
            crate::rpc::nfs4::fattr4::FILEID,
        ]);
        if a.mask.and(need) != need {
            return self.report(
                PathError {
                    path: path.clone(),
                    op: "readdir",
                    message: "server sent no type or fileid for this entry; skipped".into(),
                    status: None,
                },
                sink,
            );
        }
        let idmap = &self.setup.idmap;
        let ((uid, owner), (gid, group)) = (idmap.resolve(a.owner), idmap.resolve(a.owner_group));
        let attrs = a.to_entry_attrs(uid, gid);
        if S::WANTS_OBJECTS {
            // A bench's sample: the object and where it was listed.
            if let Some(dir) = self.tasks.get(task).map(|l| l.task.fh) {
                let fh = FileHandle::from_bytes(a.filehandle);
                sink.object(&ObjectRef {
                    dir: &dir,
                    name,
                    fh: fh.as_ref(),
                    kind: attrs.kind,
                    size: attrs.size,
                });
            }
        }
        // With --dirs-only a link is never written, so its target is not worth a call; a
        // link without a handle is written without a target.
        if self.cfg.readlink
            && !self.cfg.dirs_only
            && a.ftype == FileType4::Lnk
            && !a.filehandle.is_empty()
        {
            if let Some(l) = self.tasks.get_mut(task) {
                l.links += 1;
            }
            self.calls.push_back(Queued::new(Op4::Readlink {
                link: Box::new(PendingLink {
                    task,
                    id,
                    path: path.clone(),
                    attrs,
                    depth,
                    owner: owner.map(<[u8]>::to_vec),
                    group: group.map(<[u8]>::to_vec),
                    fh: a.filehandle.to_vec(),
                }),
                slot: None,
            }));
        } else if !(self.cfg.dirs_only && attrs.kind != EntryType::Dir) {
            self.emit(path, &attrs, depth, None, owner, group, sink);
        }
        if a.ftype != FileType4::Dir || self.cfg.max_depth.is_some_and(|m| depth >= m) {
            return;
        }
        if self.cfg.one_fs.is_some_and(|fsid| fsid != attrs.fsid) {
            return;
        }
        if depth >= DEPTH_HARD_MAX {
            return self.report(
                PathError {
                    path: path.clone(),
                    op: "walk",
                    message: format!("deeper than {DEPTH_HARD_MAX} levels; not descended"),
                    status: None,
                },
                sink,
            );
        }
        let Some(fh) = FileHandle::from_bytes(a.filehandle).filter(|f| !f.is_empty()) else {
            return self.report(
                PathError {
                    path: path.clone(),
                    op: "readdir",
                    message: format!(
                        "directory handle missing or longer than {} bytes ({} bytes); not descended",
                        crate::rpc::nfs3::FH_BYTES_MAX,
                        a.filehandle.len()
                    ),
                    status: None,
                },
                sink,
            );
        };
        if !self
            .visited
            .insert_dir(attrs.fsid, attrs.fileid, fh.as_bytes())
        {
            return;
        }
        sink.spawn(
            id,
            Task::Dir(DirTask {
                fh,
                path: path.clone(),
                depth,
                fsid: attrs.fsid,
            }),
        );
    }
}

/// The v3 status of the same meaning, for error records (which carry v3 statuses).
fn v3_status(s: Nfsstat4) -> Option<Nfsstat3> {
    let v = s.as_u32();
    // Codes below 10000 and the shared 1000x range mean the same in both versions.
    (v < 10_000 || (10_001..=10_008).contains(&v)).then(|| Nfsstat3::from_u32(v))
}

/// Encodes the COMPOUND `op` stands for with `xid` into `buf`; returns the procedure.
#[allow(clippy::too_many_arguments)]
fn encode_op4(
    cfg: &WalkConfig,
    setup: &Walk4Setup,
    tasks: &mut Slab<Listing4>,
    session: &Session,
    owner_suffix: Option<usize>,
    op: &mut Op4,
    xid: u32,
    buf: &mut Vec<u8>,
) -> u32 {
    let cred = &cfg.cred_xdr;
    let mut owner = setup.owner.clone();
    match op {
        Op4::ExchangeId => {
            if let Some(thread) = owner_suffix {
                owner.extend_from_slice(format!("/t{thread}").as_bytes());
            }
            let ops = [ArgOp::ExchangeId(ExchangeIdArgs {
                verifier: setup.verifier,
                ownerid: &owner,
                flags: EXCHGID4_FLAG_USE_NON_PNFS,
                impl_id: None,
            })];
            encode_compound_call(buf, xid, cred, TAG, MINOR_VERSION_1, &ops);
        }
        Op4::CreateSession => {
            let Session::ClientOnly { clientid, sequence } = *session else {
                unreachable!("CREATE_SESSION is queued only without a session")
            };
            let response = cfg.maxcount.saturating_add(64 << 10);
            let ops = [ArgOp::CreateSession(CreateSessionArgs {
                clientid,
                sequence,
                flags: 0,
                fore: ChannelAttrs {
                    headerpadsize: 0,
                    maxrequestsize: 64 << 10,
                    maxresponsesize: response,
                    maxresponsesize_cached: 4096,
                    maxoperations: 8,
                    maxrequests: THREAD_SLOTS_WANTED,
                    rdma_ird: None,
                },
                back: ChannelAttrs {
                    maxrequestsize: 4096,
                    maxresponsesize: 4096,
                    maxoperations: 2,
                    maxrequests: 1,
                    ..Default::default()
                },
                cb_program: 0x4000_0000,
            })];
            encode_compound_call(buf, xid, cred, TAG, MINOR_VERSION_1, &ops);
        }
        Op4::List { task, slot } => {
            let (Session::Ready(s), Some(claim)) = (session, slot.as_ref()) else {
                unreachable!("listings are sent with a session and a slot")
            };
            let l = tasks.get_mut(*task).expect("checked in poll_transmit");
            l.calls += 1;
            let maxcount = if l.cookie == 0 {
                cfg.maxcount.min(FIRST_MAXCOUNT_BYTES)
            } else {
                cfg.maxcount.min(V4_PAGE_BYTES_MAX)
            }
            .min(s.max_response.saturating_sub(4096).max(4096));
            let ops = [
                sequence(s, claim),
                ArgOp::PutFh(l.task.fh.as_bytes()),
                ArgOp::Readdir(ReaddirArgs4 {
                    cookie: l.cookie,
                    cookieverf: l.verf,
                    dircount: cfg.dircount.min(maxcount),
                    maxcount,
                    attr_request: AttrMask::RECORD,
                }),
            ];
            encode_compound_call(buf, xid, cred, TAG, MINOR_VERSION_1, &ops);
        }
        Op4::Renew { slot } => {
            let (Session::Ready(s), Some(claim)) = (session, slot.as_ref()) else {
                unreachable!("renewals are sent with a session and a slot")
            };
            encode_compound_call(buf, xid, cred, TAG, MINOR_VERSION_1, &[sequence(s, claim)]);
        }
        Op4::Bind(id) => {
            let ops = [ArgOp::BindConnToSession(BindConn {
                sessionid: *id,
                dir: CDFC4_FORE,
                use_rdma: false,
            })];
            encode_compound_call(buf, xid, cred, TAG, MINOR_VERSION_1, &ops);
        }
        Op4::Readlink { link, slot } => {
            let (Session::Ready(s), Some(claim)) = (session, slot.as_ref()) else {
                unreachable!("READLINKs are sent with a session and a slot")
            };
            let ops = [sequence(s, claim), ArgOp::PutFh(&link.fh), ArgOp::Readlink];
            encode_compound_call(buf, xid, cred, TAG, MINOR_VERSION_1, &ops);
        }
    }
    crate::rpc::nfs4::NFSPROC4_COMPOUND
}

/// The procedure a call counts under in the scan's statistics.
fn stats_proc(op: &Op4) -> usize {
    match op {
        Op4::Readlink { .. } => proc3::READLINK as usize,
        _ => proc3::READDIR as usize,
    }
}

fn sequence(s: &Slots, claim: &SlotClaim) -> ArgOp<'static> {
    ArgOp::Sequence(SequenceArgs {
        sessionid: s.id,
        sequenceid: claim.seq,
        slotid: claim.slot,
        highest_slotid: s.seq.len() as u32 - 1,
        cachethis: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::msg::ReceivedCall;
    use crate::rpc::nfs4::{
        fattr4, CompoundArgs, CompoundReplyEncoder, CreateSessionOk, ExchangeIdOk, Fattr4, Fsid4,
        SequenceOk,
    };

    #[derive(Default)]
    struct Collect {
        paths: Vec<Vec<u8>>,
        spawned: Vec<Vec<u8>>,
        done: Vec<TaskId>,
        errors: Vec<PathError>,
    }

    impl WalkSink for Collect {
        fn entry(&mut self, e: &EntryRef<'_>) {
            self.paths.push(e.path.to_vec());
        }
        fn spawn(&mut self, _parent: TaskId, task: Task) {
            if let Task::Dir(d) = task {
                self.spawned.push(d.path);
            }
        }
        fn task_done(&mut self, id: TaskId, _lookups: bool) {
            self.done.push(id);
        }
        fn error(&mut self, err: PathError) {
            self.errors.push(err);
        }
    }

    /// Sends what the walker wants sent; returns (xid, first op of the COMPOUND, its ops).
    fn sent(w: &mut Walker4, now: Instant) -> Vec<(u32, Vec<u32>, Option<SequenceArgs>)> {
        let mut bufs = vec![Vec::new()];
        w.poll_transmit(now, &mut bufs);
        let mut out = Vec::new();
        let mut b = &bufs[0][..];
        while b.len() >= 4 {
            let len = (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff) as usize;
            let call = ReceivedCall::decode(&b[4..4 + len]).unwrap();
            let mut args = CompoundArgs::decode(call.args).unwrap();
            let mut ops = Vec::new();
            let mut seq = None;
            while let Some(op) = args.next_op() {
                let op = op.unwrap();
                if let ArgOp::Sequence(s) = op {
                    seq = Some(s);
                }
                ops.push(op.opnum());
            }
            out.push((call.xid, ops, seq));
            b = &b[4 + len..];
        }
        out
    }

    fn reply(build: impl FnOnce(&mut CompoundReplyEncoder, &mut Vec<u8>)) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut enc = CompoundReplyEncoder::begin(&mut buf, TAG);
        build(&mut enc, &mut buf);
        enc.finish(&mut buf);
        buf
    }

    fn seq_ok(s: &SequenceArgs) -> ResOk<'static> {
        ResOk::Sequence(SequenceOk {
            sessionid: s.sessionid,
            sequenceid: s.sequenceid,
            slotid: s.slotid,
            highest_slotid: 7,
            target_highest_slotid: 7,
            status_flags: 0,
        })
    }

    fn session_reply(id: u8) -> Vec<u8> {
        reply(|e, b| {
            e.ok(
                b,
                op4::CREATE_SESSION,
                &ResOk::CreateSession(CreateSessionOk {
                    sessionid: SessionId([id; 16]),
                    sequence: 1,
                    flags: 0,
                    fore: ChannelAttrs {
                        maxrequests: 8,
                        maxresponsesize: 1 << 20,
                        ..Default::default()
                    },
                    back: ChannelAttrs::default(),
                }),
            )
        })
    }

    #[test]
    fn sets_up_a_session_recovers_a_lost_one_and_lists_a_page() {
        let setup = Arc::new(Walk4Setup {
            owner: b"test".to_vec(),
            verifier: [1; 8],
            idmap: Arc::new(IdMap::default()),
            shared: None,
            reads: false,
        });
        let mut w = Walker4::new(
            Arc::new(WalkConfig::default()),
            setup,
            Arc::new(VisitedDirs::default()),
            1,
            0,
            1,
        );
        let mut sink = Collect::default();
        let now = Instant::now();
        w.on_conn_up(0);
        w.add_task(
            TaskId(1),
            Task::Dir(DirTask {
                fh: FileHandle::from_bytes(b"root").unwrap(),
                path: b".".to_vec(),
                depth: 0,
                fsid: 0,
            }),
            &mut sink,
        );
        // EXCHANGE_ID first, alone: nothing else goes out without a session.
        let calls = sent(&mut w, now);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].1, [op4::EXCHANGE_ID]);
        let x = reply(|e, b| {
            e.ok(
                b,
                op4::EXCHANGE_ID,
                &ResOk::ExchangeId(ExchangeIdOk {
                    clientid: 9,
                    sequenceid: 1,
                    flags: 0,
                    state_protect: 0,
                    server_minor_id: 0,
                    server_major_id: b"s",
                    server_scope: b"s",
                    impl_id: None,
                }),
            )
        });
        w.on_reply(calls[0].0, Ok(&x), now, &mut sink);
        let calls = sent(&mut w, now);
        assert_eq!(calls[0].1, [op4::CREATE_SESSION]);
        w.on_reply(calls[0].0, Ok(&session_reply(1)), now, &mut sink);
        // The connection is bound first, then the listing: SEQUENCE (slot 0, sequence 1),
        // PUTFH, READDIR.
        let mut calls = sent(&mut w, now);
        assert_eq!(calls[0].1, [op4::BIND_CONN_TO_SESSION]);
        let bind = |w: &mut Walker4, xid: u32, id: u8, sink: &mut Collect| {
            let ok = reply(|e, b| {
                e.ok(
                    b,
                    op4::BIND_CONN_TO_SESSION,
                    &ResOk::BindConnToSession(BindConn {
                        sessionid: SessionId([id; 16]),
                        dir: CDFC4_FORE,
                        use_rdma: false,
                    }),
                )
            });
            w.on_reply(xid, Ok(&ok), now, sink);
        };
        bind(&mut w, calls.remove(0).0, 1, &mut sink);
        assert_eq!(calls[0].1, [op4::SEQUENCE, op4::PUTFH, op4::READDIR]);
        let s = calls[0].2.unwrap();
        assert_eq!((s.sequenceid, s.sessionid), (1, SessionId([1; 16])));
        // The session is gone: a new one is made on the same client ID, then the call resent.
        let bad = reply(|e, b| e.fail(b, op4::SEQUENCE, Nfsstat4::Badsession));
        w.on_reply(calls[0].0, Ok(&bad), now, &mut sink);
        let calls = sent(&mut w, now);
        assert_eq!(calls[0].1, [op4::CREATE_SESSION]);
        w.on_reply(calls[0].0, Ok(&session_reply(2)), now, &mut sink);
        let calls = sent(&mut w, now);
        assert_eq!(
            calls[0].1,
            [op4::BIND_CONN_TO_SESSION],
            "bound to the new session"
        );
        bind(&mut w, calls[0].0, 2, &mut sink);
        let s = calls[1].2.unwrap();
        assert_eq!((s.sequenceid, s.sessionid), (1, SessionId([2; 16])));
        // A page: a file and a directory, eof.
        let page = reply(|e, b| {
            e.ok(b, op4::SEQUENCE, &seq_ok(&s));
            e.ok(b, op4::PUTFH, &ResOk::Empty);
            let mut rd = e.readdir(b, [3; 8], 0, 1 << 20);
            for (i, (name, ftype)) in [(&b"f"[..], FileType4::Reg), (b"d", FileType4::Dir)]
                .into_iter()
                .enumerate()
            {
                let a = Fattr4 {
                    mask: AttrMask::RECORD.without(AttrMask::of(&[fattr4::FS_LOCATIONS])),
                    ftype,
                    fileid: 10 + i as u64,
                    fsid: Fsid4::default(),
                    owner: b"1000",
                    owner_group: b"1000",
                    filehandle: b"handle",
                    rdattr_error: Some(Nfsstat4::Ok),
                    ..Default::default()
                };
                assert!(rd.push(b, 5 + i as u64, name, &a));
            }
            e.finish_readdir(b, rd, true);
        });
        w.on_reply(calls[1].0, Ok(&page), now, &mut sink);
        assert_eq!(sink.paths, [b"f".to_vec(), b"d".to_vec()]);
        assert_eq!(sink.spawned, [b"d".to_vec()]);
        assert_eq!(sink.done, [TaskId(1)]);
        assert!(sink.errors.is_empty());
        assert!(w.is_idle());
    }

    fn dir_task(name: &[u8]) -> Task {
        Task::Dir(DirTask {
            fh: FileHandle::from_bytes(name).unwrap(),
            path: name.to_vec(),
            depth: 1,
            fsid: 0,
        })
    }

    /// Two threads on one shared session use disjoint slots; when it is lost, the first to
    /// see it re-creates it on the shared client ID while the other waits, then both go on
    /// with the new session on their own slots, each connection bound to it first.
    #[test]
    fn threads_share_one_session_and_one_of_them_re_creates_it() {
        let setup = Arc::new(Walk4Setup {
            owner: b"test".to_vec(),
            verifier: [1; 8],
            idmap: Arc::new(IdMap::default()),
            shared: Some(Shared4::new(9, 4, SessionId([1; 16]), 5, 1 << 20)),
            reads: false,
        });
        let mut walkers: Vec<Walker4> = (0..2)
            .map(|t| {
                Walker4::new(
                    Arc::new(WalkConfig::default()),
                    setup.clone(),
                    Arc::new(VisitedDirs::default()),
                    1,
                    t,
                    2,
                )
            })
            .collect();
        let mut sink = Collect::default();
        let now = Instant::now();
        let mut listings = Vec::new();
        for (t, w) in walkers.iter_mut().enumerate() {
            w.on_conn_up(0);
            w.add_task(TaskId(t as u64), dir_task(b"d"), &mut sink);
            let calls = sent(w, now);
            // No EXCHANGE_ID or CREATE_SESSION: the session is there; the binding goes first.
            assert_eq!(calls.len(), 2, "thread {t}");
            assert_eq!(calls[0].1, [op4::BIND_CONN_TO_SESSION]);
            let s = calls[1].2.unwrap();
            assert_eq!(s.sessionid, SessionId([1; 16]));
            // slot 0 is the cold path's; 1..3 thread 0's, 3..5 thread 1's
            assert!(
                (1 + 2 * t as u32..3 + 2 * t as u32).contains(&s.slotid),
                "{s:?}"
            );
            listings.push(calls[1].0);
        }
        let bad = reply(|e, b| e.fail(b, op4::SEQUENCE, Nfsstat4::Badsession));
        walkers[0].on_reply(listings[0], Ok(&bad), now, &mut sink);
        walkers[1].on_reply(listings[1], Ok(&bad), now, &mut sink);
        // Thread 0 re-creates it with the shared client ID's next sequence; thread 1 waits.
        let calls = sent(&mut walkers[0], now);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].1, [op4::CREATE_SESSION]);
        assert!(sent(&mut walkers[1], now).is_empty());
        assert!(walkers[1]
            .poll_timeout(now)
            .is_some_and(|t| t <= now + SHARED_SESSION_POLL));
        walkers[0].on_reply(calls[0].0, Ok(&session_reply(2)), now, &mut sink);
        // Thread 1's timer is "2 ms from now" whenever asked, so the drive loop never finds it
        // due: its next turn alone must take the new session (it once waited forever).
        assert!(walkers[1].poll_timeout(now).is_some_and(|t| t > now));
        for (t, w) in walkers.iter_mut().enumerate() {
            let calls = sent(w, now);
            assert_eq!(calls[0].1, [op4::BIND_CONN_TO_SESSION], "thread {t}");
            let s = calls[1].2.unwrap();
            assert_eq!(s.sessionid, SessionId([2; 16]), "thread {t}");
            // the new session's 8 slots: 1..4 and 4..8
            assert!([1..4, 4..8][t].contains(&s.slotid), "{s:?}");
        }
        assert_eq!(
            setup.shared.as_ref().unwrap().current(),
            Some((9, SessionId([2; 16])))
        );
        assert!(sink.errors.is_empty());
    }
}
