//! The embedded bus: messages live in the SQL store (`bus_messages`), so a crash of
//! `huoke dev` loses nothing that was published. Same contract as RabbitMQ: topic
//! routing to durable queues, leases instead of unacked deliveries, redelivery with
//! backoff, a dead-letter queue after too many attempts, delayed delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::{Bus, ConsumerOptions, Envelope, Handler, HandlerError, QueueSpec, backoff, topic_matches};
use crate::clock::{new_id, now_ms};
use crate::store::Store;

/// A delivery not acknowledged within this time is given to another consumer.
const LEASE_MS: i64 = 30_000;
/// Upper bound on the wait for messages that arrive from another process or fall due.
const POLL: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct SqlBus {
    store: Store,
    wakeups: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl SqlBus {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            wakeups: Arc::default(),
        }
    }

    fn wakeup(&self, queue: &str) -> Arc<Notify> {
        self.wakeups
            .lock()
            .expect("wakeups lock")
            .entry(queue.to_string())
            .or_default()
            .clone()
    }

    async fn route(&self, envelope: &Envelope, delay: Duration) -> anyhow::Result<()> {
        let bindings: Vec<(String, String)> = sqlx::query_as("SELECT queue, pattern FROM bus_bindings")
            .fetch_all(self.store.pool())
            .await?;
        let mut queues: Vec<String> = bindings
            .into_iter()
            .filter(|(_, pattern)| topic_matches(pattern, &envelope.kind))
            .map(|(queue, _)| queue)
            .collect();
        queues.sort();
        queues.dedup();
        if queues.is_empty() {
            tracing::debug!(topic = %envelope.kind, "message matched no queue");
            return Ok(());
        }
        let body = serde_json::to_string(envelope)?;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        for queue in &queues {
            sqlx::query(
                "INSERT INTO bus_messages (id, tenant_id, queue, topic, envelope, available_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(new_id())
            .bind(&envelope.tenant_id)
            .bind(queue)
            .bind(&envelope.kind)
            .bind(&body)
            .bind(now + delay.as_millis() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if delay.is_zero() {
            for queue in &queues {
                self.wakeup(queue).notify_one();
            }
        }
        Ok(())
    }

    /// Leases the oldest due message of `queue`, if any.
    async fn claim(&self, queue: &str) -> sqlx::Result<Option<(String, String, i64)>> {
        let now = now_ms();
        let sql = format!(
            "UPDATE bus_messages SET locked_until = $1, attempts = attempts + 1
             WHERE id = (SELECT id FROM bus_messages
                         WHERE queue = $2 AND available_at <= $3 AND locked_until <= $3
                         ORDER BY available_at, id LIMIT 1{})
             RETURNING id, envelope, attempts",
            self.store.skip_locked()
        );
        let mut tx = self.store.begin().await?;
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(now + LEASE_MS)
            .bind(queue)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.map(|r| (r.get("id"), r.get("envelope"), r.get("attempts"))))
    }

    async fn settle(
        &self,
        queue: &str,
        id: &str,
        attempts: i64,
        outcome: Result<(), HandlerError>,
        options: &ConsumerOptions,
    ) -> sqlx::Result<()> {
        let pool = self.store.pool();
        match outcome {
            Ok(()) => {
                sqlx::query("DELETE FROM bus_messages WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
            Err(HandlerError::Retry(reason)) if (attempts as u32) < options.max_attempts => {
                tracing::warn!(%queue, message = %id, attempts, %reason, "handler failed; will redeliver");
                let at = now_ms() + backoff(options.retry_delay, attempts as u32).as_millis() as i64;
                sqlx::query(
                    "UPDATE bus_messages SET available_at = $1, locked_until = 0, last_error = $2 WHERE id = $3",
                )
                .bind(at)
                .bind(reason)
                .bind(id)
                .execute(pool)
                .await?;
            }
            Err(err) => {
                tracing::error!(%queue, message = %id, attempts, error = %err, "message dead-lettered");
                metrics::counter!("huoke_bus_dead_lettered_total", "queue" => queue.to_string()).increment(1);
                sqlx::query("UPDATE bus_messages SET queue = $1, locked_until = 0, last_error = $2 WHERE id = $3")
                    .bind(format!("{queue}.dlq"))
                    .bind(err.to_string())
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Bus for SqlBus {
    async fn declare(&self, queues: &[QueueSpec]) -> anyhow::Result<()> {
        for queue in queues {
            for pattern in queue.bindings {
                sqlx::query(
                    "INSERT INTO bus_bindings (queue, pattern) VALUES ($1, $2) ON CONFLICT (queue, pattern) DO NOTHING",
                )
                .bind(queue.name)
                .bind(*pattern)
                .execute(self.store.pool())
                .await?;
            }
        }
        Ok(())
    }

    async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.route(envelope, Duration::ZERO).await
    }

    async fn publish_delayed(&self, envelope: &Envelope, delay: Duration) -> anyhow::Result<()> {
        self.route(envelope, delay).await
    }

    fn consume(
        &self,
        queue: &'static str,
        options: ConsumerOptions,
        handler: Arc<dyn Handler>,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let bus = self.clone();
        let wakeup = self.wakeup(queue);
        tokio::spawn(async move {
            loop {
                if *stop.borrow() {
                    return;
                }
                match bus.claim(queue).await {
                    Ok(Some((id, body, attempts))) => {
                        let outcome = match serde_json::from_str::<Envelope>(&body) {
                            Ok(envelope) => super::run_handler(&handler, &envelope).await,
                            Err(e) => Err(HandlerError::Reject(format!("undecodable envelope: {e}"))),
                        };
                        if let Err(err) = bus.settle(queue, &id, attempts, outcome, &options).await {
                            // The lease runs out and the message comes back: nothing lost.
                            tracing::warn!(%queue, error = %err, "could not settle a message");
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(err) => tracing::warn!(%queue, error = %err, "could not poll the queue"),
                }
                tokio::select! {
                    _ = wakeup.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(self.store.ping().await?)
    }

    fn name(&self) -> &'static str {
        "sql"
    }
}
