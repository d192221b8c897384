//! The frontier journal: beside a scan's output file, what a resumed scan needs to go on —
//! the directories found and not yet durably listed (the frontier), with the scan's identity.
//!
//! It is written at each checkpoint of the output, after the output has made its entries
//! durable: one `Done` record per directory whose entries (and whose lookup batches' entries)
//! are durable, carrying the directory tasks it found. Replaying the records in order gives
//! the frontier: the tasks created and not done.
//!
//! **Order.** A record is written only once the task it completes is known, that is, once its
//! parent's record (which created it) is written: a child whose listing became durable before
//! its parent's is held back in memory until the parent's record goes out. A crash loses the
//! records held back, which is safe: their tasks lie below a frontier directory, which a
//! resumed scan lists again (and the entries already stored below it are not stored twice,
//! see [`super`]). So every prefix of the file is a consistent state, and a record cut short
//! by a crash (its checksum does not match) ends the journal.
//!
//! **Size.** Every record adds to the file; when the file is over [`COMPACT_BYTES_MIN`] and
//! more than [`COMPACT_RATIO`] times the frontier it describes, the journal is rewritten as one
//! snapshot of the frontier (a new file renamed into place), so it stays a small multiple of
//! the work outstanding, whatever the size of the tree.
//!
//! Format: the magic [`MAGIC`], then records of `u32 length, u32 crc32, payload` (big-endian);
//! each payload is XDR: `u32 kind` and
//! - `Start` (first record of a file): `u32 epoch, bool rooted, opaque scan<>, task tasks<>`
//!   (`rooted` false: the journal was made before the scan reached its root, and a resume
//!   starts the scan anew);
//! - `Done`: `u64 id, task children<>`;
//! - `Completed`: nothing;
//!
//! where `task` is `{ u64 id; opaque task<> }` (the task's own serialised form, opaque here).

use crate::xdr::{XdrReader, XdrWriter};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The first bytes of a frontier journal.
pub const MAGIC: &[u8; 8] = b"NFSWFRN1";
/// A journal smaller than this is never compacted: rewriting it would cost more than it saves.
pub const COMPACT_BYTES_MIN: u64 = 64 << 20;
/// A journal this many times larger than a snapshot of its frontier is compacted.
pub const COMPACT_RATIO: u64 = 4;
/// A record's payload at most: a directory's children are written in records of at most
/// [`CHILDREN_PER_RECORD_MAX`] tasks, so no record nears it; a length beyond it is damage.
const RECORD_BYTES_MAX: u32 = 64 << 20;
/// Children written in one `Done` record at most (a directory with more is written as
/// several records, the last one completing it).
const CHILDREN_PER_RECORD_MAX: usize = 4096;
/// A serialised task at most (a directory task: a handle and a path of at most 1 MiB).
const TASK_BYTES_MAX: u32 = (1 << 20) + 4096;
/// The scan's description at most.
const SCAN_BYTES_MAX: u32 = 1 << 20;

const KIND_START: u32 = 1;
const KIND_DONE: u32 = 2;
const KIND_COMPLETED: u32 = 3;
/// A `Done` record that adds children and does not yet complete its task.
const KIND_CHILDREN: u32 = 4;

/// A task as the journal keeps it: its id and its serialised form.
pub type SavedTask = (u64, Box<[u8]>);

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: not a frontier journal of nfs-walker")]
    NotAJournal(PathBuf),
    #[error("{path}: damaged frontier journal ({why})")]
    Damaged { path: PathBuf, why: String },
}

/// What a journal says.
#[derive(Debug)]
pub struct Saved {
    /// The scan's description, as the scan wrote it.
    pub scan: Vec<u8>,
    /// The run that wrote it (0: the first; one more per resume).
    pub epoch: u16,
    /// False: the scan stopped before it reached its root; nothing of it is kept.
    pub rooted: bool,
    /// The frontier: tasks created and not done.
    pub tasks: Vec<SavedTask>,
    /// The scan completed.
    pub completed: bool,
    /// Bytes of whole records (a torn end after them is ignored).
    pub valid_bytes: u64,
}

