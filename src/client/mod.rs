//! The cold-path client: URLs, connections, a blocking RPC client, and mounting an export.

pub mod idmap;
pub mod mount;
pub mod nfs4;
pub mod transport;
pub mod url;

pub use mount::{mount, ClientOptions, MountFlowError, Mounted};
pub use transport::{connect_tcp, CallError, RpcClient, SourcePort};
pub use url::{NfsUrl, UrlError};
