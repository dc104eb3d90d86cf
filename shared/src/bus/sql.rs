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

use super::{
    Bus, ConsumerOptions, Envelope, Handler, HandlerError, QueueSpec, Settlement, dead_letter_queue, handle_decoded,
    topic_matches,
};
use crate::clock::{new_id, now_ms};
use crate::store::Store;

/// A delivery not acknowledged within this time is given to another consumer.
const LEASE_MS: i64 = 30_000;
/// The wait for messages from another process right after a busy spell. Messages this
/// process publishes wake its consumers at once, and a delayed message is waited for
/// until it falls due, so the poll only catches what another process published.
const POLL: Duration = Duration::from_millis(200);
/// The longest such wait: an idle queue is polled less and less often, down to once a
/// second. Every process polls each of its queues, and at 200 ms a handful of idle
/// queues kept the database busy with several dozen transactions a second.
const POLL_IDLE_MAX: Duration = Duration::from_secs(1);

/// The next poll interval after a poll that found nothing: twice the last, up to
/// [`POLL_IDLE_MAX`].
fn idle_poll_after(last: Duration) -> Duration {
    (last * 2).min(POLL_IDLE_MAX)
}

#[derive(Clone)]
pub struct SqlBus {
    store: Store,
    wakeups: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    /// The embedded bus lives in one process, which publishes every event itself:
    /// live events are copied to its receivers as they are published.
    live: tokio::sync::broadcast::Sender<Arc<Envelope>>,
}

