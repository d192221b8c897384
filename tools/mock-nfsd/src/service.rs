//! The RPC service, sans-IO: one call record in, one reply record appended to a buffer, plus a
//! plan for how (and whether) the connection should send it. Sockets and timers live in
//! [`crate::server`].

use crate::content::{content_seed, fill};
use crate::cookies::CookieCodec;
use crate::faults::{CallFaults, ConnFaults, FaultSpec};
use crate::latency::LatencyDist;
use crate::rng::{hash3, Rng};
use crate::stats::Stats;
use crate::tree::{NodeId, TreeModel};
use crate::Config;
use nfs_proto::rpc::mount::{
    self, ExportEntry, ExportList, MntArgs, MntReply, Mountstat3, MOUNT_PROGRAM, MOUNT_V3,
};
use nfs_proto::rpc::msg::{
    encode_accepted_reply, encode_denied_reply, AcceptStat, AuthStat, ReceivedCall, RejectReason,
    AUTH_NONE, AUTH_SYS, RPC_VERSION,
};
use nfs_proto::rpc::nfs3::{
    self, encode_modifying_proc_fail, encode_post_op_attr, encode_read_ok_with, is_modifying_proc,
    proc3, AccessArgs, AccessOk, DirEntry, DirEntryPlus, Fattr3, FileHandle, FileType3, FsinfoOk,
    FsstatOk, GetattrArgs, LookupArgs, LookupOk, NfsRes, NfsTime3, Nfsstat3, PathconfOk, ReadArgs,
    ReadOk, ReaddirArgs, ReaddirPlusArgs, ReaddirPlusReplyEncoder, ReaddirReplyEncoder, ReadlinkOk,
    ACCESS3_EXECUTE, ACCESS3_LOOKUP, ACCESS3_READ, FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_LINK,
    FSF3_SYMLINK, NFS_PROGRAM, NFS_V3,
};
use nfs_proto::rpc::nfs4::NFS_V4;
use nfs_proto::rpc::portmap::{Mapping, IPPROTO_TCP, PMAPPROC_GETPORT, PMAP_PROGRAM, PMAP_V2};
use nfs_proto::rpc::record::{begin_record, end_record};
use nfs_proto::xdr::{XdrDecode, XdrEncode, XdrReader, XdrWriter};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Largest READ, READDIR and READDIRPLUS reply body we send (also FSINFO's rtmax).
pub const REPLY_BODY_BYTES_MAX: u32 = 1 << 20;
/// FSINFO's preferred READDIR size.
pub const DTPREF_BYTES: u32 = 64 << 10;
/// Bytes of our file handles: tree key, directory number, slot.
pub const HANDLE_BYTES: usize = 24;
const PMAPPROC_DUMP: u32 = 4;

/// Names a hostile server might put in a listing (`--faults names:p=P`).
pub const HOSTILE_NAMES: [&[u8]; 6] = [
    b"slash/in/name",
    b"nul\0byte",
    b".",
    b"..",
    b"bad utf8 \xff\xfe\xc3",
    &[b'L'; 4096],
];

/// What the connection should do with the reply that [`Service::handle`] appended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplyPlan {
    /// Nothing was appended: the call is never answered.
    pub dropped: bool,
    /// Nothing was appended: close the connection now.
    pub reset: bool,
    /// Send the reply this much later (zero: now).
    pub delay: Duration,
    /// Send a copy under an XID the client never used first.
    pub xid_decoy: bool,
    /// Send the reply as many small fragments.
    pub fragment: bool,
    /// Send part of the reply, then close.
    pub truncate: bool,
    /// Send a record header claiming the largest record instead of the reply, then close.
    pub hugerecord: bool,
}

