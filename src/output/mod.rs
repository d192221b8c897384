//! Where entries go: per-thread batchers that encode records on the scanning threads, a
//! bounded channel (backpressure), and one writer thread per output.

pub mod bigdirs;
pub mod btree;
pub mod extsort;
pub mod merge;
pub mod pagefile;
pub mod schema;
pub mod sqlite;
pub mod synced;

use crate::path_error::PathError;
use crate::record::{csv_header_content, ContentFields, EntryContent, EntryRef};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    /// Paths only, one per line.
    Names,
    /// Rows for the SQLite scan database, copied into batches on the scanning threads.
    SqliteRows,
    /// No entries: one line per directory listed, with its entry count (`scan --big-dirs`,
    /// see [`bigdirs`]).
    DirCounts,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ndjson" | "json" => Ok(Format::Ndjson),
            "csv" => Ok(Format::Csv),
            "names" => Ok(Format::Names),
            "sqlite" => Ok(Format::SqliteRows),
            _ => Err(format!("unknown format `{s}` (ndjson, csv, names, sqlite)")),
        }
    }
}

/// A batch moving from a scanning thread to a writer.
pub enum OutputBatch {
    /// Encoded lines (NDJSON, CSV or names).
    Bytes(Vec<u8>),
    /// Rows for the scan database.
    Rows(sqlite::RowBatch),
    Errors(Vec<PathError>),
    /// Ids of tasks (opaque here) every entry and error of which was sent ahead of this marker
    /// on the same channel: once a writer has stored everything before it durably, the tasks
    /// are durable (see `sched::tasks`). Sent only by batchers that track tasks.
    TasksDone(Vec<u64>),
}

/// Batches flushed at about this size keep the channel's traffic low and its memory bounded.
const BATCH_BYTES: usize = 256 << 10;
const BATCH_RECORDS: usize = 4096;
/// Batches in the channel at most: with 256 KiB batches, at most 16 MiB are queued.
pub const CHANNEL_BATCHES_MAX: usize = 64;

/// Collects one thread's entries and errors into batches.
pub struct Batcher {
    format: Format,
    bytes: Vec<u8>,
    rows: sqlite::RowBatch,
    errors: Vec<PathError>,
    tx: Sender<OutputBatch>,
    err_tx: Option<Sender<OutputBatch>>,
    /// Finished tasks not yet announced ([`Batcher::track_tasks`]).
    tasks_done: Option<Vec<u64>>,
    /// Content fields every record carries (`--checksum`, `--file-type`).
    content: ContentFields,
}

impl Batcher {
    pub fn new(
        format: Format,
        tx: Sender<OutputBatch>,
        err_tx: Option<Sender<OutputBatch>>,
    ) -> Self {
        Batcher {
            format,
            bytes: Vec::with_capacity(BATCH_BYTES + 4096),
            rows: if format == Format::SqliteRows {
                sqlite::RowBatch::with_capacity(BATCH_BYTES + 4096, BATCH_RECORDS)
            } else {
                sqlite::RowBatch::default()
            },
            errors: Vec::new(),
            tx,
            err_tx,
            tasks_done: None,
            content: ContentFields::default(),
        }
    }

    /// Every record carries the content fields `fields` (null where an entry has none).
    pub fn with_content(mut self, fields: ContentFields) -> Self {
        self.content = fields;
        self
    }

    /// Announce finished tasks to the writer ([`OutputBatch::TasksDone`]), for a task source
    /// that acknowledges tasks once their entries are durable.
    pub fn track_tasks(mut self) -> Self {
        self.tasks_done = Some(Vec::new());
        self
    }

    /// Task `id` finished: all of its entries and errors were handed to this batcher.
    pub fn task_finished(&mut self, id: u64) {
        if let Some(done) = &mut self.tasks_done {
            done.push(id);
        }
    }

