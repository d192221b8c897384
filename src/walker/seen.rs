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
