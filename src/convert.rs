//! `convert`: a scan output rewritten in another format (scan database, NDJSON, CSV, Parquet),
//! as a stream: entries are read in batches and go through the same batchers and writer
//! threads as a scan's, so memory is bounded by the channel and the writer, whatever the size
//! of the scan, and every output is encoded exactly as a scan would encode it. The content
//! fields (`checksum`, `mime`) go along where the input carries them.

use crate::columnar::writer::ParquetWriter;
use crate::columnar::{ColumnarError, ParquetTarget, PART_ROWS_DEFAULT};
use crate::output::sqlite::{DbError, ScanEnd, ScanInfo, ScanStatus, SqliteWriter};
use crate::output::{Batcher, Format, TextWriter};
use crate::scanfile::{
    content_fields, detect, for_each_entry_with_content, read_scan, InputKind, SourceScan,
};
use crate::stats::StatsError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConvertError {
    #[error(transparent)]
    Input(#[from] StatsError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Parquet(#[from] ColumnarError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: cannot tell the output format from the name (.db, .ndjson, .csv, .parquet, or an existing directory for Parquet parts); say --to FORMAT")]
    UnknownOutput(PathBuf),
    #[error("unknown output format `{0}` (sqlite, ndjson, csv, parquet)")]
    UnknownFormat(String),
    #[error("the input and the output are the same file")]
    SameFile,
    #[error("the writer stopped: {0}")]
    WriterStopped(String),
}

/// What `convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    Database,
    Ndjson,
    Csv,
    Parquet,
}

impl OutputKind {
    /// From `--to`, else from the output's name: `.db`/`.sqlite`/`.sqlite3`, `.ndjson`/
    /// `.jsonl`/`.json`, `.csv`, `.parquet` (one file), an existing directory or a name ending
    /// in `/` (Parquet parts).
    pub fn choose(output: &Path, to: Option<&str>) -> Result<Self, ConvertError> {
        if let Some(t) = to {
            return match t {
                "sqlite" | "db" => Ok(OutputKind::Database),
                "ndjson" | "json" => Ok(OutputKind::Ndjson),
                "csv" => Ok(OutputKind::Csv),
                "parquet" => Ok(OutputKind::Parquet),
                _ => Err(ConvertError::UnknownFormat(t.to_string())),
            };
        }
        let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("");
        Ok(match ext {
            "db" | "sqlite" | "sqlite3" => OutputKind::Database,
            "ndjson" | "jsonl" | "json" => OutputKind::Ndjson,
            "csv" => OutputKind::Csv,
            "parquet" => OutputKind::Parquet,
            _ if output.is_dir() || output.as_os_str().to_string_lossy().ends_with('/') => {
                OutputKind::Parquet
            }
            _ => return Err(ConvertError::UnknownOutput(output.to_path_buf())),
        })
    }
}

/// What was converted.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    pub input: InputKind,
    pub entries: u64,
    /// NDJSON lines that were not entry records.
    pub skipped_lines: u64,
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// The scan to record in the output: the input's own, or for NDJSON (which records none) one
/// that says where the entries came from.
fn scan_of(input: &Path, scan: Option<&SourceScan>) -> (ScanInfo, ScanEnd) {
    match scan {
        Some(s) => (
            ScanInfo {
                url: s.url.clone(),
                server: s.server.clone(),
                options_json: s.options_json.clone(),
                started: time_of(s.started_ns),
                resumes: 0,
            },
            ScanEnd {
                status: match s.status.as_str() {
                    "completed" => ScanStatus::Completed,
                    "failed" => ScanStatus::Failed,
                    _ => ScanStatus::Interrupted,
                },
                finished: s.finished_ns.map_or_else(SystemTime::now, time_of),
                message: match s.status.as_str() {
                    "running" => Some(
                        "converted from a scan that had not finished (killed, or still running)"
                            .into(),
                    ),
                    _ => s.message.clone(),
                },
                threads: s.threads.unwrap_or(0) as usize,
                connections: s.connections.unwrap_or(0) as usize,
                backend: s.backend.clone().unwrap_or_default(),
            },
        ),
        None => {
            let now = SystemTime::now();
            (
                ScanInfo {
                    url: String::new(),
                    server: String::new(),
                    options_json: "{}".into(),
                    started: now,
                    resumes: 0,
                },
                ScanEnd {
                    status: ScanStatus::Completed,
                    finished: now,
                    message: Some(format!(
                        "converted from {}, which records no scan",
                        input.display()
                    )),
                    threads: 0,
                    connections: 0,
                    backend: String::new(),
                },
            )
        }
    }
}

/// Converts `input` (any scan output) into `output` of kind `to`.
pub fn convert(
    input: &Path,
    output: &Path,
    to: OutputKind,
) -> Result<ConvertSummary, ConvertError> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(ConvertError::SameFile);
        }
    }
    let kind = detect(input)?;
    let scan = read_scan(input, kind)?;
    let (info, end) = scan_of(input, scan.as_ref());
    let fields = content_fields(input, kind)?;
    let stop = Arc::new(AtomicBool::new(false));
    let io = |e| ConvertError::Io {
        path: output.to_path_buf(),
        source: e,
    };
    let feed = |format: Format, tx| -> Result<(u64, u64), ConvertError> {
        let mut batcher = Batcher::new(format, tx, None).with_content(fields);
        let mut stopped = false;
        let counts = for_each_entry_with_content(input, kind, |e, content| {
            // A writer that failed set `stop`; the rest of the input is read but not sent.
            if !stopped {
                stopped = stop.load(Ordering::Relaxed);
                batcher.entry_with_content(e, content);
            }
        })?;
        batcher.flush();
        Ok(counts)
    };
    let (entries, skipped) = match to {
        OutputKind::Database => {
            let (writer, tx) = SqliteWriter::create(
                output,
                &info,
                Duration::from_secs_f64(crate::output::sqlite::CHECKPOINT_SECS_DEFAULT),
                stop.clone(),
                None,
            )?;
            let counts = feed(Format::SqliteRows, tx);
            let written = writer.finish(&end);
            let counts = counts?;
            written?;
            counts
        }
        OutputKind::Parquet => {
            let target = ParquetTarget::for_path(
                output,
                PART_ROWS_DEFAULT,
                Duration::from_secs_f64(crate::columnar::PART_SECONDS_DEFAULT),
            );
            let (writer, tx) = ParquetWriter::create(&target, &info, stop.clone())?;
            let counts = feed(Format::SqliteRows, tx);
            let written = writer.finish(&end);
            let counts = counts?;
            written?;
            counts
        }
        OutputKind::Ndjson | OutputKind::Csv => {
            let format = if to == OutputKind::Csv {
                Format::Csv
            } else {
                Format::Ndjson
            };
            // Written under a temporary name and renamed when complete, as Parquet is.
            let name = output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = output.with_file_name(format!(".{name}.tmp"));
            let file = std::fs::File::create(&tmp).map_err(io)?;
            let (writer, tx) =
                TextWriter::start_with_content(format, Box::new(file), stop.clone(), fields)
                    .map_err(io)?;
            let counts = feed(format, tx);
            let written = writer.finish();
            let counts = counts?;
            written.map_err(io)?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io)?;
            std::fs::rename(&tmp, output).map_err(io)?;
            counts
        }
    };
    if stop.load(Ordering::Relaxed) {
        return Err(ConvertError::WriterStopped(output.display().to_string()));
    }
    Ok(ConvertSummary {
        input: kind,
        entries,
        skipped_lines: skipped,
    })
}