    /// Sends the finished tasks' marker, behind their errors (their entries went out already).
    fn announce_tasks(&mut self) {
        if self.tasks_done.as_ref().is_some_and(|d| !d.is_empty()) {
            self.flush_errors();
            let done = self
                .tasks_done
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            let _ = self.tx.send(OutputBatch::TasksDone(done));
        }
    }

    #[inline]
    pub fn entry(&mut self, e: &EntryRef<'_>) {
        if self.content.any() {
            return self.entry_with_content(e, &EntryContent::default());
        }
        match self.format {
            Format::Ndjson => e.write_ndjson(&mut self.bytes),
            Format::Csv => e.write_csv(&mut self.bytes),
            Format::Names => {
                self.bytes
                    .extend_from_slice(String::from_utf8_lossy(e.path).as_bytes());
                self.bytes.push(b'\n');
            }
            Format::DirCounts => return,
            Format::SqliteRows => {
                self.rows.push(e);
                if self.rows.len() >= BATCH_RECORDS || self.rows.byte_len() >= BATCH_BYTES {
                    self.flush_rows();
                }
                return;
            }
        }
        if self.bytes.len() >= BATCH_BYTES {
            self.flush_bytes();
        }
    }

    /// An entry with its content fields (see [`Batcher::with_content`]).
    pub fn entry_with_content(&mut self, e: &EntryRef<'_>, content: &EntryContent<'_>) {
        let fields = self.content;
        if !fields.any() {
            return self.entry(e);
        }
        match self.format {
            Format::Ndjson => e.write_ndjson_content(&mut self.bytes, fields, content),
            Format::Csv => e.write_csv_content(&mut self.bytes, fields, content),
            Format::SqliteRows => {
                // Only the fields asked for, as the text formats write them.
                let content = EntryContent {
                    checksum: content.checksum.filter(|_| fields.checksum),
                    mime: content.mime.filter(|_| fields.mime),
                };
                self.rows.push_with_content(e, &content);
                if self.rows.len() >= BATCH_RECORDS || self.rows.byte_len() >= BATCH_BYTES {
                    self.flush_rows();
                }
                return;
            }
            Format::Names | Format::DirCounts => {
                let saved = std::mem::take(&mut self.content);
                self.entry(e);
                self.content = saved;
                return;
            }
        }
        if self.bytes.len() >= BATCH_BYTES {
            self.flush_bytes();
        }
    }

    /// A directory's listing ended with `entries` names (kept in [`Format::DirCounts`] only).
    pub fn dir_listed(&mut self, path: &[u8], dir: Option<(u64, u64)>, entries: u64) {
        if self.format == Format::DirCounts {
            bigdirs::write_dir_count(&mut self.bytes, path, dir, entries);
            if self.bytes.len() >= BATCH_BYTES {
                self.flush_bytes();
            }
        }
    }

    fn flush_rows(&mut self) {
        if !self.rows.is_empty() {
            let batch = std::mem::replace(
                &mut self.rows,
                sqlite::RowBatch::with_capacity(BATCH_BYTES + 4096, BATCH_RECORDS),
            );
            let _ = self.tx.send(OutputBatch::Rows(batch));
            self.announce_tasks();
        }
    }

    fn flush_bytes(&mut self) {
        if !self.bytes.is_empty() {
            let batch = std::mem::replace(&mut self.bytes, Vec::with_capacity(BATCH_BYTES + 4096));
            let _ = self.tx.send(OutputBatch::Bytes(batch));
            self.announce_tasks();
        }
    }

    pub fn error(&mut self, e: PathError) {
        self.errors.push(e);
        if self.errors.len() >= 256 {
            self.flush_errors();
        }
    }

