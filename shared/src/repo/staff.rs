use std::collections::BTreeSet;

use serde::Serialize;
use sqlx::FromRow;

use crate::auth::{Role, roles_from_string, roles_to_string};
use crate::clock::{new_id, now_ms, rfc3339};
use crate::store::{Store, Tx};

#[derive(Debug, Clone, FromRow)]
pub struct StaffRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub roles: String,
    pub team_id: Option<String>,
    pub capacity: Option<i64>,
    pub daily_cap: Option<i64>,
    pub timezone: String,
    pub working_hours: Option<String>,
    pub active: i64,
    pub created_at: i64,
    pub wecom_userid: Option<String>,
}

pub struct NewStaff {
    pub name: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub roles: BTreeSet<Role>,
    pub team_id: Option<String>,
    pub capacity: Option<i64>,
    pub daily_cap: Option<i64>,
    pub timezone: String,
    pub working_hours: Option<serde_json::Value>,
}

/// A staff member as the API shows it (no password hash).
#[derive(Debug, Clone, Serialize)]
pub struct StaffView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<Role>,
    pub team_id: Option<String>,
    pub capacity: Option<i64>,
    pub daily_cap: Option<i64>,
    pub timezone: String,
    pub working_hours: Option<serde_json::Value>,
    pub active: bool,
    pub wecom_userid: Option<String>,
    pub created_at: String,
}

impl StaffRow {
    pub fn roles(&self) -> BTreeSet<Role> {
        roles_from_string(&self.roles)
    }

    pub fn view(&self) -> StaffView {
        StaffView {
            id: self.id.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            roles: self.roles().into_iter().collect(),
            team_id: self.team_id.clone(),
            capacity: self.capacity,
            daily_cap: self.daily_cap,
            timezone: self.timezone.clone(),
            working_hours: self.working_hours.as_deref().and_then(|w| serde_json::from_str(w).ok()),
            active: self.active != 0,
            wecom_userid: self.wecom_userid.clone(),
            created_at: rfc3339(self.created_at),
        }
    }
}

const COLUMNS: &str = "id, tenant_id, name, email, password_hash, roles, team_id, capacity, daily_cap, timezone, working_hours, active, created_at, wecom_userid";

pub async fn insert_staff(tx: &mut Tx, tenant_id: &str, new: NewStaff) -> sqlx::Result<StaffRow> {
    let row = StaffRow {
        id: new_id(),
        tenant_id: tenant_id.to_string(),
        name: new.name,
        email: new.email.to_lowercase(),
        password_hash: new.password_hash,
        roles: roles_to_string(&new.roles),
        team_id: new.team_id,
        capacity: new.capacity,
        daily_cap: new.daily_cap,
        timezone: new.timezone,
        working_hours: new.working_hours.map(|w| w.to_string()),
        active: 1,
        created_at: now_ms(),
        wecom_userid: None,
    };
    sqlx::query(
        "INSERT INTO staff (id, tenant_id, name, email, password_hash, roles, team_id, capacity, daily_cap, timezone, working_hours, active, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&row.id)
    .bind(&row.tenant_id)
    .bind(&row.name)
    .bind(&row.email)
    .bind(&row.password_hash)
    .bind(&row.roles)
    .bind(&row.team_id)
    .bind(row.capacity)
    .bind(row.daily_cap)
    .bind(&row.timezone)
    .bind(&row.working_hours)
    .bind(row.active)
    .bind(row.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(row)
}

pub async fn by_email(store: &Store, tenant_id: &str, email: &str) -> sqlx::Result<Option<StaffRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM staff WHERE tenant_id = $1 AND email = $2"
    )))
    .bind(tenant_id)
    .bind(email.trim().to_lowercase())
    .fetch_optional(store.pool())
    .await
}

pub async fn by_id(store: &Store, tenant_id: &str, id: &str) -> sqlx::Result<Option<StaffRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM staff WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(store.pool())
    .await
}

/// A page of a tenant's staff in creation order, `limit + 1` rows for paging.
pub async fn list(store: &Store, tenant_id: &str, after: Option<&str>, limit: i64) -> sqlx::Result<Vec<StaffRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM staff WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    )))
    .bind(tenant_id)
    .bind(after.unwrap_or(""))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await
}

/// Active staff of the tenant holding the SDR role, in a stable order (for rotation).
/// The tenant's active SDRs, in a stable order, read inside a transaction.
pub async fn active_sdrs_in(tx: &mut crate::store::Tx, tenant_id: &str) -> sqlx::Result<Vec<StaffRow>> {
    let all: Vec<StaffRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM staff WHERE tenant_id = $1 AND active = 1 ORDER BY id"
    )))
    .bind(tenant_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(all.into_iter().filter(|s| s.roles().contains(&Role::Sdr)).collect())
}
