//! An external sorter: keys in ascending order, with bounded memory, however many there are.
//!
//! The scan database builds its index b-trees from keys in order, and a scan can reach billions
//! of entries, so the keys cannot all be held in memory. The sorter holds keys in memory up to
//! a budget; when the next key would take it past the budget, the keys held are sorted and
//! written as one sorted run to a temp file. At the end the runs, and the keys still held, are
//! merged (a k-way merge over a binary heap).
//!
//! All runs go to ONE anonymous temp file (unlinked from the start, so nothing is left behind
//! by a crash), and while merging each run is read through its own small buffer with
//! positioned reads (`read_at`): hundreds of runs need no more file descriptors than one.
//!
//! Memory: the keys held take at most the budget, as counted by [`SortKey::memory_bytes`]
//! (the vector holding them never grows past the slots the budget can fill). While merging,
//! each run takes one read buffer of at most [`RUN_READ_BUFFER_BYTES`] (more only while one key
//! larger than that is read), so 1000 runs take about 64 MiB.
//!
//! The common case, keys that fit the budget, never touches the disk: [`ExternalSorter::finish`]
//! sorts in memory and iterates the vector.

use std::cmp::Ordering;
use std::collections::binary_heap::{BinaryHeap, PeekMut};
use std::fs::File;
use std::io;
use std::mem;
use std::os::unix::fs::FileExt;

/// Bytes read from a run at a time while merging. Large enough that one positioned read
/// fetches thousands of small keys (the system call is paid once for all of them), small
/// enough that hundreds of runs merged at once take only tens of MiB.
pub const RUN_READ_BUFFER_BYTES: usize = 64 << 10;

/// Encoded keys are written to the temp file in chunks of about this size: few, large writes
/// per spill, without a second copy of the whole run in memory.
const SPILL_WRITE_BUFFER_BYTES: usize = 256 << 10;

/// Bytes of the length written before a `Vec<u8>` key.
const LENGTH_PREFIX_BYTES: usize = 4;

/// A key the sorter can spill: ordered by `Ord`, written to and read back from bytes.
pub trait SortKey: Ord + Sized {
    /// Bytes this key takes in memory (counted against the budget), including its heap part.
    fn memory_bytes(&self) -> usize;

    /// Appends this key's bytes to `out`. The sorter calls it only on keys that
    /// [`SortKey::check_writable`] accepted, so it need not fail.
    fn write_to(&self, out: &mut Vec<u8>);

    /// Reads one key from the front of `input`, returning it and the bytes it took; None if
    /// `input` holds no complete key.
    fn read_from(input: &[u8]) -> Option<(Self, usize)>;

    /// An error if this key cannot be written by [`SortKey::write_to`] (its length does not fit
    /// the encoding). Checked by [`ExternalSorter::push`], so a key that could not be read back
    /// is refused when it arrives rather than found missing at the end.
    fn check_writable(&self) -> io::Result<()> {
        Ok(())
    }
}

/// 16 bytes, big-endian (byte order is numeric order).
impl SortKey for u128 {
    #[inline]
    fn memory_bytes(&self) -> usize {
        mem::size_of::<u128>()
    }

    #[inline]
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }

    #[inline]
    fn read_from(input: &[u8]) -> Option<(Self, usize)> {
        let bytes: [u8; 16] = input.get(..16)?.try_into().ok()?;
        Some((u128::from_be_bytes(bytes), 16))
    }
}

/// The length prefix of a `Vec<u8>` key of `len` bytes; an error for a key longer than the
/// prefix can say.
fn length_prefix(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a sort key of {len} bytes is longer than a run can hold ({} bytes)",
                u32::MAX
            ),
        )
    })
}

/// A big-endian u32 length, then the bytes.
impl SortKey for Vec<u8> {
    #[inline]
    fn memory_bytes(&self) -> usize {
        mem::size_of::<Vec<u8>>() + self.capacity()
    }