/// Everything a connection needs to answer calls; shared by all connections.
#[derive(Debug)]
pub struct Service {
    pub(crate) model: TreeModel,
    pub(crate) cookies: CookieCodec,
    pub(crate) export: Vec<u8>,
    dot_entries: bool,
    faults: FaultSpec,
    latency: Option<LatencyDist>,
    /// The TCP port GETPORT answers for MOUNT and NFS.
    port: u16,
    /// Seeds the per-file `rewrite` fault.
    seed: u64,
    /// READs of rewritten files so far: each one sees a new generation of the file.
    rewrites: AtomicU64,
    pub stats: Stats,
    /// NFSv4 client IDs and sessions.
    pub(crate) v4: crate::nfs4::V4State,
    /// Send NFSv4 owners as names ([`crate::owner_name`]).
    pub(crate) owner_names: bool,
    /// NFSv4 handles padded to 128 bytes ([`crate::Config::v4_long_handles`]).
    pub(crate) v4_long_handles: bool,
}

/// Per-connection state: fault and latency generators and reused scratch buffers.
#[derive(Debug)]
pub struct ConnState {
    faults: ConnFaults,
    latency_rng: Rng,
    pub(crate) name: Vec<u8>,
    pub(crate) scratch: Vec<u8>,
}

impl ConnState {
    pub fn new(seed: u64, connection: u64) -> Self {
        ConnState {
            faults: ConnFaults::new(seed, connection),
            latency_rng: Rng::new(hash3(seed, connection, 0x006c_6174_656e_6379)),
            name: Vec::with_capacity(4096),
            scratch: Vec::with_capacity(4096),
        }
    }
}

/// The last position a replayed listing (`replay:after=N`) runs to: the cookies' position bits.
const COOKIE_POSITION_MAX: u64 = (1 << 40) - 2;

/// The result of the part of a call that follows the RPC header.
pub(crate) enum Answer {
    /// Results were encoded after a SUCCESS header.
    Done,
    /// The arguments did not decode: answer GARBAGE_ARGS instead.
    GarbageArgs,
    ProcUnavail,
}

impl Service {
    pub fn new(config: &Config, port: u16) -> Self {
        let model = TreeModel::new(config.tree).mutated(config.mutate);
        let cookies = CookieCodec::new(config.cookies, model.key());
        let v4 = crate::nfs4::V4State::new(model.key());
        Service {
            model,
            cookies,
            export: normalize_path(config.export.as_bytes()).to_vec(),
            dot_entries: config.dot_entries,
            faults: config.faults.clone(),
            latency: config.latency,
            port,
            seed: config.seed,
            rewrites: AtomicU64::new(0),
            stats: Stats::default(),
            v4,
            owner_names: config.owner_names,
            v4_long_handles: config.v4_long_handles,
        }
    }

    pub fn model(&self) -> &TreeModel {
        &self.model
    }

    /// The handle of `node`: tree key, directory number, slot (big-endian).
    pub fn handle_of(&self, node: NodeId) -> FileHandle {
        let mut b = [0u8; HANDLE_BYTES];
        b[..8].copy_from_slice(&self.model.key().to_be_bytes());
        b[8..16].copy_from_slice(&node.dir.to_be_bytes());
        b[16..].copy_from_slice(&node.slot.to_be_bytes());
        FileHandle::from_bytes(&b).unwrap_or_default()
    }

    /// The node a handle names: BADHANDLE if it is not one of ours in form, STALE if it names
    /// nothing in this tree.
    pub fn node_of(&self, fh: &FileHandle) -> Result<NodeId, Nfsstat3> {
        let b = fh.as_bytes();
        if b.len() != HANDLE_BYTES {
            return Err(Nfsstat3::Badhandle);
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(w)
        };
        if word(0) != self.model.key() {
            return Err(Nfsstat3::Stale);
        }
        let node = NodeId {
            dir: word(8),
            slot: word(16),
        };
        if self.model.is_valid(node) {
            Ok(node)
        } else {
            Err(Nfsstat3::Stale)
        }
    }

    pub(crate) fn attrs_of(&self, node: NodeId) -> Fattr3 {
        // node_of only returns valid nodes, and entries of valid directories are valid.
        self.model
            .attrs(node)
            .unwrap_or_else(|| self.model.attrs(self.model.root()).expect("root exists"))
    }

