//! Listing pages whose entries wait until the call for the next page has gone out: the server
//! prepares that page while the walk thread writes this one's entries, instead of one after
//! the other (on a single large directory, about half the time a page takes). The v3 and v4
//! walks both keep their deferred pages here. Only a page that continues its chain is
//! deferred; it is kept as a copy of the reply, with what the walk needs to read it again.

use super::config::{DEFERRED_PAGE_BYTES_MAX, SPARE_PAGE_BUFFERS_MAX};

/// One deferred page: its listing (slab key), a copy of the reply, and `view`, what the walk
/// needs to read the copy again (the procedure, or a detached validated view).
#[derive(Debug)]
pub struct DeferredPage<V> {
    pub task: usize,
    pub body: Vec<u8>,
    pub view: V,
}

/// The deferred pages of one walk thread, in arrival order, and spare buffers for the copies.
#[derive(Debug)]
pub struct DeferredPages<V> {
    pages: Vec<DeferredPage<V>>,
    spare: Vec<Vec<u8>>,
    /// Bytes of the pages held.
    bytes: usize,
}

impl<V> Default for DeferredPages<V> {
    fn default() -> Self {
        DeferredPages {
            pages: Vec::new(),
            spare: Vec::new(),
            bytes: 0,
        }
    }
}

impl<V> DeferredPages<V> {
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Whether a page of `len` bytes may be kept: the pages held stay under
    /// [`DEFERRED_PAGE_BYTES_MAX`] (past it, the caller processes the page at once).
    pub fn has_room(&self, len: usize) -> bool {
        self.bytes + len <= DEFERRED_PAGE_BYTES_MAX
    }

    /// Keeps a copy of `body` for later.
    pub fn push(&mut self, task: usize, body: &[u8], view: V) {
        self.bytes += body.len();
        let mut copy = self.spare.pop().unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(body);
        self.pages.push(DeferredPage {
            task,
            body: copy,
            view,
        });
    }

    /// Hands each page over in arrival order, then takes its buffer back for reuse.
    /// Processing a page must not defer another (it handles no reply).
    pub fn drain(&mut self, mut process: impl FnMut(DeferredPage<V>) -> Vec<u8>) {
        let mut pages = std::mem::take(&mut self.pages);
        self.bytes = 0;
        for page in pages.drain(..) {
            let body = process(page);
            if self.spare.len() < SPARE_PAGE_BUFFERS_MAX {
                self.spare.push(body);
            }
        }
        debug_assert!(self.pages.is_empty(), "a page was deferred while draining");
        // Keep the vector's capacity.
        self.pages = pages;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_come_back_in_order_as_copies_and_buffers_are_reused() {
        let mut d = DeferredPages::default();
        assert!(d.is_empty());
        let mut reply = vec![1u8, 2, 3];
        d.push(7, &reply, 'a');
        reply[0] = 9; // the page is a copy
        d.push(3, &[4, 5], 'b');
        assert!(!d.is_empty());
        let mut seen = Vec::new();
        let mut ptrs = Vec::new();
        d.drain(|p| {
            seen.push((p.task, p.body.clone(), p.view));
            ptrs.push(p.body.as_ptr());
            p.body
        });
        assert_eq!(seen, vec![(7, vec![1, 2, 3], 'a'), (3, vec![4, 5], 'b')]);
        assert!(d.is_empty());
        // the next copy goes into a buffer given back
        assert!(d.has_room(DEFERRED_PAGE_BYTES_MAX));
        assert!(!d.has_room(DEFERRED_PAGE_BYTES_MAX + 1));
        d.push(1, &[6], 'c');
        assert!(!d.has_room(DEFERRED_PAGE_BYTES_MAX), "one byte is held");
        d.drain(|p| {
            assert!(ptrs.contains(&p.body.as_ptr()));
            assert_eq!(p.body, vec![6]);
            p.body
        });
    }
}
