use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncCommands, AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{Cache, CappedIncrement, Reserved, check_want};

/// Redis through multiplexed connections. Tasks of a multi-threaded runtime share one
/// self-reconnecting connection. Each single-threaded runtime — every actix-web
/// worker, where the scan path runs — gets a connection of its own, driven on that
/// same thread: a command then costs no hop to another thread and back, which on the
/// scan path was a measurable share of the CPU (docs/BENCHMARKS.md).
/// Keys are prefixed with the namespace so installs and tests can share a server.
#[derive(Clone)]
pub struct RedisCache {
    shared: ConnectionManager,
    client: redis::Client,
    /// Tells this cache's thread-local connections from another instance's.
    id: u64,
    prefix: String,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection owned by one thread's runtime, with a token that dies with that
/// runtime (a runtime that shut down cannot drive its connection any more).
struct LocalConnection {
    cache: u64,
    conn: MultiplexedConnection,
    runtime_alive: Weak<()>,
}

thread_local! {
    static LOCAL: RefCell<Vec<LocalConnection>> = const { RefCell::new(Vec::new()) };
    /// Per cache: no new local connection is tried before this moment (Redis was
    /// unreachable), so an outage costs one slow connect per thread and interval,
    /// not one per command.
    static LOCAL_BACKOFF: RefCell<Vec<(u64, Instant)>> = const { RefCell::new(Vec::new()) };
}

const LOCAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const LOCAL_BACKOFF_FOR: Duration = Duration::from_secs(5);

enum Conn {
    Local(MultiplexedConnection),
    Shared(ConnectionManager),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Local(c) => c.req_packed_command(cmd),
            Conn::Shared(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Local(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Shared(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Local(c) => c.get_db(),
            Conn::Shared(c) => c.get_db(),
        }
    }
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

fn millis(ttl: Option<Duration>) -> i64 {
    ttl.map(|t| t.as_millis().max(1) as i64).unwrap_or(0)
}

impl RedisCache {
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("parsing REDIS_URL")?;
        // The default 500 ms response timeout turns a busy moment (hundreds of scans at
        // once on a loaded host) into errors; a slow answer is better than none here.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(TIMEOUT))
            .set_connection_timeout(Some(TIMEOUT));
        let shared = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .context("connecting to Redis (REDIS_URL)")?;
        let prefix = if namespace.is_empty() {
            "huoke:".to_string()
        } else {
            format!("{namespace}:huoke:")
        };
        Ok(Self {
            shared,
            client,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            prefix,
        })
    }

    /// This thread's own connection when it runs a single-threaded runtime, else the
    /// shared one. A failed local connect falls back to the shared connection.
    async fn conn(&self) -> Conn {
        let single_threaded = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if !single_threaded {
            return Conn::Shared(self.shared.clone());
        }
        let found = LOCAL.with_borrow_mut(|locals| {
            locals.retain(|l| l.runtime_alive.strong_count() > 0);
            locals.iter().find(|l| l.cache == self.id).map(|l| l.conn.clone())
        });
        if let Some(conn) = found {
            return Conn::Local(conn);
        }
        let now = Instant::now();
        let backing_off = LOCAL_BACKOFF.with_borrow_mut(|b| {
            b.retain(|(_, until)| *until > now);
            b.iter().any(|(id, _)| *id == self.id)
        });
        if backing_off {
            return Conn::Shared(self.shared.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(TIMEOUT))
            .set_connection_timeout(Some(LOCAL_CONNECT_TIMEOUT));
        match self.client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(conn) => {
                // Lives as long as this runtime's tasks do.
                let alive = Arc::new(());
                let runtime_alive = Arc::downgrade(&alive);
                tokio::spawn(async move {
                    let _alive = alive;
                    std::future::pending::<()>().await;
                });
                LOCAL.with_borrow_mut(|locals| {
                    if !locals.iter().any(|l| l.cache == self.id) {
                        locals.push(LocalConnection {
                            cache: self.id,
                            conn: conn.clone(),
                            runtime_alive,
                        });
                    }
                });
                Conn::Local(conn)
            }
            Err(err) => {
                tracing::debug!(error = %err, "no thread-local Redis connection; using the shared one");
                LOCAL_BACKOFF.with_borrow_mut(|b| b.push((self.id, Instant::now() + LOCAL_BACKOFF_FOR)));
                Conn::Shared(self.shared.clone())
            }
        }
    }

    /// A failed command may have broken this thread's connection: the next command
    /// connects afresh (the shared connection reconnects by itself).
    fn checked<T>(&self, result: redis::RedisResult<T>) -> anyhow::Result<T> {
        if result.is_err() {
            let _ = LOCAL.try_with(|l| l.borrow_mut().retain(|l| l.cache != self.id));
        }
        Ok(result?)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let result = self.conn().await.get(self.key(key)).await;
        self.checked(result)
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> anyhow::Result<()> {
        let mut conn = self.conn().await;
        let result = match ttl {
            Some(ttl) => {
                conn.pset_ex::<_, _, ()>(self.key(key), value, ttl.as_millis().max(1) as u64)
                    .await
            }
            None => conn.set::<_, _, ()>(self.key(key), value).await,
        };
        self.checked(result)
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> anyhow::Result<bool> {
        let reply: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.conn().await)
            .await;
        Ok(self.checked(reply)?.is_some())
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> anyhow::Result<i64> {
        let value = INCR_WITH_TTL_SCRIPT
            .key(self.key(key))
            .arg(by)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn().await)
            .await;
        self.checked(value)
    }

    async fn incr_capped(&self, key: &str, limit: i64, ttl: Option<Duration>) -> anyhow::Result<Option<i64>> {
        let value: i64 = self.checked(
            INCR_CAPPED_SCRIPT
                .key(self.key(key))
                .arg(limit)
                .arg(millis(ttl))
                .invoke_async(&mut self.conn().await)
                .await,
        )?;
        Ok((value >= 0).then_some(value))
    }

    /// Plain commands in one pipelined round trip: INCRBY the counter by `want`, give
    /// it its expiry if it has none (`PEXPIRE … NX`, Redis 7). When that went past the
    /// limit, a second round trip gives the excess back (DECRBY).
    /// Each reservation is granted `limit` minus what was on the counter before it,
    /// clamped to 0..=want, and what was on the counter includes every earlier grant,
    /// so the grants never sum past the limit under any concurrency; the counter may
    /// read above the limit for the moment between the two trips.
    async fn reserve(&self, cap: CappedIncrement<'_>, want: i64) -> anyhow::Result<Reserved> {
        check_want(want)?;
        let cap_key = self.key(cap.key);
        let mut pipe = redis::pipe();
        pipe.incr(&cap_key, want);
        if let Some(cap_ttl) = cap.ttl {
            pipe.cmd("PEXPIRE")
                .arg(&cap_key)
                .arg(millis(Some(cap_ttl)))
                .arg("NX")
                .ignore();
        }
        let mut conn = self.conn().await;
        let (count,): (i64,) = self.checked(pipe.query_async(&mut conn).await)?;
        if count <= cap.limit {
            return Ok(Reserved { granted: want, count });
        }
        let excess = count.saturating_sub(cap.limit).min(want);
        let undo = redis::cmd("DECRBY")
            .arg(&cap_key)
            .arg(excess)
            .query_async::<i64>(&mut conn)
            .await;
        self.checked(undo)?;
        Ok(Reserved {
            granted: want - excess,
            count: count - excess,
        })
    }

    async fn del(&self, key: &str) -> anyhow::Result<()> {
        let result = self.conn().await.del::<_, ()>(self.key(key)).await;
        self.checked(result)
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let result: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut self.conn().await).await;
        self.checked(result).map(drop)
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
