//! The task source of a single-host scan: the local deques, plus, for an output that keeps a
//! frontier journal ([`super::journal`]), a record of each directory's children kept until
//! the directory is durable, then written to the journal.
//!
//! A directory is durable once its own listing and its lookup batches (`getattr` mode, or
//! entries a server sent without attributes; local work that is never journaled) are all
//! reported durable by the output's checkpoint.

use super::journal::{JournalError, JournalWriter, SavedTask};
use crate::sched::{LocalDeques, LocalQueue, TaskId, TaskParts, TaskQueue, TaskSource};
use crate::walker::Task;
use crate::xdr::XdrEncode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Tasks finished and not yet reported durable past which the source asks the output for a
/// checkpoint: each holds its record (about 200 bytes with its children's) until then, so on a
/// fast scan of small directories a 10-second interval would hold hundreds of thousands.
pub const FINISHED_UNDURABLE_MAX: usize = 4096;
/// Checkpoints asked for that reason at most this often (each syncs the output).
const ASKED_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// The directories being listed, each with the directory tasks it found (serialised); their
/// lookup batches are its local tasks.
type Held = TaskParts<Vec<SavedTask>>;

/// See the module documentation.
pub struct JournaledTasks {
    deques: LocalDeques<Task>,
    held: Mutex<Held>,
    /// None: an output that cannot be resumed (stdout); the deques alone.
    journal: Option<Mutex<JournalWriter>>,
    /// The first failure to write the journal (the scan is stopped then: going on would make
    /// work that could not be resumed).
    failed: Mutex<Option<JournalError>>,
    stop: Arc<AtomicBool>,
    /// Tasks finished and not yet durable (see [`FINISHED_UNDURABLE_MAX`]).
    finished_undurable: AtomicUsize,
    last_asked: Mutex<Instant>,
}

impl JournaledTasks {
    /// A source starting from `roots` (a new scan's root, or a saved frontier), new tasks
    /// with ids of run `epoch`, writing to `journal`; a journal that cannot be written sets
    /// `stop`.
    pub fn new(
        roots: Vec<(TaskId, Task)>,
        epoch: u16,
        journal: Option<JournalWriter>,
        stop: Arc<AtomicBool>,
    ) -> JournaledTasks {
        JournaledTasks {
            deques: LocalDeques::with_ids(roots, epoch),
            held: Mutex::new(Held::default()),
            journal: journal.map(Mutex::new),
            failed: Mutex::new(None),
            stop,
            finished_undurable: AtomicUsize::new(0),
            last_asked: Mutex::new(Instant::now()),
        }
    }

    /// Whether the output should checkpoint now, so that the records of finished tasks do
    /// not pile up in memory ([`FINISHED_UNDURABLE_MAX`]).
    pub fn wants_checkpoint(&self) -> bool {
        if self.finished_undurable.load(Ordering::Relaxed) < FINISHED_UNDURABLE_MAX {
            return false;
        }
        let mut last = self.last_asked.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < ASKED_CHECKPOINT_INTERVAL {
            return false;
        }
        *last = Instant::now();
        true
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn journal(&self) -> Option<MutexGuard<'_, JournalWriter>> {
        self.journal
            .as_ref()
            .map(|j| j.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn fail(&self, e: JournalError) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.get_or_insert(e);
    }

    /// The first error writing the journal, if any.
    pub fn take_error(&self) -> Option<JournalError> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The scan completed: the journal says so.
    pub fn complete(&self) -> Result<(), JournalError> {
        match self.journal() {
            Some(mut j) => j.complete(),
            None => Ok(()),
        }
    }

    /// Directories in the frontier as the journal has it now.
    pub fn frontier_len(&self) -> usize {
        self.journal().map_or(0, |j| j.frontier_len())
    }
}

impl TaskSource for JournaledTasks {
    type Task = Task;
    type Queue<'a> = JournaledQueue<'a>;

    fn queues(&self, threads: usize) -> Vec<JournaledQueue<'_>> {
        self.deques
            .queues(threads)
            .into_iter()
            .map(|inner| JournaledQueue { inner, tasks: self })
            .collect()
    }

    fn wants_durability(&self) -> bool {
        self.journal.is_some()
    }

    fn durable(&self, ids: &[TaskId]) {
        let Some(mut journal) = self.journal() else {
            return;
        };
        let n = ids.len();
        let _ = self
            .finished_undurable
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        let done: Vec<(TaskId, Vec<SavedTask>)> = {
            let mut held = self.held();
            ids.iter().filter_map(|id| held.durable(*id)).collect()
        };
        if done.is_empty() {
            return;
        }
        let written = done
            .into_iter()
            .try_for_each(|(id, children)| journal.done(id.0, children))
            .and_then(|()| journal.sync());
        drop(journal);
        if let Err(e) = written {
            self.fail(e);
        }
    }
}