impl SqlBus {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            wakeups: Arc::default(),
            live: tokio::sync::broadcast::channel(super::LIVE_BUFFER).0,
        }
    }

    fn wakeup(&self, queue: &str) -> Arc<Notify> {
        self.wakeups
            .lock()
            // The map stays consistent whatever panicked while holding it.
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(queue.to_string())
            .or_default()
            .clone()
    }

    async fn route(&self, batch: &[(Envelope, Duration)]) -> anyhow::Result<()> {
        let bindings: Vec<(String, String)> = sqlx::query_as("SELECT queue, pattern FROM bus_bindings")
            .fetch_all(self.store.pool())
            .await?;
        let now = now_ms();
        let mut woken: Vec<String> = Vec::new();
        let mut tx = self.store.begin().await?;
        for (envelope, delay) in batch {
            let mut queues: Vec<&str> = bindings
                .iter()
                .filter(|(_, pattern)| topic_matches(pattern, &envelope.kind))
                .map(|(queue, _)| queue.as_str())
                .collect();
            queues.sort();
            queues.dedup();
            if queues.is_empty() {
                tracing::debug!(topic = %envelope.kind, "message matched no queue");
                continue;
            }
            let body = serde_json::to_string(envelope)?;
            for queue in queues {
                insert_message(&mut tx, queue, envelope, &body, now + delay.as_millis() as i64, now).await?;
                if delay.is_zero() && !woken.iter().any(|q| q == queue) {
                    woken.push(queue.to_string());
                }
            }
        }
        tx.commit().await?;
        for queue in &woken {
            self.wakeup(queue).notify_one();
        }
        Ok(())
    }

    /// Leases up to `limit` due messages of `queue`, oldest first.
    async fn claim(&self, queue: &str, limit: usize) -> sqlx::Result<Vec<Claimed>> {
        let now = now_ms();
        let sql = format!(
            "UPDATE bus_messages SET locked_until = $1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM bus_messages
                          WHERE queue = $2 AND available_at <= $3 AND locked_until <= $3
                          ORDER BY available_at, id LIMIT {}{})
             RETURNING id, envelope, attempts, available_at",
            limit.max(1),
            self.store.skip_locked()
        );
        let mut tx = self.store.begin().await?;
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now + LEASE_MS)
            .bind(queue)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut claimed: Vec<Claimed> = rows
            .into_iter()
            .map(|r| Claimed {
                id: r.get("id"),
                body: r.get("envelope"),
                attempts: r.get::<i64, _>("attempts") as u32,
                available_at: r.get("available_at"),
            })
            .collect();
        // RETURNING gives no order guarantee.
        claimed.sort_by(|a, b| (a.available_at, &a.id).cmp(&(b.available_at, &b.id)));
        Ok(claimed)
    }

    /// When the next message of `queue` falls due, if any is waiting.
    async fn next_due(&self, queue: &str) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar(
            "SELECT CAST(MIN(CASE WHEN locked_until > available_at THEN locked_until ELSE available_at END) AS BIGINT)
             FROM bus_messages WHERE queue = $1",
        )
        .bind(queue)
        .fetch_one(self.store.pool())
        .await
    }

    async fn settle(
        &self,
        queue: &str,
        claimed: &[Claimed],
        envelopes: &[Option<Envelope>],
        outcomes: &[Result<(), HandlerError>],
        options: &ConsumerOptions,
    ) -> sqlx::Result<()> {
        let mut tx = self.store.begin().await?;
        let mut done: Vec<&str> = Vec::new();
        for ((msg, envelope), outcome) in claimed.iter().zip(envelopes).zip(outcomes) {
            match options.settle(queue, msg.attempts, outcome) {
                Settlement::Done => done.push(&msg.id),
                Settlement::RetryAfter(delay) => {
                    let reason = outcome.as_ref().err().map(ToString::to_string);
                    sqlx::query(
                        "UPDATE bus_messages SET available_at = $1, locked_until = 0, last_error = $2 WHERE id = $3",
                    )
                    .bind(now_ms() + delay.as_millis() as i64)
                    .bind(reason)
                    .bind(&msg.id)
                    .execute(&mut *tx)
                    .await?;
                }
                Settlement::DeadLetter(reason) => {
                    let body = match envelope {
                        Some(e) => serde_json::to_string(&e.parked(queue, &reason, msg.attempts))
                            .unwrap_or_else(|_| msg.body.clone()),
                        None => msg.body.clone(),
                    };
                    sqlx::query(
                        "UPDATE bus_messages SET queue = $1, envelope = $2, locked_until = 0, available_at = $3, last_error = $4 WHERE id = $5",
                    )
                    .bind(dead_letter_queue(queue))
                    .bind(body)
                    .bind(now_ms())
                    .bind(reason)
                    .bind(&msg.id)
                    .execute(&mut *tx)
                    .await?;
                    self.wakeup(&dead_letter_queue(queue)).notify_one();
                }
            }
        }
        for chunk in done.chunks(500) {
            let sql = format!(
                "DELETE FROM bus_messages WHERE id IN ({})",
                crate::store::bulk::placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await
    }
}

struct Claimed {
    id: String,
    body: String,
    attempts: u32,
    available_at: i64,
}

async fn insert_message(
    tx: &mut crate::store::Tx,
    queue: &str,
    envelope: &Envelope,
    body: &str,
    available_at: i64,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO bus_messages (id, tenant_id, queue, topic, envelope, available_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(&envelope.tenant_id)
    .bind(queue)
    .bind(&envelope.kind)
    .bind(body)
    .bind(available_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
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

    async fn publish_batch(&self, batch: &[(Envelope, Duration)]) -> anyhow::Result<()> {
        self.route(batch).await?;
        for (envelope, delay) in batch {
            if delay.is_zero() && crate::messages::LIVE_TOPICS.contains(&envelope.kind.as_str()) {
                // No receiver is fine: nobody is watching.
                let _ = self.live.send(Arc::new(envelope.clone()));
            }
        }
        Ok(())
    }

    fn live(&self) -> super::Live {
        self.live.subscribe()
    }

    async fn send_to_queue(&self, queue: &str, envelope: &Envelope) -> anyhow::Result<()> {
        let body = serde_json::to_string(envelope)?;
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        insert_message(&mut tx, queue, envelope, &body, now, now).await?;
        tx.commit().await?;
        self.wakeup(queue).notify_one();
        Ok(())
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
            let mut idle_poll = POLL;
            loop {
                if *stop.borrow() {
                    return;
                }
                // Spread over a quarter of the interval, so the queues of a process do
                // not all reach the database in the same instant.
                let mut wait = idle_poll.mul_f64(0.75 + 0.25 * rand::random::<f64>());
                match bus.claim(queue, options.batch).await {
                    Ok(claimed) if !claimed.is_empty() => {
                        idle_poll = POLL;
                        let envelopes: Vec<Option<Envelope>> =
                            claimed.iter().map(|m| serde_json::from_str(&m.body).ok()).collect();
                        let outcomes = handle_decoded(&handler, &envelopes).await;
                        if let Err(err) = bus.settle(queue, &claimed, &envelopes, &outcomes, &options).await {
                            // The leases run out and the messages come back: nothing lost.
                            tracing::warn!(%queue, error = %err, "could not settle messages");
                        }
                        continue;
                    }
                    Ok(_) => {
                        idle_poll = idle_poll_after(idle_poll);
                        if let Ok(Some(due)) = bus.next_due(queue).await {
                            let until = (due - now_ms()).max(1) as u64;
                            wait = wait.min(Duration::from_millis(until));
                        }
                    }
                    Err(err) => tracing::warn!(%queue, error = %err, "could not poll the queue"),
                }
                tokio::select! {
                    _ = wakeup.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
                if !options.linger.is_zero() {
                    tokio::time::sleep(options.linger).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_queue_is_polled_ever_less_often_down_to_once_a_second() {
        let mut waits = vec![POLL];
        for _ in 0..5 {
            waits.push(idle_poll_after(*waits.last().unwrap()));
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [200, 400, 800, 1000, 1000, 1000]);
    }
}
