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
            if let Err(err) = first_contacts_due(&infra).await {
                tracing::warn!(error = %format!("{err:#}"), "checking first contacts failed; retrying");
            }
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

/// Marks accepted offers whose owner made no first contact by the policy's deadline
/// (a contact after the deadline does not undo the breach); returns how many. The
/// mark is guarded, so two router processes record a breach once.
pub async fn first_contacts_due(infra: &Infra) -> anyhow::Result<usize> {
    let now = now_ms();
    let due: Vec<(String, String, String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT a.id, a.tenant_id, a.lead_id, a.staff_id, a.first_contact_due_at FROM assignments a
         JOIN leads l ON l.tenant_id = a.tenant_id AND l.id = a.lead_id
         WHERE a.first_contact_due_at <= $1 AND a.first_contact_breached_at IS NULL AND a.state = 'accepted'
           AND (l.first_contact_at IS NULL OR l.first_contact_at > a.first_contact_due_at)
         ORDER BY a.first_contact_due_at LIMIT {BATCH}"
    )))
    .bind(now)
    .fetch_all(infra.store.pool())
    .await?;
    let mut marked = 0;
    for (assignment_id, tenant_id, lead_id, staff_id, due_at) in due {
        let mut tx = infra.store.begin().await?;
        if !lifecycle::breach_first_contact(&mut tx, &tenant_id, &assignment_id, &lead_id, &staff_id, due_at).await? {
            continue;
        }
        tx.commit().await?;
        marked += 1;
    }
    if marked > 0 {
        metrics::counter!("huoke_first_contact_breaches_total").increment(marked as u64);
        infra.kick_outbox();
    }
    Ok(marked)
}
