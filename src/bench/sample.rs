//! The sample walk: a short walk of the URL's tree that yields real targets for the bench
//! (object handles, (directory, name) pairs, symlinks, directories, regular files with data).
//!
//! It is the scan's own walk ([`crate::scan`], READDIRPLUS with small replies) over the same
//! engine, its entries handed to a [`SampleCollector`] instead of an output: every child's
//! handle becomes a target, and the walk is stopped once `entries_max` entries were taken. The
//! walker's listings run many directories at once, so the sample spreads over the tree instead
//! of being swallowed by the first huge directory, and a single huge directory still fills the
//! sample when it is all there is. It honours `--max-rate` like every other call of the run.

use super::ops::BenchOp;
use crate::path_error::PathError;
use crate::record::{EntryRef, EntryType};
use crate::rpc::nfs3::{proc3, FileHandle};
use crate::scan::{self, EntrySink, Progress, WalkSetup};
use crate::sched::{EngineError, EngineOptions, LocalDeques, RateLimiter};
use crate::walker::{DirTask, Mode, ObjectRef, Task, VisitedDirs, WalkConfig};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// Largest sample accepted (handles are kept in memory: about 100 bytes per entry).
pub const SAMPLE_ENTRIES_MAX: usize = 10_000_000;
/// READDIRPLUS sizes of the sample walk: small replies, so a sample of a few thousand entries
/// does not fetch far more than it keeps.
const SAMPLE_DIRCOUNT_BYTES: u32 = 16 << 10;
const SAMPLE_MAXCOUNT_BYTES: u32 = 64 << 10;

#[derive(Debug, Error)]
pub enum SampleError {
    #[error("sample walk: {0}")]
    Engine(#[from] EngineError),
}

/// A (directory, name) pair for LOOKUP; the name lives in [`Targets`]' name arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupTarget {
    pub dir: FileHandle,
    name_start: u32,
    name_len: u32,
}

/// A regular file for READ: its handle and its size when listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTarget {
    pub fh: FileHandle,
    pub size: u64,
}

/// What the sample walk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleStats {
    /// Entries seen (without `.` and `..`).
    pub entries: u64,
    /// Listing calls made (the only procedure the sample walk uses).
    pub listing_calls: u64,
    /// Their procedure: READDIRPLUS over NFSv3; over NFSv4.1 READDIR (in a COMPOUND, asking
    /// for the attributes and handles). `None`: no sample walk (the operations need none).
    pub listing_op: Option<&'static str>,
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
    /// Sampled regular files that are not empty (READ).
    pub files: Vec<FileTarget>,
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
            BenchOp::Read => self.files.len(),
        }
    }
}

impl Targets {
    /// Adds another collector's targets (the root is in `self` already).
    fn absorb(&mut self, o: Targets) {
        for l in &o.lookups {
            self.push_lookup(l.dir, o.lookup_name(l));
        }
        self.objects.extend(o.objects);
        self.dirs.extend(o.dirs);
        self.symlinks.extend(o.symlinks);
        self.files.extend(o.files);
    }
}

/// What the collectors of one sample walk share: how many entries were taken, and the flag
/// that stops the walk once there are enough.
#[derive(Debug)]
struct SampleQuota {
    taken: AtomicU64,
    max: u64,
    stop: AtomicBool,
}

/// One walk thread's part of the sample.
pub struct SampleCollector {
    targets: Targets,
    quota: Arc<SampleQuota>,
}

impl EntrySink for SampleCollector {
    const WANTS_OBJECTS: bool = true;

    fn entry(&mut self, _: &EntryRef<'_>) {}

    fn error(&mut self, _: PathError) {
        // A directory that cannot be listed is left out (counted from the walk's figures).
    }

    fn object(&mut self, o: &ObjectRef<'_>) {
        let n = self.quota.taken.fetch_add(1, Ordering::Relaxed);
        if n + 1 >= self.quota.max {
            self.quota.stop.store(true, Ordering::Relaxed);
        }
        if n >= self.quota.max {
            return;
        }
        let t = &mut self.targets;
        t.stats.entries += 1;
        t.push_lookup(*o.dir, o.name);
        let Some(fh) = o.fh.filter(|fh| !fh.is_empty()) else {
            return;
        };
        t.objects.push(*fh);
        match o.kind {
            EntryType::Dir => t.dirs.push(*fh),
            EntryType::Symlink => t.symlinks.push(*fh),
            EntryType::File if o.size > 0 => t.files.push(FileTarget {
                fh: *fh,
                size: o.size,
            }),
            _ => {}
        }
    }
}

/// How the sample walk runs.
pub struct SampleSetup<'a> {
    pub addrs: &'a [SocketAddr],
    pub root_fh: FileHandle,
    /// The root's file system and fileid (the walk visits each directory once).
    pub root_fsid: u64,
    pub root_fileid: u64,
    pub entries_max: usize,
    pub engine: &'a EngineOptions,
    pub rpc_timeout: std::time::Duration,
    /// The encoded RPC credential.
    pub cred_xdr: Vec<u8>,
    pub rate: Option<Arc<RateLimiter>>,
    /// NFSv4.1: the walk goes over the shared session (see [`crate::walk4`]).
    pub v4: Option<Arc<crate::walk4::Walk4Setup>>,
}

