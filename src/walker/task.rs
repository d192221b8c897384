//! Units of work that move between threads.

use crate::rpc::nfs3::{Fattr3, FileHandle};
use std::sync::Arc;

/// A directory to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirTask {
    pub fh: FileHandle,
    /// Path relative to the scan root ("." for the root itself).
    pub path: Vec<u8>,
    /// Depth of the directory itself (the root is 0).
    pub depth: u32,
}

/// One name whose handle and attributes must be fetched with LOOKUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupName {
    pub name: Box<[u8]>,
    pub fileid: u64,
    /// Attributes the listing already carried (a READDIRPLUS entry without a handle); boxed
    /// because it is rare and names may queue by the thousand.
    pub attrs: Option<Box<Fattr3>>,
}

/// Names of one directory to LOOKUP: in `getattr` mode every name of a listing, in `plus` mode
/// the entries a server sent without attributes or handle. A batch is a task of its own, so the
/// LOOKUPs of one huge directory spread over every thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupBatch {
    pub dir_fh: FileHandle,
    pub dir_path: Arc<[u8]>,
    /// Depth of the names (their directory's depth + 1).
    pub depth: u32,
    pub names: Vec<LookupName>,
}

/// A unit of work in the scheduler's deques.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    Dir(DirTask),
    Lookups(LookupBatch),
}
