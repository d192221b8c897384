//! Reports over a content scan's records (`stats --duplicates`, `--file-types`,
//! `--hardlinks`): one pass over the entries, grouped in memory.
//!
//! Memory: duplicates keep one group per distinct (size, checksum) of the files at or above
//! the minimum size (about 100 bytes each, plus up to [`GROUP_PATHS_MAX`] sample paths), hard
//! links one group per inode with a link count above 1; file types one row per MIME type.
//! Paths that are one inode (hard links) count once among duplicates: they take no space twice.

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// Paths listed per group (the count is always exact).
pub const GROUP_PATHS_MAX: usize = 8;

/// Which reports to build.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContentReportsWanted {
    pub duplicates: bool,
    /// Files smaller than this are not considered duplicates.
    pub min_size: u64,
    pub file_types: bool,
    pub hardlinks: bool,
    /// Groups per report.
    pub top: usize,
}

/// Paths sharing a key: their count, bytes per path, and a few of them.
#[derive(Debug, Clone, Default)]
pub struct PathGroup {
    pub count: u64,
    pub size: u64,
    pub paths: Vec<String>,
}

impl PathGroup {
    fn add(&mut self, size: u64, path: &str) {
        self.count += 1;
        self.size = size;
        if self.paths.len() < GROUP_PATHS_MAX {
            self.paths.push(path.to_string());
        }
    }

    /// Bytes that would be saved by keeping one copy.
    pub fn redundant_bytes(&self) -> u64 {
        self.count.saturating_sub(1) * self.size
    }
}

/// The reports, fed one record at a time.
#[derive(Debug, Default)]
pub struct ContentReports {
    wanted: ContentReportsWanted,
    duplicates: HashMap<(u64, String), PathGroup>,
    types: HashMap<String, (u64, u64)>,
    links: HashMap<(u64, u64), PathGroup>,
    /// Inodes with several links seen so far.
    linked_inodes: HashSet<(u64, u64)>,
    /// Regular files without a checksum (not read, too large, errors).
    pub files_without_checksum: u64,
    pub files: u64,
}

impl ContentReports {
    pub fn new(wanted: ContentReportsWanted) -> Self {
        ContentReports {
            wanted,
            ..Default::default()
        }
    }

    /// One entry record (as NDJSON writes it).
    pub fn add(&mut self, v: &Value) {
        if v["type"] != "file" {
            return;
        }
        self.files += 1;
        let size = v["size"].as_u64().unwrap_or(0);
        let path = v["path"].as_str().unwrap_or("");
        let inode = (
            v["fsid"].as_u64().unwrap_or(0),
            v["fileid"].as_u64().unwrap_or(0),
        );
        let nlink = v["nlink"].as_u64().unwrap_or(1);
        // A second path to an inode already counted is a hard link, not a copy.
        let another_link = nlink > 1 && !self.linked_inodes.insert(inode);
        if self.wanted.duplicates && !another_link {
            match v["checksum"].as_str() {
                Some(sum) if size >= self.wanted.min_size => self
                    .duplicates
                    .entry((size, sum.to_string()))
                    .or_default()
                    .add(size, path),
                Some(_) => {}
                None => self.files_without_checksum += 1,
            }
        }
        if self.wanted.file_types {
            let mime = v["mime"].as_str().unwrap_or("unknown").to_string();
            let row = self.types.entry(mime).or_default();
            row.0 += 1;
            row.1 += size;
        }
        if self.wanted.hardlinks && nlink > 1 {
            self.links.entry(inode).or_default().add(size, path);
        }
    }

    /// Groups of identical files (same size and checksum), most redundant bytes first.
    pub fn duplicate_groups(&self) -> Vec<&PathGroup> {
        let mut g: Vec<&PathGroup> = self.duplicates.values().filter(|g| g.count > 1).collect();
        g.sort_by(|a, b| {
            b.redundant_bytes()
                .cmp(&a.redundant_bytes())
                .then_with(|| a.paths.cmp(&b.paths))
        });
        g
    }

    /// Entries and bytes per MIME type, most bytes first.
    pub fn type_rows(&self) -> Vec<(&str, u64, u64)> {
        let mut rows: Vec<_> = self
            .types
            .iter()
            .map(|(m, &(n, b))| (m.as_str(), n, b))
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        rows
    }

