//! A bounded cache of byte ranges by start offset, least recently used
//! evicted first: fetched ranges of a remote object, decoded blocks of a
//! mount. One mechanism for both.

use std::collections::BTreeMap;

/// Byte ranges (any cheaply cloned bytes, such as `bytes::Bytes`)
/// keyed by where they start, holding at most `budget` bytes.
pub struct RangeCache<V> {
    budget: usize,
    held: usize,
    tick: u64,
    ranges: BTreeMap<u64, (V, u64)>,
}

impl<V: AsRef<[u8]> + Clone> RangeCache<V> {
    pub fn new(budget: usize) -> Self {
        RangeCache { budget, held: 0, tick: 0, ranges: BTreeMap::new() }
    }

    /// The cached range holding `[offset, offset + len)`, and where in it
    /// `offset` is.
    pub fn get(&mut self, offset: u64, len: usize) -> Option<(V, usize)> {
        self.tick += 1;
        let tick = self.tick;
        let (&start, entry) = self.ranges.range_mut(..=offset).next_back()?;
        let within = usize::try_from(offset - start).ok()?;
        if within.checked_add(len)? > entry.0.as_ref().len() {
            return None;
        }
        entry.1 = tick;
        Some((entry.0.clone(), within))
    }

    /// Whether a range starts at `start`.
    pub fn contains(&self, start: u64) -> bool {
        self.ranges.contains_key(&start)
    }

    /// Keep `bytes` (starting at `start`); ranges larger than the whole
    /// budget are not kept.
    pub fn put(&mut self, start: u64, bytes: V) {
        let len = bytes.as_ref().len();
        if len > self.budget {
            return;
        }
        self.tick += 1;
        if let Some((old, _)) = self.ranges.insert(start, (bytes, self.tick)) {
            self.held -= old.as_ref().len();
        }
        self.held += len;
        while self.held > self.budget {
            let oldest = self.ranges.iter().min_by_key(|(_, (_, t))| *t).map(|(&k, _)| k);
            match oldest.and_then(|k| self.ranges.remove(&k)) {
                Some((b, _)) => self.held -= b.as_ref().len(),
                None => break,
            }
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_contained_ranges_and_stays_in_budget() {
        let mut c = RangeCache::new(100);
        c.put(10, vec![1u8; 60]);
        assert_eq!(c.get(20, 10).map(|(b, at)| (b.len(), at)), Some((60, 10)));
        assert!(c.get(60, 20).is_none());
        c.put(200, vec![2u8; 60]);
        assert!(c.held() <= 100);
        assert!(c.get(10, 5).is_none(), "the least recently used range went first");
        assert!(c.get(200, 60).is_some());
        c.put(300, vec![3u8; 101]);
        assert!(!c.contains(300), "a range over the whole budget is not kept");
    }
}
