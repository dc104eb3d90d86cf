//! Versioned per-tenant configuration (routing rules, SLA policies, scoring rules):
//! each save is a new version, validated first, and every version is kept; the
//! highest is in force. A tenant that saved nothing runs on the defaults, shown as
//! version 0. Managers and admins read and write it.

use actix_web::HttpResponse;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::{Caller, Role};
use crate::clock::{now_ms, rfc3339};
use crate::error::FieldError;
use crate::store::Tx;
use crate::{ApiError, ApiResult, Infra};

const MANAGERS: &[Role] = &[Role::Admin, Role::Manager];

/// One versioned configuration: its table and how to check a new version.
pub trait Versioned: DeserializeOwned + serde::Serialize + Default {
    const TABLE: &'static str;
    fn problems(&self, tx: &mut Tx, tenant_id: &str) -> impl Future<Output = ApiResult<Vec<FieldError>>>;
}

/// The newest version and its stored body, if any was saved. Takes a connection, so
/// a read needs no transaction (on SQLite a transaction holds the write lock).
pub async fn current_version(
    conn: &mut sqlx::AnyConnection,
    table: &str,
    tenant_id: &str,
) -> sqlx::Result<Option<(i64, String)>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, body FROM {table} WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1"
    )))
    .bind(tenant_id)
    .fetch_optional(conn)
    .await
}

/// The configuration in force: the newest version, or the defaults as version 0.
pub async fn in_force<T: Versioned>(conn: &mut sqlx::AnyConnection, tenant_id: &str) -> anyhow::Result<(i64, T)> {
    Ok(match current_version(conn, T::TABLE, tenant_id).await? {
        Some((version, body)) => (version, serde_json::from_str(&body)?),
        None => (0, T::default()),
    })
}

fn version_view(version: i64, created_by: Option<&str>, created_at: Option<i64>, body: Value) -> Value {
    let mut view = json!({
        "version": version,
        "created_by": created_by,
        "created_at": created_at.map(rfc3339),
    });
    if let (Value::Object(view), Value::Object(body)) = (&mut view, body) {
        view.extend(body);
    }
    view
}

/// Stored JSON, or null when it cannot be read (never a 500 for an old row).
pub fn parse_stored(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Saves `body` as the next version after checking it.
pub async fn put_version<T: Versioned>(infra: &Infra, caller: &Caller, body: T) -> ApiResult<HttpResponse> {
    caller.require_any(MANAGERS)?;
    let tenant = caller.tenant_id.as_str();
    let mut tx = infra.store.begin().await?;
    let problems = body.problems(&mut tx, tenant).await?;
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let current = current_version(&mut tx, T::TABLE, tenant).await?;
    let version = current.map_or(1, |(v, _)| v + 1);
    let now = now_ms();
    let text = serde_json::to_value(&body).map_err(anyhow::Error::from)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (tenant_id, version, body, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
        T::TABLE
    )))
    .bind(tenant)
    .bind(version)
    .bind(text.to_string())
    .bind(&caller.staff_id)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            ApiError::Conflict("another version was saved at the same time; read it and try again".into())
        }
        _ => e.into(),
    })?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(version_view(version, Some(&caller.staff_id), Some(now), text)))
}

/// The version in force.
pub async fn get_version<T: Versioned>(infra: &Infra, caller: &Caller) -> ApiResult<HttpResponse> {
    caller.require_any(MANAGERS)?;
    let row: Option<(i64, String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, body, created_by, created_at FROM {} WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1",
        T::TABLE
    )))
    .bind(&caller.tenant_id)
    .fetch_optional(infra.store.pool())
    .await?;
    let view = match row {
        Some((version, body, by, at)) => version_view(version, Some(&by), Some(at), parse_stored(&body)),
        None => version_view(
            0,
            None,
            None,
            serde_json::to_value(T::default()).map_err(anyhow::Error::from)?,
        ),
    };
    Ok(HttpResponse::Ok().json(view))
}

/// Every saved version, newest first.
pub async fn history<T: Versioned>(infra: &Infra, caller: &Caller) -> ApiResult<HttpResponse> {
    caller.require_any(MANAGERS)?;
    let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, body, created_by, created_at FROM {} WHERE tenant_id = $1 ORDER BY version DESC LIMIT 500",
        T::TABLE
    )))
    .bind(&caller.tenant_id)
    .fetch_all(infra.store.pool())
    .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(version, body, by, at)| version_view(version, Some(&by), Some(at), parse_stored(&body)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}
