//! Rows on their way to the database: what the scanning threads copy into a batch, and the
//! per-entry rules the writer and `stats` share (extension, parent path, TEXT or BLOB).

use crate::output::btree::Value;
use crate::output::schema::{extension_of, split_parent};
use crate::record::{EntryAttrs, EntryContent, EntryRef, EntryType};

/// Entries on their way to the database, copied by the scanning threads into one buffer per
/// batch (no allocation per entry); the writer encodes each row's record straight from it.
#[derive(Debug, Default)]
pub struct RowBatch {
    /// Per row: the path, then the symlink target, the extension, the checksum, the MIME
    /// type, the owner name and the group name, each where there is one.
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
    /// Lengths of the checksum and MIME type after the extension; [`NO_VALUE`] where there is
    /// none (every row of a scan that reads no contents).
    checksum_len: u32,
    mime_len: u32,
    /// Lengths of the NFSv4 owner and group names after the MIME type; [`NO_NAME`] where
    /// there is none (every row of a v3 scan). Names are at most 1 KiB on the wire.
    owner_len: u16,
    group_len: u16,
    attrs: EntryAttrs,
}

/// One row of a [`RowBatch`], with what the scanning thread worked out.
pub struct RowRef<'a> {
    pub entry: EntryRef<'a>,
    pub path_is_utf8: bool,
    pub extension: Option<&'a [u8]>,
    /// What reading the file found (`--checksum`, `--file-type`); none where nothing was read.
    pub content: EntryContent<'a>,
}

const NO_TARGET: u32 = u32::MAX;
const NO_VALUE: u32 = u32::MAX;
const NO_NAME: u16 = u16::MAX;

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
        self.push_with_content(e, &EntryContent::default());
    }

    /// [`RowBatch::push`] with what reading the entry's contents found.
    pub fn push_with_content(&mut self, e: &EntryRef<'_>, content: &EntryContent<'_>) {
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
        let mut copy = |value: Option<&str>| match value {
            Some(v) => {
                self.bytes.extend_from_slice(v.as_bytes());
                v.len() as u32
            }
            None => NO_VALUE,
        };
        let checksum_len = copy(content.checksum);
        let mime_len = copy(content.mime);
        let mut name = |value: Option<&[u8]>| match value {
            // Longer names (none come off the wire: the decoder bounds them) are cut rather
            // than mistaken for the marker of none.
            Some(v) => {
                let v = &v[..v.len().min(usize::from(NO_NAME - 1))];
                self.bytes.extend_from_slice(v);
                v.len() as u16
            }
            None => NO_NAME,
        };
        let owner_len = name(e.owner);
        let group_len = name(e.group);
        self.rows.push(RowMeta {
            start,
            path_len: e.path.len() as u32,
            target_len,
            depth: e.depth,
            path_is_utf8: std::str::from_utf8(e.path).is_ok(),
            extension_len,
            checksum_len,
            mime_len,
            owner_len,
            group_len,
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
            let (extension, extension_end) = if m.extension_len == u8::MAX {
                (None, target_end)
            } else {
                let end = target_end + usize::from(m.extension_len);
                (Some(&self.bytes[target_end..end]), end)
            };
            // Pushed from `&str`s, so valid UTF-8; a failed check would only mean a bug here,
            // and reads as no value rather than a wrong one.
            let text = |start: usize, len: u32| -> (Option<&str>, usize) {
                if len == NO_VALUE {
                    return (None, start);
                }
                let end = start + len as usize;
                (std::str::from_utf8(&self.bytes[start..end]).ok(), end)
            };
            let (checksum, checksum_end) = text(extension_end, m.checksum_len);
            let (mime, mime_end) = text(checksum_end, m.mime_len);
            let bytes = |start: usize, len: u16| -> (Option<&[u8]>, usize) {
                if len == NO_NAME {
                    return (None, start);
                }
                let end = start + usize::from(len);
                (Some(&self.bytes[start..end]), end)
            };
            let (owner, owner_end) = bytes(mime_end, m.owner_len);
            let (group, _) = bytes(owner_end, m.group_len);
            RowRef {
                entry: EntryRef {
                    path: &self.bytes[m.start..path_end],
                    attrs: &m.attrs,
                    depth: m.depth,
                    target,
                    owner,
                    group,
                },
                path_is_utf8: m.path_is_utf8,
                extension,
                content: EntryContent { checksum, mime },
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
