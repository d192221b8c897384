//! Sets of fixed-size keys too large for memory: sorted runs in unlinked temporary files, each
//! looked up through a sparse index (one key per 4 KiB block, 1/256 to 1/512 of the keys) and
//! one block read; runs are merged by size tier, so a lookup reads a few blocks and every key
//! is rewritten a few times at most. Used where memory must follow the work in flight, not the
//! tree: the directories visited by a scan, the entries of a listing that restarts.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

/// A key stored on disk in `BYTES` little-endian bytes.
pub trait DiskKey: Ord + Copy {
    const BYTES: usize;
    fn put(&self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

impl DiskKey for u64 {
    const BYTES: usize = 8;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))
    }
}

impl DiskKey for u128 {
    const BYTES: usize = 16;
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        u128::from_le_bytes(b[..16].try_into().unwrap_or([0; 16]))
    }
}

/// Bytes per block of a run: one read per lookup.
const BLOCK_BYTES: usize = 4096;
/// Runs of one size tier merged into one when there are this many: a lookup reads at most
/// this many blocks per tier.
pub const RUNS_PER_TIER_MAX: usize = 8;

/// Keys sorted in a temporary file, with the first key of every block in memory.
#[derive(Debug)]
pub struct SortedRun<K> {
    file: File,
    len: u64,
    block_first: Vec<K>,
}

impl<K: DiskKey> SortedRun<K> {
    fn keys_per_block() -> usize {
        BLOCK_BYTES / K::BYTES
    }

    /// Writes `keys` (sorted and deduplicated here) as a run.
    pub fn write(keys: &mut Vec<K>) -> io::Result<Self> {
        keys.sort_unstable();
        keys.dedup();
        let mut w = RunWriter::new()?;
        for &k in keys.iter() {
            w.push(k)?;
        }
        w.finish()
    }

    /// Merges runs into one, dropping duplicates.
    pub fn merge(runs: Vec<SortedRun<K>>) -> io::Result<Self> {
        let mut readers: Vec<RunReader<'_, K>> = runs.iter().map(RunReader::new).collect();
        let mut heap = std::collections::BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(k) = r.next_key()? {
                heap.push(std::cmp::Reverse((k, i)));
            }
        }
        let mut w = RunWriter::new()?;
        let mut last = None;
        while let Some(std::cmp::Reverse((k, i))) = heap.pop() {
            if last != Some(k) {
                w.push(k)?;
                last = Some(k);
            }
            if let Some(n) = readers[i].next_key()? {
                heap.push(std::cmp::Reverse((n, i)));
            }
        }
        w.finish()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Blocks (and so keys of the sparse index) of the run.
    pub fn blocks(&self) -> usize {
        self.block_first.len()
    }

    /// Whether `key` is in the run; `block` is scratch space.
    pub fn contains(&self, key: K, block: &mut Vec<u8>) -> io::Result<bool> {
        let b = match self.block_first.binary_search(&key) {
            Ok(_) => return Ok(true),
            Err(0) => return Ok(false),
            Err(i) => i - 1,
        };
        let per = Self::keys_per_block();
        let start = (b * per) as u64;
        let n = (self.len - start).min(per as u64) as usize;
        block.resize(n * K::BYTES, 0);
        self.file.read_exact_at(block, start * K::BYTES as u64)?;
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match K::get(&block[mid * K::BYTES..]).cmp(&key) {
                std::cmp::Ordering::Equal => return Ok(true),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(false)
    }
}

struct RunWriter<K> {
    out: BufWriter<File>,
    len: u64,
    block_first: Vec<K>,
    bytes: Vec<u8>,
}

impl<K: DiskKey> RunWriter<K> {
    fn new() -> io::Result<Self> {
        Ok(RunWriter {
            out: BufWriter::with_capacity(64 << 10, tempfile::tempfile()?),
            len: 0,
            block_first: Vec::new(),
            bytes: Vec::with_capacity(16),
        })
    }

