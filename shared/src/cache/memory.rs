use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Cache, CappedIncrement};

const SHARDS: usize = 16;

/// In-process twin of the Redis cache, for `huoke dev` and tests. Keys are spread
/// over shards, each behind its own mutex, which makes every single-key operation
/// atomic as single Redis commands are; the HTTP workers rarely wait for each other,
/// and a table growing past millions of keys rehashes one shard at a time.
pub struct MemoryCache {
    hasher: RandomState,
    shards: [Mutex<Entries>; SHARDS],
}

impl Default for MemoryCache {
    fn default() -> Self {
        MemoryCache {
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(Entries::default())),
        }
    }
}

/// Expired entries are removed a few at a time on every call, oldest deadline first,
/// so no call ever pays for sweeping the whole map (with millions of sticky keys a
/// full sweep under the lock stalled every scan for tens of milliseconds).
#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// Every deadline ever set, with its key; stale ones (the key was rewritten or
    /// deleted since) are skipped when they come up.
    deadlines: BinaryHeap<Reverse<(Instant, String)>>,
}

/// Expired entries removed per call, at most: more than any call can add, so the
/// sweep keeps up with any write rate.
const SWEEP_PER_CALL: usize = 8;

impl Entries {
    fn sweep(&mut self, now: Instant) {
        for _ in 0..SWEEP_PER_CALL {
            match self.deadlines.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => return,
            }
            if let Some(Reverse((at, key))) = self.deadlines.pop()
                && self.map.get(&key).is_some_and(|e| e.expires == Some(at))
            {
                self.map.remove(&key);
            }
        }
    }

    fn get_live(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.map.get(key).filter(|e| e.live(now))
    }

    fn insert(&mut self, key: &str, value: String, expires: Option<Instant>) {
        let renewed = self.map.get(key).is_none_or(|e| e.expires != expires);
        if let Some(at) = expires
            && renewed
        {
            self.deadlines.push(Reverse((at, key.to_string())));
        }
        self.map.insert(key.to_string(), Entry { value, expires });
    }

    fn incr_capped(
        &mut self,
        key: &str,
        limit: i64,
        ttl: Option<Duration>,
        now: Instant,
    ) -> anyhow::Result<Option<i64>> {
        let live = self.get_live(key, now);
        let current = match live {
            Some(e) => e
                .value
                .parse::<i64>()
                .map_err(|_| anyhow::anyhow!("value at {key} is not an integer"))?,
            None => 0,
        };
        if current >= limit {
            return Ok(None);
        }
        let expires = match live {
            Some(e) => e.expires,
            None => ttl.map(|t| now + t),
        };
        self.insert(key, (current + 1).to_string(), expires);
        Ok(Some(current + 1))
    }
}

struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

impl MemoryCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on the shard holding `key`, after sweeping a few of its expired entries.
    fn with<T>(&self, key: &str, f: impl FnOnce(&mut Entries, Instant) -> T) -> T {
        let shard = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut entries = self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        entries.sweep(now);
        f(&mut entries, now)
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self.with(key, |m, now| m.get_live(key, now).map(|e| e.value.clone())))
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> anyhow::Result<()> {
        self.with(key, |m, now| m.insert(key, value.to_string(), ttl.map(|t| now + t)));
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<bool> {
        Ok(self.with(key, |m, now| {
            if m.get_live(key, now).is_some() {
                return false;
            }
            m.insert(key, value.to_string(), Some(now + ttl));
            true
        }))
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> anyhow::Result<i64> {
        self.with(key, |m, now| {
            let live = m.get_live(key, now);
            let current = match live {
                Some(e) => Some(
                    e.value
                        .parse::<i64>()
                        .map_err(|_| anyhow::anyhow!("value at {key} is not an integer"))?,
                ),
                None => None,
            };
            let next = current.unwrap_or(0) + by;
            let expires = match live {
                Some(e) => e.expires,
                None => ttl.map(|t| now + t),
            };
            m.insert(key, next.to_string(), expires);
            Ok(next)
        })
    }

    async fn incr_capped(&self, key: &str, limit: i64, ttl: Option<Duration>) -> anyhow::Result<Option<i64>> {
        self.with(key, |m, now| m.incr_capped(key, limit, ttl, now))
    }

    async fn incr_capped_then_set(
        &self,
        cap: CappedIncrement<'_>,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> anyhow::Result<Option<i64>> {
        // The reservation is atomic in its shard; the value is written after it, and
        // only when it succeeded.
        let reserved = self.with(cap.key, |m, now| m.incr_capped(cap.key, cap.limit, cap.ttl, now))?;
        if reserved.is_some() {
            self.with(key, |m, now| m.insert(key, value.to_string(), ttl.map(|t| now + t)));
        }
        Ok(reserved)
    }

    async fn del(&self, key: &str) -> anyhow::Result<()> {
        self.with(key, |m, _| m.map.remove(key));
        Ok(())
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_entries_go_without_a_full_sweep() {
        let cache = MemoryCache::new();
        for i in 0..100 {
            cache
                .set(&format!("k{i}"), "v", Some(Duration::from_millis(1)))
                .await
                .unwrap();
        }
        cache.set("kept", "v", None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Each call removes a few from its key's shard: a bounded number of calls on
        // every key empties the map.
        for _ in 0..(100 / SWEEP_PER_CALL + 1) {
            for i in 0..100 {
                let key = format!("k{i}");
                assert_eq!(
                    cache.get(&key).await.unwrap(),
                    None,
                    "expired entries are never answered"
                );
            }
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("kept").await.unwrap().as_deref(), Some("v"));
    }

    #[tokio::test]
    async fn a_rewritten_key_keeps_its_new_deadline() {
        let cache = MemoryCache::new();
        cache.set("k", "old", Some(Duration::from_millis(1))).await.unwrap();
        cache.set("k", "new", Some(Duration::from_secs(60))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache.get("other").await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("new"));
    }

    #[tokio::test]
    async fn the_sticky_value_is_written_only_with_a_reserved_place() {
        let cache = MemoryCache::new();
        let cap = CappedIncrement {
            key: "cap",
            limit: 1,
            ttl: None,
        };
        assert_eq!(cache.incr_capped_then_set(cap, "a", "1", None).await.unwrap(), Some(1));
        assert_eq!(cache.incr_capped_then_set(cap, "b", "1", None).await.unwrap(), None);
        assert_eq!(cache.get("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(cache.get("b").await.unwrap(), None);
    }
}