    /// Inodes reached by more than one path in the scan, most paths first.
    pub fn hardlink_groups(&self) -> Vec<&PathGroup> {
        let mut g: Vec<&PathGroup> = self.links.values().filter(|g| g.count > 1).collect();
        g.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.paths.cmp(&b.paths)));
        g
    }

    pub fn to_json(&self) -> Value {
        let top = self.wanted.top;
        let group = |g: &PathGroup| json!({"count": g.count, "size": g.size, "paths": g.paths});
        let mut out = serde_json::Map::new();
        if self.wanted.duplicates {
            let groups = self.duplicate_groups();
            out.insert(
                "duplicates".into(),
                json!({
                    "min_size": self.wanted.min_size,
                    "groups": groups.len(),
                    "files": groups.iter().map(|g| g.count).sum::<u64>(),
                    "redundant_bytes": groups.iter().map(|g| g.redundant_bytes()).sum::<u64>(),
                    "files_without_checksum": self.files_without_checksum,
                    "top": groups.iter().take(top).map(|g| group(g)).collect::<Vec<_>>(),
                }),
            );
        }
        if self.wanted.file_types {
            out.insert(
                "file_types".into(),
                self.type_rows()
                    .iter()
                    .map(|(m, n, b)| json!({"mime": m, "files": n, "bytes": b}))
                    .collect(),
            );
        }
        if self.wanted.hardlinks {
            let groups = self.hardlink_groups();
            out.insert(
                "hardlinks".into(),
                json!({
                    "groups": groups.len(),
                    "top": groups.iter().take(top).map(|g| group(g)).collect::<Vec<_>>(),
                }),
            );
        }
        Value::Object(out)
    }

    pub fn render_text(&self) -> String {
        let top = self.wanted.top;
        let mut s = String::new();
        if self.wanted.duplicates {
            let groups = self.duplicate_groups();
            s += &format!(
                "duplicates (same size and checksum, files of at least {} bytes): {} groups, {} files, {} bytes could be saved\n",
                self.wanted.min_size,
                groups.len(),
                groups.iter().map(|g| g.count).sum::<u64>(),
                groups.iter().map(|g| g.redundant_bytes()).sum::<u64>(),
            );
            if self.files_without_checksum > 0 {
                s += &format!(
                    "  ({} files have no checksum and are not compared)\n",
                    self.files_without_checksum
                );
            }
            for g in groups.iter().take(top) {
                s += &format!(
                    "  {} copies of {} bytes ({} redundant)\n",
                    g.count,
                    g.size,
                    g.redundant_bytes()
                );
                for p in &g.paths {
                    s += &format!("    {p}\n");
                }
            }
        }
        if self.wanted.file_types {
            s += "file types             files            bytes\n";
            for (m, n, b) in self.type_rows() {
                s += &format!("  {m:<24} {n:>10} {b:>16}\n");
            }
        }
        if self.wanted.hardlinks {
            let groups = self.hardlink_groups();
            s += &format!(
                "hard links: {} inodes reached by several paths\n",
                groups.len()
            );
            for g in groups.iter().take(top) {
                s += &format!("  {} paths, {} bytes\n", g.count, g.size);
                for p in &g.paths {
                    s += &format!("    {p}\n");
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(
        path: &str,
        size: u64,
        sum: Option<&str>,
        mime: Option<&str>,
        id: u64,
        nlink: u64,
    ) -> Value {
        json!({"path": path, "type": "file", "size": size, "checksum": sum, "mime": mime,
               "fileid": id, "fsid": 1, "nlink": nlink})
    }

    #[test]
    fn groups_duplicates_types_and_links() {
        let mut r = ContentReports::new(ContentReportsWanted {
            duplicates: true,
            min_size: 10,
            file_types: true,
            hardlinks: true,
            top: 10,
        });
        for v in [
            file("a", 100, Some("x:1"), Some("text/plain"), 1, 1),
            file("b", 100, Some("x:1"), Some("text/plain"), 2, 1),
            file("c", 100, Some("x:1"), None, 3, 1),
            file("d", 100, Some("x:2"), None, 4, 1), // same size, other contents
            file("e", 5, Some("x:3"), None, 5, 1),   // below --min-size
            file("f", 5, Some("x:3"), None, 6, 1),
            file("g", 7, Some("x:4"), None, 7, 2),
            file("h", 7, Some("x:4"), None, 7, 2), // hard link of g: not a copy
            file("i", 9, None, None, 8, 1),
            json!({"path": "dir", "type": "dir", "size": 4096}),
        ] {
            r.add(&v);
        }
        let d = r.duplicate_groups();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].count, d[0].redundant_bytes()), (3, 200));
        assert_eq!(d[0].paths, ["a", "b", "c"]);
        assert_eq!(r.files_without_checksum, 1);
        assert_eq!(
            r.type_rows(),
            [
                ("unknown", 7, 100 + 100 + 5 + 5 + 7 + 7 + 9),
                ("text/plain", 2, 200)
            ]
        );
        let h = r.hardlink_groups();
        assert_eq!((h.len(), h[0].count), (1, 2));
        let j = r.to_json();
        assert_eq!(j["duplicates"]["redundant_bytes"], 200);
        assert!(r
            .render_text()
            .contains("1 groups, 3 files, 200 bytes could be saved"));
    }
}
