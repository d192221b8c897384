//! The Parquet writer thread: row batches in, complete Parquet files out.

use super::{
    ColumnarError, ParquetTarget, PARQUET_SCHEMA_VERSION, ROW_GROUP_ROWS, SCAN_METADATA_KEY,
    SCHEMA_MESSAGE,
};
use crate::output::sqlite::{RowBatch, ScanEnd, ScanInfo};
use crate::output::{OutputBatch, CHANNEL_BATCHES_MAX};
use crate::record::{EntryContent, EntryRef, EntryType};
use bytes::Bytes;
use crossbeam_channel::{bounded, Receiver, Sender};
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::page::{CompressedPage, PageWriteSpec, PageWriter};
use parquet::column::writer::{get_column_writer, get_typed_column_writer_mut, ColumnWriter};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnPath, SchemaDescriptor, TypePtr};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// ZSTD level 1: most of the size gain of higher levels on these columns at a fraction of the
/// CPU, which the scan needs.
const ZSTD_LEVEL: i32 = 1;

/// What the writer wrote.
#[derive(Debug, Clone, Default)]
pub struct ParquetSummary {
    pub rows: u64,
    /// Files written (one for the single-file form).
    pub files: u64,
    pub bytes: u64,
}

/// The writer thread; see [`ParquetWriter::create`].
pub struct ParquetWriter {
    handle: JoinHandle<Result<Files, ColumnarError>>,
}

impl ParquetWriter {
    /// Prepares `target` (a directory is created; part files of an earlier scan in it are
    /// removed) and starts the writer thread. Batchers send rows to the returned sender; once
    /// every sender is dropped, call [`ParquetWriter::finish`]. Should writing fail, the
    /// writer sets `stop`, so the scan ends instead of running on with nowhere to put entries.
    pub fn create(
        target: &ParquetTarget,
        info: &ScanInfo,
        stop: Arc<AtomicBool>,
    ) -> Result<(ParquetWriter, Sender<OutputBatch>), ColumnarError> {
        let files = Files::new(target.clone(), info)?;
        let (tx, rx) = bounded(CHANNEL_BATCHES_MAX);
        let handle = std::thread::Builder::new()
            .name("nfs-walker-parquet".into())
            .spawn(move || {
                let r = files.load(&rx);
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                    // Drain, so no sender blocks on a writer that has given up.
                    for _ in rx {}
                }
                r
            })
            .map_err(ColumnarError::Thread)?;
        Ok((ParquetWriter { handle }, tx))
    }

    /// Waits for the rows to end (every sender must be dropped), then closes the last file
    /// with the scan's outcome in its metadata.
    pub fn finish(self, end: &ScanEnd) -> Result<ParquetSummary, ColumnarError> {
        let files = self.handle.join().map_err(|_| ColumnarError::Panicked)??;
        files.finish(end)
    }
}

/// The files of one scan: the target, the scan's description and the open file.
struct Files {
    target: ParquetTarget,
    schema: TypePtr,
    props: WriterPropertiesPtr,
    scan: serde_json::Map<String, serde_json::Value>,
    open: Option<OpenFile>,
    next_part: u64,
    summary: ParquetSummary,
    columns: ColumnBuffers,
    errors: u64,
}

/// A file being written under its temporary name.
struct OpenFile {
    tmp: PathBuf,
    path: PathBuf,
    writer: SerializedFileWriter<BufWriter<File>>,
    group: Option<RowGroup>,
    rows: u64,
    opened: Instant,
}

/// Where one column's pages go while a row group is written: a buffer the row group's
/// writer later copies into the file. Shared with the column writer that owns the page
/// writer, so the buffer can be taken back when the column writer is closed.
type ChunkBuffer = Arc<Mutex<TrackedWrite<Vec<u8>>>>;

struct BufferPageWriter(ChunkBuffer);

impl PageWriter for BufferPageWriter {
    fn write_page(&mut self, page: CompressedPage) -> parquet::errors::Result<PageWriteSpec> {
        let mut sink = self
            .0
            .lock()
            .map_err(|_| parquet::errors::ParquetError::General("poisoned buffer".into()))?;
        SerializedPageWriter::new(&mut sink).write_page(page)
    }

