//! Names whose handle or attributes a listing did not carry: LOOKUP (and GETATTR where the
//! LOOKUP reply lacks attributes), READLINK of symbolic links, and what a child with known
//! attributes becomes (an entry, a directory task).

use super::{ObjectRef, Op, TaskState, Walker};
use crate::path_error::PathError;
use crate::record::{join_path, EntryAttrs, EntryRef, EntryType};
use crate::rpc::nfs3::{
    Fattr3, FileHandle, FileType3, GetattrReply, LookupReply, NfsReplyError, ReadlinkReply,
};
use crate::sched::{Queued, TaskId};
use crate::walker::config::DEPTH_HARD_MAX;
use crate::walker::task::{DirTask, Task};
use crate::walker::WalkSink;
use std::sync::Arc;

/// A lookup batch being worked on.
pub(super) struct LookupGroup {
    pub(super) id: TaskId,
    pub(super) dir_fh: FileHandle,
    pub(super) dir_path: Arc<[u8]>,
    pub(super) depth: u32,
    pub(super) pending: u32,
}

impl Walker {
    pub(super) fn emit(
        &mut self,
        path: &[u8],
        attrs: &EntryAttrs,
        depth: u32,
        target: Option<&[u8]>,
        sink: &mut impl WalkSink,
    ) {
        if self.cfg.dirs_only && attrs.kind != EntryType::Dir {
            return;
        }
        self.stats.count_entry(attrs);
        sink.entry(&EntryRef {
            path,
            attrs,
            depth,
            target,
            // NFSv3 owners are numbers.
            owner: None,
            group: None,
        });
    }

    /// Decides what to do with a child whose attributes and handle are known: write it,
    /// descend into it, or read its link first.
    pub(super) fn on_child<S: WalkSink>(
        &mut self,
        task: usize,
        path: &[u8],
        fattr: &Fattr3,
        fh: Option<FileHandle>,
        depth: u32,
        sink: &mut S,
    ) {
        let attrs = fattr.to_entry_attrs();
        if S::WANTS_OBJECTS {
            self.tell_object(task, path, fattr, fh.as_ref(), sink);
        }
        // With --dirs-only a link is never written, so its target is not worth a call.
        if self.cfg.readlink && !self.cfg.dirs_only && fattr.ftype == FileType3::Lnk {
            if let Some(fh) = fh {
                self.add_pending(task);
                self.calls.push_back(Queued::new(Op::Readlink {
                    task,
                    path: path.into(),
                    attrs,
                    depth,
                    fh,
                }));
                return;
            }
        }
        self.emit(path, &attrs, depth, None, sink);
        if fattr.ftype == FileType3::Dir {
            self.maybe_descend(task, path, fattr, fh, depth, sink);
        }
    }

    /// Hands a child's handles to a sink that wants them.
    fn tell_object(
        &self,
        task: usize,
        path: &[u8],
        fattr: &Fattr3,
        fh: Option<&FileHandle>,
        sink: &mut impl WalkSink,
    ) {
        let dir = match self.tasks.get(task) {
            Some(TaskState::Listing(l)) => &l.task.fh,
            Some(TaskState::Lookups(g)) => &g.dir_fh,
            None => return,
        };
        let name = path.rsplit(|b| *b == b'/').next().unwrap_or(path);
        sink.object(&ObjectRef {
            dir,
            name,
            fh,
            kind: fattr.ftype.to_entry_type(),
            size: fattr.size,
        });
    }

    fn maybe_descend(
        &mut self,
        task: usize,
        path: &[u8],
        fattr: &Fattr3,
        fh: Option<FileHandle>,
        depth: u32,
        sink: &mut impl WalkSink,
    ) {
        if self.cfg.max_depth.is_some_and(|m| depth >= m) {
            return;
        }
        if self.cfg.one_fs.is_some_and(|fsid| fsid != fattr.fsid) {
            return;
        }
        let Some(fh) = fh else { return };
        if depth >= DEPTH_HARD_MAX {
            return self.report(
                PathError {
                    path: path.to_vec(),
                    op: "walk",
                    message: format!("deeper than {DEPTH_HARD_MAX} levels; not descended"),
                    status: None,
                },
                sink,
            );
        }
        if !self
            .visited
            .insert_dir(fattr.fsid, fattr.fileid, fh.as_bytes())
        {
            return; // already walked (a cycle or a directory reached twice)
        }
        let parent = match self.tasks.get(task) {
            Some(TaskState::Listing(l)) => l.id,
            Some(TaskState::Lookups(g)) => g.id,
            None => return,
        };
        sink.spawn(
            parent,
            Task::Dir(DirTask {
                fh,
                path: path.to_vec(),
                depth,
                fsid: fattr.fsid,
            }),
        );
    }

    pub(super) fn on_object_reply(
        &mut self,
        op: &Op,
        body: &[u8],
        sink: &mut impl WalkSink,
    ) -> Result<(), NfsReplyError> {
        match op {
            Op::Lookup {
                task,
                name,
                attrs: listed_attrs,
                ..
            } => {
                let ok = LookupReply::decode(body)?;
                let Some(TaskState::Lookups(g)) = self.tasks.get(*task) else {
                    return Ok(());
                };
                let path = join_path(&g.dir_path, name);
                let depth = g.depth;
                match ok.obj_attrs.or(listed_attrs.as_deref().copied()) {
                    Some(a) => self.on_child(*task, &path, &a, Some(ok.fh), depth, sink),
                    None => {
                        // The server omitted the attributes: ask for them, never guess.
                        self.add_pending(*task);
                        self.calls.push_back(Queued::new(Op::Getattr {
                            task: *task,
                            name: name.clone(),
                            fh: ok.fh,
                        }));
                    }
                }
                self.op_finished(*task, sink);
            }
            Op::Getattr { task, name, fh } => {
                let a = GetattrReply::decode(body)?;
                let Some(TaskState::Lookups(g)) = self.tasks.get(*task) else {
                    return Ok(());
                };
                let path = join_path(&g.dir_path, name);
                let depth = g.depth;
                self.on_child(*task, &path, &a, Some(*fh), depth, sink);
                self.op_finished(*task, sink);
            }
            Op::Readlink {
                task,
                path,
                attrs,
                depth,
                ..
            } => {
                let ok = ReadlinkReply::decode(body)?;
                self.emit(path, attrs, *depth, Some(ok.target), sink);
                self.op_finished(*task, sink);
            }
            Op::List { .. } => unreachable!("listings are handled by on_list_reply"),
        }
        Ok(())
    }
}
