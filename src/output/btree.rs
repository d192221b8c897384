//! SQLite b-trees written page by page, for loading a scan database at the speed of a
//! sequential file write.
//!
//! Row-by-row `INSERT`s through SQLite cost about a microsecond per entry (statement
//! execution, record building, a b-tree descent per row, the page cache), which is more than
//! the whole scan costs per entry. A scan's rows arrive with increasing rowids and its index
//! keys can be sorted once, so the b-trees can be built bottom-up instead, the way a bulk
//! loader does: records are encoded straight into leaf pages, full pages are appended to the
//! file, and interior pages are built level by level as their children complete.
//!
//! The file is created, its schema written and finally updated by SQLite itself (rusqlite);
//! this module only fills the b-trees whose (empty) root pages SQLite created. Everything
//! follows the documented file format (<https://www.sqlite.org/fileformat2.html>);
//! `PRAGMA integrity_check` in the tests checks every page, key order, cell and index entry of
//! what is built here.
//!
//! A tree being built can be shown to SQLite at any time ([`TableBuilder::checkpoint`]): the
//! pages not yet full (one leaf and one page per interior level, the right edge of the tree)
//! are written as they are, the top one to the root page, and [`PageFile::commit`] makes
//! them part of the database. Full pages are never written again; the right-edge pages keep
//! the page numbers a checkpoint gave them, and their later contents (fuller, then sealed)
//! replace them only at the next commit, through the rollback journal. So the file never
//! holds a page no committed tree points to, and no committed page changes outside a commit.

pub use crate::output::pagefile::{PageFile, PageFileError};
use thiserror::Error;

const LEAF_TABLE: u8 = 0x0d;
const INTERIOR_TABLE: u8 = 0x05;
const LEAF_INDEX: u8 = 0x0a;
const INTERIOR_INDEX: u8 = 0x02;

#[derive(Debug, Error)]
pub enum BtreeError {
    #[error(transparent)]
    File(#[from] PageFileError),
    #[error("rowids must increase: {rowid} after {last}")]
    RowidOrder { rowid: i64, last: i64 },
}

/// One column value of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    /// UTF-8 text (the database's encoding); the caller guarantees validity.
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// Appends `v` as an SQLite varint: big-endian groups of 7 bits, the ninth byte whole.
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    let mut bytes = [0u8; 9];
    let n = write_varint(&mut bytes, v);
    out.extend_from_slice(&bytes[..n]);
}

/// Bytes `put_varint` takes for `v`.
#[inline]
pub fn varint_len(v: u64) -> usize {
    if v <= 0x7f {
        return 1;
    }
    if v > 0x00ff_ffff_ffff_ffff {
        return 9;
    }
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7)
}

/// The serial type of an integer and the bytes of its body: the smallest that holds it, as
/// SQLite chooses (0 and 1 take no body in schema format 4).
#[inline]
fn int_serial(v: i64) -> (u64, usize) {
    // Serial type and body bytes by the bytes a two's-complement value needs (1 to 8).
    const BY_BYTES: [(u64, usize); 9] = [
        (0, 0),
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 4),
        (5, 6),
        (5, 6),
        (6, 8),
        (6, 8),
    ];
    if v as u64 <= 1 {
        return (8 + v as u64, 0);
    }
    // Bits without the redundant sign bits, plus one sign bit.
    let magnitude = if v < 0 { !v } else { v } as u64;
    let bits = 65 - magnitude.leading_zeros() as usize;
    BY_BYTES[bits.div_ceil(8)]
}

fn serial_type(v: &Value<'_>) -> (u64, usize) {
    match *v {
        Value::Null => (0, 0),
        Value::Int(i) => int_serial(i),
        Value::Text(t) => (13 + 2 * t.len() as u64, t.len()),
        Value::Blob(b) => (12 + 2 * b.len() as u64, b.len()),
    }
}

/// Values [`encode_record`] handles without allocating.
const INLINE_VALUES_MAX: usize = 32;

/// Writes `v` as a varint at the start of `buf` (which has room), returning its length.
#[inline]
fn write_varint(buf: &mut [u8], v: u64) -> usize {
    if v <= 0x7f {
        buf[0] = v as u8;
        return 1;
    }
    let n = varint_len(v);
    if n == 9 {
        buf[8] = v as u8;
        let mut rest = v >> 8;
        for b in buf[..8].iter_mut().rev() {
            *b = (rest as u8 & 0x7f) | 0x80;
            rest >>= 7;
        }
        return 9;
    }
    let mut rest = v;
    for i in (0..n).rev() {
        buf[i] = (rest as u8 & 0x7f) | if i == n - 1 { 0 } else { 0x80 };
        rest >>= 7;
    }
    n
}

