//! Fixed-window rate limits kept in the cache, so every replica shares one count.
//! Public surfaces key them on the client address (see `visitor::client_ip`).

use std::time::Duration;

use crate::cache::Cache;
use crate::clock::now_ms;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub requests: i64,
    pub per: Duration,
}

/// Counts one request for `key` under `scope`; refuses with 429 once over the limit.
/// A cache failure lets the request through: availability beats strictness here.
pub async fn check(cache: &dyn Cache, scope: &str, key: &str, limit: Limit) -> Result<(), ApiError> {
    let window_ms = limit.per.as_millis().max(1) as i64;
    let window = now_ms() / window_ms;
    let cache_key = format!("rl:{scope}:{key}:{window}");
    match cache
        .incr(&cache_key, 1, Some(limit.per + Duration::from_secs(1)))
        .await
    {
        Ok(n) if n > limit.requests => Err(ApiError::TooManyRequests),
        Ok(_) => Ok(()),
        Err(err) => {
            tracing::warn!(error = %err, "rate limiter unavailable; allowing");
            Ok(())
        }
    }
}
