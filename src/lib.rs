//! nfs-walker: scan NFSv3 namespaces as fast as the server allows, without a kernel mount.
//!
//! Layers, each knowing as little as it can:
//! - [`xdr`]: XDR primitives over byte slices.
//! - [`rpc`]: ONC-RPC record marking, call/reply headers and the PORTMAP, MOUNT and NFS codecs.
//! - [`ring`]: sockets and I/O backends (io_uring, epoll); moves bytes, knows no protocol.
//! - [`sched`]: threads, pinning, connections, the call engine, sources of tasks, the drive loop.
//! - [`walker`]: the directory walk as a state machine (sans-IO), filters.
//! - [`scan`]: the walk run on the engine into an output.
//! - [`output`]: entry records to NDJSON, CSV or the scan database.
//! - [`bench`]: per-operation load generation and latency histograms of a server.

pub mod bench;
pub mod client;
pub mod output;
pub mod path_error;
pub mod record;
pub mod report;
pub mod ring;
pub mod rpc;
pub mod scan;
pub mod sched;
pub mod walker;
pub mod xdr;
