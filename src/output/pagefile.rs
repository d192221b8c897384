//! The database file as the b-tree writer sees it: pages appended after the committed end,
//! and commits that make them part of the database atomically, through SQLite's own rollback
//! journal.
//!
//! The rule that keeps the file valid at every instant: no page the committed state points to
//! is written outside a commit, and a commit writes such pages only after their old contents
//! are safe in a synced journal. A commit
//!
//! 1. writes and syncs the pages appended since the last commit (past the end the header
//!    declares, where SQLite does not look);
//! 2. writes a rollback journal (`FILE-journal`, in SQLite's documented format) holding the
//!    old contents of page 1 and of every committed page about to change (the few root and
//!    right-edge pages of the trees being built), and syncs it and its directory;
//! 3. takes SQLite's exclusive lock, writes those pages and the header's new page count,
//!    syncs the file;
//! 4. deletes the journal.
//!
//! A crash before step 4 leaves a hot journal: the next SQLite connection to open the file
//! (the `sqlite3` shell, `nfs-walker stats`, `scan --resume`) restores the old pages and cuts
//! the file back to the old end — the state of the previous commit. A crash at any other
//! moment leaves the previous (or the new) commit as it is, with at most some unreferenced
//! pages past its end, which SQLite ignores.
//!
//! While the writer holds the file it holds SQLite's RESERVED lock, so SQLite neither treats
//! the journal of a commit in progress as hot nor lets another connection write; readers may
//! read every committed state while the scan runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Bytes of the file header on page 1.
pub const FILE_HEADER_BYTES: usize = 100;
/// SQLite never uses the page holding this byte offset (its lock bytes live there).
const PENDING_BYTE_OFFSET: u64 = 0x4000_0000;
/// SQLite's lock bytes (os_unix.c): RESERVED marks the one writer, the SHARED range holds
/// readers' read locks and the writer's exclusive lock.
const RESERVED_BYTE_OFFSET: u64 = PENDING_BYTE_OFFSET + 1;
const SHARED_FIRST_OFFSET: u64 = PENDING_BYTE_OFFSET + 2;
const SHARED_BYTES: u64 = 510;
/// Pages appended are written in chunks of about this size.
const WRITE_CHUNK_BYTES: usize = 1 << 20;
/// Each time this much has been written, the kernel is asked to start writing it back, so a
/// commit's sync waits only for the last part rather than for the whole interval.
const WRITEBACK_CHUNK_BYTES: u64 = 32 << 20;
/// The rollback journal's magic number (fileformat2, "The Rollback Journal").
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
/// The journal header is padded to this "sector size" (SQLite's default on unix).
const JOURNAL_SECTOR_BYTES: usize = 4096;

#[derive(Debug, Error)]
pub enum PageFileError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not an SQLite database this writer can extend: {0}")]
    Format(&'static str),
    #[error("the database would pass 2^32 - 1 pages")]
    TooManyPages,
    #[error("another process is writing this database")]
    Locked,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Yes,
    /// Readers held the file (a long query); the pages wait for the next commit.
    Postponed,
}

/// The database file, opened beside SQLite's own writes.
pub struct PageFile {
    file: File,
    path: PathBuf,
    pub(crate) page_size: usize,
    /// Pages the header declares: the committed database.
    committed_pages: u32,
    /// The number the next appended page gets.
    pub(crate) next_page: u32,
    /// Appended pages not yet written, starting with page `chunk_first`.
    chunk: Vec<u8>,
    chunk_first: u32,
    /// File offset from which writeback has not been started.
    writeback_from: u64,
    /// Pages already in the file that get new contents at the next commit (root pages and
    /// the right edges of trees, which each commit shows as they are then).
    rewrites: BTreeMap<u32, Vec<u8>>,
    /// New contents of page 1 after its header (the schema), for the next commit.
    schema_page: Option<Vec<u8>>,
}

