//! Daily caps handed out from local leases. A member's cap counter lives in the
//! cache, shared by every replica; asking it once per scan made the cache round trip
//! the largest cost of a scan. A replica instead reserves a block of places at once
//! (one atomic reservation that never passes the cap) and hands them out from
//! memory. Blocks start at one place and double while a replica empties them
//! quickly, up to [`MAX_BLOCK`], and never exceed a sixteenth of the room left on
//! the cap — so small caps (and the last places of large ones) go one at a time,
//! exactly as before.
//!
//! Places a replica holds and does not use go back to the counter after
//! [`IDLE_RETURN`] without use, and all of them at a clean stop. A replica that
//! dies holding places takes them with it until the counter's day ends: the member
//! is then offered up to that many scans fewer that day, never more than the cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use huoke_shared::cache::{Cache, CappedIncrement};
use tokio::sync::watch;

/// The most places reserved at once.
pub const MAX_BLOCK: i64 = 64;
/// Unused places go back after this long without a scan taking one.
pub const IDLE_RETURN: Duration = Duration::from_secs(2);
/// A block emptied within this time makes the next one twice as large.
const FAST: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Lease {
    limit: i64,
    /// The counter's expiry, for a give-back that finds it gone (so a recreated
    /// counter does not stay negative forever).
    ttl: Option<Duration>,
    places: i64,
    next_block: i64,
    reserved_at: Instant,
    used_at: Instant,
}

#[derive(Default)]
pub struct CapLeases {
    leases: Mutex<HashMap<String, Lease>>,
}

impl CapLeases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one place on the cap: from this replica's lease when it holds one, else
    /// by reserving a block. False when the cap is full.
    pub async fn take(&self, cache: &dyn Cache, cap: CappedIncrement<'_>) -> anyhow::Result<bool> {
        let now = Instant::now();
        let (want, stale) = {
            let mut leases = self.lock();
            match leases.get_mut(cap.key) {
                Some(lease) if lease.limit == cap.limit => {
                    if lease.places > 0 {
                        lease.places -= 1;
                        lease.used_at = now;
                        return Ok(true);
                    }
                    (lease.next_block, 0)
                }
                // The limit changed: places held under the old one go back first.
                Some(lease) => {
                    let stale = lease.places;
                    leases.remove(cap.key);
                    (1, stale)
                }
                None => (1, 0),
            }
        };
        if stale > 0 {
            cache.incr(cap.key, -stale, cap.ttl).await?;
        }
        let reserved = cache.reserve(cap, want).await?;
        if reserved.granted == 0 {
            return Ok(false);
        }
        let room = cap.limit - reserved.count;
        let mut leases = self.lock();
        let lease = leases.entry(cap.key.to_string()).or_insert_with(|| Lease {
            limit: cap.limit,
            ttl: cap.ttl,
            places: 0,
            next_block: 1,
            reserved_at: now,
            used_at: now,
        });
        lease.places += reserved.granted - 1;
        let grow = now.duration_since(lease.reserved_at) < FAST;
        let block = if grow {
            lease.next_block * 2
        } else {
            lease.next_block / 2
        };
        lease.next_block = block.clamp(1, MAX_BLOCK).min((room / 16).max(1));
        lease.reserved_at = now;
        lease.used_at = now;
        Ok(true)
    }

    /// Takes out the places to give back: those of leases idle for `idle` (all with
    /// `Duration::ZERO`), forgetting those leases.
    fn release(&self, idle: Duration) -> Vec<(String, i64, Option<Duration>)> {
        let now = Instant::now();
        let mut back = Vec::new();
        self.lock().retain(|key, lease| {
            if now.duration_since(lease.used_at) < idle {
                return true;
            }
            if lease.places > 0 {
                back.push((key.clone(), lease.places, lease.ttl));
            }
            false
        });
        back
    }

    /// Gives unused places back to their counters.
    pub async fn give_back(&self, cache: &dyn Cache, idle: Duration) {
        for (key, places, ttl) in self.release(idle) {
            if let Err(err) = cache.incr(&key, -places, ttl).await {
                tracing::warn!(error = %err, places, "leased cap places could not be given back; the member gets that many fewer today");
            }
        }
    }

    #[cfg(test)]
    fn held(&self, key: &str) -> i64 {
        self.lock().get(key).map_or(0, |l| l.places)
    }

    #[cfg(test)]
    fn next_block(&self, key: &str) -> i64 {
        self.lock().get(key).map_or(0, |l| l.next_block)
    }
}

