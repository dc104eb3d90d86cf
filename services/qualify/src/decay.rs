//! Stored scores follow decay: engagement loses worth as it ages, but a lead is only
//! rescored when something happens to it. Every qualify process sweeps every
//! `HUOKE_RESCORE_POLL_MS` for open leads last scored more than
//! `HUOKE_RESCORE_AGE_MS` ago, oldest first, a batch at a time, and scores them again
//! under the rules in force; a lead whose grade changes gets a history entry. Leads
//! that are won, lost, disqualified or merged keep the score they ended with.

use huoke_shared::Infra;
use huoke_shared::clock::now_ms;
use huoke_shared::repo::history;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::facts::{RulesCache, rescore};

/// Leads rescored per sweep.
const BATCH: i64 = 500;

pub fn start(infra: Infra, stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let every = infra.settings.rescore_poll;
    huoke_shared::service::every("rescoring", every, stop, move || {
        let infra = infra.clone();
        async move { sweep(&infra).await }
    })
}

/// One batch; returns how many leads were rescored.
pub async fn sweep(infra: &Infra) -> anyhow::Result<usize> {
    let now = now_ms();
    let before = now - i64::try_from(infra.settings.rescore_age.as_millis()).unwrap_or(i64::MAX);
    let stale: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT tenant_id, id, grade FROM leads
         WHERE scored_at < $1 AND merged_into IS NULL AND status NOT IN ('won', 'lost', 'disqualified', 'merged')
         ORDER BY scored_at LIMIT $2",
    )
    .bind(before)
    .bind(BATCH)
    .fetch_all(infra.store.pool())
    .await?;
    let mut rules = RulesCache::default();
    for (tenant, lead, grade) in &stale {
        let mut tx = infra.store.begin().await?;
        let (version, set) = rules.get(&mut tx, tenant).await?;
        let scored = rescore(&mut tx, tenant, lead, version, &set, now).await?;
        if scored.grade != grade {
            history::record(
                &mut tx,
                tenant,
                lead,
                "rescored",
                "qualify",
                json!({"from": grade, "to": scored.grade, "score": scored.points, "rules_version": version, "why": "decay"}),
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(stale.len())
}