    #[inline]
    fn write_to(&self, out: &mut Vec<u8>) {
        match length_prefix(self.len()) {
            Ok(len) => {
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(self);
            }
            // `check_writable` refuses such keys. Should one get here anyway, a length with no
            // bytes after it makes the run read back as truncated, an error, not a wrong key.
            Err(_) => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        }
    }

    #[inline]
    fn read_from(input: &[u8]) -> Option<(Self, usize)> {
        let prefix: [u8; LENGTH_PREFIX_BYTES] =
            input.get(..LENGTH_PREFIX_BYTES)?.try_into().ok()?;
        let len = usize::try_from(u32::from_be_bytes(prefix)).ok()?;
        let end = LENGTH_PREFIX_BYTES.checked_add(len)?;
        let bytes = input.get(LENGTH_PREFIX_BYTES..end)?;
        Some((bytes.to_vec(), end))
    }

    fn check_writable(&self) -> io::Result<()> {
        length_prefix(self.len()).map(|_| ())
    }
}

/// Where one sorted run lies in the temp file.
#[derive(Debug, Clone, Copy)]
struct RunSpan {
    start_offset: u64,
    end_offset: u64,
    keys: u64,
}

/// The temp file and the runs in it, created at the first spill.
#[derive(Debug)]
struct SpillFile {
    file: File,
    /// Where the next run starts (the bytes written so far).
    end_offset: u64,
    runs: Vec<RunSpan>,
}

/// Sorts keys with bounded memory: in memory up to a budget, then as sorted runs on disk
/// merged at the end.
#[derive(Debug)]
pub struct ExternalSorter<K: SortKey> {
    memory_budget_bytes: usize,
    /// Keys held in memory, not yet spilled.
    keys: Vec<K>,
    /// What `keys` take, by [`SortKey::memory_bytes`].
    keys_memory_bytes: usize,
    pushed_keys: u64,
    spill: Option<SpillFile>,
    /// Reused between spills, so a spill allocates nothing.
    write_buffer: Vec<u8>,
    /// A spill failed part way and the keys it held are gone: the sorter refuses to go on
    /// rather than return fewer keys than it was given.
    failed: bool,
}