    /// Handles one call record, appending the reply record (if any) to `out`.
    pub fn handle(&self, conn: &mut ConnState, record: &[u8], out: &mut Vec<u8>) -> ReplyPlan {
        let mut plan = ReplyPlan::default();
        let call = match ReceivedCall::decode(record) {
            Ok(call) => call,
            Err(_) => {
                // Not a decodable CALL: there is nobody to answer (RFC 5531 servers drop these).
                self.stats.count_unknown();
                plan.dropped = true;
                return plan;
            }
        };
        if call.prog != NFS_PROGRAM || call.vers != NFS_V4 {
            self.stats.count(call.prog, call.proc_);
        }
        let mut faults = CallFaults::default();
        if call.prog == NFS_PROGRAM {
            if !self.faults.is_empty() {
                faults = conn.faults.next_call(&self.faults);
            }
            if let Some(latency) = &self.latency {
                plan.delay = latency.sample(&mut conn.latency_rng);
            }
            if let Some(ms) = faults.stall_ms {
                plan.delay += Duration::from_millis(ms);
            }
            if faults.reset || faults.drop {
                plan.reset = faults.reset;
                plan.dropped = !faults.reset;
                return plan;
            }
            plan.xid_decoy = faults.xid;
            plan.fragment = faults.fragment;
            plan.truncate = faults.truncate;
            plan.hugerecord = faults.hugerecord;
        }

        let start = begin_record(out);
        let mut w = XdrWriter::new(out);
        if call.rpcvers != RPC_VERSION {
            encode_denied_reply(
                &mut w,
                call.xid,
                RejectReason::RpcMismatch {
                    low: RPC_VERSION,
                    high: RPC_VERSION,
                },
            );
            end_record(out, start);
            return plan;
        }
        if call.cred.flavor != AUTH_NONE && call.cred.flavor != AUTH_SYS {
            encode_denied_reply(&mut w, call.xid, RejectReason::Auth(AuthStat::BadCred));
            end_record(out, start);
            return plan;
        }
        let ((low, high), answer) = match call.prog {
            PMAP_PROGRAM => ((PMAP_V2, PMAP_V2), None),
            MOUNT_PROGRAM => ((MOUNT_V3, MOUNT_V3), None),
            NFS_PROGRAM => ((NFS_V3, NFS_V4), None),
            _ => ((0, 0), Some(AcceptStat::ProgUnavail)),
        };
        let mismatch = answer.or(if !(low..=high).contains(&call.vers) {
            Some(AcceptStat::ProgMismatch { low, high })
        } else {
            None
        });
        if let Some(stat) = mismatch {
            encode_accepted_reply(&mut w, call.xid, stat);
            end_record(out, start);
            return plan;
        }
        let results_at = out.len();
        encode_accepted_reply(&mut XdrWriter::new(out), call.xid, AcceptStat::Success);
        let answer = match call.prog {
            PMAP_PROGRAM => self.portmap(call.proc_, call.args, out),
            MOUNT_PROGRAM => self.mount(call.proc_, call.args, out),
            _ if call.vers == NFS_V4 => self.nfs4(conn, call.proc_, call.args, &faults, out),
            _ => self.nfs(conn, call.proc_, call.args, &faults, out),
        };
        let failure = match answer {
            Answer::Done => None,
            Answer::GarbageArgs => Some(AcceptStat::GarbageArgs),
            Answer::ProcUnavail => Some(AcceptStat::ProcUnavail),
        };
        if let Some(stat) = failure {
            out.truncate(results_at);
            encode_accepted_reply(&mut XdrWriter::new(out), call.xid, stat);
        }
        end_record(out, start);
        plan
    }

    // ----- PORTMAP v2 -----

