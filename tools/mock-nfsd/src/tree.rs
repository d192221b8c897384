//! Synthetic directory trees that are computed, not stored.
//!
//! Every object is addressed by a [`NodeId`]: a directory number, and a slot that is 0 for the
//! directory itself or `1 + i` for its `i`-th non-directory entry. Names, attributes and symlink
//! targets are pure functions of the node, so `flat:10000000` costs a few bytes. Only the
//! `mixed` tree keeps a table, one small row per directory, because a realistic shape needs
//! each directory to know where its subdirectories are.
//!
//! Within a directory, entries have positions `0..dir_len`: subdirectories first, then the
//! other entries. Every generated name contains its position as its last run of ASCII digits
//! (deep trees excepted: one entry per directory), so LOOKUP parses the position out of the
//! name, regenerates the name there and compares: O(1), no index.

use crate::mutate::{Mutation, NodeChange, ADDED_SLOT_BASE};
use crate::rng::{hash3, mix64, Rng};
use nfs_proto::rpc::nfs3::{Fattr3, FileType3, NfsTime3, SpecData3};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// `fsid` of every object the mock serves ("mock" in ASCII).
pub const FSID: u64 = 0x6d6f_636b;
/// Largest number of entries in one directory: cookies carry a 40-bit position.
pub const DIR_ENTRIES_MAX: u64 = (1 << 40) - 4;
/// Largest `deep:D` chain.
pub const DEEP_DIRS_MAX: u64 = 1_000_000;
/// Largest number of directories of `wide:D:F`.
pub const WIDE_DIRS_MAX: u64 = 1 << 32;
/// Largest total object count of `wide:D:F` and `mixed:N`.
pub const WIDE_ENTRIES_MAX: u64 = 1 << 48;
pub const MIXED_ENTRIES_MAX: u64 = 100_000_000;
/// Depth limit of the mixed tree (below nfs-ls's 16-level recursion limit).
pub const MIXED_DEPTH_MAX: u32 = 10;

/// The tree to serve, as given on the command line (`--tree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    /// One directory of `files` regular files.
    Flat { files: u64 },
    /// A chain of `dirs` directories below the root.
    Deep { dirs: u64 },
    /// `dirs` directories of `files_per_dir` regular files each.
    Wide { dirs: u64, files_per_dir: u64 },
    /// A deterministic realistic tree of about `entries` objects.
    Mixed { entries: u64, seed: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TreeSpecError {
    #[error("unknown tree kind `{0}` (expected flat:N, deep:D, wide:D:F or mixed:N[:SEED])")]
    UnknownKind(String),
    #[error("tree `{spec}`: expected {expected}")]
    Arity {
        spec: String,
        expected: &'static str,
    },
    #[error("tree `{spec}`: `{value}` is not a non-negative integer")]
    NotANumber { spec: String, value: String },
    #[error("tree `{spec}`: {what} exceeds the limit of {max}")]
    TooLarge {
        spec: String,
        what: &'static str,
        max: u64,
    },
}

impl FromStr for Tree {
    type Err = TreeSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.split(':');
        let kind = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let num = |s: &str| -> Result<u64, TreeSpecError> {
            let digits = s.replace('_', "");
            digits
                .parse::<u64>()
                .map_err(|_| TreeSpecError::NotANumber {
                    spec: spec.to_string(),
                    value: s.to_string(),
                })
        };
        let arity = |expected: &'static str| TreeSpecError::Arity {
            spec: spec.to_string(),
            expected,
        };
        let limit = |v: u64, what: &'static str, max: u64| {
            if v > max {
                Err(TreeSpecError::TooLarge {
                    spec: spec.to_string(),
                    what,
                    max,
                })
            } else {
                Ok(v)
            }
        };
        match kind {
            "flat" => match args[..] {
                [n] => Ok(Tree::Flat {
                    files: limit(num(n)?, "N", DIR_ENTRIES_MAX)?,
                }),
                _ => Err(arity("flat:N")),
            },
            "deep" => match args[..] {
                [d] => Ok(Tree::Deep {
                    dirs: limit(num(d)?, "D", DEEP_DIRS_MAX)?,
                }),
                _ => Err(arity("deep:D")),
            },
            "wide" => match args[..] {
                [d, f] => {
                    let dirs = limit(num(d)?, "D", WIDE_DIRS_MAX)?;
                    let files_per_dir = limit(num(f)?, "F", DIR_ENTRIES_MAX)?;
                    limit(
                        dirs.saturating_mul(files_per_dir.saturating_add(1)),
                        "D*(F+1)",
                        WIDE_ENTRIES_MAX,
                    )?;
                    Ok(Tree::Wide {
                        dirs,
                        files_per_dir,
                    })
                }
                _ => Err(arity("wide:D:F")),
            },
            "mixed" => match args[..] {
                [n] => Ok(Tree::Mixed {
                    entries: limit(num(n)?, "N", MIXED_ENTRIES_MAX)?,
                    seed: 0,
                }),
                [n, s] => Ok(Tree::Mixed {
                    entries: limit(num(n)?, "N", MIXED_ENTRIES_MAX)?,
                    seed: num(s)?,
                }),
                _ => Err(arity("mixed:N[:SEED]")),
            },
            other => Err(TreeSpecError::UnknownKind(other.to_string())),
        }
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Tree::Flat { files } => write!(f, "flat:{files}"),
            Tree::Deep { dirs } => write!(f, "deep:{dirs}"),
            Tree::Wide {
                dirs,
                files_per_dir,
            } => write!(f, "wide:{dirs}:{files_per_dir}"),
            Tree::Mixed { entries, seed } => write!(f, "mixed:{entries}:{seed}"),
        }
    }
}

