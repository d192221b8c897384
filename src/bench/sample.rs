//! The sample walk: a short listing of the URL's tree that yields real targets for the bench
//! (object handles, (directory, name) pairs, symlinks, directories).
//!
//! Directories are read one READDIRPLUS page at a time in rotation (a FIFO of directories being
//! listed: after a page, an unfinished directory goes to the back), so the sample spreads over
//! many directories instead of being swallowed by the first huge one, and a single huge
//! directory still fills the sample when it is all there is. The walk stops at `entries_max`
//! entries. [`Sampler`] is sans-IO (fed reply bytes); [`sample_targets`] drives it over the
//! mount's blocking connection, once, before the load starts.

use super::ops::BenchOp;
use crate::client::{CallError, RpcClient};
use crate::rpc::nfs3::{
    proc3, FileHandle, FileType3, NfsReplyError, ReaddirPlusArgs, ReaddirPlusReply, NAME_BYTES_MAX,
    NFS3_COOKIEVERFSIZE, NFS_PROGRAM, NFS_V3,
};
use std::collections::VecDeque;
use thiserror::Error;

/// Largest sample accepted (handles are kept in memory: about 100 bytes per entry).
pub const SAMPLE_ENTRIES_MAX: usize = 10_000_000;
/// READDIRPLUS sizes of the sample walk.
const SAMPLE_DIRCOUNT_BYTES: u32 = 16 << 10;
const SAMPLE_MAXCOUNT_BYTES: u32 = 64 << 10;
/// A page that brings nothing new this many times in a row ends the walk: a server that answers
/// empty pages without `eof` must not keep us busy forever.
const EMPTY_PAGES_MAX: u32 = 1000;

#[derive(Debug, Error)]
pub enum SampleError {
    #[error("sample walk: {0}")]
    Call(#[from] CallError),
    #[error("sample walk: the server sent {0} READDIRPLUS pages without entries or eof")]
    EmptyPages(u32),
}

/// A (directory, name) pair for LOOKUP; the name lives in [`Targets`]' name arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupTarget {
    pub dir: FileHandle,
    name_start: u32,
    name_len: u32,
}

/// What the sample walk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleStats {
    /// Entries seen (without `.` and `..`).
    pub entries: u64,
    /// READDIRPLUS calls made (the only procedure the sample walk uses).
    pub readdirplus_calls: u64,
    /// Directories whose listing failed (permissions, stale handles); they are left out.
    pub dirs_failed: u64,
}

/// The objects a bench works on.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub root_fh: FileHandle,
    /// Every sampled object with a handle, the root included (GETATTR, ACCESS).
    pub objects: Vec<FileHandle>,
    /// Sampled directories, the root first (READDIR, READDIRPLUS).
    pub dirs: Vec<FileHandle>,
    /// Sampled symbolic links (READLINK).
    pub symlinks: Vec<FileHandle>,
    /// Sampled (directory, name) pairs (LOOKUP).
    pub lookups: Vec<LookupTarget>,
    names: Vec<u8>,
    pub stats: SampleStats,
}

impl Targets {
    /// Targets made of the root alone (before or without a sample walk).
    pub fn root_only(root_fh: FileHandle) -> Targets {
        Targets {
            root_fh,
            objects: vec![root_fh],
            dirs: vec![root_fh],
            ..Targets::default()
        }
    }

    /// The name of a LOOKUP target.
    pub fn lookup_name(&self, t: &LookupTarget) -> &[u8] {
        let start = t.name_start as usize;
        self.names
            .get(start..start + t.name_len as usize)
            .unwrap_or_default()
    }

    /// Adds a (directory, name) pair.
    pub fn push_lookup(&mut self, dir: FileHandle, name: &[u8]) {
        self.lookups.push(LookupTarget {
            dir,
            name_start: self.names.len() as u32,
            name_len: name.len() as u32,
        });
        self.names.extend_from_slice(name);
    }

    /// How many distinct targets `op` cycles through (0: the op cannot run).
    pub fn count(&self, op: BenchOp) -> usize {
        match op {
            BenchOp::Null | BenchOp::Fsstat => 1,
            BenchOp::Getattr | BenchOp::Access => self.objects.len(),
            BenchOp::Lookup => self.lookups.len(),
            BenchOp::Readdir | BenchOp::ReaddirPlus => self.dirs.len(),
            BenchOp::Readlink => self.symlinks.len(),
        }
    }
}

/// A directory being listed by the sample walk.
#[derive(Debug, Clone, Copy)]
struct DirCursor {
    fh: FileHandle,
    cookie: u64,
    verf: [u8; NFS3_COOKIEVERFSIZE],
}