/// One thread's access: its deque, with every task it adds recorded.
pub struct JournaledQueue<'a> {
    inner: LocalQueue<'a, Task>,
    tasks: &'a JournaledTasks,
}

impl TaskQueue for JournaledQueue<'_> {
    type Task = Task;

    fn take(&mut self) -> Option<(TaskId, Task)> {
        let (id, task) = self.inner.take()?;
        if self.tasks.journal.is_some() && matches!(task, Task::Dir(_)) {
            // Held from its start (a queued directory costs nothing here: its record is in
            // its parent's children).
            self.tasks.held().insert(id, Vec::new());
        }
        Some((id, task))
    }

    fn push_child(&mut self, parent: TaskId, child: Task) {
        if self.tasks.journal.is_none() {
            self.inner.push(child);
            return;
        }
        // Held while the task is queued: a thread that steals a lookup batch and finishes it at
        // once must find its owner counting it.
        let mut held = self.tasks.held();
        match child {
            Task::Dir(d) => {
                let saved: Box<[u8]> = d.to_xdr().into();
                let id = self.inner.push(Task::Dir(d));
                if let Some(children) = held.record_mut(parent) {
                    children.push((id.0, saved));
                }
            }
            lookups @ Task::Lookups(_) => {
                let id = self.inner.push(lookups);
                held.add_local(parent, id);
            }
        }
    }

    fn finish(&mut self, id: TaskId) {
        if self.tasks.journal.is_some() {
            self.tasks
                .finished_undurable
                .fetch_add(1, Ordering::Relaxed);
        }
        self.inner.finish(id);
    }

    fn is_exhausted(&self) -> bool {
        self.inner.is_exhausted()
    }

    fn outstanding(&self) -> usize {
        self.inner.outstanding()
    }
}

#[cfg(test)]
mod tests {
    use super::super::journal;
    use super::*;
    use crate::rpc::nfs3::FileHandle;
    use crate::walker::{DirTask, LookupBatch};
    use crate::xdr::XdrDecode;

    fn dir(path: &str) -> Task {
        Task::Dir(DirTask {
            fh: FileHandle::from_bytes(path.as_bytes()).unwrap(),
            path: path.as_bytes().to_vec(),
            depth: path.matches('/').count() as u32 + 1,
            fsid: 1,
        })
    }

    fn frontier_paths(p: &std::path::Path) -> Vec<String> {
        let s = journal::read(p).unwrap();
        let mut v: Vec<String> = s
            .tasks
            .iter()
            .map(|(_, t)| String::from_utf8(DirTask::from_xdr(t).unwrap().path).unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_directory_is_journaled_once_it_and_its_lookups_are_durable() {
        let dir_path = std::env::temp_dir().join(format!("nfs-walker-jt-{}", std::process::id()));
        std::fs::create_dir_all(&dir_path).unwrap();
        let p = dir_path.join("frontier");
        let root = (TaskId(0), dir("."));
        let saved: Vec<SavedTask> = vec![(
            0,
            match &root.1 {
                Task::Dir(d) => d.to_xdr().into(),
                _ => unreachable!(),
            },
        )];
        let j = JournalWriter::create(&p, b"scan", 0, saved).unwrap();
        let src = JournaledTasks::new(vec![root], 0, Some(j), Arc::default());
        let mut qs = src.queues(1);
        let q = &mut qs[0];
        let (rid, _) = q.take().unwrap();
        q.push_child(rid, dir("a"));
        q.push_child(rid, dir("b"));
        q.push_child(
            rid,
            Task::Lookups(LookupBatch {
                dir_fh: FileHandle::from_bytes(b".").unwrap(),
                dir_path: Arc::from(&b"."[..]),
                depth: 1,
                names: Vec::new(),
            }),
        );
        q.finish(rid);
        let mut taken = std::collections::HashMap::new();
        while let Some((id, t)) = q.take() {
            let name = match t {
                Task::Dir(d) => String::from_utf8(d.path).unwrap(),
                Task::Lookups(_) => "lookups".to_string(),
            };
            taken.insert(name, id);
        }
        let (aid, bid, lid) = (taken["a"], taken["b"], taken["lookups"]);
        q.push_child(aid, dir("a/c"));
        for id in [aid, bid, lid] {
            q.finish(id);
        }
        // a is durable before its parent: held back.
        src.durable(&[aid]);
        assert_eq!(frontier_paths(&p), ["."]);
        // The root's listing is durable, its lookups not yet.
        src.durable(&[rid]);
        assert_eq!(frontier_paths(&p), ["."]);
        src.durable(&[lid]);
        assert_eq!(frontier_paths(&p), ["a/c", "b"]);
        src.durable(&[bid]);
        assert_eq!(frontier_paths(&p), ["a/c"]);
        assert!(src.take_error().is_none());
    }
}