    fn portmap(&self, proc_: u32, args: &[u8], out: &mut Vec<u8>) -> Answer {
        let mut w = XdrWriter::new(out);
        match proc_ {
            0 => Answer::Done,
            PMAPPROC_GETPORT => {
                let Ok(m) = Mapping::decode(&mut XdrReader::new(args)) else {
                    return Answer::GarbageArgs;
                };
                let ours = matches!(
                    (m.prog, m.vers),
                    (MOUNT_PROGRAM, MOUNT_V3) | (NFS_PROGRAM, NFS_V3)
                ) && m.prot == IPPROTO_TCP;
                w.u32(if ours { self.port as u32 } else { 0 });
                Answer::Done
            }
            PMAPPROC_DUMP => {
                for (prog, vers) in [
                    (PMAP_PROGRAM, PMAP_V2),
                    (MOUNT_PROGRAM, MOUNT_V3),
                    (NFS_PROGRAM, NFS_V3),
                ] {
                    w.bool(true);
                    Mapping {
                        prog,
                        vers,
                        prot: IPPROTO_TCP,
                        port: self.port as u32,
                    }
                    .encode(&mut w);
                }
                w.bool(false);
                Answer::Done
            }
            _ => Answer::ProcUnavail,
        }
    }

    // ----- MOUNT v3 -----

    fn mount(&self, proc_: u32, args: &[u8], out: &mut Vec<u8>) -> Answer {
        let mut w = XdrWriter::new(out);
        match proc_ {
            mount::mountproc3::NULL | mount::mountproc3::UMNTALL => Answer::Done,
            mount::mountproc3::MNT => {
                let Ok(args) = MntArgs::decode(&mut XdrReader::new(args)) else {
                    return Answer::GarbageArgs;
                };
                match self.resolve_mount_path(args.dirpath) {
                    Ok(node) => MntReply {
                        fh: self.handle_of(node),
                        auth_flavors: vec![AUTH_SYS, AUTH_NONE],
                    }
                    .encode(&mut w),
                    Err(status) => MntReply::encode_fail(&mut w, status),
                }
                Answer::Done
            }
            mount::mountproc3::UMNT => {
                if MntArgs::decode(&mut XdrReader::new(args)).is_err() {
                    return Answer::GarbageArgs;
                }
                Answer::Done
            }
            mount::mountproc3::DUMP => {
                // No mount list is kept: mounts cost the server nothing.
                w.bool(false);
                Answer::Done
            }
            mount::mountproc3::EXPORT => {
                ExportList {
                    entries: vec![ExportEntry {
                        dir: self.export.clone(),
                        groups: vec![b"*".to_vec()],
                    }],
                }
                .encode(&mut w);
                Answer::Done
            }
            _ => Answer::ProcUnavail,
        }
    }

    /// The export itself, or a directory below it (like Linux, which mounts subdirectories).
    fn resolve_mount_path(&self, path: &[u8]) -> Result<NodeId, Mountstat3> {
        let path = normalize_path(path);
        let rest = if path == self.export.as_slice() {
            &b""[..]
        } else if self.export.as_slice() == b"/" {
            &path[1..]
        } else if path.starts_with(&self.export) && path.get(self.export.len()) == Some(&b'/') {
            &path[self.export.len() + 1..]
        } else {
            return Err(Mountstat3::Noent);
        };
        let mut node = self.model.root();
        let mut scratch = Vec::new();
        for name in rest
            .split(|&b| b == b'/')
            .filter(|n| !n.is_empty() && *n != b".")
        {
            if !node.is_dir() {
                return Err(Mountstat3::Notdir);
            }
            node = if name == b".." {
                NodeId::dir(self.model.parent(node.dir))
            } else {
                self.model
                    .lookup(node.dir, name, &mut scratch)
                    .ok_or(Mountstat3::Noent)?
            };
        }
        if node.is_dir() {
            Ok(node)
        } else {
            Err(Mountstat3::Notdir)
        }
    }

    // ----- NFS v3 -----