/// Reads a journal, as a stream (a compaction replays the file it is writing).
pub fn read(path: &Path) -> Result<Saved, JournalError> {
    let io_err = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut input = io::BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
    let mut magic = [0u8; MAGIC.len()];
    if input.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(JournalError::NotAJournal(path.to_path_buf()));
    }
    let damaged = |why: &str| JournalError::Damaged {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    let mut at = MAGIC.len() as u64;
    let mut saved: Option<Saved> = None;
    let mut known: HashMap<u64, Box<[u8]>> = HashMap::new();
    // Children of a task whose last record (`Done`) has not come yet.
    let mut partial: HashMap<u64, Vec<SavedTask>> = HashMap::new();
    let mut payload = Vec::new();
    while next_record(&mut input, &mut payload).map_err(io_err)? {
        at += 8 + payload.len() as u64;
        let mut r = XdrReader::new(&payload);
        let bad = |_| damaged("a record does not decode");
        match r.u32().map_err(bad)? {
            KIND_START => {
                let epoch = r.u32().map_err(bad)?;
                let rooted = r.bool().map_err(bad)?;
                let scan = r.opaque(SCAN_BYTES_MAX).map_err(bad)?.to_vec();
                known.clear();
                for (id, task) in read_tasks(&mut r).map_err(bad)? {
                    known.insert(id, task);
                }
                saved = Some(Saved {
                    scan,
                    epoch: u16::try_from(epoch).map_err(|_| damaged("epoch out of range"))?,
                    rooted,
                    tasks: Vec::new(),
                    completed: false,
                    valid_bytes: 0,
                });
            }
            kind @ (KIND_DONE | KIND_CHILDREN) => {
                let id = r.u64().map_err(bad)?;
                if saved.is_none() || !known.contains_key(&id) {
                    return Err(damaged("a task is done that was never found"));
                }
                let children = read_tasks(&mut r).map_err(bad)?;
                let part = partial.entry(id).or_default();
                part.extend(children);
                if kind == KIND_DONE {
                    // Only now: a torn journal must not show half of a task's children.
                    known.extend(partial.remove(&id).unwrap_or_default());
                    known.remove(&id);
                }
            }
            KIND_COMPLETED => {
                if let Some(s) = &mut saved {
                    s.completed = true;
                }
            }
            _ => return Err(damaged("unknown record")),
        }
        if let Some(s) = &mut saved {
            s.valid_bytes = at;
        }
    }
    let mut saved = saved.ok_or_else(|| damaged("no start record"))?;
    saved.tasks = known.into_iter().collect();
    // In id order: stable from one read to the next.
    saved.tasks.sort_unstable_by_key(|(id, _)| *id);
    Ok(saved)
}

/// Reads the next whole record's payload into `payload`; false at the end or at a torn or
/// damaged record (its checksum does not match).
fn next_record(input: &mut impl Read, payload: &mut Vec<u8>) -> io::Result<bool> {
    let mut head = [0u8; 8];
    if !read_full(input, &mut head)? {
        return Ok(false);
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if len > RECORD_BYTES_MAX {
        return Ok(false);
    }
    payload.clear();
    payload.resize(len as usize, 0);
    if !read_full(input, payload)? {
        return Ok(false);
    }
    Ok(crc32fast::hash(payload) == crc)
}

/// Fills `buf`; false if the input ends first.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn read_tasks(r: &mut XdrReader<'_>) -> crate::xdr::XdrResult<Vec<SavedTask>> {
    let n = r.array_len(u32::MAX, 12)?;
    let mut tasks = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let id = r.u64()?;
        tasks.push((id, r.opaque(TASK_BYTES_MAX)?.into()));
    }
    Ok(tasks)
}

fn write_tasks<'a>(w: &mut XdrWriter<'_>, tasks: impl ExactSizeIterator<Item = (u64, &'a [u8])>) {
    w.u32(tasks.len() as u32);
    for (id, task) in tasks {
        w.u64(id).opaque(task);
    }
}

