//! Resuming into an NDJSON or CSV file: the file keeps every whole line it has (a line cut
//! short by the crash is cut off), and the resumed walk skips the entries it holds below the
//! frontier as it produces them again ([`SkipStored`]), so appending gives every path once.

use super::{FrontierPaths, ResumeError};
use crate::path_error::PathError;
use crate::record::{EntryContent, EntryRecord, EntryRef};
use crate::scan::EntrySink;
use crate::sched::TaskId;
use crate::walker::ObjectRef;
use base64::Engine as _;
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

/// The text formats a scan can resume into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    Ndjson,
    Csv,
}

/// A record (a line; in CSV, quoted fields may hold line breaks) longer than this is damage.
const RECORD_BYTES_MAX: usize = 4 << 20;
/// The CSV column holding the exact bytes of a path that is not UTF-8 (see `record::COLUMNS`).
const CSV_PATH_B64_COLUMN: usize = 14;

/// Paths already stored below the frontier, as 128-bit keyed hashes (16 bytes each, however
/// long the path: the set follows the work the interrupted run left in flight).
pub struct StoredPaths {
    keys: (RandomState, RandomState),
    set: HashSet<u128>,
}

impl Default for StoredPaths {
    fn default() -> Self {
        Self::new()
    }
}

impl StoredPaths {
    fn new() -> StoredPaths {
        StoredPaths {
            keys: (RandomState::new(), RandomState::new()),
            set: HashSet::new(),
        }
    }

    fn key(&self, path: &[u8]) -> u128 {
        (u128::from(self.keys.0.hash_one(path)) << 64) | u128::from(self.keys.1.hash_one(path))
    }

    fn insert(&mut self, path: &[u8]) {
        let k = self.key(path);
        self.set.insert(k);
    }