/// One object of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// The directory number (for a non-directory: the directory that holds it).
    pub dir: u64,
    /// 0 for the directory itself, `1 + i` for its `i`-th non-directory entry.
    pub slot: u64,
}

impl NodeId {
    pub const fn dir(dir: u64) -> Self {
        NodeId { dir, slot: 0 }
    }

    pub fn is_dir(self) -> bool {
        self.slot == 0
    }
}

/// One row of the mixed tree's directory table.
#[derive(Debug, Clone, Copy)]
struct MixedDir {
    parent: u32,
    first_subdir: u32,
    n_subdirs: u32,
    n_files: u32,
    /// Number of non-directory entries in all directories before this one (for fileids).
    file_base: u64,
}

/// What a non-directory entry of the mixed tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MixedKind {
    Regular(AttrStyle),
    /// The first name of a file with two names (nlink 2).
    LinkedOriginal,
    /// The second name of the file just before it.
    LinkedCopy,
    Symlink(SymlinkStyle),
    Fifo,
    Socket,
    Char,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttrStyle {
    Random,
    Setuid,
    HugeSparse,
    Empty,
    MtimeZero,
    After2038,
    UidNobody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SymlinkStyle {
    /// The name of the first entry of the same directory.
    Sibling,
    /// `../` and a name that may or may not exist there.
    Parent,
    Absolute,
    Dangling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameStyle {
    Plain,
    Spaces,
    Unicode,
    Hidden,
    Long255,
    Latin1,
    Control,
}

/// The first entries of the mixed tree's root: one of each interesting kind, so that even a
/// tiny tree exercises everything.
const SHOWCASE: [(MixedKind, NameStyle); 18] = [
    (MixedKind::Regular(AttrStyle::Setuid), NameStyle::Plain),
    (MixedKind::LinkedOriginal, NameStyle::Spaces),
    (MixedKind::LinkedCopy, NameStyle::Plain),
    (MixedKind::Symlink(SymlinkStyle::Sibling), NameStyle::Plain),
    (
        MixedKind::Symlink(SymlinkStyle::Absolute),
        NameStyle::Unicode,
    ),
    (MixedKind::Symlink(SymlinkStyle::Dangling), NameStyle::Plain),
    (MixedKind::Fifo, NameStyle::Plain),
    (MixedKind::Socket, NameStyle::Hidden),
    (MixedKind::Char, NameStyle::Plain),
    (MixedKind::Block, NameStyle::Plain),
    (MixedKind::Regular(AttrStyle::HugeSparse), NameStyle::Plain),
    (MixedKind::Regular(AttrStyle::Empty), NameStyle::Spaces),
    (MixedKind::Regular(AttrStyle::MtimeZero), NameStyle::Plain),
    (MixedKind::Regular(AttrStyle::After2038), NameStyle::Plain),
    (MixedKind::Regular(AttrStyle::UidNobody), NameStyle::Plain),
    (MixedKind::Regular(AttrStyle::Random), NameStyle::Long255),
    (MixedKind::Regular(AttrStyle::Random), NameStyle::Unicode),
    (MixedKind::Symlink(SymlinkStyle::Parent), NameStyle::Spaces),
];

const WORDS: [&str; 20] = [
    "report", "notes", "data", "backup", "photo", "draft", "invoice", "readme", "config", "build",
    "cache", "log", "summary", "archive", "thesis", "budget", "scan", "export", "image", "video",
];
const UNICODE_WORDS: [&str; 10] = [
    "café",
    "naïve",
    "résumé",
    "Übersicht",
    "データ",
    "文件",
    "видео",
    "παράδειγμα",
    "emoji😀",
    "mañana",
];
/// File extensions; none contains a digit, so the position stays the last digit run.
const EXTENSIONS: [&str; 15] = [
    ".txt", ".pdf", ".jpg", ".docx", ".csv", ".json", ".tar.gz", ".log", ".rs", ".html", ".png",
    ".xlsx", ".md", ".bak", "",
];
const ABSOLUTE_TARGETS: [&str; 4] = [
    "/etc/hosts",
    "/usr/share/doc/README",
    "/export/shared/data",
    "/",
];

/// Salts that keep the independent per-entry hashes apart.
const SALT_SHAPE: u64 = 0x5348_4150;
const SALT_ROLE: u64 = 0x524f_4c45;
const SALT_LINK: u64 = 0x4c49_4e4b;
const SALT_NAME: u64 = 0x4e41_4d45;
const SALT_ATTR: u64 = 0x4154_5452;

thread_local! {
    /// Where a symlink's target is generated to learn its size, without allocating per call.
    static TARGET_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A built tree: answers every question about names, attributes and structure.
#[derive(Debug, Clone)]
pub struct TreeModel {
    tree: Tree,
    /// Identifies this tree in file handles and cookies, so handles of another tree are stale.
    key: u64,
    mixed: Vec<MixedDir>,
    mixed_seed: u64,
    /// `--mutate`: the tree a night later.
    mutation: Option<Mutation>,
}

impl TreeModel {
    pub fn new(tree: Tree) -> Self {
        let (kind, a, b) = match tree {
            Tree::Flat { files } => (1, files, 0),
            Tree::Deep { dirs } => (2, dirs, 0),
            Tree::Wide {
                dirs,
                files_per_dir,
            } => (3, dirs, files_per_dir),
            Tree::Mixed { entries, seed } => (4, entries, seed),
        };
        let (mixed, mixed_seed) = match tree {
            Tree::Mixed { entries, seed } => (build_mixed(entries, seed), seed),
            _ => (Vec::new(), 0),
        };
        TreeModel {
            tree,
            key: hash3(kind, a, b),
            mixed,
            mixed_seed,
            mutation: None,
        }
    }

    /// The changed variant of this tree (`--mutate`), or the tree itself for `None`.
    pub fn mutated(mut self, mutation: Option<Mutation>) -> Self {
        self.mutation = mutation;
        self
    }

    /// Files `--mutate` added to `dir`.
    fn added_count(&self, dir: u64) -> u64 {
        self.mutation
            .map_or(0, |m| m.added(dir, self.file_count(dir)))
    }

    /// Whether `node` is listed: false for what `--mutate` deleted.
    pub fn is_listed(&self, node: NodeId) -> bool {
        self.mutation
            .map_or(true, |m| m.change(node) != NodeChange::Deleted)
    }

    pub fn tree(&self) -> Tree {
        self.tree
    }

    /// A 64-bit value that identifies this tree (handles, cookies, verifiers derive from it).
    pub fn key(&self) -> u64 {
        self.key
    }

    pub fn root(&self) -> NodeId {
        NodeId::dir(0)
    }

    /// Number of directories, root included.
    pub fn dir_count(&self) -> u64 {
        match self.tree {
            Tree::Flat { .. } => 1,
            Tree::Deep { dirs } => dirs + 1,
            Tree::Wide { dirs, .. } => dirs + 1,
            Tree::Mixed { .. } => self.mixed.len() as u64,
        }
    }

    /// Number of objects, root included (hard-linked files count once per name).
    pub fn entry_count(&self) -> u64 {
        match self.tree {
            Tree::Flat { files } => files + 1,
            Tree::Deep { dirs } => dirs + 1,
            Tree::Wide {
                dirs,
                files_per_dir,
            } => 1 + dirs * (files_per_dir + 1),
            Tree::Mixed { .. } => {
                1 + self
                    .mixed
                    .iter()
                    .map(|d| d.n_subdirs as u64 + d.n_files as u64)
                    .sum::<u64>()
            }
        }
    }

    /// Number of subdirectories of `dir` (they come first in its listing).
    fn subdir_count(&self, dir: u64) -> u64 {
        match self.tree {
            Tree::Flat { .. } => 0,
            Tree::Deep { dirs } => (dir < dirs) as u64,
            Tree::Wide { dirs, .. } => {
                if dir == 0 {
                    dirs
                } else {
                    0
                }
            }
            Tree::Mixed { .. } => self.mixed[dir as usize].n_subdirs as u64,
        }
    }

    /// Number of non-directory entries of `dir`.
    fn file_count(&self, dir: u64) -> u64 {
        match self.tree {
            Tree::Flat { files } => files,
            Tree::Deep { .. } => 0,
            Tree::Wide { files_per_dir, .. } => {
                if dir == 0 {
                    0
                } else {
                    files_per_dir
                }
            }
            Tree::Mixed { .. } => self.mixed[dir as usize].n_files as u64,
        }
    }

    /// Entries of `dir`, not counting `.` and `..`. `dir` must be valid.
    pub fn dir_len(&self, dir: u64) -> u64 {
        self.subdir_count(dir) + self.file_count(dir) + self.added_count(dir)
    }

    /// The parent directory of `dir` (the root is its own parent).
    pub fn parent(&self, dir: u64) -> u64 {
        match self.tree {
            Tree::Flat { .. } => 0,
            Tree::Deep { .. } => dir.saturating_sub(1),
            Tree::Wide { .. } => 0,
            Tree::Mixed { .. } => self.mixed[dir as usize].parent as u64,
        }
    }

    /// Whether `node` names an object of this tree.
    pub fn is_valid(&self, node: NodeId) -> bool {
        if node.dir >= self.dir_count() {
            return false;
        }
        if node.slot >= ADDED_SLOT_BASE {
            return node.slot - ADDED_SLOT_BASE < self.added_count(node.dir);
        }
        if !self.is_listed(node) {
            return false;
        }
        if node.slot == 0 {
            return true;
        }
        if node.slot > self.file_count(node.dir) {
            return false;
        }
        // The second name of a hard link is reached through the first one's node.
        !matches!(self.tree, Tree::Mixed { .. })
            || self.mixed_kind(node.dir, node.slot - 1) != MixedKind::LinkedCopy
    }

    /// The object at `pos` in `dir` (`pos < dir_len(dir)`), its name written into `name`.
    pub fn entry(&self, dir: u64, pos: u64, name: &mut Vec<u8>) -> NodeId {
        let base_len = self.subdir_count(dir) + self.file_count(dir);
        if pos >= base_len {
            Mutation::added_name(pos, name);
            return NodeId {
                dir,
                slot: ADDED_SLOT_BASE + (pos - base_len),
            };
        }
        let node = self.base_entry(dir, pos, name);
        if let Some(m) = self.mutation {
            if m.change(node) == NodeChange::Renamed {
                Mutation::rename(name);
            }
        }
        node
    }

    fn base_entry(&self, dir: u64, pos: u64, name: &mut Vec<u8>) -> NodeId {
        name.clear();
        let subdirs = self.subdir_count(dir);
        match self.tree {
            Tree::Flat { .. } => {
                name.push(b'f');
                push_padded(name, pos, 7);
                NodeId { dir, slot: pos + 1 }
            }
            Tree::Deep { .. } => {
                name.push(b'd');
                push_padded(name, dir + 1, 1);
                NodeId::dir(dir + 1)
            }
            Tree::Wide { .. } => {
                if dir == 0 {
                    name.push(b'd');
                    push_padded(name, pos, 5);
                    NodeId::dir(pos + 1)
                } else {
                    name.push(b'f');
                    push_padded(name, pos, 5);
                    NodeId { dir, slot: pos + 1 }
                }
            }
            Tree::Mixed { .. } => {
                let row = self.mixed[dir as usize];
                if pos < subdirs {
                    self.mixed_name(dir, pos, None, name);
                    NodeId::dir(row.first_subdir as u64 + pos)
                } else {
                    let i = pos - subdirs;
                    let kind = self.mixed_kind(dir, i);
                    self.mixed_name(dir, pos, Some(kind), name);
                    if kind == MixedKind::LinkedCopy {
                        NodeId { dir, slot: i }
                    } else {
                        NodeId { dir, slot: i + 1 }
                    }
                }
            }
        }
    }

    /// Finds `name` in `dir` (not `.` or `..`; the caller handles those).
    pub fn lookup(&self, dir: u64, name: &[u8], scratch: &mut Vec<u8>) -> Option<NodeId> {
        let len = self.dir_len(dir);
        let pos = match self.tree {
            Tree::Deep { .. } => 0,
            _ => last_digit_run(name)?,
        };
        if pos >= len {
            return None;
        }
        let node = self.entry(dir, pos, scratch);
        (scratch.as_slice() == name && self.is_listed(node)).then_some(node)
    }

    /// The attributes of `node`, or `None` if it is not an object of this tree.
    pub fn attrs(&self, node: NodeId) -> Option<Fattr3> {
        if !self.is_valid(node) {
            return None;
        }
        if let (Some(m), true) = (self.mutation, node.slot >= ADDED_SLOT_BASE) {
            let dir = self.attrs(NodeId::dir(node.dir))?;
            return Some(m.added_attrs(node.dir, node.slot - ADDED_SLOT_BASE, &dir));
        }
        let mut attrs = match self.tree {
            Tree::Mixed { .. } => self.mixed_attrs(node),
            _ => self.simple_attrs(node),
        };
        if let Some(m) = self.mutation {
            m.apply(node, &mut attrs);
        }
        Some(attrs)
    }

    /// Writes the target of symlink `node` into `out`; false if `node` is not a symlink.
    pub fn readlink(&self, node: NodeId, out: &mut Vec<u8>) -> bool {
        out.clear();
        if !matches!(self.tree, Tree::Mixed { .. })
            || node.slot == 0
            || node.slot >= ADDED_SLOT_BASE
            || !self.is_valid(node)
        {
            return false;
        }
        let i = node.slot - 1;
        let style = match self.mixed_kind(node.dir, i) {
            MixedKind::Symlink(style) => style,
            _ => return false,
        };
        let h = hash3(self.mixed_seed ^ SALT_ATTR, node.dir, node.slot);
        match style {
            SymlinkStyle::Sibling => {
                self.entry(node.dir, 0, out);
            }
            SymlinkStyle::Parent => {
                out.extend_from_slice(b"../");
                out.extend_from_slice(WORDS[(h % WORDS.len() as u64) as usize].as_bytes());
                if h & 0x100 != 0 {
                    out.extend_from_slice(b"/../");
                    out.extend_from_slice(
                        WORDS[((h >> 16) % WORDS.len() as u64) as usize].as_bytes(),
                    );
                }
            }
            SymlinkStyle::Absolute => {
                out.extend_from_slice(
                    ABSOLUTE_TARGETS[(h % ABSOLUTE_TARGETS.len() as u64) as usize].as_bytes(),
                );
            }
            SymlinkStyle::Dangling => {
                out.extend_from_slice(b"no such file/");
                out.extend_from_slice(WORDS[(h % WORDS.len() as u64) as usize].as_bytes());
                out.extend_from_slice(b".missing");
            }
        }
        true
    }

    // ----- flat, deep and wide -----

    fn fileid_of(&self, node: NodeId) -> u64 {
        let dirs = self.dir_count();
        if node.slot == 0 {
            return 1 + node.dir;
        }
        match self.tree {
            Tree::Flat { .. } => 1 + node.slot,
            Tree::Wide { files_per_dir, .. } => {
                1 + dirs + (node.dir - 1) * files_per_dir + (node.slot - 1)
            }
            Tree::Deep { .. } => 1 + node.dir,
            Tree::Mixed { .. } => {
                1 + dirs + self.mixed[node.dir as usize].file_base + node.slot - 1
            }
        }
    }

    fn simple_attrs(&self, node: NodeId) -> Fattr3 {
        let fileid = self.fileid_of(node);
        let h = mix64(fileid ^ self.key);
        let mtime = NfsTime3 {
            seconds: 1_600_000_000 + (h % 100_000_000) as u32,
            nseconds: ((h >> 32) % 1_000_000_000) as u32,
        };
        if node.slot == 0 {
            Fattr3 {
                ftype: FileType3::Dir,
                mode: 0o755,
                nlink: 2 + self.subdir_count(node.dir) as u32,
                uid: 1000,
                gid: 1000,
                size: 4096,
                used: 4096,
                rdev: SpecData3::default(),
                fsid: FSID,
                fileid,
                atime: mtime,
                mtime,
                ctime: mtime,
            }
        } else {
            let size = h % 100_000;
            Fattr3 {
                ftype: FileType3::Reg,
                mode: 0o644,
                nlink: 1,
                uid: 1000,
                gid: 1000,
                size,
                used: round_up_4k(size),
                rdev: SpecData3::default(),
                fsid: FSID,
                fileid,
                atime: mtime,
                mtime,
                ctime: mtime,
            }
        }
    }

    // ----- mixed -----

    fn mixed_kind(&self, dir: u64, i: u64) -> MixedKind {
        let n_files = self.mixed[dir as usize].n_files as u64;
        if dir == 0 && n_files >= SHOWCASE.len() as u64 && i < SHOWCASE.len() as u64 {
            return SHOWCASE[i as usize].0;
        }
        // Hard links come in pairs (2k, 2k+1) so that both names can be found from either.
        let k = i / 2;
        if 2 * k + 1 < n_files
            && !(dir == 0 && 2 * k < SHOWCASE.len() as u64)
            && hash3(self.mixed_seed ^ SALT_LINK, dir, k) % 40 == 0
        {
            return if i % 2 == 0 {
                MixedKind::LinkedOriginal
            } else {
                MixedKind::LinkedCopy
            };
        }
        match hash3(self.mixed_seed ^ SALT_ROLE, dir, i) % 1000 {
            0..=4 => MixedKind::Symlink(SymlinkStyle::Sibling),
            5..=9 => MixedKind::Symlink(SymlinkStyle::Parent),
            10..=14 => MixedKind::Symlink(SymlinkStyle::Absolute),
            15..=19 => MixedKind::Symlink(SymlinkStyle::Dangling),
            20..=22 => MixedKind::Fifo,
            23..=25 => MixedKind::Socket,
            26..=28 => MixedKind::Char,
            29..=31 => MixedKind::Block,
            _ => MixedKind::Regular(AttrStyle::Random),
        }
    }

    fn mixed_name(&self, dir: u64, pos: u64, file: Option<MixedKind>, out: &mut Vec<u8>) {
        let h = hash3(self.mixed_seed ^ SALT_NAME, dir, pos);
        let subdirs = self.mixed[dir as usize].n_subdirs as u64;
        let showcase = dir == 0
            && pos >= subdirs
            && pos - subdirs < SHOWCASE.len() as u64
            && self.mixed[0].n_files as u64 >= SHOWCASE.len() as u64;
        let style = if showcase {
            SHOWCASE[(pos - subdirs) as usize].1
        } else {
            match (h >> 8) % 1000 {
                0..=599 => NameStyle::Plain,
                600..=799 => NameStyle::Spaces,
                800..=899 => NameStyle::Unicode,
                900..=949 => NameStyle::Hidden,
                950..=979 => NameStyle::Long255,
                980..=989 => NameStyle::Latin1,
                _ => NameStyle::Control,
            }
        };
        let word = WORDS[(h % WORDS.len() as u64) as usize].as_bytes();
        let word2 = WORDS[((h >> 20) % WORDS.len() as u64) as usize].as_bytes();
        let ext: &[u8] = match file {
            None => b"",
            Some(MixedKind::Symlink(_)) => b".lnk",
            Some(_) => EXTENSIONS[((h >> 32) % EXTENSIONS.len() as u64) as usize].as_bytes(),
        };
        match style {
            NameStyle::Plain => {
                out.extend_from_slice(word);
                out.push(b'_');
                push_padded(out, pos, 1);
            }
            NameStyle::Spaces => {
                out.push(word[0].to_ascii_uppercase());
                out.extend_from_slice(&word[1..]);
                out.push(b' ');
                out.extend_from_slice(word2);
                out.push(b' ');
                push_padded(out, pos, 1);
            }
            NameStyle::Unicode => {
                out.extend_from_slice(
                    UNICODE_WORDS[((h >> 40) % UNICODE_WORDS.len() as u64) as usize].as_bytes(),
                );
                out.push(b'-');
                push_padded(out, pos, 1);
            }
            NameStyle::Hidden => {
                out.push(b'.');
                out.extend_from_slice(word);
                push_padded(out, pos, 1);
            }
            NameStyle::Long255 => {
                out.extend_from_slice(word);
                out.push(b'_');
                push_padded(out, pos, 1);
                out.push(b'_');
                let fill = 255usize.saturating_sub(out.len() + ext.len());
                out.resize(out.len() + fill, b'x');
            }
            NameStyle::Latin1 => {
                // "été" in ISO-8859-1: not valid UTF-8, as old file servers have plenty of.
                out.extend_from_slice(word);
                out.extend_from_slice(b"_\xe9t\xe9_");
                push_padded(out, pos, 1);
            }
            NameStyle::Control => {
                out.extend_from_slice(word);
                out.extend_from_slice(match h % 3 {
                    0 => &b"\nline"[..],
                    1 => b"\ttab",
                    _ => b" \"quoted\\",
                });
                out.push(b' ');
                push_padded(out, pos, 1);
            }
        }
        out.extend_from_slice(ext);
    }

    fn mixed_attrs(&self, node: NodeId) -> Fattr3 {
        let row = self.mixed[node.dir as usize];
        let fileid = self.fileid_of(node);
        let mut rng = Rng::new(hash3(self.mixed_seed ^ SALT_ATTR, node.dir, node.slot));
        let owner = |rng: &mut Rng| match rng.range(0, 999) {
            0..=599 => 1000,
            600..=749 => 0,
            750..=769 => 4_294_967_294,
            770..=789 => 65534,
            _ => 1001 + rng.range(0, 99) as u32,
        };
        let mut uid = owner(&mut rng);
        let mut gid = owner(&mut rng);
        let mtime_s = match rng.range(0, 999) {
            0..=4 => 0,
            5..=9 => rng.range(1 << 31, u32::MAX as u64),
            _ => rng.range(1_262_304_000, 1_735_689_600),
        } as u32;
        let mut mtime = NfsTime3 {
            seconds: mtime_s,
            nseconds: rng.range(0, 999_999_999) as u32,
        };
        let mut atime = NfsTime3 {
            seconds: mtime_s.saturating_add(rng.range(0, 10_000_000) as u32),
            nseconds: rng.range(0, 999_999_999) as u32,
        };
        let mut ctime = NfsTime3 {
            seconds: mtime_s.saturating_add(rng.range(0, 1_000_000) as u32),
            nseconds: mtime.nseconds,
        };
        let mut attrs = Fattr3 {
            ftype: FileType3::Dir,
            mode: 0o755,
            nlink: 1,
            uid,
            gid,
            size: 4096,
            used: 4096,
            rdev: SpecData3::default(),
            fsid: FSID,
            fileid,
            atime,
            mtime,
            ctime,
        };
        if node.slot == 0 {
            attrs.nlink = 2 + row.n_subdirs;
            attrs.mode = if node.dir == 0 {
                0o755
            } else {
                match rng.range(0, 999) {
                    0..=19 => 0o1777,
                    20..=39 => 0o700,
                    40..=49 => 0o2775,
                    50..=99 => 0o775,
                    _ => 0o755,
                }
            };
            return attrs;
        }
        let kind = self.mixed_kind(node.dir, node.slot - 1);
        let style = match kind {
            MixedKind::Regular(style) => style,
            _ => AttrStyle::Random,
        };
        match style {
            AttrStyle::MtimeZero => {
                mtime = NfsTime3::default();
                atime = NfsTime3::default();
                ctime = NfsTime3::default();
            }
            AttrStyle::After2038 => {
                mtime.seconds = 4_102_444_800; // 2100-01-01
                atime.seconds = mtime.seconds;
                ctime.seconds = mtime.seconds + 1;
            }
            AttrStyle::UidNobody => {
                uid = 4_294_967_294;
                gid = 4_294_967_294;
            }
            _ => {}
        }
        attrs.uid = uid;
        attrs.gid = gid;
        attrs.atime = atime;
        attrs.mtime = mtime;
        attrs.ctime = ctime;
        match kind {
            MixedKind::Regular(_) | MixedKind::LinkedOriginal | MixedKind::LinkedCopy => {
                attrs.ftype = FileType3::Reg;
                attrs.nlink = if kind == MixedKind::LinkedOriginal {
                    2
                } else {
                    1
                };
                let (size, used) = match style {
                    AttrStyle::Empty => (0, 0),
                    AttrStyle::HugeSparse => (rng.range(1 << 40, 1 << 50), 8192),
                    _ => match rng.range(0, 999) {
                        0..=79 => (0, 0),
                        80..=699 => sized(rng.range(1, 16 << 10)),
                        700..=899 => sized(rng.range(16 << 10, 1 << 20)),
                        900..=979 => sized(rng.range(1 << 20, 100 << 20)),
                        980..=994 => sized(rng.range(100 << 20, 10 << 30)),
                        _ => {
                            let size = rng.range(1 << 40, 1 << 50);
                            (size, round_up_4k(rng.range(0, 1 << 20)))
                        }
                    },
                };
                attrs.size = size;
                attrs.used = used;
                attrs.mode = match style {
                    AttrStyle::Setuid => 0o4755,
                    _ => match rng.range(0, 999) {
                        0..=549 => 0o644,
                        550..=699 => 0o664,
                        700..=799 => 0o600,
                        800..=899 => 0o755,
                        900..=949 => 0o444,
                        950..=959 => 0o4755,
                        960..=969 => 0o2755,
                        970..=974 => 0o6755,
                        975..=979 => 0o000,
                        980..=989 => 0o640,
                        _ => 0o777,
                    },
                };
            }
            MixedKind::Symlink(_) => {
                attrs.ftype = FileType3::Lnk;
                attrs.mode = 0o777;
                attrs.size = TARGET_SCRATCH.with(|t| {
                    let mut t = t.borrow_mut();
                    self.readlink(node, &mut t);
                    t.len() as u64
                });
                attrs.used = 0;
            }
            MixedKind::Fifo => {
                attrs.ftype = FileType3::Fifo;
                attrs.mode = 0o644;
                attrs.size = 0;
                attrs.used = 0;
            }
            MixedKind::Socket => {
                attrs.ftype = FileType3::Sock;
                attrs.mode = 0o755;
                attrs.size = 0;
                attrs.used = 0;
            }
            MixedKind::Char | MixedKind::Block => {
                let block = kind == MixedKind::Block;
                attrs.ftype = if block {
                    FileType3::Blk
                } else {
                    FileType3::Chr
                };
                attrs.mode = 0o660;
                attrs.gid = 6;
                attrs.size = 0;
                attrs.used = 0;
                attrs.rdev = if block {
                    SpecData3 {
                        major: 8,
                        minor: rng.range(0, 15) as u32,
                    }
                } else {
                    SpecData3 {
                        major: [1, 4, 136][rng.range(0, 2) as usize],
                        minor: rng.range(0, 63) as u32,
                    }
                };
            }
        }
        attrs
    }
}

fn sized(size: u64) -> (u64, u64) {
    (size, round_up_4k(size))
}

fn round_up_4k(size: u64) -> u64 {
    size.div_ceil(4096) * 4096
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
pub fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    for _ in len..width {
        out.push(b'0');
    }
    out.extend_from_slice(&digits[i..]);
}

/// The value of the last run of ASCII digits in `name` (the entry's position by construction).
fn last_digit_run(name: &[u8]) -> Option<u64> {
    let end = name.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = name[..end]
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |p| p + 1);
    let mut v: u64 = 0;
    for &b in &name[start..end] {
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

/// Builds the mixed tree's directory table, with exactly `entries` objects (root included).
///
/// Directories first, one per 25 entries: the number of directories at each depth follows a
/// binomial bell (a few shallow ones, most in the middle, fewer at the bottom), and each level
/// is shared among the directories of the level above by heavy-tailed weights, so some
/// directories have many subdirectories and many have none. Laying levels out in order keeps
/// each directory's subdirectories contiguous. Then the files: each directory draws a
/// heavy-tailed weight and the remaining budget is shared in proportion, so fan-out ranges from
/// empty to thousands. Every draw is a hash of (seed, directory number).
fn build_mixed(entries: u64, seed: u64) -> Vec<MixedDir> {
    let entries = entries.max(1);
    let target_dirs = entries.div_ceil(25).max(1);
    let below_root = target_dirs - 1;
    // ceil(log2(target_dirs)) levels make every level of the bell at least one directory.
    let levels = if below_root == 0 {
        0
    } else {
        (64 - below_root.leading_zeros()).min(MIXED_DEPTH_MAX) as usize
    };
    let mut level_sizes = vec![0u64; levels];
    if levels > 0 {
        let bell: Vec<f64> = (0..levels)
            .map(|k| binomial(levels as u64 - 1, k as u64))
            .collect();
        let bell_sum: f64 = bell.iter().sum();
        for (size, w) in level_sizes.iter_mut().zip(&bell) {
            *size = (below_root as f64 * w / bell_sum).floor() as u64;
        }
        let given: u64 = level_sizes.iter().sum();
        level_sizes[levels / 2] += below_root - given;
    }
    let row = |parent: usize| MixedDir {
        parent: parent as u32,
        first_subdir: 0,
        n_subdirs: 0,
        n_files: 0,
        file_base: 0,
    };
    let mut dirs = vec![row(0)];
    let mut empty = vec![false];
    let mut level_start = 0usize;
    for &size in &level_sizes {
        let level_end = dirs.len();
        let parents = level_start..level_end;
        let mut weights: Vec<u64> = parents
            .clone()
            .map(|d| {
                let mut rng = Rng::new(hash3(seed ^ SALT_SHAPE, d as u64, 0));
                if d == 2 || rng.chance(0.35) {
                    0
                } else {
                    (rng.next_f64() * 50f64.ln()).exp() as u64 * 16 + rng.range(0, 15)
                }
            })
            .collect();
        if weights.iter().all(|&w| w == 0) {
            weights[0] = 1;
        }
        let total: u64 = weights.iter().sum();
        let mut counts: Vec<u64> = weights
            .iter()
            .map(|&w| (size as u128 * w as u128 / total as u128) as u64)
            .collect();
        // Hand the rounding remainder out one by one, from a seeded starting point.
        let mut left = size - counts.iter().sum::<u64>();
        let n = counts.len();
        let mut j = (hash3(seed ^ SALT_SHAPE, level_start as u64, 2) % n as u64) as usize;
        while left > 0 {
            if weights[j] > 0 {
                counts[j] += 1;
                left -= 1;
            }
            j = (j + 1) % n;
        }
        for (d, &count) in parents.zip(&counts) {
            dirs[d].first_subdir = dirs.len() as u32;
            dirs[d].n_subdirs = count as u32;
            for _ in 0..count {
                dirs.push(row(d));
                empty.push(false);
            }
        }
        level_start = level_end;
    }
    // Directory 2 (if it is a leaf) and a few other leaves stay empty.
    for d in 1..dirs.len() {
        let leaf = dirs[d].n_subdirs == 0;
        empty[d] = leaf && (d == 2 || hash3(seed ^ SALT_SHAPE, d as u64, 3) % 100 < 3);
    }
    // Share the files out by weight; the root first takes enough for its showcase.
    let mut files = entries - dirs.len() as u64;
    let root_min = files.min(SHOWCASE.len() as u64 + 6);
    files -= root_min;
    let weights: Vec<u64> = (0..dirs.len())
        .map(|d| {
            let mut rng = Rng::new(hash3(seed ^ SALT_SHAPE, d as u64, 1));
            if empty[d] {
                return 0;
            }
            match rng.range(0, 999) {
                0..=59 => 0,
                60..=994 => (rng.next_f64() * 200f64.ln()).exp() as u64,
                _ => rng.range(2000, 20_000),
            }
        })
        .collect();
    let total_weight: u64 = weights.iter().sum();
    let mut given = 0u64;
    if total_weight > 0 {
        for (row, &w) in dirs.iter_mut().zip(&weights) {
            let share = (files as u128 * w as u128 / total_weight as u128) as u64;
            row.n_files = share as u32; // at most MIXED_ENTRIES_MAX
            given += share;
        }
        // The rounding remainder (less than one per directory), one by one.
        let n = dirs.len();
        let mut j = (hash3(seed ^ SALT_SHAPE, 0, 4) % n as u64) as usize;
        while given < files {
            if weights[j] > 0 {
                dirs[j].n_files += 1;
                given += 1;
            }
            j = (j + 1) % n;
        }
    }
    dirs[0].n_files += (root_min + files - given) as u32;
    let mut file_base = 0u64;
    for row in dirs.iter_mut() {
        row.file_base = file_base;
        file_base += row.n_files as u64;
    }
    dirs.shrink_to_fit();
    dirs
}

/// `n` choose `k`, as a float (n is at most MIXED_DEPTH_MAX).
fn binomial(n: u64, k: u64) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn specs_parse_and_reject() {
        assert_eq!("flat:10".parse(), Ok(Tree::Flat { files: 10 }));
        assert_eq!("deep:3".parse(), Ok(Tree::Deep { dirs: 3 }));
        assert_eq!(
            "wide:2:5".parse(),
            Ok(Tree::Wide {
                dirs: 2,
                files_per_dir: 5
            })
        );
        assert_eq!(
            "mixed:1_000:7".parse(),
            Ok(Tree::Mixed {
                entries: 1000,
                seed: 7
            })
        );
        assert!("flat".parse::<Tree>().is_err());
        assert!("flat:x".parse::<Tree>().is_err());
        assert!("flat:-1".parse::<Tree>().is_err());
        assert!("round:3".parse::<Tree>().is_err());
        assert!("wide:4294967296:65536".parse::<Tree>().is_err());
        assert!("mixed:1000000000".parse::<Tree>().is_err());
    }

    fn walk(model: &TreeModel) -> Vec<(u64, Vec<u8>, NodeId)> {
        let mut out = Vec::new();
        let mut stack = vec![0u64];
        let mut name = Vec::new();
        while let Some(dir) = stack.pop() {
            for pos in 0..model.dir_len(dir) {
                let node = model.entry(dir, pos, &mut name);
                if node.is_dir() {
                    stack.push(node.dir);
                }
                out.push((dir, name.clone(), node));
            }
        }
        out
    }

    #[test]
    fn every_name_is_found_by_lookup_and_every_node_has_attrs() {
        let mut scratch = Vec::new();
        for spec in [
            "flat:1000",
            "deep:20",
            "wide:7:30",
            "mixed:5000:3",
            "mixed:300",
        ] {
            let model = TreeModel::new(spec.parse().unwrap());
            let entries = walk(&model);
            assert_eq!(entries.len() as u64 + 1, model.entry_count(), "{spec}");
            for (dir, name, node) in &entries {
                assert_eq!(
                    model.lookup(*dir, name, &mut scratch),
                    Some(*node),
                    "{spec}: {:?}",
                    String::from_utf8_lossy(name)
                );
                let attrs = model.attrs(*node).unwrap();
                assert_eq!(attrs.ftype == FileType3::Dir, node.is_dir());
                assert!(name.len() <= 255 && !name.is_empty());
                assert!(!name.contains(&b'/') && !name.contains(&0));
            }
            assert_eq!(model.lookup(0, b"nope", &mut scratch), None);
            assert_eq!(
                model.lookup(0, b"f99999999999999999999", &mut scratch),
                None
            );
        }
    }

    #[test]
    fn names_are_unique_per_directory() {
        let model = TreeModel::new("mixed:20000:1".parse().unwrap());
        let mut seen = HashSet::new();
        for (dir, name, _) in walk(&model) {
            assert!(seen.insert((dir, name)));
        }
    }

    #[test]
    fn mixed_tree_has_the_promised_variety() {
        let model = TreeModel::new("mixed:20000".parse().unwrap());
        let entries = walk(&model);
        let total = entries.len() as u64 + 1;
        assert!(
            (19_000..=21_000).contains(&total),
            "about N entries: {total}"
        );
        let attrs: Vec<Fattr3> = entries.iter().map(|e| model.attrs(e.2).unwrap()).collect();
        for t in FileType3::ALL {
            assert!(attrs.iter().any(|a| a.ftype == t), "{t:?}");
        }
        assert!(attrs.iter().any(|a| a.mode & 0o4000 != 0));
        assert!(attrs.iter().any(|a| a.mode & 0o1000 != 0));
        assert!(attrs.iter().any(|a| a.uid == 0));
        assert!(attrs.iter().any(|a| a.uid == 4_294_967_294));
        assert!(attrs.iter().any(|a| a.mtime.seconds == 0));
        assert!(attrs.iter().any(|a| a.mtime.seconds > i32::MAX as u32));
        assert!(attrs
            .iter()
            .any(|a| a.size > 1 << 40 && a.used < a.size / 1000));
        assert!(attrs
            .iter()
            .any(|a| a.nlink == 2 && a.ftype == FileType3::Reg));
        let names: Vec<&[u8]> = entries.iter().map(|e| e.1.as_slice()).collect();
        assert!(names.iter().any(|n| n.contains(&b' ')));
        assert!(names.iter().any(|n| n.len() == 255));
        assert!(names.iter().any(|n| std::str::from_utf8(n).is_err()));
        assert!(names
            .iter()
            .any(|n| n.iter().any(|&b| b >= 0x80) && std::str::from_utf8(n).is_ok()));
        // hard links: two names, one fileid
        let mut by_fileid = std::collections::HashMap::<u64, u32>::new();
        for a in &attrs {
            *by_fileid.entry(a.fileid).or_default() += 1;
        }
        for a in &attrs {
            if a.ftype == FileType3::Reg {
                assert_eq!(by_fileid[&a.fileid], a.nlink, "nlink matches names");
            }
        }
        // empty directories exist
        assert!((0..model.dir_count()).any(|d| model.dir_len(d) == 0));
        // depth varies
        let depth_of = |mut d: u64| {
            let mut n = 0;
            while d != 0 {
                d = model.parent(d);
                n += 1;
            }
            n
        };
        let depths: HashSet<u32> = (0..model.dir_count()).map(depth_of).collect();
        assert!(depths.len() >= 5, "{depths:?}");
        assert!(depths.iter().all(|&d| d <= MIXED_DEPTH_MAX));
    }

    #[test]
    fn symlinks_have_targets_of_their_size() {
        let model = TreeModel::new("mixed:3000:9".parse().unwrap());
        let mut target = Vec::new();
        let mut kinds = HashSet::new();
        for (_, _, node) in walk(&model) {
            let a = model.attrs(node).unwrap();
            let is_link = model.readlink(node, &mut target);
            assert_eq!(is_link, a.ftype == FileType3::Lnk);
            if is_link {
                assert_eq!(a.size, target.len() as u64);
                kinds.insert(target.first() == Some(&b'/'));
            }
        }
        assert_eq!(kinds.len(), 2, "relative and absolute targets");
    }

    #[test]
    fn flat_tree_is_computed_not_stored() {
        let model = TreeModel::new("flat:10000000000".parse().unwrap());
        let mut name = Vec::new();
        let node = model.entry(0, 9_999_999_999, &mut name);
        assert_eq!(name, b"f9999999999");
        assert_eq!(model.attrs(node).unwrap().fileid, 10_000_000_001);
        assert!(model
            .attrs(NodeId {
                dir: 0,
                slot: 10_000_000_001
            })
            .is_none());
        assert!(model.attrs(NodeId::dir(1)).is_none());
    }

    #[test]
    fn padded_numbers() {
        let mut v = Vec::new();
        push_padded(&mut v, 42, 5);
        push_padded(&mut v, 0, 1);
        push_padded(&mut v, u64::MAX, 3);
        assert_eq!(v, b"00042018446744073709551615");
        assert_eq!(last_digit_run(b"a1b23.txt"), Some(23));
        assert_eq!(last_digit_run(b"none"), None);
    }
}
