//! `card.engaged` → a touch on the lead the visitor became, and a new score. A
//! visitor becomes a lead by sending a public page's form (the capture carries the
//! page's visitor hash, `lead_visitors` remembers it and since when). Only what the
//! visitor did from the form on counts — however the events and the capture race
//! through the queues — so the same visits always give the same score.

use huoke_shared::bus::{Envelope, HandlerError};
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::consumer::Effect;
use huoke_shared::messages::CardEngaged;
use huoke_shared::store::Tx;

use crate::facts::{RulesCache, rescore};

pub struct CreditEngagement;

/// Remembers that `visitor` became `lead_id` with the form sent at `since_ms` (a
/// form for another lead moves the link; another form for the same lead keeps the
/// first time).
pub async fn link_visitor(
    tx: &mut Tx,
    tenant_id: &str,
    visitor: &str,
    lead_id: &str,
    since_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO lead_visitors (tenant_id, visitor, lead_id, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, visitor) DO UPDATE SET lead_id = excluded.lead_id,
             updated_at = CASE WHEN lead_visitors.lead_id = excluded.lead_id THEN lead_visitors.updated_at ELSE excluded.updated_at END",
    )
    .bind(tenant_id)
    .bind(visitor)
    .bind(lead_id)
    .bind(since_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The live lead `lead_id` is now: itself, or the lead it was merged into.
async fn live(tx: &mut Tx, tenant_id: &str, mut lead_id: String) -> sqlx::Result<Option<String>> {
    // Merges chain rarely and shortly; the bound only guards against a cycle.
    for _ in 0..8 {
        let merged_into: Option<Option<String>> =
            sqlx::query_scalar("SELECT merged_into FROM leads WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(&lead_id)
                .fetch_optional(&mut **tx)
                .await?;
        match merged_into {
            None => return Ok(None),
            Some(None) => return Ok(Some(lead_id)),
            Some(Some(next)) => lead_id = next,
        }
    }
    Ok(None)
}

#[async_trait::async_trait]
impl Effect for CreditEngagement {
    type Scratch = RulesCache;

    fn consumer(&self) -> &'static str {
        "qualify.engagement"
    }

    async fn apply(&self, tx: &mut Tx, envelope: &Envelope, rules: &mut RulesCache) -> Result<(), HandlerError> {
        let event: CardEngaged = envelope.decode()?;
        let tenant = envelope.tenant_id.as_str();
        let linked: Option<(String, i64)> =
            sqlx::query_as("SELECT lead_id, updated_at FROM lead_visitors WHERE tenant_id = $1 AND visitor = $2")
                .bind(tenant)
                .bind(&event.visitor)
                .fetch_optional(&mut **tx)
                .await?;
        let Some((lead_id, _)) = linked.filter(|(_, since)| event.at_ms >= *since) else {
            return Ok(());
        };
        let Some(lead_id) = live(tx, tenant, lead_id).await? else {
            return Ok(());
        };
        // The envelope id makes a redelivered event one touch.
        let added = sqlx::query(
            "INSERT INTO lead_touches (id, tenant_id, lead_id, capture_id, channel, campaign_id, occurred_at, kind)
             VALUES ($1, $2, $3, $4, 'smart_card', NULL, $5, $6) ON CONFLICT (tenant_id, capture_id) DO NOTHING",
        )
        .bind(new_id())
        .bind(tenant)
        .bind(&lead_id)
        .bind(&envelope.id)
        .bind(event.at_ms)
        .bind(&event.kind)
        .execute(&mut **tx)
        .await?;
        if added.rows_affected() == 1 {
            let (version, rules) = rules.get(tx, tenant).await?;
            rescore(tx, tenant, &lead_id, version, &rules, now_ms()).await?;
        }
        Ok(())
    }
}
