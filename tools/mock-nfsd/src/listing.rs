//! The exact listing a correct client sees (`--print-listing`): the oracle for tests.

use crate::tree::{NodeId, TreeModel};
use nfs_proto::record::{join_path, EntryRecord};
use nfs_proto::rpc::nfs3::FileType3;

/// Depth-first walk of a tree yielding one [`EntryRecord`] per object, root first (path ".",
/// depth 0). Attributes go through `Fattr3::to_entry_attrs`, as the client's do.
#[derive(Debug)]
pub struct Listing {
    model: TreeModel,
    readlink: bool,
    root_pending: bool,
    stack: Vec<Frame>,
    name: Vec<u8>,
}

#[derive(Debug)]
struct Frame {
    dir: u64,
    path: Vec<u8>,
    depth: u32,
    next: u64,
    len: u64,
}

impl Listing {
    pub fn new(model: TreeModel, readlink: bool) -> Self {
        Listing {
            model,
            readlink,
            root_pending: true,
            stack: Vec::new(),
            name: Vec::new(),
        }
    }

    fn record(&self, node: NodeId, path: Vec<u8>, depth: u32) -> EntryRecord {
        // Every node the walk reaches is valid, so attrs is always Some.
        let attrs = self.model.attrs(node).unwrap_or_else(|| {
            self.model
                .attrs(self.model.root())
                .expect("the root always exists")
        });
        let target = if self.readlink && attrs.ftype == FileType3::Lnk {
            let mut t = Vec::new();
            self.model.readlink(node, &mut t);
            Some(t)
        } else {
            None
        };
        EntryRecord {
            path,
            attrs: attrs.to_entry_attrs(),
            depth,
            target,
            owner: None,
            group: None,
        }
    }
}

impl Iterator for Listing {
    type Item = EntryRecord;

    fn next(&mut self) -> Option<EntryRecord> {
        if self.root_pending {
            self.root_pending = false;
            let root = self.model.root();
            self.stack.push(Frame {
                dir: root.dir,
                path: b".".to_vec(),
                depth: 0,
                next: 0,
                len: self.model.dir_len(root.dir),
            });
            return Some(self.record(root, b".".to_vec(), 0));
        }
        loop {
            let top = self.stack.last_mut()?;
            if top.next == top.len {
                self.stack.pop();
                continue;
            }
            let pos = top.next;
            top.next += 1;
            let depth = top.depth + 1;
            let node = self.model.entry(top.dir, pos, &mut self.name);
            if !self.model.is_listed(node) {
                continue;
            }
            let path = join_path(&top.path, &self.name);
            if node.is_dir() {
                self.stack.push(Frame {
                    dir: node.dir,
                    path: path.clone(),
                    depth,
                    next: 0,
                    len: self.model.dir_len(node.dir),
                });
            }
            return Some(self.record(node, path, depth));
        }
    }
}
