//! The shared queue as the engine's [`TaskSource`].
//!
//! A task claimed from Redis is a *subtree*: this host lists the directory and, depth first on
//! its own deques, every directory below it, so Redis hears of a directory only when work
//! moves between hosts, not once per directory (the per-directory round trips and scripts
//! cost more than listing a small directory). The claimed task stays pending in Redis until
//! every directory of its subtree that this host kept is listed and durable in its output;
//! only then is it acknowledged.
//!
//! Work moves to other hosts by *offers*: while fewer tasks wait in Redis than idle hosts
//! take (a stock that follows demand, see [`super::source`]), a host with directories not yet
//! started ([`super::source::OFFER_FROM`]) adds up to half of them, the oldest (the shallowest:
//! the largest subtrees), to the stream as tasks of their own. They are recorded before their
//! claimed task's own listing, so the invariant of exact termination holds: every directory
//! found and not yet durable is a stream entry, or in the subtree of one pending to a live or
//! dead host.
//!
//! A claimed task is held at most [`super::source::QueueOptions::subtree_hold`]: then the rest
//! of its subtree goes back to the queue the same way, and the task is acknowledged once what
//! was started is durable. A host that dies loses what it did in its tasks since it claimed
//! them, a bounded time; whoever takes them over lists them again from their roots (and the
//! parts listed twice are dropped by `merge`, which keeps one copy of every path).
//!
//! A directory's lookup batches (`getattr` mode, or entries a server sent without attributes)
//! are never offered.

