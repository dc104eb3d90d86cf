//! The transactional outbox. A service writes its events here in the same
//! transaction as the change they describe, so "committed" implies "will be
//! published". The relay publishes with confirms and only then deletes the row;
//! a crash in between publishes twice, which consumers tolerate (they dedupe on id).

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};
use tokio::sync::{Notify, watch};

use super::{Store, Tx};
use crate::bus::{Bus, Envelope};
use crate::clock::now_ms;

pub struct Outbox;

impl Outbox {
    /// Queue `envelope` for publishing once `tx` commits.
    pub async fn add(tx: &mut Tx, envelope: &Envelope) -> sqlx::Result<()> {
        Self::add_delayed(tx, envelope, Duration::ZERO).await
    }

    /// As `add`, delivered to consumers only after `delay` (timers such as SLAs).
    pub async fn add_delayed(tx: &mut Tx, envelope: &Envelope, delay: Duration) -> sqlx::Result<()> {
        let body = serde_json::to_string(envelope).expect("envelopes serialise");
        sqlx::query(
            "INSERT INTO outbox (id, tenant_id, topic, envelope, delay_ms, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&envelope.id)
        .bind(&envelope.tenant_id)
        .bind(&envelope.kind)
        .bind(body)
        .bind(delay.as_millis() as i64)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// Moves outbox rows to the bus. Runs in every process that writes to the outbox;
/// several relays over one database split the rows through short leases.
#[derive(Clone)]
pub struct OutboxRelay {
    store: Store,
    bus: Arc<dyn Bus>,
    wakeup: Arc<Notify>,
}

const LEASE_MS: i64 = 15_000;
const BATCH: i64 = 100;
const IDLE_POLL: Duration = Duration::from_millis(500);

impl OutboxRelay {
    pub fn new(store: Store, bus: Arc<dyn Bus>, wakeup: Arc<Notify>) -> Self {
        Self { store, bus, wakeup }
    }

    /// Runs until `stop` turns true. Failures (a broker outage) only delay rows.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let relayed = match self.relay_batch().await {
                Ok(n) => n,
                Err(err) => {
                    tracing::warn!(error = %err, "outbox relay failed; will retry");
                    metrics::counter!("huoke_outbox_relay_errors_total").increment(1);
                    0
                }
            };
            if *stop.borrow() {
                return;
            }
            if relayed < BATCH as usize {
                tokio::select! {
                    _ = self.wakeup.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// Publishes one batch of due rows; returns how many were published.
    pub async fn relay_batch(&self) -> anyhow::Result<usize> {
        let now = now_ms();
        let sql = format!(
            "UPDATE outbox SET locked_until = $1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox WHERE locked_until <= $2
                          ORDER BY created_at, id LIMIT {BATCH}{})
             RETURNING id, envelope, delay_ms, created_at",
            self.store.skip_locked()
        );
        let mut tx = self.store.begin().await?;
        let mut rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now + LEASE_MS)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        // RETURNING gives no order guarantee; publish oldest first.
        rows.sort_by_key(|r| (r.get::<i64, _>("created_at"), r.get::<String, _>("id")));

        let mut published = 0;
        for row in rows {
            let id: String = row.get("id");
            let body: String = row.get("envelope");
            let delay_ms: i64 = row.get("delay_ms");
            let envelope: Envelope = match serde_json::from_str(&body) {
                Ok(e) => e,
                Err(err) => {
                    tracing::error!(outbox_id = %id, error = %err, "undecodable outbox row dropped");
                    self.delete(&id).await?;
                    continue;
                }
            };
            let result = if delay_ms > 0 {
                self.bus
                    .publish_delayed(&envelope, Duration::from_millis(delay_ms as u64))
                    .await
            } else {
                self.bus.publish(&envelope).await
            };
            result?;
            self.delete(&id).await?;
            published += 1;
            metrics::counter!("huoke_outbox_relayed_total", "topic" => envelope.kind.clone()).increment(1);
        }
        Ok(published)
    }

    async fn delete(&self, id: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }
}