    fn close(&mut self) -> parquet::errors::Result<()> {
        Ok(())
    }
}

/// The column writers of the open row group, one per column, each encoding into its own
/// buffer.
struct RowGroup {
    writers: Vec<ColumnWriter<'static>>,
    buffers: Vec<ChunkBuffer>,
    rows: usize,
}

impl RowGroup {
    fn new(schema: &SchemaDescriptor, props: &WriterPropertiesPtr) -> Self {
        let mut writers = Vec::new();
        let mut buffers = Vec::new();
        for descr in schema.columns() {
            let buffer: ChunkBuffer = Arc::new(Mutex::new(TrackedWrite::new(Vec::new())));
            writers.push(get_column_writer(
                descr.clone(),
                props.clone(),
                Box::new(BufferPageWriter(buffer.clone())),
            ));
            buffers.push(buffer);
        }
        RowGroup {
            writers,
            buffers,
            rows: 0,
        }
    }

    /// Closes the columns and copies them into the file as one row group.
    fn close(self, file: &mut SerializedFileWriter<BufWriter<File>>) -> Result<(), ColumnarError> {
        let mut group = file.next_row_group()?;
        for (writer, buffer) in self.writers.into_iter().zip(self.buffers) {
            let close = writer.close()?;
            let bytes = {
                let mut sink = buffer.lock().map_err(|_| {
                    parquet::errors::ParquetError::General("poisoned buffer".into())
                })?;
                std::mem::replace(&mut *sink, TrackedWrite::new(Vec::new())).into_inner()?
            };
            group.append_column(&Bytes::from(bytes), close)?;
        }
        group.close()?;
        Ok(())
    }
}

/// One batch's values, column by column (reused from batch to batch). Byte strings are first
/// copied into one arena per batch and then handed to the column writers as slices of it: one
/// allocation per batch instead of one per value.
#[derive(Default)]
struct ColumnBuffers {
    arena: Vec<u8>,
    /// (column, start, end) of each byte string in `arena`, in push order.
    spans: Vec<(u8, u32, u32)>,
    path: Vec<ByteArray>,
    path_bytes: Vec<ByteArray>,
    path_bytes_def: Vec<i16>,
    kind: Vec<ByteArray>,
    size: Vec<i64>,
    used: Vec<i64>,
    mode: Vec<i32>,
    nlink: Vec<i32>,
    uid: Vec<i32>,
    gid: Vec<i32>,
    fileid: Vec<i64>,
    fsid: Vec<i64>,
    atime: Vec<i64>,
    mtime: Vec<i64>,
    ctime: Vec<i64>,
    depth: Vec<i32>,
    extension: Vec<ByteArray>,
    extension_def: Vec<i16>,
    target: Vec<ByteArray>,
    target_def: Vec<i16>,
    target_bytes: Vec<ByteArray>,
    target_bytes_def: Vec<i16>,
    checksum: Vec<ByteArray>,
    checksum_def: Vec<i16>,
    mime: Vec<ByteArray>,
    mime_def: Vec<i16>,
    owner: Vec<ByteArray>,
    owner_def: Vec<i16>,
    group: Vec<ByteArray>,
    group_def: Vec<i16>,
}

/// The `type` column's values, made once (a clone of a static `Bytes` allocates nothing).
fn type_value(t: EntryType) -> ByteArray {
    ByteArray::from(Bytes::from_static(t.as_str().as_bytes()))
}

/// Byte-string columns, as `spans` name them.
const SPAN_PATH: u8 = 0;
const SPAN_PATH_BYTES: u8 = 1;
const SPAN_EXTENSION: u8 = 2;
const SPAN_TARGET: u8 = 3;
const SPAN_TARGET_BYTES: u8 = 4;
const SPAN_CHECKSUM: u8 = 5;
const SPAN_MIME: u8 = 6;
const SPAN_OWNER: u8 = 7;
const SPAN_GROUP: u8 = 8;

