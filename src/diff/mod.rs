//! What changed between two scans of the same namespace: `nfs-walker diff OLD NEW`.
//!
//! Identity is (fsid, fileid), not the path: an object whose path changed but whose fileid did
//! not was renamed (or moved), not deleted and added. Both scans (databases or NDJSON) are
//! streamed into external sorts by identity ([`crate::output::extsort`], bounded memory) and
//! merge-joined, so memory follows the sort budgets, never the size of the trees:
//!
//! 1. Each side is sorted by (fsid, fileid) — the two sides on two threads.
//! 2. The join takes one identity at a time, with every name it has on each side (hard links:
//!    one fileid, several paths). Names on both sides are the same entry: `modified` if any
//!    compared attribute changed. Names only on one side are paired, same last component
//!    first, as renames; what is left over was `deleted` or `added` (a hard link removed or
//!    made). An identity whose type changed, or whose ctime went backwards, is a fileid reused
//!    by a new object: all its old names are `deleted`, all its new ones `added`.
//! 3. The renames are sorted depth-first by old path and passed with a stack of the renamed
//!    ancestors: a rename that only follows its parent directory's (same name, below the
//!    parent's new path) is not reported — a moved directory is reported once, and its
//!    descendants only as `modified`, under their new paths, where their attributes changed.
//! 4. Every change is sorted depth-first by path. A `deleted` and an `added` at one path with
//!    different types become one `type_changed` (a file replaced by a directory).
//!
//! The record format and the rules are documented in `docs/diff.md`.

pub mod rows;
pub mod source;
pub mod write;

use crate::client::NfsUrl;
use crate::output::extsort::{ExternalSorter, SortedKeys};
use crate::record::{EntryRecord, EntryType};
use rows::{decode_entry, encode_record, tree_order_key, KeyedRow};
pub use source::{ScanFormat, ScanMeta, ScanSource};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Memory for the rows of each side's identity sort (two run at once) before runs spill to a
/// temporary file: with the two change sorts below, the diff stays well under 256 MiB.
pub const IDENTITY_SORT_MEMORY_BYTES: usize = 64 << 20;
/// Memory for the renames' sort and for the changes' sort, each.
pub const CHANGE_SORT_MEMORY_BYTES: usize = 24 << 20;
/// Names of one (fsid, fileid) on one side at most: a file has at most a few thousand hard
/// links; more means a server that does not give objects unique fileids, which no diff by
/// identity can handle.
pub const IDENTITY_NAMES_MAX: usize = 100_000;
/// Pairing leftover names by last component is quadratic; above this many names of one
/// identity they are paired in path order.
const PAIR_BY_NAME_MAX: usize = 64;

#[derive(Debug, Error)]
pub enum DiffError {
    #[error("{}: not a scan: {why}", file.display())]
    NotAScan { file: PathBuf, why: String },
    #[error("{}: {message}", file.display())]
    Read { file: PathBuf, message: String },
    #[error("{0} (--force compares them anyway)")]
    Mismatch(String),
    #[error("sorting: {0}")]
    Sort(String),
    #[error(
        "{side} scan: fileid {fileid} (fsid {fsid}) has more than {IDENTITY_NAMES_MAX} names; the \
         server does not give objects unique fileids, so scans cannot be compared by identity"
    )]
    IdentityTooCommon {
        side: &'static str,
        fsid: u64,
        fileid: u64,
    },
    #[error("writing changes: {0}")]
    Write(#[from] std::io::Error),
}

/// The kinds of change, in the order they sort at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    Deleted,
    Added,
    TypeChanged,
    Modified,
    Renamed,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 5] = [
        ChangeKind::Added,
        ChangeKind::Deleted,
        ChangeKind::Modified,
        ChangeKind::Renamed,
        ChangeKind::TypeChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Modified => "modified",
            ChangeKind::Renamed => "renamed",
            ChangeKind::TypeChanged => "type_changed",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Option<Self> {
        [
            ChangeKind::Deleted,
            ChangeKind::Added,
            ChangeKind::TypeChanged,
            ChangeKind::Modified,
            ChangeKind::Renamed,
        ]
        .get(c as usize)
        .copied()
    }
}

/// The attributes `diff` compares, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields(u16);

impl Fields {
    /// Names, in the order they are listed.
    pub const NAMES: [&'static str; 11] = [
        "size", "used", "mtime", "ctime", "mode", "uid", "gid", "owner", "group", "nlink", "type",
    ];