fn failed_error() -> io::Error {
    io::Error::other("the external sorter lost keys in an earlier failed spill")
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl<K: SortKey> ExternalSorter<K> {
    /// A sorter holding at most `memory_budget_bytes` of keys in memory. The temp file is not
    /// created until the first spill, so a sort that fits the budget never touches the disk.
    pub fn new(memory_budget_bytes: usize) -> Self {
        ExternalSorter {
            memory_budget_bytes,
            keys: Vec::new(),
            keys_memory_bytes: 0,
            pushed_keys: 0,
            spill: None,
            write_buffer: Vec::new(),
            failed: false,
        }
    }

    /// Adds a key. When it would take the keys held past the budget, those held are first
    /// sorted and spilled as one run (a key larger than the whole budget is held alone).
    /// Errors: the key cannot be written (see [`SortKey::check_writable`]), or the spill failed.
    pub fn push(&mut self, key: K) -> io::Result<()> {
        if self.failed {
            return Err(failed_error());
        }
        key.check_writable()?;
        let key_bytes = key.memory_bytes();
        if !self.keys.is_empty()
            && self.keys_memory_bytes.saturating_add(key_bytes) > self.memory_budget_bytes
        {
            self.spill()?;
        }
        if self.keys.len() == self.keys.capacity() {
            self.grow_keys();
        }
        self.keys.push(key);
        self.keys_memory_bytes = self.keys_memory_bytes.saturating_add(key_bytes);
        self.pushed_keys += 1;
        Ok(())
    }

    /// Keys pushed.
    pub fn len(&self) -> u64 {
        self.pushed_keys
    }

    pub fn is_empty(&self) -> bool {
        self.pushed_keys == 0
    }

    /// Sorted runs written to the temp file so far.
    pub fn spilled_runs(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.runs.len())
    }

    /// Bytes written to the temp file so far (the disk the sort takes).
    pub fn spilled_bytes(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.end_offset)
    }

    /// Every key pushed, in ascending order (duplicates kept).
    pub fn finish(self) -> io::Result<SortedKeys<K>> {
        if self.failed {
            return Err(failed_error());
        }
        let ExternalSorter {
            mut keys,
            pushed_keys,
            spill,
            ..
        } = self;
        keys.sort_unstable();
        let Some(spill) = spill else {
            return Ok(SortedKeys {
                state: SortedState::Memory(keys.into_iter()),
                remaining_keys: pushed_keys,
            });
        };
        let mut sources = Vec::with_capacity(spill.runs.len() + 1);
        let mut heap = BinaryHeap::with_capacity(spill.runs.len() + 1);
        for run in &spill.runs {
            let mut reader = RunReader::new(*run);
            if let Some(key) = reader.next_key(&spill.file)? {
                heap.push(HeapEntry {
                    key,
                    source: sources.len(),
                });
            }
            sources.push(MergeSource::Run(reader));
        }
        let mut held = keys.into_iter();
        if let Some(key) = held.next() {
            heap.push(HeapEntry {
                key,
                source: sources.len(),
            });
            sources.push(MergeSource::Memory(held));
        }
        Ok(SortedKeys {
            state: SortedState::Merge(Merge {
                file: spill.file,
                sources,
                heap,
                pending_error: None,
            }),
            remaining_keys: pushed_keys,
        })
    }

    /// Grows the vector of keys as `Vec` would (doubling), but never past the slots the budget
    /// can fill: with fixed-size keys the vector is then all the memory the keys take, and it
    /// stays within the budget instead of doubling past it.
    fn grow_keys(&mut self) {
        let slot_bytes = mem::size_of::<K>().max(1);
        let slots_max = (self.memory_budget_bytes / slot_bytes).max(1);
        let len = self.keys.len();
        let additional = len.max(16).min(slots_max.saturating_sub(len)).max(1);
        self.keys.reserve_exact(additional);
    }

    fn spill(&mut self) -> io::Result<()> {
        let result = self.spill_keys();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Sorts the keys held and writes them as one run at the end of the temp file.
    fn spill_keys(&mut self) -> io::Result<()> {
        self.keys.sort_unstable();
        let spill = match self.spill.as_mut() {
            Some(spill) => spill,
            None => self.spill.insert(SpillFile {
                file: tempfile::tempfile()?,
                end_offset: 0,
                runs: Vec::new(),
            }),
        };
        let start_offset = spill.end_offset;
        let keys = self.keys.len() as u64;
        let mut offset = start_offset;
        self.write_buffer.clear();
        for key in self.keys.drain(..) {
            key.write_to(&mut self.write_buffer);
            if self.write_buffer.len() >= SPILL_WRITE_BUFFER_BYTES {
                spill.file.write_all_at(&self.write_buffer, offset)?;
                offset += self.write_buffer.len() as u64;
                self.write_buffer.clear();
            }
        }
        if !self.write_buffer.is_empty() {
            spill.file.write_all_at(&self.write_buffer, offset)?;
            offset += self.write_buffer.len() as u64;
            self.write_buffer.clear();
        }
        // A key much larger than a chunk leaves a large buffer behind: give it back.
        self.write_buffer.shrink_to(SPILL_WRITE_BUFFER_BYTES * 2);
        spill.runs.push(RunSpan {
            start_offset,
            end_offset: offset,
            keys,
        });
        spill.end_offset = offset;
        self.keys_memory_bytes = 0;
        Ok(())
    }
}

/// Reads one run's keys back, through its own buffer.
#[derive(Debug)]
struct RunReader {
    /// The next byte of the run not yet in `buffer`.
    next_offset: u64,
    end_offset: u64,
    keys_left: u64,
    buffer: Vec<u8>,
    /// Bytes at the front of `buffer` already decoded.
    consumed: usize,
}

impl RunReader {
    fn new(run: RunSpan) -> Self {
        RunReader {
            next_offset: run.start_offset,
            end_offset: run.end_offset,
            keys_left: run.keys,
            // Allocated at the first read, no larger than the run.
            buffer: Vec::new(),
            consumed: 0,
        }
    }