impl ColumnBuffers {
    fn clear(&mut self) {
        macro_rules! clear_all { ($($f:ident),*) => { $( self.$f.clear(); )* } }
        clear_all!(
            arena,
            spans,
            path,
            path_bytes,
            path_bytes_def,
            kind,
            size,
            used,
            mode,
            nlink,
            uid,
            gid,
            fileid,
            fsid,
            atime,
            mtime,
            ctime,
            depth,
            extension,
            extension_def,
            target,
            target_def,
            target_bytes,
            target_bytes_def,
            checksum,
            checksum_def,
            mime,
            mime_def,
            owner,
            owner_def,
            group,
            group_def
        );
    }

    /// Copies a byte string into the arena for column `column`.
    fn span(&mut self, column: u8, bytes: &[u8]) {
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(bytes);
        self.spans.push((column, start, self.arena.len() as u32));
    }

    /// Text as UTF-8 plus, where it is not valid UTF-8, its exact bytes.
    fn text(&mut self, bytes: &[u8], is_utf8: bool, text: u8, exact: u8) -> i16 {
        if is_utf8 {
            self.span(text, bytes);
            0
        } else {
            self.span(text, String::from_utf8_lossy(bytes).as_bytes());
            self.span(exact, bytes);
            1
        }
    }

    /// Turns the arena's spans into the byte-string columns' values.
    fn seal(&mut self) {
        let arena = Bytes::from(std::mem::take(&mut self.arena));
        for &(column, start, end) in &self.spans {
            let v = ByteArray::from(arena.slice(start as usize..end as usize));
            match column {
                SPAN_PATH => self.path.push(v),
                SPAN_PATH_BYTES => self.path_bytes.push(v),
                SPAN_EXTENSION => self.extension.push(v),
                SPAN_TARGET => self.target.push(v),
                SPAN_TARGET_BYTES => self.target_bytes.push(v),
                SPAN_CHECKSUM => self.checksum.push(v),
                SPAN_MIME => self.mime.push(v),
                SPAN_OWNER => self.owner.push(v),
                _ => self.group.push(v),
            }
        }
        self.spans.clear();
    }

    fn push(
        &mut self,
        e: &EntryRef<'_>,
        path_is_utf8: bool,
        extension: Option<&[u8]>,
        content: &EntryContent<'_>,
    ) {
        let a = e.attrs;
        let def = self.text(e.path, path_is_utf8, SPAN_PATH, SPAN_PATH_BYTES);
        self.path_bytes_def.push(def);
        self.kind.push(type_value(a.kind));
        // Unsigned values keep their bits in the signed physical type; the logical type
        // (INTEGER(64, false)) tells readers to read them back unsigned.
        self.size.push(a.size as i64);
        self.used.push(a.used as i64);
        self.mode.push(a.mode as i32);
        self.nlink.push(a.nlink as i32);
        self.uid.push(a.uid as i32);
        self.gid.push(a.gid as i32);
        self.fileid.push(a.fileid as i64);
        self.fsid.push(a.fsid as i64);
        self.atime.push(a.atime_ns);
        self.mtime.push(a.mtime_ns);
        self.ctime.push(a.ctime_ns);
        self.depth.push(e.depth as i32);
        match extension {
            Some(x) => {
                self.span(SPAN_EXTENSION, x);
                self.extension_def.push(1);
            }
            None => self.extension_def.push(0),
        }
        match e.target {
            Some(t) => {
                self.target_def.push(1);
                let def = self.text(
                    t,
                    std::str::from_utf8(t).is_ok(),
                    SPAN_TARGET,
                    SPAN_TARGET_BYTES,
                );
                self.target_bytes_def.push(def);
            }
            None => {
                self.target_def.push(0);
                self.target_bytes_def.push(0);
            }
        }
        for (value, span, def) in [
            (content.checksum, SPAN_CHECKSUM, &mut self.checksum_def),
            (content.mime, SPAN_MIME, &mut self.mime_def),
        ] {
            def.push(i16::from(value.is_some()));
            if let Some(v) = value {
                let start = self.arena.len() as u32;
                self.arena.extend_from_slice(v.as_bytes());
                self.spans.push((span, start, self.arena.len() as u32));
            }
        }
        // NFSv4 names are UTF-8 by the protocol: a name that is not is kept lossily here
        // (the database and NDJSON keep its bytes).
        for (value, span, def) in [
            (e.owner, SPAN_OWNER, &mut self.owner_def),
            (e.group, SPAN_GROUP, &mut self.group_def),
        ] {
            def.push(i16::from(value.is_some()));
            if let Some(v) = value {
                let start = self.arena.len() as u32;
                self.arena
                    .extend_from_slice(String::from_utf8_lossy(v).as_bytes());
                self.spans.push((span, start, self.arena.len() as u32));
            }
        }
    }

