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

/// What `reserve` granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// Places granted, 0..=want.
    pub granted: i64,
    /// The counter after this reservation (what is taken on the counter, by every holder).
    /// At most `limit` when a place was granted; when none was, it can read past the
    /// limit on Redis (others' overshoot a moment before they give it back).
    pub count: i64,
}

/// `reserve` asks for at least one place; anything else is a caller's mistake.
fn check_want(want: i64) -> anyhow::Result<()> {
    anyhow::ensure!(want >= 1, "reserve asks for at least one place, not {want}");
    Ok(())
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
    /// Reserves up to `want` (>= 1) places on the capped counter `cap.key` at once, so a
    /// caller can hand them out locally without a round trip each: grants what still fits
    /// under `cap.limit` (possibly fewer than asked, possibly 0). Atomic like
    /// `incr_capped`: under any concurrency the grants never sum past the limit.
    /// `cap.ttl` applies when the key is created. Places a caller does not use are given
    /// back with `incr(key, -n, None)`.
    async fn reserve(&self, cap: CappedIncrement<'_>, want: i64) -> anyhow::Result<Reserved>;
    async fn del(&self, key: &str) -> anyhow::Result<()>;
    async fn ping(&self) -> anyhow::Result<()>;
    fn name(&self) -> &'static str;
}