/// Walks the tree below the root until `entries_max` entries are taken (or the tree ends).
pub fn sample_targets(s: &SampleSetup<'_>) -> Result<Targets, SampleError> {
    let entries_max = s.entries_max.min(SAMPLE_ENTRIES_MAX);
    let mut targets = Targets::root_only(s.root_fh);
    if entries_max == 0 {
        return Ok(targets);
    }
    let walk = WalkConfig {
        mode: Mode::Plus,
        dircount: SAMPLE_DIRCOUNT_BYTES,
        maxcount: SAMPLE_MAXCOUNT_BYTES,
        rpc_timeout: s.rpc_timeout,
        cred_xdr: s.cred_xdr.clone(),
        ..WalkConfig::default()
    };
    let visited = Arc::new(VisitedDirs::default());
    visited.insert_dir(s.root_fsid, s.root_fileid, s.root_fh.as_bytes());
    let setup = WalkSetup {
        walk: Arc::new(walk),
        visited,
        rate: s.rate.clone(),
    };
    let source = LocalDeques::new([Task::Dir(DirTask {
        fh: s.root_fh,
        path: b".".to_vec(),
        depth: 0,
        fsid: s.root_fsid,
    })]);
    let quota = Arc::new(SampleQuota {
        taken: AtomicU64::new(0),
        max: entries_max as u64,
        stop: AtomicBool::new(false),
    });
    let collector = |_| SampleCollector {
        targets: Targets::default(),
        quota: quota.clone(),
    };
    let progress = Arc::new(Progress::default());
    let (report, collectors) = match &s.v4 {
        None => scan::run(
            s.engine,
            &setup,
            s.addrs,
            &source,
            collector,
            &progress,
            &quota.stop,
        )?,
        Some(v4) => scan::run_with(
            s.engine,
            s.addrs,
            &source,
            |t: &crate::sched::ThreadSetup| {
                crate::walk4::Walker4::for_thread(&setup, v4, t, s.engine.threads)
            },
            collector,
            &progress,
            &quota.stop,
        )?,
    };
    for c in collectors {
        let stats = c.targets.stats;
        targets.stats.entries += stats.entries;
        targets.absorb(c.targets);
    }
    // Over v4 the listings count as READDIR (one COMPOUND with the attributes and handles).
    let (listing, name) = if s.v4.is_some() {
        (proc3::READDIR, "READDIR")
    } else {
        (proc3::READDIRPLUS, "READDIRPLUS")
    };
    let calls = &report.stats.procs[listing as usize];
    targets.stats.listing_calls = calls.calls;
    targets.stats.listing_op = Some(name);
    targets.stats.dirs_failed = calls.errors;
    Ok(targets)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn fh(n: u8) -> FileHandle {
        FileHandle::from_bytes(&[n; 8]).expect("short handle")
    }

    #[test]
    fn collectors_keep_handles_by_kind_and_stop_at_the_quota() {
        let quota = Arc::new(SampleQuota {
            taken: AtomicU64::new(0),
            max: 3,
            stop: AtomicBool::new(false),
        });
        let mut a = SampleCollector {
            targets: Targets::default(),
            quota: quota.clone(),
        };
        let mut b = SampleCollector {
            targets: Targets::default(),
            quota: quota.clone(),
        };
        let (root, d) = (fh(1), fh(2));
        let obj = |name, fh, kind| ObjectRef {
            dir: &root,
            name,
            fh,
            kind,
            size: 10,
        };
        a.object(&obj(b"d", Some(&d), EntryType::Dir));
        b.object(&obj(b"nofh", None, EntryType::File));
        assert!(!quota.stop.load(Ordering::Relaxed));
        b.object(&obj(b"l", Some(&d), EntryType::Symlink));
        assert!(quota.stop.load(Ordering::Relaxed), "three taken");
        a.object(&obj(b"late", Some(&d), EntryType::File));
        let mut t = Targets::root_only(fh(1));
        t.stats.entries = a.targets.stats.entries + b.targets.stats.entries;
        t.absorb(a.targets);
        t.absorb(b.targets);
        assert_eq!(t.stats.entries, 3);
        assert_eq!(t.dirs, vec![fh(1), fh(2)]);
        assert_eq!(t.symlinks, vec![fh(2)]);
        assert!(
            t.files.is_empty(),
            "the file without a handle cannot be read"
        );
        assert_eq!(
            t.objects.len(),
            3,
            "root, d, l; the handle-less file is a name only"
        );
        let names: Vec<&[u8]> = t.lookups.iter().map(|l| t.lookup_name(l)).collect();
        assert_eq!(names, vec![&b"d"[..], b"nofh", b"l"]);
        assert_eq!(t.count(BenchOp::Lookup), 3);
    }
}
