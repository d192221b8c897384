//! The NFSv3 wire codecs and entry records shared by the scanner (nfs-walker) and the server
//! (mock-nfsd). Its own crate so that nfs-walker can link mock-nfsd for `demo` without a
//! dependency cycle: both depend on this one, neither on the other's protocol code.
//!
//! - [`xdr`]: XDR primitives over byte slices.
//! - [`rpc`]: ONC-RPC record marking, call/reply headers and the PORTMAP, MOUNT and NFS codecs.
//! - [`record`]: one entry of a scan, as every output and the mock server's listing see it.
//!
//! Pure byte-slice codecs: no I/O, no threads.

pub mod record;
pub mod rpc;
pub mod xdr;
