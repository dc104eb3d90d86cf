//! Dead letters: messages a consumer gave up on. Each consumer queue's dead-letter
//! queue is drained by a parking consumer (in every process) into the
//! `dead_letters` table, where `huoke dlq …` and `/v1/admin/dead-letters…` list,
//! show and replay them. A replay puts the message back into the one queue that
//! failed it (not through topic routing, which would deliver it again to consumers
//! that already handled it).

use std::sync::Arc;

use serde::Serialize;
use sqlx::FromRow;

use crate::bus::{Bus, ConsumerOptions, Envelope, Handler, HandlerError, dead_letter_queue};
use crate::clock::{new_id, now_ms, rfc3339};
use crate::messages::TOPOLOGY;
use crate::service::Consumer;
use crate::store::Store;

/// One parked message, as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub queue: String,
    pub message_id: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub topic: String,
    pub reason: String,
    pub attempts: i64,
    pub dead_at: String,
    pub parked_at: String,
    /// The message itself; left out of lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope: Option<serde_json::Value>,
}

#[derive(FromRow)]
struct Row {
    id: String,
    queue: String,
    message_id: String,
    tenant_id: String,
    topic: String,
    envelope: String,
    reason: String,
    attempts: i64,
    dead_at: i64,
    parked_at: i64,
}

impl Row {
    fn into_dead_letter(self, with_envelope: bool) -> DeadLetter {
        DeadLetter {
            envelope: with_envelope.then(|| serde_json::from_str(&self.envelope).unwrap_or(serde_json::Value::Null)),
            id: self.id,
            queue: self.queue,
            message_id: self.message_id,
            tenant_id: self.tenant_id,
            topic: self.topic,
            reason: self.reason,
            attempts: self.attempts,
            dead_at: rfc3339(self.dead_at),
            parked_at: rfc3339(self.parked_at),
        }
    }
}

const COLUMNS: &str = "id, queue, message_id, tenant_id, topic, envelope, reason, attempts, dead_at, parked_at";

/// Moves messages from one dead-letter queue into the table.
struct Parker {
    store: Store,
    queue: &'static str,
}

#[async_trait::async_trait]
impl Handler for Parker {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(envelope))
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    async fn handle_batch(&self, envelopes: &[Envelope]) -> Vec<Result<(), HandlerError>> {
        let outcome = async {
            let mut tx = self.store.begin().await?;
            for envelope in envelopes {
                let note = envelope.dead_letter.clone();
                let (reason, attempts, dead_at) = match &note {
                    Some(n) => (n.reason.clone(), n.attempts as i64, n.at_ms),
                    None => ("dead-lettered by the broker".to_string(), 0, now_ms()),
                };
                let body = serde_json::to_string(envelope).map_err(anyhow::Error::from)?;
                // A message that fails again after a replay replaces its old entry.
                sqlx::query(
                    "INSERT INTO dead_letters (id, queue, message_id, tenant_id, topic, envelope, reason, attempts, dead_at, parked_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (queue, message_id) DO UPDATE SET envelope = $6, reason = $7, attempts = $8, dead_at = $9, parked_at = $10",
                )
                .bind(new_id())
                .bind(self.queue)
                .bind(&envelope.id)
                .bind(&envelope.tenant_id)
                .bind(&envelope.kind)
                .bind(body)
                .bind(reason)
                .bind(attempts)
                .bind(dead_at)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<(), HandlerError>(())
        }
        .await;
        vec![outcome; envelopes.len()]
    }
}

/// A parking consumer for the dead-letter queue of every queue in the topology.
pub fn parkers(store: &Store) -> Vec<Consumer> {
    TOPOLOGY
        .iter()
        .map(|spec| Consumer {
            queue: spec.dead_letter_queue,
            options: ConsumerOptions {
                prefetch: 64,
                batch: 64,
                // Parking never gives up: its own dead letters would have nowhere to go.
                max_attempts: u32::MAX,
                ..Default::default()
            },
            handler: Arc::new(Parker {
                store: store.clone(),
                queue: spec.name,
            }),
        })
        .collect()
}

/// Which dead letters to look at: an operator sees every tenant, an admin their own.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub tenant_id: Option<&'a str>,
    pub queue: Option<&'a str>,
}

/// Accepts `qualify.captures` and `qualify.captures.dlq` alike; None when unknown.
pub fn known_queue(name: &str) -> Option<&'static str> {
    let name = name.trim();
    TOPOLOGY
        .iter()
        .find(|spec| spec.name == name || dead_letter_queue(spec.name) == name)
        .map(|spec| spec.name)
}

pub async fn list(store: &Store, scope: Scope<'_>, after: Option<&str>, limit: i64) -> sqlx::Result<Vec<DeadLetter>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dead_letters
         WHERE ($1 = '' OR tenant_id = $1) AND ($2 = '' OR queue = $2) AND ($3 = '' OR id > $3)
         ORDER BY id LIMIT $4"
    )))
    .bind(scope.tenant_id.unwrap_or(""))
    .bind(scope.queue.unwrap_or(""))
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(rows.into_iter().map(|r| r.into_dead_letter(false)).collect())
}

/// One dead letter by its id or its message id.
pub async fn get(store: &Store, scope: Scope<'_>, id: &str) -> sqlx::Result<Option<DeadLetter>> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dead_letters
         WHERE ($1 = '' OR tenant_id = $1) AND ($2 = '' OR queue = $2) AND (id = $3 OR message_id = $3)
         ORDER BY id LIMIT 1"
    )))
    .bind(scope.tenant_id.unwrap_or(""))
    .bind(scope.queue.unwrap_or(""))
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|r| r.into_dead_letter(true)))
}

/// Puts dead letters back into the queues that failed them, then forgets them:
/// the one with `id` (its id or message id), or every one in scope when `id` is None.
/// Answers how many were replayed.
pub async fn replay(store: &Store, bus: &dyn Bus, scope: Scope<'_>, id: Option<&str>) -> anyhow::Result<usize> {
    let mut replayed = 0;
    loop {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM dead_letters
             WHERE ($1 = '' OR tenant_id = $1) AND ($2 = '' OR queue = $2) AND ($3 = '' OR id = $3 OR message_id = $3)
             ORDER BY id LIMIT 200"
        )))
        .bind(scope.tenant_id.unwrap_or(""))
        .bind(scope.queue.unwrap_or(""))
        .bind(id.unwrap_or(""))
        .fetch_all(store.pool())
        .await?;
        if rows.is_empty() {
            return Ok(replayed);
        }
        for row in rows {
            let mut envelope: Envelope = serde_json::from_str(&row.envelope)?;
            envelope.dead_letter = None;
            // Sent before the row goes: a crash in between replays twice, and
            // consumers are idempotent on the message id.
            bus.send_to_queue(&row.queue, &envelope).await?;
            sqlx::query("DELETE FROM dead_letters WHERE id = $1")
                .bind(&row.id)
                .execute(store.pool())
                .await?;
            tracing::info!(queue = %row.queue, message = %row.message_id, "dead letter replayed");
            metrics::counter!("huoke_dead_letters_replayed_total", "queue" => row.queue.clone()).increment(1);
            replayed += 1;
        }
        if id.is_some() {
            return Ok(replayed);
        }
    }
}
