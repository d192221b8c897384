//! Sans-IO tests of the walk state machine ([`Walker`]).
//!
//! A small in-memory NFS server model (a tree of nodes with names, fileids, types and handles)
//! answers the calls the walker encodes: each record is split off with [`RecordAssembler`],
//! decoded with [`ReceivedCall`] and the argument decoders, and answered with the codec's own
//! result encoders. A driver loop moves the bytes (poll_transmit → server → on_reply) under a
//! fake clock, and a [`WalkSink`] collects entries, spawned tasks (fed back in as the scheduler
//! would, counting outstanding tasks) and errors. Faults are injected per call.

use nfs_walker::record::{EntryAttrs, EntryRecord, EntryRef, EntryType};
use nfs_walker::rpc::msg::{encode_accepted_reply, AcceptStat, ReceivedCall};
use nfs_walker::rpc::nfs3::{
    proc3, DirEntry, DirEntryPlus, Fattr3, FileHandle, FileType3, GetattrArgs, GetattrReply,
    LookupArgs, LookupOk, LookupReply, NfsTime3, Nfsstat3, ReaddirArgs, ReaddirPlusArgs,
    ReaddirPlusReplyEncoder, ReaddirReplyEncoder, ReadlinkArgs, ReadlinkOk, ReadlinkReply,
    SpecData3, NFS_PROGRAM, NFS_V3,
};
use nfs_walker::rpc::{RecordAssembler, Reply, DEFAULT_RECORD_BYTES_MAX};
use nfs_walker::sched::TaskId;
use nfs_walker::walker::{
    DirTask, ExcludeSet, Mode, PathError, Task, VisitedDirs, WalkConfig, WalkSink, Walker,
};
use nfs_walker::xdr::{XdrDecode, XdrWriter};
use proptest::prelude::*;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FSID: u64 = 0x0f5;
const ROOT: usize = 0;
/// Simulated round trip of a call that is answered.
const RTT: Duration = Duration::from_millis(1);
/// A walk that needs more driver rounds than this is stuck.
const ROUNDS_MAX: u64 = 500_000;
/// Bytes of an accepted RPC reply header (xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS).
const REPLY_HEADER_BYTES: usize = 24;

// ---------------------------------------------------------------------------------------------
// A deterministic random source (SplitMix64): the tests must not depend on a global RNG.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Node {
    ftype: FileType3,
    fileid: u64,
    fsid: u64,
    parent: usize,
    children: Vec<(Vec<u8>, usize)>,
    /// Children that are directories (for nlink).
    subdirs: u32,
    target: Vec<u8>,
}

#[derive(Debug, Clone)]
struct ListItem {
    name: Vec<u8>,
    node: usize,
    cookie: u64,
}

/// A directory's listing as the server hands it out: random cookies, a verifier.
#[derive(Debug, Clone)]
struct DirListing {
    items: Vec<ListItem>,
    verf: [u8; 8],
    pos_of: HashMap<u64, usize>,
}

/// A call as the server decoded it. Node numbers are `usize::MAX` for unknown handles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Sent {
    ReaddirPlus {
        dir: usize,
        cookie: u64,
        verf: [u8; 8],
        dircount: u32,
        maxcount: u32,
    },
    Readdir {
        dir: usize,
        cookie: u64,
        verf: [u8; 8],
        count: u32,
    },
    Lookup {
        dir: usize,
        name: Vec<u8>,
    },
    Getattr {
        node: usize,
    },
    Readlink {
        node: usize,
    },
}

impl Sent {
    /// The directory listed or looked in, or the object asked about.
    fn node(&self) -> usize {
        match self {
            Sent::ReaddirPlus { dir, .. }
            | Sent::Readdir { dir, .. }
            | Sent::Lookup { dir, .. } => *dir,
            Sent::Getattr { node } | Sent::Readlink { node } => *node,
        }
    }

    fn is_listing(&self) -> bool {
        matches!(self, Sent::ReaddirPlus { .. } | Sent::Readdir { .. })
    }

    /// The call with its buffer sizes left out (a resent first call may ask for more).
    fn position(&self) -> (usize, Option<(u64, [u8; 8])>) {
        (self.node(), self.cookie())
    }

    /// The call with its buffer sizes zeroed: equal for every attempt of one call.
    fn identity(&self) -> Sent {
        let mut s = self.clone();
        match &mut s {
            Sent::ReaddirPlus {
                dircount, maxcount, ..
            } => (*dircount, *maxcount) = (0, 0),
            Sent::Readdir { count, .. } => *count = 0,
            _ => {}
        }
        s
    }

    fn cookie(&self) -> Option<(u64, [u8; 8])> {
        match self {
            Sent::ReaddirPlus { cookie, verf, .. } | Sent::Readdir { cookie, verf, .. } => {
                Some((*cookie, *verf))
            }
            _ => None,
        }
    }
}

/// One call the server received.
#[derive(Debug, Clone)]
struct CallLog {
    /// Fake-clock time of arrival, since the harness started.
    at: Duration,
    conn: usize,
    xid: u32,
    sent: Sent,
}

/// What the server does with a call.
#[derive(Debug, Clone)]
enum Action {
    Answer,
    /// Answer, but keep the reply back (lost on the way, or a stalled server);
    /// [`Harness::deliver_held`] hands it over late.
    Hold,
    /// Fail with this NFS status.
    Status(Nfsstat3),
    /// A valid RPC header whose NFS result is cut in half.
    Truncate,
    /// A valid RPC header and at most this many bytes of the NFS result.
    CutTo(usize),
    /// Bytes that are not an RPC reply at all (the driver then drops the connection, as the
    /// worker loop does).
    Garbage,
    /// An RPC-level failure (GARBAGE_ARGS, SYSTEM_ERR, ...).
    Rpc(AcceptStat),
    /// A listing answered as if its cookie were 0 (a server that forgets where it was).
    IgnoreCookie,
    /// These exact NFS result bytes.
    Body(Vec<u8>),
}

struct Server {
    nodes: Vec<Node>,
    /// (directory, name) -> node, for LOOKUP.
    by_name: HashMap<(usize, Vec<u8>), usize>,
    lists: HashMap<usize, DirListing>,
    /// Listing items per reply at most (`.` and `..` count): the batch size.
    page_entries: usize,
    dot_entries: bool,
    /// Report eof only on a page that is not full (a full last page is followed by an empty one).
    lazy_eof: bool,
    /// READDIRPLUS entries sent without (attributes, handle), by node.
    plus_omit: HashMap<usize, (bool, bool)>,
    /// LOOKUP replies sent without the object's attributes, by node.
    lookup_omit_attrs: HashSet<usize>,
    rng: Rng,
    log: Vec<CallLog>,
}

impl Server {
    fn new(seed: u64) -> Self {
        Server {
            nodes: vec![Node {
                ftype: FileType3::Dir,
                fileid: 0x1000,
                fsid: FSID,
                parent: ROOT,
                children: Vec::new(),
                subdirs: 0,
                target: Vec::new(),
            }],
            by_name: HashMap::new(),
            lists: HashMap::new(),
            page_entries: 8,
            dot_entries: true,
            lazy_eof: false,
            plus_omit: HashMap::new(),
            lookup_omit_attrs: HashSet::new(),
            rng: Rng(seed),
            log: Vec::new(),
        }
    }

    fn add(&mut self, parent: usize, name: impl AsRef<[u8]>, ftype: FileType3) -> usize {
        let idx = self.nodes.len();
        let fsid = self.nodes[parent].fsid;
        self.nodes.push(Node {
            ftype,
            fileid: 0x1000 + 0x11 * idx as u64,
            fsid,
            parent,
            children: Vec::new(),
            subdirs: 0,
            target: Vec::new(),
        });
        self.link(parent, name, idx);
        idx
    }

    fn dir(&mut self, parent: usize, name: impl AsRef<[u8]>) -> usize {
        self.add(parent, name, FileType3::Dir)
    }

    fn file(&mut self, parent: usize, name: impl AsRef<[u8]>) -> usize {
        self.add(parent, name, FileType3::Reg)
    }

    fn symlink(&mut self, parent: usize, name: impl AsRef<[u8]>, target: &[u8]) -> usize {
        let n = self.add(parent, name, FileType3::Lnk);
        self.nodes[n].target = target.to_vec();
        n
    }

    /// Another name for an existing node (a hard link, or a directory reached twice).
    fn link(&mut self, parent: usize, name: impl AsRef<[u8]>, node: usize) {
        let name = name.as_ref().to_vec();
        self.by_name.insert((parent, name.clone()), node);
        if self.nodes[node].ftype == FileType3::Dir {
            self.nodes[parent].subdirs += 1;
        }
        self.nodes[parent].children.push((name, node));
    }

    fn fh(&self, node: usize) -> FileHandle {
        // Handles of varying length, so nothing may assume a fixed size.
        let mut b = b"fh".to_vec();
        b.extend_from_slice(&(node as u64).to_be_bytes());
        b.resize(b.len() + node % 5, 0xa5);
        FileHandle::from_bytes(&b).expect("short handle")
    }

    fn node_of(&self, fh: &FileHandle) -> usize {
        let b = fh.as_bytes();
        if b.len() < 10 || &b[..2] != b"fh" {
            return usize::MAX;
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[2..10]);
        let n = u64::from_be_bytes(id) as usize;
        if n < self.nodes.len() && *fh == self.fh(n) {
            n
        } else {
            usize::MAX
        }
    }