    /// The run's next key; None at its end. A run that does not decode to exactly the keys
    /// written is an `InvalidData` error.
    fn next_key<K: SortKey>(&mut self, file: &File) -> io::Result<Option<K>> {
        loop {
            let unread = self.buffer.get(self.consumed..).unwrap_or_default();
            if self.keys_left == 0 {
                if !unread.is_empty() || self.next_offset < self.end_offset {
                    return Err(invalid_data(format!(
                        "a sorted run holds bytes past its last key (offset {} of {})",
                        self.next_offset, self.end_offset
                    )));
                }
                // A finished run's buffer is not needed while the others merge.
                self.buffer = Vec::new();
                self.consumed = 0;
                return Ok(None);
            }
            if let Some((key, used)) = K::read_from(unread) {
                if used == 0 || used > unread.len() {
                    return Err(invalid_data(format!(
                        "a key read from a sorted run claims {used} bytes of the {} held",
                        unread.len()
                    )));
                }
                self.consumed += used;
                self.keys_left -= 1;
                return Ok(Some(key));
            }
            if self.next_offset >= self.end_offset {
                return Err(invalid_data(format!(
                    "a sorted run ends in the middle of a key ({} keys missing)",
                    self.keys_left
                )));
            }
            self.refill(file)?;
        }
    }

    /// Keeps the bytes not yet decoded and reads more of the run after them.
    fn refill(&mut self, file: &File) -> io::Result<()> {
        self.buffer.drain(..self.consumed.min(self.buffer.len()));
        self.consumed = 0;
        let unread = self.buffer.len();
        // The buffer is RUN_READ_BUFFER_BYTES; a key that does not fit doubles it until the key
        // does (bounded by the run: the read below never goes past its end).
        let capacity_bytes = if unread < RUN_READ_BUFFER_BYTES {
            if self.buffer.capacity() > RUN_READ_BUFFER_BYTES {
                self.buffer.shrink_to(RUN_READ_BUFFER_BYTES);
            }
            RUN_READ_BUFFER_BYTES
        } else {
            unread.saturating_mul(2)
        };
        let run_left_bytes = self.end_offset.saturating_sub(self.next_offset);
        let read_bytes = usize::try_from(run_left_bytes)
            .unwrap_or(usize::MAX)
            .min(capacity_bytes - unread);
        self.buffer.reserve_exact(read_bytes);
        self.buffer.resize(unread + read_bytes, 0);
        file.read_exact_at(&mut self.buffer[unread..], self.next_offset)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => invalid_data(format!(
                    "a sorted run is truncated: the temp file ends before offset {}",
                    self.end_offset
                )),
                _ => e,
            })?;
        self.next_offset += read_bytes as u64;
        Ok(())
    }
}

/// A key in the merge heap and the source it came from.
struct HeapEntry<K> {
    key: K,
    source: usize,
}

/// Reversed, so that `BinaryHeap` (a max-heap) pops the smallest key; equal keys come out
/// in source order (runs in the order they were spilled, then the keys held in memory).
impl<K: Ord> Ord for HeapEntry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key
            .cmp(&self.key)
            .then_with(|| other.source.cmp(&self.source))
    }
}

impl<K: Ord> PartialOrd for HeapEntry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord> PartialEq for HeapEntry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<K: Ord> Eq for HeapEntry<K> {}

enum MergeSource<K> {
    Run(RunReader),
    /// The keys still held in memory at `finish`, sorted.
    Memory(std::vec::IntoIter<K>),
}

struct Merge<K> {
    file: File,
    sources: Vec<MergeSource<K>>,
    /// The smallest key not yet returned of each source that has one.
    heap: BinaryHeap<HeapEntry<K>>,
    /// A source failed after its last good key was taken: that key is returned first, then
    /// this error.
    pending_error: Option<io::Error>,
}

