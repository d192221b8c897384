//! A set of 64-bit hashes for the per-listing duplicate check: open addressing with linear
//! probing, half full at most. The keys are already well-mixed hashes, so they index the table
//! directly; it is about twice as fast as a general-purpose set for this one job, which runs
//! once per listed entry.

#[derive(Debug, Default, Clone)]
pub struct HashSet64 {
    /// 0 marks an empty slot; the key 0 itself is tracked by `has_zero`.
    slots: Vec<u64>,
    len: usize,
    has_zero: bool,
}

impl HashSet64 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `h`; false if it was present already.
    #[inline]
    pub fn insert(&mut self, h: u64) -> bool {
        if h == 0 {
            let fresh = !self.has_zero;
            self.has_zero = true;
            self.len += fresh as usize;
            return fresh;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let fresh = Self::place(&mut self.slots, h);
        self.len += fresh as usize;
        fresh
    }

    pub fn contains(&self, h: u64) -> bool {
        if h == 0 {
            return self.has_zero;
        }
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut i = (h as usize) & mask;
        loop {
            match self.slots[i] {
                0 => return false,
                s if s == h => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    #[inline]
    fn place(slots: &mut [u64], h: u64) -> bool {
        let mask = slots.len() - 1;
        let mut i = (h as usize) & mask;
        loop {
            match slots[i] {
                0 => {
                    slots[i] = h;
                    return true;
                }
                s if s == h => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(64);
        let mut slots = vec![0u64; cap];
        for &h in self.slots.iter().filter(|&&h| h != 0) {
            Self::place(&mut slots, h);
        }
        self.slots = slots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_set(keys in proptest::collection::vec(any::<u64>().prop_map(|k| k % 5000), 0..3000)) {
            let mut ours = HashSet64::new();
            let mut reference = std::collections::HashSet::new();
            for k in keys {
                prop_assert_eq!(ours.insert(k), reference.insert(k));
                prop_assert!(ours.contains(k));
            }
            prop_assert_eq!(ours.len(), reference.len());
            for k in 0..5000u64 {
                prop_assert_eq!(ours.contains(k), reference.contains(&k));
            }
        }
    }
}

/// Entries of one listing already written, by a 64-bit hash of (name, fileid), so that a
/// restarted listing (NFS3ERR_BAD_COOKIE) or a server repeating itself never writes one twice.
///
/// Memory is bounded: the first `memory_keys_max` keys live in a [`HashSet64`] (16 bytes per
/// key at most); beyond that, keys are appended to an unlinked temporary file (8 bytes per key
/// on disk, a small buffer in memory). When a listing restarts, the spilled keys are sorted on
/// disk ([`SortedKeys`]: runs of [`SORT_RUN_KEYS`] keys merged into a second temporary file)
/// and looked up there through a sparse index (8 bytes per [`SORTED_BLOCK_KEYS`] keys) and one
/// 4 KiB read per lookup, so a restart past millions of entries never loads them all. The
/// trade-off: past the in-memory part, an entry a server sends twice *without* a restart (a
/// misbehaving server; a directory changing under the scan) is not caught; cookie cycles still
/// are, by the listing itself.
#[derive(Debug)]
pub struct EmittedSet {
    memory: HashSet64,
    memory_keys_max: usize,
    spill: Option<std::io::BufWriter<std::fs::File>>,
    spilled: u64,
    /// Spilled keys sorted at the last restart.
    restart_keys: Option<SortedKeys>,
}

/// Keys sorted in memory at a time when spilled keys are sorted for a restart (8 MiB).
pub const SORT_RUN_KEYS: usize = 1 << 20;
/// Keys per block of the sorted file: one 4 KiB read per lookup; the sparse index holds one
/// key per block (1/512 of the keys).
pub const SORTED_BLOCK_KEYS: usize = 512;

/// Keys sorted in a temporary file, with the first key of every block in memory.
#[derive(Debug)]
pub struct SortedKeys {
    file: std::fs::File,
    len: u64,
    block_first: Vec<u64>,
    block: Vec<u8>,
}

impl SortedKeys {
    /// Sorts the keys of `spill` (little-endian u64s): runs sorted in memory, then merged
    /// with duplicates dropped.
    fn sort(spill: &mut std::fs::File) -> std::io::Result<SortedKeys> {
        use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
        spill.seek(SeekFrom::Start(0))?;
        let mut runs_file = BufWriter::new(tempfile::tempfile()?);
        let mut runs: Vec<(u64, u64)> = Vec::new(); // (first key index, keys)
        let mut reader = BufReader::with_capacity(64 << 10, &mut *spill);
        let mut run: Vec<u64> = Vec::new();
        let mut written = 0u64;
        let mut word = [0u8; 8];
        let mut flush_run =
            |run: &mut Vec<u64>, runs_file: &mut BufWriter<std::fs::File>| -> std::io::Result<()> {
                if run.is_empty() {
                    return Ok(());
                }
                run.sort_unstable();
                run.dedup();
                for k in run.iter() {
                    runs_file.write_all(&k.to_le_bytes())?;
                }
                runs.push((written, run.len() as u64));
                written += run.len() as u64;
                run.clear();
                Ok(())
            };
        loop {
            match reader.read_exact(&mut word) {
                Ok(()) => run.push(u64::from_le_bytes(word)),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            }
            if run.len() >= SORT_RUN_KEYS {
                flush_run(&mut run, &mut runs_file)?;
            }
        }
        flush_run(&mut run, &mut runs_file)?;
        drop(reader);
        spill.seek(SeekFrom::End(0))?;
        let runs_file = runs_file.into_inner().map_err(|e| e.into_error())?;
        // Merge: one buffered reader per run over its own handle of the runs file.
        let mut readers = Vec::with_capacity(runs.len());
        let mut heap = std::collections::BinaryHeap::new();
        for (i, &(start, len)) in runs.iter().enumerate() {
            let mut f = runs_file.try_clone()?;
            // try_clone shares the offset: each reader seeks before every refill instead.
            f.seek(SeekFrom::Start(start * 8))?;
            readers.push(RunReader {
                file: f,
                next: start,
                left: len,
                buf: Vec::new(),
                at: 0,
            });
            if let Some(k) = readers[i].next_key()? {
                heap.push(std::cmp::Reverse((k, i)));
            }
        }
        let mut out = BufWriter::new(tempfile::tempfile()?);
        let mut block_first = Vec::new();
        let mut len = 0u64;
        let mut last = None;
        while let Some(std::cmp::Reverse((k, i))) = heap.pop() {
            if last != Some(k) {
                if len % SORTED_BLOCK_KEYS as u64 == 0 {
                    block_first.push(k);
                }
                out.write_all(&k.to_le_bytes())?;
                len += 1;
                last = Some(k);
            }
            if let Some(n) = readers[i].next_key()? {
                heap.push(std::cmp::Reverse((n, i)));
            }
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        Ok(SortedKeys {
            file,
            len,
            block_first,
            block: Vec::with_capacity(SORTED_BLOCK_KEYS * 8),
        })
    }

    /// Whether `key` is among the sorted keys.
    fn contains(&mut self, key: u64) -> bool {
        use std::os::unix::fs::FileExt;
        let b = match self.block_first.binary_search(&key) {
            Ok(_) => return true,
            Err(0) => return false,
            Err(i) => i - 1,
        };
        let start = (b * SORTED_BLOCK_KEYS) as u64;
        let n = (self.len - start).min(SORTED_BLOCK_KEYS as u64) as usize;
        self.block.resize(n * 8, 0);
        if self.file.read_exact_at(&mut self.block, start * 8).is_err() {
            // Unreadable: treat as written, so nothing is ever written twice.
            return true;
        }
        let at = |i: usize| {
            let c = &self.block[i * 8..i * 8 + 8];
            u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
        };
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match at(mid).cmp(&key) {
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        false
    }
}

/// One sorted run being merged: reads its part of the runs file in 64 KiB pieces.
struct RunReader {
    file: std::fs::File,
    /// Index (in keys) of the next key to read from the file.
    next: u64,
    left: u64,
    buf: Vec<u8>,
    at: usize,
}

impl RunReader {
    fn next_key(&mut self) -> std::io::Result<Option<u64>> {
        use std::os::unix::fs::FileExt;
        if self.at == self.buf.len() {
            if self.left == 0 {
                return Ok(None);
            }
            let n = self.left.min(8192);
            self.buf.resize(n as usize * 8, 0);
            self.file.read_exact_at(&mut self.buf, self.next * 8)?;
            self.next += n;
            self.left -= n;
            self.at = 0;
        }
        let c = &self.buf[self.at..self.at + 8];
        self.at += 8;
        Ok(Some(u64::from_le_bytes([
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
        ])))
    }
}

impl EmittedSet {
    pub fn new(memory_keys_max: usize) -> Self {
        EmittedSet {
            memory: HashSet64::new(),
            memory_keys_max,
            spill: None,
            spilled: 0,
            restart_keys: None,
        }
    }

    /// Keys held in memory (not counting spilled ones).
    pub fn memory_len(&self) -> usize {
        self.memory.len()
    }

    pub fn spilled(&self) -> u64 {
        self.spilled
    }

    /// Records `key`; false if it was recorded before.
    #[inline]
    pub fn insert(&mut self, key: u64) -> bool {
        if self.memory.contains(key) || self.restart_keys.as_mut().is_some_and(|s| s.contains(key))
        {
            return false;
        }
        if self.memory.len() < self.memory_keys_max {
            return self.memory.insert(key);
        }
        self.spill_key(key);
        true
    }

    fn spill_key(&mut self, key: u64) {
        use std::io::Write;
        if self.spill.is_none() {
            if let Ok(f) = tempfile::tempfile() {
                self.spill = Some(std::io::BufWriter::with_capacity(64 << 10, f));
            }
        }
        let ok = self
            .spill
            .as_mut()
            .is_some_and(|w| w.write_all(&key.to_le_bytes()).is_ok());
        if ok {
            self.spilled += 1;
        } else {
            // No temporary file: the key stays in memory, past the bound, rather than lost.
            self.memory.insert(key);
        }
    }

    /// A listing restarts: every key recorded so far must be found by [`EmittedSet::insert`],
    /// so the spilled ones are sorted on disk for lookups (see the type's description). Should
    /// that fail, the keys are read into memory as a last resort.
    pub fn prepare_restart(&mut self) {
        use std::io::Write;
        use std::io::{Read, Seek, SeekFrom};
        self.restart_keys = None;
        let Some(w) = self.spill.as_mut() else {
            return;
        };
        let sorted = w.flush().and_then(|()| SortedKeys::sort(w.get_mut()));
        match sorted {
            Ok(sorted) => self.restart_keys = Some(sorted),
            Err(e) => {
                tracing::warn!(error = %e, "sorting spilled listing keys failed; reading them into memory");
                let f = w.get_mut();
                let mut bytes = Vec::new();
                if f.seek(SeekFrom::Start(0)).is_ok() && f.read_to_end(&mut bytes).is_ok() {
                    for c in bytes.chunks_exact(8) {
                        self.memory.insert(u64::from_le_bytes([
                            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                        ]));
                    }
                }
                let _ = f.seek(SeekFrom::End(0));
            }
        }
    }
}

#[cfg(test)]
mod emitted_tests {
    use super::*;

    #[test]
    fn keys_past_the_memory_bound_spill_and_are_found_after_a_restart() {
        let mut set = EmittedSet::new(100);
        for k in 1..=1000u64 {
            assert!(set.insert(k * 7919));
        }
        assert_eq!(set.memory_len(), 100);
        assert_eq!(set.spilled(), 900);
        set.prepare_restart();
        for k in 1..=1000u64 {
            assert!(!set.insert(k * 7919), "key {k} written before");
        }
        assert!(set.insert(1_000_003));
        // new keys after the restart are spilled as well and found after a second restart
        for k in 2000..2100u64 {
            assert!(set.insert(k * 7919));
        }
        set.prepare_restart();
        assert!(!set.insert(2050 * 7919));
        assert!(!set.insert(5 * 7919));
    }

    /// Past several sort runs and many blocks, every spilled key is found after a restart,
    /// and no other key is, while memory holds only the bounded part and the sparse index.
    #[test]
    fn a_restart_past_millions_of_spilled_keys_reads_them_from_disk() {
        let mut set = EmittedSet::new(1000);
        let key = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let n = (SORT_RUN_KEYS as u64) * 2 + 12_345;
        for i in 0..n {
            assert!(set.insert(key(i)));
        }
        set.prepare_restart();
        let sorted = set.restart_keys.as_ref().expect("sorted on disk");
        assert_eq!(sorted.len, n - 1000);
        assert_eq!(
            sorted.block_first.len(),
            (n - 1000).div_ceil(SORTED_BLOCK_KEYS as u64) as usize
        );
        assert_eq!(set.memory_len(), 1000);
        for i in (0..n).step_by(97) {
            assert!(!set.insert(key(i)), "key {i} was written before");
        }
        for i in 0..5000 {
            assert!(set.insert(key(n + i) & !1), "a new key");
        }
    }
}