    /// The attributes that differ between `old` and `new` (atime is not compared: reading a
    /// file changes it). `owner` and `group` are the NFSv4 owner names: over v4 an owner may
    /// change from one name to another while the ids stay `nobody`.
    pub fn between(old: &EntryRecord, new: &EntryRecord) -> Fields {
        let (o, n) = (&old.attrs, &new.attrs);
        let differs = [
            o.size != n.size,
            o.used != n.used,
            o.mtime_ns != n.mtime_ns,
            o.ctime_ns != n.ctime_ns,
            o.mode != n.mode,
            o.uid != n.uid,
            o.gid != n.gid,
            old.owner != new.owner,
            old.group != new.group,
            o.nlink != n.nlink,
            o.kind != n.kind,
        ];
        Fields(
            differs
                .iter()
                .enumerate()
                .filter(|(_, &d)| d)
                .fold(0, |bits, (i, _)| bits | 1 << i),
        )
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| n)
    }
}

/// One change between the scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// The entry's record in the old scan (none for `added`).
    pub old: Option<EntryRecord>,
    /// The entry's record in the new scan (none for `deleted`).
    pub new: Option<EntryRecord>,
}

impl Change {
    /// Where the change is: the new path, or the old one for `deleted`.
    pub fn path(&self) -> &[u8] {
        match (&self.new, &self.old) {
            (Some(n), _) => &n.path,
            (None, Some(o)) => &o.path,
            (None, None) => b"",
        }
    }

    /// The path before a rename.
    pub fn old_path(&self) -> Option<&[u8]> {
        (self.kind == ChangeKind::Renamed)
            .then(|| self.old.as_ref().map(|o| o.path.as_slice()))
            .flatten()
    }

    /// The attributes that changed (none for `added` and `deleted`).
    pub fn fields(&self) -> Fields {
        match (&self.old, &self.new) {
            (Some(o), Some(n)) => Fields::between(o, n),
            _ => Fields::default(),
        }
    }

    fn to_row(&self, key_path: &[u8]) -> KeyedRow {
        let mut key = Vec::with_capacity(key_path.len());
        tree_order_key(key_path, &mut key);
        let mut row = KeyedRow::with_key(&key, 256);
        let out = row.payload_mut();
        out.push(self.kind.code());
        for side in [&self.old, &self.new] {
            match side {
                Some(r) => {
                    out.push(1);
                    encode_record(out, r);
                }
                None => out.push(0),
            }
        }
        row
    }

    fn from_row(row: &KeyedRow) -> Result<Change, DiffError> {
        let bad = || DiffError::Sort("corrupt change row".into());
        let p = row.payload();
        let kind = ChangeKind::from_code(*p.first().ok_or_else(bad)?).ok_or_else(bad)?;
        let mut at = 1;
        let mut side = || -> Result<Option<EntryRecord>, DiffError> {
            let present = *p.get(at).ok_or_else(bad)?;
            at += 1;
            if present == 0 {
                return Ok(None);
            }
            let (rec, used) = decode_entry(&p[at..]).map_err(|e| DiffError::Sort(e.to_string()))?;
            at += used;
            Ok(Some(rec))
        };
        let old = side()?;
        let new = side()?;
        Ok(Change { kind, old, new })
    }
}

/// How to compare.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Compare scans of different URLs or roots.
    pub force: bool,
}

/// What a diff found, besides the changes themselves.
#[derive(Debug, Clone, Default)]
pub struct DiffReport {
    pub old: Option<ScanMeta>,
    pub new: Option<ScanMeta>,
    /// Changes per kind, in the order of [`ChangeKind::ALL`].
    pub counts: [u64; 5],
    /// Things the reader must know to trust the result (interrupted scans, ...).
    pub warnings: Vec<String>,
    /// Renames not reported because their directory's rename explains them.
    pub moved_with_parent: u64,
}

impl DiffReport {
    pub fn count(&self, kind: ChangeKind) -> u64 {
        let i = ChangeKind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        self.counts[i]
    }

    fn add(&mut self, kind: ChangeKind) {
        let i = ChangeKind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        self.counts[i] += 1;
    }
}

/// The URL's host and path, ignoring ports and credentials: scans of one export by different
/// URL spellings compare.
fn url_identity(url: &str) -> String {
    match NfsUrl::parse(url) {
        Ok(u) => {
            let mut path = String::from_utf8_lossy(&u.path).into_owned();
            while path.len() > 1 && path.ends_with('/') {
                path.pop();
            }
            format!("{}:{}", u.host, path)
        }
        Err(_) => url.to_string(),
    }
}