    fn nfs(
        &self,
        conn: &mut ConnState,
        proc_: u32,
        args: &[u8],
        faults: &CallFaults,
        out: &mut Vec<u8>,
    ) -> Answer {
        if proc_ > proc3::COMMIT {
            return Answer::ProcUnavail;
        }
        if proc_ == proc3::NULL {
            return Answer::Done;
        }
        let mut r = XdrReader::new(args);
        if faults.jukebox {
            encode_nfs_fail(out, proc_, Nfsstat3::Jukebox);
            return Answer::Done;
        }
        if is_modifying_proc(proc_) {
            encode_nfs_fail(out, proc_, Nfsstat3::Rofs);
            return Answer::Done;
        }
        match proc_ {
            proc3::GETATTR => {
                let Ok(args) = GetattrArgs::decode(&mut r) else {
                    return Answer::GarbageArgs;
                };
                let mut w = XdrWriter::new(out);
                match self.node_of(&args.fh) {
                    Ok(node) => NfsRes::<Fattr3>::encode_ok(&mut w, &self.attrs_of(node)),
                    Err(status) => NfsRes::<Fattr3>::encode_fail(&mut w, status, None),
                }
            }
            proc3::LOOKUP => {
                let Ok(args) = LookupArgs::decode(&mut r) else {
                    return Answer::GarbageArgs;
                };
                self.lookup(conn, &args, out);
            }
            proc3::ACCESS => {
                let Ok(args) = AccessArgs::decode(&mut r) else {
                    return Answer::GarbageArgs;
                };
                let mut w = XdrWriter::new(out);
                match self.node_of(&args.fh) {
                    Ok(node) => {
                        let attrs = self.attrs_of(node);
                        // Read-only: never MODIFY, EXTEND or DELETE.
                        let allowed = match attrs.ftype {
                            FileType3::Dir => ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_EXECUTE,
                            _ if attrs.mode & 0o111 != 0 => ACCESS3_READ | ACCESS3_EXECUTE,
                            _ => ACCESS3_READ,
                        };
                        let ok = AccessOk {
                            attrs: Some(attrs),
                            access: args.access & allowed,
                        };
                        NfsRes::<AccessOk>::encode_ok(&mut w, &ok);
                    }
                    Err(status) => NfsRes::<AccessOk>::encode_fail(&mut w, status, None),
                }
            }
            proc3::READLINK => {
                let Ok(args) = GetattrArgs::decode(&mut r) else {
                    return Answer::GarbageArgs;
                };
                let mut w = XdrWriter::new(out);
                match self.node_of(&args.fh) {
                    Ok(node) => {
                        let attrs = self.attrs_of(node);
                        if self.model.readlink(node, &mut conn.scratch) {
                            let ok = ReadlinkOk {
                                attrs: Some(attrs),
                                target: &conn.scratch,
                            };
                            NfsRes::<ReadlinkOk>::encode_ok(&mut w, &ok);
                        } else {
                            NfsRes::<ReadlinkOk>::encode_fail(
                                &mut w,
                                Nfsstat3::Inval,
                                Some(&attrs),
                            );
                        }
                    }
                    Err(status) => NfsRes::<ReadlinkOk>::encode_fail(&mut w, status, None),
                }
            }
            proc3::READ => {
                let Ok(args) = ReadArgs::decode(&mut r) else {
                    return Answer::GarbageArgs;
                };
                self.read(args.file, args.offset, args.count, out);
            }
            proc3::READDIR => {
                let Ok(args) = ReaddirArgs::decode(&mut r) else {
                    return Answer::GarbageArgs;
                };
                let req = ListingRequest {
                    dir: args.dir,
                    cookie: args.cookie,
                    cookieverf: args.cookieverf,
                    dircount: args.count,
                    maxcount: args.count,
                    plus: false,
                };
                self.readdir(conn, &req, faults, out);
            }
            proc3::READDIRPLUS => {
                let Ok(args) = ReaddirPlusArgs::decode(&mut r) else {
                    return Answer::GarbageArgs;
                };
                let req = ListingRequest {
                    dir: args.dir,
                    cookie: args.cookie,
                    cookieverf: args.cookieverf,
                    dircount: args.dircount,
                    maxcount: args.maxcount,
                    plus: true,
                };
                self.readdir(conn, &req, faults, out);
            }
            proc3::FSSTAT | proc3::FSINFO | proc3::PATHCONF => {
                let Ok(args) = GetattrArgs::decode(&mut r) else {
                    return Answer::GarbageArgs;
                };
                self.fs_info(proc_, &args.fh, out);
            }
            _ => return Answer::ProcUnavail,
        }
        Answer::Done
    }

