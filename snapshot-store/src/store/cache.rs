//! One byte-bounded LRU cache of decoded frames shared by every reader of a store.
//!
//! Keys are (object, frame). Values are reference counted, so a frame stays valid for a reader
//! that holds it even after eviction. Decoding happens outside the lock: two threads never wait for
//! each other's decompression (they may, rarely, decode the same frame twice).

use std::hash::Hash;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;

/// A byte-bounded LRU map from `K` to shared byte buffers or other sized values.
pub struct ByteLru<K: Hash + Eq, V> {
    inner: Mutex<Inner<K, V>>,
    capacity: usize,
}

struct Inner<K: Hash + Eq, V> {
    map: LruCache<K, (Arc<V>, usize)>,
    bytes: usize,
    hits: u64,
    misses: u64,
}

impl<K: Hash + Eq, V> ByteLru<K, V> {
    /// A cache holding at most `capacity` bytes (as reported by the inserter).
    pub fn new(capacity: usize) -> Self {
        ByteLru {
            inner: Mutex::new(Inner {
                map: LruCache::unbounded(),
                bytes: 0,
                hits: 0,
                misses: 0,
            }),
            capacity,
        }
    }

    /// The value for `key`, if cached (marks it most recently used).
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let mut g = self.inner.lock();
        match g.map.get(key).map(|(v, _)| Arc::clone(v)) {
            Some(v) => {
                g.hits += 1;
                Some(v)
            }
            None => {
                g.misses += 1;
                None
            }
        }
    }

    /// True when `key` is cached (does not change its recency).
    pub fn contains(&self, key: &K) -> bool {
        self.inner.lock().map.contains(key)
    }

    /// Inserts `value` of `size` bytes, evicting least recently used entries beyond capacity.
    /// Values larger than the whole capacity are returned without being cached.
    pub fn insert(&self, key: K, value: Arc<V>, size: usize) -> Arc<V> {
        if size > self.capacity {
            return value;
        }
        let mut g = self.inner.lock();
        if let Some((_, old)) = g.map.put(key, (Arc::clone(&value), size)) {
            g.bytes -= old;
        }
        g.bytes += size;
        while g.bytes > self.capacity {
            match g.map.pop_lru() {
                Some((_, (_, s))) => g.bytes -= s,
                None => break,
            }
        }
        value
    }

    /// Returns the cached value or computes, caches and returns it.
    pub fn get_or_try_insert<E>(&self, key: K, make: impl FnOnce() -> Result<(V, usize), E>) -> Result<Arc<V>, E> {
        if let Some(v) = self.get(&key) {
            return Ok(v);
        }
        let (v, size) = make()?;
        Ok(self.insert(key, Arc::new(v), size))
    }

    /// Drops every entry (holders of a value keep theirs).
    pub fn clear(&self) {
        let mut g = self.inner.lock();
        g.map.clear();
        g.bytes = 0;
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// (hits, misses) since creation.
    pub fn stats(&self) -> (u64, u64) {
        let g = self.inner.lock();
        (g.hits, g.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_by_bytes_in_lru_order() {
        let c: ByteLru<u32, Vec<u8>> = ByteLru::new(100);
        c.insert(1, Arc::new(vec![0; 40]), 40);
        c.insert(2, Arc::new(vec![0; 40]), 40);
        assert!(c.get(&1).is_some());
        c.insert(3, Arc::new(vec![0; 40]), 40);
        assert!(c.get(&2).is_none(), "2 was least recently used");
        assert!(c.get(&1).is_some() && c.get(&3).is_some());
        assert_eq!(c.bytes(), 80);
        c.insert(4, Arc::new(vec![0; 500]), 500);
        assert!(c.get(&4).is_none(), "too large to cache");
        assert_eq!(c.bytes(), 80);
    }
}