fn scan_warnings(side: &str, m: &ScanMeta, out: &mut Vec<String>) {
    let file = m.file.display();
    if let Some(status) = m.status.as_deref().filter(|s| *s != "completed") {
        out.push(format!(
            "the {side} scan ({file}) is marked {status}, not completed: \"deleted\" may mean \
             \"not scanned\""
        ));
    }
    if let Some(n) = m.errors.filter(|&n| n > 0) {
        out.push(format!(
            "the {side} scan ({file}) could not read {n} paths: what lies below them shows as \
             \"deleted\" or \"added\""
        ));
    }
    if m.truncated {
        out.push(format!(
            "the {side} scan ({file}) ends in the middle of a line, so its writer was stopped: \
             \"deleted\" may mean \"not scanned\""
        ));
    }
    if m.skipped_lines > 0 {
        out.push(format!(
            "the {side} scan ({file}) has {} lines that are not entry records; they were skipped",
            m.skipped_lines
        ));
    }
    if m.root.is_none() {
        out.push(format!(
            "the {side} scan ({file}) has no root record (path \".\"): it may be incomplete"
        ));
    }
}

/// Compares two scans and hands every change to `sink`, depth-first by path.
pub fn diff(
    old: &Path,
    new: &Path,
    opts: &DiffOptions,
    sink: &mut dyn FnMut(&Change) -> Result<(), DiffError>,
) -> Result<DiffReport, DiffError> {
    let old_src = ScanSource::open(old)?;
    let new_src = ScanSource::open(new)?;
    if let (Some(a), Some(b)) = (&old_src.meta.url, &new_src.meta.url) {
        if url_identity(a) != url_identity(b) && !opts.force {
            return Err(DiffError::Mismatch(format!(
                "the scans are of different URLs ({a} and {b}): their paths name different \
                 trees"
            )));
        }
    }
    let (old_sorted, new_sorted) = std::thread::scope(|s| {
        let o = s.spawn(|| old_src.sort_by_identity(IDENTITY_SORT_MEMORY_BYTES));
        let n = new_src.sort_by_identity(IDENTITY_SORT_MEMORY_BYTES);
        let o = o
            .join()
            .unwrap_or_else(|_| Err(DiffError::Sort("reader thread panicked".into())));
        (o, n)
    });
    let (old_meta, old_rows) = old_sorted?;
    let (new_meta, new_rows) = new_sorted?;
    let mut report = DiffReport::default();
    if let (Some(a), Some(b)) = (old_meta.root, new_meta.root) {
        if a != b && !opts.force {
            return Err(DiffError::Mismatch(format!(
                "the scans have different roots (fsid {}, fileid {} and fsid {}, fileid {}): \
                 they are of different directories, or the directory was replaced",
                a.0, a.1, b.0, b.1
            )));
        }
    }
    scan_warnings("old", &old_meta, &mut report.warnings);
    scan_warnings("new", &new_meta, &mut report.warnings);
    if let (Some(a), Some(b)) = (&old_meta.mode, &new_meta.mode) {
        if a != b {
            report.warnings.push(format!(
                "the scans ran in different modes ({a} and {b}): entries one mode lists without \
                 attributes show as changed"
            ));
        }
    }
    let mut changes = ExternalSorter::new(CHANGE_SORT_MEMORY_BYTES);
    let mut renames = ExternalSorter::new(CHANGE_SORT_MEMORY_BYTES);
    join(old_rows, new_rows, &mut changes, &mut renames)?;
    resolve_renames(renames, &mut changes, &mut report)?;
    emit_changes(changes, &mut report, sink)?;
    report.old = Some(old_meta);
    report.new = Some(new_meta);
    Ok(report)
}

fn sort_err(e: std::io::Error) -> DiffError {
    DiffError::Sort(e.to_string())
}

/// Reads the next identity's names from a sorted side.
struct Groups {
    rows: std::iter::Peekable<SortedKeys<KeyedRow>>,
    side: &'static str,
}

