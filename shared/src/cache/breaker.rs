//! A circuit breaker in front of a remote cache. When the cache fails (or answers
//! nothing within its timeout) the breaker opens for `OPEN_FOR`: calls fail at once,
//! and callers fall back as they do for any cache error (rate limits allow, regions
//! and rotations come from the store). Then one call probes; its success closes the
//! breaker. Without it every request during a Redis outage would wait out the
//! client's reconnection attempts, several seconds per cache call.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::anyhow;

use super::{Cache, CappedIncrement, Reserved, check_want};
use crate::clock::now_ms;

/// How long the breaker stays open after a failure.
const OPEN_FOR: Duration = Duration::from_secs(1);

pub struct Breaker<C> {
    inner: C,
    /// 0: closed. Otherwise calls before this time (epoch ms) fail at once; the first
    /// call after it probes, moving it on by `OPEN_FOR` so others keep failing fast.
    open_until: AtomicI64,
}

impl<C: Cache> Breaker<C> {
    pub fn new(inner: C) -> Self {
        Breaker {
            inner,
            open_until: AtomicI64::new(0),
        }
    }

    fn admit(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = now_ms();
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    now + OPEN_FOR.as_millis() as i64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn outcome<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        match &result {
            Ok(_) => {
                if self.open_until.load(Ordering::Acquire) != 0 {
                    self.open_until.store(0, Ordering::Release);
                }
            }
            Err(_) => self
                .open_until
                .store(now_ms() + OPEN_FOR.as_millis() as i64, Ordering::Release),
        }
        result
    }
}

fn open() -> anyhow::Error {
    anyhow!("the cache failed moments ago; not waiting on it")
}

#[async_trait::async_trait]
impl<C: Cache> Cache for Breaker<C> {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        if !self.admit() {
            return Err(open());
        }
        self.outcome(self.inner.get(key).await)
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> anyhow::Result<()> {
        if !self.admit() {
            return Err(open());
        }
        self.outcome(self.inner.set(key, value, ttl).await)
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<bool> {
        if !self.admit() {
            return Err(open());
        }
        self.outcome(self.inner.set_nx(key, value, ttl).await)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> anyhow::Result<i64> {
        if !self.admit() {
            return Err(open());
        }
        self.outcome(self.inner.incr(key, by, ttl).await)
    }

    async fn incr_capped(&self, key: &str, limit: i64, ttl: Option<Duration>) -> anyhow::Result<Option<i64>> {
        if !self.admit() {
            return Err(open());
        }
        self.outcome(self.inner.incr_capped(key, limit, ttl).await)
    }

    async fn reserve(&self, cap: CappedIncrement<'_>, want: i64) -> anyhow::Result<Reserved> {
        // A caller's mistake says nothing about the cache's health: it must not open
        // the breaker.
        check_want(want)?;
        if !self.admit() {
            return Err(open());
        }
        self.outcome(self.inner.reserve(cap, want).await)
    }

    async fn del(&self, key: &str) -> anyhow::Result<()> {
        if !self.admit() {
            return Err(open());
        }
        self.outcome(self.inner.del(key).await)
    }

    async fn ping(&self) -> anyhow::Result<()> {
        if !self.admit() {
            return Err(open());
        }
        self.outcome(self.inner.ping().await)
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    #[tokio::test]
    async fn an_open_breaker_fails_fast_then_probes_and_closes() {
        let breaker = Breaker::new(MemoryCache::new());
        assert!(breaker.get("k").await.is_ok());
        // A failure opens it: calls fail at once.
        let _ = breaker.outcome::<()>(Err(anyhow!("boom")));
        assert!(breaker.get("k").await.is_err());
        // After the window one call probes; its success closes the breaker.
        breaker.open_until.store(now_ms() - 1, Ordering::Release);
        assert!(breaker.get("k").await.is_ok());
        assert_eq!(breaker.open_until.load(Ordering::Acquire), 0);
        assert!(breaker.set("k", "v", None).await.is_ok());
    }
}
