//! Writing changes: NDJSON change records, CSV rows, a table, or a per-directory summary.

use super::{Change, ChangeKind, DiffError};
use crate::record::{json_escape_into, EntryRecord};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::io::Write;

/// How changes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffFormat {
    Ndjson,
    Csv,
    Table,
}

impl std::str::FromStr for DiffFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ndjson" | "json" => Ok(DiffFormat::Ndjson),
            "csv" => Ok(DiffFormat::Csv),
            "table" => Ok(DiffFormat::Table),
            _ => Err(format!("unknown format `{s}` (ndjson, csv, table)")),
        }
    }
}

/// The CSV header of change rows (the NFSv4 owner names last, so the columns before them
/// stay where they were).
pub const CSV_COLUMNS: [&str; 22] = [
    "change",
    "path",
    "old_path",
    "fields",
    "old_type",
    "new_type",
    "old_size",
    "new_size",
    "old_mtime_ns",
    "new_mtime_ns",
    "old_mode",
    "new_mode",
    "old_uid",
    "new_uid",
    "old_gid",
    "new_gid",
    "fsid",
    "fileid",
    "old_owner",
    "new_owner",
    "old_group",
    "new_group",
];

fn push_json_path(out: &mut Vec<u8>, key: &str, path: &[u8]) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    json_escape_into(out, path);
    out.push(b'"');
    if std::str::from_utf8(path).is_err() {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"_b64\":\"");
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(path)
                .as_bytes(),
        );
        out.push(b'"');
    }
}

fn push_json_record(out: &mut Vec<u8>, key: &str, r: &EntryRecord) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    r.write_ndjson(out);
    // The entry record's line ends with a newline; inside the change it must not.
    if out.last() == Some(&b'\n') {
        out.pop();
    }
}

/// Appends one change as an NDJSON line: `change`, `path`, `old_path` (renamed), `fields`,
/// `old`, `new` (entry records).
pub fn write_change_ndjson(c: &Change, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"change\":\"");
    out.extend_from_slice(c.kind.as_str().as_bytes());
    out.push(b'"');
    push_json_path(out, "path", c.path());
    if let Some(p) = c.old_path() {
        push_json_path(out, "old_path", p);
    }
    out.extend_from_slice(b",\"fields\":[");
    for (i, f) in c.fields().names().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(f.as_bytes());
        out.push(b'"');
    }
    out.push(b']');
    if let Some(o) = &c.old {
        push_json_record(out, "old", o);
    }
    if let Some(n) = &c.new {
        push_json_record(out, "new", n);
    }
    out.extend_from_slice(b"}\n");
}

fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// An owner name as a CSV field: empty where the record has none (a numeric owner).
fn lossy(name: &Option<Vec<u8>>) -> String {
    name.as_deref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default()
}

fn write_change_csv(c: &Change, out: &mut Vec<u8>) {
    let fields: Vec<&str> = c.fields().names().collect();
    let num = |r: &Option<EntryRecord>, f: &dyn Fn(&EntryRecord) -> String| {
        r.as_ref().map(f).unwrap_or_default()
    };
    let any = c.new.as_ref().or(c.old.as_ref());
    let cols: Vec<String> = vec![
        c.kind.as_str().to_string(),
        String::from_utf8_lossy(c.path()).into_owned(),
        c.old_path()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
        fields.join(";"),
        num(&c.old, &|r| r.attrs.kind.to_string()),
        num(&c.new, &|r| r.attrs.kind.to_string()),
        num(&c.old, &|r| r.attrs.size.to_string()),
        num(&c.new, &|r| r.attrs.size.to_string()),
        num(&c.old, &|r| r.attrs.mtime_ns.to_string()),
        num(&c.new, &|r| r.attrs.mtime_ns.to_string()),
        num(&c.old, &|r| r.attrs.mode.to_string()),
        num(&c.new, &|r| r.attrs.mode.to_string()),
        num(&c.old, &|r| r.attrs.uid.to_string()),
        num(&c.new, &|r| r.attrs.uid.to_string()),
        num(&c.old, &|r| r.attrs.gid.to_string()),
        num(&c.new, &|r| r.attrs.gid.to_string()),
        any.map(|r| r.attrs.fsid.to_string()).unwrap_or_default(),
        any.map(|r| r.attrs.fileid.to_string()).unwrap_or_default(),
        num(&c.old, &|r| lossy(&r.owner)),
        num(&c.new, &|r| lossy(&r.owner)),
        num(&c.old, &|r| lossy(&r.group)),
        num(&c.new, &|r| lossy(&r.group)),
    ];
    for (i, col) in cols.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, col);
    }
    out.extend_from_slice(b"\r\n");
}

