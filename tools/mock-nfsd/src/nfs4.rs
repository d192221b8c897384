//! The NFSv4 service (RFC 8881 for v4.1 and v4.2 clients, RFC 7530's client-ID operations for
//! v4.0 clients such as libnfs): COMPOUNDs over the same synthetic trees as v3, a pseudo file
//! system leading to the export, client IDs and sessions with per-slot sequence checks, and the
//! `delay` and `badsession` faults.

use crate::faults::CallFaults;
use crate::service::{
    Answer, ConnState, Service, HANDLE_BYTES, HOSTILE_NAMES, REPLY_BODY_BYTES_MAX,
};
use crate::tree::NodeId;
use nfs_proto::rpc::nfs3::{FileHandle, FileType3, Nfsstat3, NAME_BYTES_MAX};
use nfs_proto::rpc::nfs4::{
    fattr4, op4, ArgOp, ArgOpError, AttrMask, BindConn, ChannelAttrs, CompoundArgs,
    CompoundReplyEncoder, CreateSessionArgs, CreateSessionOk, ExchangeIdArgs, ExchangeIdOk, Fattr4,
    FileType4, Fsid4, NfsTime4, Nfsstat4, ReaddirArgs4, ResOk, SequenceArgs, SequenceOk, SessionId,
    ACCESS4_EXECUTE, ACCESS4_LOOKUP, ACCESS4_READ, CDFS4_FORE, EXCHGID4_FLAG_CONFIRMED_R,
    EXCHGID4_FLAG_USE_NON_PNFS, NFS4_FHSIZE, NFS4_VERIFIER_SIZE, NFSPROC4_COMPOUND, NFSPROC4_NULL,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Slots granted per session: many, so a client can keep hundreds of calls in flight.
pub const SESSION_SLOTS_MAX: u32 = 1024;
/// Client IDs kept; past this the oldest is forgotten (with its sessions), so a client that
/// never destroys its ID cannot grow the table without bound.
pub const CLIENTS_MAX: usize = 1024;
/// Sessions per client kept; past this the oldest is destroyed.
pub const SESSIONS_PER_CLIENT_MAX: usize = 64;
/// The lease (seconds) announced in `lease_time`; the mock never expires a lease.
pub const LEASE_SECONDS: u32 = 90;
/// Bytes of a pseudo-file-system handle: a marker and the depth.
const PSEUDO_HANDLE: &[u8; 8] = b"v4pseudo";

/// What the server supports, announced in `supported_attrs`.
const SUPPORTED: AttrMask = AttrMask::KNOWN;

/// Client IDs and sessions, shared by all connections.
#[derive(Debug)]
pub struct V4State {
    inner: Mutex<V4Inner>,
    /// Distinguishes this server instance's session IDs and SETCLIENTID confirmations.
    instance: u64,
}

#[derive(Debug, Default)]
struct V4Inner {
    next_clientid: u64,
    next_session: u64,
    /// By client ID: the oldest first.
    clients: BTreeMap<u64, ClientRec>,
    sessions: HashMap<SessionId, SessionRec>,
}

#[derive(Debug)]
struct ClientRec {
    owner: Vec<u8>,
    verifier: [u8; NFS4_VERIFIER_SIZE],
    confirmed: bool,
    /// The `csa_sequence` the next CREATE_SESSION must carry.
    create_seq: u32,
    sessions: Vec<SessionId>,
}

#[derive(Debug)]
struct SessionRec {
    clientid: u64,
    /// The sequence ID of the last request accepted on each slot.
    slots: Vec<u32>,
}

impl V4State {
    pub fn new(instance: u64) -> Self {
        V4State {
            inner: Mutex::new(V4Inner {
                next_clientid: 1,
                ..Default::default()
            }),
            instance,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, V4Inner> {
        // A panic elsewhere cannot leave this table half-updated in a way that matters.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live sessions (tests).
    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }
}

impl V4Inner {
    fn forget_client(&mut self, clientid: u64) {
        if let Some(c) = self.clients.remove(&clientid) {
            for s in c.sessions {
                self.sessions.remove(&s);
            }
        }
    }

    /// EXCHANGE_ID (and v4.0 SETCLIENTID): the same owner and verifier get the same ID back; a
    /// new verifier (a rebooted client) replaces the old ID and its state.
    fn exchange_id(&mut self, owner: &[u8], verifier: [u8; 8]) -> (u64, &ClientRec) {
        let existing = self
            .clients
            .iter()
            .find(|(_, c)| c.owner == owner)
            .map(|(&id, c)| (id, c.verifier == verifier));
        let id = match existing {
            Some((id, true)) => id,
            other => {
                if let Some((old, _)) = other {
                    self.forget_client(old);
                }
                if self.clients.len() >= CLIENTS_MAX {
                    if let Some(&oldest) = self.clients.keys().next() {
                        self.forget_client(oldest);
                    }
                }
                let id = self.next_clientid;
                self.next_clientid += 1;
                self.clients.insert(
                    id,
                    ClientRec {
                        owner: owner.to_vec(),
                        verifier,
                        confirmed: false,
                        create_seq: 1,
                        sessions: Vec::new(),
                    },
                );
                id
            }
        };
        (id, &self.clients[&id])
    }

    fn create_session(
        &mut self,
        instance: u64,
        a: &CreateSessionArgs,
    ) -> Result<CreateSessionOk, Nfsstat4> {
        let Some(client) = self.clients.get_mut(&a.clientid) else {
            return Err(Nfsstat4::StaleClientid);
        };
        if a.sequence != client.create_seq {
            // A replay of the last CREATE_SESSION would need its cached reply; we keep none.
            return Err(Nfsstat4::SeqMisordered);
        }
        client.create_seq = client.create_seq.wrapping_add(1);
        client.confirmed = true;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(instance ^ a.clientid).to_be_bytes());
        id[8..].copy_from_slice(&self.next_session.to_be_bytes());
        self.next_session += 1;
        let sessionid = SessionId(id);
        if client.sessions.len() >= SESSIONS_PER_CLIENT_MAX {
            let oldest = client.sessions.remove(0);
            self.sessions.remove(&oldest);
        }
        client.sessions.push(sessionid);
        let slots = a.fore.maxrequests.clamp(1, SESSION_SLOTS_MAX);
        self.sessions.insert(
            sessionid,
            SessionRec {
                clientid: a.clientid,
                slots: vec![0; slots as usize],
            },
        );
        let fore = ChannelAttrs {
            headerpadsize: 0,
            maxrequestsize: a.fore.maxrequestsize.clamp(1024, 1 << 20),
            maxresponsesize: a.fore.maxresponsesize.clamp(1024, 2 * REPLY_BODY_BYTES_MAX),
            maxresponsesize_cached: a.fore.maxresponsesize_cached.min(64 << 10),
            maxoperations: a.fore.maxoperations.clamp(1, 64),
            maxrequests: slots,
            rdma_ird: None,
        };
        let back = ChannelAttrs {
            maxrequests: 1,
            rdma_ird: None,
            ..a.back
        };
        Ok(CreateSessionOk {
            sessionid,
            sequence: a.sequence,
            flags: 0,
            fore,
            back,
        })
    }

    /// The slot check of RFC 8881 section 2.10.6.1; no reply is cached, so a retry is
    /// answered NFS4ERR_RETRY_UNCACHED_REP.
    fn sequence(&mut self, a: &SequenceArgs) -> Result<SequenceOk, Nfsstat4> {
        let Some(session) = self.sessions.get_mut(&a.sessionid) else {
            return Err(Nfsstat4::Badsession);
        };
        let highest = session.slots.len() as u32 - 1;
        let Some(slot) = session.slots.get_mut(a.slotid as usize) else {
            return Err(Nfsstat4::Badslot);
        };
        if a.sequenceid == *slot {
            return Err(Nfsstat4::RetryUncachedRep);
        }
        if a.sequenceid != slot.wrapping_add(1) {
            return Err(Nfsstat4::SeqMisordered);
        }
        *slot = a.sequenceid;
        Ok(SequenceOk {
            sessionid: a.sessionid,
            sequenceid: a.sequenceid,
            slotid: a.slotid,
            highest_slotid: highest,
            target_highest_slotid: highest,
            status_flags: 0,
        })
    }
}

/// The current (or saved) file handle of a COMPOUND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fh {
    /// A directory of the pseudo file system above the export: `depth` components down.
    Pseudo(u8),
    Node(NodeId),
}

/// Buffers the attributes of one object borrow from.
struct AttrBufs {
    owner: [u8; 10],
    group: [u8; 10],
    fh: [u8; NFS4_FHSIZE],
}

impl Default for AttrBufs {
    fn default() -> Self {
        AttrBufs {
            owner: [0; 10],
            group: [0; 10],
            fh: [0; NFS4_FHSIZE],
        }
    }
}

/// What pads a node's handle to [`NFS4_FHSIZE`] bytes with `v4_long_handles`.
const LONG_HANDLE_PAD: u8 = 0xa5;

fn decimal(v: u32, out: &mut [u8; 10]) -> &[u8] {
    let mut i = out.len();
    let mut v = v;
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &out[i..]
}

fn status_of(s: Nfsstat3) -> Nfsstat4 {
    match s {
        Nfsstat3::Badhandle => Nfsstat4::Badhandle,
        Nfsstat3::Stale => Nfsstat4::Stale,
        Nfsstat3::Notdir => Nfsstat4::Notdir,
        Nfsstat3::Noent => Nfsstat4::Noent,
        _ => Nfsstat4::Serverfault,
    }
}

/// Whether `op` changes a file system: a read-only server answers NFS4ERR_ROFS.
fn is_modifying_op(op: u32) -> bool {
    // COMMIT, CREATE, LINK, REMOVE, RENAME, SETATTR, WRITE
    matches!(op, 5 | 6 | 11 | 28 | 29 | 34 | 38)
}

impl Service {
    /// The export path's components: the pseudo file system's directories lead through them.
    fn pseudo_components(&self) -> impl Iterator<Item = &[u8]> {
        self.export.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    fn pseudo_depth(&self) -> u8 {
        self.pseudo_components().count().min(255) as u8
    }

    fn pseudo_fileid(depth: u8) -> u64 {
        u64::MAX - depth as u64
    }

    fn fh_from_bytes(&self, b: &[u8]) -> Result<Fh, Nfsstat4> {
        if b.len() == PSEUDO_HANDLE.len() + 1 && b.starts_with(PSEUDO_HANDLE) {
            let depth = b[PSEUDO_HANDLE.len()];
            return if depth < self.pseudo_depth() {
                Ok(Fh::Pseudo(depth))
            } else {
                Err(Nfsstat4::Stale)
            };
        }
        let b = if self.v4_long_handles {
            // The whole padded handle, or it is not one of ours (a client cut it short).
            match b.split_at_checked(HANDLE_BYTES) {
                Some((h, pad))
                    if pad.len() == NFS4_FHSIZE - HANDLE_BYTES
                        && pad.iter().all(|&p| p == LONG_HANDLE_PAD) =>
                {
                    h
                }
                _ => return Err(Nfsstat4::Badhandle),
            }
        } else {
            b
        };
        let fh = FileHandle::from_bytes(b).ok_or(Nfsstat4::Badhandle)?;
        self.node_of(&fh).map(Fh::Node).map_err(status_of)
    }

    fn root_fh(&self) -> Fh {
        if self.pseudo_depth() == 0 {
            Fh::Node(self.model.root())
        } else {
            Fh::Pseudo(0)
        }
    }

    fn fh_bytes(&self, fh: Fh, out: &mut [u8; NFS4_FHSIZE]) -> usize {
        match fh {
            Fh::Pseudo(depth) => {
                out[..8].copy_from_slice(PSEUDO_HANDLE);
                out[8] = depth;
                9
            }
            Fh::Node(node) => {
                let h = self.handle_of(node);
                out[..h.len()].copy_from_slice(h.as_bytes());
                if !self.v4_long_handles {
                    return h.len();
                }
                out[h.len()..].fill(LONG_HANDLE_PAD);
                NFS4_FHSIZE
            }
        }
    }

    fn ftype_of(&self, fh: Fh) -> FileType3 {
        match fh {
            Fh::Pseudo(_) => FileType3::Dir,
            Fh::Node(node) => self.attrs_of(node).ftype,
        }
    }

    /// The attributes of `fh` for `mask` (cut to what we support).
    fn attrs4<'b>(&self, fh: Fh, mask: AttrMask, bufs: &'b mut AttrBufs) -> Fattr4<'b> {
        let v3 = self.attrs_of(match fh {
            Fh::Node(node) => node,
            Fh::Pseudo(_) => self.model.root(),
        });
        let fh_len = self.fh_bytes(fh, &mut bufs.fh);
        let mut a = Fattr4 {
            mask: mask.and(SUPPORTED),
            supported_attrs: SUPPORTED,
            ftype: FileType4::from_entry_type(v3.ftype.to_entry_type()).unwrap_or_default(),
            fh_expire_type: 0,
            change: v3.ctime.to_ns() as u64,
            size: v3.size,
            link_support: true,
            symlink_support: true,
            named_attr: false,
            fsid: Fsid4 {
                major: v3.fsid,
                minor: 0,
            },
            unique_handles: true,
            lease_time: LEASE_SECONDS,
            rdattr_error: Some(Nfsstat4::Ok),
            filehandle: &bufs.fh[..fh_len],
            fileid: v3.fileid,
            maxname: NAME_BYTES_MAX as u32,
            mode: v3.mode & 0o7777,
            numlinks: v3.nlink,
            owner: match crate::owner_name(v3.uid, false).filter(|_| self.owner_names) {
                Some(name) => name,
                None => decimal(v3.uid, &mut bufs.owner),
            },
            owner_group: match crate::owner_name(v3.gid, true).filter(|_| self.owner_names) {
                Some(name) => name,
                None => decimal(v3.gid, &mut bufs.group),
            },
            rawdev: (v3.rdev.major, v3.rdev.minor),
            space_used: v3.used,
            time_access: NfsTime4::from_ns(v3.atime.to_ns()),
            time_metadata: NfsTime4::from_ns(v3.ctime.to_ns()),
            time_modify: NfsTime4::from_ns(v3.mtime.to_ns()),
            mounted_on_fileid: v3.fileid,
            ..Default::default()
        };
        match fh {
            Fh::Pseudo(depth) => {
                let id = Self::pseudo_fileid(depth);
                a.fileid = id;
                a.mounted_on_fileid = id;
                a.size = 4096;
                a.space_used = 4096;
                a.mode = 0o755;
                a.numlinks = 2;
                // The pseudo file system is a file system of its own.
                a.fsid.minor = 1;
            }
            Fh::Node(node) if node == self.model.root() && self.pseudo_depth() > 0 => {
                // The export's root covers the last pseudo directory.
                a.mounted_on_fileid = Self::pseudo_fileid(self.pseudo_depth());
            }
            Fh::Node(_) => {}
        }
        a
    }

    // ----- NFS v4 -----

    pub(crate) fn nfs4(
        &self,
        conn: &mut ConnState,
        proc_: u32,
        args: &[u8],
        faults: &CallFaults,
        out: &mut Vec<u8>,
    ) -> Answer {
        match proc_ {
            NFSPROC4_NULL => return Answer::Done,
            NFSPROC4_COMPOUND => {}
            _ => return Answer::ProcUnavail,
        }
        let Ok(mut compound) = CompoundArgs::decode(args) else {
            return Answer::GarbageArgs;
        };
        let mut enc = CompoundReplyEncoder::begin(out, compound.tag);
        if compound.minorversion > 2 {
            // RFC 8881 section 16.2.3: the status, with an empty result list
            enc.fail_before_ops(Nfsstat4::MinorVersMismatch);
            enc.finish(out);
            return Answer::Done;
        }
        let minor = compound.minorversion;
        let mut cur: Option<Fh> = None;
        let mut saved: Option<Fh> = None;
        let mut index = 0u32;
        while let Some(op) = compound.next_op() {
            index += 1;
            let op = match op {
                Ok(op) => op,
                Err(ArgOpError::Unsupported(n)) => {
                    let (resop, status) = if is_modifying_op(n) {
                        (n, Nfsstat4::Rofs)
                    } else if (3..=58).contains(&n) {
                        (n, Nfsstat4::Notsupp)
                    } else {
                        (op4::ILLEGAL, Nfsstat4::OpIllegal)
                    };
                    enc.fail(out, resop, status);
                    break;
                }
                Err(ArgOpError::Xdr(n, _)) => {
                    enc.fail(out, n, Nfsstat4::Badxdr);
                    break;
                }
            };
            let opnum = op.opnum();
            self.stats.count_nfs4_op(opnum);
            if minor >= 1 {
                let session_op = matches!(
                    op,
                    ArgOp::ExchangeId(_)
                        | ArgOp::CreateSession(_)
                        | ArgOp::DestroySession(_)
                        | ArgOp::BindConnToSession(_)
                        | ArgOp::DestroyClientid(_)
                );
                let v40_op = matches!(
                    op,
                    ArgOp::SetClientid(_) | ArgOp::SetClientidConfirm { .. } | ArgOp::Renew(_)
                );
                let misplaced = if v40_op {
                    Some(Nfsstat4::Notsupp)
                } else if index == 1 && !session_op && !matches!(op, ArgOp::Sequence(_)) {
                    Some(Nfsstat4::OpNotInSession)
                } else if index > 1 && matches!(op, ArgOp::Sequence(_)) {
                    Some(Nfsstat4::SequencePos)
                } else if session_op && index == 1 && compound.op_count > 1 {
                    Some(Nfsstat4::NotOnlyOp)
                } else {
                    None
                };
                if let Some(status) = misplaced {
                    enc.fail(out, opnum, status);
                    break;
                }
            } else if matches!(
                op,
                ArgOp::Sequence(_)
                    | ArgOp::ExchangeId(_)
                    | ArgOp::CreateSession(_)
                    | ArgOp::BindConnToSession(_)
                    | ArgOp::DestroySession(_)
                    | ArgOp::DestroyClientid(_)
                    | ArgOp::ReclaimComplete { .. }
            ) {
                enc.fail(out, opnum, Nfsstat4::Notsupp);
                break;
            }
            // Faults: on the first operation, so a v4.0 and a v4.1 client see them alike.
            if index == 1 && faults.jukebox {
                enc.fail(out, opnum, Nfsstat4::Delay);
                break;
            }
            if let (ArgOp::Sequence(a), true) = (&op, faults.badsession) {
                let mut v4 = self.v4.lock();
                if let Some(s) = v4.sessions.remove(&a.sessionid) {
                    if let Some(c) = v4.clients.get_mut(&s.clientid) {
                        c.sessions.retain(|id| *id != a.sessionid);
                    }
                }
                drop(v4);
                enc.fail(out, opnum, Nfsstat4::Badsession);
                break;
            }
            let result = self.op4(conn, &op, &mut cur, &mut saved, faults, &mut enc, out);
            if let Err(status) = result {
                enc.fail(out, opnum, status);
                break;
            }
        }
        enc.finish(out);
        Answer::Done
    }

    /// Executes one operation, appending its successful result; a failure is returned for the
    /// caller to encode.
    #[allow(clippy::too_many_arguments)]
    fn op4(
        &self,
        conn: &mut ConnState,
        op: &ArgOp<'_>,
        cur: &mut Option<Fh>,
        saved: &mut Option<Fh>,
        faults: &CallFaults,
        enc: &mut CompoundReplyEncoder,
        out: &mut Vec<u8>,
    ) -> Result<(), Nfsstat4> {
        let opnum = op.opnum();
        let need = |fh: &Option<Fh>| fh.ok_or(Nfsstat4::Nofilehandle);
        let ok = match *op {
            ArgOp::Sequence(a) => ResOk::Sequence(self.v4.lock().sequence(&a)?),
            ArgOp::PutRootFh => {
                *cur = Some(self.root_fh());
                ResOk::Empty
            }
            ArgOp::PutFh(b) => {
                *cur = Some(self.fh_from_bytes(b)?);
                ResOk::Empty
            }
            ArgOp::SaveFh => {
                *saved = Some(need(cur)?);
                ResOk::Empty
            }
            ArgOp::RestoreFh => {
                *cur = Some(saved.ok_or(Nfsstat4::Restorefh)?);
                ResOk::Empty
            }
            ArgOp::Lookup(name) => {
                *cur = Some(self.lookup4(conn, need(cur)?, name)?);
                ResOk::Empty
            }
            ArgOp::Lookupp => {
                let parent = match need(cur)? {
                    Fh::Pseudo(0) => return Err(Nfsstat4::Noent),
                    Fh::Pseudo(d) => Fh::Pseudo(d - 1),
                    Fh::Node(node) if !node.is_dir() => return Err(Nfsstat4::Notdir),
                    Fh::Node(node) if node == self.model.root() => match self.pseudo_depth() {
                        0 => return Err(Nfsstat4::Noent),
                        d => Fh::Pseudo(d - 1),
                    },
                    Fh::Node(node) => Fh::Node(NodeId::dir(self.model.parent(node.dir))),
                };
                *cur = Some(parent);
                ResOk::Empty
            }
            ArgOp::GetFh => {
                let mut b = [0u8; NFS4_FHSIZE];
                let n = self.fh_bytes(need(cur)?, &mut b);
                enc.ok(out, opnum, &ResOk::GetFh(&b[..n]));
                return Ok(());
            }
            ArgOp::Getattr(mask) => {
                let mut bufs = AttrBufs::default();
                let mut a = self.attrs4(need(cur)?, mask, &mut bufs);
                // rdattr_error only means something in READDIR
                a.mask = a.mask.without(AttrMask::of(&[fattr4::RDATTR_ERROR]));
                enc.ok(out, opnum, &ResOk::Getattr(a));
                return Ok(());
            }
            ArgOp::Access(bits) => {
                let fh = need(cur)?;
                let allowed = match self.ftype_of(fh) {
                    FileType3::Dir => ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_EXECUTE,
                    _ => ACCESS4_READ | ACCESS4_EXECUTE,
                };
                ResOk::Access {
                    supported: bits & (ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_EXECUTE),
                    access: bits & allowed,
                }
            }
            ArgOp::Readlink => {
                let Fh::Node(node) = need(cur)? else {
                    return Err(Nfsstat4::Inval);
                };
                if !self.model.readlink(node, &mut conn.scratch) {
                    return Err(Nfsstat4::Inval);
                }
                enc.ok(out, opnum, &ResOk::Readlink(&conn.scratch));
                return Ok(());
            }
            ArgOp::Read(a) => {
                let fh = need(cur)?;
                let v3 = match (fh, self.ftype_of(fh)) {
                    (Fh::Node(node), FileType3::Reg) => self.attrs_of(node),
                    (_, FileType3::Dir) => return Err(Nfsstat4::Isdir),
                    (_, FileType3::Lnk) => return Err(Nfsstat4::Symlink),
                    _ => return Err(Nfsstat4::Inval),
                };
                // A file reads as its deterministic contents, as over v3 (the `rewrite` fault
                // is v3's only: a v4 file keeps its first generation).
                let len =
                    v3.size
                        .saturating_sub(a.offset)
                        .min(a.count.min(REPLY_BODY_BYTES_MAX) as u64) as usize;
                let eof = a.offset.saturating_add(len as u64) >= v3.size;
                conn.scratch.clear();
                conn.scratch.resize(len, 0);
                crate::content::fill(
                    crate::content::content_seed(v3.fileid, 0),
                    a.offset,
                    &mut conn.scratch,
                );
                enc.ok(
                    out,
                    opnum,
                    &ResOk::Read {
                        eof,
                        data: &conn.scratch,
                    },
                );
                return Ok(());
            }
            ArgOp::Readdir(a) => return self.readdir4(conn, need(cur)?, &a, faults, enc, out),
            ArgOp::SecinfoNoName(_) => {
                need(cur)?;
                *cur = None;
                ResOk::SecinfoNoName { flavors: 2 }
            }
            ArgOp::ExchangeId(ExchangeIdArgs {
                verifier, ownerid, ..
            }) => {
                let mut v4 = self.v4.lock();
                let (clientid, c) = v4.exchange_id(ownerid, verifier);
                let ok = ExchangeIdOk {
                    clientid,
                    sequenceid: c.create_seq,
                    flags: EXCHGID4_FLAG_USE_NON_PNFS
                        | if c.confirmed {
                            EXCHGID4_FLAG_CONFIRMED_R
                        } else {
                            0
                        },
                    state_protect: 0,
                    server_minor_id: 0,
                    server_major_id: b"mock-nfsd",
                    server_scope: b"mock-nfsd",
                    impl_id: None,
                };
                enc.ok(out, opnum, &ResOk::ExchangeId(ok));
                return Ok(());
            }
            ArgOp::CreateSession(a) => {
                ResOk::CreateSession(self.v4.lock().create_session(self.v4.instance, &a)?)
            }
            ArgOp::BindConnToSession(b) => {
                if !self.v4.lock().sessions.contains_key(&b.sessionid) {
                    return Err(Nfsstat4::Badsession);
                }
                ResOk::BindConnToSession(BindConn {
                    sessionid: b.sessionid,
                    dir: CDFS4_FORE,
                    use_rdma: false,
                })
            }
            ArgOp::ReclaimComplete { .. } => ResOk::Empty,
            ArgOp::DestroySession(id) => {
                let mut v4 = self.v4.lock();
                let s = v4.sessions.remove(&id).ok_or(Nfsstat4::Badsession)?;
                if let Some(c) = v4.clients.get_mut(&s.clientid) {
                    c.sessions.retain(|x| *x != id);
                }
                ResOk::Empty
            }
            ArgOp::DestroyClientid(id) => {
                let mut v4 = self.v4.lock();
                match v4.clients.get(&id) {
                    None => return Err(Nfsstat4::StaleClientid),
                    Some(c) if !c.sessions.is_empty() => return Err(Nfsstat4::ClientidBusy),
                    Some(_) => v4.forget_client(id),
                }
                ResOk::Empty
            }
            ArgOp::SetClientid(a) => {
                let mut v4 = self.v4.lock();
                let (clientid, _) = v4.exchange_id(a.id, a.verifier);
                ResOk::SetClientid {
                    clientid,
                    verifier: (self.v4.instance ^ clientid).to_be_bytes(),
                }
            }
            ArgOp::SetClientidConfirm { clientid, verifier } => {
                let mut v4 = self.v4.lock();
                let expected = (self.v4.instance ^ clientid).to_be_bytes();
                match v4.clients.get_mut(&clientid) {
                    Some(c) if verifier == expected => c.confirmed = true,
                    _ => return Err(Nfsstat4::StaleClientid),
                }
                ResOk::Empty
            }
            ArgOp::Renew(clientid) => {
                if !self.v4.lock().clients.contains_key(&clientid) {
                    return Err(Nfsstat4::StaleClientid);
                }
                ResOk::Empty
            }
        };
        enc.ok(out, opnum, &ok);
        Ok(())
    }

    fn lookup4(&self, conn: &mut ConnState, dir: Fh, name: &[u8]) -> Result<Fh, Nfsstat4> {
        if name.is_empty() {
            return Err(Nfsstat4::Inval);
        }
        if name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
            return Err(Nfsstat4::Badname);
        }
        if name.len() > NAME_BYTES_MAX {
            return Err(Nfsstat4::Nametoolong);
        }
        match dir {
            Fh::Pseudo(depth) => {
                let next = self.pseudo_components().nth(depth as usize);
                if next != Some(name) {
                    return Err(Nfsstat4::Noent);
                }
                Ok(if depth + 1 == self.pseudo_depth() {
                    Fh::Node(self.model.root())
                } else {
                    Fh::Pseudo(depth + 1)
                })
            }
            Fh::Node(node) => {
                let attrs = self.attrs_of(node);
                match attrs.ftype {
                    FileType3::Dir => {}
                    FileType3::Lnk => return Err(Nfsstat4::Symlink),
                    _ => return Err(Nfsstat4::Notdir),
                }
                self.model
                    .lookup(node.dir, name, &mut conn.scratch)
                    .map(Fh::Node)
                    .ok_or(Nfsstat4::Noent)
            }
        }
    }

    /// READDIR. Cookies 1 and 2 are reserved in v4 (RFC 8881 section 18.23.3), so the entry at
    /// position `p` carries the cookie of position `p + 3` and a cookie resumes at its position
    /// less two.
    fn readdir4(
        &self,
        conn: &mut ConnState,
        dir: Fh,
        a: &ReaddirArgs4,
        faults: &CallFaults,
        enc: &mut CompoundReplyEncoder,
        out: &mut Vec<u8>,
    ) -> Result<(), Nfsstat4> {
        let maxcount = a.maxcount.min(REPLY_BODY_BYTES_MAX);
        let mask = a.attr_request;
        let mut bufs = AttrBufs::default();
        let node = match dir {
            Fh::Pseudo(depth) => {
                // One entry: the next component of the export path.
                if a.cookie != 0 && a.cookie != 3 {
                    return Err(Nfsstat4::BadCookie);
                }
                let mut rd = enc.readdir(out, [0; 8], a.dircount, maxcount);
                if a.cookie == 0 {
                    let child = if depth + 1 == self.pseudo_depth() {
                        Fh::Node(self.model.root())
                    } else {
                        Fh::Pseudo(depth + 1)
                    };
                    let name = self.pseudo_components().nth(depth as usize).unwrap_or(b"");
                    conn.name.clear();
                    conn.name.extend_from_slice(name);
                    let attrs = self.attrs4(child, mask, &mut bufs);
                    if !rd.push(out, 3, &conn.name, &attrs) {
                        rd.abandon(out);
                        return Err(Nfsstat4::Toosmall);
                    }
                }
                enc.finish_readdir(out, rd, true);
                return Ok(());
            }
            Fh::Node(node) => node,
        };
        if !node.is_dir() {
            return Err(Nfsstat4::Notdir);
        }
        let d = node.dir;
        let total = self.model.dir_len(d);
        let verifier = self.cookies.verifier(d);
        let start = if a.cookie == 0 {
            0
        } else {
            // A zero verifier is accepted, as nfs-ganesha and Linux accept it: v4.0 clients such
            // as libnfs never send one back.
            if (a.cookieverf != verifier && a.cookieverf != [0; 8]) || faults.badcookie {
                return Err(Nfsstat4::BadCookie);
            }
            match self.cookies.position(d, a.cookie) {
                Some(next) if next >= 3 && next - 2 <= total => next - 2,
                _ => return Err(Nfsstat4::BadCookie),
            }
        };
        let mut rd = enc.readdir(out, verifier, a.dircount, maxcount);
        let mut pos = start;
        let mut pushed = 0usize;
        let mut inject_names = faults.names;
        while pos < total {
            let child = self.model.entry(d, pos, &mut conn.name);
            let cookie = self.cookies.cookie(d, pos + 3);
            let attrs = self.attrs4(Fh::Node(child), mask, &mut bufs);
            if !rd.push(out, cookie, &conn.name, &attrs) {
                break;
            }
            pushed += 1;
            pos += 1;
            if inject_names {
                inject_names = false;
                let err_only = Fattr4 {
                    mask: mask.and(AttrMask::of(&[fattr4::RDATTR_ERROR])),
                    rdattr_error: Some(Nfsstat4::Io),
                    ..Default::default()
                };
                for name in HOSTILE_NAMES {
                    rd.push(out, cookie, name, &err_only);
                }
            }
        }
        if pushed == 0 && pos < total {
            rd.abandon(out);
            return Err(Nfsstat4::Toosmall);
        }
        enc.finish_readdir(out, rd, pos == total);
        Ok(())
    }
}
