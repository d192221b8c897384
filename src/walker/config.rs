//! The settings of a walk and the limits it works within.

use super::filter::ExcludeSet;
use std::time::Duration;

/// How directories are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// READDIRPLUS: names, attributes and handles in one stream (fewest round trips).
    #[default]
    Plus,
    /// READDIR for names, then pipelined LOOKUP per name, spread over all threads.
    Getattr,
    /// READDIR only; LOOKUP only where a directory may hold subdirectories.
    Names,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plus" => Ok(Mode::Plus),
            "getattr" => Ok(Mode::Getattr),
            "names" => Ok(Mode::Names),
            _ => Err(format!("unknown mode `{s}` (plus, getattr, names)")),
        }
    }
}

/// Listed names longer than this are treated as hostile and skipped (POSIX allows 255, the
/// server's own limit, [`crate::rpc::nfs3::NAME_BYTES_MAX`]; some servers translate names into
/// longer UTF-8, so we leave room).
pub const LISTED_NAME_BYTES_MAX: usize = 1024;
/// Directories deeper than this are not listed (an error is reported instead): a server that
/// presents an endless chain must not make paths grow without bound.
pub const DEPTH_HARD_MAX: u32 = 10_000;
/// A listing restarted this many times after NFS3ERR_BAD_COOKIE is given up.
pub const LISTING_RESTARTS_MAX: u32 = 16;
/// A name batch handed to other threads in `getattr` mode.
pub const LOOKUP_BATCH_NAMES: usize = 128;
/// While more name batches than this wait for LOOKUPs anywhere, `getattr`-mode listings pause
/// their chains, so a huge directory cannot queue its names faster than they are looked up.
pub const LOOKUP_BACKLOG_BATCHES_MAX: usize = 64;
/// First READDIRPLUS of a directory asks for less, so the first entries arrive quickly.
pub const FIRST_MAXCOUNT_BYTES: u32 = 32 << 10;
/// Replies in a row that bring no new entry (without eof) after which a listing is stopped:
/// a server that replays a directory under fresh cookies forever (the failure that made a
/// 1M-entry directory read as 1.7M+ entries) must end with exactly the directory's entries
/// and one error. Repeats a BAD_COOKIE restart makes expected do not count.
pub const FRUITLESS_REPLIES_MAX: u32 = 16;
/// Cookies one chain remembers having continued from, to catch a cycle early (512 KiB at
/// most); past that the set starts over, and a longer cycle, which repeats entries, is caught
/// by [`FRUITLESS_REPLIES_MAX`].
pub const CONTINUED_COOKIES_MAX: usize = 1 << 16;
/// JUKEBOX answers one call may get before its path is given up: about ten minutes of waits
/// at the longest delay, time enough for a hierarchical store to recall a file.
pub const JUKEBOX_WAITS_MAX: u32 = 300;

/// Settings of a walk, shared by every thread.
#[derive(Debug, Clone)]
pub struct WalkConfig {
    pub mode: Mode,
    /// READDIRPLUS `dircount` and `maxcount`; READDIR uses `maxcount` as its `count`.
    pub dircount: u32,
    pub maxcount: u32,
    /// Entries deeper than this are not written and directories at this depth not listed.
    pub max_depth: Option<u32>,
    pub excludes: ExcludeSet,
    pub dirs_only: bool,
    /// Stay on this fsid (`--one-fs`).
    pub one_fs: Option<u64>,
    /// READLINK each symlink and record its target.
    pub readlink: bool,
    pub rpc_timeout: Duration,
    /// Retries of a call after a timeout or a malformed reply.
    pub retries: u32,
    pub inflight_per_conn: usize,
    /// Directory listings one thread keeps going at once.
    pub listings_max: usize,
    /// The encoded RPC credential.
    pub cred_xdr: Vec<u8>,
    /// Keys of written entries one listing keeps in memory before spilling to a temporary
    /// file (see [`super::seen::EmittedSet`]).
    pub emitted_keys_in_memory: usize,
    /// Listing replies of this size or more that continue their chain are processed once the
    /// next call went out ([`DEFER_PAGE_BYTES_MIN`]; tests defer every page with 0).
    pub defer_page_bytes_min: usize,
}

impl Default for WalkConfig {
    fn default() -> Self {
        WalkConfig {
            mode: Mode::Plus,
            dircount: 64 << 10,
            maxcount: 1 << 20,
            max_depth: None,
            excludes: ExcludeSet::default(),
            dirs_only: false,
            one_fs: None,
            readlink: false,
            rpc_timeout: Duration::from_secs(30),
            retries: 5,
            inflight_per_conn: 256,
            listings_max: 64,
            cred_xdr: crate::xdr::XdrEncode::to_xdr(&crate::rpc::Auth::None),
            emitted_keys_in_memory: EMITTED_KEYS_IN_MEMORY_MAX,
            defer_page_bytes_min: DEFER_PAGE_BYTES_MIN,
        }
    }
}

/// Listing replies of this size or more that continue their chain are processed once the
/// call for the next page went out (a smaller one at once: copying it would cost about what
/// the overlap saves).
pub const DEFER_PAGE_BYTES_MIN: usize = 4 << 10;
/// Bytes of deferred listing pages a walk thread holds at once at most (each listing has one
/// page in flight, so without it the bound would be `listings_max` × `maxcount`: 64 MiB);
/// past it a page is processed at once, as if it ended its chain.
pub const DEFERRED_PAGE_BYTES_MAX: usize = 8 << 20;
/// Buffers of deferred listing pages a walk thread keeps for reuse.
pub const SPARE_PAGE_BUFFERS_MAX: usize = 4;

/// Keys of written entries a listing keeps in memory (about 16 MiB at most); a larger
/// directory spills the rest to a temporary file (see [`super::seen::EmittedSet`]).
pub const EMITTED_KEYS_IN_MEMORY_MAX: usize = 1 << 20;
