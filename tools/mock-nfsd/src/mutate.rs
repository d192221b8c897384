//! A changed variant of a tree (`--mutate SEED:FRACTION`): the same tree a night later, for
//! benchmarking and testing `nfs-walker diff`. Deterministic: every decision is a hash of
//! (seed, node), so the variant is computed, not stored, like the tree itself.
//!
//! A FRACTION of the objects below the root changed, each in one way, a quarter each:
//! - modified: size grows, mtime and ctime move a day later;
//! - deleted: no longer listed, LOOKUP and its handle fail (directories are modified instead:
//!   a deleted subtree is not modelled);
//! - renamed: the name gets a `mv-` prefix (same fileid; a renamed directory moves its subtree);
//! - chmod: the group and other write bits flip, owners root and 1000 swap (uid and gid each:
//!   over NFSv4 with owner names, `root@example.com` and `alice@example.com` while the ids stay
//!   `nobody`), ctime a day later.
//!
//! And each directory gains about FRACTION/4 of its file count as new files (`new-file_N.dat`,
//! fileids above any of the tree). Directory times do not follow their entries' changes.

use crate::rng::hash3;
use crate::tree::NodeId;
use nfs_proto::rpc::nfs3::{Fattr3, NfsTime3};
use std::str::FromStr;

const SALT_MUTATE: u64 = 0x4d55_5441;
/// Slots of added files start here (far above any file count of a directory).
pub const ADDED_SLOT_BASE: u64 = 1 << 48;
/// Fileids of added files start here (above any fileid a tree gives).
const ADDED_FILEID_BASE: u64 = 1 << 60;
const DAY_S: u32 = 86_400;
const RENAME_PREFIX: &[u8] = b"mv-";

/// `--mutate SEED:FRACTION`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mutation {
    pub seed: u64,
    /// Share of objects changed, 0.0 to 1.0.
    pub fraction: f64,
}

impl FromStr for Mutation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--mutate `{s}`: expected SEED:FRACTION, e.g. 1:0.01");
        let (seed, fraction) = s.split_once(':').ok_or_else(bad)?;
        let seed = seed.parse().map_err(|_| bad())?;
        let fraction: f64 = fraction.parse().map_err(|_| bad())?;
        if !(0.0..=1.0).contains(&fraction) {
            return Err(format!("--mutate `{s}`: FRACTION must be within 0..=1"));
        }
        Ok(Mutation { seed, fraction })
    }
}

/// How one object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChange {
    Unchanged,
    Modified,
    Deleted,
    Renamed,
    Chmod,
}

impl Mutation {
    pub fn change(&self, node: NodeId) -> NodeChange {
        if node == NodeId::dir(0) || node.slot >= ADDED_SLOT_BASE {
            return NodeChange::Unchanged;
        }
        let h = hash3(self.seed ^ SALT_MUTATE, node.dir, node.slot);
        if (h >> 11) as f64 / (1u64 << 53) as f64 >= self.fraction {
            return NodeChange::Unchanged;
        }
        match h % 4 {
            0 => NodeChange::Modified,
            1 if node.is_dir() => NodeChange::Modified,
            1 => NodeChange::Deleted,
            2 => NodeChange::Renamed,
            _ => NodeChange::Chmod,
        }
    }

    /// Files added to directory `dir`, which holds `files` non-directories.
    pub fn added(&self, dir: u64, files: u64) -> u64 {
        let want = files as f64 * self.fraction / 4.0;
        let whole = want.floor();
        let h = hash3(self.seed ^ SALT_MUTATE, dir, u64::MAX);
        let extra = ((h >> 11) as f64 / (1u64 << 53) as f64) < want - whole;
        whole as u64 + extra as u64
    }

    /// Renames `name` (keeping its last run of digits, which is how LOOKUP finds it, and its
    /// length within 255 bytes).
    pub fn rename(name: &mut Vec<u8>) {
        if name.len() + RENAME_PREFIX.len() <= 255 {
            name.splice(0..0, RENAME_PREFIX.iter().copied());
        } else {
            name[..RENAME_PREFIX.len()].copy_from_slice(RENAME_PREFIX);
        }
    }