    fn fattr(&self, node: usize) -> Fattr3 {
        let n = &self.nodes[node];
        let t = NfsTime3 {
            seconds: 1_600_000_000 + n.fileid as u32,
            nseconds: 7,
        };
        Fattr3 {
            ftype: n.ftype,
            mode: if n.ftype == FileType3::Dir {
                0o40755
            } else {
                0o100644
            },
            nlink: if n.ftype == FileType3::Dir {
                2 + n.subdirs
            } else {
                1
            },
            uid: 1000,
            gid: 100,
            size: n.fileid * 3 + 1,
            used: n.fileid * 4,
            rdev: SpecData3::default(),
            fsid: n.fsid,
            fileid: n.fileid,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    fn is_dir(&self, node: usize) -> bool {
        node < self.nodes.len() && self.nodes[node].ftype == FileType3::Dir
    }

    /// The node reached by a '/'-separated path from the root.
    fn find(&self, path: &str) -> usize {
        let mut n = ROOT;
        for part in path.split('/') {
            n = self.nodes[n]
                .children
                .iter()
                .find(|(name, _)| name == part.as_bytes())
                .unwrap_or_else(|| panic!("no {path} in the model"))
                .1;
        }
        n
    }

    fn fresh_cookie(&mut self, taken: &HashMap<u64, usize>) -> u64 {
        loop {
            let c = self.rng.next_u64();
            if c != 0 && !taken.contains_key(&c) {
                return c;
            }
        }
    }

    fn build_listing(&mut self, dir: usize, shuffle: bool) {
        let mut children = self.nodes[dir].children.clone();
        if shuffle {
            self.rng.shuffle(&mut children);
        }
        let mut names: Vec<(Vec<u8>, usize)> = Vec::new();
        if self.dot_entries {
            names.push((b".".to_vec(), dir));
            names.push((b"..".to_vec(), self.nodes[dir].parent));
        }
        names.extend(children);
        let mut pos_of = HashMap::new();
        let mut items = Vec::with_capacity(names.len());
        for (i, (name, node)) in names.into_iter().enumerate() {
            let cookie = self.fresh_cookie(&pos_of);
            pos_of.insert(cookie, i);
            items.push(ListItem { name, node, cookie });
        }
        let mut verf = self.rng.next_u64().to_be_bytes();
        verf[0] |= 1; // never the zero verifier of a first call
        self.lists.insert(
            dir,
            DirListing {
                items,
                verf,
                pos_of,
            },
        );
    }

    fn listing(&mut self, dir: usize) -> &DirListing {
        if !self.lists.contains_key(&dir) {
            self.build_listing(dir, false);
        }
        &self.lists[&dir]
    }

    /// The directory changed: new verifier, new cookies, a new order.
    fn rekey(&mut self, dir: usize) {
        self.build_listing(dir, true);
    }

    fn decode_call(&self, call: &ReceivedCall<'_>) -> Sent {
        let args = call.args;
        match call.proc_ {
            proc3::READDIRPLUS => {
                let a = ReaddirPlusArgs::from_xdr(args).expect("READDIRPLUS args");
                Sent::ReaddirPlus {
                    dir: self.node_of(&a.dir),
                    cookie: a.cookie,
                    verf: a.cookieverf,
                    dircount: a.dircount,
                    maxcount: a.maxcount,
                }
            }
            proc3::READDIR => {
                let a = ReaddirArgs::from_xdr(args).expect("READDIR args");
                Sent::Readdir {
                    dir: self.node_of(&a.dir),
                    cookie: a.cookie,
                    verf: a.cookieverf,
                    count: a.count,
                }
            }
            proc3::LOOKUP => {
                let a = LookupArgs::from_xdr(args).expect("LOOKUP args");
                Sent::Lookup {
                    dir: self.node_of(&a.dir),
                    name: a.name.to_vec(),
                }
            }
            proc3::GETATTR => {
                let a = GetattrArgs::from_xdr(args).expect("GETATTR args");
                Sent::Getattr {
                    node: self.node_of(&a.fh),
                }
            }
            proc3::READLINK => {
                let a = ReadlinkArgs::from_xdr(args).expect("READLINK args");
                Sent::Readlink {
                    node: self.node_of(&a.fh),
                }
            }
            p => panic!("the walker sent procedure {p}, which it never should"),
        }
    }

    /// The whole reply record body for `sent`.
    fn answer(&mut self, xid: u32, sent: &Sent, action: Action) -> Vec<u8> {
        let mut buf = Vec::new();
        match action {
            Action::Garbage => return b"\xde\xad\xbe\xef not an RPC reply".to_vec(),
            Action::Rpc(stat) => {
                encode_accepted_reply(&mut XdrWriter::new(&mut buf), xid, stat);
                return buf;
            }
            _ => {}
        }
        encode_accepted_reply(&mut XdrWriter::new(&mut buf), xid, AcceptStat::Success);
        match action {
            Action::Answer | Action::Hold => self.result(sent, false, &mut buf),
            Action::IgnoreCookie => self.result(sent, true, &mut buf),
            Action::Status(s) => {
                if s == Nfsstat3::BadCookie && sent.is_listing() && self.is_dir(sent.node()) {
                    self.rekey(sent.node());
                }
                self.fail(sent, s, &mut buf);
            }
            Action::Truncate => {
                self.result(sent, false, &mut buf);
                let body = buf.len() - REPLY_HEADER_BYTES;
                buf.truncate(REPLY_HEADER_BYTES + body / 2);
            }
            Action::CutTo(n) => {
                self.result(sent, false, &mut buf);
                buf.truncate(REPLY_HEADER_BYTES + n);
            }
            Action::Body(b) => buf.extend_from_slice(&b),
            Action::Garbage | Action::Rpc(_) => unreachable!(),
        }
        buf
    }

    fn fail(&self, sent: &Sent, status: Nfsstat3, buf: &mut Vec<u8>) {
        let dir_attrs = self.is_dir(sent.node()).then(|| self.fattr(sent.node()));
        match sent {
            Sent::ReaddirPlus { .. } => {
                ReaddirPlusReplyEncoder::encode_fail(buf, status, dir_attrs.as_ref())
            }
            Sent::Readdir { .. } => {
                ReaddirReplyEncoder::encode_fail(buf, status, dir_attrs.as_ref())
            }
            Sent::Lookup { .. } => {
                LookupReply::encode_fail(&mut XdrWriter::new(buf), status, dir_attrs.as_ref())
            }
            Sent::Getattr { .. } => {
                GetattrReply::encode_fail(&mut XdrWriter::new(buf), status, None)
            }
            Sent::Readlink { .. } => {
                ReadlinkReply::encode_fail(&mut XdrWriter::new(buf), status, None)
            }
        }
    }

    fn result(&mut self, sent: &Sent, ignore_cookie: bool, buf: &mut Vec<u8>) {
        let node = sent.node();
        if node == usize::MAX {
            return self.fail(sent, Nfsstat3::Stale, buf);
        }
        match sent {
            Sent::ReaddirPlus {
                dir,
                cookie,
                verf,
                dircount,
                maxcount,
            } => {
                let cookie = if ignore_cookie { 0 } else { *cookie };
                self.list_page(*dir, cookie, *verf, Some((*dircount, *maxcount)), 0, buf)
            }
            Sent::Readdir {
                dir,
                cookie,
                verf,
                count,
            } => {
                let cookie = if ignore_cookie { 0 } else { *cookie };
                self.list_page(*dir, cookie, *verf, None, *count, buf)
            }
            Sent::Lookup { dir, name } => {
                if !self.is_dir(*dir) {
                    return self.fail(sent, Nfsstat3::Notdir, buf);
                }
                let Some(&child) = self.by_name.get(&(*dir, name.clone())) else {
                    return self.fail(sent, Nfsstat3::Noent, buf);
                };
                let ok = LookupOk {
                    fh: self.fh(child),
                    obj_attrs: (!self.lookup_omit_attrs.contains(&child))
                        .then(|| self.fattr(child)),
                    dir_attrs: Some(self.fattr(*dir)),
                };
                LookupReply::encode_ok(&mut XdrWriter::new(buf), &ok);
            }
            Sent::Getattr { node } => {
                GetattrReply::encode_ok(&mut XdrWriter::new(buf), &self.fattr(*node));
            }
            Sent::Readlink { node } => {
                if self.nodes[*node].ftype != FileType3::Lnk {
                    return self.fail(sent, Nfsstat3::Inval, buf);
                }
                let ok = ReadlinkOk {
                    attrs: Some(self.fattr(*node)),
                    target: &self.nodes[*node].target,
                };
                ReadlinkReply::encode_ok(&mut XdrWriter::new(buf), &ok);
            }
        }
    }

    /// One page of a listing, from the item after `cookie`; `plus` holds (dircount, maxcount).
    fn list_page(
        &mut self,
        dir: usize,
        cookie: u64,
        verf: [u8; 8],
        plus: Option<(u32, u32)>,
        count: u32,
        buf: &mut Vec<u8>,
    ) {
        let sent_kind = if plus.is_some() {
            Sent::ReaddirPlus {
                dir,
                cookie,
                verf,
                dircount: 0,
                maxcount: 0,
            }
        } else {
            Sent::Readdir {
                dir,
                cookie,
                verf,
                count: 0,
            }
        };
        if !self.is_dir(dir) {
            return self.fail(&sent_kind, Nfsstat3::Notdir, buf);
        }
        let page = self.page_entries;
        let lazy_eof = self.lazy_eof;
        let listing = self.listing(dir).clone();
        let start = if cookie == 0 {
            0
        } else if verf != listing.verf {
            return self.fail(&sent_kind, Nfsstat3::BadCookie, buf);
        } else {
            match listing.pos_of.get(&cookie) {
                Some(p) => p + 1,
                None => return self.fail(&sent_kind, Nfsstat3::BadCookie, buf),
            }
        };
        let dir_attrs = self.fattr(dir);
        let items = &listing.items[start..];
        let mut pushed = 0;
        match plus {
            Some((dircount, maxcount)) => {
                let mut enc = ReaddirPlusReplyEncoder::begin(
                    buf,
                    Some(&dir_attrs),
                    listing.verf,
                    dircount,
                    maxcount,
                );
                for it in items.iter().take(page) {
                    let (omit_attrs, omit_fh) =
                        self.plus_omit.get(&it.node).copied().unwrap_or_default();
                    let e = DirEntryPlus {
                        fileid: self.nodes[it.node].fileid,
                        name: &it.name,
                        cookie: it.cookie,
                        attrs: (!omit_attrs).then(|| self.fattr(it.node)),
                        fh: (!omit_fh).then(|| self.fh(it.node)),
                    };
                    if !enc.push(buf, &e) {
                        break;
                    }
                    pushed += 1;
                }
                let eof = start + pushed == listing.items.len() && !(lazy_eof && pushed == page);
                if pushed == 0 && !eof {
                    buf.truncate(REPLY_HEADER_BYTES);
                    return self.fail(&sent_kind, Nfsstat3::Toosmall, buf);
                }
                enc.finish(buf, eof);
            }
            None => {
                let mut enc =
                    ReaddirReplyEncoder::begin(buf, Some(&dir_attrs), listing.verf, count);
                for it in items.iter().take(page) {
                    let e = DirEntry {
                        fileid: self.nodes[it.node].fileid,
                        name: &it.name,
                        cookie: it.cookie,
                    };
                    if !enc.push(buf, &e) {
                        break;
                    }
                    pushed += 1;
                }
                let eof = start + pushed == listing.items.len() && !(lazy_eof && pushed == page);
                if pushed == 0 && !eof {
                    buf.truncate(REPLY_HEADER_BYTES);
                    return self.fail(&sent_kind, Nfsstat3::Toosmall, buf);
                }
                enc.finish(buf, eof);
            }
        }
    }

    /// Calls received that match `f`.
    fn calls(&self, f: impl Fn(&Sent) -> bool) -> Vec<&CallLog> {
        self.log.iter().filter(|c| f(&c.sent)).collect()
    }

    fn listing_calls(&self, dir: usize) -> Vec<&CallLog> {
        self.calls(|s| s.is_listing() && s.node() == dir)
    }
}

/// Whether the walker accepts a listed name.
fn name_is_valid(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 1024
        && !name.contains(&b'/')
        && !name.contains(&0)
        && name != b"."
        && name != b".."
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent == b"." {
        return name.to_vec();
    }
    [parent, b"/", name].concat()
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// An entry the walk should produce.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    attrs: EntryAttrs,
    depth: u32,
    target: Option<Vec<u8>>,
    node: usize,
}

/// Every entry under the root, as a correct walk reports it (trees without hard links).
fn tree_entries(s: &Server, readlink: bool) -> BTreeMap<Vec<u8>, Expected> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(ROOT, b".".to_vec(), 0u32)];
    let mut listed = HashSet::new();
    while let Some((dir, path, depth)) = stack.pop() {
        if !listed.insert(dir) {
            continue;
        }
        for (name, child) in &s.nodes[dir].children {
            if !name_is_valid(name) {
                continue;
            }
            let p = join(&path, name);
            let n = &s.nodes[*child];
            out.insert(
                p.clone(),
                Expected {
                    attrs: s.fattr(*child).to_entry_attrs(),
                    depth: depth + 1,
                    target: (readlink && n.ftype == FileType3::Lnk).then(|| n.target.clone()),
                    node: *child,
                },
            );
            if n.ftype == FileType3::Dir {
                stack.push((*child, p, depth + 1));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The sink and the driver
// ---------------------------------------------------------------------------------------------

/// Collects what the walk emits and plays the scheduler: spawned tasks go to a LIFO queue and
/// count as outstanding until `task_done`.
#[derive(Default)]
struct Collect {
    entries: Vec<EntryRecord>,
    queue: Vec<(TaskId, Task)>,
    /// Ids handed out so far, and the tasks not yet done (each id finishes exactly once).
    next_id: u64,
    open: HashSet<TaskId>,
    spawned: Vec<Task>,
    errors: Vec<PathError>,
    outstanding: i64,
    lookup_batches: i64,
    lookup_batches_max: i64,
    dirs_done: u64,
    lookups_done: u64,
}

impl WalkSink for Collect {
    fn entry(&mut self, entry: &EntryRef<'_>) {
        self.entries.push(entry.to_owned());
    }

    fn spawn(&mut self, parent: TaskId, task: Task) {
        assert!(self.open.contains(&parent), "a child of a task not running");
        self.outstanding += 1;
        if matches!(task, Task::Lookups(_)) {
            self.lookup_batches += 1;
            self.lookup_batches_max = self.lookup_batches_max.max(self.lookup_batches);
        }
        self.spawned.push(task.clone());
        self.push(task);
    }

    fn task_done(&mut self, id: TaskId, lookups: bool) {
        assert!(
            self.open.remove(&id),
            "task {id:?} done twice or never taken"
        );
        self.outstanding -= 1;
        assert!(self.outstanding >= 0, "task_done without a task");
        if lookups {
            self.lookup_batches -= 1;
            self.lookups_done += 1;
        } else {
            self.dirs_done += 1;
        }
    }

    fn error(&mut self, err: PathError) {
        self.errors.push(err);
    }
}

impl Collect {
    /// Queues a task under a new id.
    fn push(&mut self, task: Task) {
        self.next_id += 1;
        let id = TaskId(self.next_id);
        self.open.insert(id);
        self.queue.push((id, task));
    }
}

type FaultFn = Box<dyn FnMut(&CallLog, &Server) -> Action>;

struct Harness {
    walker: Walker,
    server: Server,
    sink: Collect,
    fault: FaultFn,
    start: Instant,
    now: Instant,
    bufs: Vec<Vec<u8>>,
    up: Vec<bool>,
    /// Replies kept back by [`Action::Hold`]: (connection, reply bytes, xid).
    held: Vec<(usize, Vec<u8>, u32)>,
    /// Shuffles the replies of each round when set.
    reorder: Option<Rng>,
    reconnects: u64,
    /// Rounds in which listing pages waited for their next call to go out.
    deferred_rounds: usize,
}

impl Harness {
    fn new(server: Server, cfg: WalkConfig, conns: usize) -> Self {
        let visited = Arc::new(VisitedDirs::default());
        let root = server.fattr(ROOT);
        visited.insert(root.fsid, root.fileid);
        let mut walker = Walker::new(Arc::new(cfg), visited, conns, 3);
        for c in 0..conns {
            walker.on_conn_up(c);
        }
        let start = Instant::now();
        Harness {
            walker,
            server,
            sink: Collect::default(),
            fault: Box::new(|_, _| Action::Answer),
            start,
            now: start,
            bufs: vec![Vec::new(); conns],
            up: vec![true; conns],
            held: Vec::new(),
            reorder: None,
            reconnects: 0,
            deferred_rounds: 0,
        }
    }

    fn with_fault(mut self, f: impl FnMut(&CallLog, &Server) -> Action + 'static) -> Self {
        self.fault = Box::new(f);
        self
    }

    /// Queues the root directory, as the scan command does.
    fn start_root(&mut self) {
        self.sink.outstanding += 1;
        let fsid = self.server.fattr(ROOT).fsid;
        self.sink.push(Task::Dir(DirTask {
            fh: self.server.fh(ROOT),
            path: b".".to_vec(),
            depth: 0,
            fsid,
        }));
    }

    /// One round: hand out tasks, fire due timers, transmit, let the server answer, deliver.
    /// Returns (calls sent, replies delivered).
    fn pump(&mut self) -> (usize, usize) {
        while self.walker.wants_task() {
            match self.sink.queue.pop() {
                Some((id, t)) => self.walker.add_task(id, t, &mut self.sink),
                None => break,
            }
        }
        if self
            .walker
            .poll_timeout(self.now)
            .is_some_and(|t| t <= self.now)
        {
            self.walker.on_timeout(self.now, &mut self.sink);
        }
        self.walker
            .set_lookup_backlog(self.sink.lookup_batches.max(0) as usize);
        let sent = self.walker.poll_transmit(self.now, &mut self.bufs);
        // The drive loop processes deferred listing pages once the calls went out. Rounds with
        // shuffled replies leave them to the next reply instead (the walker's fallback).
        self.deferred_rounds += self.walker.has_deferred() as usize;
        if self.reorder.is_none() {
            self.walker.run_deferred(&mut self.sink);
        }
        let mut replies: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut records = 0;
        for conn in 0..self.bufs.len() {
            let bytes = std::mem::take(&mut self.bufs[conn]);
            if bytes.is_empty() {
                continue;
            }
            assert!(
                self.up[conn],
                "calls encoded for connection {conn}, which is down"
            );
            let mut asm = RecordAssembler::new(DEFAULT_RECORD_BYTES_MAX);
            asm.push(&bytes);
            while let Some(rec) = asm.next_record().expect("the walker's record marking") {
                records += 1;
                let call = ReceivedCall::decode(rec).expect("the walker's calls decode");
                assert_eq!(
                    (call.rpcvers, call.prog, call.vers),
                    (2, NFS_PROGRAM, NFS_V3)
                );
                let log = CallLog {
                    at: self.now - self.start,
                    conn,
                    xid: call.xid,
                    sent: self.server.decode_call(&call),
                };
                let action = (self.fault)(&log, &self.server);
                let hold = matches!(action, Action::Hold);
                let reply = self.server.answer(call.xid, &log.sent, action);
                if hold {
                    self.held.push((conn, reply, call.xid));
                } else {
                    replies.push((conn, reply));
                }
                self.server.log.push(log);
            }
            assert_eq!(asm.buffered(), 0, "a partial record was left in the buffer");
        }
        assert_eq!(
            records, sent,
            "poll_transmit's count and the records differ"
        );
        if let Some(rng) = &mut self.reorder {
            rng.shuffle(&mut replies);
        }
        let delivered = replies.len();
        for (conn, bytes) in replies {
            self.deliver(conn, &bytes);
        }
        (sent, delivered)
    }

    /// Hands a reply to the walker as the worker loop does: an undecodable one breaks the
    /// connection (which then reconnects at once here).
    fn deliver(&mut self, conn: usize, bytes: &[u8]) {
        if !self.up[conn] {
            return; // a closed connection's bytes never arrive
        }
        match Reply::decode(bytes) {
            Ok(r) => self
                .walker
                .on_reply(r.xid, r.outcome, self.now, &mut self.sink),
            Err(_) => {
                self.walker.on_conn_down(conn);
                self.walker.on_conn_up(conn);
                self.reconnects += 1;
            }
        }
    }

    /// Delivers the held reply of `xid` now.
    fn deliver_held(&mut self, xid: u32) {
        let i = self
            .held
            .iter()
            .position(|h| h.2 == xid)
            .expect("a held reply");
        let (conn, bytes, _) = self.held.remove(i);
        self.deliver(conn, &bytes);
    }

    fn deliver_all_held(&mut self) {
        for (conn, bytes, _) in std::mem::take(&mut self.held) {
            self.deliver(conn, &bytes);
        }
    }

    fn conn_down(&mut self, conn: usize) {
        self.up[conn] = false;
        self.walker.on_conn_down(conn);
    }

    fn conn_up(&mut self, conn: usize) {
        self.up[conn] = true;
        self.walker.on_conn_up(conn);
    }

    fn finished(&self) -> bool {
        self.sink.outstanding == 0 && self.sink.queue.is_empty() && self.walker.is_idle()
    }

    /// One round, advancing the fake clock; false once the walk is complete.
    fn step(&mut self) -> bool {
        let (sent, delivered) = self.pump();
        if sent > 0 || delivered > 0 {
            self.now += RTT;
            return true;
        }
        if self.finished() {
            return false;
        }
        match self.walker.poll_timeout(self.now) {
            Some(t) if t > self.now => self.now = t,
            Some(_) => {}
            None => panic!(
                "the walker stalled: {} tasks outstanding, {} queued, {} held, nothing to send \
                 and no timer",
                self.sink.outstanding,
                self.sink.queue.len(),
                self.walker.tasks_held()
            ),
        }
        true
    }

    fn run(&mut self) {
        for _ in 0..ROUNDS_MAX {
            if !self.step() {
                assert_eq!(self.walker.inflight(), 0);
                return;
            }
        }
        panic!("the walk did not finish in {ROUNDS_MAX} rounds");
    }

    /// Entries by path; panics on a path emitted twice.
    fn entries_by_path(&self) -> BTreeMap<Vec<u8>, EntryRecord> {
        let mut m = BTreeMap::new();
        for e in &self.sink.entries {
            if m.insert(e.path.clone(), e.clone()).is_some() {
                panic!("entry {} emitted twice", show(&e.path));
            }
        }
        m
    }

    fn assert_entries(&self, expected: &BTreeMap<Vec<u8>, Expected>) {
        let got = self.entries_by_path();
        let missing: Vec<String> = expected
            .keys()
            .filter(|p| !got.contains_key(*p))
            .map(|p| show(p))
            .collect();
        let extra: Vec<String> = got
            .keys()
            .filter(|p| !expected.contains_key(*p))
            .map(|p| show(p))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "entry sets differ: {} missing {:?}, {} unexpected {:?}",
            missing.len(),
            &missing[..missing.len().min(20)],
            extra.len(),
            &extra[..extra.len().min(20)]
        );
        for (p, e) in expected {
            let g = &got[p];
            assert_eq!(g.attrs, e.attrs, "attributes of {}", show(p));
            assert_eq!(g.depth, e.depth, "depth of {}", show(p));
            assert_eq!(g.target, e.target, "target of {}", show(p));
        }
    }

    fn assert_no_errors(&self) {
        assert!(
            self.sink.errors.is_empty(),
            "unexpected errors: {:?}",
            self.sink.errors
        );
    }

    fn assert_done(&self) {
        assert!(self.finished(), "walk not finished");
        assert_eq!(self.sink.lookup_batches, 0);
        assert_eq!(self.walker.tasks_held(), 0);
    }

    fn spawned_dirs(&self) -> Vec<&DirTask> {
        self.sink
            .spawned
            .iter()
            .filter_map(|t| match t {
                Task::Dir(d) => Some(d),
                Task::Lookups(_) => None,
            })
            .collect()
    }
}

fn cfg() -> WalkConfig {
    WalkConfig {
        rpc_timeout: Duration::from_secs(1),
        retries: 3,
        inflight_per_conn: 8,
        // Every page that continues its chain waits for the next call to go out, as a large
        // page does in a scan.
        defer_page_bytes_min: 0,
        ..WalkConfig::default()
    }
}

fn getattr_cfg() -> WalkConfig {
    WalkConfig {
        mode: Mode::Getattr,
        ..cfg()
    }
}

/// A root with `n` entries: every fourth a directory holding one file.
fn flat_tree(seed: u64, n: usize) -> Server {
    let mut s = Server::new(seed);
    for i in 0..n {
        if i % 4 == 3 {
            let d = s.dir(ROOT, format!("d{i:04}"));
            s.file(d, "inner");
        } else {
            s.file(ROOT, format!("f{i:04}"));
        }
    }
    s
}

/// `PROPTEST_CASES` when set (for long runs), else `default`.
fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn err_paths(h: &Harness) -> Vec<String> {
    h.sink.errors.iter().map(|e| show(&e.path)).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Plus mode, around the batch boundaries
// ---------------------------------------------------------------------------------------------

#[test]
fn plus_mode_yields_exactly_the_listing_at_every_batch_boundary() {
    for page in [1usize, 5, 8] {
        for lazy_eof in [false, true] {
            // Listing items are the entries plus `.` and `..`.
            let mut sizes = vec![0, 1, page * 5, page * 5 + 3];
            for items in [page.saturating_sub(1), page, page + 1] {
                sizes.push(items.saturating_sub(2));
            }
            sizes.sort_unstable();
            sizes.dedup();
            for n in sizes {
                let mut s = flat_tree(n as u64, n);
                s.page_entries = page;
                s.lazy_eof = lazy_eof;
                let mut h = Harness::new(s, cfg(), 1);
                h.start_root();
                h.run();
                let ctx = format!("page {page}, lazy eof {lazy_eof}, {n} entries");
                h.assert_done();
                h.assert_no_errors();
                let expected = tree_entries(&h.server, false);
                let in_root = expected.values().filter(|e| e.depth == 1).count();
                assert_eq!(in_root, n, "{ctx}");
                h.assert_entries(&expected);

                // The chain stops at eof: exactly the pages the listing needs.
                let items = n + 2;
                let mut pages = items.div_ceil(page);
                if lazy_eof && items % page == 0 {
                    pages += 1; // the empty page that finally says eof
                }
                assert_eq!(h.server.listing_calls(ROOT).len(), pages, "{ctx}");
                // Every page but the last was processed after the next call went out.
                assert_eq!(h.deferred_rounds > 0, pages > 1, "{ctx}");
                assert!(h
                    .server
                    .log
                    .iter()
                    .all(|c| matches!(c.sent, Sent::ReaddirPlus { .. })));

                // Subdirectories became DirTasks with their handle, path and depth.
                let mut spawned: Vec<(Vec<u8>, u32, Vec<u8>)> = h
                    .spawned_dirs()
                    .iter()
                    .map(|d| (d.path.clone(), d.depth, d.fh.as_bytes().to_vec()))
                    .collect();
                spawned.sort();
                let mut want: Vec<(Vec<u8>, u32, Vec<u8>)> = expected
                    .iter()
                    .filter(|(_, e)| e.attrs.kind == EntryType::Dir)
                    .map(|(p, e)| (p.clone(), e.depth, h.server.fh(e.node).as_bytes().to_vec()))
                    .collect();
                want.sort();
                assert_eq!(spawned, want, "{ctx}");
                assert!(h
                    .spawned_dirs()
                    .iter()
                    .all(|d| !d.path.ends_with(b".") && d.path != b"."));
                assert_eq!(h.sink.dirs_done as usize, want.len() + 1, "{ctx}");
                assert_eq!(h.walker.stats().entries as usize, expected.len(), "{ctx}");
            }
        }
    }
}

#[test]
fn listing_without_dot_entries_and_empty_directory() {
    let mut s = Server::new(1);
    s.dot_entries = false;
    s.dir(ROOT, "empty");
    s.file(ROOT, "a");
    let mut h = Harness::new(s, cfg(), 1);
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    h.assert_entries(&tree_entries(&h.server, false));
    let empty = h.server.find("empty");
    assert_eq!(h.server.listing_calls(empty).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 2. Cookies are opaque
// ---------------------------------------------------------------------------------------------

#[test]
fn continuation_uses_the_last_cookie_and_the_reply_verifier() {
    for mode in [Mode::Plus, Mode::Getattr] {
        let mut s = flat_tree(42, 30);
        s.page_entries = 7;
        let listing = s.listing(ROOT).clone();
        let cookies: Vec<u64> = listing.items.iter().map(|i| i.cookie).collect();
        // The model's cookies are random: neither ordered nor small.
        assert!(cookies.windows(2).any(|w| w[0] > w[1]));
        assert!(cookies.windows(2).any(|w| w[0] < w[1]));
        assert!(cookies.iter().any(|c| *c > 1 << 63));
        let cfg = WalkConfig { mode, ..cfg() };
        let maxcount = cfg.maxcount;
        let dircount = cfg.dircount;
        let mut h = Harness::new(s, cfg, 1);
        h.start_root();
        h.run();
        h.assert_done();
        h.assert_no_errors();
        h.assert_entries(&tree_entries(&h.server, false));
        assert_eq!(h.walker.stats().bad_cookie_restarts, 0);

        let calls = h.server.listing_calls(ROOT);
        assert_eq!(calls.len(), 32usize.div_ceil(7));
        for (k, c) in calls.iter().enumerate() {
            let (cookie, verf) = c.sent.cookie().expect("a listing call");
            if k == 0 {
                assert_eq!((cookie, verf), (0, [0; 8]), "a listing starts at cookie 0");
            } else {
                assert_eq!(cookie, listing.items[k * 7 - 1].cookie, "call {k}");
                assert_eq!(verf, listing.verf, "call {k} carries the reply's verifier");
            }
            match c.sent {
                Sent::ReaddirPlus {
                    dircount: dc,
                    maxcount: mc,
                    ..
                } => {
                    // The first call asks for less so the first entries come quickly.
                    let want_mc = if k == 0 {
                        maxcount.min(32 << 10)
                    } else {
                        maxcount
                    };
                    assert_eq!((dc, mc), (dircount.min(want_mc), want_mc), "call {k}");
                    assert_eq!(mode, Mode::Plus);
                }
                Sent::Readdir { count, .. } => {
                    assert_eq!(count, maxcount);
                    assert_eq!(mode, Mode::Getattr);
                }
                _ => unreachable!(),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. NFS3ERR_BAD_COOKIE
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_cookie_restarts_the_listing_without_duplicates_or_loss() {
    for mode in [Mode::Plus, Mode::Getattr] {
        let mut s = flat_tree(3, 40);
        s.page_entries = 6;
        let n_listing = Rc::new(Cell::new(0u32));
        let counter = n_listing.clone();
        let mut h = Harness::new(s, WalkConfig { mode, ..cfg() }, 1).with_fault(move |c, _| {
            if c.sent.is_listing() && c.sent.node() == ROOT {
                counter.set(counter.get() + 1);
                // The third and fifth calls of the root's chain: the directory changed (the
                // model then reorders it and hands out new cookies and a new verifier).
                if matches!(counter.get(), 3 | 5) {
                    return Action::Status(Nfsstat3::BadCookie);
                }
            }
            Action::Answer
        });
        h.start_root();
        h.run();
        h.assert_done();
        h.assert_no_errors();
        h.assert_entries(&tree_entries(&h.server, false));
        let st = h.walker.stats();
        assert_eq!(st.bad_cookie_restarts, 2);
        assert!(st.duplicates_skipped > 0, "the restarts re-listed entries");
        let calls = h.server.listing_calls(ROOT);
        for k in [3, 5] {
            // Call k (1-based) failed; call k+1 starts over.
            assert_eq!(
                calls[k].sent.cookie(),
                Some((0, [0; 8])),
                "{mode:?} call {k}"
            );
        }
        // After a restart the chain continues with the new verifier.
        let verf = h.server.lists[&ROOT].verf;
        assert_eq!(calls.last().unwrap().sent.cookie().unwrap().1, verf);
    }
}

#[test]
fn a_restart_past_the_in_memory_bound_finds_the_spilled_entries() {
    // Only 10 keys stay in memory; the rest of the 300 written before each restart are
    // spilled to a temporary file and must still be skipped after the restart.
    let mut s = flat_tree(5, 300);
    s.page_entries = 7;
    let n_listing = Rc::new(Cell::new(0u32));
    let counter = n_listing.clone();
    let cfg = WalkConfig {
        emitted_keys_in_memory: 10,
        ..cfg()
    };
    let mut h = Harness::new(s, cfg, 1).with_fault(move |c, _| {
        if c.sent.is_listing() && c.sent.node() == ROOT {
            counter.set(counter.get() + 1);
            if matches!(counter.get(), 30 | 50) {
                return Action::Status(Nfsstat3::BadCookie);
            }
        }
        Action::Answer
    });
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    h.assert_entries(&tree_entries(&h.server, false));
    let st = h.walker.stats();
    assert_eq!(st.bad_cookie_restarts, 2);
    assert!(
        st.duplicates_skipped > 200,
        "the restarts re-listed what was written, most of it spilled: {}",
        st.duplicates_skipped
    );
}

#[test]
fn a_listing_whose_cookies_keep_going_stale_fails_after_16_restarts() {
    let mut s = flat_tree(4, 30);
    s.page_entries = 5;
    s.dir(ROOT, "other"); // a sibling listing must be unaffected
    let mut h = Harness::new(s, cfg(), 1).with_fault(|c, _| match c.sent.cookie() {
        Some((cookie, _)) if cookie != 0 && c.sent.node() == ROOT => {
            Action::Status(Nfsstat3::BadCookie)
        }
        _ => Action::Answer,
    });
    h.start_root();
    h.run();
    h.assert_done();
    assert_eq!(h.sink.errors.len(), 1, "{:?}", h.sink.errors);
    let e = &h.sink.errors[0];
    assert_eq!(e.path, b".");
    assert_eq!(e.status, Some(Nfsstat3::BadCookie));
    // Each round: one good first page, one stale continuation; the 17th stale one gives up.
    assert_eq!(h.server.listing_calls(ROOT).len(), 17 * 2);
    assert_eq!(h.walker.stats().bad_cookie_restarts, 17);
    // What was seen is emitted once (entries_by_path panics on duplicates), and is real.
    let got = h.entries_by_path();
    let all = tree_entries(&h.server, false);
    assert!(got.len() >= 3);
    for (p, e) in &got {
        assert_eq!(Some(&e.attrs), all.get(p).map(|x| &x.attrs), "{}", show(p));
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Servers whose cookies loop, or that stall without eof
// ---------------------------------------------------------------------------------------------

/// A READDIRPLUS result of these (name, node, cookie) entries.
fn plus_body(
    s: &Server,
    dir: usize,
    verf: [u8; 8],
    entries: &[(&[u8], usize, u64)],
    eof: bool,
) -> Vec<u8> {
    let mut buf = Vec::new();
    let attrs = s.fattr(dir);
    let mut enc = ReaddirPlusReplyEncoder::begin(&mut buf, Some(&attrs), verf, 1 << 20, 1 << 20);
    for (name, node, cookie) in entries {
        let e = DirEntryPlus {
            fileid: s.nodes[*node].fileid,
            name,
            cookie: *cookie,
            attrs: Some(s.fattr(*node)),
            fh: Some(s.fh(*node)),
        };
        assert!(enc.push(&mut buf, &e));
    }
    enc.finish(&mut buf, eof);
    buf
}

fn looping_tree() -> Server {
    let mut s = Server::new(5);
    for i in 0..10 {
        s.file(ROOT, format!("f{i}"));
    }
    s.page_entries = 4;
    s
}

/// Entries of the first `n` listing items of the root.
fn first_items(h: &Harness, n: usize) -> BTreeSet<Vec<u8>> {
    h.server.lists[&ROOT].items[..n]
        .iter()
        .filter(|i| name_is_valid(&i.name))
        .map(|i| i.name.clone())
        .collect()
}

fn assert_loop_stopped(h: &Harness, calls: usize, want: BTreeSet<Vec<u8>>, msg: &str) {
    h.assert_done();
    assert_eq!(h.server.listing_calls(ROOT).len(), calls);
    assert_eq!(h.sink.errors.len(), 1, "{:?}", h.sink.errors);
    assert_eq!(h.sink.errors[0].path, b".");
    assert!(
        h.sink.errors[0].message.contains(msg),
        "{}",
        h.sink.errors[0].message
    );
    let got: BTreeSet<Vec<u8>> = h.entries_by_path().into_keys().collect();
    assert_eq!(got, want);
}

#[test]
fn a_server_that_forgets_the_cookie_is_stopped() {
    // Every continuation is answered with the first page again: its last cookie repeats.
    let mut h = Harness::new(looping_tree(), cfg(), 1).with_fault(|c, _| match c.sent.cookie() {
        Some((cookie, _)) if cookie != 0 => Action::IgnoreCookie,
        _ => Action::Answer,
    });
    h.start_root();
    h.run();
    let want = first_items(&h, 4);
    assert_loop_stopped(&h, 2, want, "twice");
    assert!(h.walker.stats().duplicates_skipped >= 2);
}

#[test]
fn a_reply_ending_on_the_cookie_it_continued_from_is_stopped() {
    let mut h = Harness::new(looping_tree(), cfg(), 1).with_fault(|c, s| match c.sent.cookie() {
        Some((cookie, verf)) if cookie != 0 => {
            let f9 = s.find("f9");
            Action::Body(plus_body(s, ROOT, verf, &[(b"f9", f9, cookie)], false))
        }
        _ => Action::Answer,
    });
    h.start_root();
    h.run();
    let mut want = first_items(&h, 4);
    want.insert(b"f9".to_vec());
    assert_loop_stopped(&h, 2, want, "twice");
}

#[test]
fn a_cookie_cycle_over_several_replies_is_stopped() {
    // cookie 0 -> page ending in A; A -> page ending in B; B -> page ending in A again.
    let mut h = Harness::new(looping_tree(), cfg(), 1).with_fault(|c, s| {
        let Some((cookie, verf)) = c.sent.cookie() else {
            return Action::Answer;
        };
        if cookie == 0 {
            return Action::Answer;
        }
        let l = &s.lists[&ROOT];
        let a = l.items[3].cookie;
        let (f7, f8) = (s.find("f7"), s.find("f8"));
        if cookie == a {
            Action::Body(plus_body(s, ROOT, verf, &[(b"f7", f7, 0xB)], false))
        } else {
            Action::Body(plus_body(s, ROOT, verf, &[(b"f8", f8, a)], false))
        }
    });
    h.start_root();
    h.run();
    let mut want = first_items(&h, 4);
    want.insert(b"f7".to_vec());
    want.insert(b"f8".to_vec());
    assert_loop_stopped(&h, 3, want, "twice");
}

#[test]
fn a_reply_without_entries_and_without_eof_stops_the_listing() {
    let mut h = Harness::new(looping_tree(), cfg(), 1).with_fault(|c, s| match c.sent.cookie() {
        Some((cookie, verf)) if cookie != 0 => Action::Body(plus_body(s, ROOT, verf, &[], false)),
        _ => Action::Answer,
    });
    h.start_root();
    h.run();
    let want = first_items(&h, 4);
    assert_loop_stopped(&h, 2, want, "no entries and no eof");
}

#[test]
fn a_server_replaying_the_directory_under_fresh_cookies_is_stopped() {
    // Every continuation brings the first page's names again, under cookies never seen, and
    // no eof: the listing must end with one error and the directory's first page only. The
    // pages are processed after the next call went out, so the verdict takes effect when
    // that call returns: one call more than the rule's count, never more.
    let mut h = Harness::new(looping_tree(), cfg(), 1).with_fault(|c, s| match c.sent.cookie() {
        Some((cookie, verf)) if cookie != 0 => {
            // The first page's two names (its items are `.`, `..`, f0 and f1).
            let names: Vec<(Vec<u8>, usize)> = ["f0", "f1"]
                .iter()
                .map(|n| (n.as_bytes().to_vec(), s.find(n)))
                .collect();
            let entries: Vec<(&[u8], usize, u64)> = names
                .iter()
                .enumerate()
                .map(|(i, (n, node))| (&n[..], *node, cookie + 1000 + i as u64))
                .collect();
            Action::Body(plus_body(s, ROOT, verf, &entries, false))
        }
        _ => Action::Answer,
    });
    h.start_root();
    h.run();
    h.assert_done();
    let calls = h.server.listing_calls(ROOT).len();
    let rule = nfs_walker::walker::config::FRUITLESS_REPLIES_MAX as usize;
    assert!(
        (rule + 1..=rule + 2).contains(&calls),
        "{calls} listing calls"
    );
    assert_eq!(h.sink.errors.len(), 1, "{:?}", h.sink.errors);
    assert!(h.sink.errors[0].message.contains("without a new entry"));
    let got: BTreeSet<Vec<u8>> = h.entries_by_path().into_keys().collect();
    assert_eq!(got, first_items(&h, 4));
    assert!(h.deferred_rounds >= rule);
}

// ---------------------------------------------------------------------------------------------
// 5. Missing attributes and handles; getattr mode
// ---------------------------------------------------------------------------------------------

#[test]
fn plus_entries_without_attributes_or_handle_are_completed_by_lookup() {
    let mut s = Server::new(6);
    let f_noattr = s.file(ROOT, "f_noattr");
    let d_nofh = s.dir(ROOT, "d_nofh");
    s.file(d_nofh, "x");
    let f_nofh = s.file(ROOT, "f_nofh");
    let d_none = s.dir(ROOT, "d_none");
    s.file(d_none, "y");
    let l_nofh = s.symlink(ROOT, "l_nofh", b"t");
    s.file(ROOT, "plain");
    s.plus_omit.insert(f_noattr, (true, false));
    s.plus_omit.insert(d_nofh, (false, true));
    s.plus_omit.insert(f_nofh, (false, true));
    s.plus_omit.insert(d_none, (true, true));
    s.plus_omit.insert(l_nofh, (false, true));
    s.lookup_omit_attrs.insert(d_none);
    s.page_entries = 100;
    let mut h = Harness::new(s, cfg(), 1);
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    h.assert_entries(&tree_entries(&h.server, false));

    let looked: BTreeSet<Vec<u8>> = h
        .server
        .calls(|s| matches!(s, Sent::Lookup { .. }))
        .iter()
        .map(|c| match &c.sent {
            Sent::Lookup { dir, name } => {
                assert_eq!(*dir, ROOT);
                name.clone()
            }
            _ => unreachable!(),
        })
        .collect();
    let want: BTreeSet<Vec<u8>> = [&b"f_noattr"[..], b"d_nofh", b"d_none"]
        .iter()
        .map(|n| n.to_vec())
        .collect();
    assert_eq!(looked, want, "a file with attributes needs no handle");
    let getattrs: Vec<usize> = h
        .server
        .calls(|s| matches!(s, Sent::Getattr { .. }))
        .iter()
        .map(|c| c.sent.node())
        .collect();
    assert_eq!(
        getattrs,
        vec![d_none],
        "attributes are fetched, never guessed"
    );
    // Both directories were listed with the handles LOOKUP gave.
    assert_eq!(h.server.listing_calls(d_nofh).len(), 1);
    assert_eq!(h.server.listing_calls(d_none).len(), 1);
    let batches: Vec<usize> = h
        .sink
        .spawned
        .iter()
        .filter_map(|t| match t {
            Task::Lookups(b) => Some(b.names.len()),
            Task::Dir(_) => None,
        })
        .collect();
    assert_eq!(batches, vec![3]);
    assert_eq!(h.sink.lookups_done, 1);
}

#[test]
fn a_lookup_that_fails_reports_the_path_and_completes_the_batch() {
    let mut s = Server::new(7);
    let gone = s.file(ROOT, "gone");
    s.file(ROOT, "kept");
    s.plus_omit.insert(gone, (true, true));
    let mut h = Harness::new(s, cfg(), 1).with_fault(move |c, _| match &c.sent {
        Sent::Lookup { name, .. } if name == b"gone" => Action::Status(Nfsstat3::Noent),
        _ => Action::Answer,
    });
    h.start_root();
    h.run();
    h.assert_done();
    let mut want = tree_entries(&h.server, false);
    want.remove(&b"gone"[..]);
    h.assert_entries(&want);
    assert_eq!(err_paths(&h), vec!["gone"]);
    assert_eq!(h.sink.errors[0].op, "lookup");
    assert_eq!(h.sink.errors[0].status, Some(Nfsstat3::Noent));
}

#[test]
fn getattr_mode_lists_names_then_looks_each_up_in_batches() {
    let mut s = Server::new(8);
    for i in 0..300 {
        s.file(ROOT, format!("file{i:03}"));
    }
    let sub = s.dir(ROOT, "sub");
    s.file(sub, "deep");
    let no_attrs = s.file(sub, "no_attrs");
    s.lookup_omit_attrs.insert(no_attrs);
    s.page_entries = 1000;
    let mut h = Harness::new(s, getattr_cfg(), 1);
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    let expected = tree_entries(&h.server, false);
    h.assert_entries(&expected);
    assert!(h
        .server
        .log
        .iter()
        .all(|c| !matches!(c.sent, Sent::ReaddirPlus { .. })));
    // One LOOKUP per name, exactly once.
    let mut looked: Vec<(usize, Vec<u8>)> = h
        .server
        .calls(|s| matches!(s, Sent::Lookup { .. }))
        .iter()
        .map(|c| match &c.sent {
            Sent::Lookup { dir, name } => (*dir, name.clone()),
            _ => unreachable!(),
        })
        .collect();
    looked.sort();
    let mut want: Vec<(usize, Vec<u8>)> = expected
        .keys()
        .map(|p| {
            let (dir, name) = match p.iter().rposition(|b| *b == b'/') {
                Some(i) => (h.server.find(&show(&p[..i])), p[i + 1..].to_vec()),
                None => (ROOT, p.clone()),
            };
            (dir, name)
        })
        .collect();
    want.sort();
    assert_eq!(looked, want);
    assert_eq!(
        h.server
            .calls(|s| matches!(s, Sent::Getattr { .. }))
            .iter()
            .map(|c| c.sent.node())
            .collect::<Vec<_>>(),
        vec![no_attrs]
    );
    // The root's one READDIR reply of 301 names became batches of at most 128.
    let mut root_batches: Vec<usize> = h
        .sink
        .spawned
        .iter()
        .filter_map(|t| match t {
            Task::Lookups(b) if &*b.dir_path == b"." => {
                assert_eq!(b.depth, 1);
                assert_eq!(b.dir_fh, h.server.fh(ROOT));
                Some(b.names.len())
            }
            _ => None,
        })
        .collect();
    root_batches.sort_unstable();
    assert_eq!(root_batches, vec![45, 128, 128]);
    assert_eq!(h.sink.lookups_done, 4);
}

#[test]
fn getattr_mode_pauses_listings_while_the_lookup_backlog_is_high() {
    // 20,000 names, 300 a page: every READDIR reply adds three batches. Without the pause
    // the whole directory's names would queue before the first LOOKUP.
    let mut s = Server::new(24);
    let big = s.dir(ROOT, "big");
    for i in 0..20_000 {
        s.file(big, format!("{i:05}"));
    }
    s.page_entries = 300;
    let mut h = Harness::new(s, getattr_cfg(), 1);
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    h.assert_entries(&tree_entries(&h.server, false));
    let pages = h.server.listing_calls(big).len();
    assert_eq!(pages, 20_002usize.div_ceil(300));
    let max = h.sink.lookup_batches_max;
    assert!(
        max > nfs_walker::walker::config::LOOKUP_BACKLOG_BATCHES_MAX as i64,
        "the backlog never rose above the limit ({max}); the test exercises nothing"
    );
    // One reply's batches may land after the limit was reached, no more.
    assert!(
        max <= nfs_walker::walker::config::LOOKUP_BACKLOG_BATCHES_MAX as i64 + 3,
        "lookup backlog reached {max} batches"
    );
}

#[test]
fn names_mode_skips_lookups_in_leaf_directories() {
    let mut s = Server::new(9);
    let leaf = s.dir(ROOT, "leaf");
    s.file(leaf, "a");
    s.file(leaf, "b");
    s.file(ROOT, "top");
    let mut h = Harness::new(
        s,
        WalkConfig {
            mode: Mode::Names,
            ..cfg()
        },
        1,
    );
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    let got = h.entries_by_path();
    assert_eq!(got.len(), 4);
    // The leaf (nlink 2) has no subdirectories: its names are written without a LOOKUP.
    for p in ["leaf/a", "leaf/b"] {
        let e = &got[p.as_bytes()];
        assert_eq!(e.attrs.kind, EntryType::Unknown);
        assert_eq!(e.attrs.fileid, h.server.fattr(h.server.find(p)).fileid);
    }
    assert_eq!(got[&b"leaf"[..]].attrs.kind, EntryType::Dir);
    assert!(h
        .server
        .calls(|s| matches!(s, Sent::Lookup { dir, .. } if *dir == leaf))
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// 6. Hostile names, visited directories, filters
// ---------------------------------------------------------------------------------------------

#[test]
fn hostile_names_are_skipped_with_an_error() {
    for mode in [Mode::Plus, Mode::Getattr] {
        let mut s = Server::new(10);
        let d = s.dir(ROOT, "d");
        let hostile: Vec<Vec<u8>> = vec![
            b"a/b".to_vec(),
            b"nul\0byte".to_vec(),
            Vec::new(),
            vec![b'n'; 1025],
        ];
        for name in &hostile {
            s.file(d, name);
        }
        s.dir(d, "sl/ash"); // a hostile directory is not descended either
        s.file(d, vec![b'k'; 1024]); // the longest accepted name
        s.file(d, b"caf\xe9"); // not UTF-8, but a valid name
        s.page_entries = 3;
        let mut h = Harness::new(s, WalkConfig { mode, ..cfg() }, 1);
        h.start_root();
        h.run();
        h.assert_done();
        let expected = tree_entries(&h.server, false);
        assert_eq!(expected.len(), 3);
        h.assert_entries(&expected);
        assert_eq!(h.sink.errors.len(), 5, "{mode:?}: {:?}", h.sink.errors);
        assert!(h.sink.errors.iter().all(|e| e.op == listing_proc(mode)
            && e.path.starts_with(b"d/")
            && e.path.len() <= 2 + 64));
        assert_eq!(h.walker.stats().hostile_names, 5);
        assert_eq!(h.spawned_dirs().len(), 1);
        assert!(h
            .server
            .calls(|s| matches!(s, Sent::Lookup { name, .. } if !name_is_valid(name)))
            .is_empty());
    }
}

#[test]
fn a_directory_reached_twice_is_walked_once() {
    let mut s = Server::new(11);
    let a = s.dir(ROOT, "a");
    let b = s.dir(ROOT, "b");
    let shared = s.dir(a, "shared");
    s.file(shared, "inside");
    s.link(b, "shared", shared);
    let c = s.dir(ROOT, "c");
    s.link(c, "loop", ROOT); // a cycle back to the root
    let mut h = Harness::new(s, cfg(), 1);
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    let got = h.entries_by_path();
    let paths: BTreeSet<String> = got.keys().map(|p| show(p)).collect();
    for p in ["a", "b", "c", "a/shared", "b/shared", "c/loop"] {
        assert!(paths.contains(p), "{p} missing from {paths:?}");
    }
    let inside: Vec<&String> = paths.iter().filter(|p| p.ends_with("/inside")).collect();
    assert_eq!(inside.len(), 1, "{paths:?}");
    assert_eq!(paths.len(), 7);
    assert_eq!(h.server.listing_calls(shared).len(), 1);
    assert_eq!(h.server.listing_calls(ROOT).len(), 1);
    let spawned: BTreeSet<String> = h.spawned_dirs().iter().map(|d| show(&d.path)).collect();
    assert_eq!(spawned.len(), 4, "{spawned:?}");
}

fn deep_tree() -> Server {
    // d1/d2/d3/d4 with a file at every level.
    let mut s = Server::new(12);
    let mut parent = ROOT;
    for level in 1..=4 {
        s.file(parent, format!("f{level}"));
        parent = s.dir(parent, format!("d{level}"));
    }
    s.file(parent, "f5");
    s
}

#[test]
fn max_depth_limits_what_is_written_and_listed() {
    let s = deep_tree();
    let mut h = Harness::new(
        s,
        WalkConfig {
            max_depth: Some(2),
            ..cfg()
        },
        1,
    );
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    let want: BTreeMap<Vec<u8>, Expected> = tree_entries(&h.server, false)
        .into_iter()
        .filter(|(_, e)| e.depth <= 2)
        .collect();
    assert_eq!(want.len(), 4);
    h.assert_entries(&want);
    let d2 = h.server.find("d1/d2");
    assert!(
        h.server.listing_calls(d2).is_empty(),
        "d1/d2 is at max depth"
    );
    assert_eq!(h.server.listing_calls(h.server.find("d1")).len(), 1);
}

#[test]
fn excludes_drop_entries_and_their_subtrees() {
    let mut s = Server::new(13);
    let skip = s.dir(ROOT, "skip");
    s.file(skip, "hidden");
    let a = s.dir(ROOT, "a");
    s.file(a, "x.tmp");
    s.file(a, "keep");
    let deeper = s.dir(a, "deeper");
    s.file(deeper, "x.tmp");
    let b = s.dir(ROOT, "b");
    s.file(b, "skip");
    let cfg = WalkConfig {
        excludes: ExcludeSet::new(&["skip", "a/*.tmp"]).unwrap(),
        ..cfg()
    };
    let mut h = Harness::new(s, cfg, 1);
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    let want: BTreeMap<Vec<u8>, Expected> = tree_entries(&h.server, false)
        .into_iter()
        .filter(|(p, _)| !["skip", "skip/hidden", "a/x.tmp", "b/skip"].contains(&show(p).as_str()))
        .collect();
    assert_eq!(want.len(), 5);
    h.assert_entries(&want);
    assert!(h.server.listing_calls(skip).is_empty());
}

#[test]
fn dirs_only_writes_directories_but_walks_everything() {
    let s = deep_tree();
    let mut h = Harness::new(
        s,
        WalkConfig {
            dirs_only: true,
            ..cfg()
        },
        1,
    );
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    let want: BTreeMap<Vec<u8>, Expected> = tree_entries(&h.server, false)
        .into_iter()
        .filter(|(_, e)| e.attrs.kind == EntryType::Dir)
        .collect();
    assert_eq!(want.len(), 4);
    h.assert_entries(&want);
}

#[test]
fn one_fs_writes_a_mount_point_but_does_not_cross_it() {
    let mut s = Server::new(14);
    let mnt = s.dir(ROOT, "mnt");
    s.file(ROOT, "here");
    s.nodes[mnt].fsid = 99;
    s.file(mnt, "there");
    let cfg = WalkConfig {
        one_fs: Some(FSID),
        ..cfg()
    };
    let mut h = Harness::new(s, cfg, 1);
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    let want: BTreeMap<Vec<u8>, Expected> = tree_entries(&h.server, false)
        .into_iter()
        .filter(|(p, _)| p != b"mnt/there")
        .collect();
    h.assert_entries(&want);
    assert_eq!(h.entries_by_path()[&b"mnt"[..]].attrs.fsid, 99);
    assert!(h.server.listing_calls(mnt).is_empty());
}

#[test]
fn readlink_records_each_target() {
    for mode in [Mode::Plus, Mode::Getattr] {
        let mut s = Server::new(15);
        s.symlink(ROOT, "l1", b"target/one");
        let l2 = s.symlink(ROOT, "l2", b"../up");
        s.plus_omit.insert(l2, (false, true)); // READDIRPLUS without handle: LOOKUP first
        let d = s.dir(ROOT, "d");
        s.symlink(d, "broken", b"nowhere");
        s.file(ROOT, "f");
        let cfg = WalkConfig {
            mode,
            readlink: true,
            ..cfg()
        };
        let mut h = Harness::new(s, cfg, 1).with_fault(|c, s| match c.sent {
            Sent::Readlink { node } if node == s.find("d/broken") => Action::Status(Nfsstat3::Io),
            _ => Action::Answer,
        });
        h.start_root();
        h.run();
        h.assert_done();
        let mut want = tree_entries(&h.server, true);
        // A failed READLINK still writes the link, without a target.
        want.get_mut(&b"d/broken"[..]).unwrap().target = None;
        h.assert_entries(&want);
        assert_eq!(err_paths(&h), vec!["d/broken"], "{mode:?}");
        assert_eq!(h.sink.errors[0].op, "readlink");
        assert_eq!(
            h.server.calls(|s| matches!(s, Sent::Readlink { .. })).len(),
            3
        );
    }
    // Without --readlink no link is read.
    let mut s = Server::new(16);
    s.symlink(ROOT, "l1", b"t");
    let mut h = Harness::new(s, cfg(), 1);
    h.start_root();
    h.run();
    h.assert_entries(&tree_entries(&h.server, false));
    assert!(h
        .server
        .calls(|s| matches!(s, Sent::Readlink { .. }))
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// 7. JUKEBOX
// ---------------------------------------------------------------------------------------------

#[test]
fn jukebox_retries_after_a_growing_delay() {
    let mut s = flat_tree(17, 10);
    s.page_entries = 6;
    // The first two calls and the third listing call of the root are answered JUKEBOX.
    let n = Rc::new(Cell::new(0u32));
    let counter = n.clone();
    let mut h = Harness::new(s, cfg(), 1).with_fault(move |c, _| {
        if c.sent.is_listing() && c.sent.node() == ROOT {
            counter.set(counter.get() + 1);
            if matches!(counter.get(), 1 | 2 | 4) {
                return Action::Status(Nfsstat3::Jukebox);
            }
        }
        Action::Answer
    });
    h.start_root();
    assert_eq!(h.pump(), (1, 1));
    let t0 = h.now;
    assert_eq!(
        h.walker.poll_timeout(h.now),
        Some(t0 + Duration::from_millis(100))
    );
    // Nothing is sent before the delay is over...
    h.now = t0 + Duration::from_millis(99);
    assert_eq!(h.pump(), (0, 0));
    assert_eq!(h.server.log.len(), 1);
    // ...and the call goes out once it is.
    h.now = t0 + Duration::from_millis(100);
    assert_eq!(h.pump(), (1, 1));
    assert_eq!(
        h.server.log[1].sent.position(),
        h.server.log[0].sent.position(),
        "the same call again"
    );
    // A second JUKEBOX in a row waits twice as long.
    let t1 = h.now;
    assert_eq!(
        h.walker.poll_timeout(h.now),
        Some(t1 + Duration::from_millis(200))
    );
    h.now = t1 + Duration::from_millis(199);
    assert_eq!(h.pump(), (0, 0));
    h.now = t1 + Duration::from_millis(200);
    assert_eq!(h.pump(), (1, 1));
    // That one succeeded; the next JUKEBOX of the chain starts from the short delay again.
    h.now += RTT;
    let (sent, _) = h.pump();
    assert!(sent >= 1);
    let jukeboxed_at = h.now;
    let third_list = h.server.listing_calls(ROOT).len();
    assert_eq!(third_list, 4);
    let due = h.walker.poll_timeout(h.now).expect("a delayed call");
    assert_eq!(due, jukeboxed_at + Duration::from_millis(100));
    h.run();
    h.assert_done();
    h.assert_no_errors();
    h.assert_entries(&tree_entries(&h.server, false));
    assert_eq!(h.walker.stats().jukebox, 3);
    assert_eq!(
        h.walker.stats().retries,
        0,
        "JUKEBOX is not a failed attempt"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Timeouts
// ---------------------------------------------------------------------------------------------

#[test]
fn a_lookup_answered_jukebox_waits_longer_each_time() {
    // getattr mode: the LOOKUP of one name is answered JUKEBOX three times in a row.
    let s = flat_tree(23, 5);
    let tries = Rc::new(Cell::new(0u32));
    let counter = tries.clone();
    let mut h = Harness::new(s, getattr_cfg(), 1).with_fault(move |c, _| {
        if let Sent::Lookup { name, .. } = &c.sent {
            if name.ends_with(b"2") {
                counter.set(counter.get() + 1);
                if counter.get() <= 3 {
                    return Action::Status(Nfsstat3::Jukebox);
                }
            }
        }
        Action::Answer
    });
    h.start_root();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    h.assert_entries(&tree_entries(&h.server, false));
    let times: Vec<Duration> = h
        .server
        .calls(|x| matches!(x, Sent::Lookup { name, .. } if name.ends_with(b"2")))
        .iter()
        .map(|c| c.at)
        .collect();
    assert_eq!(times.len(), 4, "three JUKEBOX answers, then the reply");
    for (k, w) in times.windows(2).enumerate() {
        let least = Duration::from_millis(100 << k);
        let gap = w[1] - w[0];
        assert!(
            gap >= least && gap < least + Duration::from_millis(100),
            "wait {k}: {gap:?}"
        );
    }
    assert_eq!(h.walker.stats().jukebox, 3);
}

#[test]
fn an_unanswered_call_is_resent_then_fails() {
    let mut s = Server::new(18);
    let stuck = s.dir(ROOT, "stuck");
    s.file(stuck, "unseen");
    let ok = s.dir(ROOT, "ok");
    s.file(ok, "seen");
    let cfg = WalkConfig {
        retries: 2,
        ..cfg()
    };
    let mut h = Harness::new(s, cfg, 1).with_fault(move |c, _| {
        if c.sent.node() == stuck {
            Action::Hold
        } else {
            Action::Answer
        }
    });
    h.start_root();
    h.run();
    h.assert_done();
    let mut want = tree_entries(&h.server, false);
    want.remove(&b"stuck/unseen"[..]);
    h.assert_entries(&want);
    assert_eq!(err_paths(&h), vec!["stuck"]);
    assert_eq!(h.sink.errors[0].op, "readdirplus");
    assert!(h.sink.errors[0].message.contains("1000 ms"));
    let calls = h.server.listing_calls(stuck);
    assert_eq!(calls.len(), 3, "the call and two retries");
    for (k, w) in calls.windows(2).enumerate() {
        let gap = w[1].at - w[0].at;
        // Resent after the timeout (found by a sweep every tenth of it) and a backoff of
        // 50 ms doubling per retry.
        let backoff = Duration::from_millis(50 << k);
        let least = Duration::from_secs(1) + backoff;
        assert!(
            gap >= least && gap <= least + Duration::from_millis(100),
            "retry {k}: {gap:?}"
        );
        assert_eq!(w[0].sent.position(), w[1].sent.position());
        assert_ne!(w[0].xid, w[1].xid, "a resent call has a new XID");
    }
    let st = h.walker.stats();
    assert_eq!((st.timeouts, st.retries), (3, 2));
    // Replies that come after all are ignored.
    let entries = h.sink.entries.len();
    h.deliver_all_held();
    assert_eq!(h.walker.stats().unknown_xids, 3);
    assert_eq!(h.sink.entries.len(), entries);
    assert_eq!(h.sink.errors.len(), 1);
    h.assert_done();
}

#[test]
fn a_late_reply_to_a_resent_call_is_ignored() {
    let mut s = flat_tree(19, 12);
    s.page_entries = 5;
    let sub = s.find("d0003");
    let n = Rc::new(Cell::new(0u32));
    let counter = n.clone();
    // The first two listing calls of `sub` stall; the retry's reply is held too, so the stale
    // reply can arrive while the retry is in flight.
    let mut h = Harness::new(s, cfg(), 1).with_fault(move |c, _| {
        if c.sent.is_listing() && c.sent.node() == sub {
            counter.set(counter.get() + 1);
            if counter.get() <= 2 {
                return Action::Hold;
            }
        }
        Action::Answer
    });
    h.start_root();
    while h.server.listing_calls(sub).len() < 2 {
        assert!(h.step());
    }
    let xids: Vec<u32> = h.held.iter().map(|x| x.2).collect();
    assert_eq!(xids.len(), 2);
    h.deliver_held(xids[0]); // the first attempt's reply, late
    assert_eq!(h.walker.stats().unknown_xids, 1);
    assert!(h
        .sink
        .entries
        .iter()
        .all(|e| !e.path.starts_with(b"d0003/")));
    h.deliver_held(xids[1]); // the retry's reply
    h.run();
    h.assert_done();
    h.assert_no_errors();
    h.assert_entries(&tree_entries(&h.server, false));
    assert_eq!(h.walker.stats().timeouts, 1);
}

#[test]
fn xids_are_not_reused_while_a_stale_reply_may_still_come() {
    // One connection with one call in flight: every call takes the same in-flight slot. The
    // first call stalls and is resent; its reply arrives after hundreds of later calls.
    let mut s = Server::new(20);
    for i in 0..400 {
        s.dir(ROOT, format!("d{i:03}"));
    }
    s.page_entries = 1000;
    let cfg = WalkConfig {
        inflight_per_conn: 1,
        ..cfg()
    };
    let first = Rc::new(Cell::new(None::<u32>));
    let stale = first.clone();
    let mut h = Harness::new(s, cfg, 1).with_fault(move |c, _| {
        match stale.get() {
            None => {
                stale.set(Some(c.xid));
                return Action::Hold;
            }
            // A later call with the stalled call's XID: hold it so the stale reply meets it.
            Some(x) if x == c.xid => return Action::Hold,
            _ => {}
        }
        Action::Answer
    });
    h.start_root();
    let stale_xid = loop {
        assert!(h.step(), "walk ended early");
        if let Some(x) = first.get() {
            if h.held.len() == 2 || h.server.log.len() > 400 {
                break x;
            }
        }
    };
    // Deliver the stale reply while whatever call now has its XID is in flight.
    h.deliver_held(stale_xid);
    h.deliver_all_held();
    h.run();
    h.assert_done();
    h.assert_no_errors();
    h.assert_entries(&tree_entries(&h.server, false));
    let mut xids: Vec<u32> = h.server.log.iter().map(|c| c.xid).collect();
    let calls = xids.len();
    xids.sort_unstable();
    xids.dedup();
    assert_eq!(xids.len(), calls, "an XID was used twice in {calls} calls");
}

// ---------------------------------------------------------------------------------------------
// 9. Connections going down
// ---------------------------------------------------------------------------------------------

fn wide_tree(seed: u64) -> Server {
    let mut s = Server::new(seed);
    for d in 0..6 {
        let dir = s.dir(ROOT, format!("dir{d}"));
        for f in 0..5 {
            s.file(dir, format!("f{f}"));
        }
    }
    s.page_entries = 4;
    s
}

#[test]
fn calls_on_a_lost_connection_are_resent_on_another() {
    for reconnect in [false, true] {
        let hold0 = Rc::new(Cell::new(true));
        let flag = hold0.clone();
        let cfg = WalkConfig {
            inflight_per_conn: 2,
            ..cfg()
        };
        // Connection 0 stops answering (the root's listing excepted, so work fans out).
        let mut h = Harness::new(wide_tree(21), cfg, 2).with_fault(move |c, _| {
            if c.conn == 0 && flag.get() && c.sent.node() != ROOT {
                Action::Hold
            } else {
                Action::Answer
            }
        });
        h.start_root();
        for _ in 0..20 {
            if h.held.len() >= 2 {
                break;
            }
            h.pump();
            h.now += RTT;
        }
        let stuck = h.held.len();
        assert!(stuck >= 2, "calls in flight on connection 0: {stuck}");
        let sent_before = h.server.log.len();
        h.conn_down(0);
        hold0.set(false);
        assert_eq!(h.walker.stats().resent_after_reconnect, stuck as u64);
        if reconnect {
            h.conn_up(0);
        }
        h.run();
        h.assert_done();
        h.assert_no_errors();
        h.assert_entries(&tree_entries(&h.server, false));
        if !reconnect {
            assert!(h.server.log[sent_before..].iter().all(|c| c.conn == 1));
        }
        // The lost connection's replies never come; if they did, they would change nothing.
        let entries = h.sink.entries.len();
        h.conn_up(0);
        h.deliver_all_held();
        assert_eq!(h.sink.entries.len(), entries);
        assert_eq!(h.walker.stats().unknown_xids, stuck as u64);
        assert_eq!(h.walker.stats().timeouts, 0);
    }
}

#[test]
fn calls_wait_while_every_connection_is_down() {
    let mut h = Harness::new(wide_tree(25), cfg(), 1).with_fault(|c, _| {
        if c.sent.node() != ROOT {
            Action::Hold
        } else {
            Action::Answer
        }
    });
    h.start_root();
    while h.held.is_empty() {
        assert!(h.step());
    }
    let inflight = h.walker.inflight();
    assert!(inflight > 0);
    h.held.clear(); // the connection dies with them
    h.conn_down(0);
    assert_eq!(h.walker.inflight(), 0);
    h.fault = Box::new(|_, _| Action::Answer);
    let logged = h.server.log.len();
    for _ in 0..10 {
        h.pump();
        h.now += Duration::from_millis(500);
    }
    assert_eq!(
        h.server.log.len(),
        logged,
        "nothing can be sent without a connection"
    );
    assert!(
        !h.walker.wants_task(),
        "no new work while no call can go out"
    );
    assert!(!h.finished());
    h.conn_up(0);
    h.run();
    h.assert_done();
    h.assert_no_errors();
    h.assert_entries(&tree_entries(&h.server, false));
    let st = h.walker.stats();
    assert_eq!(st.resent_after_reconnect, inflight as u64);
    assert_eq!(
        st.timeouts, 0,
        "calls waiting for a connection do not time out"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Malformed replies
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_replies_are_retried_then_reported() {
    for (action, want) in [
        (Action::Truncate, "malformed"),
        (Action::Rpc(AcceptStat::SystemErr), "system error"),
        (Action::Rpc(AcceptStat::GarbageArgs), "decode"),
        (Action::Body(vec![0, 0, 0]), "malformed"),
        (Action::Body(vec![0, 0, 0, 0, 0, 0, 0, 7]), "malformed"),
    ] {
        let mut s = Server::new(22);
        let bad = s.dir(ROOT, "bad");
        s.file(bad, "x");
        s.file(ROOT, "fine");
        let a = action.clone();
        let mut h = Harness::new(s, cfg(), 1).with_fault(move |c, _| {
            if c.sent.node() == bad {
                a.clone()
            } else {
                Action::Answer
            }
        });
        h.start_root();
        h.run();
        h.assert_done();
        let mut exp = tree_entries(&h.server, false);
        exp.remove(&b"bad/x"[..]);
        h.assert_entries(&exp);
        assert_eq!(err_paths(&h), vec!["bad"], "{action:?}");
        assert!(
            h.sink.errors[0].message.contains(want),
            "{action:?}: {}",
            h.sink.errors[0].message
        );
        assert_eq!(
            h.server.listing_calls(bad).len(),
            4,
            "the call and 3 retries"
        );
        assert_eq!(h.walker.stats().retries, 3);
    }
}

#[test]
fn malformed_replies_once_then_good_lose_nothing() {
    for action in [
        Action::Truncate,
        Action::Garbage,
        Action::Rpc(AcceptStat::SystemErr),
    ] {
        let mut seen: HashSet<Sent> = HashSet::new();
        let a = action.clone();
        let mut h = Harness::new(wide_tree(23), cfg(), 2).with_fault(move |c, _| {
            // Every call's first attempt is answered badly.
            if seen.insert(c.sent.identity()) {
                a.clone()
            } else {
                Action::Answer
            }
        });
        h.start_root();
        h.run();
        h.assert_done();
        h.assert_no_errors();
        h.assert_entries(&tree_entries(&h.server, false));
        if matches!(action, Action::Garbage) {
            assert!(h.reconnects > 0);
            assert!(h.walker.stats().resent_after_reconnect > 0);
        } else {
            assert!(h.walker.stats().retries > 0);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(64), ..ProptestConfig::default() })]

    /// Random bytes and random cuts of good replies, for every procedure: never a panic, and
    /// the walk still ends.
    #[test]
    fn random_reply_bytes_never_panic(seed in any::<u64>(), p_bad in 0.0f64..0.6) {
        let mut s = Server::new(seed);
        let d = s.dir(ROOT, "d");
        let l = s.symlink(d, "l", b"t");
        s.plus_omit.insert(l, (true, true));
        s.file(d, "f");
        s.file(ROOT, "g");
        s.page_entries = 2;
        let mut rng = Rng(seed);
        let mode = [Mode::Plus, Mode::Getattr][seed as usize % 2];
        let cfg = WalkConfig { mode, readlink: true, ..cfg() };
        let mut h = Harness::new(s, cfg, 1).with_fault(move |_, _| {
            if !rng.chance(p_bad) {
                return Action::Answer;
            }
            if rng.chance(0.5) {
                let len = rng.below(64);
                Action::Body((0..len).map(|_| rng.next_u64() as u8).collect())
            } else {
                // A good reply cut at a random point.
                Action::CutTo(rng.below(600))
            }
        });
        h.start_root();
        h.run();
        h.assert_done();
        // Whatever was emitted is real and emitted once.
        let all = tree_entries(&h.server, true);
        for (p, e) in h.entries_by_path() {
            let want = all.get(&p);
            prop_assert!(want.is_some(), "unexpected {}", show(&p));
            prop_assert_eq!(e.attrs, want.unwrap().attrs);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 11. Random trees under random faults
// ---------------------------------------------------------------------------------------------

fn random_tree(seed: u64, nodes: usize) -> Server {
    let mut s = Server::new(seed);
    let mut rng = Rng(seed ^ 0x7ee);
    let mut dirs = vec![ROOT];
    for i in 0..nodes {
        let parent = dirs[rng.below(dirs.len())];
        let mut name = format!("n{i}_").into_bytes();
        name.extend((0..rng.below(20)).map(|_| b'a' + rng.below(26) as u8));
        if rng.chance(0.05) {
            name.push(0xff); // not UTF-8
        }
        match rng.below(10) {
            0..=2 => dirs.push(s.dir(parent, name)),
            3 => {
                s.symlink(parent, name, format!("t{i}").as_bytes());
            }
            _ => {
                let f = s.file(parent, name);
                if rng.chance(0.05) {
                    s.plus_omit.insert(f, (true, rng.chance(0.5)));
                }
            }
        }
    }
    s
}

#[derive(Debug, Clone)]
struct FaultRates {
    bad_cookie: f64,
    jukebox: f64,
    drop: f64,
    garbage: f64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(48), ..ProptestConfig::default() })]

    #[test]
    fn random_trees_under_faults_yield_exactly_the_tree(
        seed in any::<u64>(),
        nodes in 0usize..150,
        page in 1usize..12,
        plus in any::<bool>(),
        readlink in any::<bool>(),
        conns in 1usize..3,
        inflight in 1usize..6,
        listings_max in 1usize..6,
        reorder in any::<bool>(),
        bad_cookie in 0.0f64..0.2,
        jukebox in 0.0f64..0.15,
        drop in 0.0f64..0.1,
        garbage in 0.0f64..0.03,
    ) {
        let rates = FaultRates { bad_cookie, jukebox, drop, garbage };
        let mut s = random_tree(seed, nodes);
        s.page_entries = page;
        s.lazy_eof = seed & 1 == 1;
        let retries = 3;
        let cfg = WalkConfig {
            mode: if plus { Mode::Plus } else { Mode::Getattr },
            readlink,
            inflight_per_conn: inflight,
            listings_max,
            retries,
            ..cfg()
        };
        let mut rng = Rng(seed ^ 0xfa17);
        let mut drops: HashMap<Sent, u32> = HashMap::new();
        let mut stale: HashMap<usize, u32> = HashMap::new();
        let mut h = Harness::new(s, cfg, conns).with_fault(move |c, _| {
            if c.sent.is_listing() && rng.chance(rates.bad_cookie) {
                // A few per directory: far fewer than the restarts allowed.
                let n = stale.entry(c.sent.node()).or_default();
                if *n < 4 {
                    *n += 1;
                    return Action::Status(Nfsstat3::BadCookie);
                }
            }
            if rng.chance(rates.jukebox) {
                return Action::Status(Nfsstat3::Jukebox);
            }
            if rng.chance(rates.drop) {
                // Never more drops of one call than it has retries.
                let n = drops.entry(c.sent.identity()).or_default();
                if *n < retries {
                    *n += 1;
                    return Action::Hold;
                }
            }
            if rng.chance(rates.garbage) {
                return Action::Garbage;
            }
            Action::Answer
        });
        if reorder {
            h.reorder = Some(Rng(seed ^ 0x0dd));
        }
        h.start_root();
        // Replies of dropped calls turn up late, at random moments, after their calls were
        // resent: they must change nothing.
        let mut late = Rng(seed ^ 0x1a7e);
        let mut rounds = 0;
        while h.step() {
            rounds += 1;
            prop_assert!(rounds < ROUNDS_MAX, "the walk did not finish");
            if !h.held.is_empty() && late.chance(0.05) {
                let (conn, bytes, _) = h.held.remove(late.below(h.held.len()));
                h.deliver(conn, &bytes);
            }
        }
        h.assert_done();
        h.assert_no_errors();
        h.assert_entries(&tree_entries(&h.server, readlink));
        // Late replies of dropped calls change nothing.
        let n = h.sink.entries.len();
        h.deliver_all_held();
        prop_assert_eq!(h.sink.entries.len(), n);
        prop_assert!(h.sink.errors.is_empty());
        let dirs = tree_entries(&h.server, false)
            .values()
            .filter(|e| e.attrs.kind == EntryType::Dir)
            .count() as u64;
        prop_assert_eq!(h.sink.dirs_done, dirs + 1);
    }
}

/// The listing procedure a mode's errors name.
fn listing_proc(mode: Mode) -> &'static str {
    match mode {
        Mode::Plus => "readdirplus",
        Mode::Getattr | Mode::Names => "readdir",
    }
}
