//! Recycling: a lead its owner has not touched for the tenant's `recycle_after_days`
//! (no activity since it was accepted, or since the last one) goes back to the
//! public pool, its recycle count one higher. Every pool process runs the sweep;
//! each lead is given back through the lifecycle, guarded on its owner, so two
//! processes recycle it once.

use huoke_shared::Infra;
use huoke_shared::clock::now_ms;
use huoke_shared::lifecycle::{self, LifecycleError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::settings::PoolSettings;

/// Leads recycled per tenant per sweep; a longer list waits for the next sweep.
const BATCH: i64 = 200;

pub fn start(infra: Infra, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let every = infra.settings.recycle_poll;
    huoke_shared::service::every("recycling", every, stop, move || {
        let infra = infra.clone();
        async move { sweep(&infra).await }
    })
}

/// One pass over the tenants that recycle; returns how many leads went back.
pub async fn sweep(infra: &Infra) -> anyhow::Result<usize> {
    // Reads only: straight from the pool, no transaction (SQLite's would take the
    // write lock). Each give-back below has its own guarded transaction.
    let tenants: Vec<(String, String)> = sqlx::query_as("SELECT tenant_id, body FROM pool_settings")
        .fetch_all(infra.store.pool())
        .await?;
    let mut recycled = 0;
    for (tenant, body) in tenants {
        let Some(days) = serde_json::from_str::<PoolSettings>(&body)?.recycle_after_days else {
            continue;
        };
        let before = now_ms() - (days * 86_400_000.0) as i64;
        let stale: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, owner_id FROM leads
             WHERE tenant_id = $1 AND owner_id IS NOT NULL AND status IN ('accepted', 'contacted')
               AND COALESCE(last_activity_at, status_changed_at, updated_at) < $2
             ORDER BY updated_at LIMIT $3",
        )
        .bind(&tenant)
        .bind(before)
        .bind(BATCH)
        .fetch_all(infra.store.pool())
        .await?;
        let reason = format!("no activity for {days} days");
        for (lead, owner) in stale {
            let mut tx = infra.store.begin().await?;
            match lifecycle::give_back(&mut tx, &tenant, &lead, &owner, "pool", &reason, true).await {
                Ok(()) => {
                    tx.commit().await?;
                    recycled += 1;
                }
                // Touched, given back or recycled by another process meanwhile.
                Err(LifecycleError::Conflict(_) | LifecycleError::WrongState(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    if recycled > 0 {
        infra.kick_outbox();
        metrics::counter!("huoke_leads_recycled_total").increment(recycled as u64);
    }
    Ok(recycled)
}
