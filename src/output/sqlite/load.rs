//! The writer thread's load: every row batch appended to the `entries` and `errors` b-trees
//! as it arrives, index keys collected, and a commit every checkpoint interval; at the end
//! the indexes and the `dirs` table are built from what was collected.

use super::dirs::{DirMap, NO_PARENT};
use super::keys::{dir_path_key, dir_path_record, parent_key, parent_record};
use super::rows::{text_or_blob, RowRef};
use super::{bits_i64, clamp_i64, DbError, LATE_ENTRIES_TABLE};
use crate::output::btree::{
    encode_record, BtreeError, IndexBuilder, PageFile, TableBuilder, Value,
};
use crate::output::extsort::ExternalSorter;
use crate::output::pagefile::Committed;
use crate::output::schema::split_parent;
use crate::output::synced::DurabilityListener;
use crate::output::OutputBatch;
use crate::path_error::PathError;
use crate::record::EntryType;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use rusqlite::Connection;
use std::io;
use std::time::{Duration, Instant};

/// Memory for sorting the parent index's keys (16 bytes a row) before runs spill to disk.
const PARENT_KEYS_MEMORY_BYTES: usize = 64 << 20;
/// Memory for sorting directory paths before runs spill to disk.
const DIR_PATH_KEYS_MEMORY_BYTES: usize = 32 << 20;

/// Where the writer's b-trees go: the root pages SQLite gave them.
pub(super) struct Roots {
    entries: u32,
    entries_parent_id: u32,
    entries_dir_path: u32,
    dirs: u32,
    errors: u32,
    late_entries: u32,
}

impl Roots {
    pub(super) fn read(conn: &Connection) -> Result<Roots, DbError> {
        let root = |name: &str| -> Result<u32, DbError> {
            Ok(conn.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [name],
                |r| r.get(0),
            )?)
        };
        Ok(Roots {
            entries: root("entries")?,
            entries_parent_id: root("entries_parent_id")?,
            entries_dir_path: root("entries_dir_path")?,
            dirs: root("dirs")?,
            errors: root("errors")?,
            late_entries: root(LATE_ENTRIES_TABLE)?,
        })
    }
}

/// The b-trees the writer builds.
pub(super) struct Tables {
    roots: Roots,
    entries: TableBuilder,
    errors: TableBuilder,
    /// Directories that arrived after one of their children ([`LATE_ENTRIES_TABLE`]).
    late: TableBuilder,
    /// (parent id, id) of every appended row, for the `entries_parent_id` index.
    parent_keys: ExternalSorter<u128>,
    /// The paths of appended directories, for the `entries_dir_path` index.
    dir_path_keys: ExternalSorter<Vec<u8>>,
}

/// What the writer counts and tracks while loading.
pub(super) struct LoadState {
    pub(super) file: PageFile,
    pub(super) tables: Tables,
    /// Rows in the late table.
    pub(super) late_rows: u64,
    /// Told of the tasks whose entries each commit made durable.
    pub(super) durability: Option<Box<dyn DurabilityListener>>,
    /// Tasks whose markers arrived since the last commit.
    pub(super) tasks_done: Vec<u64>,
    pub(super) dirs: DirMap,
    /// The largest id appended to the entries table.
    last_appended: i64,
    record: Vec<u8>,
    pub(super) entries: u64,
    pub(super) files: u64,
    pub(super) bytes: u64,
    pub(super) used: u64,
    pub(super) errors: u64,
    pub(super) load_time: Duration,
    /// Commits made during the load.
    pub(super) checkpoints: u64,
    /// Time spent in them.
    pub(super) checkpoint_time: Duration,
}

impl LoadState {
    pub(super) fn new(
        file: PageFile,
        roots: Roots,
        durability: Option<Box<dyn DurabilityListener>>,
    ) -> Self {
        LoadState {
            tables: Tables {
                entries: TableBuilder::new(&file, roots.entries),
                errors: TableBuilder::new(&file, roots.errors),
                late: TableBuilder::new(&file, roots.late_entries),
                roots,
                parent_keys: ExternalSorter::new(PARENT_KEYS_MEMORY_BYTES),
                dir_path_keys: ExternalSorter::new(DIR_PATH_KEYS_MEMORY_BYTES),
            },
            file,
            late_rows: 0,
            durability,
            tasks_done: Vec::new(),
            dirs: DirMap::new(),
            last_appended: 0,
            record: Vec::with_capacity(512),
            entries: 0,
            files: 0,
            bytes: 0,
            used: 0,
            errors: 0,
            load_time: Duration::ZERO,
            checkpoints: 0,
            checkpoint_time: Duration::ZERO,
        }
    }