/// The sample walk as a state machine: ask [`Sampler::next_call`] for the next READDIRPLUS,
/// feed its result bytes to [`Sampler::on_reply`], until `next_call` returns `None`.
#[derive(Debug)]
pub struct Sampler {
    entries_max: usize,
    queue: VecDeque<DirCursor>,
    current: Option<DirCursor>,
    targets: Targets,
    empty_pages: u32,
}

impl Sampler {
    pub fn new(root_fh: FileHandle, entries_max: usize) -> Sampler {
        let mut queue = VecDeque::new();
        queue.push_back(DirCursor {
            fh: root_fh,
            cookie: 0,
            verf: [0; NFS3_COOKIEVERFSIZE],
        });
        Sampler {
            entries_max: entries_max.min(SAMPLE_ENTRIES_MAX),
            queue,
            current: None,
            targets: Targets::root_only(root_fh),
            empty_pages: 0,
        }
    }

    fn full(&self) -> bool {
        self.targets.stats.entries as usize >= self.entries_max
    }

    /// The next listing call, or `None` when the sample is complete.
    pub fn next_call(&mut self) -> Option<ReaddirPlusArgs> {
        if self.full() {
            return None;
        }
        let c = match self.current {
            Some(c) => c,
            None => {
                let c = self.queue.pop_front()?;
                self.current = Some(c);
                c
            }
        };
        Some(ReaddirPlusArgs {
            dir: c.fh,
            cookie: c.cookie,
            cookieverf: c.verf,
            dircount: SAMPLE_DIRCOUNT_BYTES,
            maxcount: SAMPLE_MAXCOUNT_BYTES,
        })
    }

    /// Takes the result bytes of the call [`Sampler::next_call`] returned last.
    pub fn on_reply(&mut self, result: &[u8]) -> Result<(), SampleError> {
        let Some(mut cursor) = self.current.take() else {
            return Ok(());
        };
        self.targets.stats.readdirplus_calls += 1;
        let reply = match ReaddirPlusReply::decode(result) {
            Ok(r) => r,
            Err(NfsReplyError::Status(_)) | Err(NfsReplyError::Xdr(_)) => {
                // This directory is left out; the rest of the sample goes on.
                self.targets.stats.dirs_failed += 1;
                return Ok(());
            }
        };
        let mut new_entries = 0u32;
        let mut last_cookie = cursor.cookie;
        for e in reply.entries() {
            last_cookie = e.cookie;
            if e.name == b"." || e.name == b".." || e.name.is_empty() {
                continue;
            }
            if self.full() {
                break;
            }
            new_entries += 1;
            self.targets.stats.entries += 1;
            if e.name.len() <= NAME_BYTES_MAX && !e.name.contains(&b'/') {
                self.targets.push_lookup(cursor.fh, e.name);
            }
            let Some(fh) = e.fh.filter(|fh| !fh.is_empty()) else {
                continue;
            };
            self.targets.objects.push(fh);
            match e.attrs.map(|a| a.ftype) {
                Some(FileType3::Dir) => {
                    self.targets.dirs.push(fh);
                    self.queue.push_back(DirCursor {
                        fh,
                        cookie: 0,
                        verf: [0; NFS3_COOKIEVERFSIZE],
                    });
                }
                Some(FileType3::Lnk) => self.targets.symlinks.push(fh),
                _ => {}
            }
        }
        if new_entries == 0 && !reply.eof {
            self.empty_pages += 1;
            if self.empty_pages > EMPTY_PAGES_MAX {
                return Err(SampleError::EmptyPages(self.empty_pages));
            }
        } else {
            self.empty_pages = 0;
        }
        // A page without entries cannot move the cookie: treat it as the end of this directory.
        if !reply.eof && reply.entry_count > 0 {
            cursor.cookie = last_cookie;
            cursor.verf = reply.cookieverf;
            self.queue.push_back(cursor);
        }
        Ok(())
    }

    pub fn finish(self) -> Targets {
        self.targets
    }
}