impl PageFile {
    /// Opens an SQLite database that no connection is writing, for appending, and takes
    /// SQLite's RESERVED lock (the file has one writer).
    pub fn open(path: &Path) -> Result<PageFile, PageFileError> {
        let file = File::options().read(true).write(true).open(path)?;
        let mut journal = path.as_os_str().to_owned();
        journal.push("-journal");
        if std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
            // SQLite must roll it back first.
            return Err(PageFileError::Format("a rollback journal is pending"));
        }
        let mut header = [0u8; FILE_HEADER_BYTES];
        file.read_exact_at(&mut header, 0)?;
        if &header[..16] != b"SQLite format 3\0" {
            return Err(PageFileError::Format("no SQLite header"));
        }
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() => n as usize,
            _ => return Err(PageFileError::Format("bad page size")),
        };
        if header[20] != 0 {
            return Err(PageFileError::Format("pages have reserved bytes"));
        }
        if header[18] != 1 || header[19] != 1 {
            return Err(PageFileError::Format("not in rollback-journal mode"));
        }
        if be32(&header, 36) != 0 {
            return Err(PageFileError::Format("has free pages"));
        }
        if be32(&header, 52) != 0 {
            return Err(PageFileError::Format("auto-vacuum is on"));
        }
        if be32(&header, 56) != 1 {
            return Err(PageFileError::Format("text encoding is not UTF-8"));
        }
        lock(
            &file,
            libc::F_RDLCK,
            SHARED_FIRST_OFFSET,
            SHARED_BYTES,
            true,
        )?;
        if !lock(&file, libc::F_WRLCK, RESERVED_BYTE_OFFSET, 1, false)? {
            return Err(PageFileError::Locked);
        }
        let header_pages = be32(&header, 28);
        if be32(&header, 24) != be32(&header, 92) || header_pages == 0 {
            return Err(PageFileError::Format(
                "the header's page count is not valid",
            ));
        }
        let file_pages = file.metadata()?.len() / page_size as u64;
        if file_pages < u64::from(header_pages) {
            return Err(PageFileError::Format(
                "the file is shorter than its header says",
            ));
        }
        // Pages past the committed end are what an interrupted writer left: no committed
        // page points to them.
        file.set_len(u64::from(header_pages) * page_size as u64)?;
        let mut pf = PageFile {
            file,
            path: path.to_path_buf(),
            page_size,
            committed_pages: header_pages,
            next_page: header_pages + 1,
            chunk: Vec::with_capacity(WRITE_CHUNK_BYTES + page_size),
            chunk_first: header_pages + 1,
            writeback_from: u64::from(header_pages) * page_size as u64,
            rewrites: BTreeMap::new(),
            schema_page: None,
        };
        pf.skip_pending_byte_page();
        Ok(pf)
    }

    /// Pages appended since the file was opened.
    pub fn appended_pages(&self) -> u64 {
        u64::from(self.next_page - 1 - self.committed_pages)
    }

    /// Pages the committed database holds.
    pub fn committed_pages(&self) -> u32 {
        self.committed_pages
    }

    fn pending_byte_page(&self) -> u32 {
        (PENDING_BYTE_OFFSET / self.page_size as u64) as u32 + 1
    }

    /// The page holding the lock bytes is never used: appending skips it (writing zeros, so
    /// the file stays contiguous).
    fn skip_pending_byte_page(&mut self) {
        if self.next_page == self.pending_byte_page() {
            self.chunk.resize(self.chunk.len() + self.page_size, 0);
            self.next_page += 1;
        }
    }

    /// The number the page appended after the next one will get (for overflow chains).
    pub(crate) fn page_after_next(&self) -> u32 {
        let n = self.next_page + 1;
        if n == self.pending_byte_page() {
            n + 1
        } else {
            n
        }
    }

    /// Appends one page; returns its number.
    pub(crate) fn append(&mut self, page: &[u8]) -> Result<u32, PageFileError> {
        debug_assert_eq!(page.len(), self.page_size);
        let n = self.next_page;
        if n == u32::MAX {
            return Err(PageFileError::TooManyPages);
        }
        self.chunk.extend_from_slice(page);
        self.next_page += 1;
        self.skip_pending_byte_page();
        if self.chunk.len() >= WRITE_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(n)
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if !self.chunk.is_empty() {
            let offset = u64::from(self.chunk_first - 1) * self.page_size as u64;
            self.file.write_all_at(&self.chunk, offset)?;
            let end = offset + self.chunk.len() as u64;
            self.chunk.clear();
            if end - self.writeback_from >= WRITEBACK_CHUNK_BYTES {
                start_writeback(&self.file, self.writeback_from, end - self.writeback_from);
                self.writeback_from = end;
            }
        }
        self.chunk_first = self.next_page;
        Ok(())
    }

    /// Gives page `n` (a root page SQLite allocated, or a page appended earlier) new contents
    /// at the next commit.
    pub(crate) fn rewrite_page(&mut self, n: u32, page: &[u8]) {
        debug_assert!(n > 1 && n < self.next_page);
        debug_assert_eq!(page.len(), self.page_size);
        match self.rewrites.get_mut(&n) {
            Some(p) => p.copy_from_slice(page),
            None => {
                self.rewrites.insert(n, page.to_vec());
            }
        }
    }

    /// Replaces page 1 after its header (the schema table) at the next commit, bumping the
    /// schema cookie so every connection reads the schema again.
    pub fn replace_schema_page(&mut self, body: &[u8]) {
        debug_assert_eq!(body.len(), self.page_size - FILE_HEADER_BYTES);
        self.schema_page = Some(body.to_vec());
    }

    /// Page 1 after its header, as the file holds it now.
    pub fn read_schema_page(path: &Path) -> io::Result<Vec<u8>> {
        let file = File::open(path)?;
        let mut header = [0u8; FILE_HEADER_BYTES];
        file.read_exact_at(&mut header, 0)?;
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65536,
            n => usize::from(n),
        };
        let mut body = vec![0u8; page_size.saturating_sub(FILE_HEADER_BYTES)];
        file.read_exact_at(&mut body, FILE_HEADER_BYTES as u64)?;
        Ok(body)
    }

    /// Makes everything appended and rewritten part of the database, atomically (see the
    /// module's description). With `wait` false, a commit that would have to wait for
    /// readers to finish is postponed instead.
    pub fn commit(&mut self, wait: bool) -> Result<Committed, PageFileError> {
        self.flush()?;
        self.file.sync_data()?;
        let new_pages = self.next_page - 1;
        // Old contents of the committed pages that change: page 1 always (its header).
        let mut originals: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut page = vec![0u8; self.page_size];
        self.file.read_exact_at(&mut page, 0)?;
        let mut page1 = page.clone();
        originals.push((1, page.clone()));
        for &n in self.rewrites.keys() {
            if n <= self.committed_pages {
                self.file
                    .read_exact_at(&mut page, u64::from(n - 1) * self.page_size as u64)?;
                originals.push((n, page.clone()));
            }
        }
        let journal_path = self.journal_path();
        if let Err(e) = write_journal(
            &journal_path,
            &originals,
            self.committed_pages,
            self.page_size,
        ) {
            // Nothing was overwritten yet: a partial journal protects nothing.
            let _ = std::fs::remove_file(&journal_path);
            return Err(e.into());
        }
        // The exclusive lock: no reader may see the pages change under it.
        if !self.lock_exclusive(wait)? {
            std::fs::remove_file(&journal_path)?;
            return Ok(Committed::Postponed);
        }
        let result = (|| -> io::Result<()> {
            for (&n, contents) in &self.rewrites {
                self.file
                    .write_all_at(contents, u64::from(n - 1) * self.page_size as u64)?;
            }
            // A new change counter (readers drop their caches), the page count declared
            // valid for it, and the schema where it changes.
            let counter = be32(&page1, 24).wrapping_add(1);
            page1[24..28].copy_from_slice(&counter.to_be_bytes());
            page1[28..32].copy_from_slice(&new_pages.to_be_bytes());
            page1[92..96].copy_from_slice(&counter.to_be_bytes());
            if let Some(body) = &self.schema_page {
                let cookie = be32(&page1, 40).wrapping_add(1);
                page1[40..44].copy_from_slice(&cookie.to_be_bytes());
                page1[FILE_HEADER_BYTES..].copy_from_slice(body);
            }
            self.file.write_all_at(&page1, 0)?;
            self.file.sync_data()
        })();
        let result = result.and_then(|()| std::fs::remove_file(&journal_path));
        self.unlock_exclusive()?;
        // After a failure the journal stays: the next connection rolls the file back.
        result?;
        self.committed_pages = new_pages;
        self.rewrites.clear();
        self.schema_page = None;
        Ok(Committed::Yes)
    }

    /// Drops what was appended since the last commit (after a failed write: the disk's
    /// space comes back), leaving the committed database.
    pub fn discard_uncommitted(&mut self) -> io::Result<()> {
        self.chunk.clear();
        self.rewrites.clear();
        self.schema_page = None;
        self.next_page = self.committed_pages + 1;
        self.chunk_first = self.next_page;
        self.skip_pending_byte_page();
        self.file
            .set_len(u64::from(self.committed_pages) * self.page_size as u64)
    }

    fn journal_path(&self) -> PathBuf {
        let mut p = self.path.as_os_str().to_owned();
        p.push("-journal");
        PathBuf::from(p)
    }

    /// SQLite's EXCLUSIVE lock: PENDING keeps new readers out, then the SHARED range once the
    /// readers present have gone.
    fn lock_exclusive(&self, wait: bool) -> io::Result<bool> {
        lock(&self.file, libc::F_WRLCK, PENDING_BYTE_OFFSET, 1, true)?;
        if lock(
            &self.file,
            libc::F_WRLCK,
            SHARED_FIRST_OFFSET,
            SHARED_BYTES,
            wait,
        )? {
            return Ok(true);
        }
        lock(&self.file, libc::F_UNLCK, PENDING_BYTE_OFFSET, 1, true)?;
        Ok(false)
    }

    /// Back to SHARED and RESERVED.
    fn unlock_exclusive(&self) -> io::Result<()> {
        lock(
            &self.file,
            libc::F_RDLCK,
            SHARED_FIRST_OFFSET,
            SHARED_BYTES,
            true,
        )?;
        lock(&self.file, libc::F_UNLCK, PENDING_BYTE_OFFSET, 1, true)?;
        Ok(())
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A POSIX record lock on `len` bytes at `start`, as SQLite's unix VFS takes them. Returns
/// false where `wait` is off and another process holds a conflicting lock.
fn lock(file: &File, kind: i32, start: u64, len: u64, wait: bool) -> io::Result<bool> {
    // SAFETY: flock is plain data; zeroed is a valid value for every field.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    let cmd = if wait { libc::F_SETLKW } else { libc::F_SETLK };
    loop {
        // SAFETY: the descriptor is open for the call's duration and `fl` outlives it.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &fl) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EACCES) | Some(libc::EAGAIN) if !wait => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Writes and syncs a rollback journal holding `pages` (number, old contents) of a database
/// of `db_pages` pages, in SQLite's format: a header padded to a sector, then per page its
/// number, its contents and a checksum.
fn write_journal(
    path: &Path,
    pages: &[(u32, Vec<u8>)],
    db_pages: u32,
    page_size: usize,
) -> io::Result<()> {
    let nonce = journal_nonce();
    let mut bytes = Vec::with_capacity(JOURNAL_SECTOR_BYTES + pages.len() * (page_size + 8));
    bytes.extend_from_slice(&JOURNAL_MAGIC);
    bytes.extend_from_slice(&(pages.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&nonce.to_be_bytes());
    bytes.extend_from_slice(&db_pages.to_be_bytes());
    bytes.extend_from_slice(&(JOURNAL_SECTOR_BYTES as u32).to_be_bytes());
    bytes.extend_from_slice(&(page_size as u32).to_be_bytes());
    bytes.resize(JOURNAL_SECTOR_BYTES, 0);
    for (n, contents) in pages {
        bytes.extend_from_slice(&n.to_be_bytes());
        bytes.extend_from_slice(contents);
        bytes.extend_from_slice(&journal_checksum(nonce, contents).to_be_bytes());
    }
    let file = File::create(path)?;
    file.write_all_at(&bytes, 0)?;
    file.sync_all()?;
    // The journal's name must be durable before any page it protects changes.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))?.sync_all()?;
    Ok(())
}

/// SQLite's page checksum in a journal: the nonce plus every 200th byte from the end.
fn journal_checksum(nonce: u32, page: &[u8]) -> u32 {
    let mut sum = nonce;
    let mut i = page.len() as isize - 200;
    while i > 0 {
        sum = sum.wrapping_add(u32::from(page[i as usize]));
        i -= 200;
    }
    sum
}

/// A new random nonce per journal, so records of an older journal never pass as this one's.
fn journal_nonce() -> u32 {
    use std::hash::BuildHasher;
    std::hash::RandomState::new().hash_one(std::time::SystemTime::now()) as u32
}

/// Asks the kernel to start writing `len` bytes at `offset` back to disk, without waiting.
/// Only a hint: where it fails, the commit's sync does all the work.
fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is open for the call's duration; the call reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}
