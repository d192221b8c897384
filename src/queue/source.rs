//! A host's side of a shared queue: a thread that talks to Redis and a local buffer the
//! scanning threads take tasks from, so they never wait on Redis per directory.
//!
//! The scanning side calls [`QueueSource::take`] for work and [`QueueSource::finished`] with
//! each listed task's children; the output's checkpoint calls [`QueueSource::durable`] with the
//! tasks whose entries it has made durable, and only then are those tasks acknowledged. The queue thread batches everything: claims of up to
//! [`QueueOptions::batch`] tasks (XREADGROUP, then XAUTOCLAIM of stopped hosts' tasks), one
//! pipelined round trip for all tasks finished since the last one, one script for all
//! acknowledgements.
//!
//! When Redis cannot be reached, the thread keeps everything it holds (tasks buffered, being
//! listed, finished but not yet recorded, recorded but not yet acknowledged), says so on stderr,
//! and retries with a growing pause until Redis answers again; the scripts are safe to repeat.

use super::redis::{
    is_connection_error, ClaimedTask, FinishRecord, Joined, RedisQueue, ScanIdentity,
};
use super::{decide, DirTask, LocalWork, Next, QueueError, QueueUrl, TaskId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The default of `--claim-idle`.
pub const CLAIM_IDLE_DEFAULT: Duration = Duration::from_secs(60);
/// Tasks claimed per round trip: enough that Redis is asked once per many directories, few
/// enough that a host does not hoard work others could do (a buffer is at most one batch).
pub const BATCH_DEFAULT: usize = 64;
/// How often a host with directories to spare asks Redis how many tasks wait there: often
/// enough that an idle host waits for work a few milliseconds, rarely enough that a lone host
/// spends well under 1% of its time asking.
const OFFER_POLL_EVERY: Duration = Duration::from_millis(5);
/// The stock of offered tasks waiting in Redis grows to this many batches at most (16 × 64
/// tasks of ~200 bytes: 200 KiB of Redis memory per offering host).
const OFFER_STOCK_BATCHES_MAX: usize = 16;
/// The offered stock halves only after this many polls in a row found all of it still waiting
/// (40 ms): hosts claim in batches, each every few milliseconds, so one poll between their
/// claims says nothing about demand.
const STOCK_UNTOUCHED_POLLS_MAX: u32 = 8;
/// A host without work of its own asks Redis for tasks this often at least.
const HUNGRY_POLL_MAX: Duration = Duration::from_millis(2);

/// A host offers directories while it has at least [`OFFER_FROM`] not yet started, half of
/// them at most (it goes on with the other half), and claims tasks from Redis only when it has
/// fewer than [`CLAIM_BELOW`] and nothing buffered: a host holding a subtree works on it
/// rather than on the queue's tasks, so Redis sees a directory only when it moves between
/// hosts.
pub const OFFER_FROM: usize = 4;
pub const CLAIM_BELOW: usize = 2;

/// A host short of directories of its own tops its buffer of claimed tasks up to a batch once it
/// holds this many or fewer, so its threads never wait for a claim's round trip.
fn refill_at(batch: usize) -> usize {
    batch / 2
}

/// Directories in one offer record at most: a script call adds them all while Redis serves no
/// one else (1,024 XADDs: about a millisecond).
const OFFER_RECORD_DIRS_MAX: usize = 1024;

/// The default of [`QueueOptions::subtree_hold`]: long enough that giving a subtree's rest back
/// to the queue (a round trip per directory not yet started) is rare, short enough that a dead
/// host's lost work is minutes at most with the default `--claim-idle`.
pub const SUBTREE_HOLD_DEFAULT: Duration = Duration::from_secs(30);

/// Tasks recorded as listed and not yet durable after which a host asks its output for a
/// checkpoint before its interval (`--checkpoint-secs`) is up. Each is an entry pending in
/// Redis (memory), work another host lists again should this one die, and an acknowledgement
/// the end of the scan waits for: with thousands of small directories a second, an interval's
/// worth made the last checkpoint and its acknowledgements a tenth of a short scan. Hosts
/// holding large subtrees (few tasks) keep their interval.
pub const AWAITING_TASKS_MAX: usize = 4096;
/// Pause after a round that moved work, unless woken: finished tasks and acknowledgements
/// gather meanwhile and go to Redis together.
const ROUND_GAP: Duration = Duration::from_millis(2);
/// Longest pause between polls of an idle host, and between reconnect attempts.
const POLL_PAUSE_MAX: Duration = Duration::from_millis(50);
const RECONNECT_PAUSE_MAX: Duration = Duration::from_secs(2);
/// While Redis is unreachable, the message is repeated this often.
const OUTAGE_REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Tasks pending longer than this on a consumer are taken over.
    pub claim_idle: Duration,
    pub batch: usize,
    /// A claimed task (a subtree) is held at most about this long: then the directories of it
    /// not yet started go back to the queue, and the task is acknowledged once what was started
    /// is durable. A host that dies therefore loses about this much work, not its subtrees.
    pub subtree_hold: Duration,
    /// Tasks recorded as listed and not yet durable after which the host asks for a
    /// checkpoint ([`AWAITING_TASKS_MAX`]).
    pub awaiting_tasks_max: usize,
    /// Print progress and outage messages on stderr.
    pub verbose: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            claim_idle: CLAIM_IDLE_DEFAULT,
            batch: BATCH_DEFAULT,
            subtree_hold: SUBTREE_HOLD_DEFAULT,
            awaiting_tasks_max: AWAITING_TASKS_MAX,
            verbose: true,
        }
    }
}