/// Runs the sample walk over a blocking connection to the NFS service (e.g. `Mounted::nfs`).
pub fn sample_targets(
    nfs: &mut RpcClient,
    root_fh: FileHandle,
    entries_max: usize,
) -> Result<Targets, SampleError> {
    let mut sampler = Sampler::new(root_fh, entries_max);
    while let Some(args) = sampler.next_call() {
        let result = nfs.call_with(NFS_PROGRAM, NFS_V3, proc3::READDIRPLUS, &args)?;
        sampler.on_reply(result)?;
    }
    Ok(sampler.finish())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rpc::nfs3::{
        DirEntryPlus, Fattr3, NfsTime3, Nfsstat3, ReaddirPlusReplyEncoder, SpecData3,
    };

    pub(crate) fn fh(n: u8) -> FileHandle {
        FileHandle::from_bytes(&[n; 8]).expect("short handle")
    }

    fn attrs(ftype: FileType3, fileid: u64) -> Fattr3 {
        let t = NfsTime3 {
            seconds: 0,
            nseconds: 0,
        };
        Fattr3 {
            ftype,
            mode: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 0,
            used: 0,
            rdev: SpecData3::default(),
            fsid: 1,
            fileid,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    /// A READDIRPLUS result with `(name, type, handle id)` entries, cookies 1, 2, ...
    fn page(entries: &[(&str, FileType3, u8)], first_cookie: u64, eof: bool) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut enc = ReaddirPlusReplyEncoder::begin(&mut buf, None, [7; 8], 1 << 20, 1 << 20);
        for (i, (name, t, id)) in entries.iter().enumerate() {
            assert!(enc.push(
                &mut buf,
                &DirEntryPlus {
                    fileid: u64::from(*id),
                    name: name.as_bytes(),
                    cookie: first_cookie + i as u64,
                    attrs: Some(attrs(*t, u64::from(*id))),
                    fh: Some(fh(*id)),
                }
            ));
        }
        enc.finish(&mut buf, eof);
        buf
    }

    #[test]
    fn walk_rotates_directories_and_stops_at_the_limit() {
        let mut s = Sampler::new(fh(1), 6);
        let first = s.next_call().expect("root listing");
        assert_eq!((first.dir, first.cookie), (fh(1), 0));
        s.on_reply(&page(
            &[
                (".", FileType3::Dir, 1),
                ("a", FileType3::Dir, 2),
                ("l", FileType3::Lnk, 3),
            ],
            1,
            false,
        ))
        .unwrap();
        // The root is unfinished: it goes behind "a".
        let second = s.next_call().expect("a");
        assert_eq!((second.dir, second.cookie), (fh(2), 0));
        s.on_reply(&page(&[("x", FileType3::Reg, 4)], 1, true))
            .unwrap();
        let third = s.next_call().expect("root again");
        assert_eq!(
            (third.dir, third.cookie, third.cookieverf),
            (fh(1), 3, [7; 8])
        );
        s.on_reply(&page(
            &[
                ("b", FileType3::Reg, 5),
                ("c", FileType3::Reg, 6),
                ("d", FileType3::Reg, 7),
                ("e", FileType3::Reg, 8),
            ],
            4,
            false,
        ))
        .unwrap();
        assert!(s.next_call().is_none(), "6 entries reached");
        let t = s.finish();
        assert_eq!(t.stats.entries, 6);
        assert_eq!(t.stats.readdirplus_calls, 3);
        assert_eq!(t.dirs, vec![fh(1), fh(2)]);
        assert_eq!(t.symlinks, vec![fh(3)]);
        assert_eq!(
            t.objects,
            vec![fh(1), fh(2), fh(3), fh(4), fh(5), fh(6), fh(7)]
        );
        let pairs: Vec<(FileHandle, &[u8])> = t
            .lookups
            .iter()
            .map(|l| (l.dir, t.lookup_name(l)))
            .collect();
        assert_eq!(pairs[0], (fh(1), &b"a"[..]));
        assert_eq!(pairs[2], (fh(2), &b"x"[..]));
        assert_eq!(pairs.len(), 6);
        assert_eq!(t.count(BenchOp::Readlink), 1);
        assert_eq!(t.count(BenchOp::Null), 1);
    }

    #[test]
    fn failed_directories_are_skipped_and_empty_pages_bounded() {
        let mut s = Sampler::new(fh(1), 100);
        s.next_call().unwrap();
        let mut fail = Vec::new();
        ReaddirPlusReplyEncoder::encode_fail(&mut fail, Nfsstat3::Acces, None);
        s.on_reply(&fail).unwrap();
        assert!(s.next_call().is_none());
        let t = s.finish();
        assert_eq!(t.stats.dirs_failed, 1);
        assert_eq!(t.objects, vec![fh(1)], "the root alone");

        // A server that never says eof and sends only "." is cut off.
        let mut s = Sampler::new(fh(1), 100);
        let mut result = Ok(());
        for _ in 0..=EMPTY_PAGES_MAX + 1 {
            if s.next_call().is_none() {
                break;
            }
            result = s.on_reply(&page(&[(".", FileType3::Dir, 1)], 1, false));
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(SampleError::EmptyPages(_))));
        // Garbage is a failed directory, not a panic.
        let mut s = Sampler::new(fh(1), 100);
        s.next_call().unwrap();
        s.on_reply(&[0, 0, 0]).unwrap();
        assert_eq!(s.finish().stats.dirs_failed, 1);
    }
}
