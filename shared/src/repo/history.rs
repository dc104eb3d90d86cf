//! The lead audit trail: every decision (created, matched, scored, assigned,
//! accepted…) leaves a row saying who made it and why.

use crate::clock::{new_id, now_ms};
use crate::store::Tx;

pub async fn record(
    tx: &mut Tx,
    tenant_id: &str,
    lead_id: &str,
    kind: &str,
    actor: &str,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO lead_history (id, tenant_id, lead_id, at, kind, actor, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(new_id())
        .bind(tenant_id)
        .bind(lead_id)
        .bind(now_ms())
        .bind(kind)
        .bind(actor)
        .bind(detail.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