impl<K: SortKey> Merge<K> {
    fn next_key(&mut self) -> Option<io::Result<K>> {
        if let Some(error) = self.pending_error.take() {
            // Nothing after an error: the keys left would no longer be all the keys.
            self.heap.clear();
            self.sources.clear();
            return Some(Err(error));
        }
        let mut top = self.heap.peek_mut()?;
        let next = match self.sources.get_mut(top.source) {
            Some(MergeSource::Run(reader)) => reader.next_key(&self.file),
            Some(MergeSource::Memory(keys)) => Ok(keys.next()),
            None => Ok(None),
        };
        Some(Ok(match next {
            // Replacing the top in place sifts it down once, instead of a pop and a push.
            Ok(Some(key)) => mem::replace(&mut top.key, key),
            Ok(None) => PeekMut::pop(top).key,
            Err(error) => {
                self.pending_error = Some(error);
                PeekMut::pop(top).key
            }
        }))
    }
}

enum SortedState<K> {
    /// Nothing spilled: the keys, sorted in memory.
    Memory(std::vec::IntoIter<K>),
    Merge(Merge<K>),
}

/// Iterator over the sorted keys: the in-memory part and the runs, merged.
pub struct SortedKeys<K> {
    state: SortedState<K>,
    /// Keys not yet returned; zero after an error.
    remaining_keys: u64,
}

impl<K: SortKey> Iterator for SortedKeys<K> {
    type Item = io::Result<K>;