impl Groups {
    fn peek_key(&mut self) -> Result<Option<[u8; 16]>, DiffError> {
        match self.rows.peek() {
            None => Ok(None),
            Some(Err(_)) => Err(self
                .rows
                .next()
                .and_then(Result::err)
                .map_or_else(|| DiffError::Sort("sort failed".into()), sort_err)),
            Some(Ok(r)) => {
                Ok(Some(r.key().try_into().map_err(|_| {
                    DiffError::Sort("corrupt identity key".into())
                })?))
            }
        }
    }

    /// The names of identity `key` (the rows are sorted, so they are adjacent).
    fn take(&mut self, key: [u8; 16], out: &mut Vec<EntryRecord>) -> Result<(), DiffError> {
        out.clear();
        while self.peek_key()? == Some(key) {
            let row = self
                .rows
                .next()
                .and_then(Result::ok)
                .ok_or_else(|| DiffError::Sort("sorted rows ended early".into()))?;
            if out.len() == IDENTITY_NAMES_MAX {
                return Err(DiffError::IdentityTooCommon {
                    side: self.side,
                    fsid: u64::from_be_bytes(key[..8].try_into().unwrap_or_default()),
                    fileid: u64::from_be_bytes(key[8..].try_into().unwrap_or_default()),
                });
            }
            out.push(decode_entry(row.payload()).map_err(sort_err)?.0);
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|a, b| a.path == b.path);
        Ok(())
    }
}

/// Whether the new record is another object that got the old one's fileid: an object never
/// changes type, and its change time never goes backwards.
fn is_reused(old: &EntryRecord, new: &EntryRecord) -> bool {
    let (o, n) = (&old.attrs, &new.attrs);
    let known = o.kind != EntryType::Unknown && n.kind != EntryType::Unknown;
    // `--mode names` records carry no attributes to tell by.
    known && (o.kind != n.kind || n.ctime_ns < o.ctime_ns)
}

fn last_component(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

fn push_change(
    sorter: &mut ExternalSorter<KeyedRow>,
    kind: ChangeKind,
    old: Option<&EntryRecord>,
    new: Option<&EntryRecord>,
    key_path: &[u8],
) -> Result<(), DiffError> {
    let c = Change {
        kind,
        old: old.cloned(),
        new: new.cloned(),
    };
    sorter.push(c.to_row(key_path)).map_err(sort_err)
}

/// Step 2: the merge-join by identity.
fn join(
    old_rows: SortedKeys<KeyedRow>,
    new_rows: SortedKeys<KeyedRow>,
    changes: &mut ExternalSorter<KeyedRow>,
    renames: &mut ExternalSorter<KeyedRow>,
) -> Result<(), DiffError> {
    let mut old_g = Groups {
        rows: old_rows.peekable(),
        side: "old",
    };
    let mut new_g = Groups {
        rows: new_rows.peekable(),
        side: "new",
    };
    let (mut olds, mut news) = (Vec::new(), Vec::new());
    loop {
        let (ok, nk) = (old_g.peek_key()?, new_g.peek_key()?);
        let key = match (ok, nk) {
            (None, None) => return Ok(()),
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
        };
        if ok == Some(key) {
            old_g.take(key, &mut olds)?;
        } else {
            olds.clear();
        }
        if nk == Some(key) {
            new_g.take(key, &mut news)?;
        } else {
            news.clear();
        }
        join_identity(&olds, &news, changes, renames)?;
    }
}

/// The names of one identity on both sides (each sorted by path, no duplicates).
fn join_identity(
    olds: &[EntryRecord],
    news: &[EntryRecord],
    changes: &mut ExternalSorter<KeyedRow>,
    renames: &mut ExternalSorter<KeyedRow>,
) -> Result<(), DiffError> {
    if let (Some(o), Some(n)) = (olds.first(), news.first()) {
        if is_reused(o, n) {
            for o in olds {
                push_change(changes, ChangeKind::Deleted, Some(o), None, &o.path)?;
            }
            for n in news {
                push_change(changes, ChangeKind::Added, None, Some(n), &n.path)?;
            }
            return Ok(());
        }
    }
    // Names on both sides: the same entry.
    let mut old_only: Vec<&EntryRecord> = Vec::new();
    let mut new_only: Vec<&EntryRecord> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < olds.len() || j < news.len() {
        match (olds.get(i), news.get(j)) {
            (Some(o), Some(n)) if o.path == n.path => {
                if !Fields::between(o, n).is_empty() {
                    push_change(changes, ChangeKind::Modified, Some(o), Some(n), &n.path)?;
                }
                i += 1;
                j += 1;
            }
            (Some(o), Some(n)) if o.path < n.path => {
                old_only.push(o);
                i += 1;
            }
            (Some(_), Some(n)) | (None, Some(n)) => {
                new_only.push(n);
                j += 1;
            }
            (Some(o), None) => {
                old_only.push(o);
                i += 1;
            }
            (None, None) => break,
        }
    }
    // Names on one side only: renames, paired by last component first (a hard-linked file
    // moved with its directory keeps its names), then in path order.
    let mut pairs: Vec<(&EntryRecord, &EntryRecord)> = Vec::new();
    if old_only.len() * new_only.len() <= PAIR_BY_NAME_MAX * PAIR_BY_NAME_MAX {
        old_only.retain(|o| {
            match new_only
                .iter()
                .position(|n| last_component(&n.path) == last_component(&o.path))
            {
                Some(k) => {
                    pairs.push((o, new_only.remove(k)));
                    false
                }
                None => true,
            }
        });
    }
    let paired = old_only.len().min(new_only.len());
    for (o, n) in old_only.drain(..paired).zip(new_only.drain(..paired)) {
        pairs.push((o, n));
    }
    for (o, n) in pairs {
        push_change(renames, ChangeKind::Renamed, Some(o), Some(n), &o.path)?;
    }
    for o in old_only {
        push_change(changes, ChangeKind::Deleted, Some(o), None, &o.path)?;
    }
    for n in new_only {
        push_change(changes, ChangeKind::Added, None, Some(n), &n.path)?;
    }
    Ok(())
}

fn is_below(ancestor: &[u8], path: &[u8]) -> bool {
    path.len() > ancestor.len() && path.starts_with(ancestor) && path[ancestor.len()] == b'/'
}

fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => b".",
    }
}

