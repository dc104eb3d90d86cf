//! Table access shared by more than one service (tenants and staff are read by
//! auth, routing and the operator commands). Service-private tables live in the
//! service crates.

pub mod history;
pub mod staff;
pub mod tenants;
pub mod versioned;

/// Stamps `column` (e.g. `revoked_at`) with now on one of the tenant's rows, once:
/// doing it again keeps the first time. False when the tenant has no such row.
pub async fn switch_off(
    store: &crate::store::Store,
    table: &'static str,
    column: &'static str,
    tenant_id: &str,
    id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET {column} = COALESCE({column}, $1) WHERE tenant_id = $2 AND id = $3"
    )))
    .bind(crate::clock::now_ms())
    .bind(tenant_id)
    .bind(id)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}
