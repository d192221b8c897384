//! Directories that arrived after one of their children: their ids were reserved earlier,
//! so their rows cannot be appended in rowid order and wait (in memory, then in a temporary
//! file) for SQLite to insert them in the final transaction.

use super::DbError;
use std::io::{self, Read, Seek, Write};

/// A directory whose id a child reserved before it arrived: its row cannot be appended in
/// rowid order, so SQLite inserts it at the end (with its index entries).
pub(super) struct LateRow {
    pub(super) id: i64,
    /// The whole `entries` record.
    pub(super) record: Vec<u8>,
}

/// Late rows kept in memory at most; the rest wait in a temporary file. (Few directories
/// arrive after a child, but a limit holds whatever the tree and the threads do.)
const LATE_ROWS_IN_MEMORY_MAX: usize = if cfg!(test) { 4 } else { 100_000 };

/// The late rows, in arrival order: in memory, then in a temporary file (each as its id, the
/// record's length and the record).
#[derive(Default)]
pub(super) struct LateRows {
    in_memory: Vec<LateRow>,
    spill: Option<io::BufWriter<std::fs::File>>,
    spilled: u64,
}

impl LateRows {
    pub(super) fn len(&self) -> u64 {
        self.in_memory.len() as u64 + self.spilled
    }

    pub(super) fn push(&mut self, id: i64, record: &[u8]) -> Result<(), DbError> {
        if self.in_memory.len() < LATE_ROWS_IN_MEMORY_MAX {
            self.in_memory.push(LateRow {
                id,
                record: record.to_vec(),
            });
            return Ok(());
        }
        let spill = match &mut self.spill {
            Some(f) => f,
            None => self
                .spill
                .insert(io::BufWriter::new(tempfile::tempfile().map_err(spill_err)?)),
        };
        spill.write_all(&id.to_be_bytes()).map_err(spill_err)?;
        spill
            .write_all(&(record.len() as u64).to_be_bytes())
            .map_err(spill_err)?;
        spill.write_all(record).map_err(spill_err)?;
        self.spilled += 1;
        Ok(())
    }

    /// Calls `f` with every row, in the order they came.
    pub(super) fn for_each(
        self,
        mut f: impl FnMut(&LateRow) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        for row in &self.in_memory {
            f(row)?;
        }
        let Some(spill) = self.spill else {
            return Ok(());
        };
        let mut file = spill.into_inner().map_err(|e| spill_err(e.into_error()))?;
        file.seek(io::SeekFrom::Start(0)).map_err(spill_err)?;
        let mut reader = io::BufReader::new(file);
        let mut row = LateRow {
            id: 0,
            record: Vec::new(),
        };
        for _ in 0..self.spilled {
            let mut word = [0u8; 8];
            reader.read_exact(&mut word).map_err(spill_err)?;
            row.id = i64::from_be_bytes(word);
            reader.read_exact(&mut word).map_err(spill_err)?;
            let len = usize::try_from(u64::from_be_bytes(word)).map_err(|_| {
                spill_err(io::Error::new(io::ErrorKind::InvalidData, "bad late row"))
            })?;
            row.record.resize(len, 0);
            reader.read_exact(&mut row.record).map_err(spill_err)?;
            f(&row)?;
        }
        Ok(())
    }
}

pub(super) fn spill_err(e: io::Error) -> DbError {
    DbError::TempFile {
        what: "late rows",
        source: e,
    }
}