    fn lookup(&self, conn: &mut ConnState, args: &LookupArgs<'_>, out: &mut Vec<u8>) {
        let mut w = XdrWriter::new(out);
        let dir = match self.node_of(&args.dir) {
            Ok(node) => node,
            Err(status) => return NfsRes::<LookupOk>::encode_fail(&mut w, status, None),
        };
        let dir_attrs = self.attrs_of(dir);
        let found = if !dir.is_dir() {
            Err(Nfsstat3::Notdir)
        } else if args.name.len() > nfs3::NAME_BYTES_MAX {
            Err(Nfsstat3::Nametoolong)
        } else if args.name == b"." {
            Ok(dir)
        } else if args.name == b".." {
            Ok(NodeId::dir(self.model.parent(dir.dir)))
        } else {
            self.model
                .lookup(dir.dir, args.name, &mut conn.scratch)
                .ok_or(Nfsstat3::Noent)
        };
        match found {
            Ok(node) => {
                let ok = LookupOk {
                    fh: self.handle_of(node),
                    obj_attrs: Some(self.attrs_of(node)),
                    dir_attrs: Some(dir_attrs),
                };
                NfsRes::<LookupOk>::encode_ok(&mut w, &ok);
            }
            Err(status) => NfsRes::<LookupOk>::encode_fail(&mut w, status, Some(&dir_attrs)),
        }
    }

    /// READ: a regular file reads as its deterministic contents ([`crate::content`]); a file
    /// under the `rewrite` fault is a new generation on every READ (new mtime, ctime, bytes).
    fn read(&self, fh: FileHandle, offset: u64, count: u32, out: &mut Vec<u8>) {
        let node = match self.node_of(&fh) {
            Ok(node) => node,
            Err(status) => {
                return NfsRes::<ReadOk>::encode_fail(&mut XdrWriter::new(out), status, None)
            }
        };
        let mut attrs = self.attrs_of(node);
        if attrs.ftype != FileType3::Reg {
            let status = if attrs.ftype == FileType3::Dir {
                Nfsstat3::Isdir
            } else {
                Nfsstat3::Inval
            };
            return NfsRes::<ReadOk>::encode_fail(&mut XdrWriter::new(out), status, Some(&attrs));
        }
        let mut generation = 0;
        if self.faults.rewrites(self.seed, attrs.fileid) {
            generation = self.rewrites.fetch_add(1, Ordering::Relaxed) + 1;
            for t in [&mut attrs.mtime, &mut attrs.ctime] {
                t.seconds = t.seconds.wrapping_add(1 + (generation % 1_000_000) as u32);
            }
        }
        let len = attrs
            .size
            .saturating_sub(offset)
            .min(count.min(REPLY_BODY_BYTES_MAX) as u64) as usize;
        let eof = offset.saturating_add(len as u64) >= attrs.size;
        let seed = content_seed(attrs.fileid, generation);
        encode_read_ok_with(out, Some(&attrs), len, eof, |buf| fill(seed, offset, buf));
        self.stats.count_read_bytes(len as u64);
    }