/// Gives idle places back every second, and everything when `stop` turns true.
pub async fn run(leases: Arc<CapLeases>, cache: Arc<dyn Cache>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => leases.give_back(&*cache, IDLE_RETURN).await,
            _ = stop.changed() => break,
        }
    }
    leases.give_back(&*cache, Duration::ZERO).await;
}

#[cfg(test)]
mod tests {
    use huoke_shared::cache::MemoryCache;

    use super::*;

    fn cap(limit: i64) -> CappedIncrement<'static> {
        CappedIncrement {
            key: "cap",
            limit,
            ttl: None,
        }
    }

    async fn counter(cache: &MemoryCache) -> i64 {
        cache.get("cap").await.unwrap().map_or(0, |v| v.parse().unwrap())
    }

    #[tokio::test]
    async fn a_small_cap_is_taken_one_place_at_a_time_and_never_passed() {
        let cache = MemoryCache::new();
        let leases = CapLeases::default();
        for _ in 0..5 {
            assert!(leases.take(&cache, cap(5)).await.unwrap());
            assert_eq!(leases.held("cap"), 0, "no place is held ahead under a small cap");
        }
        assert!(!leases.take(&cache, cap(5)).await.unwrap());
        assert_eq!(counter(&cache).await, 5);
    }

    #[tokio::test]
    async fn a_busy_large_cap_is_reserved_in_growing_blocks_and_given_back() {
        let cache = MemoryCache::new();
        let leases = CapLeases::default();
        let mut taken = 0;
        for _ in 0..1_000 {
            assert!(leases.take(&cache, cap(100_000)).await.unwrap());
            taken += 1;
        }
        let on_counter = counter(&cache).await;
        assert_eq!(on_counter, taken + leases.held("cap"));
        assert!(on_counter - taken < MAX_BLOCK);
        // Taken quickly, the blocks grew to the largest: one reservation per 64 scans.
        assert_eq!(leases.next_block("cap"), MAX_BLOCK);
        leases.give_back(&cache, Duration::ZERO).await;
        assert_eq!(counter(&cache).await, taken, "unused places went back");
        assert_eq!(leases.held("cap"), 0);
    }

    #[tokio::test]
    async fn two_replicas_never_pass_the_cap_together() {
        let cache = MemoryCache::new();
        let (a, b) = (CapLeases::default(), CapLeases::default());
        let mut granted = 0;
        for i in 0..3_000 {
            let leases = if i % 3 == 0 { &a } else { &b };
            if leases.take(&cache, cap(1_000)).await.unwrap() {
                granted += 1;
            }
        }
        assert!(granted <= 1_000);
        // What the replicas still hold is all that is missing from the cap.
        assert_eq!(granted + a.held("cap") + b.held("cap"), 1_000);
        a.give_back(&cache, Duration::ZERO).await;
        b.give_back(&cache, Duration::ZERO).await;
        assert_eq!(counter(&cache).await, granted);
    }

    #[tokio::test]
    async fn a_changed_limit_gives_the_old_places_back_first() {
        let cache = MemoryCache::new();
        let leases = CapLeases::default();
        for _ in 0..200 {
            assert!(leases.take(&cache, cap(100_000)).await.unwrap());
        }
        assert!(leases.held("cap") > 0);
        for _ in 0..10 {
            leases.take(&cache, cap(205)).await.unwrap();
        }
        assert_eq!(counter(&cache).await, 205, "the 200 taken and 5 more fit under 205");
    }
}
