//! Resuming into a scan database: the database as the interrupted run left it (its last
//! commit) is set aside as `scan.db-prior`, and the resumed run builds `scan.db` anew from its
//! rows outside the frontier before the walk goes on. The writer appends rows in id order and
//! derives ids, parents and directory totals as rows arrive, so feeding it the kept rows is
//! what rebuilds all of that exactly; it costs a read and a write of the rows kept.
//!
//! **Crash safety.** The prior file is removed only once the new database has committed the
//! copied rows (at its first durable checkpoint, or at its end). A resume killed before then
//! leaves `scan.db-prior` beside a partial `scan.db`: the next resume goes on from the prior
//! file again, and the journal, which gained nothing meanwhile, still matches it.

use super::{FrontierPaths, ResumeError};
use crate::output::sqlite::settle_late_rows;
use crate::output::{Batcher, Format, OutputBatch};
use crate::scanfile::{content_fields, for_each_entry_with_content, InputKind};
use crossbeam_channel::Sender;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// The `scan` row of a database being resumed.
#[derive(Debug, Clone)]
pub struct PriorScan {
    pub url: String,
    pub server: String,
    pub options_json: String,
    pub started_ns: i64,
    pub status: String,
    pub resumes: u32,
}

/// `scan.db-prior`: where the database being resumed waits while the new one is built.
pub fn prior_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push("-prior");
    PathBuf::from(p)
}

/// The database a resume of `out` goes on from: a prior file left by a resume that did not
/// get past its copy, else `out` itself.
pub fn source_of(out: &Path) -> PathBuf {
    let prior = prior_path(out);
    if prior.exists() {
        prior
    } else {
        out.to_path_buf()
    }
}

/// Reads the `scan` row of the database at `path`, rolling back a hot journal first (only a
/// connection that may write does).
pub fn read_scan(path: &Path) -> Result<PriorScan, ResumeError> {
    let sql = |source| ResumeError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sql)?;
    conn.query_row(
        "SELECT url, server, options, started_ns, status, resumes FROM scan WHERE id = 1",
        [],
        |r| {
            Ok(PriorScan {
                url: r.get(0)?,
                server: r.get(1)?,
                options_json: r.get(2)?,
                started_ns: r.get(3)?,
                status: r.get(4)?,
                resumes: r.get(5)?,
            })
        },
    )
    .map_err(sql)
}

/// A database set aside for a resume.
pub struct PriorDb {
    pub path: PathBuf,
}

/// What the copy kept and dropped.
#[derive(Debug, Default, Clone, Copy)]
pub struct CopySummary {
    pub entries_kept: u64,
    pub entries_dropped: u64,
    pub errors_kept: u64,
    /// The root's own entry was among the rows kept.
    pub root_kept: bool,
}

impl PriorDb {
    /// Sets `out` aside as its prior file (unless a prior file is there already: then `out`
    /// is the partial database of a resume that did not get past its copy, and goes), and
    /// moves the rows of directories that had arrived late into its `entries`.
    pub fn set_aside(out: &Path) -> Result<PriorDb, ResumeError> {
        let prior = prior_path(out);
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| ResumeError::Io { path: p, source }
        };
        if !prior.exists() {
            // A hot journal stays behind when its file moves: it is rolled back first.
            read_scan(out)?;
            std::fs::rename(out, &prior).map_err(io(out))?;
            super::journal::sync_dir(out).map_err(io(out))?;
        }
        settle_late_rows(&prior)?;
        Ok(PriorDb { path: prior })
    }

    /// Sends the rows not below a frontier directory to the new database's writer: entries
    /// in id order, then errors.
    pub fn copy_into(
        &self,
        frontier: &FrontierPaths,
        tx: &Sender<OutputBatch>,
    ) -> Result<CopySummary, ResumeError> {
        // The rows keep what reading their files found (`--checksum`, `--file-type`).
        let fields = content_fields(&self.path, InputKind::Database).map_err(|e| {
            ResumeError::Unreadable {
                path: self.path.clone(),
                why: e.to_string(),
            }
        })?;
        let mut out = Batcher::new(Format::SqliteRows, tx.clone(), None).with_content(fields);
        let mut summary = CopySummary::default();
        for_each_entry_with_content(&self.path, InputKind::Database, |e, content| {
            if frontier.covers(e.path) {
                summary.entries_dropped += 1;
                return;
            }
            summary.root_kept |= e.path == b".";
            summary.entries_kept += 1;
            out.entry_with_content(e, content);
        })
        .map_err(|e| ResumeError::Unreadable {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        let sql = |source| ResumeError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql)?;
        crate::output::schema::for_each_error(&conn, |e| {
            if !frontier.covers(&e.path) {
                out.error(e);
                summary.errors_kept += 1;
            }
            true
        })
        .map_err(sql)?;
        out.flush();
        Ok(summary)
    }

    /// The new database has committed the copy: the prior file goes.
    pub fn remove(&self) -> Result<(), ResumeError> {
        let io = |source| ResumeError::Io {
            path: self.path.clone(),
            source,
        };
        match std::fs::remove_file(&self.path) {
            Ok(()) => super::journal::sync_dir(&self.path).map_err(io),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}