/// Appends the record (header of serial types, then the bodies) of `values` to `out`. (The
/// writer's hot path: serial types are computed once and the record is written in place.)
pub fn encode_record(values: &[Value<'_>], out: &mut Vec<u8>) {
    let mut inline = [(0u64, 0usize); INLINE_VALUES_MAX];
    let mut heap = Vec::new();
    let serials: &mut [(u64, usize)] = if values.len() <= INLINE_VALUES_MAX {
        &mut inline[..values.len()]
    } else {
        heap.resize(values.len(), (0, 0));
        &mut heap
    };
    let mut types_len = 0;
    let mut body_len = 0;
    for (slot, v) in serials.iter_mut().zip(values) {
        *slot = serial_type(v);
        types_len += varint_len(slot.0);
        body_len += slot.1;
    }
    // The header's length counts its own varint.
    let mut header_len = types_len + 1;
    while types_len + varint_len(header_len as u64) != header_len {
        header_len = types_len + varint_len(header_len as u64);
    }
    let base = out.len();
    // Eight bytes of slack let every integer body be one fixed-size store.
    out.resize(base + header_len + body_len + 8, 0);
    let buf = &mut out[base..];
    let mut at = write_varint(buf, header_len as u64);
    for &(t, _) in serials.iter() {
        if t <= 0x7f {
            buf[at] = t as u8;
            at += 1;
        } else {
            at += write_varint(&mut buf[at..], t);
        }
    }
    for (v, &(_, n)) in values.iter().zip(serials.iter()) {
        match *v {
            Value::Int(i) if n > 0 => {
                let shifted = (i as u64) << (64 - 8 * n as u32);
                buf[at..at + 8].copy_from_slice(&shifted.to_be_bytes());
            }
            Value::Text(b) | Value::Blob(b) => buf[at..at + n].copy_from_slice(b),
            _ => {}
        }
        at += n;
    }
    out.truncate(out.len() - 8);
}

/// Reads an SQLite varint from the front of `bytes`: the value and the bytes it took.
pub fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        if i == 8 {
            return Some(((v << 8) | u64::from(b), 9));
        }
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// The values of a record as [`encode_record`] writes them (no floats); `None` if the bytes
/// are not such a record.
pub fn decode_record(record: &[u8]) -> Option<Vec<Value<'_>>> {
    let (header_len, mut at) = get_varint(record)?;
    let header_len = usize::try_from(header_len).ok()?;
    let header = record.get(..header_len)?;
    let mut body = header_len;
    let mut values = Vec::new();
    while at < header_len {
        let (t, n) = get_varint(&header[at..])?;
        at += n;
        let (value, len) = match t {
            0 => (Value::Null, 0),
            1..=6 => {
                let len = [0, 1, 2, 3, 4, 6, 8][t as usize];
                let bytes = record.get(body..body + len)?;
                // Sign-extend the big-endian bytes.
                let mut v = if bytes[0] & 0x80 != 0 { -1i64 } else { 0 };
                for &b in bytes {
                    v = (v << 8) | i64::from(b);
                }
                (Value::Int(v), len)
            }
            8 => (Value::Int(0), 0),
            9 => (Value::Int(1), 0),
            t if t >= 12 => {
                let len = usize::try_from((t - 12) / 2).ok()?;
                let bytes = record.get(body..body.checked_add(len)?)?;
                if t % 2 == 0 {
                    (Value::Blob(bytes), len)
                } else {
                    (Value::Text(bytes), len)
                }
            }
            _ => return None,
        };
        values.push(value);
        body += len;
    }
    (at == header_len && body == record.len()).then_some(values)
}

/// One b-tree page being filled: header at the start, cell pointers after it, cell contents
/// from the end of the page backwards.
struct PageBuilder {
    buf: Vec<u8>,
    kind: u8,
    cells: u16,
    /// Offset of the lowest cell content.
    content_start: usize,
    /// Offset and length of the last cell added.
    last_cell: (usize, usize),
}

impl PageBuilder {
    fn new(page_size: usize, kind: u8) -> Self {
        PageBuilder {
            buf: vec![0; page_size],
            kind,
            cells: 0,
            content_start: page_size,
            last_cell: (0, 0),
        }
    }

    fn header_len(&self) -> usize {
        if self.kind == LEAF_TABLE || self.kind == LEAF_INDEX {
            8
        } else {
            12
        }
    }

    fn fits(&self, cell_len: usize) -> bool {
        self.header_len() + 2 * (usize::from(self.cells) + 1) + cell_len <= self.content_start
    }

    /// Adds a cell made of `prefix` then `rest` (the caller checked it fits).
    fn push(&mut self, prefix: &[u8], rest: &[u8]) {
        let len = prefix.len() + rest.len();
        let at = self.content_start - len;
        self.buf[at..at + prefix.len()].copy_from_slice(prefix);
        self.buf[at + prefix.len()..at + len].copy_from_slice(rest);
        let ptr = self.header_len() + 2 * usize::from(self.cells);
        self.buf[ptr..ptr + 2].copy_from_slice(&(at as u16).to_be_bytes());
        self.cells += 1;
        self.content_start = at;
        self.last_cell = (at, len);
    }