use super::redis::ClaimedTask;
use super::source::{QueueSource, SourceState, CLAIM_BELOW, OFFER_FROM};
use crate::sched::{LocalDeques, LocalQueue, TaskId, TaskParts, TaskQueue, TaskSource};
use crate::walker::{DirTask, Task};
use crossbeam_deque::{Injector, Steal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// A thread looks for subtrees held too long once every this many tasks it takes (the check
/// walks the held tasks: a few hundred at most).
const CLOSE_CHECK_EVERY_TAKES: u32 = 64;

/// A task claimed from the queue, as this host works on it: its local tasks are the
/// directories of its subtree kept here and all their lookup batches.
struct HeldDir {
    queue_id: super::TaskId,
    claimed_at: Instant,
    /// Held past [`QueueSource::subtree_hold`]: its directories not yet started go back to
    /// the queue, and so do those its running parts find from now on.
    closing: bool,
}

type Held = TaskParts<HeldDir>;

/// See the module documentation.
pub struct RedisTasks {
    source: QueueSource,
    held: Mutex<Held>,
    /// The directories of held subtrees not yet started. Only the deques and their stealing
    /// are used: the counts that end a task live in `held`. Their ids have a thread part
    /// (2^40 and up), so they never meet the ids of `next_id`.
    dirs: LocalDeques<DirTask>,
    lookups: Injector<(TaskId, Task)>,
    next_id: AtomicU64,
}

impl RedisTasks {
    pub fn new(source: QueueSource) -> RedisTasks {
        RedisTasks {
            source,
            held: Mutex::new(Held::default()),
            dirs: LocalDeques::new([]),
            lookups: Injector::new(),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn source(&self) -> &QueueSource {
        &self.source
    }

    pub fn into_source(self) -> QueueSource {
        self.source
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_id(&self) -> TaskId {
        TaskId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn take_claimed(&self, c: ClaimedTask) -> (TaskId, Task) {
        let id = self.new_id();
        self.held().insert(
            id,
            HeldDir {
                queue_id: c.id,
                claimed_at: Instant::now(),
                closing: false,
            },
        );
        (id, Task::Dir(c.task))
    }

    fn backlog_took(&self, n: usize) {
        let before = self.source.local_backlog().fetch_sub(n, Ordering::Relaxed);
        if before >= CLAIM_BELOW && before - n < CLAIM_BELOW {
            // Running short: the queue thread claims from Redis now rather than at its next
            // poll.
            self.source.wake();
        }
    }
}

/// One thread's access: its own deque of directories; the claimed buffer and the lookup
/// batches are shared by all threads.
pub struct RedisTaskQueue<'a> {
    tasks: &'a RedisTasks,
    dirs: LocalQueue<'a, DirTask>,
    takes: u32,
}

impl RedisTaskQueue<'_> {
    /// Hands some of this host's oldest directories to other hosts, as many as they want (see
    /// the module documentation).
    fn offer_some(&mut self) {
        let tasks = self.tasks;
        let backlog = tasks.source.local_backlog().load(Ordering::Relaxed);
        if backlog < OFFER_FROM {
            return;
        }
        let n = tasks.source.take_offers_wanted(backlog / 2);
        let mut taken = Vec::with_capacity(n);
        while taken.len() < n {
            match self.dirs.steal_oldest() {
                Some(t) => taken.push(t),
                None => break,
            }
        }
        if taken.is_empty() {
            return;
        }
        tasks.backlog_took(taken.len());
        let mut held = tasks.held();
        tasks.offer_taken(&mut held, taken);
    }

    /// Gives the subtrees held longer than [`QueueSource::subtree_hold`] back to the queue:
    /// their directories not yet started are offered now, those their running parts find
    /// later are offered as they are found, and the tasks end (and are acknowledged) once
    /// their running parts are durable.
    fn close_old(&mut self) {
        let tasks = self.tasks;
        let hold = tasks.source.subtree_hold();
        let mut held = tasks.held();
        let mut any = false;
        for r in held.records_mut() {
            if !r.closing && r.claimed_at.elapsed() >= hold {
                r.closing = true;
                any = true;
            }
        }
        if !any {
            return;
        }
        // Every queued directory comes off the deques: those of closing tasks are offered,
        // the others go back (under new ids, counted before the old ones are let go).
        let mut queued = Vec::new();
        while let Some(t) = self.dirs.steal_oldest() {
            queued.push(t);
        }
        let mut offered = Vec::new();
        for (id, d) in queued {
            if held.record_mut(id).is_none_or(|r| r.closing) {
                offered.push((id, d));
            } else {
                let new_id = self.dirs.push(d);
                held.add_local(id, new_id);
                held.finished(id);
                held.durable(id);
            }
        }
        tasks.backlog_took(offered.len());
        tasks.offer_taken(&mut held, offered);
    }
}

impl RedisTasks {
    /// Offers `taken` (queued directories of held tasks, off the deques) to other hosts. The
    /// offer reaches the queue thread before the directories count as finished, so their
    /// task's own listing, which cannot come before that, is recorded after the offer (the
    /// queue thread records both in the order they came).
    fn offer_taken(&self, held: &mut Held, taken: Vec<(TaskId, DirTask)>) {
        if taken.is_empty() {
            return;
        }
        let mut by_task: Vec<(super::TaskId, Vec<DirTask>)> = Vec::new();
        let mut ids = Vec::with_capacity(taken.len());
        for (id, d) in taken {
            // Every queued directory belongs to a held task: it was added under this lock
            // together with its part count, and a task is forgotten only once all its parts
            // are durable, which a queued directory is not.
            let Some(queue_id) = held.record_mut(id).map(|r| r.queue_id) else {
                debug_assert!(false, "a queued directory of no held task");
                continue;
            };
            let record = d;
            match by_task.iter_mut().find(|(q, _)| *q == queue_id) {
                Some((_, v)) => v.push(record),
                None => by_task.push((queue_id, vec![record])),
            }
            ids.push(id);
        }
        for (queue_id, dirs) in by_task {
            self.source.offer(queue_id, dirs);
        }
        let mut durable = Vec::new();
        for id in ids {
            // An offered directory is done here: it neither runs nor writes on this host.
            if let Some((_, r)) = held.finished(id) {
                self.source.finished(r.queue_id, Vec::new(), 0);
            }
            if let Some((_, r)) = held.durable(id) {
                durable.push(r.queue_id);
            }
        }
        if !durable.is_empty() {
            self.source.durable(&durable);
        }
    }
}

impl TaskSource for RedisTasks {
    type Task = Task;
    type Queue<'a> = RedisTaskQueue<'a>;

    fn queues(&self, threads: usize) -> Vec<RedisTaskQueue<'_>> {
        self.dirs
            .queues(threads)
            .into_iter()
            .map(|dirs| RedisTaskQueue {
                tasks: self,
                dirs,
                takes: 0,
            })
            .collect()
    }

    fn wants_durability(&self) -> bool {
        true
    }

    fn durable(&self, ids: &[TaskId]) {
        let done: Vec<super::TaskId> = {
            let mut held = self.held();
            ids.iter()
                .filter_map(|id| held.durable(*id))
                .map(|(_, d)| d.queue_id)
                .collect()
        };
        if !done.is_empty() {
            self.source.durable(&done);
        }
    }
}

impl TaskQueue for RedisTaskQueue<'_> {
    type Task = Task;

    fn take(&mut self) -> Option<(TaskId, Task)> {
        // This host's lookup batches first: their directory waits on them.
        loop {
            match self.tasks.lookups.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        self.takes += 1;
        if self.takes.is_multiple_of(CLOSE_CHECK_EVERY_TAKES) {
            self.close_old();
        }
        if self.tasks.source.offers_wanted() {
            self.offer_some();
        }
        if let Some((id, d)) = self.dirs.take() {
            self.tasks.backlog_took(1);
            return Some((id, Task::Dir(d)));
        }
        let claimed = self.tasks.source.take()?;
        Some(self.tasks.take_claimed(claimed))
    }

    fn push_child(&mut self, parent: TaskId, child: Task) {
        let mut held = self.tasks.held();
        match child {
            Task::Dir(d) => {
                let Some(owner) = held.record_mut(parent) else {
                    return;
                };
                if owner.closing {
                    let queue_id = owner.queue_id;
                    self.tasks.source.offer(queue_id, vec![d]);
                    return;
                }
                // Pushed under the lock: the thread that steals it cannot finish it before it
                // is counted as a part of its claimed task.
                let id = self.dirs.push(d);
                held.add_local(parent, id);
                self.tasks
                    .source
                    .local_backlog()
                    .fetch_add(1, Ordering::Relaxed);
            }
            lookups @ Task::Lookups(_) => {
                let id = self.tasks.new_id();
                if held.add_local(parent, id) {
                    drop(held);
                    self.tasks.lookups.push((id, lookups));
                }
            }
        }
    }

    fn finish(&mut self, id: TaskId) {
        let mut held = self.tasks.held();
        if let Some((_, d)) = held.finished(id) {
            let queue_id = d.queue_id;
            drop(held);
            self.tasks.source.finished(queue_id, Vec::new(), 0);
        }
    }

    fn is_exhausted(&self) -> bool {
        self.tasks.source.state() != SourceState::Working
    }

    fn outstanding(&self) -> usize {
        self.tasks.source.local_work().held()
            + self.tasks.lookups.len()
            + self.tasks.source.local_backlog().load(Ordering::Relaxed)
    }
}
