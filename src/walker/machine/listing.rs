//! Directory listings: chains of READDIR/READDIRPLUS calls, each continuing from the last
//! cookie of the previous reply with its verifier; what a reply's entries become; when a chain
//! restarts (NFS3ERR_BAD_COOKIE) and when it is stopped (a cycle, a server that never ends).

use super::{Op, TaskState, Walker};
use crate::path_error::PathError;
use crate::record::{join_path, EntryAttrs};
use crate::rpc::nfs3::{
    proc3, DetachedDirList, FileType3, NfsReplyError, Nfsstat3, ReaddirPlusReply, ReaddirReply,
};
use crate::sched::Queued;
use crate::sched::TaskId;
use crate::walker::config::{
    Mode, CONTINUED_COOKIES_MAX, FRUITLESS_REPLIES_MAX, LISTED_NAME_BYTES_MAX,
    LISTING_RESTARTS_MAX, LOOKUP_BATCH_NAMES,
};
use crate::walker::seen::{EmittedSet, HashSet64, KeyedAhead};
use crate::walker::task::{DirTask, LookupBatch, LookupName, Task};
use crate::walker::WalkSink;
use std::sync::Arc;
use std::time::Duration;

/// A 64-bit hash of (name, fileid): identifies an entry within one directory listing.
pub(crate) fn entry_key(name: &[u8], fileid: u64) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = fileid.wrapping_mul(K) ^ (name.len() as u64);
    let mut chunks = name.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ v).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 32)
}

/// A validated listing reply of either procedure.
enum ListReply<'a> {
    Plus(ReaddirPlusReply<'a>),
    Plain(ReaddirReply<'a>),
}

impl ListReply<'_> {
    /// See [`crate::rpc::nfs3::DirListReply::detach`].
    fn detach(&self, from: &[u8]) -> Option<DetachedDirList> {
        match self {
            ListReply::Plus(r) => r.detach(from),
            ListReply::Plain(r) => r.detach(from),
        }
    }

    /// What continues the chain: eof, the last entry's cookie, the reply's verifier.
    fn chain_state(&self) -> (bool, Option<u64>, [u8; 8]) {
        match self {
            ListReply::Plus(r) => (r.eof, r.last_cookie(), r.cookieverf),
            ListReply::Plain(r) => (r.eof, r.last_cookie(), r.cookieverf),
        }
    }
}

/// A directory being listed.
pub(super) struct Listing {
    pub(super) id: TaskId,
    pub(super) task: DirTask,
    pub(super) cookie: u64,
    pub(super) verf: [u8; 8],
    pub(super) calls: u32,
    /// Entries already handed out, so a restart or a misbehaving server never duplicates one.
    pub(super) seen: EmittedSet,
    /// Entries of this listing recorded in `seen` (new ones) so far.
    pub(super) entries_new: u64,
    /// Cookies this chain has continued from: seeing one again is a cycle. Bounded by
    /// [`CONTINUED_COOKIES_MAX`].
    pub(super) continued_from: HashSet64,
    pub(super) restarts: u32,
    /// Repeated entries still expected after a restart (those listed before it).
    pub(super) catch_up: u64,
    /// Replies in a row that brought no new entry.
    pub(super) fruitless: u32,
    /// The chain has ended (eof, or given up): no further call is made.
    pub(super) eof: bool,
    pub(super) failed: bool,
    /// A verdict reached on a deferred page (see [`crate::walker::deferred`]) while the chain's next call
    /// was already out: the listing fails with it when that call returns or fails, so its
    /// task stays in place until nothing of the chain is outstanding.
    pub(super) fail_next: Option<PathError>,
    /// The chain waits for the lookup backlog to shrink.
    pub(super) parked: bool,
    /// Operations created by this listing (READLINKs) still outstanding.
    pub(super) pending: u32,
    pub(super) jukebox_delay: Duration,
}

impl Listing {
    pub(super) fn new(id: TaskId, task: DirTask, emitted_keys_in_memory: usize) -> Self {
        Listing {
            id,
            task,
            cookie: 0,
            verf: [0; 8],
            calls: 0,
            seen: EmittedSet::new(emitted_keys_in_memory),
            entries_new: 0,
            continued_from: HashSet64::default(),
            restarts: 0,
            catch_up: 0,
            fruitless: 0,
            eof: false,
            failed: false,
            fail_next: None,
            parked: false,
            pending: 0,
            jukebox_delay: crate::sched::calls::BUSY_DELAY_FIRST,
        }
    }
}

