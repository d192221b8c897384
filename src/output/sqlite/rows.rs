//! Rows on their way to the database: what the scanning threads copy into a batch, and the
//! per-entry rules the writer and `stats` share (extension, parent path, TEXT or BLOB).

use crate::output::btree::Value;
use crate::output::schema::{extension_of, split_parent};
use crate::record::{EntryAttrs, EntryRef, EntryType};

/// Entries on their way to the database, copied by the scanning threads into one buffer per
/// batch (no allocation per entry); the writer encodes each row's record straight from it.
#[derive(Debug, Default)]
pub struct RowBatch {
    /// Per row: the path, then the symlink target if any.
    bytes: Vec<u8>,
    rows: Vec<RowMeta>,
}

#[derive(Debug, Clone, Copy)]
struct RowMeta {
    start: usize,
    path_len: u32,
    /// `u32::MAX` where there is no target.
    target_len: u32,
    depth: u32,
    /// Whether the path is valid UTF-8 (stored as TEXT, else as a BLOB).
    path_is_utf8: bool,
    /// Length of the extension after the target; `u8::MAX` where there is none.
    extension_len: u8,
    attrs: EntryAttrs,
}

/// One row of a [`RowBatch`], with what the scanning thread worked out.
pub struct RowRef<'a> {
    pub entry: EntryRef<'a>,
    pub path_is_utf8: bool,
    pub extension: Option<&'a [u8]>,
}

const NO_TARGET: u32 = u32::MAX;

impl RowBatch {
    pub fn with_capacity(bytes: usize, rows: usize) -> Self {
        RowBatch {
            bytes: Vec::with_capacity(bytes),
            rows: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes the batch holds.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Copies an entry in, with the checks the writer would otherwise make on its one thread
    /// (UTF-8, extension).
    pub fn push(&mut self, e: &EntryRef<'_>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(e.path);
        let target_len = match e.target {
            Some(t) => {
                self.bytes.extend_from_slice(t);
                t.len() as u32
            }
            None => NO_TARGET,
        };
        let extension_len = match e.attrs.kind {
            EntryType::File => match extension_of(split_parent(e.path).1) {
                Some(x) => {
                    self.bytes.extend_from_slice(x.as_bytes());
                    x.len() as u8
                }
                None => u8::MAX,
            },
            _ => u8::MAX,
        };
        self.rows.push(RowMeta {
            start,
            path_len: e.path.len() as u32,
            target_len,
            depth: e.depth,
            path_is_utf8: std::str::from_utf8(e.path).is_ok(),
            extension_len,
            attrs: *e.attrs,
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = RowRef<'_>> {
        self.rows.iter().map(|m| {
            let path_end = m.start + m.path_len as usize;
            let (target, target_end) = if m.target_len == NO_TARGET {
                (None, path_end)
            } else {
                let end = path_end + m.target_len as usize;
                (Some(&self.bytes[path_end..end]), end)
            };
            RowRef {
                entry: EntryRef {
                    path: &self.bytes[m.start..path_end],
                    attrs: &m.attrs,
                    depth: m.depth,
                    target,
                },
                path_is_utf8: m.path_is_utf8,
                extension: (m.extension_len != u8::MAX)
                    .then(|| &self.bytes[target_end..target_end + usize::from(m.extension_len)]),
            }
        })
    }
}

/// TEXT where the bytes are valid UTF-8, else a BLOB of the exact bytes.
pub(super) fn text_or_blob(bytes: &[u8]) -> Value<'_> {
    match std::str::from_utf8(bytes) {
        Ok(_) => Value::Text(bytes),
        Err(_) => Value::Blob(bytes),
    }
}