/// Where the queue stands, as the scanning side sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    Working,
    /// Nothing queued or pending anywhere: the scan is complete.
    Done,
    /// The queue cannot go on (refused, vanished, malformed); the message says why.
    Failed(String),
}

/// This host's share of the scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostShare {
    /// Tasks acknowledged by this host.
    pub tasks_done: u64,
    /// Entries of the tasks this host recorded first.
    pub entries: u64,
    /// Tasks taken over from stopped hosts.
    pub tasks_claimed_over: u64,
    /// Tasks this host listed but another host took over first (their entries are duplicates
    /// that `merge` removes).
    pub tasks_lost: u64,
}

#[derive(Default)]
struct Inner {
    ready: VecDeque<ClaimedTask>,
    running: HashSet<TaskId>,
    /// Listed tasks and offers, in the order they happened (a task's offers before its
    /// listing), waiting to be recorded in Redis.
    finishing: Vec<FinishRecord>,
    /// Recorded in Redis, waiting for durability.
    awaiting: HashSet<TaskId>,
    /// Reported durable by the output (possibly before they were recorded).
    durable: HashSet<TaskId>,
    /// When each held task was claimed or last touched: only tasks held for a while need
    /// touching (most are acknowledged long before they could look idle).
    touched: HashMap<TaskId, Instant>,
    wants_checkpoint: bool,
    state: Option<SourceState>,
    share: HostShare,
}

impl Inner {
    fn local(&self) -> LocalWork {
        LocalWork {
            buffered: self.ready.len(),
            running: self.running.len(),
            finishing: self.finishing.iter().filter(|f| f.listed).count(),
            awaiting_durable: self.awaiting.len(),
        }
    }

    /// Whether this host holds task `id` (without listing what it holds: thousands of tasks
    /// may await their acknowledgement).
    fn holds(&self, id: TaskId) -> bool {
        self.running.contains(&id)
            || self.awaiting.contains(&id)
            || self.ready.iter().any(|t| t.id == id)
            || self.finishing.iter().any(|f| f.listed && f.id == id)
    }

    fn held_ids(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self.ready.iter().map(|t| t.id).collect();
        ids.extend(self.running.iter().copied());
        ids.extend(self.finishing.iter().filter(|f| f.listed).map(|f| f.id));
        ids.extend(self.awaiting.iter().copied());
        ids
    }
}