    /// Removes the last cell added, returning its bytes.
    fn pop(&mut self, into: &mut Vec<u8>) {
        let (at, len) = self.last_cell;
        into.clear();
        into.extend_from_slice(&self.buf[at..at + len]);
        self.cells -= 1;
        self.content_start = at + len;
        self.last_cell = (0, 0);
    }

    /// Completes the header (with `right_child` on interior pages) and returns the page.
    fn seal(&mut self, right_child: u32) -> &[u8] {
        let h = &mut self.buf[..12];
        h[0] = self.kind;
        h[1..3].copy_from_slice(&[0, 0]);
        h[3..5].copy_from_slice(&self.cells.to_be_bytes());
        // 65536 is written as 0.
        let start = if self.content_start == 65536 {
            0
        } else {
            self.content_start as u16
        };
        h[5..7].copy_from_slice(&start.to_be_bytes());
        h[7] = 0;
        if self.kind == INTERIOR_TABLE || self.kind == INTERIOR_INDEX {
            h[8..12].copy_from_slice(&right_child.to_be_bytes());
        }
        // Free space is left zeroed, so nothing of an earlier page leaks into the file.
        let free_start = self.header_len() + 2 * usize::from(self.cells);
        self.buf[free_start..self.content_start].fill(0);
        &self.buf
    }

    fn reset(&mut self) {
        self.cells = 0;
        self.content_start = self.buf.len();
        self.last_cell = (0, 0);
    }
}

/// How much of a payload stays on its b-tree page, by the file format's rule (which keeps
/// overflow pages from being nearly empty).
fn local_payload_len(page_size: usize, payload_len: usize, max_local: usize) -> usize {
    if payload_len <= max_local {
        return payload_len;
    }
    let usable = page_size;
    let min_local = (usable - 12) * 32 / 255 - 23;
    let k = min_local + (payload_len - min_local) % (usable - 4);
    if k <= max_local {
        k
    } else {
        min_local
    }
}

/// Places a cell's payload. A payload that stays whole on the page is returned, to be copied
/// once, straight into the page after `cell`; otherwise the part that stays goes to `cell`,
/// the rest to a chain of overflow pages whose first page number ends the cell, and nothing
/// is returned.
fn place_payload<'p>(
    file: &mut PageFile,
    payload: &'p [u8],
    max_local: usize,
    cell: &mut Vec<u8>,
    overflow_page: &mut Vec<u8>,
) -> Result<&'p [u8], BtreeError> {
    let local = local_payload_len(file.page_size, payload.len(), max_local);
    if local == payload.len() {
        return Ok(payload);
    }
    cell.extend_from_slice(&payload[..local]);
    cell.extend_from_slice(&file.next_page.to_be_bytes());
    let per_page = file.page_size - 4;
    let mut rest = &payload[local..];
    overflow_page.resize(file.page_size, 0);
    while !rest.is_empty() {
        let n = rest.len().min(per_page);
        let next = if n == rest.len() {
            0
        } else {
            file.page_after_next()
        };
        overflow_page[..4].copy_from_slice(&next.to_be_bytes());
        overflow_page[4..4 + n].copy_from_slice(&rest[..n]);
        overflow_page[4 + n..].fill(0);
        file.append(overflow_page)?;
        rest = &rest[n..];
    }
    Ok(&[])
}

/// Writes a sealed page: at the number a checkpoint gave it (the committed tree points
/// there, so it changes at the next commit) or as a new page.
fn place_sealed(
    file: &mut PageFile,
    reserved: &mut Option<u32>,
    page: &[u8],
) -> Result<u32, BtreeError> {
    match reserved.take() {
        Some(n) => {
            file.rewrite_page(n, page);
            Ok(n)
        }
        None => Ok(file.append(page)?),
    }
}

/// Writes a right-edge page as a checkpoint shows it, keeping its page number for the
/// contents it will have later.
fn place_snapshot(
    file: &mut PageFile,
    reserved: &mut Option<u32>,
    page: &[u8],
) -> Result<u32, BtreeError> {
    match *reserved {
        Some(n) => {
            file.rewrite_page(n, page);
            Ok(n)
        }
        None => {
            let n = file.append(page)?;
            *reserved = Some(n);
            Ok(n)
        }
    }
}

/// The interior levels of a b-tree being built bottom-up. Level `i` takes (child page, key)
/// pairs in key order; when a page is full its last pair's child becomes the page's right
/// child and its key moves up to level `i + 1` with the page as the child.
///
/// A table key is the child's largest rowid (as a varint); an index key is a whole index
/// cell, which lives in exactly one page of the tree.
struct InteriorLevels {
    kind: u8,
    levels: Vec<PageBuilder>,
    /// Per level, the page number a checkpoint gave the page being filled.
    reserved: Vec<Option<u32>>,
    scratch: Vec<u8>,
    /// Popped keys moving up; one per level at most at any time.
    carry: Vec<u8>,
}

