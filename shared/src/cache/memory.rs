use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Cache;

/// In-process twin of the Redis cache, for `huoke dev` and tests. One mutex makes
/// every operation atomic, as single Redis commands are.
#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, Entry>>,
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

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> T) -> T {
        let mut map = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        // Expired entries are swept now and then so the map cannot grow without bound.
        if map.len() > 10_000 && map.len().is_power_of_two() {
            map.retain(|_, e| e.live(now));
        }
        f(&mut map, now)
    }
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self.with(|m, now| m.get(key).filter(|e| e.live(now)).map(|e| e.value.clone())))
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> anyhow::Result<()> {
        self.with(|m, now| {
            m.insert(
                key.to_string(),
                Entry {
                    value: value.to_string(),
                    expires: ttl.map(|t| now + t),
                },
            );
        });
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<bool> {
        Ok(self.with(|m, now| {
            if m.get(key).is_some_and(|e| e.live(now)) {
                return false;
            }
            m.insert(
                key.to_string(),
                Entry {
                    value: value.to_string(),
                    expires: Some(now + ttl),
                },
            );
            true
        }))
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> anyhow::Result<i64> {
        self.with(|m, now| {
            let current = match m.get(key).filter(|e| e.live(now)) {
                Some(e) => Some(
                    e.value
                        .parse::<i64>()
                        .map_err(|_| anyhow::anyhow!("value at {key} is not an integer"))?,
                ),
                None => None,
            };
            let next = current.unwrap_or(0) + by;
            let expires = match (current, m.get(key)) {
                (Some(_), Some(e)) => e.expires,
                _ => ttl.map(|t| now + t),
            };
            m.insert(
                key.to_string(),
                Entry {
                    value: next.to_string(),
                    expires,
                },
            );
            Ok(next)
        })
    }

    async fn incr_capped(&self, key: &str, limit: i64, ttl: Option<Duration>) -> anyhow::Result<Option<i64>> {
        self.with(|m, now| {
            let live = m.get(key).filter(|e| e.live(now));
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
            m.insert(
                key.to_string(),
                Entry {
                    value: (current + 1).to_string(),
                    expires,
                },
            );
            Ok(Some(current + 1))
        })
    }

    async fn del(&self, key: &str) -> anyhow::Result<()> {
        self.with(|m, _| m.remove(key));
        Ok(())
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
