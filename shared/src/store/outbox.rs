//! The transactional outbox. A service writes its events here in the same
//! transaction as the change they describe, so "committed" implies "will be
//! published". The relay publishes with confirms and only then deletes the row;
//! a crash in between publishes twice, which consumers tolerate (they dedupe on id).

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};
use tokio::sync::{Notify, watch};

use super::bulk::{self, Value};
use super::{Store, Tx};
use crate::bus::{Bus, Envelope};
use crate::clock::now_ms;

pub struct Outbox;

impl Outbox {
    /// Queue `envelope` for publishing once `tx` commits.
    pub async fn add(tx: &mut Tx, envelope: &Envelope) -> sqlx::Result<()> {
        Self::add_delayed(tx, envelope, Duration::ZERO).await
    }

    /// Several events in one statement (a consumer's batch).
    pub async fn add_many(tx: &mut Tx, envelopes: &[Envelope]) -> sqlx::Result<()> {
        let now = now_ms();
        let mut rows: Vec<Vec<Value>> = Vec::with_capacity(envelopes.len());
        for e in envelopes {
            rows.push(vec![
                Value::from(&e.id),
                Value::from(&e.tenant_id),
                Value::from(&e.kind),
                Value::from(encode(e)?),
                Value::from(0),
                Value::from(now),
            ]);
        }
        bulk::insert(
            tx,
            "outbox",
            &["id", "tenant_id", "topic", "envelope", "delay_ms", "created_at"],
            &rows,
            "",
        )
        .await?;
        Ok(())
    }

    /// As `add`, delivered to consumers only after `delay` (timers such as SLAs).
    pub async fn add_delayed(tx: &mut Tx, envelope: &Envelope, delay: Duration) -> sqlx::Result<()> {
        let body = encode(envelope)?;
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

fn encode(envelope: &Envelope) -> sqlx::Result<String> {
    serde_json::to_string(envelope).map_err(|e| sqlx::Error::Encode(Box::new(e)))
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
const BATCH: i64 = 500;
const IDLE_POLL: Duration = Duration::from_millis(500);
const GATHER: Duration = Duration::from_millis(2);

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
                // Under load every commit wakes the relay; a moment's pause lets one
                // pass carry many rows instead of one scan of the outbox per commit.
                tokio::time::sleep(GATHER).await;
            }
        }
    }

    /// Publishes one batch of due rows — all sent before any confirm is awaited —
    /// then deletes them in one statement; returns how many were published.
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
        if rows.is_empty() {
            return Ok(0);
        }
        // RETURNING gives no order guarantee; publish oldest first.
        rows.sort_by_key(|r| (r.get::<i64, _>("created_at"), r.get::<String, _>("id")));

        let mut ids: Vec<String> = Vec::with_capacity(rows.len());
        let mut batch: Vec<(Envelope, Duration)> = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.get("id");
            let body: String = row.get("envelope");
            let delay_ms: i64 = row.get("delay_ms");
            match serde_json::from_str::<Envelope>(&body) {
                Ok(envelope) => batch.push((envelope, Duration::from_millis(delay_ms.max(0) as u64))),
                Err(err) => tracing::error!(outbox_id = %id, error = %err, "undecodable outbox row dropped"),
            }
            ids.push(id);
        }
        if let Err(err) = self.bus.publish_batch(&batch).await {
            // Hand the rows back at once rather than after the lease; what was already
            // published goes out again, which consumers tolerate.
            let _ = self
                .execute_for_ids("UPDATE outbox SET locked_until = 0 WHERE id IN", &ids)
                .await;
            return Err(err);
        }
        self.execute_for_ids("DELETE FROM outbox WHERE id IN", &ids).await?;
        for (envelope, _) in &batch {
            metrics::counter!("huoke_outbox_relayed_total", "topic" => envelope.kind.clone()).increment(1);
        }
        Ok(batch.len())
    }

    /// Runs `{statement} (<ids>)`.
    async fn execute_for_ids(&self, statement: &str, ids: &[String]) -> sqlx::Result<()> {
        for chunk in ids.chunks(500) {
            let sql = format!("{statement} ({})", bulk::placeholders(1, chunk.len()));
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id);
            }
            query.execute(self.store.pool()).await?;
        }
        Ok(())
    }
}
