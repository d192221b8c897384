//! ONC-RPC (RFC 5531) and the program codecs nfs-walker speaks.
//!
//! Everything here is a pure function over byte slices: no sockets, no threads.

pub mod mount;
pub mod msg;
pub mod nfs3;
pub mod nfs4;
pub mod portmap;
pub mod record;

pub use msg::{Auth, AuthStat, AuthSys, CallHeader, Reply, RpcError};
pub use record::{RecordAssembler, RecordError, DEFAULT_RECORD_BYTES_MAX};
