use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Cache, CappedIncrement, Reserved, check_want};

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
/// so no call ever pays for sweeping the whole map (with millions of keys a full
/// sweep under the lock stalled every scan for tens of milliseconds).
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

    /// The counter at `key` — 0 when there is no live entry — and the expiry a write
    /// to it keeps: the live entry's own, or `ttl` from now for a new one.
    fn counter(&self, key: &str, ttl: Option<Duration>, now: Instant) -> anyhow::Result<(i64, Option<Instant>)> {
        match self.get_live(key, now) {
            Some(e) => {
                let current = e
                    .value
                    .parse::<i64>()
                    .map_err(|_| anyhow::anyhow!("value at {key} is not an integer"))?;
                Ok((current, e.expires))
            }
            None => Ok((0, ttl.map(|t| now + t))),
        }
    }

    fn incr(&mut self, key: &str, by: i64, ttl: Option<Duration>, now: Instant) -> anyhow::Result<i64> {
        let (current, expires) = self.counter(key, ttl, now)?;
        let next = current + by;
        self.insert(key, next.to_string(), expires);
        Ok(next)
    }

    fn incr_capped(
        &mut self,
        key: &str,
        limit: i64,
        ttl: Option<Duration>,
        now: Instant,
    ) -> anyhow::Result<Option<i64>> {
        let (current, expires) = self.counter(key, ttl, now)?;
        if current >= limit {
            return Ok(None);
        }
        self.insert(key, (current + 1).to_string(), expires);
        Ok(Some(current + 1))
    }

    /// Grants what fits under the limit, exactly: the shard lock makes it one step.
    fn reserve(&mut self, cap: CappedIncrement<'_>, want: i64, now: Instant) -> anyhow::Result<Reserved> {
        let (current, expires) = self.counter(cap.key, cap.ttl, now)?;
        let granted = cap.limit.saturating_sub(current).clamp(0, want);
        let count = current + granted;
        self.insert(cap.key, count.to_string(), expires);
        Ok(Reserved { granted, count })
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
        self.with(key, |m, now| m.incr(key, by, ttl, now))
    }

    async fn incr_capped(&self, key: &str, limit: i64, ttl: Option<Duration>) -> anyhow::Result<Option<i64>> {
        self.with(key, |m, now| m.incr_capped(key, limit, ttl, now))
    }

    async fn reserve(&self, cap: CappedIncrement<'_>, want: i64) -> anyhow::Result<Reserved> {
        check_want(want)?;
        self.with(cap.key, |m, now| m.reserve(cap, want, now))
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
    async fn a_reservation_grants_what_fits_under_the_cap() {
        let cache = MemoryCache::new();
        let cap = CappedIncrement {
            key: "cap",
            limit: 5,
            ttl: Some(Duration::from_secs(60)),
        };
        assert_eq!(cache.reserve(cap, 3).await.unwrap(), Reserved { granted: 3, count: 3 });
        assert_eq!(
            cache.reserve(cap, 3).await.unwrap(),
            Reserved { granted: 2, count: 5 },
            "only what still fits"
        );
        assert_eq!(cache.reserve(cap, 1).await.unwrap(), Reserved { granted: 0, count: 5 });
        assert_eq!(cache.incr("cap", -2, None).await.unwrap(), 3, "unused places go back");
        assert_eq!(cache.reserve(cap, 4).await.unwrap(), Reserved { granted: 2, count: 5 });
        assert_eq!(cache.get("cap").await.unwrap().as_deref(), Some("5"));
        assert!(cache.reserve(cap, 0).await.is_err(), "at least one place is asked for");
        assert!(cache.reserve(cap, -1).await.is_err());

        // The TTL applies when the reservation creates the key.
        let short = CappedIncrement {
            key: "short",
            limit: 5,
            ttl: Some(Duration::from_millis(1)),
        };
        assert_eq!(cache.reserve(short, 2).await.unwrap().granted, 2);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(cache.get("short").await.unwrap(), None);
    }
}