/// Appends the journal of a running scan.
pub struct JournalWriter {
    path: PathBuf,
    file: BufWriter<File>,
    scan: Vec<u8>,
    epoch: u16,
    rooted: bool,
    /// The frontier as written so far: tasks created and not done, with the size of each
    /// one's serialised form (the forms themselves are in the file: a compaction replays it).
    known: HashMap<u64, u32>,
    /// Bytes a snapshot of `known` takes, about.
    known_bytes: u64,
    /// Tasks done whose own creation is not written yet (their parent is not done): their
    /// children, in wait for the parent's record.
    held_back: HashMap<u64, Vec<SavedTask>>,
    file_bytes: u64,
    payload: Vec<u8>,
    /// Compactions so far.
    pub compactions: u64,
}

impl JournalWriter {
    /// Starts a journal at `path` (replacing what is there, atomically) with the frontier
    /// `tasks` of run `epoch` of the scan described by `scan`.
    pub fn create(
        path: &Path,
        scan: &[u8],
        epoch: u16,
        tasks: Vec<SavedTask>,
    ) -> Result<JournalWriter, JournalError> {
        let known_bytes = tasks.iter().map(|(_, t)| 12 + t.len() as u64).sum();
        let mut w = JournalWriter {
            path: path.to_path_buf(),
            // Replaced at once by the snapshot's file.
            file: BufWriter::new(tempfile::tempfile().map_err(|source| JournalError::Io {
                path: path.to_path_buf(),
                source,
            })?),
            scan: scan.to_vec(),
            epoch,
            rooted: true,
            known: tasks.iter().map(|(id, t)| (*id, t.len() as u32)).collect(),
            known_bytes,
            held_back: HashMap::new(),
            file_bytes: 0,
            payload: Vec::new(),
            compactions: 0,
        };
        w.write_snapshot(false, &tasks)?;
        Ok(w)
    }

    /// Writes the journal of a scan of run `epoch` that has not reached its root yet, before
    /// its output is made: a scan killed then is resumed by starting it anew.
    pub fn start_unrooted(path: &Path, scan: &[u8], epoch: u16) -> Result<(), JournalError> {
        let mut w = JournalWriter::create(path, scan, epoch, Vec::new())?;
        w.rooted = false;
        w.write_snapshot(false, &[])
    }

    fn io_err(&self) -> impl Fn(io::Error) -> JournalError {
        let path = self.path.clone();
        move |source| JournalError::Io {
            path: path.clone(),
            source,
        }
    }

    /// Task `id` is done (its entries are durable) and found `children`. Buffered: durable
    /// at the next [`JournalWriter::sync`].
    pub fn done(&mut self, id: u64, children: Vec<SavedTask>) -> Result<(), JournalError> {
        let mut ready = vec![(id, children)];
        while let Some((id, children)) = ready.pop() {
            if !self.known.contains_key(&id) {
                // Its parent's record, which creates it, is not written yet.
                self.held_back.insert(id, children);
                continue;
            }
            let mut chunks = children.chunks(CHILDREN_PER_RECORD_MAX).peekable();
            if chunks.peek().is_none() {
                self.append_done(KIND_DONE, id, &[])?;
            }
            while let Some(chunk) = chunks.next() {
                let kind = if chunks.peek().is_some() {
                    KIND_CHILDREN
                } else {
                    KIND_DONE
                };
                self.append_done(kind, id, chunk)?;
            }
            if let Some(len) = self.known.remove(&id) {
                self.known_bytes -= 12 + u64::from(len);
            }
            for (child, task) in children {
                self.known_bytes += 12 + task.len() as u64;
                self.known.insert(child, task.len() as u32);
                if let Some(grandchildren) = self.held_back.remove(&child) {
                    ready.push((child, grandchildren));
                }
            }
        }
        Ok(())
    }