struct Shared {
    inner: Mutex<Inner>,
    /// Entries this host wrote (duplicates of taken-over tasks included), published to Redis
    /// for `queue status`.
    written: Arc<AtomicU64>,
    /// Wakes the queue thread (work finished, durability, stop).
    wake: Condvar,
    /// Wakes scanning threads waiting for tasks.
    work: Condvar,
    stop: AtomicBool,
    /// Directories found on this host and not yet started (kept in the scanning side's local
    /// deques): a host claims tasks from Redis only when it runs short of its own.
    local_backlog: AtomicUsize,
    /// How many directories other hosts could use now: the queue thread sets it from the
    /// number of tasks waiting in Redis, the scanning side counts it down as it offers.
    offers_wanted: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A host's connection to a shared queue (see the module documentation).
pub struct QueueSource {
    shared: Arc<Shared>,
    batch: usize,
    subtree_hold: Duration,
    awaiting_tasks_max: usize,
    thread: Option<JoinHandle<()>>,
    joined: Joined,
}

impl QueueSource {
    /// Connects, creates or joins the queue (refusing one of another scan) and starts the
    /// queue thread. Errors here are the user's to fix (address, password, another scan's
    /// queue), so they are not retried.
    pub fn start(
        url: &QueueUrl,
        consumer: &str,
        scan: &ScanIdentity,
        root: &DirTask,
        opts: QueueOptions,
    ) -> Result<QueueSource, QueueError> {
        let mut q = RedisQueue::connect(url, consumer)?;
        let joined = q.join(scan, root)?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            written: Arc::new(AtomicU64::new(0)),
            wake: Condvar::new(),
            work: Condvar::new(),
            stop: AtomicBool::new(false),
            local_backlog: AtomicUsize::new(0),
            offers_wanted: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let subtree_hold = opts.subtree_hold;
        let awaiting_tasks_max = opts.awaiting_tasks_max;
        let batch = opts.batch;
        let thread = std::thread::Builder::new()
            .name("nfs-walker-queue".into())
            .spawn(move || QueueThread::new(q, s, opts).run())
            .map_err(|_| QueueError::BadReply("cannot start the queue thread"))?;
        Ok(QueueSource {
            shared,
            batch,
            subtree_hold,
            awaiting_tasks_max,
            thread: Some(thread),
            joined,
        })
    }

    pub fn joined(&self) -> Joined {
        self.joined
    }

    /// A task to list, from the local buffer; None if the buffer is empty right now.
    pub fn take(&self) -> Option<ClaimedTask> {
        let mut g = self.shared.lock();
        let t = g.ready.pop_front()?;
        g.running.insert(t.id);
        if g.ready.len() == refill_at(self.batch) {
            self.shared.wake.notify_one();
        }
        Some(t)
    }

    /// Waits up to `timeout` for a task (or for the end).
    pub fn take_wait(&self, timeout: Duration) -> Option<ClaimedTask> {
        let mut g = self.shared.lock();
        if g.ready.is_empty() && g.state.is_none() {
            g = self
                .shared
                .work
                .wait_timeout(g, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let t = g.ready.pop_front()?;
        g.running.insert(t.id);
        Some(t)
    }

    /// A task was listed: its child directories and how many entries it wrote. Its
    /// entries must already be on their way to the output.
    pub fn finished(&self, id: TaskId, children: Vec<DirTask>, entries: u64) {
        let mut g = self.shared.lock();
        g.running.remove(&id);
        g.finishing.push(FinishRecord {
            id,
            children,
            entries,
            listed: true,
        });
        // No wake-up: the queue thread records finished tasks on its next round, a few
        // milliseconds away at most, in one batch (a wake-up per task cost Redis a script
        // call per task, and the scanning threads the CPU the queue thread took).
    }

    /// Hands `dirs`, directories of the subtree of `id` (a task this host is listing), to
    /// other hosts: they are added to the queue before `id`'s own listing is recorded, so
    /// every directory found stays in the queue, or in the subtree of a task pending in it,
    /// until it is durable.
    pub fn offer(&self, id: TaskId, dirs: Vec<DirTask>) {
        if dirs.is_empty() {
            return;
        }
        let mut g = self.shared.lock();
        // Directories offered one by one (found by a closing task's running parts) go in one
        // record, and many (a subtree given back) in several: one script call adds a record's
        // directories while Redis serves no one else.
        let mut dirs = dirs.into_iter().peekable();
        if let Some(last) = g.finishing.last_mut() {
            if !last.listed && last.id == id {
                let room = OFFER_RECORD_DIRS_MAX.saturating_sub(last.children.len());
                last.children.extend(dirs.by_ref().take(room));
            }
        }
        while dirs.peek().is_some() {
            g.finishing.push(FinishRecord {
                id,
                children: dirs.by_ref().take(OFFER_RECORD_DIRS_MAX).collect(),
                entries: 0,
                listed: false,
            });
        }
        drop(g);
        self.shared.wake.notify_one();
    }

    /// How many directories other hosts could use now; takes up to `most` of them (the caller
    /// then offers that many).
    pub fn take_offers_wanted(&self, most: usize) -> usize {
        let mut took = 0;
        let _ = self
            .shared
            .offers_wanted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                took = w.min(most);
                Some(w - took)
            });
        took
    }