    fn push(&mut self, k: K) -> io::Result<()> {
        if self
            .len
            .is_multiple_of(SortedRun::<K>::keys_per_block() as u64)
        {
            self.block_first.push(k);
        }
        self.bytes.clear();
        k.put(&mut self.bytes);
        self.out.write_all(&self.bytes)?;
        self.len += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<SortedRun<K>> {
        Ok(SortedRun {
            file: self.out.into_inner().map_err(|e| e.into_error())?,
            len: self.len,
            block_first: self.block_first,
        })
    }
}

/// Reads a run in order, 64 KiB at a time.
struct RunReader<'a, K> {
    run: &'a SortedRun<K>,
    next: u64,
    buf: Vec<u8>,
    at: usize,
}

impl<'a, K: DiskKey> RunReader<'a, K> {
    fn new(run: &'a SortedRun<K>) -> Self {
        RunReader {
            run,
            next: 0,
            buf: Vec::new(),
            at: 0,
        }
    }

    fn next_key(&mut self) -> io::Result<Option<K>> {
        if self.at == self.buf.len() {
            let left = self.run.len - self.next;
            if left == 0 {
                return Ok(None);
            }
            let n = left.min((64 << 10) / K::BYTES as u64);
            self.buf.resize(n as usize * K::BYTES, 0);
            self.run
                .file
                .read_exact_at(&mut self.buf, self.next * K::BYTES as u64)?;
            self.next += n;
            self.at = 0;
        }
        let k = K::get(&self.buf[self.at..]);
        self.at += K::BYTES;
        Ok(Some(k))
    }
}

/// A set of keys on disk: runs grouped by size tier (a run of tier t holds about
/// `RUNS_PER_TIER_MAX^t` batches); when a tier fills, its runs merge into one of the next.
#[derive(Debug)]
pub struct DiskSet<K> {
    tiers: Vec<Vec<SortedRun<K>>>,
    block: Vec<u8>,
}

impl<K: DiskKey> Default for DiskSet<K> {
    fn default() -> Self {
        DiskSet {
            tiers: Vec::new(),
            block: Vec::new(),
        }
    }
}

impl<K: DiskKey> DiskSet<K> {
    /// Adds a batch of keys (taken, sorted and written as a run of the first tier).
    pub fn add(&mut self, keys: &mut Vec<K>) -> io::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let run = SortedRun::write(keys)?;
        keys.clear();
        self.add_run(0, run)
    }

    fn add_run(&mut self, tier: usize, run: SortedRun<K>) -> io::Result<()> {
        if self.tiers.len() == tier {
            self.tiers.push(Vec::new());
        }
        self.tiers[tier].push(run);
        if self.tiers[tier].len() >= RUNS_PER_TIER_MAX {
            let runs = std::mem::take(&mut self.tiers[tier]);
            let merged = SortedRun::merge(runs)?;
            self.add_run(tier + 1, merged)?;
        }
        Ok(())
    }

    /// Whether `key` was added.
    pub fn contains(&mut self, key: K) -> io::Result<bool> {
        for run in self.tiers.iter().flatten() {
            if run.contains(key, &mut self.block)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Keys on disk (duplicates across runs counted once per run).
    pub fn len(&self) -> u64 {
        self.tiers.iter().flatten().map(SortedRun::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs, and keys of the sparse indexes held in memory.
    pub fn runs_and_index_keys(&self) -> (usize, usize) {
        let runs = self.tiers.iter().flatten();
        (runs.clone().count(), runs.map(SortedRun::blocks).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_added_in_batches_are_found_through_every_tier_and_others_are_not() {
        let mut set = DiskSet::<u128>::default();
        let key = |i: u64| u128::from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) << 1;
        let mut batch = Vec::new();
        let n = 70_000u64;
        for i in 0..n {
            batch.push(key(i));
            if batch.len() == 1000 {
                set.add(&mut batch).unwrap();
            }
        }
        set.add(&mut batch).unwrap();
        let (runs, index) = set.runs_and_index_keys();
        // 70 batches: tiers merged (8 -> 1), so far fewer runs than batches.
        assert!(runs < 20, "{runs} runs");
        assert_eq!(set.len(), n);
        assert!(index < (n as usize) / 200);
        for i in (0..n).step_by(7) {
            assert!(set.contains(key(i)).unwrap(), "key {i}");
            assert!(!set.contains(key(i) | 1).unwrap(), "not added: {i}");
        }
    }
}