    fn append_done(
        &mut self,
        kind: u32,
        id: u64,
        children: &[SavedTask],
    ) -> Result<(), JournalError> {
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        {
            let mut w = XdrWriter::new(&mut payload);
            w.u32(kind).u64(id);
            write_tasks(&mut w, children.iter().map(|(i, t)| (*i, &t[..])));
        }
        let r = self.append(&payload);
        self.payload = payload;
        r
    }

    fn append(&mut self, payload: &[u8]) -> Result<(), JournalError> {
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        head[4..].copy_from_slice(&crc32fast::hash(payload).to_be_bytes());
        let err = self.io_err();
        let r = self
            .file
            .write_all(&head)
            .and_then(|()| self.file.write_all(payload));
        r.map_err(err)?;
        self.file_bytes += 8 + payload.len() as u64;
        Ok(())
    }

    /// Makes every record written so far durable; compacts the journal when it has grown
    /// well past its frontier.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        let err = self.io_err();
        self.file.flush().map_err(&err)?;
        self.file.get_ref().sync_data().map_err(&err)?;
        let snapshot = self.known_bytes + self.scan.len() as u64 + 64;
        if self.file_bytes > COMPACT_BYTES_MIN && self.file_bytes > COMPACT_RATIO * snapshot {
            // The frontier's tasks are read back from the file (what was just synced): memory
            // holds only their ids between compactions.
            let saved = read(&self.path)?;
            self.write_snapshot(false, &saved.tasks)?;
            self.compactions += 1;
        }
        Ok(())
    }

    /// Records that the scan completed (a resume then has nothing to do), durably, in a
    /// journal of one snapshot.
    pub fn complete(&mut self) -> Result<(), JournalError> {
        self.held_back.clear();
        self.known.clear();
        self.known_bytes = 0;
        self.write_snapshot(true, &[])
    }

    /// Tasks in the frontier as written.
    pub fn frontier_len(&self) -> usize {
        self.known.len()
    }

    /// Rewrites the journal as one `Start` record of the frontier (and `Completed`): written
    /// beside, synced, renamed over the old one, the directory synced.
    fn write_snapshot(&mut self, completed: bool, tasks: &[SavedTask]) -> Result<(), JournalError> {
        let mut side = self.path.as_os_str().to_owned();
        side.push("-new");
        let side = PathBuf::from(side);
        let err = self.io_err();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&side)
            .map_err(&err)?;
        let mut out = BufWriter::with_capacity(64 << 10, file);
        out.write_all(MAGIC).map_err(&err)?;
        let old = std::mem::replace(&mut self.file, out);
        drop(old);
        self.file_bytes = MAGIC.len() as u64;
        let mut payload = Vec::with_capacity(self.known_bytes as usize + self.scan.len() + 64);
        {
            let mut w = XdrWriter::new(&mut payload);
            w.u32(KIND_START)
                .u32(u32::from(self.epoch))
                .bool(self.rooted)
                .opaque(&self.scan);
            write_tasks(&mut w, tasks.iter().map(|(i, t)| (*i, &t[..])));
        }
        self.append(&payload)?;
        if completed {
            let mut p = Vec::new();
            XdrWriter::new(&mut p).u32(KIND_COMPLETED);
            self.append(&p)?;
        }
        let err = self.io_err();
        self.file.flush().map_err(&err)?;
        self.file.get_ref().sync_data().map_err(&err)?;
        std::fs::rename(&side, &self.path).map_err(&err)?;
        sync_dir(&self.path).map_err(&err)?;
        // Appends go on at the end of the renamed file.
        self.file
            .get_mut()
            .seek(io::SeekFrom::End(0))
            .map_err(&err)?;
        Ok(())
    }
}

