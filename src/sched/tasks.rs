//! Where a run's work comes from: a [`TaskSource`] hands tasks to the threads and hears back
//! what became of them. The engine never looks inside a task (`T`: a directory to list, a batch
//! of names to look up, a file to read); the source decides what is outstanding and when the
//! run is over.
//!
//! The life of a task, as the engine reports it to the thread's [`TaskQueue`]:
//! 1. **started**: [`TaskQueue::take`] handed it to the thread;
//! 2. **children found**: [`TaskQueue::push_child`], once per child, while it runs;
//! 3. **finished**: [`TaskQueue::finish`]: its calls are done and every entry it produced has
//!    been handed to the output (not yet written);
//! 4. **durable**: [`TaskSource::durable`], called by the output side once the entries are
//!    safely stored (after the output's checkpoint).
//!
//! **How a finished task becomes durable.** A thread hands its entries to its output batcher
//! in order, and the batcher sends batches down one FIFO channel to the writer. When a task
//! finishes, its id is recorded by the batcher ([`crate::output::Batcher::task_finished`]) and
//! sent as an `OutputBatch::TasksDone` marker right after the batch holding the task's last
//! entries; every entry of the task is therefore ahead of its marker in the channel. A writer
//! that makes everything it received durable (a checkpoint: a committed transaction, an
//! fsync'd journal) may then pass the ids of the markers received before that checkpoint to
//! [`TaskSource::durable`]. Sources that need no durability (the in-memory deques) ask for no
//! markers ([`TaskSource::wants_durability`]), so the common path carries none.
//!
//! Sources this interface is shaped for:
//! - [`LocalDeques`] (the default): per-thread LIFO deques, a global injector, batch stealing;
//!   termination by a count of outstanding tasks.
//! - A frontier loaded from a saved scan (resume): the directories not yet durable when the
//!   scan stopped, as serialised tasks, fed through local deques; `durable` records progress.
//! - A shared queue on another host (multi-host scans, e.g. Redis Streams): `take` claims a
//!   batch of tasks for the thread, `push_child` adds children in a pipeline, `durable` acks;
//!   a task that never becomes durable (a host died) is claimed again by another host. Work
//!   that is not worth sharing (a directory's lookup batches) may stay local; such a source
//!   acks a directory once it and its local children are durable.

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A task's identity for its source. Opaque to the engine; unique within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u64);

/// A source of tasks for the threads of a run.
pub trait TaskSource: Sync {
    type Task: Send;
    /// One thread's access to the source.
    type Queue<'a>: TaskQueue<Task = Self::Task> + Send
    where
        Self: 'a;

    /// The queues of `threads` threads, one each (called once, before the threads start).
    fn queues(&self, threads: usize) -> Vec<Self::Queue<'_>>;

    /// Whether the output should report finished tasks back ([`TaskSource::durable`]).
    fn wants_durability(&self) -> bool {
        false
    }

    /// Tasks whose entries the output has stored durably (see the module docs).
    fn durable(&self, _ids: &[TaskId]) {}
}

/// One thread's access to a [`TaskSource`]: what the engine calls.
pub trait TaskQueue {
    type Task;
    /// The next task for this thread, started from now on; `None` when none is available now
    /// (other threads may still make some).
    fn take(&mut self) -> Option<(TaskId, Self::Task)>;
    /// A child found by task `parent` (outstanding from now on).
    fn push_child(&mut self, parent: TaskId, child: Self::Task);
    /// Task `id` is finished: its calls are done and its entries handed to the output.
    fn finish(&mut self, id: TaskId);
    /// Whether the run's work is all done: nothing outstanding anywhere, and nothing will come.
    fn is_exhausted(&self) -> bool;
    /// Tasks outstanding (queued anywhere or being worked on), for a progress display.
    fn outstanding(&self) -> usize;
}

/// Per-thread LIFO deques (depth-first keeps memory low on wide trees), a global injector
/// for the roots, and stealing in batches. The run ends exactly when a global count of tasks
/// created but not finished reaches zero, never by a timeout.
pub struct LocalDeques<T> {
    injector: Injector<(TaskId, T)>,
    outstanding: Arc<AtomicUsize>,
    roots: usize,
    /// Which run this is (0 for a new scan, one more per resume): the top bits of new ids.
    epoch: u16,
}

impl<T: Send> LocalDeques<T> {
    /// A source that starts with `roots`.
    pub fn new(roots: impl IntoIterator<Item = T>) -> Self {
        Self::with_ids(
            roots
                .into_iter()
                .enumerate()
                .map(|(i, t)| (TaskId(i as u64), t)),
            0,
        )
    }

    /// A source that starts with `roots` under the ids given (tasks saved by an earlier run,
    /// see [`crate::resume`]), and gives new tasks ids of run `epoch`: ids of different
    /// epochs never meet, so a run's ids stay apart from every earlier run's.
    pub fn with_ids(roots: impl IntoIterator<Item = (TaskId, T)>, epoch: u16) -> Self {
        let injector = Injector::new();
        let mut n = 0;
        for root in roots {
            injector.push(root);
            n += 1;
        }
        LocalDeques {
            injector,
            outstanding: Arc::new(AtomicUsize::new(n)),
            roots: n,
            epoch,
        }
    }