impl InteriorLevels {
    fn new(kind: u8) -> Self {
        InteriorLevels {
            kind,
            levels: Vec::new(),
            reserved: Vec::new(),
            scratch: Vec::new(),
            carry: Vec::new(),
        }
    }

    fn push(
        &mut self,
        file: &mut PageFile,
        level: usize,
        child: u32,
        key: &[u8],
    ) -> Result<(), BtreeError> {
        let page_size = file.page_size;
        if self.levels.len() == level {
            self.levels.push(PageBuilder::new(page_size, self.kind));
            self.reserved.push(None);
        }
        if self.levels[level].fits(4 + key.len()) {
            self.levels[level].push(&child.to_be_bytes(), key);
            return Ok(());
        }
        // Full: the last cell's child closes the page, its key goes up.
        let mut popped = std::mem::take(&mut self.scratch);
        self.levels[level].pop(&mut popped);
        let right = u32::from_be_bytes([popped[0], popped[1], popped[2], popped[3]]);
        let page_no = place_sealed(
            file,
            &mut self.reserved[level],
            self.levels[level].seal(right),
        )?;
        self.levels[level].reset();
        self.levels[level].push(&child.to_be_bytes(), key);
        let mut up = std::mem::take(&mut self.carry);
        up.clear();
        up.extend_from_slice(&popped[4..]);
        self.scratch = popped;
        let r = self.push(file, level + 1, page_no, &up);
        self.carry = up;
        r
    }

    /// Closes every level: `last_child` is the right child of level `level`'s last page.
    /// The top page is written at `root`.
    fn finish(
        &mut self,
        file: &mut PageFile,
        level: usize,
        last_child: u32,
        root: u32,
    ) -> Result<(), BtreeError> {
        let top = level + 1 == self.levels.len();
        let page = self.levels[level].seal(last_child);
        if top {
            file.rewrite_page(root, page);
            Ok(())
        } else {
            let page_no = place_sealed(file, &mut self.reserved[level], page)?;
            self.finish(file, level + 1, page_no, root)
        }
    }

    /// Shows every level as it is: `child` is the right child of level 0's page; the top
    /// page goes to `root`, the others keep (or get) page numbers of their own.
    fn checkpoint(
        &mut self,
        file: &mut PageFile,
        mut child: u32,
        root: u32,
    ) -> Result<(), BtreeError> {
        let top = self.levels.len() - 1;
        for level in 0..top {
            let page = self.levels[level].seal(child);
            child = place_snapshot(file, &mut self.reserved[level], page)?;
        }
        file.rewrite_page(root, self.levels[top].seal(child));
        Ok(())
    }
}

/// Closes a tree: the last leaf, then each interior level; the top page goes to `root`.
fn finish_tree(
    file: &mut PageFile,
    leaf: &mut PageBuilder,
    leaf_reserved: &mut Option<u32>,
    interior: &mut InteriorLevels,
    root: u32,
) -> Result<(), BtreeError> {
    let page = leaf.seal(0);
    if interior.levels.is_empty() {
        file.rewrite_page(root, page);
        Ok(())
    } else {
        let page_no = place_sealed(file, leaf_reserved, page)?;
        interior.finish(file, 0, page_no, root)
    }
}

/// Builds a table b-tree from rows in increasing rowid order.
pub struct TableBuilder {
    root: u32,
    leaf: PageBuilder,
    /// The page number a checkpoint gave the leaf being filled.
    leaf_reserved: Option<u32>,
    leaf_max_rowid: Option<i64>,
    interior: InteriorLevels,
    record: Vec<u8>,
    cell: Vec<u8>,
    overflow_page: Vec<u8>,
    key: Vec<u8>,
    rows: u64,
}

impl TableBuilder {
    /// A builder for the table whose (empty) root page SQLite allocated at `root`.
    pub fn new(file: &PageFile, root: u32) -> Self {
        TableBuilder {
            root,
            leaf: PageBuilder::new(file.page_size, LEAF_TABLE),
            leaf_reserved: None,
            leaf_max_rowid: None,
            interior: InteriorLevels::new(INTERIOR_TABLE),
            record: Vec::with_capacity(256),
            cell: Vec::with_capacity(256),
            overflow_page: Vec::new(),
            key: Vec::with_capacity(9),
            rows: 0,
        }
    }