    pub fn contains(&self, path: &[u8]) -> bool {
        !self.set.is_empty() && self.set.contains(&self.key(path))
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// What a text output holds, as a resume finds it.
pub struct StoredText {
    pub skip: StoredPaths,
    /// Whole records kept (the CSV header not counted).
    pub records: u64,
    /// The root's own entry is among them.
    pub root_stored: bool,
    /// Bytes of a record cut short by the crash, cut off the end.
    pub torn_bytes: u64,
}

/// Reads the text output `path`, cuts a torn last record off (durably), and collects the
/// paths it holds below `frontier`.
pub fn prepare(
    path: &Path,
    format: TextFormat,
    frontier: &FrontierPaths,
) -> Result<StoredText, ResumeError> {
    let io = |source| ResumeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |why: String| ResumeError::Unreadable {
        path: path.to_path_buf(),
        why,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut stored = StoredText {
        skip: StoredPaths::new(),
        records: 0,
        root_stored: false,
        torn_bytes: 0,
    };
    let mut whole = 0u64;
    let mut record = Vec::new();
    let mut header = format == TextFormat::Csv;
    let mut fields = Vec::new();
    loop {
        record.clear();
        let complete = match format {
            TextFormat::Ndjson => read_line(&mut input, &mut record).map_err(io)?,
            TextFormat::Csv => read_csv_record(&mut input, &mut record).map_err(io)?,
        };
        if record.is_empty() {
            break;
        }
        if !complete {
            break;
        }
        if record.len() > RECORD_BYTES_MAX {
            return Err(bad(format!(
                "a record at byte {whole} is longer than {RECORD_BYTES_MAX} bytes"
            )));
        }
        let at = whole;
        whole += record.len() as u64;
        if header {
            header = false;
            continue;
        }
        let entry_path = match format {
            TextFormat::Ndjson => {
                let text = std::str::from_utf8(&record)
                    .map_err(|_| bad(format!("the line at byte {at} is not UTF-8")))?;
                EntryRecord::from_json(text.trim_end())
                    .map_err(|e| bad(format!("the line at byte {at}: {e}")))?
                    .path
            }
            TextFormat::Csv => csv_path(&record, &mut fields)
                .ok_or_else(|| bad(format!("the CSV record at byte {at} has no path")))?,
        };
        stored.records += 1;
        stored.root_stored |= entry_path == b".";
        if frontier.covers(&entry_path) {
            stored.skip.insert(&entry_path);
        }
    }
    if whole < len {
        stored.torn_bytes = len - whole;
        let f = OpenOptions::new().write(true).open(path).map_err(io)?;
        f.set_len(whole).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    Ok(stored)
}

/// One line with its `\n`; false if the input ended before it.
fn read_line(input: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<bool> {
    input.read_until(b'\n', out)?;
    Ok(out.last() == Some(&b'\n'))
}

/// One CSV record (RFC 4180: quoted fields may hold `"`, `,` and line breaks) with its `\r\n`;
/// false if the input ended before it.
fn read_csv_record(input: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<bool> {
    loop {
        let start = out.len();
        input.read_until(b'\n', out)?;
        if out.len() == start || out.last() != Some(&b'\n') {
            return Ok(false);
        }
        // Whole when the quotes so far are balanced (a doubled quote counts twice).
        let quotes = out.iter().filter(|&&b| b == b'"').count();
        if quotes % 2 == 0 {
            return Ok(out.ends_with(b"\r\n"));
        }
        if out.len() > RECORD_BYTES_MAX {
            return Ok(true);
        }
    }
}

/// The exact path of a CSV record: its `path_b64` column where there is one, else `path`.
fn csv_path(record: &[u8], fields: &mut Vec<Vec<u8>>) -> Option<Vec<u8>> {
    fields.clear();
    let body = record.strip_suffix(b"\r\n").unwrap_or(record);
    let mut field = Vec::new();
    let mut quoted = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if quoted {
            if b == b'"' {
                if body.get(i + 1) == Some(&b'"') {
                    field.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            } else {
                field.push(b);
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == b',' {
            fields.push(std::mem::take(&mut field));
        } else {
            field.push(b);
        }
        i += 1;
    }
    fields.push(field);
    if let Some(b64) = fields.get(CSV_PATH_B64_COLUMN).filter(|f| !f.is_empty()) {
        return base64::engine::general_purpose::STANDARD.decode(b64).ok();
    }
    fields.first().filter(|p| !p.is_empty()).cloned()
}

/// A scanning thread's sink that drops the entries a resumed output already holds.
pub struct SkipStored<O> {
    pub inner: O,
    pub stored: Arc<StoredPaths>,
}

impl<O: EntrySink> EntrySink for SkipStored<O> {
    const WANTS_OBJECTS: bool = O::WANTS_OBJECTS;

    #[inline]
    fn entry(&mut self, e: &EntryRef<'_>) {
        if !self.stored.contains(e.path) {
            self.inner.entry(e);
        }
    }
    fn entry_with_content(&mut self, e: &EntryRef<'_>, content: &EntryContent<'_>) {
        if !self.stored.contains(e.path) {
            self.inner.entry_with_content(e, content);
        }
    }
    fn error(&mut self, e: PathError) {
        self.inner.error(e);
    }
    fn object(&mut self, o: &ObjectRef<'_>) {
        self.inner.object(o);
    }
    fn dir_listed(&mut self, path: &[u8], dir: Option<(u64, u64)>, entries: u64) {
        self.inner.dir_listed(path, dir, entries);
    }
    fn task_finished(&mut self, id: TaskId) {
        self.inner.task_finished(id);
    }
    fn idle(&mut self) {
        self.inner.idle();
    }
    fn flush(&mut self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EntryAttrs, EntryType};

    fn rec(path: &[u8]) -> EntryRecord {
        EntryRecord {
            path: path.to_vec(),
            attrs: EntryAttrs {
                kind: EntryType::File,
                size: 1,
                used: 1,
                mode: 0o644,
                nlink: 1,
                uid: 0,
                gid: 0,
                fileid: 7,
                fsid: 1,
                atime_ns: 0,
                mtime_ns: 0,
                ctime_ns: 0,
            },
            depth: 2,
            target: None,
            owner: None,
            group: None,
        }
    }

    fn frontier(dirs: &[&str]) -> FrontierPaths {
        let tasks: Vec<_> = dirs
            .iter()
            .map(|d| {
                (
                    TaskId(0),
                    crate::walker::Task::Dir(crate::walker::DirTask {
                        fh: crate::rpc::nfs3::FileHandle::from_bytes(b"h").unwrap(),
                        path: d.as_bytes().to_vec(),
                        depth: 1,
                        fsid: 1,
                    }),
                )
            })
            .collect();
        FrontierPaths::new(&tasks)
    }

    #[test]
    fn ndjson_and_csv_keep_whole_records_and_collect_paths_below_the_frontier() {
        let dir = std::env::temp_dir().join(format!("nfs-walker-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths: [&[u8]; 5] = [b".", b"a", b"a/x", b"a/\"q,\r\nz", b"a/\xffbad"];
        for format in [TextFormat::Ndjson, TextFormat::Csv] {
            let p = dir.join(format!("{format:?}"));
            let mut bytes = Vec::new();
            if format == TextFormat::Csv {
                bytes.extend_from_slice(crate::record::csv_header().as_bytes());
            }
            for path in paths {
                match format {
                    TextFormat::Ndjson => rec(path).as_ref().write_ndjson(&mut bytes),
                    TextFormat::Csv => rec(path).as_ref().write_csv(&mut bytes),
                }
            }
            let whole = bytes.len();
            // A record cut short: the next one, half written.
            let mut next = Vec::new();
            match format {
                TextFormat::Ndjson => rec(b"a/y").as_ref().write_ndjson(&mut next),
                TextFormat::Csv => rec(b"a/y").as_ref().write_csv(&mut next),
            }
            bytes.extend_from_slice(&next[..next.len() / 2]);
            std::fs::write(&p, &bytes).unwrap();
            let s = prepare(&p, format, &frontier(&["a"])).unwrap();
            assert_eq!(s.records, 5, "{format:?}");
            assert!(s.root_stored);
            assert_eq!(s.torn_bytes as usize, next.len() / 2, "{format:?}");
            assert_eq!(std::fs::metadata(&p).unwrap().len() as usize, whole);
            assert_eq!(s.skip.len(), 3, "{format:?}");
            for path in &paths[2..] {
                assert!(s.skip.contains(path), "{format:?} {path:?}");
            }
            assert!(!s.skip.contains(b"a") && !s.skip.contains(b"a/y"));
        }
    }
}