    fn fs_info(&self, proc_: u32, fh: &FileHandle, out: &mut Vec<u8>) {
        let mut w = XdrWriter::new(out);
        let node = match self.node_of(fh) {
            Ok(node) => node,
            Err(status) => {
                status.encode(&mut w);
                encode_post_op_attr(&mut w, None);
                return;
            }
        };
        let attrs = Some(self.attrs_of(node));
        match proc_ {
            proc3::FSSTAT => NfsRes::<FsstatOk>::encode_ok(
                &mut w,
                &FsstatOk {
                    attrs,
                    tbytes: 1 << 50,
                    fbytes: 0,
                    abytes: 0,
                    tfiles: self.model.entry_count(),
                    ffiles: 0,
                    afiles: 0,
                    invarsec: 0,
                },
            ),
            proc3::FSINFO => NfsRes::<FsinfoOk>::encode_ok(
                &mut w,
                &FsinfoOk {
                    attrs,
                    rtmax: REPLY_BODY_BYTES_MAX,
                    rtpref: REPLY_BODY_BYTES_MAX,
                    rtmult: 4096,
                    wtmax: REPLY_BODY_BYTES_MAX,
                    wtpref: REPLY_BODY_BYTES_MAX,
                    wtmult: 4096,
                    dtpref: DTPREF_BYTES,
                    maxfilesize: u64::MAX >> 1,
                    time_delta: NfsTime3 {
                        seconds: 0,
                        nseconds: 1,
                    },
                    properties: FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
                },
            ),
            _ => NfsRes::<PathconfOk>::encode_ok(
                &mut w,
                &PathconfOk {
                    attrs,
                    linkmax: 32000,
                    name_max: nfs3::NAME_BYTES_MAX as u32,
                    no_trunc: true,
                    chown_restricted: true,
                    case_insensitive: false,
                    case_preserving: true,
                },
            ),
        }
    }

