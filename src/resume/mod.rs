//! Resumable scans: a scan writing to a file keeps a frontier journal beside it
//! ([`journal`]), fed by the task source [`source::JournaledTasks`]; `scan --resume FILE`
//! reads it back and goes on from the frontier.
//!
//! **What a resumed scan stores.** Every directory in the frontier is listed again from its
//! start. Entries the interrupted run stored below a frontier directory (a directory it was
//! listing, or the subtrees it reached from there) are not stored twice: a database is
//! rebuilt from its rows outside the frontier ([`prior`]), and an NDJSON or CSV file keeps its
//! lines and skips the paths it already holds as the walk produces them again ([`text`]).
//! Everything outside the frontier was stored by directories whose listing was durable, and
//! is kept as it is.

pub mod journal;
pub mod prior;
pub mod source;
pub mod text;

use crate::rpc::nfs3::FileHandle;
use crate::sched::TaskId;
use crate::walker::{DirTask, Task};
use crate::xdr::XdrDecode;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Resumes of one scan at most: each run's task ids carry its number in 16 bits.
pub const RESUMES_MAX: u16 = u16::MAX - 1;

#[derive(Debug, Error)]
pub enum ResumeError {
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Database(#[from] crate::output::sqlite::DbError),
    #[error("{path}: {why}")]
    Unreadable { path: PathBuf, why: String },
    #[error("{0}: a saved directory does not decode (the journal is not from this version of nfs-walker?)")]
    BadTask(PathBuf),
    #[error("the scan was resumed {RESUMES_MAX} times already")]
    TooManyResumes,
}

/// Where the frontier journal of the output `out` lives: `out.frontier`.
pub fn journal_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".frontier");
    PathBuf::from(p)
}

/// The directories a journal left to list, as tasks for the walk.
pub fn frontier_tasks(
    saved: &journal::Saved,
    journal: &Path,
) -> Result<Vec<(TaskId, Task)>, ResumeError> {
    saved
        .tasks
        .iter()
        .map(|(id, bytes)| {
            let d = DirTask::from_xdr(bytes).map_err(|_| ResumeError::BadTask(journal.into()))?;
            Ok((TaskId(*id), Task::Dir(d)))
        })
        .collect()
}

/// The task of a new scan's root, as the journal keeps it.
pub fn root_task(fh: FileHandle, fsid: u64) -> Task {
    Task::Dir(DirTask {
        fh,
        path: b".".to_vec(),
        depth: 0,
        fsid,
    })
}

/// The directories of a frontier, to tell which stored entries lie below one of them.
#[derive(Debug, Default)]
pub struct FrontierPaths {
    dirs: HashSet<Vec<u8>>,
    /// The root is in the frontier: everything but the root's own entry lies below it.
    root: bool,
}

impl FrontierPaths {
    pub fn new(tasks: &[(TaskId, Task)]) -> FrontierPaths {
        let mut f = FrontierPaths::default();
        for (_, t) in tasks {
            if let Task::Dir(d) = t {
                if d.path == b"." {
                    f.root = true;
                } else {
                    f.dirs.insert(d.path.clone());
                }
            }
        }
        f
    }

    /// Whether `path` lies below a frontier directory (the directory's own entry does not:
    /// its parent's listing, which is durable, stored it).
    pub fn covers(&self, path: &[u8]) -> bool {
        if self.root {
            return path != b".";
        }
        if self.dirs.is_empty() {
            return false;
        }
        path.iter()
            .enumerate()
            .any(|(i, &b)| b == b'/' && self.dirs.contains(&path[..i]))
    }

    pub fn len(&self) -> usize {
        self.dirs.len() + usize::from(self.root)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_covers_what_lies_below_its_directories() {
        let t = |p: &str| {
            (
                TaskId(0),
                Task::Dir(DirTask {
                    fh: FileHandle::from_bytes(b"x").unwrap(),
                    path: p.as_bytes().to_vec(),
                    depth: 1,
                    fsid: 0,
                }),
            )
        };
        let f = FrontierPaths::new(&[t("a"), t("b/c")]);
        assert!(!f.covers(b"."));
        assert!(!f.covers(b"a"), "the directory's own entry is its parent's");
        assert!(f.covers(b"a/x"));
        assert!(f.covers(b"a/x/y"));
        assert!(!f.covers(b"ab/x"));
        assert!(!f.covers(b"b/x"));
        assert!(f.covers(b"b/c/d"));
        let root = FrontierPaths::new(&[t(".")]);
        assert!(!root.covers(b"."));
        assert!(root.covers(b"a"));
    }
}
