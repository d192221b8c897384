//! The command-line subcommands.

pub mod bench;
pub mod content;
pub mod convert;
pub mod demo;
pub mod diff;
pub mod docs;
pub mod ls;
pub mod ls4;
pub mod merge;
pub mod queue;
pub mod report;
pub mod resume;
pub mod scan;
pub mod stats;
pub mod version;

use clap::Args;
use nfs_walker::client::{ClientOptions, SourcePort};
use std::time::Duration;

#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// AUTH_SYS uid (default: the caller's; the URL's uid= wins)
    #[arg(long)]
    pub uid: Option<u32>,
    /// AUTH_SYS gid (default: the caller's; the URL's gid= wins)
    #[arg(long)]
    pub gid: Option<u32>,
    /// Never bind a privileged (<1024) source port, even where allowed
    #[arg(long)]
    pub unprivileged_port: bool,
    /// Timeout of connection set-up and mount calls, in seconds
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// The export to mount, for servers that hide their export list (MOUNT EXPORT): the URL's
    /// path lies within it
    #[arg(long, value_name = "PATH")]
    pub export: Option<String>,
    /// NFS version when the URL has no version=: 3, or 4 (NFSv4.1, port 2049, no MOUNT)
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["3", "4"]))]
    pub nfs_version: Option<String>,
    /// NFSv4 owner names to numeric ids: lines `NAME ID` (`#` comments); numeric owners need
    /// no map, unmapped names become 65534 (nobody)
    #[arg(long, value_name = "FILE")]
    pub idmap: Option<std::path::PathBuf>,
}

impl ClientArgs {
    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            uid: self.uid,
            gid: self.gid,
            source_port: if self.unprivileged_port {
                SourcePort::Unprivileged
            } else {
                SourcePort::Auto
            },
            timeout: Duration::from_secs(self.connect_timeout.max(1)),
            export: self.export.as_ref().map(|e| e.as_bytes().to_vec()),
            nfs_version: self.nfs_version.as_deref().and_then(|v| v.parse().ok()),
            idmap: self.idmap.clone(),
        }
    }
}

pub use nfs_walker::report::format_utc;