    /// Whether other hosts could use directories now (cheap; checked per task taken).
    pub fn offers_wanted(&self) -> bool {
        self.shared.offers_wanted.load(Ordering::Relaxed) > 0
    }

    /// How long a claimed subtree is held at most ([`QueueOptions::subtree_hold`]).
    pub fn subtree_hold(&self) -> Duration {
        self.subtree_hold
    }

    /// Wakes the queue thread (the scanning side ran short of directories).
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// The count of directories this host found and has not started yet (kept by the
    /// scanning side, read by the queue thread to decide when to claim).
    pub fn local_backlog(&self) -> &AtomicUsize {
        &self.shared.local_backlog
    }

    /// These finished tasks have their entries durably in the output: acknowledge them.
    pub fn durable(&self, ids: &[TaskId]) {
        let mut g = self.shared.lock();
        g.durable.extend(ids.iter().copied());
        // Urgent only when this host has nothing else: the scan may be ending on it.
        let urgent = std::mem::take(&mut g.wants_checkpoint);
        drop(g);
        if urgent {
            self.shared.wake.notify_one();
        }
    }

    /// True when this host has nothing left to list but finished tasks wait for durability
    /// (the scan cannot end until they are acknowledged), or when [`AWAITING_TASKS_MAX`]
    /// tasks wait (see [`QueueOptions::awaiting_tasks_max`]): checkpoint now.
    pub fn wants_checkpoint(&self) -> bool {
        let g = self.shared.lock();
        g.wants_checkpoint || g.awaiting.len() >= self.awaiting_tasks_max
    }

    /// The counter of entries written that the scanning side adds to.
    pub fn written_counter(&self) -> Arc<AtomicU64> {
        self.shared.written.clone()
    }

    pub fn state(&self) -> SourceState {
        self.shared
            .lock()
            .state
            .clone()
            .unwrap_or(SourceState::Working)
    }

    pub fn local_work(&self) -> LocalWork {
        self.shared.lock().local()
    }

    pub fn share(&self) -> HostShare {
        self.shared.lock().share
    }