    #[inline]
    fn next(&mut self) -> Option<io::Result<K>> {
        let next = match &mut self.state {
            SortedState::Memory(keys) => keys.next().map(Ok),
            SortedState::Merge(merge) => merge.next_key(),
        };
        match &next {
            Some(Ok(_)) => self.remaining_keys = self.remaining_keys.saturating_sub(1),
            Some(Err(_)) => self.remaining_keys = 0,
            None => {}
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.state {
            SortedState::Memory(keys) => keys.size_hint(),
            // An error may end the merge early, so the count is only an upper bound.
            SortedState::Merge(_) => (
                0,
                Some(usize::try_from(self.remaining_keys).unwrap_or(usize::MAX)),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Instant;

    fn sort_all<K: SortKey + Clone>(keys: &[K], memory_budget_bytes: usize) -> (Vec<K>, usize) {
        let mut sorter = ExternalSorter::new(memory_budget_bytes);
        for key in keys {
            sorter.push(key.clone()).expect("push");
        }
        assert_eq!(sorter.len(), keys.len() as u64);
        let runs = sorter.spilled_runs();
        let sorted = sorter
            .finish()
            .expect("finish")
            .collect::<io::Result<Vec<K>>>()
            .expect("merge");
        (sorted, runs)
    }

    fn sorted_copy<K: Ord + Clone>(keys: &[K]) -> Vec<K> {
        let mut expected = keys.to_vec();
        expected.sort();
        expected
    }

    /// Keys from a small range (many duplicates) or from the whole range.
    fn u128_key() -> impl Strategy<Value = u128> {
        prop_oneof![0u128..8, any::<u128>()]
    }

    fn bytes_key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(0u8..3, 0..4),
            proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #[test]
        fn u128_keys_come_out_sorted_with_duplicates(
            keys in proptest::collection::vec(u128_key(), 0..1500),
            memory_budget_bytes in 0usize..400,
        ) {
            let (sorted, runs) = sort_all(&keys, memory_budget_bytes);
            prop_assert_eq!(&sorted, &sorted_copy(&keys));
            let keys_per_run = (memory_budget_bytes / 16).max(1);
            prop_assert_eq!(runs, keys.len().saturating_sub(1) / keys_per_run);
        }

        #[test]
        fn byte_keys_come_out_sorted_with_duplicates(
            keys in proptest::collection::vec(bytes_key(), 0..1500),
            memory_budget_bytes in 0usize..800,
        ) {
            let (sorted, runs) = sort_all(&keys, memory_budget_bytes);
            prop_assert_eq!(&sorted, &sorted_copy(&keys));
            if keys.len() > 40 {
                prop_assert!(runs > 0, "{} keys in a budget of {} bytes spilled nothing",
                    keys.len(), memory_budget_bytes);
            }
        }

        #[test]
        fn byte_keys_round_trip(key in proptest::collection::vec(any::<u8>(), 0..300),
                                tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut encoded = Vec::new();
            key.write_to(&mut encoded);
            let key_bytes = encoded.len();
            prop_assert_eq!(key_bytes, LENGTH_PREFIX_BYTES + key.len());
            encoded.extend_from_slice(&tail);
            prop_assert_eq!(Vec::<u8>::read_from(&encoded), Some((key.clone(), key_bytes)));
            // Any cut inside the key is "no complete key", never a wrong one.
            for cut in 0..key_bytes {
                prop_assert_eq!(Vec::<u8>::read_from(&encoded[..cut]), None);
            }
        }
    }

    #[test]
    fn u128_keys_are_big_endian() {
        let mut encoded = Vec::new();
        0x0102_u128.write_to(&mut encoded);
        assert_eq!(encoded.len(), 16);
        assert_eq!(&encoded[14..], &[1, 2]);
        assert_eq!(u128::read_from(&encoded), Some((0x0102, 16)));
        assert_eq!(u128::read_from(&encoded[..15]), None);
    }

    #[test]
    fn empty_sorter_yields_nothing() {
        let sorter = ExternalSorter::<u128>::new(1 << 20);
        assert!(sorter.is_empty());
        assert_eq!(sorter.len(), 0);
        let mut sorted = sorter.finish().expect("finish");
        assert_eq!(sorted.size_hint(), (0, Some(0)));
        assert!(sorted.next().is_none());

        let sorter = ExternalSorter::<Vec<u8>>::new(0);
        assert_eq!(sorter.spilled_runs(), 0);
        assert_eq!(sorter.finish().expect("finish").count(), 0);
    }

    #[test]
    fn keys_exactly_at_the_budget_stay_in_memory() {
        let keys_per_budget = 100u128;
        let mut sorter = ExternalSorter::new(16 * keys_per_budget as usize);
        for key in (0..keys_per_budget).rev() {
            sorter.push(key).expect("push");
        }
        assert_eq!(
            sorter.spilled_runs(),
            0,
            "keys filling the budget exactly spilled"
        );
        assert_eq!(sorter.spilled_bytes(), 0);
        assert_eq!(sorter.keys.capacity(), keys_per_budget as usize);
        // One more key takes it past: the full budget is spilled as one run.
        sorter.push(keys_per_budget).expect("push");
        assert_eq!(sorter.spilled_runs(), 1);
        assert_eq!(sorter.spilled_bytes(), 16 * keys_per_budget as u64);
        assert_eq!(sorter.len(), keys_per_budget as u64 + 1);
        let sorted: Vec<u128> = sorter
            .finish()
            .expect("finish")
            .collect::<io::Result<_>>()
            .expect("merge");
        assert_eq!(sorted, (0..=keys_per_budget).collect::<Vec<_>>());

        // Byte keys count their heap part and the vector itself.
        let key = vec![7u8; 40];
        let key_bytes = key.memory_bytes();
        assert_eq!(key_bytes, mem::size_of::<Vec<u8>>() + 40);
        let mut sorter = ExternalSorter::new(3 * key_bytes);
        for _ in 0..3 {
            sorter.push(key.clone()).expect("push");
        }
        assert_eq!(sorter.spilled_runs(), 0);
        sorter.push(key.clone()).expect("push");
        assert_eq!(sorter.spilled_runs(), 1);
        let sorted: Vec<Vec<u8>> = sorter
            .finish()
            .expect("finish")
            .collect::<io::Result<_>>()
            .expect("merge");
        assert_eq!(sorted, vec![key; 4]);
    }

    #[test]
    fn a_key_larger_than_the_budget_is_held_alone() {
        let mut sorter = ExternalSorter::new(10);
        sorter.push(vec![3u8; 100]).expect("push");
        assert_eq!(sorter.spilled_runs(), 0);
        sorter.push(vec![1u8; 100]).expect("push");
        assert_eq!(sorter.spilled_runs(), 1);
        let sorted: Vec<Vec<u8>> = sorter
            .finish()
            .expect("finish")
            .collect::<io::Result<_>>()
            .expect("merge");
        assert_eq!(sorted, vec![vec![1u8; 100], vec![3u8; 100]]);
    }

    #[test]
    fn empty_and_long_keys() {
        // 100 KiB keys are larger than a run's read buffer: the buffer grows for them.
        let long_key_bytes = 100 << 10;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for last in [9u8, 0, 5, 5, 255] {
            let mut key = vec![0xabu8; long_key_bytes];
            key[long_key_bytes - 1] = last;
            keys.push(key);
            keys.push(Vec::new());
            keys.push(vec![0xab]);
        }
        keys.push(vec![0xabu8; 3 * long_key_bytes]);
        let expected = sorted_copy(&keys);
        // Every key its own run, a few keys per run, and all in memory.
        for memory_budget_bytes in [0, 250 << 10, 400 << 10, 1 << 30] {
            let (sorted, runs) = sort_all(&keys, memory_budget_bytes);
            assert!(
                sorted == expected,
                "budget {memory_budget_bytes}: wrong order"
            );
            if memory_budget_bytes == 0 {
                assert_eq!(runs, keys.len() - 1);
            }
        }
    }

    #[test]
    fn many_runs_merge() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let keys: Vec<u128> = (0..100_000)
            .map(|_| {
                // xorshift: deterministic keys without another dependency.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (u128::from(state) << 64) | u128::from(state % 1000)
            })
            .collect();
        let (sorted, runs) = sort_all(&keys, 16 * 250);
        assert_eq!(runs, 399);
        assert!(sorted == sorted_copy(&keys));
    }

    #[test]
    fn the_sorter_is_reusable_across_spills_without_growing() {
        let mut sorter = ExternalSorter::new(16 * 1000);
        for key in 0..10_000u128 {
            sorter.push(key ^ 0x5555).expect("push");
        }
        assert_eq!(sorter.spilled_runs(), 9);
        assert!(sorter.keys.capacity() <= 1000);
    }

    /// A sorter with several runs spilled and a few keys still in memory.
    fn spilled_sorter<K: SortKey>(
        keys: impl IntoIterator<Item = K>,
        budget: usize,
    ) -> ExternalSorter<K> {
        let mut sorter = ExternalSorter::new(budget);
        for key in keys {
            sorter.push(key).expect("push");
        }
        assert!(sorter.spilled_runs() > 1);
        sorter
    }

    fn first_error<K: SortKey>(mut sorted: SortedKeys<K>) -> (usize, io::Error) {
        let mut good_keys = 0;
        loop {
            match sorted.next() {
                Some(Ok(_)) => good_keys += 1,
                Some(Err(e)) => {
                    assert!(sorted.next().is_none(), "keys after an error");
                    return (good_keys, e);
                }
                None => panic!("a damaged run merged without an error"),
            }
        }
    }

    #[test]
    fn a_truncated_run_is_invalid_data() {
        // Two 100 KiB keys a run: the first key of the last run reads whole (at `finish`),
        // the second is cut off.
        let key_bytes = vec![0u8; 100 << 10].memory_bytes();
        let sorter = spilled_sorter((0..5u8).map(|b| vec![b; 100 << 10]), 2 * key_bytes);
        let spill = sorter.spill.as_ref().expect("spilled");
        spill.file.set_len(spill.end_offset - 10).expect("truncate");
        let (good_keys, error) = first_error(sorter.finish().expect("finish"));
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(good_keys < 5, "{good_keys}");

        // Cut inside the very first key of a run: finish itself reads it.
        let sorter = spilled_sorter(0..100u128, 16 * 10);
        let spill = sorter.spill.as_ref().expect("spilled");
        spill.file.set_len(8).expect("truncate");
        let error = sorter.finish().err().expect("finish reads the first keys");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_damaged_run_is_invalid_data() {
        // A length prefix claiming more than the run holds.
        let sorter = spilled_sorter((0..50u8).map(|b| vec![b; 3]), 2 * 27);
        let spill = sorter.spill.as_ref().expect("spilled");
        spill
            .file
            .write_all_at(&u32::MAX.to_be_bytes(), 7)
            .expect("damage");
        let (_, error) = first_error(sorter.finish().expect("finish"));
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        // A run that decodes to fewer keys than were written: a short length prefix leaves
        // bytes that do not form a whole key at the run's end.
        let sorter = spilled_sorter((0..50u8).map(|b| vec![b; 3]), 2 * 27);
        let spill = sorter.spill.as_ref().expect("spilled");
        spill
            .file
            .write_all_at(&0u32.to_be_bytes(), 0)
            .expect("damage");
        let (_, error) = first_error(sorter.finish().expect("finish"));
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_sorter_whose_spill_failed_refuses_to_go_on() {
        let mut sorter = spilled_sorter(0..100u128, 16 * 10);
        // As a failed write leaves it: the keys drained for the spill are gone.
        sorter.failed = true;
        assert!(sorter.push(1).is_err());
        assert!(sorter.finish().is_err());
    }

    #[test]
    fn keys_too_long_for_the_prefix_are_refused() {
        assert_eq!(length_prefix(0).expect("fits"), 0);
        assert_eq!(length_prefix(u32::MAX as usize).expect("fits"), u32::MAX);
        let error = length_prefix(u32::MAX as usize + 1).expect_err("too long");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn size_hint_counts_down() {
        let mut sorted = spilled_sorter((0..100u128).rev(), 16 * 30)
            .finish()
            .expect("finish");
        assert_eq!(sorted.size_hint(), (0, Some(100)));
        sorted.next();
        assert_eq!(sorted.size_hint(), (0, Some(99)));
        let mut in_memory = ExternalSorter::new(1 << 20);
        in_memory.push(1u128).expect("push");
        assert_eq!(
            in_memory.finish().expect("finish").size_hint(),
            (1, Some(1))
        );
    }

    /// Run with `cargo test --release --lib output::extsort -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, prints only"]
    fn timing() {
        let keys: Vec<u128> = (0..1_000_000u128)
            .map(|i| (if i % 64 == 0 { i ^ 0x3f } else { i }) << 64)
            .collect();
        // The best of a few rounds: the machine is shared.
        let (mut push_ms, mut finish_ms, mut iterate_ms) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..5 {
            let started = Instant::now();
            let mut sorter = ExternalSorter::new(64 << 20);
            for &key in &keys {
                sorter.push(key).expect("push");
            }
            let pushed = Instant::now();
            let sorted = sorter.finish().expect("finish");
            let finished = Instant::now();
            let mut count = 0;
            for key in sorted {
                key.expect("key");
                count += 1;
            }
            assert_eq!(count, keys.len());
            push_ms = push_ms.min((pushed - started).as_secs_f64() * 1e3);
            finish_ms = finish_ms.min((finished - pushed).as_secs_f64() * 1e3);
            iterate_ms = iterate_ms.min(finished.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "1M nearly sorted u128, in memory: push {push_ms:.1} ms, finish (sort) \
             {finish_ms:.1} ms, iterate {iterate_ms:.1} ms"
        );

        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let keys: Vec<u128> = (0..10_000_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                u128::from(state) << 32
            })
            .collect();
        for memory_budget_bytes in [1 << 30, 16 << 20, 1 << 20] {
            let started = Instant::now();
            let mut sorter = ExternalSorter::new(memory_budget_bytes);
            for &key in &keys {
                sorter.push(key).expect("push");
            }
            let runs = sorter.spilled_runs();
            let pushed = started.elapsed();
            let sorted = sorter.finish().expect("finish");
            let mut previous = 0u128;
            for key in sorted {
                let key = key.expect("key");
                assert!(key >= previous);
                previous = key;
            }
            println!(
                "10M random u128, budget {} KiB: {runs} runs, push+spill {:.0} ms, total {:.0} ms",
                memory_budget_bytes >> 10,
                pushed.as_secs_f64() * 1e3,
                started.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}
