//! Index keys as the writer collects and sorts them, in SQLite's collation, and the index
//! records they stand for.

use crate::output::btree::{encode_record, Value};

/// The `entries_parent_id` key of a row, as one integer sorting in the index's order: the
/// parent id (0 for NULL, which SQLite sorts first; ids are positive), then the rowid.
pub(super) fn parent_key(parent_id: Option<i64>, id: i64) -> u128 {
    (u128::from(parent_id.map_or(0, |p| p as u64)) << 64) | u128::from(id as u64)
}

/// The index record a [`parent_key`] stands for.
pub(super) fn parent_record(key: u128, record: &mut Vec<u8>) {
    let parent = (key >> 64) as i64;
    let parent = if parent == 0 {
        Value::Null
    } else {
        Value::Int(parent)
    };
    record.clear();
    encode_record(&[parent, Value::Int(key as u64 as i64)], record);
}

/// The sort key of a directory path in `entries_dir_path`'s order (SQLite's: TEXT before
/// BLOB, then bytewise with the shorter first, then the rowid), as bytes compared bytewise.
/// Bytes 0 are escaped as 0 1 and the path ends with 0 0, so a prefix sorts first.
pub(super) fn dir_path_key(path: &[u8], path_is_utf8: bool, id: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(path.len() + 11);
    key.push(u8::from(!path_is_utf8));
    for &b in path {
        key.push(b);
        if b == 0 {
            key.push(1);
        }
    }
    key.extend_from_slice(&[0, 0]);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The index record a [`dir_path_key`] stands for.
pub(super) fn dir_path_record(key: &[u8], path: &mut Vec<u8>, record: &mut Vec<u8>) -> Option<()> {
    let (&blob, rest) = key.split_first()?;
    let (body, id) = rest.split_at_checked(rest.len().checked_sub(8)?)?;
    let id = i64::from_be_bytes(id.try_into().ok()?);
    path.clear();
    let mut bytes = body.strip_suffix(&[0, 0])?.iter();
    while let Some(&b) = bytes.next() {
        path.push(b);
        if b == 0 {
            bytes.next()?;
        }
    }
    let value = if blob == 1 {
        Value::Blob(path)
    } else {
        Value::Text(path)
    };
    record.clear();
    encode_record(&[value, Value::Int(id)], record);
    Some(())
}