    /// READDIR and READDIRPLUS. Positions run over `.`, `..` (unless disabled) and then the
    /// directory's entries; the cookie of an entry resumes at the position after it.
    fn readdir(
        &self,
        conn: &mut ConnState,
        req: &ListingRequest,
        faults: &CallFaults,
        out: &mut Vec<u8>,
    ) {
        let results_at = out.len();
        let fail = |out: &mut Vec<u8>, status: Nfsstat3, attrs: Option<&Fattr3>| {
            out.truncate(results_at);
            if req.plus {
                ReaddirPlusReplyEncoder::encode_fail(out, status, attrs);
            } else {
                ReaddirReplyEncoder::encode_fail(out, status, attrs);
            }
        };
        let node = match self.node_of(&req.dir) {
            Ok(node) => node,
            Err(status) => return fail(out, status, None),
        };
        let dir_attrs = self.attrs_of(node);
        if !node.is_dir() {
            return fail(out, Nfsstat3::Notdir, Some(&dir_attrs));
        }
        let dir = node.dir;
        let dots = if self.dot_entries { 2 } else { 0 };
        let dir_len = self.model.dir_len(dir);
        // `replay:after=N`: positions run on for ever, and position p shows the directory's
        // position p mod (dots + N).
        let replay_period = self
            .faults
            .replay_after()
            .filter(|&n| dir_len >= n)
            .map(|n| n + dots);
        let total = match replay_period {
            Some(_) => COOKIE_POSITION_MAX,
            None => dir_len + dots,
        };
        let verifier = self.cookies.verifier(dir);
        let start = if req.cookie == 0 {
            0
        } else {
            if req.cookieverf != verifier || faults.badcookie {
                return fail(out, Nfsstat3::BadCookie, Some(&dir_attrs));
            }
            match self.cookies.position(dir, req.cookie) {
                Some(pos) if pos <= total => pos,
                _ => return fail(out, Nfsstat3::BadCookie, Some(&dir_attrs)),
            }
        };
        let maxcount = req.maxcount.min(REPLY_BODY_BYTES_MAX);
        // A dircount of 0 is read as "no separate limit", as Linux does.
        let dircount = if req.dircount == 0 {
            maxcount
        } else {
            req.dircount
        };
        let mut plus_enc = None;
        let mut plain_enc = None;
        if req.plus {
            plus_enc = Some(ReaddirPlusReplyEncoder::begin(
                out,
                Some(&dir_attrs),
                verifier,
                dircount,
                maxcount,
            ));
        } else {
            plain_enc = Some(ReaddirReplyEncoder::begin(
                out,
                Some(&dir_attrs),
                verifier,
                maxcount,
            ));
        }
        let mut pos = start;
        let mut inject_names = faults.names;
        let mut pushed = 0usize;
        while pos < total {
            let shown = replay_period.map_or(pos, |period| pos % period);
            let child = if shown < dots {
                conn.name.clear();
                conn.name
                    .extend_from_slice(if shown == 0 { b"." } else { b".." });
                if shown == 0 {
                    node
                } else {
                    NodeId::dir(self.model.parent(dir))
                }
            } else {
                let node = self.model.entry(dir, shown - dots, &mut conn.name);
                if !self.model.is_listed(node) {
                    pos += 1;
                    continue;
                }
                node
            };
            let cookie = self.cookies.cookie(dir, pos + 1);
            let fileid_attrs = self.attrs_of(child);
            let fits = if let Some(enc) = plus_enc.as_mut() {
                let entry = DirEntryPlus {
                    fileid: fileid_attrs.fileid,
                    name: &conn.name,
                    cookie,
                    attrs: Some(fileid_attrs),
                    fh: Some(self.handle_of(child)),
                };
                enc.push(out, &entry)
            } else if let Some(enc) = plain_enc.as_mut() {
                let entry = DirEntry {
                    fileid: fileid_attrs.fileid,
                    name: &conn.name,
                    cookie,
                };
                enc.push(out, &entry)
            } else {
                false
            };
            if !fits {
                break;
            }
            pushed += 1;
            pos += 1;
            if inject_names {
                // After the first real entry, so each bogus entry can carry a valid cookie
                // (that entry's): a client resuming from one loses nothing.
                inject_names = false;
                for (k, name) in HOSTILE_NAMES.iter().enumerate() {
                    let fileid = 0xbad0_0000 + k as u64;
                    if let Some(enc) = plus_enc.as_mut() {
                        let entry = DirEntryPlus {
                            fileid,
                            name,
                            cookie,
                            attrs: None,
                            fh: None,
                        };
                        enc.push(out, &entry);
                    } else if let Some(enc) = plain_enc.as_mut() {
                        enc.push(
                            out,
                            &DirEntry {
                                fileid,
                                name,
                                cookie,
                            },
                        );
                    }
                }
            }
        }
        if pushed == 0 && pos < total {
            return fail(out, Nfsstat3::Toosmall, Some(&dir_attrs));
        }
        let eof = pos == total && replay_period.is_none();
        if let Some(enc) = plus_enc {
            enc.finish(out, eof);
        } else if let Some(enc) = plain_enc {
            enc.finish(out, eof);
        }
    }
}

struct ListingRequest {
    dir: FileHandle,
    cookie: u64,
    cookieverf: [u8; 8],
    dircount: u32,
    maxcount: u32,
    plus: bool,
}

/// Encodes the failure result of any NFS procedure but NULL, with empty attributes.
fn encode_nfs_fail(out: &mut Vec<u8>, proc_: u32, status: Nfsstat3) {
    let mut w = XdrWriter::new(out);
    if encode_modifying_proc_fail(&mut w, proc_, status) {
        return;
    }
    status.encode(&mut w);
    if proc_ != proc3::GETATTR {
        // Every other read procedure's failure arm is one post_op_attr.
        encode_post_op_attr(&mut w, None);
    }
}

/// Drops trailing slashes (but keeps "/").
fn normalize_path(path: &[u8]) -> &[u8] {
    let mut p = path;
    while p.len() > 1 && p.ends_with(b"/") {
        p = &p[..p.len() - 1];
    }
    p
}