    /// Stops the queue thread, leaving every task not yet acknowledged pending in Redis (a
    /// host restarted with the same consumer name takes them back; others take them over
    /// after `--claim-idle`). Returns this host's share.
    pub fn stop(mut self) -> HostShare {
        self.shutdown();
        self.share()
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for QueueSource {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct QueueThread {
    q: RedisQueue,
    shared: Arc<Shared>,
    opts: QueueOptions,
    /// Paging through this consumer's own pending tasks (from an earlier run) first.
    own_pending_from: Option<String>,
    autoclaim_cursor: String,
    last_touch: Instant,
    last_waiting_poll: Instant,
    /// How many tasks this host keeps waiting in Redis while it has directories to spare.
    offer_stock: usize,
    /// Polls in a row that found the whole stock still waiting.
    stock_untouched_polls: u32,
    last_autoclaim: Option<Instant>,
}

impl QueueThread {
    fn new(q: RedisQueue, shared: Arc<Shared>, opts: QueueOptions) -> Self {
        let batch = opts.batch;
        QueueThread {
            q,
            shared,
            opts,
            own_pending_from: Some("0".into()),
            autoclaim_cursor: "0-0".into(),
            last_touch: Instant::now(),
            last_waiting_poll: Instant::now() - OFFER_POLL_EVERY,
            offer_stock: batch,
            stock_untouched_polls: 0,
            last_autoclaim: None,
        }
    }

    fn run(mut self) {
        let mut pause = Duration::from_millis(1);
        while !self.shared.stop.load(Ordering::SeqCst) {
            match self.round() {
                Ok(true) => {
                    // Work moved: go on soon, but let more gather first (a round is several
                    // Redis calls whatever it carries). An urgent wake-up (a host short of
                    // work, an offer) ends the wait.
                    pause = Duration::from_millis(1);
                    let g = self.shared.lock();
                    let _ = self.shared.wake.wait_timeout(g, ROUND_GAP);
                }
                Ok(false) => {
                    let g = self.shared.lock();
                    if matches!(g.state, Some(SourceState::Done)) {
                        break;
                    }
                    let _ = self.shared.wake.wait_timeout(g, pause);
                    pause = (pause * 2).min(POLL_PAUSE_MAX);
                    let backlog = self.shared.local_backlog.load(Ordering::Relaxed);
                    if backlog >= OFFER_FROM {
                        // Directories to spare: keep asking whether anyone wants them.
                        pause = pause.min(OFFER_POLL_EVERY);
                    } else if backlog < CLAIM_BELOW {
                        // Short of work: other hosts' offers are taken as they come.
                        pause = pause.min(HUNGRY_POLL_MAX);
                    }
                }
                Err(e) if is_connection_error(&e) => self.reconnect(&e),
                Err(e) => {
                    self.fail(e.to_string());
                    break;
                }
            }
        }
        // Stopped (a signal, or the end): what is finished and durable by now is recorded and
        // acknowledged, so no other host lists it again. Best effort: whatever fails here stays
        // pending and is taken over.
        if !matches!(self.shared.lock().state, Some(SourceState::Failed(_))) {
            let _ = self.record_finished().and_then(|_| self.ack_durable());
        }
        self.shared.work.notify_all();
    }

    fn fail(&self, message: String) {
        self.shared.lock().state = Some(SourceState::Failed(message));
        self.shared.work.notify_all();
    }

    /// Waits until Redis answers again; everything held stays held.
    fn reconnect(&mut self, first: &QueueError) {
        let since = Instant::now();
        let mut last_report: Option<Instant> = None;
        let mut pause = Duration::from_millis(100);
        let mut error = first.to_string();
        while !self.shared.stop.load(Ordering::SeqCst) {
            if self.opts.verbose && last_report.is_none_or(|t| t.elapsed() >= OUTAGE_REPORT_EVERY) {
                let held = self.shared.lock().local().held();
                eprintln!(
                    "nfs-walker: queue: {error}; retrying (for {:.0} s now), holding {held} tasks",
                    since.elapsed().as_secs_f64()
                );
                last_report = Some(Instant::now());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(RECONNECT_PAUSE_MAX);
            let url = self.q.url().clone();
            let consumer = self.q.consumer().to_string();
            match RedisQueue::connect(&url, &consumer) {
                Ok(q) => {
                    self.q = q;
                    // Redis answers LOADING while it replays its AOF: probe before going on.
                    match self.q.outstanding() {
                        Ok(_) => {
                            if self.opts.verbose {
                                eprintln!(
                                    "nfs-walker: queue: Redis at {} is back after {:.1} s",
                                    url.addr(),
                                    since.elapsed().as_secs_f64()
                                );
                            }
                            return;
                        }
                        Err(e) if is_connection_error(&e) => error = e.to_string(),
                        Err(e) => {
                            self.fail(e.to_string());
                            self.shared.stop.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
                Err(e) if is_connection_error(&e) => error = e.to_string(),
                Err(e) => {
                    self.fail(e.to_string());
                    self.shared.stop.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }

    /// One round of queue work; true if anything moved.
    fn round(&mut self) -> Result<bool, QueueError> {
        let mut moved = self.record_finished()?;
        moved |= self.ack_durable()?;
        self.touch_held()?;
        moved |= self.refill()?;
        self.poll_waiting()?;
        let held_nothing_to_list = {
            let l = self.shared.lock().local();
            l.buffered + l.running + l.finishing == 0
        };
        if held_nothing_to_list {
            let len = self.q.outstanding()?;
            let mut g = self.shared.lock();
            // Re-read: a scanning thread may have finished a task meanwhile.
            let now = g.local();
            match decide(now, len) {
                Next::Done => {
                    g.state = Some(SourceState::Done);
                    drop(g);
                    self.shared.work.notify_all();
                    return Ok(false);
                }
                Next::Checkpoint => g.wants_checkpoint = true,
                Next::Claim | Next::Work => {}
            }
        }
        Ok(moved)
    }

    /// Records every task finished (and every offer) since the last round, in one pipelined
    /// round trip.
    fn record_finished(&mut self) -> Result<bool, QueueError> {
        let batch = std::mem::take(&mut self.shared.lock().finishing);
        if batch.is_empty() {
            return Ok(false);
        }
        match self.q.finish(&batch) {
            Ok(outcomes) => {
                let mut g = self.shared.lock();
                for (f, o) in batch.iter().zip(outcomes) {
                    if !f.listed {
                        // An offer: its task's own record follows, and tells whether the task
                        // is still this host's.
                        continue;
                    }
                    if o.may_ack() {
                        if o == super::FinishOutcome::Added {
                            g.share.entries += f.entries;
                        }
                        g.awaiting.insert(f.id);
                    } else {
                        g.durable.remove(&f.id);
                        g.touched.remove(&f.id);
                        g.share.tasks_lost += 1;
                    }
                }
                Ok(true)
            }
            Err(e) => {
                // Put them back in front, in order: the script is safe to run again (an offer
                // recorded twice only lists its directories twice; `merge` keeps one copy).
                let mut g = self.shared.lock();
                let newer = std::mem::replace(&mut g.finishing, batch);
                g.finishing.extend(newer);
                Err(e)
            }
        }
    }

    fn ack_durable(&mut self) -> Result<bool, QueueError> {
        let ids: Vec<TaskId> = {
            let g = self.shared.lock();
            g.awaiting
                .iter()
                .filter(|id| g.durable.contains(id))
                .copied()
                .collect()
        };
        if ids.is_empty() {
            return Ok(false);
        }
        let n = self.q.ack(&ids)?;
        let mut g = self.shared.lock();
        for id in &ids {
            g.awaiting.remove(id);
            g.durable.remove(id);
            g.touched.remove(id);
        }
        g.share.tasks_done += n;
        Ok(true)
    }

    /// A few times per claim interval (and at least every second, for `queue status`), tells
    /// Redis this host still works on what it holds and how many entries it wrote.
    fn touch_held(&mut self) -> Result<(), QueueError> {
        if self.last_touch.elapsed() < (self.opts.claim_idle / 4).min(Duration::from_secs(1)) {
            return Ok(());
        }
        let stale = self.opts.claim_idle / 2;
        let ids: Vec<TaskId> = {
            let g = self.shared.lock();
            g.held_ids()
                .into_iter()
                .filter(|id| g.touched.get(id).is_none_or(|t| t.elapsed() >= stale))
                .collect()
        };
        let lost: HashSet<TaskId> = self.q.touch(&ids)?.into_iter().collect();
        {
            let now = Instant::now();
            let mut g = self.shared.lock();
            for id in &ids {
                if lost.contains(id) {
                    g.touched.remove(id);
                } else {
                    g.touched.insert(*id, now);
                }
            }
        }
        self.q
            .report_written(self.shared.written.load(Ordering::Relaxed))?;
        self.last_touch = Instant::now();
        if !lost.is_empty() {
            // Buffered tasks that were taken over are dropped unlisted; the others run on and
            // their finish is refused by Redis.
            let mut g = self.shared.lock();
            let before = g.ready.len();
            g.ready.retain(|t| !lost.contains(&t.id));
            g.share.tasks_lost += (before - g.ready.len()) as u64;
        }
        Ok(())
    }

    /// While this host holds more directories than it needs, finds out every
    /// [`OFFER_POLL_EVERY`] how many tasks wait in Redis for a host, and asks the scanning side
    /// to offer enough to bring that up to a batch (what an idle host claims at once).
    fn poll_waiting(&mut self) -> Result<(), QueueError> {
        let backlog = self.shared.local_backlog.load(Ordering::Relaxed);
        if backlog < OFFER_FROM {
            self.shared.offers_wanted.store(0, Ordering::Relaxed);
            return Ok(());
        }
        if self.last_waiting_poll.elapsed() < OFFER_POLL_EVERY {
            return Ok(());
        }
        self.last_waiting_poll = Instant::now();
        let waiting = self.q.waiting()? as usize;
        // The stock of waiting tasks follows demand: emptied since the last poll, other hosts
        // take more than it holds, so it doubles; left untouched, it halves, down to a batch
        // (a lone host keeps just that much in Redis, and later lists it itself).
        let most = self.opts.batch * OFFER_STOCK_BATCHES_MAX;
        if waiting == 0 {
            self.offer_stock = (self.offer_stock * 2).min(most);
            self.stock_untouched_polls = 0;
        } else if waiting >= self.offer_stock {
            self.stock_untouched_polls += 1;
            if self.stock_untouched_polls >= STOCK_UNTOUCHED_POLLS_MAX {
                self.offer_stock = (self.offer_stock / 2).max(self.opts.batch);
                self.stock_untouched_polls = 0;
            }
        } else {
            self.stock_untouched_polls = 0;
        }
        self.shared
            .offers_wanted
            .store(self.offer_stock.saturating_sub(waiting), Ordering::Relaxed);
        Ok(())
    }

    /// Tops the local buffer up to a batch, but only when this host runs short of directories
    /// of its own (a host holding a large subtree leaves the queue's tasks to idle hosts): this
    /// consumer's own pending tasks first (a restart), then new tasks, then tasks of stopped
    /// hosts.
    fn refill(&mut self) -> Result<bool, QueueError> {
        let backlog = self.shared.local_backlog.load(Ordering::Relaxed);
        let buffered = {
            let g = self.shared.lock();
            if g.ready.len() > refill_at(self.opts.batch) || backlog >= CLAIM_BELOW {
                return Ok(false);
            }
            g.ready.len()
        };
        let want = self.opts.batch - buffered;
        let mut got = Vec::new();
        if let Some(from) = self.own_pending_from.clone() {
            let mine = self.q.read(want, &from)?;
            match mine.last() {
                Some(last) => self.own_pending_from = Some(last.id.to_string()),
                None => self.own_pending_from = None,
            }
            got = mine;
        }
        if got.is_empty() && self.own_pending_from.is_none() {
            got = self.q.read(want, ">")?;
        }
        if got.is_empty() && self.own_pending_from.is_none() {
            // XAUTOCLAIM walks the whole pending list; while others are busy it finds nothing,
            // so it runs at most a few times per claim interval.
            let due = self.last_autoclaim.is_none_or(|t| {
                t.elapsed() >= (self.opts.claim_idle / 8).max(Duration::from_millis(50))
            });
            if due {
                let (claimed, next) =
                    self.q
                        .autoclaim(self.opts.claim_idle, &self.autoclaim_cursor, want)?;
                self.autoclaim_cursor = next;
                if self.autoclaim_cursor == "0-0" {
                    self.last_autoclaim = Some(Instant::now());
                }
                let mut g = self.shared.lock();
                g.share.tasks_claimed_over +=
                    claimed.iter().filter(|t| !g.holds(t.id)).count() as u64;
                drop(g);
                got = claimed;
            }
        }
        let now = Instant::now();
        let mut g = self.shared.lock();
        // A task this host holds already (its own, idle because a checkpoint is slow) is not
        // listed twice.
        got.retain(|t| !g.holds(t.id));
        if got.is_empty() {
            return Ok(false);
        }
        for t in &got {
            g.touched.insert(t.id, now);
        }
        g.ready.extend(got);
        drop(g);
        self.shared.work.notify_all();
        Ok(true)
    }
}

/// A consumer name for `output` on this host (see [`super::redis::consumer_name`]).
pub fn local_consumer_name(output: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let abs = std::path::absolute(output).unwrap_or_else(|_| output.to_path_buf());
    super::redis::consumer_name(&host, abs.as_os_str().as_bytes())
}
