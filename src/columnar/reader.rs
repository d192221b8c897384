//! Reading entry records back from nfs-walker's Parquet output (one file, or a directory of
//! part files), a row group at a time and a batch of rows at a time: memory follows the batch,
//! not the file.

use super::{
    ColumnarError, COLUMNS, CONTENT_COLUMNS, OWNER_COLUMNS, PARQUET_MAGIC, SCAN_METADATA_KEY,
};
use crate::record::{ContentFields, EntryAttrs, EntryContent, EntryRef, EntryType};
use parquet::column::reader::{get_typed_column_reader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int32Type, Int64Type};
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Rows decoded at a time.
const READ_BATCH_ROWS: usize = 4096;

/// Whether `path` is Parquet: a directory holding `*.parquet` files, or a file starting with
/// Parquet's magic bytes.
pub fn is_parquet(path: &Path) -> bool {
    if path.is_dir() {
        return parts(path).is_ok_and(|p| !p.is_empty());
    }
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == PARQUET_MAGIC
}

/// The `*.parquet` files of a directory, in name order (part files are numbered).
pub fn parts(dir: &Path) -> Result<Vec<PathBuf>, ColumnarError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(ColumnarError::io(dir))? {
        let entry = entry.map_err(ColumnarError::io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".parquet") && !name.starts_with('.') {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The files of a Parquet input: the file itself, or a directory's parts.
pub fn input_files(path: &Path) -> Result<Vec<PathBuf>, ColumnarError> {
    if path.is_dir() {
        let p = parts(path)?;
        if p.is_empty() {
            return Err(ColumnarError::NoParts(path.to_path_buf()));
        }
        Ok(p)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// The scan's description (JSON) of a Parquet input: that of its last file, which for a
/// directory is the last part written (the one recording how the scan ended, once it has).
pub fn scan_metadata(path: &Path) -> Result<Option<serde_json::Value>, ColumnarError> {
    let files = input_files(path)?;
    let Some(last) = files.last() else {
        return Ok(None);
    };
    let file = File::open(last).map_err(ColumnarError::io(last))?;
    let reader = SerializedFileReader::new(file)?;
    let kv = reader.metadata().file_metadata().key_value_metadata();
    Ok(kv
        .and_then(|kv| kv.iter().find(|k| k.key == SCAN_METADATA_KEY))
        .and_then(|k| k.value.as_deref())
        .and_then(|v| serde_json::from_str(v).ok()))
}

/// Calls `f` with every entry of a Parquet input, in file order.
pub fn for_each_entry(path: &Path, mut f: impl FnMut(&EntryRef<'_>)) -> Result<u64, ColumnarError> {
    for_each_entry_with_content(path, |e, _| f(e))
}

/// [`for_each_entry`] with each entry's content columns (null in files without them).
pub fn for_each_entry_with_content(
    path: &Path,
    mut f: impl FnMut(&EntryRef<'_>, &EntryContent<'_>),
) -> Result<u64, ColumnarError> {
    let mut rows = 0;
    for file in input_files(path)? {
        rows += read_file(&file, &mut f)?;
    }
    Ok(rows)
}

/// Which content columns of a Parquet input hold any value, told from the column chunks'
/// null counts (no data is read). A chunk without statistics counts as holding values.
pub fn content_fields(path: &Path) -> Result<ContentFields, ColumnarError> {
    let mut fields = ContentFields::default();
    for file in input_files(path)? {
        let f = File::open(&file).map_err(ColumnarError::io(&file))?;
        let reader = SerializedFileReader::new(f)?;
        let meta = reader.metadata();
        let schema = meta.file_metadata().schema_descr();
        for (name, slot) in CONTENT_COLUMNS
            .into_iter()
            .zip([&mut fields.checksum, &mut fields.mime])
        {
            let Some(index) = schema.columns().iter().position(|c| c.name() == name) else {
                continue;
            };
            for group in meta.row_groups() {
                let chunk = group.column(index);
                let all_null = chunk
                    .statistics()
                    .and_then(|s| s.null_count_opt())
                    .is_some_and(|nulls| nulls == chunk.num_values() as u64);
                *slot |= !all_null;
            }
        }
    }
    Ok(fields)
}

/// A column being read: its typed reader and the values and definition levels of the batch.
struct Col<T: DataType> {
    reader: ColumnReaderImpl<T>,
    values: Vec<T::T>,
    def: Vec<i16>,
}

impl<T: DataType> Col<T> {
    /// Reads up to `n` rows; returns how many.
    fn read(&mut self, n: usize) -> Result<usize, ColumnarError> {
        self.values.clear();
        self.def.clear();
        let (rows, _, _) =
            self.reader
                .read_records(n, Some(&mut self.def), None, &mut self.values)?;
        Ok(rows)
    }
}

/// An optional column's value of row `i`, walking values in step with definition levels.
struct OptionalCursor {
    next_value: usize,
}

impl OptionalCursor {
    fn get<'a>(&mut self, col: &'a Col<ByteArrayType>, i: usize) -> Option<&'a [u8]> {
        if col.def.get(i).copied().unwrap_or(0) > 0 {
            let v = col.values.get(self.next_value).map(ByteArray::data);
            self.next_value += 1;
            v
        } else {
            None
        }
    }
}

fn read_file(
    path: &Path,
    f: &mut impl FnMut(&EntryRef<'_>, &EntryContent<'_>),
) -> Result<u64, ColumnarError> {
    let file = File::open(path).map_err(ColumnarError::io(path))?;
    let reader = SerializedFileReader::new(file)?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    // Column positions; `usize::MAX` for a content column the file lacks (schema version 1)
    // or an owner column (versions 1 and 2).
    let mut index = [0usize; COLUMNS.len()];
    for (slot, name) in index.iter_mut().zip(COLUMNS) {
        *slot = match schema.columns().iter().position(|c| c.name() == name) {
            Some(i) => i,
            None if CONTENT_COLUMNS.contains(&name) || OWNER_COLUMNS.contains(&name) => usize::MAX,
            None => {
                return Err(ColumnarError::MissingColumn {
                    path: path.to_path_buf(),
                    column: name,
                })
            }
        };
    }
    let mut total = 0u64;
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g)?;
        macro_rules! col {
            ($i:expr, $t:ty) => {{
                let c = group.get_column_reader(index[$i])?;
                if <$t as DataType>::get_physical_type() != schema.column(index[$i]).physical_type()
                {
                    return Err(ColumnarError::WrongType {
                        path: path.to_path_buf(),
                        column: COLUMNS[$i],
                    });
                }
                Col::<$t> {
                    reader: get_typed_column_reader::<$t>(c),
                    values: Vec::with_capacity(READ_BATCH_ROWS),
                    def: Vec::with_capacity(READ_BATCH_ROWS),
                }
            }};
        }
        let mut path_col = col!(0, ByteArrayType);
        let mut path_bytes = col!(1, ByteArrayType);
        let mut kind = col!(2, ByteArrayType);
        let mut size = col!(3, Int64Type);
        let mut used = col!(4, Int64Type);
        let mut mode = col!(5, Int32Type);
        let mut nlink = col!(6, Int32Type);
        let mut uid = col!(7, Int32Type);
        let mut gid = col!(8, Int32Type);
        let mut fileid = col!(9, Int64Type);
        let mut fsid = col!(10, Int64Type);
        let mut atime = col!(11, Int64Type);
        let mut mtime = col!(12, Int64Type);
        let mut ctime = col!(13, Int64Type);
        let mut depth = col!(14, Int32Type);
        let mut target = col!(16, ByteArrayType);
        let mut target_bytes = col!(17, ByteArrayType);
        macro_rules! optional_col {
            ($i:expr) => {
                if index[$i] == usize::MAX {
                    None
                } else {
                    Some(col!($i, ByteArrayType))
                }
            };
        }
        let mut checksum = optional_col!(18);
        let mut mime = optional_col!(19);
        let mut owner = optional_col!(20);
        let mut group_col = optional_col!(21);
        loop {
            let n = path_col.read(READ_BATCH_ROWS)?;
            if n == 0 {
                break;
            }
            let counts = [
                path_bytes.read(n)?,
                kind.read(n)?,
                size.read(n)?,
                used.read(n)?,
                mode.read(n)?,
                nlink.read(n)?,
                uid.read(n)?,
                gid.read(n)?,
                fileid.read(n)?,
                fsid.read(n)?,
                atime.read(n)?,
                mtime.read(n)?,
                ctime.read(n)?,
                depth.read(n)?,
                target.read(n)?,
                target_bytes.read(n)?,
                checksum.as_mut().map_or(Ok(n), |c| c.read(n))?,
                mime.as_mut().map_or(Ok(n), |c| c.read(n))?,
                owner.as_mut().map_or(Ok(n), |c| c.read(n))?,
                group_col.as_mut().map_or(Ok(n), |c| c.read(n))?,
            ];
            if counts.iter().any(|&c| c != n)
                || [
                    kind.values.len(),
                    size.values.len(),
                    used.values.len(),
                    mode.values.len(),
                    nlink.values.len(),
                    uid.values.len(),
                    gid.values.len(),
                    fileid.values.len(),
                    fsid.values.len(),
                    atime.values.len(),
                    mtime.values.len(),
                    ctime.values.len(),
                    depth.values.len(),
                ]
                .iter()
                .any(|&c| c != n)
            {
                return Err(ColumnarError::RaggedColumns {
                    path: path.to_path_buf(),
                    row_group: g,
                });
            }
            let mut exact_path = OptionalCursor { next_value: 0 };
            let mut target_text = OptionalCursor { next_value: 0 };
            let mut target_exact = OptionalCursor { next_value: 0 };
            let mut checksum_text = OptionalCursor { next_value: 0 };
            let mut mime_text = OptionalCursor { next_value: 0 };
            let mut owner_text = OptionalCursor { next_value: 0 };
            let mut group_text = OptionalCursor { next_value: 0 };
            for i in 0..n {
                let text = path_col.values[i].data();
                let exact = exact_path.get(&path_bytes, i);
                let t_text = target_text.get(&target, i);
                let t_exact = target_exact.get(&target_bytes, i);
                // Written from UTF-8 strings; anything else is not a value of ours.
                let content = EntryContent {
                    checksum: checksum
                        .as_ref()
                        .and_then(|c| checksum_text.get(c, i))
                        .and_then(|v| std::str::from_utf8(v).ok()),
                    mime: mime
                        .as_ref()
                        .and_then(|c| mime_text.get(c, i))
                        .and_then(|v| std::str::from_utf8(v).ok()),
                };
                let attrs = EntryAttrs {
                    kind: std::str::from_utf8(kind.values[i].data())
                        .ok()
                        .and_then(EntryType::parse)
                        .unwrap_or(EntryType::Unknown),
                    size: size.values[i] as u64,
                    used: used.values[i] as u64,
                    mode: mode.values[i] as u32,
                    nlink: nlink.values[i] as u32,
                    uid: uid.values[i] as u32,
                    gid: gid.values[i] as u32,
                    fileid: fileid.values[i] as u64,
                    fsid: fsid.values[i] as u64,
                    atime_ns: atime.values[i],
                    mtime_ns: mtime.values[i],
                    ctime_ns: ctime.values[i],
                };
                f(
                    &EntryRef {
                        path: exact.unwrap_or(text),
                        attrs: &attrs,
                        depth: depth.values[i] as u32,
                        target: t_exact.or(t_text),
                        owner: owner.as_ref().and_then(|c| owner_text.get(c, i)),
                        group: group_col.as_ref().and_then(|c| group_text.get(c, i)),
                    },
                    &content,
                );
            }
            total += n as u64;
        }
    }
    Ok(total)
}
