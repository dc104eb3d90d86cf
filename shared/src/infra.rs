//! The process-wide handles every service works through: built once from the
//! settings, before the HTTP server starts, and shared by clone.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;

use crate::auth::JwtKeys;
use crate::bus::{AmqpBus, Bus, SqlBus};
use crate::cache::{Cache, MemoryCache, RedisCache};
use crate::config::Settings;
use crate::store::{Store, redact_url};

#[derive(Clone)]
pub struct Infra {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub cache: Arc<dyn Cache>,
    pub jwt: Arc<JwtKeys>,
    /// Poked after a commit that wrote to the outbox, so the relay publishes at once.
    pub outbox_wakeup: Arc<Notify>,
}

impl Infra {
    /// Connects every backend the settings name (embedded ones otherwise) and
    /// applies migrations.
    pub async fn connect(settings: Settings) -> anyhow::Result<Infra> {
        let jwt = settings
            .jwt
            .as_ref()
            .context("configuration error in HUOKE_JWT_SECRET: set it (32+ bytes) or HUOKE_JWT_PUBLIC_KEY")?;
        let jwt = Arc::new(JwtKeys::from_config(jwt)?);

        let db_url = settings.effective_database_url();
        let store = Store::connect(&db_url).await?;
        store.migrate().await?;

        let bus: Arc<dyn Bus> = match &settings.amqp_url {
            Some(url) => Arc::new(patiently("RabbitMQ (AMQP_URL)", || AmqpBus::connect(url, &settings)).await?),
            None => Arc::new(SqlBus::new(store.clone())),
        };
        let cache: Arc<dyn Cache> = match &settings.redis_url {
            Some(url) => Arc::new(crate::cache::Breaker::new(
                patiently("Redis (REDIS_URL)", || RedisCache::connect(url, &settings.namespace)).await?,
            )),
            None => Arc::new(MemoryCache::new()),
        };
        tracing::info!(
            database = %redact_url(&db_url),
            bus = bus.name(),
            cache = cache.name(),
            "backends connected"
        );
        Ok(Infra {
            settings: Arc::new(settings),
            store,
            bus,
            cache,
            jwt,
            outbox_wakeup: Arc::new(Notify::new()),
        })
    }

    /// Call after committing a transaction that wrote outbox rows.
    pub fn kick_outbox(&self) {
        self.outbox_wakeup.notify_one();
    }
}

/// Connects with a time limit per attempt and a few attempts: a backend that is
/// slow to answer at start-up (or a handshake that stalls) costs seconds, never a
/// process hung forever before it serves anything.
async fn patiently<T, F, Fut>(what: &str, connect: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    const ATTEMPTS: u32 = 3;
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(10);
    let mut last = anyhow::anyhow!("no attempt made");
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(LIMIT, connect()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(err)) => last = err,
            Err(_) => last = anyhow::anyhow!("no answer within {LIMIT:?}"),
        }
        tracing::warn!(backend = what, attempt, error = %format!("{last:#}"), "could not connect; trying again");
        tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt))).await;
    }
    Err(last.context(format!("connecting to {what}")))
}
