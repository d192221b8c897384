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
/// on disk, a small buffer in memory). The spilled keys are read back, sorted, only when a
/// listing restarts. The trade-off: past the in-memory part, an entry a server sends twice
/// *without* a restart (a misbehaving server; a directory changing under the scan) is not
/// caught; cookie cycles still are, by the listing itself.
#[derive(Debug)]
pub struct EmittedSet {
    memory: HashSet64,
    memory_keys_max: usize,
    spill: Option<std::io::BufWriter<std::fs::File>>,
    spilled: u64,
    /// Spilled keys loaded at the last restart, sorted.
    restart_keys: Vec<u64>,
    /// Keys that could not be spilled (temporary file unavailable) stay in memory here.
    overflow: Vec<u64>,
}

impl EmittedSet {
    pub fn new(memory_keys_max: usize) -> Self {
        EmittedSet {
            memory: HashSet64::new(),
            memory_keys_max,
            spill: None,
            spilled: 0,
            restart_keys: Vec::new(),
            overflow: Vec::new(),
        }
    }

    /// Keys recorded: the entries a listing handed out.
    pub fn len(&self) -> u64 {
        self.memory.len() as u64 + self.spilled + self.overflow.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        if self.memory.contains(key)
            || (!self.restart_keys.is_empty() && self.restart_keys.binary_search(&key).is_ok())
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
            match tempfile::tempfile() {
                Ok(f) => self.spill = Some(std::io::BufWriter::with_capacity(64 << 10, f)),
                Err(_) => {
                    self.overflow.push(key);
                    return;
                }
            }
        }
        let ok = self
            .spill
            .as_mut()
            .is_some_and(|w| w.write_all(&key.to_le_bytes()).is_ok());
        if ok {
            self.spilled += 1;
        } else {
            self.overflow.push(key);
        }
    }

    /// A listing restarts: every key recorded so far must be found by [`EmittedSet::insert`],
    /// so the spilled ones are read back (sorted) for binary search.
    pub fn prepare_restart(&mut self) {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut keys = self.overflow.clone();
        if let Some(w) = self.spill.as_mut() {
            let mut bytes = Vec::new();
            let read = w.flush().is_ok()
                && w.get_mut().seek(SeekFrom::Start(0)).is_ok()
                && w.get_mut().read_to_end(&mut bytes).is_ok()
                && w.get_mut().seek(SeekFrom::End(0)).is_ok();
            if read {
                keys.extend(
                    bytes.chunks_exact(8).map(|c| {
                        u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                    }),
                );
            }
        }
        keys.sort_unstable();
        keys.dedup();
        self.restart_keys = keys;
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
}
