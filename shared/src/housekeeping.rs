//! Upkeep of bookkeeping that would otherwise grow forever: the consumers'
//! idempotency markers (`processed_messages`) and the stored answers of idempotent
//! create requests (`idempotent_requests`, kept a day), and the ids of written scan
//! flushes (`scan_flushes`, kept a day). Runs in every process; deletes in
//! small batches by primary key so it never holds long locks on hot tables, and
//! several processes doing it at once only share the work.

use std::time::Duration;

use sqlx::AssertSqlSafe;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::store::Store;

/// Rows deleted per statement.
const BATCH: i64 = 1_000;
/// Pause between passes.
const EVERY: Duration = Duration::from_secs(60);

/// Deletes markers older than `retention`; answers how many went.
pub async fn prune_processed(store: &Store, retention: Duration) -> sqlx::Result<u64> {
    let cutoff = now_ms() - retention.as_millis() as i64;
    let mut total = 0;
    loop {
        // Through the primary key, so PostgreSQL and SQLite both delete exactly the
        // rows picked (no `DELETE … LIMIT` in the common subset).
        let sql = format!(
            "DELETE FROM processed_messages WHERE (consumer, message_id) IN
               (SELECT consumer, message_id FROM processed_messages WHERE processed_at < $1 LIMIT {BATCH})"
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(cutoff)
            .execute(store.pool())
            .await?;
        total += done.rows_affected();
        if done.rows_affected() < BATCH as u64 {
            return Ok(total);
        }
        // Let the hot path in between batches.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deletes stored answers of idempotent requests older than a day.
pub async fn prune_idempotent_requests(store: &Store) -> sqlx::Result<u64> {
    let cutoff = now_ms() - crate::idempotency::KEEP_MS;
    let sql = format!(
        "DELETE FROM idempotent_requests WHERE (tenant_id, route, key) IN
           (SELECT tenant_id, route, key FROM idempotent_requests WHERE created_at < $1 LIMIT {BATCH})"
    );
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(cutoff)
        .execute(store.pool())
        .await?
        .rows_affected())
}

/// How long the ids of written scan flushes are kept: a flush retried after an
/// unclear failure is retried within seconds, so a day is far more than needed.
const SCAN_FLUSHES_KEEP_MS: i64 = 24 * 3_600_000;

/// Deletes ids of scan flushes written more than a day ago (codes service, see
/// `scan_flushes`); answers how many went.
pub async fn prune_scan_flushes(store: &Store) -> sqlx::Result<u64> {
    let cutoff = now_ms() - SCAN_FLUSHES_KEEP_MS;
    let sql = format!("DELETE FROM scan_flushes WHERE id IN (SELECT id FROM scan_flushes WHERE at < $1 LIMIT {BATCH})");
    Ok(sqlx::query(AssertSqlSafe(sql))
        .bind(cutoff)
        .execute(store.pool())
        .await?
        .rows_affected())
}

/// Runs the upkeep every minute until `stop` turns true.
pub async fn run(store: Store, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match prune_processed(&store, retention).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(rows = n, "pruned processed-message markers");
                metrics::counter!("huoke_housekeeping_pruned_total", "table" => "processed_messages").increment(n);
            }
            Err(err) => tracing::warn!(error = %err, "pruning processed-message markers failed; will try again"),
        }
        if let Err(err) = prune_idempotent_requests(&store).await {
            tracing::warn!(error = %err, "pruning idempotent request answers failed; will try again");
        }
        if let Err(err) = prune_scan_flushes(&store).await {
            tracing::warn!(error = %err, "pruning scan flush ids failed; will try again");
        }
        // Spread processes that started together.
        let pause = EVERY + Duration::from_millis(rand::random::<u64>() % 10_000);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}
