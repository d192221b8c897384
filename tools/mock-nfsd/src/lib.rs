//! mock-nfsd: a fast in-memory NFSv3 server over synthetic trees, with latency and fault
//! injection. A product tool to tell client cost from server cost, and the oracle of
//! nfs-walker's tests.
//!
//! In-process use:
//! ```no_run
//! let config = mock_nfsd::Config {
//!     tree: "flat:1000".parse().unwrap(),
//!     ..Default::default()
//! };
//! let server = mock_nfsd::Server::start(config.clone()).unwrap();
//! println!("{}", server.url()); // nfs://127.0.0.1/export?nfsport=P&mountport=P
//! let expected: Vec<_> = mock_nfsd::listing(&config, false).collect();
//! server.shutdown();
//! ```

pub mod content;
pub mod cookies;
pub mod faults;
pub mod latency;
pub mod listing;
pub mod mutate;
pub mod nfs4;
pub mod rng;
pub mod server;
pub mod service;
pub mod stats;
pub mod tree;

pub use cookies::CookieMode;
pub use faults::{Fault, FaultSpec};
pub use latency::LatencyDist;
pub use listing::Listing;
pub use mutate::Mutation;
pub use server::{Server, ServerHandle};
pub use stats::StatsSnapshot;
pub use tree::{Tree, TreeModel};

use nfs_proto::record::EntryRecord;
use std::net::SocketAddr;

/// Everything that shapes a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    pub tree: Tree,
    /// The exported path clients mount ("/export").
    pub export: String,
    pub cookies: CookieMode,
    /// Return `.` and `..` first in every directory, like Linux knfsd.
    pub dot_entries: bool,
    /// Delay of each NFS reply; `None` answers at once.
    pub latency: Option<LatencyDist>,
    pub faults: FaultSpec,
    /// Seeds fault and latency draws.
    pub seed: u64,
    /// Serve the tree's changed variant (`--mutate SEED:FRACTION`).
    pub mutate: Option<Mutation>,
    /// NFSv4 owners as names where [`owner_name`] has one (`alice@example.com`), as servers
    /// without numeric owners send them; numbers otherwise. NFSv3 always sees numbers.
    pub owner_names: bool,
    /// NFSv4 handles of `NFS4_FHSIZE` (128) bytes, padded, as some servers' are: longer than
    /// NFSv3 allows. NFSv3 handles stay 24 bytes.
    pub v4_long_handles: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tree: Tree::Flat { files: 1000 },
            export: "/export".to_string(),
            cookies: CookieMode::Hash,
            dot_entries: true,
            latency: None,
            faults: FaultSpec::default(),
            seed: 0,
            mutate: None,
            owner_names: false,
            v4_long_handles: false,
        }
    }
}

/// The exact listing of `config`'s tree as a correct client records it: the root as "."
/// (depth 0), then every entry, depth-first. With `readlink`, symlinks carry their targets.
///
/// With [`Config::owner_names`], the listing is what an NFSv4 client without an id map sees:
/// names kept in `owner` / `group`, their ids `nobody`.
pub fn listing(config: &Config, readlink: bool) -> impl Iterator<Item = EntryRecord> {
    let names = config.owner_names;
    Listing::new(TreeModel::new(config.tree).mutated(config.mutate), readlink).map(move |mut r| {
        if names {
            if let Some(n) = owner_name(r.attrs.uid, false) {
                r.owner = Some(n.to_vec());
                r.attrs.uid = NOBODY_ID;
            }
            if let Some(n) = owner_name(r.attrs.gid, true) {
                r.group = Some(n.to_vec());
                r.attrs.gid = NOBODY_ID;
            }
        }
        r
    })
}

/// The id a client without an id map gives an owner name (`nobody`, as Linux's idmapd).
pub const NOBODY_ID: u32 = 65534;

/// The name `--owner-names` sends over NFSv4 for a uid (or a gid, `group`): the mixed tree's
/// common ids get names (one with the characters CSV and JSON quote), the rest stay numbers,
/// so one listing holds both.
pub fn owner_name(id: u32, group: bool) -> Option<&'static [u8]> {
    match (id, group) {
        (1000, false) => Some(b"alice@example.com"),
        (1000, true) => Some(b"staff@example.com"),
        (0, false) => Some(b"root@example.com"),
        (0, true) => Some(b"wheel, \"admins\"@example.com"),
        _ => None,
    }
}