    /// Writes the buffered values into the row group's column writers (schema order).
    fn write(&self, group: &mut RowGroup) -> Result<(), ColumnarError> {
        fn bytes(
            w: &mut ColumnWriter<'static>,
            v: &[ByteArray],
            def: Option<&[i16]>,
        ) -> parquet::errors::Result<usize> {
            get_typed_column_writer_mut::<ByteArrayType>(w).write_batch(v, def, None)
        }
        fn int64(w: &mut ColumnWriter<'static>, v: &[i64]) -> parquet::errors::Result<usize> {
            get_typed_column_writer_mut::<Int64Type>(w).write_batch(v, None, None)
        }
        fn int32(w: &mut ColumnWriter<'static>, v: &[i32]) -> parquet::errors::Result<usize> {
            get_typed_column_writer_mut::<Int32Type>(w).write_batch(v, None, None)
        }
        let w = &mut group.writers;
        bytes(&mut w[0], &self.path, None)?;
        bytes(&mut w[1], &self.path_bytes, Some(&self.path_bytes_def))?;
        bytes(&mut w[2], &self.kind, None)?;
        int64(&mut w[3], &self.size)?;
        int64(&mut w[4], &self.used)?;
        int32(&mut w[5], &self.mode)?;
        int32(&mut w[6], &self.nlink)?;
        int32(&mut w[7], &self.uid)?;
        int32(&mut w[8], &self.gid)?;
        int64(&mut w[9], &self.fileid)?;
        int64(&mut w[10], &self.fsid)?;
        int64(&mut w[11], &self.atime)?;
        int64(&mut w[12], &self.mtime)?;
        int64(&mut w[13], &self.ctime)?;
        int32(&mut w[14], &self.depth)?;
        bytes(&mut w[15], &self.extension, Some(&self.extension_def))?;
        bytes(&mut w[16], &self.target, Some(&self.target_def))?;
        bytes(&mut w[17], &self.target_bytes, Some(&self.target_bytes_def))?;
        bytes(&mut w[18], &self.checksum, Some(&self.checksum_def))?;
        bytes(&mut w[19], &self.mime, Some(&self.mime_def))?;
        bytes(&mut w[20], &self.owner, Some(&self.owner_def))?;
        bytes(&mut w[21], &self.group, Some(&self.group_def))?;
        group.rows += self.size.len();
        Ok(())
    }
}

/// Writer properties: ZSTD; dictionaries only where values repeat (types, extensions,
/// owners, modes, MIME types); statistics per column chunk, none for paths (long byte strings
/// whose minimum and maximum help no query). Checksums keep theirs: their null counts tell a
/// reader whether the scan read contents without reading the column.
fn properties() -> WriterPropertiesPtr {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default(),
        ))
        .set_created_by(format!("nfs-walker {}", env!("CARGO_PKG_VERSION")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk);
    for c in [
        "type",
        "extension",
        "mode",
        "nlink",
        "uid",
        "gid",
        "fsid",
        "depth",
        "mime",
        "owner",
        "group",
    ] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), true);
    }
    for c in ["path", "path_bytes", "target", "target_bytes"] {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    Arc::new(b.build())
}

fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// The part file names of a directory: `part-000000.parquet`, ...
fn part_name(n: u64) -> String {
    format!("part-{n:06}.parquet")
}

fn is_part_name(name: &str) -> bool {
    (name.starts_with("part-") && name.ends_with(".parquet"))
        || (name.starts_with(".part-") && name.ends_with(".parquet.tmp"))
}

/// The temporary name a file is written under: hidden, so `DIR/*.parquet` never matches it.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

impl Files {
    fn new(target: ParquetTarget, info: &ScanInfo) -> Result<Self, ColumnarError> {
        match &target {
            ParquetTarget::Dir { dir, .. } => prepare_dir(dir)?,
            ParquetTarget::File(path) => refuse_non_parquet(path)?,
        }
        let schema = Arc::new(parquet::schema::parser::parse_message_type(SCHEMA_MESSAGE)?);
        let mut scan = serde_json::Map::new();
        scan.insert("schema_version".into(), PARQUET_SCHEMA_VERSION.into());
        scan.insert("url".into(), info.url.clone().into());
        scan.insert("server".into(), info.server.clone().into());
        scan.insert("tool_version".into(), env!("CARGO_PKG_VERSION").into());
        scan.insert(
            "options".into(),
            serde_json::from_str(&info.options_json).unwrap_or(serde_json::Value::Null),
        );
        scan.insert("started_ns".into(), unix_ns(info.started).into());
        scan.insert("status".into(), "running".into());
        Ok(Files {
            target,
            schema,
            props: properties(),
            scan,
            open: None,
            next_part: 0,
            summary: ParquetSummary::default(),
            columns: ColumnBuffers::default(),
            errors: 0,
        })
    }

