//! The lead audit trail: every decision (created, matched, scored, assigned,
//! accepted…) leaves a row saying who made it and why.

use crate::clock::{new_id, now_ms};
use crate::store::Tx;
use crate::store::bulk::{self, Value};

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

/// One history row, for [`record_many`].
pub struct Entry<'a> {
    pub tenant_id: &'a str,
    pub lead_id: &'a str,
    pub kind: &'a str,
    pub detail: serde_json::Value,
}

/// Several rows by one actor in one statement (a consumer's batch).
pub async fn record_many(tx: &mut Tx, actor: &str, entries: Vec<Entry<'_>>) -> sqlx::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let rows: Vec<Vec<Value>> = entries
        .into_iter()
        .map(|e| {
            vec![
                Value::from(new_id()),
                Value::from(e.tenant_id),
                Value::from(e.lead_id),
                Value::from(now),
                Value::from(e.kind),
                Value::from(actor),
                Value::from(e.detail.to_string()),
            ]
        })
        .collect();
    bulk::insert(
        tx,
        "lead_history",
        &["id", "tenant_id", "lead_id", "at", "kind", "actor", "detail"],
        &rows,
        "",
    )
    .await?;
    Ok(())
}