/// A path for a table: one line, control characters and invalid bytes escaped.
pub fn display_path(p: &[u8]) -> String {
    String::from_utf8_lossy(p).escape_debug().to_string()
}

fn write_change_table(c: &Change, out: &mut Vec<u8>) {
    let mut line = format!("{:<12} {}", c.kind.as_str(), display_path(c.path()));
    if let Some(p) = c.old_path() {
        line.push_str(&format!("  (was {})", display_path(p)));
    }
    let fields: Vec<&str> = c.fields().names().collect();
    if !fields.is_empty() {
        line.push_str(&format!("  [{}]", fields.join(", ")));
    }
    line.push('\n');
    out.extend_from_slice(line.as_bytes());
}

/// Writes change records as they come.
pub struct ChangeWriter<W: Write> {
    out: W,
    format: DiffFormat,
    buf: Vec<u8>,
}

impl<W: Write> ChangeWriter<W> {
    pub fn new(mut out: W, format: DiffFormat) -> Result<Self, DiffError> {
        if format == DiffFormat::Csv {
            out.write_all(CSV_COLUMNS.join(",").as_bytes())?;
            out.write_all(b"\r\n")?;
        }
        Ok(ChangeWriter {
            out,
            format,
            buf: Vec::with_capacity(4096),
        })
    }

    pub fn write(&mut self, c: &Change) -> Result<(), DiffError> {
        self.buf.clear();
        match self.format {
            DiffFormat::Ndjson => write_change_ndjson(c, &mut self.buf),
            DiffFormat::Csv => write_change_csv(c, &mut self.buf),
            DiffFormat::Table => write_change_table(c, &mut self.buf),
        }
        self.out.write_all(&self.buf)?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<W, DiffError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Directories a summary keeps at most (about 100 bytes each); changes in further
/// directories are counted under [`SUMMARY_OTHER`].
pub const SUMMARY_DIRS_MAX: usize = 100_000;
/// Where a summary counts changes past [`SUMMARY_DIRS_MAX`] directories.
pub const SUMMARY_OTHER: &str = "(other directories)";

/// Changes of one directory (and everything below it, past the summary's depth).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirChanges {
    pub added: u64,
    pub deleted: u64,
    pub modified: u64,
    pub renamed: u64,
    pub type_changed: u64,
    /// Sizes of what was added (and of the new objects of `type_changed`).
    pub added_bytes: u64,
    /// Sizes of what was deleted (and of the old objects of `type_changed`).
    pub removed_bytes: u64,
    /// How much modified and renamed entries grew (negative: shrank).
    pub changed_bytes: i128,
}

/// Counts and bytes per directory, down to a depth: a change is counted in the directory
/// holding it, or in its ancestor at `depth` when it lies deeper.
#[derive(Debug, Clone)]
pub struct Summary {
    depth: usize,
    pub dirs: BTreeMap<Vec<u8>, DirChanges>,
    pub total: DirChanges,
}

impl Summary {
    pub fn new(depth: u32) -> Self {
        Summary {
            depth: depth as usize,
            dirs: BTreeMap::new(),
            total: DirChanges::default(),
        }
    }

    /// The directory a path is counted in.
    fn group_of(&self, path: &[u8]) -> Vec<u8> {
        if path == b"." {
            return b".".to_vec();
        }
        let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        let keep = (comps.len() - 1).min(self.depth);
        if keep == 0 {
            return b".".to_vec();
        }
        comps[..keep].join(&b'/')
    }