    /// Appends a row; `rowid` must be larger than every earlier one.
    pub fn push(
        &mut self,
        file: &mut PageFile,
        rowid: i64,
        values: &[Value<'_>],
    ) -> Result<(), BtreeError> {
        let mut record = std::mem::take(&mut self.record);
        record.clear();
        encode_record(values, &mut record);
        let r = self.push_record(file, rowid, &record);
        self.record = record;
        r
    }

    /// Appends a row already encoded as a record; `rowid` must be larger than every earlier
    /// one.
    pub fn push_record(
        &mut self,
        file: &mut PageFile,
        rowid: i64,
        record: &[u8],
    ) -> Result<(), BtreeError> {
        if let Some(last) = self.leaf_max_rowid {
            if rowid <= last {
                return Err(BtreeError::RowidOrder { rowid, last });
            }
        }
        self.cell.clear();
        put_varint(&mut self.cell, record.len() as u64);
        put_varint(&mut self.cell, rowid as u64);
        let max_local = file.page_size - 35;
        let rest = place_payload(
            file,
            record,
            max_local,
            &mut self.cell,
            &mut self.overflow_page,
        )?;
        if !self.leaf.fits(self.cell.len() + rest.len()) {
            let page_no = place_sealed(file, &mut self.leaf_reserved, self.leaf.seal(0))?;
            self.leaf.reset();
            self.key.clear();
            put_varint(&mut self.key, self.leaf_max_rowid.unwrap_or(0) as u64);
            self.interior.push(file, 0, page_no, &self.key)?;
        }
        self.leaf.push(&self.cell, rest);
        self.leaf_max_rowid = Some(rowid);
        self.rows += 1;
        Ok(())
    }

    /// Writes the last pages; the top one goes to the root page (at the next commit).
    pub fn finish(mut self, file: &mut PageFile) -> Result<u64, BtreeError> {
        finish_tree(
            file,
            &mut self.leaf,
            &mut self.leaf_reserved,
            &mut self.interior,
            self.root,
        )?;
        Ok(self.rows)
    }

    /// Writes the tree as it is, so that the next commit shows every row pushed so far;
    /// rows can be pushed on afterwards.
    pub fn checkpoint(&mut self, file: &mut PageFile) -> Result<(), BtreeError> {
        let page = self.leaf.seal(0);
        if self.interior.levels.is_empty() {
            file.rewrite_page(self.root, page);
            return Ok(());
        }
        let leaf = place_snapshot(file, &mut self.leaf_reserved, page)?;
        self.interior.checkpoint(file, leaf, self.root)
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// Builds an index b-tree from records in the index's order (the caller sorts them).
pub struct IndexBuilder {
    root: u32,
    leaf: PageBuilder,
    interior: InteriorLevels,
    cell: Vec<u8>,
    separator: Vec<u8>,
    overflow_page: Vec<u8>,
    /// Payload bytes an index cell keeps on its page before spilling.
    max_local: usize,
    entries: u64,
}

impl IndexBuilder {
    /// A builder for the index whose (empty) root page SQLite allocated at `root`.
    pub fn new(file: &PageFile, root: u32) -> Self {
        IndexBuilder {
            root,
            leaf: PageBuilder::new(file.page_size, LEAF_INDEX),
            interior: InteriorLevels::new(INTERIOR_INDEX),
            cell: Vec::with_capacity(64),
            separator: Vec::with_capacity(64),
            overflow_page: Vec::new(),
            max_local: (file.page_size - 12) * 64 / 255 - 23,
            entries: 0,
        }
    }

    /// Appends an index record (the indexed columns, then the rowid), not smaller than the
    /// one before.
    pub fn push(&mut self, file: &mut PageFile, record: &[u8]) -> Result<(), BtreeError> {
        self.cell.clear();
        put_varint(&mut self.cell, record.len() as u64);
        let rest = place_payload(
            file,
            record,
            self.max_local,
            &mut self.cell,
            &mut self.overflow_page,
        )?;
        if !self.leaf.fits(self.cell.len() + rest.len()) {
            // An index b-tree keeps each key once: the leaf's last key moves up as the
            // separator between this leaf and the next. A leaf holds at least three cells
            // (an index cell is at most a quarter page), so it is never left empty.
            self.leaf.pop(&mut self.separator);
            let page_no = file.append(self.leaf.seal(0))?;
            self.leaf.reset();
            self.interior.push(file, 0, page_no, &self.separator)?;
        }
        self.leaf.push(&self.cell, rest);
        self.entries += 1;
        Ok(())
    }

    /// Writes the last pages; the top one goes to the root page (at the next commit).
    pub fn finish(mut self, file: &mut PageFile) -> Result<u64, BtreeError> {
        finish_tree(
            file,
            &mut self.leaf,
            &mut None,
            &mut self.interior,
            self.root,
        )?;
        Ok(self.entries)
    }
}

/// The first column of every row `sql` returns.
#[cfg(test)]
pub(crate) fn query_column<T: rusqlite::types::FromSql>(
    conn: &rusqlite::Connection,
    sql: &str,
) -> Vec<T> {
    conn.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What `PRAGMA integrity_check` says of a database ("ok" alone when all is sound).
#[cfg(test)]
pub(crate) fn integrity_check(conn: &rusqlite::Connection) -> Vec<String> {
    query_column(conn, "PRAGMA integrity_check")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn varint_bytes(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn varints_match_the_file_format() {
        assert_eq!(varint_bytes(0), [0]);
        assert_eq!(varint_bytes(0x7f), [0x7f]);
        assert_eq!(varint_bytes(0x80), [0x81, 0x00]);
        assert_eq!(varint_bytes(0x3fff), [0xff, 0x7f]);
        assert_eq!(varint_bytes(0x4000), [0x81, 0x80, 0x00]);
        assert_eq!(varint_bytes(u64::MAX), [0xff; 9]);
        assert_eq!(
            varint_bytes(0x0100_0000_0000_0000),
            [0x80, 0xc0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]
        );
        for v in [
            0,
            1,
            127,
            128,
            16383,
            16384,
            1 << 35,
            1 << 56,
            (1 << 56) - 1,
            u64::MAX,
        ] {
            assert_eq!(varint_bytes(v).len(), varint_len(v), "{v}");
            let mut in_place = [0u8; 9];
            let n = write_varint(&mut in_place, v);
            assert_eq!(&in_place[..n], &varint_bytes(v)[..], "{v}");
        }
    }

    #[test]
    fn integer_serial_types_at_every_boundary() {
        let cases: [(i64, (u64, usize)); 18] = [
            (0, (8, 0)),
            (1, (9, 0)),
            (2, (1, 1)),
            (-1, (1, 1)),
            (127, (1, 1)),
            (-128, (1, 1)),
            (128, (2, 2)),
            (-129, (2, 2)),
            (0x7fff, (2, 2)),
            (0x8000, (3, 3)),
            (-0x80_0001, (4, 4)),
            (0x7fff_ffff, (4, 4)),
            (0x8000_0000, (5, 6)),
            (-0x8000_0000_0000, (5, 6)),
            (0x7fff_ffff_ffff, (5, 6)),
            (0x8000_0000_0000, (6, 8)),
            (i64::MAX, (6, 8)),
            (i64::MIN, (6, 8)),
        ];
        for (v, want) in cases {
            assert_eq!(int_serial(v), want, "{v}");
        }
    }

    #[test]
    fn records_use_the_smallest_integer_types() {
        let mut out = Vec::new();
        encode_record(
            &[
                Value::Null,
                Value::Int(0),
                Value::Int(1),
                Value::Int(-1),
                Value::Int(300),
                Value::Text(b"ab"),
                Value::Blob(b"\xff"),
            ],
            &mut out,
        );
        assert_eq!(
            out,
            [8, 0, 8, 9, 1, 2, 17, 14, 0xff, 0x01, 0x2c, b'a', b'b', 0xff]
        );
    }

    #[test]
    fn local_payload_follows_the_spill_rule() {
        // 4096-byte pages: table leaf max local 4061, min local 489.
        assert_eq!(local_payload_len(4096, 4061, 4061), 4061);
        // Just too long: what would stay (4062) passes the maximum, so only the minimum does.
        assert_eq!(local_payload_len(4096, 4062, 4061), 489);
        // One full overflow page plus 100 bytes: the 100 stay beside the minimum.
        assert_eq!(local_payload_len(4096, 489 + 4092 + 100, 4061), 589);
        assert_eq!(local_payload_len(4096, 489 + 4092 * 2, 4061), 489);
    }

    /// A database SQLite created with one table and two indexes, all empty; returns the
    /// root pages (table, index on a, index on b).
    fn empty_db(path: &Path, page_size: usize) -> (u32, u32, u32) {
        let _ = std::fs::remove_file(path);
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; PRAGMA journal_mode = OFF;
             CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c BLOB);
             CREATE INDEX t_a ON t(a);
             CREATE INDEX t_b ON t(b) WHERE a > 0;"
        ))
        .unwrap();
        let root = |name: &str| -> u32 {
            conn.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
        };
        (root("t"), root("t_a"), root("t_b"))
    }

    #[derive(Debug, Clone)]
    struct Row {
        id: i64,
        a: Option<i64>,
        b: Vec<u8>,
        c: Vec<u8>,
    }

    /// Builds table and indexes with the writer, then checks SQLite finds it all sound and
    /// reads back exactly the rows written, through the table and through each index.
    fn build_and_check(rows: &[Row], page_size: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (t_root, a_root, b_root) = empty_db(&path, page_size);
        let mut file = PageFile::open(&path).unwrap();
        let mut table = TableBuilder::new(&file, t_root);
        for r in rows {
            let a = r.a.map_or(Value::Null, Value::Int);
            table
                .push(
                    &mut file,
                    r.id,
                    &[Value::Null, a, Value::Text(&r.b), Value::Blob(&r.c)],
                )
                .unwrap();
        }
        assert_eq!(table.finish(&mut file).unwrap(), rows.len() as u64);
        let mut by_a: Vec<(Option<i64>, i64)> = rows.iter().map(|r| (r.a, r.id)).collect();
        by_a.sort();
        let mut index = IndexBuilder::new(&file, a_root);
        let mut rec = Vec::new();
        for (a, id) in &by_a {
            rec.clear();
            encode_record(
                &[a.map_or(Value::Null, Value::Int), Value::Int(*id)],
                &mut rec,
            );
            index.push(&mut file, &rec).unwrap();
        }
        index.finish(&mut file).unwrap();
        let mut by_b: Vec<(&[u8], i64)> = rows
            .iter()
            .filter(|r| r.a.is_some_and(|a| a > 0))
            .map(|r| (&r.b[..], r.id))
            .collect();
        by_b.sort();
        let mut index = IndexBuilder::new(&file, b_root);
        for (b, id) in &by_b {
            rec.clear();
            encode_record(&[Value::Text(b), Value::Int(*id)], &mut rec);
            index.push(&mut file, &rec).unwrap();
        }
        index.finish(&mut file).unwrap();
        file.commit(true).unwrap();
        drop(file);

        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(
            integrity_check(&conn),
            ["ok"],
            "page size {page_size}, {} rows",
            rows.len()
        );
        let mut stmt = conn
            .prepare("SELECT id, a, CAST(b AS BLOB), c FROM t")
            .unwrap();
        type RowTuple = (i64, Option<i64>, Vec<u8>, Vec<u8>);
        let read: Vec<RowTuple> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<_> = rows
            .iter()
            .map(|r| (r.id, r.a, r.b.clone(), r.c.clone()))
            .collect();
        assert_eq!(read, want);
        let ids_by_a: Vec<i64> =
            query_column(&conn, "SELECT id FROM t INDEXED BY t_a ORDER BY a, id");
        assert_eq!(ids_by_a, by_a.iter().map(|p| p.1).collect::<Vec<_>>());
        let ids_by_b: Vec<i64> = query_column(
            &conn,
            "SELECT id FROM t INDEXED BY t_b WHERE a > 0 ORDER BY b, id",
        );
        assert_eq!(ids_by_b, by_b.iter().map(|p| p.1).collect::<Vec<_>>());
        // SQLite can go on writing the file: an insert splits the pages built here.
        conn.execute(
            "INSERT INTO t (id, a, b, c) VALUES (0, 5, 'inserted', x'00')",
            [],
        )
        .unwrap();
        assert_eq!(integrity_check(&conn), ["ok"]);
    }

    fn text(n: usize, seed: u64) -> Vec<u8> {
        (0..n)
            .map(|i| b'a' + ((seed as usize + i * 7) % 26) as u8)
            .collect()
    }

    /// An empty database with 512-byte pages, opened for appending to its table `t`.
    fn table_t() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        PageFile,
        TableBuilder,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (t_root, _, _) = empty_db(&path, 512);
        let file = PageFile::open(&path).unwrap();
        let table = TableBuilder::new(&file, t_root);
        (dir, path, file, table)
    }

    #[test]
    fn pages_appended_without_finishing_leave_the_database_as_sqlite_wrote_it() {
        // What a process killed during a scan leaves: pages past the end the header declares.
        let (_dir, path, mut file, mut table) = table_t();
        let long = text(3000, 1);
        for id in 1..2000 {
            table
                .push(
                    &mut file,
                    id,
                    &[Value::Null, Value::Int(id), Value::Text(&long)],
                )
                .unwrap();
        }
        assert!(file.appended_pages() > 1000);
        file.flush().unwrap();
        drop(file);
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(integrity_check(&conn), ["ok"]);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        // And SQLite can write it: its new pages go after the end it knows.
        conn.execute("INSERT INTO t (a, b) VALUES (1, 'x')", [])
            .unwrap();
        assert_eq!(integrity_check(&conn), ["ok"]);
    }

    #[test]
    fn rowids_must_increase() {
        let (_dir, _path, mut file, mut table) = table_t();
        table.push(&mut file, 5, &[Value::Null]).unwrap();
        assert!(matches!(
            table.push(&mut file, 5, &[Value::Null]),
            Err(BtreeError::RowidOrder { rowid: 5, last: 5 })
        ));
    }

    #[test]
    fn empty_tables_and_indexes() {
        for page_size in [512, 65536] {
            build_and_check(&[], page_size);
        }
    }

    #[test]
    fn deep_trees_and_overflow_chains() {
        // Small pages make trees several levels deep; long values cross the spill
        // thresholds of table and index pages and make multi-page overflow chains.
        let lens = [
            0usize, 1, 20, 60, 101, 102, 103, 200, 477, 478, 479, 480, 1000, 5000,
        ];
        for page_size in [512usize, 1024, 4096] {
            let rows: Vec<Row> = (0..6000u64)
                .map(|i| Row {
                    id: (i * 3 + 1) as i64,
                    a: if i % 11 == 0 {
                        None
                    } else {
                        Some((i as i64 * 7919) % 2001 - 1000)
                    },
                    b: text(lens[(i as usize) % lens.len()], i),
                    c: vec![(i % 251) as u8; (i as usize * 13) % 700],
                })
                .collect();
            build_and_check(&rows, page_size);
        }
    }

    /// Checkpoints at irregular moments of a load that grows a tree four levels deep (small
    /// pages, overflow chains): after every commit SQLite finds the database sound, with
    /// exactly the rows pushed so far; after the finish, all of them; and no page of the file
    /// is left unused.
    #[test]
    fn every_checkpoint_is_a_sound_database_with_the_rows_so_far() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 512; PRAGMA journal_mode = DELETE;
             CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT);",
        )
        .unwrap();
        let root: u32 = conn
            .query_row("SELECT rootpage FROM sqlite_schema", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        let mut file = PageFile::open(&path).unwrap();
        let mut table = TableBuilder::new(&file, root);
        let mut next_checkpoint = 1u64;
        let mut commits = 0;
        for id in 1..=20_000i64 {
            let long = text(
                if id % 97 == 0 {
                    1500
                } else {
                    (id % 40) as usize
                },
                id as u64,
            );
            table
                .push(
                    &mut file,
                    id,
                    &[Value::Null, Value::Int(id), Value::Text(&long)],
                )
                .unwrap();
            if id as u64 == next_checkpoint {
                next_checkpoint += 1 + (id as u64 * 7) % 1500;
                table.checkpoint(&mut file).unwrap();
                assert_eq!(
                    file.commit(true).unwrap(),
                    crate::output::pagefile::Committed::Yes
                );
                commits += 1;
                let conn = rusqlite::Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap();
                assert_eq!(integrity_check(&conn), ["ok"], "after row {id}");
                let (count, max): (i64, i64) = conn
                    .query_row("SELECT count(*), max(id) FROM t", [], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .unwrap();
                assert_eq!((count, max), (id, id));
            }
        }
        assert!(commits > 20);
        assert!(table.interior.levels.len() >= 2, "a tree three levels deep");
        table.finish(&mut file).unwrap();
        file.commit(true).unwrap();
        drop(file);
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(integrity_check(&conn), ["ok"]);
        let count: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 20_000);
        assert!(!path.with_file_name("t.db-journal").exists());
    }

    fn value_strategy() -> impl proptest::strategy::Strategy<Value = (u8, i64, Vec<u8>)> {
        use proptest::prelude::*;
        (
            0u8..4,
            any::<i64>(),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
    }

    fn to_value(v: &(u8, i64, Vec<u8>)) -> Value<'_> {
        match v.0 {
            0 => Value::Null,
            1 => Value::Int(v.1),
            2 => Value::Text(&v.2),
            _ => Value::Blob(&v.2),
        }
    }

    proptest::proptest! {
        #[test]
        fn records_decode_to_what_was_encoded(
            values in proptest::collection::vec(value_strategy(), 0..85),
        ) {
            // Up to 85 values: past the 32 encoded without allocating, too.
            let values: Vec<Value> = values.iter().map(to_value).collect();
            let mut record = vec![0xa5];
            encode_record(&values, &mut record);
            proptest::prop_assert_eq!(decode_record(&record[1..]), Some(values));
        }

        #[test]
        fn varints_decode(v in proptest::prelude::any::<u64>()) {
            let bytes = varint_bytes(v);
            let mut in_place = [0u8; 9];
            let n = write_varint(&mut in_place, v);
            proptest::prop_assert_eq!(&in_place[..n], &bytes[..]);
            proptest::prop_assert_eq!(get_varint(&bytes), Some((v, bytes.len())));
            proptest::prop_assert_eq!(get_varint(&bytes[..bytes.len() - 1]), None);
        }

        #[test]
        fn any_bytes_decode_or_refuse_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let _ = decode_record(&bytes);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn any_rows_make_a_sound_database(
            page_size in proptest::sample::select(vec![512usize, 1024, 65536]),
            rows in proptest::collection::vec(
                (1i64..5, proptest::option::of(-3i64..1 << 40),
                 proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1500),
                 proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)),
                0..400),
        ) {
            let mut id = 0i64;
            let rows: Vec<Row> = rows
                .into_iter()
                .map(|(step, a, b, c)| {
                    id += step;
                    // Text must be UTF-8: keep the bytes' low bits as letters.
                    let b = b.into_iter().map(|x| b'a' + x % 26).collect();
                    Row { id, a, b, c }
                })
                .collect();
            build_and_check(&rows, page_size);
        }
    }
}
