//! nfs-walker: scan NFSv3 namespaces as fast as the server allows, without a kernel mount.
//!
//! Layers, each knowing as little as it can:
//! - [`xdr`]: XDR primitives over byte slices.
//! - [`rpc`]: ONC-RPC record marking, call/reply headers and the PORTMAP, MOUNT and NFS codecs.
//! - [`ring`]: sockets and I/O backends (io_uring, epoll); moves bytes, knows no protocol.
//! - [`sched`]: threads, pinning, work distribution and the in-flight call table.
//! - [`walker`]: the directory walk as a state machine, filters and entry records.
//! - [`bench`]: per-operation load generation and latency histograms of a server.

pub mod bench;
pub mod client;
pub mod columnar;
pub mod convert;
pub mod output;
pub mod record;
pub mod report;
pub mod ring;
pub mod rpc;
pub mod scanfile;
pub mod sched;
pub mod stats;
pub mod walker;
pub mod xdr;
