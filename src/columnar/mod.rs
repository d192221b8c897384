//! Parquet output: the entry record as typed columns, for DuckDB, Spark, pandas and pyarrow.
//!
//! Written with the official `parquet` crate's low-level column writers (no Arrow): each
//! column of a row group is encoded and ZSTD-compressed page by page into a buffer of its own
//! as batches arrive, so a row group of [`ROW_GROUP_ROWS`] rows costs its compressed size in
//! memory, not its raw size. The scanning threads copy entries into the same
//! [`RowBatch`](crate::output::sqlite::RowBatch)es as for the scan database; the writer thread
//! turns those into columns.
//!
//! Two forms: one file (`-o scan.parquet`: written under a temporary name and renamed when the
//! scan ends, so a kill leaves no `scan.parquet`, only the unreadable temporary file), or a
//! directory of part files (`-o DIR --format parquet`: each part is written under a temporary
//! name and renamed when it is complete, so a kill loses at most the open part and
//! `DIR/*.parquet` is always a set of complete files that DuckDB reads as one table).
//!
//! Columns, in this order ([`COLUMNS`]): `path` (UTF-8; lossy where the name is not),
//! `path_bytes` (the exact bytes, only where `path` is not valid UTF-8, else null), `type`,
//! `size`, `used` (unsigned 64-bit), `mode`, `nlink`, `uid`, `gid` (unsigned 32-bit),
//! `fileid`, `fsid` (unsigned 64-bit), `atime_ns`, `mtime_ns`, `ctime_ns` (timestamps in
//! nanoseconds, UTC), `depth` (unsigned 32-bit), `extension` (as the database's column; null
//! where none), `target` and `target_bytes` (symlink targets with `--readlink`, as `path`),
//! `checksum` and `mime` (UTF-8, `--checksum` and `--file-type`; null where the scan read no
//! contents or found no value; absent from files of schema version 1, which read as null),
//! `owner` and `group` (UTF-8: the NFSv4 owner names that are not numbers; null over v3 and
//! for numeric owners; absent from files of schema versions 1 and 2, which read as null).
//! The scan itself (URL, times, status, totals) is the JSON value of the key
//! [`SCAN_METADATA_KEY`] in each file's key-value metadata.

pub mod reader;
pub mod writer;

use std::path::PathBuf;
use thiserror::Error;

/// Rows per row group: large enough for efficient scans, small enough that a row group's
/// compressed columns (tens of MiB) are what the writer holds in memory.
pub const ROW_GROUP_ROWS: usize = 1 << 20;
/// Rows per part file of a Parquet directory at most: a kill loses at most this many rows.
pub const PART_ROWS_DEFAULT: u64 = 1 << 20;
/// A part holding rows is closed after this long even when not full (a scan passes its
/// `--checkpoint-secs`), so a slow scan killed late still leaves almost everything in complete
/// parts.
pub const PART_SECONDS_DEFAULT: f64 = 10.0;
/// The key-value metadata key holding the scan's description (JSON).
pub const SCAN_METADATA_KEY: &str = "nfs_walker.scan";
/// Stored in the scan metadata: the columns' meaning changes with it. Version 2 added
/// `checksum` and `mime`; version 3 `owner` and `group`.
pub const PARQUET_SCHEMA_VERSION: u32 = 3;
/// The first (and last) four bytes of every Parquet file.
pub const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// The Parquet schema of the entry record.
pub const SCHEMA_MESSAGE: &str = "
message nfs_walker_entry {
    REQUIRED BYTE_ARRAY path (STRING);
    OPTIONAL BYTE_ARRAY path_bytes;
    REQUIRED BYTE_ARRAY type (STRING);
    REQUIRED INT64 size (INTEGER(64,false));
    REQUIRED INT64 used (INTEGER(64,false));
    REQUIRED INT32 mode (INTEGER(32,false));
    REQUIRED INT32 nlink (INTEGER(32,false));
    REQUIRED INT32 uid (INTEGER(32,false));
    REQUIRED INT32 gid (INTEGER(32,false));
    REQUIRED INT64 fileid (INTEGER(64,false));
    REQUIRED INT64 fsid (INTEGER(64,false));
    REQUIRED INT64 atime_ns (TIMESTAMP(NANOS,true));
    REQUIRED INT64 mtime_ns (TIMESTAMP(NANOS,true));
    REQUIRED INT64 ctime_ns (TIMESTAMP(NANOS,true));
    REQUIRED INT32 depth (INTEGER(32,false));
    OPTIONAL BYTE_ARRAY extension (STRING);
    OPTIONAL BYTE_ARRAY target (STRING);
    OPTIONAL BYTE_ARRAY target_bytes;
    OPTIONAL BYTE_ARRAY checksum (STRING);
    OPTIONAL BYTE_ARRAY mime (STRING);
    OPTIONAL BYTE_ARRAY owner (STRING);
    OPTIONAL BYTE_ARRAY group (STRING);
}
";

/// The column names, in schema order.
pub const COLUMNS: [&str; 22] = [
    "path",
    "path_bytes",
    "type",
    "size",
    "used",
    "mode",
    "nlink",
    "uid",
    "gid",
    "fileid",
    "fsid",
    "atime_ns",
    "mtime_ns",
    "ctime_ns",
    "depth",
    "extension",
    "target",
    "target_bytes",
    "checksum",
    "mime",
    "owner",
    "group",
];

/// The columns files of schema version 1 lack: read as null there.
pub const CONTENT_COLUMNS: [&str; 2] = ["checksum", "mime"];
/// The columns files of schema versions 1 and 2 lack: read as null there.
pub const OWNER_COLUMNS: [&str; 2] = ["owner", "group"];

#[derive(Debug, Error)]
pub enum ColumnarError {
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an nfs-walker Parquet file (no column `{column}`)")]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("{path}: column `{column}` has an unexpected type")]
    WrongType { path: PathBuf, column: &'static str },
    #[error("{path}: row group {row_group}: columns end at different rows")]
    RaggedColumns { path: PathBuf, row_group: usize },
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} holds no Parquet files")]
    NoParts(PathBuf),
    #[error("{0} exists and is not a Parquet file; remove it or choose another name")]
    NotParquet(PathBuf),
    #[error("cannot start the Parquet writer: {0}")]
    Thread(std::io::Error),
    #[error("the Parquet writer thread panicked")]
    Panicked,
}

impl ColumnarError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ColumnarError {
        let path = path.into();
        move |source| ColumnarError::Io { path, source }
    }
}

/// Where the scan's Parquet goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParquetTarget {
    /// One file, complete when the scan ends.
    File(PathBuf),
    /// A directory of part files of at most `part_rows` rows each, each closed at most
    /// `part_max` after it was opened (when rows arrive then: a part with nothing new has
    /// nothing to lose).
    Dir {
        dir: PathBuf,
        part_rows: u64,
        part_max: std::time::Duration,
    },
}

impl ParquetTarget {
    /// A path ending in `.parquet` is one file; anything else a directory of parts.
    pub fn for_path(path: &std::path::Path, part_rows: u64, part_max: std::time::Duration) -> Self {
        if path.extension().is_some_and(|e| e == "parquet") {
            ParquetTarget::File(path.to_path_buf())
        } else {
            ParquetTarget::Dir {
                dir: path.to_path_buf(),
                part_rows: part_rows.max(1),
                part_max,
            }
        }
    }
}
