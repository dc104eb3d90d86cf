use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::Cache;

/// Redis through one multiplexed, self-reconnecting connection shared by all tasks.
/// Keys are prefixed with the namespace so installs and tests can share a server.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
}

/// INCRBY that gives the key an expiry when it has none (it was just created), atomically.
const INCR_WITH_TTL: &str = r"
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v";

/// INCR unless at the limit, in one server-side step so concurrent callers can
/// never overshoot. Answers -1 when full.
const INCR_CAPPED: &str = r"
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v >= tonumber(ARGV[1]) then
  return -1
end
v = redis.call('INCR', KEYS[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v";

// Built once: a Script hashes its source, and these run on the scan path.
static INCR_WITH_TTL_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(INCR_WITH_TTL));
static INCR_CAPPED_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(INCR_CAPPED));

impl RedisCache {
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("parsing REDIS_URL")?;
        // The default 500 ms response timeout turns a busy moment (hundreds of scans at
        // once on a loaded host) into errors; a slow answer is better than none here.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .context("connecting to Redis (REDIS_URL)")?;
        let prefix = if namespace.is_empty() {
            "huoke:".to_string()
        } else {
            format!("{namespace}:huoke:")
        };
        Ok(Self { conn, prefix })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(self.conn.clone().get(self.key(key)).await?)
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        match ttl {
            Some(ttl) => {
                conn.pset_ex::<_, _, ()>(self.key(key), value, ttl.as_millis().max(1) as u64)
                    .await?;
            }
            None => conn.set::<_, _, ()>(self.key(key), value).await?,
        }
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<bool> {
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(reply.is_some())
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> anyhow::Result<i64> {
        let ttl_ms = ttl.map(|t| t.as_millis().max(1) as i64).unwrap_or(0);
        let value: i64 = INCR_WITH_TTL_SCRIPT
            .key(self.key(key))
            .arg(by)
            .arg(ttl_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(value)
    }

    async fn incr_capped(&self, key: &str, limit: i64, ttl: Option<Duration>) -> anyhow::Result<Option<i64>> {
        let ttl_ms = ttl.map(|t| t.as_millis().max(1) as i64).unwrap_or(0);
        let value: i64 = INCR_CAPPED_SCRIPT
            .key(self.key(key))
            .arg(limit)
            .arg(ttl_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok((value >= 0).then_some(value))
    }

    async fn del(&self, key: &str) -> anyhow::Result<()> {
        self.conn.clone().del::<_, ()>(self.key(key)).await?;
        Ok(())
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
