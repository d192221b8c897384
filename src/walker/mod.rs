//! The walk: directory listing chains, lookups, filters and what they emit. Knows NFS
//! semantics; knows nothing of sockets or threads.

pub mod config;
pub mod deferred;
pub mod disk_keys;
pub mod filter;
pub mod machine;
pub mod seen;
pub mod stats;
pub mod task;

pub use crate::path_error::PathError;
pub use config::{Mode, WalkConfig};
pub use filter::{ExcludeSet, VisitedDirs};
pub use machine::{ObjectRef, WalkSink, Walker};
pub use stats::{ProcStats, WalkStats};
pub use task::{DirTask, LookupBatch, LookupName, Task};
