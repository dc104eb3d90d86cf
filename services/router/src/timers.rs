//! SLA timers: a due-time table (`sla_timers`, one row per open offer) polled in
//! batches by every router process. The same on both buses, survives restarts (the
//! rows are in the store), and any number of distinct deadlines cost one index.
//! A due offer expires through the lifecycle — guarded, so two replicas firing the
//! same timer, or a timer racing an accept, change it once — which publishes
//! `sla.breached` for the re-routing consumer.

use std::time::Duration;

use huoke_shared::Infra;
use huoke_shared::clock::now_ms;
use huoke_shared::lifecycle;
use huoke_shared::store::Backend;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Timers fired per transaction.
const BATCH: i64 = 200;

pub fn start(infra: Infra, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every = infra.settings.sla_poll;
        loop {
            let fired = match fire_due(&infra).await {
                Ok(n) => n,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "firing SLA timers failed; retrying");
                    0
                }
            };
            // A full batch means more are due: go again at once.
            let pause = if fired as i64 >= BATCH { Duration::ZERO } else { every };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
        }
    })
}

/// Fires the timers that are due; returns how many were handled.
pub async fn fire_due(infra: &Infra) -> anyhow::Result<usize> {
    let now = now_ms();
    let mut tx = infra.store.begin().await?;
    // PostgreSQL: replicas take disjoint batches. SQLite has one writer anyway.
    let lock = match infra.store.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let due: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT assignment_id, tenant_id, due_at FROM sla_timers WHERE due_at <= $1 ORDER BY due_at LIMIT {BATCH}{lock}"
    )))
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut breached = 0;
    for (assignment_id, tenant_id, due_at) in &due {
        if lifecycle::expire(&mut tx, tenant_id, assignment_id).await? {
            // The expiry removed the timer with the offer.
            breached += 1;
            metrics::histogram!("huoke_sla_timer_lateness_seconds").record((now_ms() - due_at).max(0) as f64 / 1000.0);
            continue;
        }
        // The offer is gone or no longer open: only a stray timer is left to remove.
        sqlx::query("DELETE FROM sla_timers WHERE assignment_id = $1")
            .bind(assignment_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if breached > 0 {
        metrics::counter!("huoke_sla_breaches_total").increment(breached);
        infra.kick_outbox();
    }
    Ok(due.len())
}