    /// Applies the change of `node` to its attributes.
    pub fn apply(&self, node: NodeId, attrs: &mut Fattr3) {
        let later = |t: NfsTime3| NfsTime3 {
            seconds: t.seconds.saturating_add(DAY_S),
            nseconds: t.nseconds,
        };
        match self.change(node) {
            NodeChange::Unchanged | NodeChange::Deleted => {}
            NodeChange::Modified => {
                attrs.size = attrs.size.saturating_add(1 + node.slot % 4096);
                attrs.used = attrs.size.div_ceil(4096) * 4096;
                attrs.mtime = later(attrs.mtime);
                attrs.ctime = later(attrs.ctime);
            }
            NodeChange::Renamed => {
                attrs.ctime = later(attrs.ctime);
            }
            NodeChange::Chmod => {
                attrs.mode ^= 0o022;
                let swap = |id: u32| match id {
                    0 => 1000,
                    1000 => 0,
                    other => other,
                };
                attrs.uid = swap(attrs.uid);
                attrs.gid = swap(attrs.gid);
                attrs.ctime = later(attrs.ctime);
            }
        }
    }

    /// The name of the `k`-th added file of a directory, at position `pos`.
    pub fn added_name(pos: u64, name: &mut Vec<u8>) {
        name.clear();
        name.extend_from_slice(b"new-file_");
        crate::tree::push_padded(name, pos, 1);
        name.extend_from_slice(b".dat");
    }

    /// The attributes of the `k`-th added file of directory `dir`, created a day after `like`
    /// (the directory's own attributes).
    pub fn added_attrs(&self, dir: u64, k: u64, like: &Fattr3) -> Fattr3 {
        let h = hash3(self.seed ^ SALT_MUTATE, dir, k);
        let size = h % 100_000;
        Fattr3 {
            ftype: nfs_proto::rpc::nfs3::FileType3::Reg,
            mode: 0o644,
            nlink: 1,
            size,
            used: size.div_ceil(4096) * 4096,
            fileid: ADDED_FILEID_BASE | dir << 24 | k,
            atime: NfsTime3 {
                seconds: like.mtime.seconds.saturating_add(DAY_S),
                nseconds: 0,
            },
            mtime: NfsTime3 {
                seconds: like.mtime.seconds.saturating_add(DAY_S),
                nseconds: 0,
            },
            ctime: NfsTime3 {
                seconds: like.mtime.seconds.saturating_add(DAY_S),
                nseconds: 0,
            },
            ..*like
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_reject() {
        let m: Mutation = "7:0.25".parse().unwrap();
        assert_eq!((m.seed, m.fraction), (7, 0.25));
        assert!("7".parse::<Mutation>().is_err());
        assert!("7:1.5".parse::<Mutation>().is_err());
        assert!("x:0.1".parse::<Mutation>().is_err());
    }

    #[test]
    fn about_the_fraction_changes_and_the_root_never() {
        let m = Mutation {
            seed: 3,
            fraction: 0.1,
        };
        let changed = (1..100_000u64)
            .filter(|&s| m.change(NodeId { dir: 5, slot: s }) != NodeChange::Unchanged)
            .count();
        assert!((9_000..11_000).contains(&changed), "{changed}");
        assert_eq!(m.change(NodeId::dir(0)), NodeChange::Unchanged);
        let added: u64 = (0..1000).map(|d| m.added(d, 1000)).sum();
        assert!((24_000..26_000).contains(&added), "{added}");
    }

    #[test]
    fn renamed_names_keep_their_position_and_length_limit() {
        let mut n = b"report_17.txt".to_vec();
        Mutation::rename(&mut n);
        assert_eq!(n, b"mv-report_17.txt");
        let mut long = vec![b'x'; 250];
        long.extend_from_slice(b"_42");
        Mutation::rename(&mut long);
        assert_eq!(long.len(), 253);
        assert!(long.starts_with(b"mv-") && long.ends_with(b"_42"));
    }
}