    pub fn add(&mut self, c: &Change) {
        let mut key = self.group_of(c.path());
        if !self.dirs.contains_key(&key) && self.dirs.len() >= SUMMARY_DIRS_MAX {
            key = SUMMARY_OTHER.as_bytes().to_vec();
        }
        let size = |r: &Option<EntryRecord>| r.as_ref().map_or(0, |r| r.attrs.size);
        for d in [self.dirs.entry(key).or_default(), &mut self.total] {
            match c.kind {
                ChangeKind::Added => {
                    d.added += 1;
                    d.added_bytes += size(&c.new);
                }
                ChangeKind::Deleted => {
                    d.deleted += 1;
                    d.removed_bytes += size(&c.old);
                }
                ChangeKind::TypeChanged => {
                    d.type_changed += 1;
                    d.added_bytes += size(&c.new);
                    d.removed_bytes += size(&c.old);
                }
                ChangeKind::Modified | ChangeKind::Renamed => {
                    if c.kind == ChangeKind::Modified {
                        d.modified += 1;
                    } else {
                        d.renamed += 1;
                    }
                    d.changed_bytes += size(&c.new) as i128 - size(&c.old) as i128;
                }
            }
        }
    }

    /// Writes the summary: one row per directory, then the total.
    pub fn write(&self, out: &mut dyn Write, format: DiffFormat) -> Result<(), DiffError> {
        let rows = self
            .dirs
            .iter()
            .map(|(k, v)| (k.as_slice(), v))
            .chain(std::iter::once((&b"(total)"[..], &self.total)));
        match format {
            DiffFormat::Table => {
                writeln!(
                    out,
                    "{:>9} {:>9} {:>9} {:>9} {:>9} {:>14} {:>14} {:>14}  directory",
                    "added",
                    "deleted",
                    "modified",
                    "renamed",
                    "type_chg",
                    "added bytes",
                    "removed bytes",
                    "changed bytes"
                )?;
                for (k, d) in rows {
                    writeln!(
                        out,
                        "{:>9} {:>9} {:>9} {:>9} {:>9} {:>14} {:>14} {:>14}  {}",
                        d.added,
                        d.deleted,
                        d.modified,
                        d.renamed,
                        d.type_changed,
                        d.added_bytes,
                        d.removed_bytes,
                        d.changed_bytes,
                        display_path(k)
                    )?;
                }
            }
            DiffFormat::Csv => {
                out.write_all(
                    b"directory,added,deleted,modified,renamed,type_changed,added_bytes,\
                      removed_bytes,changed_bytes\r\n",
                )?;
                for (k, d) in rows {
                    let mut line = Vec::new();
                    csv_field(&mut line, &String::from_utf8_lossy(k));
                    line.extend_from_slice(
                        format!(
                            ",{},{},{},{},{},{},{},{}\r\n",
                            d.added,
                            d.deleted,
                            d.modified,
                            d.renamed,
                            d.type_changed,
                            d.added_bytes,
                            d.removed_bytes,
                            d.changed_bytes
                        )
                        .as_bytes(),
                    );
                    out.write_all(&line)?;
                }
            }
            DiffFormat::Ndjson => {
                for (k, d) in rows {
                    let mut line = b"{".to_vec();
                    push_json_path(&mut line, "directory", k);
                    line.remove(1); // the leading comma push_json_path writes
                    line.extend_from_slice(
                        format!(
                            ",\"added\":{},\"deleted\":{},\"modified\":{},\"renamed\":{},\
                             \"type_changed\":{},\"added_bytes\":{},\"removed_bytes\":{},\
                             \"changed_bytes\":{}}}\n",
                            d.added,
                            d.deleted,
                            d.modified,
                            d.renamed,
                            d.type_changed,
                            d.added_bytes,
                            d.removed_bytes,
                            d.changed_bytes
                        )
                        .as_bytes(),
                    );
                    out.write_all(&line)?;
                }
            }
        }
        Ok(())
    }
}