impl Walker {
    /// The listing procedure of this walk's mode, for error reports.
    pub(super) fn list_proc_name(&self) -> &'static str {
        match self.cfg.mode {
            Mode::Plus => "readdirplus",
            Mode::Getattr | Mode::Names => "readdir",
        }
    }

    pub(super) fn restart_listing(&mut self, task: usize, sink: &mut impl WalkSink) {
        let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
            return;
        };
        l.restarts += 1;
        self.stats.bad_cookie_restarts += 1;
        if l.restarts > LISTING_RESTARTS_MAX {
            let path = l.task.path.clone();
            return self.fail_listing(
                task,
                PathError {
                    path,
                    op: self.list_proc_name(),
                    message: format!(
                        "directory cookies went stale {LISTING_RESTARTS_MAX} times; listing abandoned"
                    ),
                    status: Some(Nfsstat3::BadCookie),
                },
                sink,
            );
        }
        // Start over with a fresh verifier; `seen` keeps what was already emitted, and the
        // entries listed so far are expected again without counting as fruitless replies.
        l.seen.prepare_restart();
        l.cookie = 0;
        l.verf = [0; 8];
        l.continued_from = HashSet64::default();
        l.catch_up = l.entries_new;
        l.fruitless = 0;
        self.calls.push_front(Queued::new(Op::List { task }));
    }

    pub(super) fn fail_listing(&mut self, task: usize, err: PathError, sink: &mut impl WalkSink) {
        self.report(err, sink);
        if let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) {
            l.failed = true;
            l.eof = true;
        }
        self.maybe_finish(task, sink);
    }

    /// Checks a listed name; hostile ones are reported and skipped.
    fn name_ok(&mut self, dir_path: &[u8], name: &[u8], sink: &mut impl WalkSink) -> bool {
        if name == b"." || name == b".." {
            return false;
        }
        let why = if name.is_empty() {
            "empty name"
        } else if name.len() > LISTED_NAME_BYTES_MAX {
            "name longer than 1024 bytes"
        } else if name.contains(&b'/') {
            "name contains '/'"
        } else if name.contains(&0) {
            "name contains NUL"
        } else {
            return true;
        };
        self.stats.hostile_names += 1;
        let shown = &name[..name.len().min(64)];
        self.report(
            PathError {
                path: join_path(dir_path, shown),
                op: self.list_proc_name(),
                message: format!("server sent an invalid entry name ({why}); skipped"),
                status: None,
            },
            sink,
        );
        false
    }

    pub(super) fn on_list_reply(
        &mut self,
        task: usize,
        proc_: u32,
        body: &[u8],
        sink: &mut impl WalkSink,
    ) -> Result<(), NfsReplyError> {
        let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
            return Ok(());
        };
        // Validate the whole reply first (once), then queue the next call of the chain at once.
        let reply = if proc_ == proc3::READDIRPLUS {
            ListReply::Plus(ReaddirPlusReply::decode(body)?)
        } else {
            ListReply::Plain(ReaddirReply::decode(body)?)
        };
        let (eof, last_cookie, verf) = reply.chain_state();
        // Only a reply that decoded ends a JUKEBOX streak (a JUKEBOX is an Err above, so
        // resetting earlier would keep every retry at the first delay).
        l.jukebox_delay = crate::sched::calls::BUSY_DELAY_FIRST;
        if !eof {
            match last_cookie {
                None => {
                    let path = l.task.path.clone();
                    self.fail_listing(
                        task,
                        PathError {
                            path,
                            op: crate::rpc::nfs3::proc_name(proc_),
                            message: "server returned no entries and no eof; listing stopped"
                                .into(),
                            status: None,
                        },
                        sink,
                    );
                    return Ok(());
                }
                Some(c) => {
                    if l.continued_from.len() >= CONTINUED_COOKIES_MAX {
                        // Bounded: a cycle longer than this repeats entries, and is stopped by
                        // the fruitless-reply rule below.
                        l.continued_from = HashSet64::default();
                    }
                    if !l.continued_from.insert(c) || c == l.cookie {
                        let path = l.task.path.clone();
                        // Emit what this reply carries, then stop: the chain would loop.
                        self.process_entries(task, &reply, sink);
                        self.fail_listing(
                            task,
                            PathError {
                                path,
                                op: crate::rpc::nfs3::proc_name(proc_),
                                message: format!(
                                    "server returned cookie {c:#x} twice; listing stopped to avoid a loop"
                                ),
                                status: None,
                            },
                            sink,
                        );
                        return Ok(());
                    }
                    l.cookie = c;
                    l.verf = verf;
                    self.calls.push_front(Queued::new(Op::List { task }));
                    if body.len() >= self.cfg.defer_page_bytes_min
                        && self.deferred.has_room(body.len())
                    {
                        if let Some(view) = reply.detach(body) {
                            self.deferred.push(task, body, (proc_, view));
                            return Ok(());
                        }
                    }
                }
            }
        } else {
            l.eof = true;
        }
        self.page_entries(task, proc_, &reply, sink);
        Ok(())
    }

    /// Emits a page's entries; then the listing ends (eof) or is checked for progress.
    fn page_entries(
        &mut self,
        task: usize,
        proc_: u32,
        reply: &ListReply<'_>,
        sink: &mut impl WalkSink,
    ) {
        let (eof, _, _) = reply.chain_state();
        let dups_before = self.stats.duplicates_skipped;
        let new = self.process_entries(task, reply, sink);
        if eof {
            if let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) {
                let dir = match reply {
                    ListReply::Plus(r) => r.dir_attrs,
                    ListReply::Plain(r) => r.dir_attrs,
                };
                sink.dir_listed(&l.task.path, dir.map(|a| (a.fsid, a.fileid)), l.seen.len());
                // The set is only needed while the listing may still restart.
                l.seen = EmittedSet::new(0);
                l.continued_from = HashSet64::default();
            }
            self.maybe_finish(task, sink);
        } else {
            let dups = self.stats.duplicates_skipped - dups_before;
            self.check_progress(task, proc_, new, dups);
        }
    }

    /// Whether pages wait to be processed (see [`crate::walker::deferred`]).
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Processes the deferred pages, in the order they arrived. The driver calls it once the
    /// calls they made were handed to the kernel; a reply or timeout handles any left first.
    pub fn run_deferred(&mut self, sink: &mut impl WalkSink) {
        if self.deferred.is_empty() {
            return;
        }
        let mut deferred = std::mem::take(&mut self.deferred);
        deferred.drain(|page| {
            let (proc_, view) = &page.view;
            let reply = if *proc_ == proc3::READDIRPLUS {
                view.attach(&page.body).map(ListReply::Plus)
            } else {
                view.attach(&page.body).map(ListReply::Plain)
            };
            match reply {
                Some(reply) => self.page_entries(page.task, *proc_, &reply, sink),
                None => unreachable!("a deferred page is detached from a copy of its bytes"),
            }
            page.body
        });
        self.deferred = deferred;
    }

    /// The listing's verdict reached on a deferred page, if any: its chain call came back.
    pub(super) fn take_fail_next(&mut self, task: usize) -> Option<PathError> {
        match self.tasks.get_mut(task) {
            Some(TaskState::Listing(l)) => l.fail_next.take(),
            _ => None,
        }
    }

    /// A reply without eof brought `new` entries and `dups` repeated ones: a server that keeps
    /// answering with nothing new (replaying the directory under fresh cookies) is stopped
    /// after [`FRUITLESS_REPLIES_MAX`] such replies in a row, with one error.
    fn check_progress(&mut self, task: usize, proc_: u32, new: u64, dups: u64) {
        let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
            return;
        };
        let expected = dups.min(l.catch_up);
        l.catch_up -= expected;
        if new > 0 || (dups > 0 && expected == dups) {
            l.fruitless = 0;
            return;
        }
        l.fruitless += 1;
        if l.fruitless < FRUITLESS_REPLIES_MAX {
            return;
        }
        // The chain's next call was made before these entries were processed (it may be out
        // already): the listing fails when it returns, with this error.
        l.fail_next = Some(PathError {
            path: l.task.path.clone(),
            op: crate::rpc::nfs3::proc_name(proc_),
            message: format!(
                "server sent {FRUITLESS_REPLIES_MAX} replies in a row without a new entry \
                 and without eof (after {} entries); listing stopped",
                l.entries_new
            ),
            status: None,
        });
    }

    /// Emits a validated reply's entries (iterating is cheap and allocation-free). Returns how
    /// many of them were new to this listing.
    fn process_entries(
        &mut self,
        task: usize,
        reply: &ListReply<'_>,
        sink: &mut impl WalkSink,
    ) -> u64 {
        let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
            return 0;
        };
        let id = l.id;
        let new_before = l.entries_new;
        let dir_path: Arc<[u8]> = Arc::from(&l.task.path[..]);
        let dir_fh = l.task.fh;
        let depth = l.task.depth + 1;
        let mut lookups: Vec<LookupName> = Vec::new();
        let mut path = std::mem::take(&mut self.scratch_path);
        match reply {
            ListReply::Plus(reply) => {
                let mut entries = KeyedAhead::new(reply.entries(), |e| entry_key(e.name, e.fileid));
                while let Some((e, key)) = entries.next_with(|k| self.prefetch_key(task, k)) {
                    if !self.accept_entry(task, &dir_path, e.name, key, depth, &mut path, sink) {
                        continue;
                    }
                    match (e.attrs, e.fh) {
                        (Some(a), fh)
                            if fh.is_some()
                                || (a.ftype != FileType3::Dir
                                    && !(self.cfg.readlink
                                        && !self.cfg.dirs_only
                                        && a.ftype == FileType3::Lnk)) =>
                        {
                            self.on_child(task, &path, &a, fh, depth, sink);
                        }
                        (attrs, _) => lookups.push(LookupName {
                            name: e.name.into(),
                            fileid: e.fileid,
                            attrs: attrs.map(Box::new),
                        }),
                    }
                }
            }
            ListReply::Plain(reply) => {
                // `names` mode: a directory whose link count is 2 has no subdirectories (the
                // classic leaf optimisation), so its names need no LOOKUP.
                let leaf =
                    self.cfg.mode == Mode::Names && reply.dir_attrs.is_some_and(|a| a.nlink == 2);
                let mut entries = KeyedAhead::new(reply.entries(), |e| entry_key(e.name, e.fileid));
                while let Some((e, key)) = entries.next_with(|k| self.prefetch_key(task, k)) {
                    if !self.accept_entry(task, &dir_path, e.name, key, depth, &mut path, sink) {
                        continue;
                    }
                    if leaf {
                        let attrs = EntryAttrs::names_only(e.fileid);
                        self.emit(&path, &attrs, depth, None, sink);
                    } else {
                        lookups.push(LookupName {
                            name: e.name.into(),
                            fileid: e.fileid,
                            attrs: None,
                        });
                    }
                }
            }
        }
        self.scratch_path = path;
        // Moved into batches, not copied: each name was allocated once above.
        let mut names = lookups.into_iter();
        loop {
            let batch: Vec<LookupName> = names.by_ref().take(LOOKUP_BATCH_NAMES).collect();
            if batch.is_empty() {
                break;
            }
            sink.spawn(
                id,
                Task::Lookups(LookupBatch {
                    dir_fh,
                    dir_path: dir_path.clone(),
                    depth,
                    names: batch,
                }),
            );
        }
        match self.tasks.get(task) {
            Some(TaskState::Listing(l)) => l.entries_new - new_before,
            _ => 0,
        }
    }

    /// See [`EmittedSet::prefetch`].
    #[inline]
    fn prefetch_key(&self, task: usize, key: u64) {
        if let Some(TaskState::Listing(l)) = self.tasks.get(task) {
            l.seen.prefetch(key);
        }
    }

    /// Filters one listed name (`key`: its [`entry_key`]): hostile, duplicate, excluded or too
    /// deep entries are dropped. On acceptance `path` holds the entry's path.
    #[allow(clippy::too_many_arguments)]
    fn accept_entry(
        &mut self,
        task: usize,
        dir_path: &[u8],
        name: &[u8],
        key: u64,
        depth: u32,
        path: &mut Vec<u8>,
        sink: &mut impl WalkSink,
    ) -> bool {
        if !self.name_ok(dir_path, name, sink) {
            return false;
        }
        let Some(TaskState::Listing(l)) = self.tasks.get_mut(task) else {
            return false;
        };
        if !l.seen.insert(key) {
            self.stats.duplicates_skipped += 1;
            return false;
        }
        l.entries_new += 1;
        if self.cfg.max_depth.is_some_and(|m| depth > m) {
            return false;
        }
        path.clear();
        if dir_path != b"." {
            path.extend_from_slice(dir_path);
            path.push(b'/');
        }
        path.extend_from_slice(name);
        !self.cfg.excludes.excludes(name, path)
    }
}