/// Step 3: renames in depth-first order of their old paths, with the renamed ancestors of the
/// current one on a stack (its depth bounds the memory).
fn resolve_renames(
    renames: ExternalSorter<KeyedRow>,
    changes: &mut ExternalSorter<KeyedRow>,
    report: &mut DiffReport,
) -> Result<(), DiffError> {
    let mut stack: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for row in renames.finish().map_err(sort_err)? {
        let c = Change::from_row(&row.map_err(sort_err)?)?;
        let (Some(o), Some(n)) = (&c.old, &c.new) else {
            continue;
        };
        while stack.last().is_some_and(|(a, _)| !is_below(a, &o.path)) {
            stack.pop();
        }
        let follows_parent = stack.last().is_some_and(|(po, pn)| {
            po.as_slice() == parent_of(&o.path)
                && parent_of(&n.path) == pn.as_slice()
                && last_component(&n.path) == last_component(&o.path)
        });
        stack.push((o.path.clone(), n.path.clone()));
        if follows_parent {
            report.moved_with_parent += 1;
            if !c.fields().is_empty() {
                push_change(changes, ChangeKind::Modified, Some(o), Some(n), &n.path)?;
            }
        } else {
            push_change(changes, ChangeKind::Renamed, Some(o), Some(n), &n.path)?;
        }
    }
    Ok(())
}

/// Step 4: every change in depth-first path order; a deletion and an addition of different
/// types at one path are one `type_changed`.
fn emit_changes(
    changes: ExternalSorter<KeyedRow>,
    report: &mut DiffReport,
    sink: &mut dyn FnMut(&Change) -> Result<(), DiffError>,
) -> Result<(), DiffError> {
    let mut pending: Option<Change> = None;
    let mut out = |c: &Change, report: &mut DiffReport| {
        report.add(c.kind);
        sink(c)
    };
    for row in changes.finish().map_err(sort_err)? {
        let c = Change::from_row(&row.map_err(sort_err)?)?;
        if let Some(p) = pending.take() {
            let same_path = p.path() == c.path();
            match (p.kind, c.kind, &p.old, &c.new) {
                (ChangeKind::Deleted, ChangeKind::Added, Some(o), Some(n))
                    if same_path && o.attrs.kind != n.attrs.kind =>
                {
                    let merged = Change {
                        kind: ChangeKind::TypeChanged,
                        old: p.old,
                        new: c.new,
                    };
                    out(&merged, report)?;
                    continue;
                }
                _ => out(&p, report)?,
            }
        }
        if c.kind == ChangeKind::Deleted {
            pending = Some(c);
        } else {
            out(&c, report)?;
        }
    }
    if let Some(p) = pending {
        out(&p, report)?;
    }
    Ok(())
}