    /// Appends every batch until all senders are gone, committing every `checkpoint`.
    pub(super) fn load_batches(
        &mut self,
        rx: &Receiver<OutputBatch>,
        checkpoint: Duration,
    ) -> Result<(), DbError> {
        let mut started: Option<Instant> = None;
        let mut next_checkpoint = Instant::now() + checkpoint;
        loop {
            let batch = match rx.recv_deadline(next_checkpoint) {
                Ok(b) => Some(b),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let t0 = *started.get_or_insert_with(Instant::now);
            match batch {
                Some(OutputBatch::Rows(rows)) => {
                    for row in rows.iter() {
                        self.insert_entry(&row)?;
                    }
                }
                Some(OutputBatch::Errors(errs)) => {
                    for e in &errs {
                        self.insert_error(e)?;
                    }
                }
                Some(OutputBatch::TasksDone(ids)) => self.tasks_done.extend(ids),
                Some(OutputBatch::Bytes(_)) | None => {}
            }
            let asked = !self.tasks_done.is_empty()
                && self
                    .durability
                    .as_ref()
                    .is_some_and(|l| l.wants_checkpoint());
            if asked || Instant::now() >= next_checkpoint {
                self.checkpoint()?;
                next_checkpoint = Instant::now() + checkpoint;
            }
            self.load_time = t0.elapsed();
        }
        Ok(())
    }

    /// Commits the rows appended so far (the `entries`, `errors` and late tables; the
    /// indexes and `dirs` wait for the end), then reports the tasks whose markers came before
    /// as durable. Postponed while readers hold the file.
    pub(super) fn checkpoint(&mut self) -> Result<(), DbError> {
        let t0 = Instant::now();
        self.tables.entries.checkpoint(&mut self.file)?;
        self.tables.errors.checkpoint(&mut self.file)?;
        self.tables.late.checkpoint(&mut self.file)?;
        if self.file.commit(false).map_err(BtreeError::from)? == Committed::Yes {
            self.checkpoints += 1;
            self.report_durable();
        }
        self.checkpoint_time += t0.elapsed();
        Ok(())
    }

    /// Everything received is committed: the tasks announced so far are durable.
    pub(super) fn report_durable(&mut self) {
        if let Some(l) = &mut self.durability {
            if !self.tasks_done.is_empty() {
                l.durable(&self.tasks_done);
            }
        }
        self.tasks_done.clear();
    }

    pub(super) fn insert_entry(&mut self, row: &RowRef<'_>) -> Result<(), DbError> {
        let RowRef {
            entry: row,
            path_is_utf8,
            extension,
            content,
        } = *row;
        let a = row.attrs;
        let (parent_path, name) = split_parent(row.path);
        let parent = match parent_path {
            Some(p) => self.dirs.parent_index(p, row.depth.saturating_sub(1))?,
            None => NO_PARENT,
        };
        let id = if a.kind == EntryType::Dir {
            self.dirs.dir_id(row.path, row.depth, parent)?
        } else {
            self.dirs.alloc_id()
        };
        let parent_id = (parent != NO_PARENT).then(|| self.dirs.count_child(parent, a.size));
        self.entries += 1;
        if a.kind == EntryType::File {
            self.files += 1;
        }
        self.bytes = self.bytes.saturating_add(a.size);
        self.used = self.used.saturating_add(a.used);
        // The name of a UTF-8 path is UTF-8 too: it starts after an ASCII '/'.
        let (name_value, path_value) = if path_is_utf8 {
            (Value::Text(name), Value::Text(row.path))
        } else {
            (text_or_blob(name), Value::Blob(row.path))
        };
        let values = [
            // `id` is the rowid: its column holds NULL.
            Value::Null,
            parent_id.map_or(Value::Null, Value::Int),
            name_value,
            path_value,
            Value::Text(a.kind.as_str().as_bytes()),
            Value::Int(clamp_i64(a.size)),
            Value::Int(clamp_i64(a.used)),
            Value::Int(i64::from(a.mode)),
            Value::Int(i64::from(a.nlink)),
            Value::Int(i64::from(a.uid)),
            Value::Int(i64::from(a.gid)),
            Value::Int(bits_i64(a.fileid)),
            Value::Int(bits_i64(a.fsid)),
            Value::Int(a.atime_ns),
            Value::Int(a.mtime_ns),
            Value::Int(a.ctime_ns),
            Value::Int(i64::from(row.depth)),
            extension.map_or(Value::Null, Value::Text),
            row.target.map_or(Value::Null, text_or_blob),
            content
                .checksum
                .map_or(Value::Null, |c| Value::Text(c.as_bytes())),
            content
                .mime
                .map_or(Value::Null, |m| Value::Text(m.as_bytes())),
            row.owner.map_or(Value::Null, text_or_blob),
            row.group.map_or(Value::Null, text_or_blob),
        ];
        self.record.clear();
        encode_record(&values, &mut self.record);
        if id < self.last_appended {
            // Its id was reserved by a child that came first: SQLite inserts it at the end.
            self.late_rows += 1;
            return Ok(self.tables.late.push(
                &mut self.file,
                self.late_rows as i64,
                &[Value::Null, Value::Int(id), Value::Blob(&self.record)],
            )?);
        }
        let t = &mut self.tables;
        t.entries.push_record(&mut self.file, id, &self.record)?;
        self.last_appended = id;
        t.parent_keys
            .push(parent_key(parent_id, id))
            .map_err(sort_err)?;
        if a.kind == EntryType::Dir {
            t.dir_path_keys
                .push(dir_path_key(row.path, path_is_utf8, id))
                .map_err(sort_err)?;
        }
        Ok(())
    }

    pub(super) fn insert_error(&mut self, e: &PathError) -> Result<(), DbError> {
        self.errors += 1;
        let values = [
            Value::Null,
            text_or_blob(&e.path),
            Value::Text(e.op.as_bytes()),
            e.status
                .map_or(Value::Null, |s| Value::Text(s.name().as_bytes())),
            Value::Text(e.message.as_bytes()),
        ];
        self.tables
            .errors
            .push(&mut self.file, self.errors as i64, &values)?;
        Ok(())
    }
}

impl Tables {
    /// Completes the tables and indexes built here (and the `dirs` table, from `dirs`), for
    /// the next commit to show.
    pub(super) fn finish(self, file: &mut PageFile, dirs: &DirMap) -> Result<(), DbError> {
        let Tables {
            roots,
            entries,
            errors,
            late,
            parent_keys,
            dir_path_keys,
        } = self;
        entries.finish(file)?;
        errors.finish(file)?;
        late.finish(file)?;
        let mut record = Vec::with_capacity(256);

        let mut index = IndexBuilder::new(file, roots.entries_parent_id);
        for key in parent_keys.finish().map_err(sort_err)? {
            parent_record(key.map_err(sort_err)?, &mut record);
            index.push(file, &record)?;
        }
        index.finish(file)?;

        let mut index = IndexBuilder::new(file, roots.entries_dir_path);
        let mut path = Vec::new();
        for key in dir_path_keys.finish().map_err(sort_err)? {
            let key = key.map_err(sort_err)?;
            dir_path_record(&key, &mut path, &mut record).ok_or_else(|| {
                sort_err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a sorted directory key does not decode",
                ))
            })?;
            index.push(file, &record)?;
        }
        index.finish(file)?;

        // Directory ids were given in the order `dirs` holds them.
        let mut dirs_table = TableBuilder::new(file, roots.dirs);
        for d in dirs.arrived() {
            dirs_table.push(
                file,
                d.id,
                &[
                    Value::Null,
                    Value::Int(clamp_i64(d.direct_entries)),
                    Value::Int(clamp_i64(d.direct_bytes)),
                    Value::Int(clamp_i64(d.recursive_entries)),
                    Value::Int(clamp_i64(d.recursive_bytes)),
                ],
            )?;
        }
        dirs_table.finish(file)?;
        Ok(())
    }
}

fn sort_err(e: io::Error) -> DbError {
    DbError::TempFile {
        what: "index keys",
        source: e,
    }
}
