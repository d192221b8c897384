//! Reading file contents during a scan (`--checksum`, `--file-type`): a sans-IO reader that
//! turns regular files into pipelined READs within a byte budget ([`reader`]), the hashing
//! threads it feeds ([`hash_pool`]), and type detection from a file's first bytes ([`mime`]).

pub mod hash_pool;
pub mod mime;
pub mod reader;
pub mod reports;
pub mod scan;

pub use hash_pool::{HashClient, HashPool};
pub use reader::{
    ContentConfig, ContentDone, ContentError, ContentJob, ContentReader, ContentStats, FileKey,
    HashStage, ReadCall,
};

/// Spreads hash job keys (slot | epoch) over the hashing threads.
fn mix_key(key: u64) -> u64 {
    (key ^ (key >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32
}
