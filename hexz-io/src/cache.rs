//! Bounded caches of byte ranges: [`RangeCache`], the least-recently-used
//! core, and [`SharedCache`], the same shared between threads with one load
//! per range at a time. The remote source keeps its fetched ranges in one,
//! [`CachedReader`](crate::CachedReader) its decoded blocks.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use bytes::Bytes;

/// Byte ranges (any cheaply cloned bytes, such as `bytes::Bytes`) keyed by
/// where they start, holding at most `budget` bytes; the least recently
/// used range goes first. Lookups, insertions and evictions cost O(log n).
pub struct RangeCache<V> {
    budget: usize,
    held: usize,
    tick: u64,
    /// Ranges by start, with the tick of their last use.
    ranges: BTreeMap<u64, (V, u64)>,
    /// Starts by the tick of their last use: the first is evicted next.
    by_use: BTreeMap<u64, u64>,
}

impl<V: AsRef<[u8]> + Clone> RangeCache<V> {
    /// An empty cache holding at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        RangeCache { budget, held: 0, tick: 0, ranges: BTreeMap::new(), by_use: BTreeMap::new() }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The cached range holding `[offset, offset + len)`, and where in it
    /// `offset` is; the range becomes the most recently used.
    pub fn get(&mut self, offset: u64, len: usize) -> Option<(V, usize)> {
        let tick = self.next_tick();
        let (&start, entry) = self.ranges.range_mut(..=offset).next_back()?;
        let within = usize::try_from(offset - start).ok()?;
        if within.checked_add(len)? > entry.0.as_ref().len() {
            return None;
        }
        self.by_use.remove(&entry.1);
        self.by_use.insert(tick, start);
        entry.1 = tick;
        Some((entry.0.clone(), within))
    }

    /// Whether a range starts at `start`.
    pub fn contains(&self, start: u64) -> bool {
        self.ranges.contains_key(&start)
    }

    /// Keep `bytes` (starting at `start`, replacing a range that started
    /// there), evicting the least recently used ranges beyond the budget.
    /// A range larger than the whole budget is not kept.
    pub fn put(&mut self, start: u64, bytes: V) {
        let len = bytes.as_ref().len();
        if len > self.budget {
            return;
        }
        let tick = self.next_tick();
        if let Some((old, old_tick)) = self.ranges.insert(start, (bytes, tick)) {
            self.held -= old.as_ref().len();
            self.by_use.remove(&old_tick);
        }
        self.by_use.insert(tick, start);
        self.held += len;
        while self.held > self.budget {
            let Some((_, oldest)) = self.by_use.pop_first() else { break };
            if let Some((b, _)) = self.ranges.remove(&oldest) {
                self.held -= b.as_ref().len();
            }
        }
    }

    /// Drop the range starting at `start`; returns whether there was one.
    pub fn remove(&mut self, start: u64) -> bool {
        match self.ranges.remove(&start) {
            Some((b, tick)) => {
                self.held -= b.as_ref().len();
                self.by_use.remove(&tick);
                true
            }
            None => false,
        }
    }

