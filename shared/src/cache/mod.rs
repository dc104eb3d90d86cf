//! The cache seam: fast, shared, rebuildable state (cursors, counters, claims).
//! Nothing in it may be the only copy of a fact — a flushed cache only costs speed
//! or restarts a rotation. Redis in production, an in-memory twin for `huoke dev`.

mod breaker;
mod memory;
mod redis;

pub use breaker::Breaker;
pub use memory::MemoryCache;
pub use redis::RedisCache;

use std::time::Duration;

/// One capped counter: add one to `key` unless it has reached `limit`; `ttl` applies
/// when the key is created.
#[derive(Debug, Clone, Copy)]
pub struct CappedIncrement<'a> {
    pub key: &'a str,
    pub limit: i64,
    pub ttl: Option<Duration>,
}

#[async_trait::async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>>;
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> anyhow::Result<()>;
    /// Sets only if absent; true when this call set it.
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<bool>;
    /// Adds `by` and returns the new value; `ttl` applies when the key is created.
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> anyhow::Result<i64>;
    /// Adds one unless the value has reached `limit`; returns the new value, or
    /// `None` when full. Atomic: under any concurrency no more than `limit`
    /// increments succeed. `ttl` applies when the key is created.
    async fn incr_capped(&self, key: &str, limit: i64, ttl: Option<Duration>) -> anyhow::Result<Option<i64>>;
    /// `incr_capped` on `cap_key`, and only when that reserved a place, `set` of
    /// `key` — one step on backends that can (one round trip on Redis; the keys
    /// must then share a hash slot for Redis Cluster).
    async fn incr_capped_then_set(
        &self,
        cap: CappedIncrement<'_>,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> anyhow::Result<Option<i64>> {
        let reserved = self.incr_capped(cap.key, cap.limit, cap.ttl).await?;
        if reserved.is_some() {
            self.set(key, value, ttl).await?;
        }
        Ok(reserved)
    }
    async fn del(&self, key: &str) -> anyhow::Result<()>;
    async fn ping(&self) -> anyhow::Result<()>;
    fn name(&self) -> &'static str;
}
