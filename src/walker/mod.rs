//! The walk: directory listing chains, lookups, filters and what they emit. Knows NFS
//! semantics; knows nothing of sockets or threads.

pub mod balance;
pub mod filter;
pub mod machine;
pub mod seen;
pub mod task;

pub use balance::{take_calls, ConnBalancer};
pub use filter::{ExcludeSet, VisitedDirs};
pub use machine::{Mode, PathError, ProcStats, WalkConfig, WalkSink, WalkStats, Walker};
pub use task::{DirTask, LookupBatch, LookupName, Task};