/// Syncs the directory holding `path` (a rename or a new file in it is durable then).
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new("."))).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nfs-walker-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn task(id: u64) -> SavedTask {
        (id, format!("task {id}").into_bytes().into())
    }

    fn ids(s: &Saved) -> Vec<u64> {
        let mut v: Vec<u64> = s.tasks.iter().map(|t| t.0).collect();
        v.sort();
        v
    }

    #[test]
    fn replay_gives_the_frontier_and_children_wait_for_their_parent() {
        let p = temp("order");
        let mut j = JournalWriter::create(&p, b"scan", 0, vec![task(0)]).unwrap();
        // 0 found 1 and 2; 2 found 3. 3 is done before 2, and 2 before 0.
        j.done(3, vec![]).unwrap();
        j.done(2, vec![task(3)]).unwrap();
        j.sync().unwrap();
        let s = read(&p).unwrap();
        assert_eq!(
            ids(&s),
            [0],
            "nothing is known to be done before the root's record"
        );
        j.done(0, vec![task(1), task(2)]).unwrap();
        j.sync().unwrap();
        let s = read(&p).unwrap();
        assert_eq!(ids(&s), [1], "2 and 3 came out with their parent's record");
        assert_eq!(s.scan, b"scan");
        assert!(!s.completed);
        let t1 = s.tasks.iter().find(|t| t.0 == 1).unwrap();
        assert_eq!(&t1.1[..], b"task 1");
        j.done(1, vec![]).unwrap();
        j.complete().unwrap();
        let s = read(&p).unwrap();
        assert!(s.completed && s.tasks.is_empty());
    }

    #[test]
    fn a_torn_end_is_ignored_and_every_prefix_is_consistent() {
        let p = temp("torn");
        let mut j = JournalWriter::create(&p, b"x", 2, vec![task(0)]).unwrap();
        // The start record is written whole before the file is renamed into place.
        let start = std::fs::metadata(&p).unwrap().len() as usize;
        let children: Vec<SavedTask> = (1..=5000).map(task).collect();
        j.done(0, children).unwrap();
        for i in 1..=2500 {
            j.done(i, vec![task(10_000 + i)]).unwrap();
        }
        j.sync().unwrap();
        let full = std::fs::read(&p).unwrap();
        let whole = read(&p).unwrap();
        assert_eq!(whole.epoch, 2);
        assert_eq!(whole.tasks.len(), 5000);
        for cut in (start..full.len()).step_by(997) {
            std::fs::write(&p, &full[..cut]).unwrap();
            let s = read(&p).unwrap();
            assert!(s.valid_bytes as usize <= cut);
            let front: std::collections::HashSet<u64> = ids(&s).into_iter().collect();
            // A task and anything it found are never both in the frontier: either the root
            // alone, or all 5000 children (each done one replaced by its own child).
            if front.contains(&0) {
                assert_eq!(front.len(), 1, "cut {cut}");
            } else {
                assert_eq!(front.len(), 5000, "cut {cut}");
                for i in 1..=5000 {
                    assert!(
                        front.contains(&i) != front.contains(&(10_000 + i)),
                        "cut {cut}"
                    );
                }
            }
        }
        JournalWriter::start_unrooted(&p, b"y", 3).unwrap();
        let s = read(&p).unwrap();
        assert!(!s.rooted && s.tasks.is_empty() && !s.completed && s.epoch == 3);
        std::fs::write(&p, &full[..MAGIC.len() - 1]).unwrap();
        assert!(matches!(read(&p), Err(JournalError::NotAJournal(_))));
    }

    #[test]
    fn a_big_journal_is_compacted_to_its_frontier() {
        let p = temp("compact");
        let mut j = JournalWriter::create(&p, b"x", 0, vec![task(0)]).unwrap();
        let fat = |id: u64| -> SavedTask { (id, vec![7u8; 4000].into()) };
        // A chain: each task done finds the next; the frontier stays one task.
        for i in 0..20_000u64 {
            j.done(i, vec![fat(i + 1)]).unwrap();
            if i % 1000 == 999 {
                j.sync().unwrap();
            }
        }
        j.sync().unwrap();
        assert!(j.compactions >= 1);
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len < COMPACT_BYTES_MIN + (8 << 20), "{len}");
        let s = read(&p).unwrap();
        assert_eq!(ids(&s), [20_000]);
    }
}
