//! A set of 64-bit hashes for the per-listing duplicate check: open addressing with linear
//! probing, half full at most. The keys are already well-mixed hashes, so they index the table
//! directly; it is about twice as fast as a general-purpose set for this one job, which runs
//! once per listed entry.

use super::disk_keys::DiskSet;

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

    /// Starts fetching the slot `h` would probe first, so that an insert of it a few entries
    /// later does not wait on memory: a large listing's set is tens of MiB, and without this
    /// each insert is a cache miss (a third of the walk's CPU on a 1M-entry directory).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(slot) = self
            .slots
            .get((h as usize) & self.slots.len().wrapping_sub(1))
        {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch is only a hint and never faults; the address is a live slot.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((slot as *const u64).cast()) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
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
        advise_huge_pages(&mut slots);
        for &h in self.slots.iter().filter(|&&h| h != 0) {
            Self::place(&mut slots, h);
        }
        self.slots = slots;
    }
}

/// Tables at least this large ask for transparent huge pages.
const HUGE_PAGE_TABLE_BYTES_MIN: usize = 4 << 20;

/// Asks the kernel to back a large table with huge pages (where transparent huge pages are
/// `madvise`d, as on Debian): every probe of a table of tens of MiB lands on a random 4 KiB
/// page otherwise, and the page walk of each TLB miss costs more than the cache miss itself.
/// Only advice: nothing changes where the kernel declines it.
fn advise_huge_pages(slots: &mut [u64]) {
    let bytes = std::mem::size_of_val(slots);
    if bytes < HUGE_PAGE_TABLE_BYTES_MIN {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // madvise wants a page-aligned start: advise the whole pages inside the table.
        const PAGE: usize = 4096;
        let start = slots.as_mut_ptr() as usize;
        let aligned = start.next_multiple_of(PAGE);
        let len = (start + bytes - aligned) / PAGE * PAGE;
        // SAFETY: the range lies inside `slots`, which this call borrows mutably; the advice
        // changes how its memory is backed, never its contents.
        unsafe {
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
}

/// How many entries ahead [`KeyedAhead`] computes keys: enough prefetches in flight to cover
/// a memory access while the entries between are processed.
pub const PREFETCH_AHEAD: usize = 16;

/// A listing's entries with their keys, each computed [`PREFETCH_AHEAD`] entries before it is
/// handed out, when its set slot is prefetched: the set is touched in the order of the
/// entries, but the memory latency of one insert overlaps the work on the entries before it.
/// Each entry is decoded once.
pub struct KeyedAhead<I: Iterator, F> {
    entries: I,
    key: F,
    ahead: std::collections::VecDeque<(I::Item, u64)>,
}

impl<I: Iterator, F: Fn(&I::Item) -> u64> KeyedAhead<I, F> {
    pub fn new(entries: I, key: F) -> Self {
        KeyedAhead {
            entries,
            key,
            ahead: std::collections::VecDeque::with_capacity(PREFETCH_AHEAD),
        }
    }

    /// The next entry and its key; `prefetch` is called with the keys of entries read ahead.
    #[inline]
    pub fn next_with(&mut self, mut prefetch: impl FnMut(u64)) -> Option<(I::Item, u64)> {
        while self.ahead.len() < PREFETCH_AHEAD {
            let Some(e) = self.entries.next() else { break };
            let k = (self.key)(&e);
            prefetch(k);
            self.ahead.push_back((e, k));
        }
        self.ahead.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Entries come out in order with their keys, and every key was prefetched before its
    /// entry came out.
    #[test]
    fn keyed_ahead_hands_out_every_entry_in_order_after_its_prefetch() {
        for n in [
            0usize,
            1,
            PREFETCH_AHEAD - 1,
            PREFETCH_AHEAD,
            3 * PREFETCH_AHEAD + 5,
        ] {
            let mut ahead = KeyedAhead::new(0..n as u64, |e| e * 31 + 7);
            let mut prefetched = Vec::new();
            let mut out = Vec::new();
            while let Some((e, k)) = ahead.next_with(|k| prefetched.push(k)) {
                assert!(
                    prefetched.contains(&k),
                    "key of {e} prefetched before it came out"
                );
                out.push((e, k));
            }
            let want: Vec<(u64, u64)> = (0..n as u64).map(|e| (e, e * 31 + 7)).collect();
            assert_eq!(out, want);
            assert_eq!(prefetched, want.iter().map(|p| p.1).collect::<Vec<_>>());
        }
        // prefetching into an empty or a filled set is harmless
        let mut set = HashSet64::new();
        set.prefetch(5);
        set.insert(5);
        set.prefetch(5);
        set.prefetch(0);
        assert!(set.contains(5));
    }

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
/// key at most); beyond that, keys go to disk in sorted runs of [`SPILL_BATCH_KEYS`]
/// ([`DiskSet`]: 8 bytes per key on disk; in memory one batch and a sparse index of 1/512 of
/// the keys). The spilled keys are looked up only when a listing restarts, a block read per
/// lookup, so a restart past millions of entries never loads them all. The trade-off: past the
/// in-memory part, an entry a server sends twice *without* a restart (a misbehaving server; a
/// directory changing under the scan) is not caught; cookie cycles still are, by the listing
/// itself.
#[derive(Debug)]
pub struct EmittedSet {
    memory: HashSet64,
    memory_keys_max: usize,
    /// Keys past the memory bound, waiting to be written as a run.
    pending: Vec<u64>,
    disk: DiskSet<u64>,
    spilled: u64,
    /// Whether a restart happened: from then on, spilled keys are looked up too.
    restarted: bool,
}

/// Keys past the in-memory bound written to disk at a time (512 KiB).
pub const SPILL_BATCH_KEYS: usize = 1 << 16;

impl EmittedSet {
    pub fn new(memory_keys_max: usize) -> Self {
        EmittedSet {
            memory: HashSet64::new(),
            memory_keys_max,
            pending: Vec::new(),
            disk: DiskSet::default(),
            spilled: 0,
            restarted: false,
        }
    }

    /// Keys recorded: the entries a listing handed out.
    pub fn len(&self) -> u64 {
        self.memory.len() as u64 + self.spilled
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
        // After a restart the spilled keys count too, looked up on disk only for a key not in
        // memory (most keys a restarted listing repeats are).
        if self.restarted && (self.memory.contains(key) || self.spilled_contains(key)) {
            return false;
        }
        if self.memory.len() < self.memory_keys_max {
            // One probe: the insert itself says whether the key was there.
            return self.memory.insert(key);
        }
        if self.memory.contains(key) {
            return false;
        }
        self.pending.push(key);
        self.spilled += 1;
        if self.pending.len() >= SPILL_BATCH_KEYS {
            self.write_pending();
        }
        true
    }

    /// See [`HashSet64::prefetch`].
    #[inline]
    pub fn prefetch(&self, key: u64) {
        self.memory.prefetch(key);
    }

    fn spilled_contains(&mut self, key: u64) -> bool {
        if self.pending.contains(&key) {
            return true;
        }
        // An unreadable run counts as holding the key: nothing is ever written twice.
        self.disk.contains(key).unwrap_or(true)
    }

    fn write_pending(&mut self) {
        if let Err(e) = self.disk.add(&mut self.pending) {
            // No temporary file: the keys stay in memory, past the bound, rather than lost.
            tracing::warn!(error = %e, "spilling listing keys failed; keeping them in memory");
            self.spilled -= self.pending.len() as u64;
            for k in self.pending.drain(..) {
                self.memory.insert(k);
            }
        }
    }

    /// A listing restarts: every key recorded so far must be found by [`EmittedSet::insert`],
    /// so from now on the spilled ones are looked up on disk.
    pub fn prepare_restart(&mut self) {
        self.write_pending();
        self.restarted = true;
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
        let n = (SPILL_BATCH_KEYS as u64) * 20 + 12_345;
        for i in 0..n {
            assert!(set.insert(key(i)));
        }
        set.prepare_restart();
        assert_eq!(set.disk.len(), n - 1000);
        assert!(set.disk.runs_and_index_keys().1 < (n as usize) / 400);
        assert_eq!(set.memory_len(), 1000);
        for i in (0..n).step_by(97) {
            assert!(!set.insert(key(i)), "key {i} was written before");
        }
        for i in 0..5000 {
            assert!(set.insert(key(n + i) & !1), "a new key");
        }
    }
}