    /// Tasks created and not finished.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }
}

/// Bits of a [`TaskId`] made by [`LocalDeques`] that count a thread's tasks (2^40: more than
/// a thread lists in any run). Above them sit the thread number + 1 (8 bits; roots have thread
/// part 0) and the run's epoch (16 bits).
const LOCAL_ID_SEQ_BITS: u32 = 40;
const LOCAL_ID_EPOCH_SHIFT: u32 = 48;

/// One thread's deque of a [`LocalDeques`].
pub struct LocalQueue<'a, T> {
    source: &'a LocalDeques<T>,
    index: usize,
    deque: Worker<(TaskId, T)>,
    stealers: Vec<Stealer<(TaskId, T)>>,
    next_seq: u64,
}

impl<T: Send> TaskSource for LocalDeques<T> {
    type Task = T;
    type Queue<'a>
        = LocalQueue<'a, T>
    where
        T: 'a;

    fn queues(&self, threads: usize) -> Vec<LocalQueue<'_, T>> {
        let deques: Vec<Worker<(TaskId, T)>> = (0..threads).map(|_| Worker::new_lifo()).collect();
        let stealers: Vec<Stealer<(TaskId, T)>> = deques.iter().map(Worker::stealer).collect();
        deques
            .into_iter()
            .enumerate()
            .map(|(index, deque)| LocalQueue {
                source: self,
                index,
                deque,
                stealers: stealers.clone(),
                next_seq: 0,
            })
            .collect()
    }
}

impl<T> LocalDeques<T> {
    /// Roots the source started with.
    pub fn roots(&self) -> usize {
        self.roots
    }
}

impl<T> LocalQueue<'_, T> {
    /// Queues a new task on this thread's deque; returns its id.
    pub fn push(&mut self, task: T) -> TaskId {
        self.source.outstanding.fetch_add(1, Ordering::SeqCst);
        self.next_seq += 1;
        let id = (u64::from(self.source.epoch) << LOCAL_ID_EPOCH_SHIFT)
            | ((self.index as u64 + 1) << LOCAL_ID_SEQ_BITS)
            | (self.next_seq & ((1 << LOCAL_ID_SEQ_BITS) - 1));
        self.deque.push((TaskId(id), task));
        TaskId(id)
    }
}

