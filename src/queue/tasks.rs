//! The shared queue as the engine's [`TaskSource`].
//!
//! A task claimed from Redis is a *subtree*: this host lists the directory and, depth first on
//! its own deques, every directory below it, so Redis hears of a directory only when work
//! moves between hosts, not once per directory (the per-directory round trips and scripts
//! cost more than listing a small directory). The claimed task stays pending in Redis until
//! every directory of its subtree that this host kept is listed and durable in its output;
//! only then is it acknowledged.
//!
//! Work moves to other hosts by *offers*: while this host holds more directories not yet
//! started than it can start now ([`super::source::OFFER_KEEP`]) and fewer than a batch of tasks wait in
//! Redis for a host, the oldest of them (the shallowest: the largest subtrees) are added to the
//! stream as tasks of their own, recorded before their claimed task's own listing, so the
//! invariant of exact termination holds: every directory found and not yet durable is a stream
//! entry, or in the subtree of one pending to a live or dead host. A host that dies loses its
//! subtrees to whoever takes them over; they are listed again from their roots (the offered
//! parts twice; `merge` keeps one copy of every path).
//!
//! A directory's lookup batches (`getattr` mode, or entries a server sent without attributes)
//! are never offered.

use super::redis::ClaimedTask;
use super::source::{QueueSource, SourceState, CLAIM_BELOW, OFFER_KEEP};
use super::TaskRecord;
use crate::rpc::nfs3::FileHandle;
use crate::sched::{LocalDeques, LocalQueue, TaskId, TaskParts, TaskQueue, TaskSource};
use crate::walker::{DirTask, Task};
use crossbeam_deque::{Injector, Steal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A task claimed from the queue, as this host works on it: its local tasks are the
/// directories of its subtree kept here and all their lookup batches.
struct HeldDir {
    queue_id: super::TaskId,
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

    fn take_claimed(&self, c: ClaimedTask) -> Option<(TaskId, Task)> {
        let id = self.new_id();
        let Some(fh) = FileHandle::from_bytes(&c.task.handle) else {
            // Refused by the decoder already; a handle the walk cannot use is listed by no one.
            self.source.finished(c.id, Vec::new(), 0);
            self.source.durable(&[c.id]);
            return None;
        };
        self.held().insert(id, HeldDir { queue_id: c.id });
        Some((
            id,
            Task::Dir(DirTask {
                fh,
                path: c.task.path,
                depth: c.task.depth,
                fsid: c.task.fsid,
            }),
        ))
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
}

impl RedisTaskQueue<'_> {
    /// Hands some of this host's oldest directories to other hosts, as many as they want (see
    /// the module documentation).
    fn offer_some(&mut self) {
        let tasks = self.tasks;
        let backlog = tasks.source.local_backlog().load(Ordering::Relaxed);
        if backlog <= OFFER_KEEP {
            return;
        }
        let n = tasks.source.take_offers_wanted(backlog - OFFER_KEEP);
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
        // Under the lock, so that no other part of a claimed task finishes before its offers
        // are handed to the queue thread (the order the queue records them in).
        let mut held = tasks.held();
        let mut by_task: Vec<(super::TaskId, Vec<TaskRecord>)> = Vec::new();
        for (id, d) in &taken {
            // Every queued directory belongs to a held task: it was added under this lock
            // together with its part count, and a task is forgotten only once all its parts
            // are durable, which a queued directory is not.
            let Some(queue_id) = held.record_mut(*id).map(|r| r.queue_id) else {
                debug_assert!(false, "a queued directory of no held task");
                continue;
            };
            let record = TaskRecord {
                handle: d.fh.as_bytes().to_vec(),
                path: d.path.clone(),
                depth: d.depth,
                fsid: d.fsid,
            };
            match by_task.iter_mut().find(|(q, _)| *q == queue_id) {
                Some((_, v)) => v.push(record),
                None => by_task.push((queue_id, vec![record])),
            }
        }
        for (queue_id, dirs) in by_task {
            tasks.source.offer(queue_id, dirs);
        }
        let mut finished = Vec::new();
        let mut durable = Vec::new();
        for (id, _) in &taken {
            // An offered directory is done here: it neither runs nor writes on this host.
            if let Some((_, r)) = held.finished(*id) {
                finished.push(r.queue_id);
            }
            if let Some((_, r)) = held.durable(*id) {
                durable.push(r.queue_id);
            }
        }
        for queue_id in finished {
            tasks.source.finished(queue_id, Vec::new(), 0);
        }
        drop(held);
        if !durable.is_empty() {
            tasks.source.durable(&durable);
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
            .map(|dirs| RedisTaskQueue { tasks: self, dirs })
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
        if self.tasks.source.offers_wanted() {
            self.offer_some();
        }
        if let Some((id, d)) = self.dirs.take() {
            self.tasks.backlog_took(1);
            return Some((id, Task::Dir(d)));
        }
        let claimed = self.tasks.source.take()?;
        self.tasks.take_claimed(claimed)
    }

    fn push_child(&mut self, parent: TaskId, child: Task) {
        let mut held = self.tasks.held();
        match child {
            Task::Dir(d) => {
                if held.owner(parent).is_none() {
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