    fn flush_errors(&mut self) {
        if self.errors.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.errors);
        // Errors go to the error writer, and with a database output also to the database.
        if let Some(etx) = &self.err_tx {
            let _ = etx.send(OutputBatch::Errors(batch.clone()));
        }
        if self.format == Format::SqliteRows {
            let _ = self.tx.send(OutputBatch::Errors(batch));
        }
    }

    /// Sends everything held.
    pub fn flush(&mut self) {
        self.flush_bytes();
        self.flush_rows();
        self.flush_errors();
        self.announce_tasks();
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A writer thread for text formats (NDJSON, CSV, names) to a file or stdout.
pub struct TextWriter {
    handle: JoinHandle<io::Result<u64>>,
}

impl TextWriter {
    /// Starts the writer; returns it and the sender batchers use. Should a write fail, it
    /// sets `stop`, so the scan ends instead of running on with nowhere to put entries.
    pub fn start(
        format: Format,
        out: Box<dyn Write + Send>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<(TextWriter, Sender<OutputBatch>)> {
        Self::start_with_content(format, out, stop, ContentFields::default())
    }

    /// [`TextWriter::start`] for records that carry the content fields `content` (the CSV
    /// header names their columns).
    pub fn start_with_content(
        format: Format,
        mut out: Box<dyn Write + Send>,
        stop: Arc<AtomicBool>,
        content: ContentFields,
    ) -> io::Result<(TextWriter, Sender<OutputBatch>)> {
        let (tx, rx): (Sender<OutputBatch>, Receiver<OutputBatch>) = bounded(CHANNEL_BATCHES_MAX);
        if format == Format::Csv {
            out.write_all(csv_header_content(content).as_bytes())?;
        }
        let handle = std::thread::Builder::new()
            .name("nfs-walker-writer".into())
            .spawn(move || -> io::Result<u64> {
                let mut written = 0u64;
                let result = (|| {
                    for batch in rx {
                        if let OutputBatch::Bytes(b) = batch {
                            out.write_all(&b)?;
                            written += b.len() as u64;
                        }
                    }
                    out.flush()
                })();
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                result.map(|()| written)
            })?;
        Ok((TextWriter { handle }, tx))
    }

    /// Waits for the writer to drain (all senders must be dropped first).
    pub fn finish(self) -> io::Result<u64> {
        self.handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer thread panicked")))
    }
}

/// Per-path errors printed on stderr at most; the rest are counted (and all go to `--errors`).
pub const STDERR_ERRORS_MAX: u64 = 100;

/// A writer thread for per-path errors: a readable line on stderr (up to `stderr_errors_max`,
/// normally [`STDERR_ERRORS_MAX`]; 0 where they are logged as they happen, `scan -v`), and
/// every error as an NDJSON line to `file` where given.
pub fn start_error_writer(
    mut file: Option<Box<dyn Write + Send>>,
    stderr_errors_max: u64,
) -> io::Result<(JoinHandle<io::Result<u64>>, Sender<OutputBatch>)> {
    let (tx, rx): (Sender<OutputBatch>, Receiver<OutputBatch>) = bounded(CHANNEL_BATCHES_MAX);
    let handle = std::thread::Builder::new()
        .name("nfs-walker-errors".into())
        .spawn(move || -> io::Result<u64> {
            let mut line = Vec::new();
            let mut count = 0u64;
            for batch in rx {
                let OutputBatch::Errors(errs) = batch else {
                    continue;
                };
                for e in errs {
                    count += 1;
                    if count <= stderr_errors_max {
                        eprintln!(
                            "nfs-walker: {}: {}: {}",
                            String::from_utf8_lossy(&e.path).escape_debug(),
                            e.op,
                            e.message
                        );
                    } else if count == stderr_errors_max + 1 && stderr_errors_max > 0 {
                        eprintln!(
                            "nfs-walker: more errors; only counted from here (see --errors FILE)"
                        );
                    }
                    if let Some(f) = file.as_mut() {
                        line.clear();
                        e.write_ndjson(&mut line);
                        f.write_all(&line)?;
                    }
                }
            }
            if let Some(f) = file.as_mut() {
                f.flush()?;
            }
            Ok(count)
        })?;
    Ok((handle, tx))
}
