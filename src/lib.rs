//! nfs-walker: scan NFSv3 namespaces as fast as the server allows, without a kernel mount.
//!
//! Layers, each knowing as little as it can:
//! - [`xdr`], [`rpc`], [`record`] (the nfs-proto crate): XDR primitives over byte slices, ONC-RPC
//!   record marking and the PORTMAP, MOUNT and NFS codecs, the entry record.
//! - [`ring`]: sockets and I/O backends (io_uring, epoll); moves bytes, knows no protocol.
//! - [`sched`]: threads, pinning, connections, the call engine, sources of tasks, the drive loop.
//! - [`walker`]: the directory walk as a state machine (sans-IO), filters.
//! - [`scan`]: the walk run on the engine into an output.
//! - [`output`]: entry records to NDJSON, CSV or the scan database.
//! - [`stats`]: the scan's figures and reports, from the database or NDJSON.
//! - [`bench`]: per-operation load generation and latency histograms of a server.

pub mod bench;
pub mod client;
pub mod columnar;
pub mod content;
pub mod convert;
pub mod diff;
pub mod output;
pub mod path_error;
pub mod queue;
pub mod report;
pub mod resume;
pub mod ring;
pub mod scan;
pub mod scanfile;
pub mod sched;
pub mod stats;
pub mod walk4;
pub mod walker;

// The codecs and entry records live in the nfs-proto crate (mock-nfsd shares them, and nfs-walker
// links mock-nfsd for `demo`); re-exported so `crate::rpc::...` and `nfs_walker::rpc::...` paths
// stay as they were.
pub use nfs_proto::{record, rpc, xdr};