    fn open_file(&mut self) -> Result<&mut OpenFile, ColumnarError> {
        if self.open.is_none() {
            let path = match &self.target {
                ParquetTarget::File(p) => p.clone(),
                ParquetTarget::Dir { dir, .. } => {
                    let p = dir.join(part_name(self.next_part));
                    self.next_part += 1;
                    p
                }
            };
            let tmp = temporary_path(&path);
            let file = File::create(&tmp).map_err(ColumnarError::io(&tmp))?;
            let writer = SerializedFileWriter::new(
                BufWriter::with_capacity(1 << 20, file),
                self.schema.clone(),
                self.props.clone(),
            )?;
            self.open = Some(OpenFile {
                tmp,
                path,
                writer,
                group: None,
                rows: 0,
                opened: Instant::now(),
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// Writes every batch until the senders are gone.
    fn load(mut self, rx: &Receiver<OutputBatch>) -> Result<Self, ColumnarError> {
        for batch in rx {
            match batch {
                OutputBatch::Rows(rows) => self.add(&rows)?,
                // Counted for the scan's description; the errors themselves go to stderr and
                // --errors.
                OutputBatch::Errors(e) => self.errors += e.len() as u64,
                OutputBatch::Bytes(_) | OutputBatch::TasksDone(_) => {}
            }
        }
        Ok(self)
    }

    fn add(&mut self, rows: &RowBatch) -> Result<(), ColumnarError> {
        self.columns.clear();
        for r in rows.iter() {
            self.columns
                .push(&r.entry, r.path_is_utf8, r.extension, &r.content);
        }
        self.columns.seal();
        let n = rows.len();
        let schema_descr = SchemaDescriptor::new(self.schema.clone());
        let props = self.props.clone();
        let columns = std::mem::take(&mut self.columns);
        let file = self.open_file()?;
        let group = file
            .group
            .get_or_insert_with(|| RowGroup::new(&schema_descr, &props));
        let written = columns.write(group);
        self.columns = columns;
        written?;
        let file = self.open.as_mut().expect("open");
        file.rows += n as u64;
        let group_full = file
            .group
            .as_ref()
            .is_some_and(|g| g.rows >= ROW_GROUP_ROWS);
        if group_full {
            if let Some(g) = file.group.take() {
                g.close(&mut file.writer)?;
            }
        }
        if let ParquetTarget::Dir {
            part_rows,
            part_max,
            ..
        } = self.target
        {
            if file.rows >= part_rows || file.opened.elapsed() >= part_max {
                self.close_file()?;
            }
        }
        Ok(())
    }

    /// Closes the open file: the last row group, the metadata, a sync, and the rename that
    /// makes it visible under its name.
    fn close_file(&mut self) -> Result<(), ColumnarError> {
        let Some(mut f) = self.open.take() else {
            return Ok(());
        };
        if let Some(g) = f.group.take() {
            g.close(&mut f.writer)?;
        }
        let mut scan = self.scan.clone();
        scan.insert("rows_before".into(), self.summary.rows.into());
        scan.insert("rows".into(), f.rows.into());
        f.writer.append_key_value_metadata(KeyValue::new(
            SCAN_METADATA_KEY.to_string(),
            serde_json::Value::Object(scan).to_string(),
        ));
        let file = f
            .writer
            .into_inner()
            .and_then(|w| {
                w.into_inner()
                    .map_err(|e| parquet::errors::ParquetError::External(Box::new(e.into_error())))
            })
            .map_err(ColumnarError::Parquet)?;
        let bytes = file.metadata().map_err(ColumnarError::io(&f.tmp))?.len();
        file.sync_all().map_err(ColumnarError::io(&f.tmp))?;
        drop(file);
        std::fs::rename(&f.tmp, &f.path).map_err(ColumnarError::io(&f.path))?;
        if let Some(dir) = f.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            // The rename is durable once the directory is.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.summary.rows += f.rows;
        self.summary.files += 1;
        self.summary.bytes += bytes;
        Ok(())
    }

    /// Records the outcome and closes the last file (a directory always gets a last part,
    /// empty if need be, so its outcome is recorded).
    fn finish(mut self, end: &ScanEnd) -> Result<ParquetSummary, ColumnarError> {
        self.scan
            .insert("status".into(), end.status.as_str().into());
        self.scan
            .insert("finished_ns".into(), unix_ns(end.finished).into());
        if let Some(m) = &end.message {
            self.scan.insert("message".into(), m.clone().into());
        }
        self.scan.insert("threads".into(), end.threads.into());
        self.scan
            .insert("connections".into(), end.connections.into());
        self.scan
            .insert("backend".into(), end.backend.clone().into());
        let total = self.summary.rows + self.open.as_ref().map_or(0, |f| f.rows);
        self.scan.insert("entries".into(), total.into());
        self.scan.insert("errors".into(), self.errors.into());
        self.open_file()?;
        self.close_file()?;
        Ok(self.summary)
    }
}

/// Creates the directory of a Parquet scan, or empties an existing one of the part files of
/// an earlier scan (only those: other files are left alone).
fn prepare_dir(dir: &Path) -> Result<(), ColumnarError> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(ColumnarError::NotADirectory(dir.to_path_buf())),
        Ok(_) => {
            for entry in std::fs::read_dir(dir).map_err(ColumnarError::io(dir))? {
                let entry = entry.map_err(ColumnarError::io(dir))?;
                if entry.file_name().to_str().is_some_and(is_part_name) {
                    std::fs::remove_file(entry.path()).map_err(ColumnarError::io(entry.path()))?;
                }
            }
        }
        Err(_) => std::fs::create_dir_all(dir).map_err(ColumnarError::io(dir))?,
    }
    Ok(())
}

/// Refuses to replace a file that is not Parquet, so `-o` cannot clobber the wrong file.
fn refuse_non_parquet(path: &Path) -> Result<(), ColumnarError> {
    use std::io::Read;
    let Ok(mut f) = File::open(path) else {
        return Ok(());
    };
    let mut magic = [0u8; 4];
    let is_empty = f.metadata().map(|m| m.len() == 0).unwrap_or(false);
    if is_empty || (f.read_exact(&mut magic).is_ok() && &magic == super::PARQUET_MAGIC) {
        Ok(())
    } else {
        Err(ColumnarError::NotParquet(path.to_path_buf()))
    }
}