    /// Drop every range; returns whether any was held.
    pub fn clear(&mut self) -> bool {
        let any = !self.ranges.is_empty();
        self.ranges.clear();
        self.by_use.clear();
        self.held = 0;
        any
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Ranges held now.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether no range is held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The most bytes held at once.
    pub fn budget(&self) -> usize {
        self.budget
    }
}

/// A [`RangeCache`] of `Bytes` shared between threads, where a range being
/// loaded is loaded once: a thread wanting it waits for the thread loading
/// it instead of loading it again. A failed load keeps nothing (the next
/// thread that wants the range loads it itself), so bytes that failed a
/// check are never served from here.
pub struct SharedCache {
    state: Mutex<SharedState>,
    loaded: Condvar,
    loads: AtomicU64,
    hits: AtomicU64,
    waits: AtomicU64,
}

struct SharedState {
    ranges: RangeCache<Bytes>,
    /// Starts of the ranges being loaded now.
    loading: HashSet<u64>,
}

impl SharedCache {
    /// An empty cache holding at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        SharedCache {
            state: Mutex::new(SharedState { ranges: RangeCache::new(budget), loading: HashSet::new() }),
            loaded: Condvar::new(),
            loads: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached range holding `[offset, offset + len)` and where in it
    /// `offset` is, without loading anything.
    pub fn get(&self, offset: u64, len: usize) -> Option<(Bytes, usize)> {
        let hit = self.state().ranges.get(offset, len);
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// The range holding `[start, start + len)` and where in it `start` is:
    /// from the cache; else, when another thread is loading a range that
    /// starts at `start`, what it loaded; else `load()`'s bytes (which must
    /// start at `start` and hold at least `len` bytes), kept for the reads
    /// that follow when the load succeeds.
    pub fn get_or_load<E>(
        &self,
        start: u64,
        len: usize,
        load: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<(Bytes, usize), E> {
        let mut state = self.state();
        loop {
            if let Some(hit) = state.ranges.get(start, len) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(hit);
            }
            if state.loading.insert(start) {
                break;
            }
            // Being loaded by another thread: its bytes land in the cache
            // (or it failed, and this thread loads them itself).
            self.waits.fetch_add(1, Ordering::Relaxed);
            state = self.loaded.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        drop(state);
        // Ends the load however `load` returns (a panic too): waiters wake.
        let _loading = Loading { cache: self, start };
        self.loads.fetch_add(1, Ordering::Relaxed);
        let bytes = load()?;
        self.state().ranges.put(start, bytes.clone());
        Ok((bytes, 0))
    }

    /// Whether a range starting at `start` is held or being loaded.
    pub fn has_or_loading(&self, start: u64) -> bool {
        let state = self.state();
        state.ranges.contains(start) || state.loading.contains(&start)
    }

    /// Drop every range held (loads under way still keep theirs); returns
    /// whether any was held.
    pub fn clear(&self) -> bool {
        self.state().ranges.clear()
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.state().ranges.held()
    }

    /// The most bytes held at once.
    pub fn budget(&self) -> usize {
        self.state().ranges.budget()
    }

    /// Loads started so far (each a decode or a fetch).
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Reads served from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Times a thread waited for another thread's load of the range it
    /// wanted instead of loading it again.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

/// A load under way; dropping it ends the load and wakes the waiters.
struct Loading<'a> {
    cache: &'a SharedCache,
    start: u64,
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        self.cache.state().loading.remove(&self.start);
        self.cache.loaded.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn serves_contained_ranges_and_stays_in_budget() {
        let mut c = RangeCache::new(100);
        c.put(10, vec![1u8; 60]);
        assert_eq!(c.get(20, 10).map(|(b, at)| (b.len(), at)), Some((60, 10)));
        assert!(c.get(60, 20).is_none(), "a range reaching past the cached one");
        assert!(c.get(5, 10).is_none(), "a range starting before it");
        c.put(200, vec![2u8; 60]);
        assert_eq!(c.held(), 60);
        assert!(c.get(10, 5).is_none(), "the least recently used range went first");
        assert!(c.get(200, 60).is_some());
        c.put(300, vec![3u8; 101]);
        assert!(!c.contains(300), "a range over the whole budget is not kept");
        assert!(c.contains(200), "and evicts nothing");
        c.put(200, vec![4u8; 30]);
        assert_eq!((c.held(), c.len()), (30, 1), "a range replaced at the same start");
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut c = RangeCache::new(40);
        for start in [0u64, 100, 200, 300] {
            c.put(start, vec![0u8; 10]);
        }
        // Use order now 0, 100, 200, 300; a hit on 0 and on 200 makes 100
        // the oldest, then 300.
        assert!(c.get(0, 10).is_some() && c.get(205, 5).is_some());
        c.put(400, vec![0u8; 10]);
        assert!(!c.contains(100) && c.contains(0) && c.contains(300));
        c.put(500, vec![0u8; 20]);
        assert!(!c.contains(300) && !c.contains(0), "two evicted to make room for 20 bytes");
        assert!(c.contains(200) && c.contains(400) && c.contains(500));
        assert_eq!(c.held(), 40);
        assert!(c.remove(400) && !c.remove(400));
        assert_eq!(c.held(), 30);
        assert!(c.clear() && c.is_empty() && c.held() == 0 && !c.clear());
    }

    #[test]
    fn budget_holds_under_many_puts() {
        let mut c = RangeCache::new(1000);
        for i in 0..10_000u64 {
            c.put(i * 7 % 3000, vec![0u8; (i % 97) as usize + 1]);
            assert!(c.held() <= 1000);
        }
        assert_eq!(c.held(), c.ranges.values().map(|(b, _)| b.len()).sum::<usize>());
        assert_eq!(c.by_use.len(), c.ranges.len(), "one use entry per range");
    }

    /// Wait (at most 10 s) until `done` holds.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn two_threads_wanting_one_range_load_it_once() {
        let cache = SharedCache::new(1 << 20);
        let loads = AtomicUsize::new(0);
        let load = || {
            loads.fetch_add(1, Ordering::SeqCst);
            // Hold the load until the other thread is waiting for it.
            wait_until("the second reader to wait", || cache.waits() >= 1);
            Ok::<_, ()>(Bytes::from(vec![7u8; 4096]))
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| cache.get_or_load(4096, 4096, load));
            let b = s.spawn(|| cache.get_or_load(4096, 4096, load));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for both threads");
        assert_eq!((cache.loads(), cache.waits()), (1, 1));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.0, b.0);
        assert_eq!(a.0.as_ptr(), b.0.as_ptr(), "the same bytes, not a copy");
        assert_eq!(cache.held(), 4096);
    }

    #[test]
    fn a_failed_load_keeps_nothing_and_wakes_the_waiters() {
        let cache = SharedCache::new(1 << 20);
        let loads = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                cache.get_or_load(0, 8, || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    wait_until("the second reader to wait", || cache.waits() >= 1);
                    Err("bad bytes")
                })
            });
            let second = s.spawn(|| {
                wait_until("the first load to start", || loads.load(Ordering::SeqCst) == 1);
                cache.get_or_load(0, 8, || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, &str>(Bytes::from_static(b"good byt"))
                })
            });
            assert_eq!(first.join().unwrap(), Err("bad bytes"));
            assert_eq!(second.join().unwrap().unwrap().0, Bytes::from_static(b"good byt"));
        });
        assert_eq!(loads.load(Ordering::SeqCst), 2, "the waiter loaded again after the failure");
        assert_eq!(cache.get(0, 8).unwrap().0, Bytes::from_static(b"good byt"));
    }

    #[test]
    fn a_panicking_load_releases_its_range() {
        let cache = SharedCache::new(1 << 20);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = cache.get_or_load(0, 1, || -> Result<Bytes, ()> { panic!("load failed") });
        }));
        assert!(panicked.is_err());
        assert!(!cache.has_or_loading(0), "no range left loading forever");
        assert!(cache.get_or_load(0, 1, || Ok::<_, ()>(Bytes::from_static(b"x"))).is_ok());
    }
}
