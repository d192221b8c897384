//! The shared queue as the engine's [`TaskSource`]: directory tasks come from and go to Redis
//! (through [`QueueSource`]'s local buffer); a directory's lookup batches (`getattr` mode, or
//! entries a server sent without attributes) stay on this host, as they are not worth a round
//! trip. A directory is reported listed to Redis once it and its lookup batches are finished,
//! and acknowledged once all of them are durable in this host's output.

use super::redis::ClaimedTask;
use super::source::{QueueSource, SourceState};
use super::TaskRecord;
use crate::rpc::nfs3::FileHandle;
use crate::sched::{TaskId, TaskParts, TaskQueue, TaskSource};
use crate::walker::{DirTask, Task};
use crossbeam_deque::{Injector, Steal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A directory task of the queue, as this host works on it.
struct HeldDir {
    queue_id: super::TaskId,
    children: Vec<TaskRecord>,
}

/// The directories this host works on; their lookup batches are their local tasks.
type Held = TaskParts<HeldDir>;

/// See the module documentation.
pub struct RedisTasks {
    source: QueueSource,
    held: Mutex<Held>,
    lookups: Injector<(TaskId, Task)>,
    next_id: AtomicU64,
}

impl RedisTasks {
    pub fn new(source: QueueSource) -> RedisTasks {
        RedisTasks {
            source,
            held: Mutex::new(Held::default()),
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
        self.held().insert(
            id,
            HeldDir {
                queue_id: c.id,
                children: Vec::new(),
            },
        );
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
}

/// One thread's access: every thread shares the source's buffer and the local lookups.
pub struct RedisTaskQueue<'a> {
    tasks: &'a RedisTasks,
}

impl TaskSource for RedisTasks {
    type Task = Task;
    type Queue<'a> = RedisTaskQueue<'a>;

    fn queues(&self, threads: usize) -> Vec<RedisTaskQueue<'_>> {
        (0..threads)
            .map(|_| RedisTaskQueue { tasks: self })
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
        let claimed = self.tasks.source.take()?;
        self.tasks.take_claimed(claimed)
    }

    fn push_child(&mut self, parent: TaskId, child: Task) {
        let mut held = self.tasks.held();
        match child {
            Task::Dir(d) => {
                if let Some(dir) = held.record_mut(parent) {
                    dir.children.push(TaskRecord {
                        handle: d.fh.as_bytes().to_vec(),
                        path: d.path,
                        depth: d.depth,
                        fsid: d.fsid,
                    });
                }
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
            let children = std::mem::take(&mut d.children);
            let queue_id = d.queue_id;
            drop(held);
            self.tasks.source.finished(queue_id, children, 0);
        }
    }

    fn is_exhausted(&self) -> bool {
        self.tasks.source.state() != SourceState::Working
    }

    fn outstanding(&self) -> usize {
        self.tasks.source.local_work().held() + self.tasks.lookups.len()
    }
}