impl<T> LocalQueue<'_, T> {
    /// Takes the oldest task queued on any thread (the shallowest directory: the largest
    /// subtree left), for a source that hands such work to other hosts.
    pub fn steal_oldest(&self) -> Option<(TaskId, T)> {
        let n = self.stealers.len();
        loop {
            let mut retry = false;
            for k in 0..n {
                match self.stealers[(self.index + k) % n].steal() {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }
}

impl<T> TaskQueue for LocalQueue<'_, T> {
    type Task = T;

    fn take(&mut self) -> Option<(TaskId, T)> {
        if let Some(t) = self.deque.pop() {
            return Some(t);
        }
        loop {
            let mut retry = false;
            match self.source.injector.steal_batch_and_pop(&self.deque) {
                Steal::Success(t) => return Some(t),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            // A peer's oldest tasks are the shallowest directories (the largest subtrees):
            // take half of them at once rather than coming back for each.
            let n = self.stealers.len();
            for k in 1..n {
                match self.stealers[(self.index + k) % n].steal_batch_and_pop(&self.deque) {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    fn push_child(&mut self, _parent: TaskId, child: T) {
        self.push(child);
    }

    fn finish(&mut self, _id: TaskId) {
        self.source.outstanding.fetch_sub(1, Ordering::SeqCst);
    }

    fn is_exhausted(&self) -> bool {
        self.source.outstanding.load(Ordering::SeqCst) == 0
    }

    fn outstanding(&self) -> usize {
        self.source.outstanding.load(Ordering::Relaxed)
    }
}

/// Tasks a source records (a directory shared through a queue, or saved in a frontier
/// journal), each with the local tasks that belong to it (a directory's lookup batches: work
/// never shared nor saved). A recorded task is finished, or durable, once it and all of its
/// local tasks are: the two task sources that record tasks keep their records here.
pub struct TaskParts<R> {
    tasks: std::collections::HashMap<TaskId, Parts<R>>,
    /// Local task → the recorded task it belongs to.
    locals: std::collections::HashMap<TaskId, TaskId>,
}

/// One recorded task: the source's record, and its parts (itself and its local tasks) not
/// yet finished and not yet durable.
struct Parts<R> {
    record: R,
    unfinished: usize,
    undurable: usize,
}

impl<R> Default for TaskParts<R> {
    fn default() -> Self {
        TaskParts {
            tasks: std::collections::HashMap::new(),
            locals: std::collections::HashMap::new(),
        }
    }
}

impl<R> TaskParts<R> {
    /// Records task `id` (started or about to be).
    pub fn insert(&mut self, id: TaskId, record: R) {
        self.tasks.insert(
            id,
            Parts {
                record,
                unfinished: 1,
                undurable: 1,
            },
        );
    }

    /// The recorded task `id` is or belongs to.
    pub fn owner(&self, id: TaskId) -> Option<TaskId> {
        if self.tasks.contains_key(&id) {
            Some(id)
        } else {
            self.locals.get(&id).copied()
        }
    }

    /// The record of the task `id` is or belongs to.
    pub fn record_mut(&mut self, id: TaskId) -> Option<&mut R> {
        let owner = self.owner(id)?;
        self.tasks.get_mut(&owner).map(|p| &mut p.record)
    }

    /// Adds the local task `local`, made by `parent` (a recorded task or one of its local
    /// tasks); false if `parent` belongs to no recorded task.
    pub fn add_local(&mut self, parent: TaskId, local: TaskId) -> bool {
        let Some(owner) = self.owner(parent) else {
            return false;
        };
        self.locals.insert(local, owner);
        let p = self.tasks.get_mut(&owner).expect("owner is recorded");
        p.unfinished += 1;
        p.undurable += 1;
        true
    }

    /// Every recorded task's record.
    pub fn records_mut(&mut self) -> impl Iterator<Item = &mut R> {
        self.tasks.values_mut().map(|p| &mut p.record)
    }

    /// Task `id` finished; returns its recorded task's record once all of its parts have.
    pub fn finished(&mut self, id: TaskId) -> Option<(TaskId, &mut R)> {
        let owner = self.owner(id)?;
        let p = self.tasks.get_mut(&owner).expect("owner is recorded");
        p.unfinished -= 1;
        (p.unfinished == 0).then_some((owner, &mut p.record))
    }

    /// Task `id` is durable; returns its recorded task, and forgets it, once all of its
    /// parts are.
    pub fn durable(&mut self, id: TaskId) -> Option<(TaskId, R)> {
        let owner = self.owner(id)?;
        self.locals.remove(&id);
        let p = self.tasks.get_mut(&owner).expect("owner is recorded");
        p.undurable -= 1;
        if p.undurable > 0 {
            return None;
        }
        let p = self.tasks.remove(&owner).expect("recorded");
        Some((owner, p.record))
    }
}

/// A source without tasks, for protocol users that make their own work (the bench).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTasks;

impl TaskQueue for NoTasks {
    type Task = ();
    fn take(&mut self) -> Option<(TaskId, ())> {
        None
    }
    fn push_child(&mut self, _: TaskId, _: ()) {}
    fn finish(&mut self, _: TaskId) {}
    fn is_exhausted(&self) -> bool {
        true
    }
    fn outstanding(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_task_ends_with_its_local_tasks() {
        let mut parts = TaskParts::default();
        parts.insert(TaskId(1), "dir");
        assert!(parts.add_local(TaskId(1), TaskId(2)));
        assert!(
            parts.add_local(TaskId(2), TaskId(3)),
            "a local task's own local task"
        );
        assert!(!parts.add_local(TaskId(9), TaskId(4)));
        assert_eq!(parts.owner(TaskId(3)), Some(TaskId(1)));
        assert!(parts.finished(TaskId(1)).is_none());
        assert!(parts.finished(TaskId(3)).is_none());
        assert_eq!(parts.finished(TaskId(2)).map(|(id, _)| id), Some(TaskId(1)));
        assert!(parts.durable(TaskId(2)).is_none());
        assert!(parts.durable(TaskId(1)).is_none());
        assert_eq!(parts.durable(TaskId(3)), Some((TaskId(1), "dir")));
        assert_eq!(parts.owner(TaskId(1)), None, "forgotten once durable");
    }

    #[test]
    fn counts_outstanding_and_steals_in_batches() {
        let src = LocalDeques::new([1u32]);
        let mut qs = src.queues(2);
        let (mut a, mut b) = {
            let b = qs.pop().unwrap();
            (qs.pop().unwrap(), b)
        };
        let (root, one) = a.take().unwrap();
        assert_eq!(one, 1);
        for c in 2..=9 {
            a.push_child(root, c);
        }
        a.finish(root);
        assert_eq!(src.outstanding(), 8);
        assert!(!b.is_exhausted());
        // b steals a batch from the oldest end at once; a keeps popping its newest.
        let (_, first) = b.take().unwrap();
        assert!((2..=5).contains(&first), "from the oldest half: {first}");
        assert!(!b.deque.is_empty(), "more than one task came over");
        assert_eq!(a.take().unwrap().1, 9);
        let mut ids = std::collections::HashSet::new();
        let mut seen = vec![first, 9];
        while let Some((id, t)) = a.take().or_else(|| b.take()) {
            assert!(ids.insert(id));
            seen.push(t);
            a.finish(id);
        }
        a.finish(TaskId(0));
        b.finish(TaskId(0));
        seen.sort();
        assert_eq!(seen, (2..=9).collect::<Vec<_>>());
        assert!(a.is_exhausted() && b.is_exhausted());
    }
}
