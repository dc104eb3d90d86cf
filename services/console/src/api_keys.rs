//! `POST/GET/DELETE /v1/api-keys`: an admin makes keys for machines. The key is in
//! the answer to its creation and nowhere else, ever.

use std::collections::BTreeSet;

use actix_web::{HttpResponse, web};
use huoke_shared::apikeys::{self, Scope};
use huoke_shared::auth::{Caller, Role, roles_from_string, roles_to_string};
use huoke_shared::clock::{new_id, now_ms, rfc3339};
use huoke_shared::error::FieldError;
use huoke_shared::http::Json;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::FromRow;

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    /// Default: `leads:write`.
    scopes: Option<Vec<String>>,
}

#[derive(FromRow)]
struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    scopes: String,
    roles: String,
    created_by: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

fn view(row: &KeyRow) -> Value {
    json!({
        "id": row.id, "name": row.name, "prefix": row.prefix,
        "scopes": row.scopes.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
        "roles": roles_from_string(&row.roles),
        "created_by": row.created_by, "created_at": rfc3339(row.created_at),
        "last_used_at": row.last_used_at.map(rfc3339), "revoked_at": row.revoked_at.map(rfc3339),
    })
}

pub async fn create(
    infra: web::Data<Infra>,
    caller: Caller,
    http: actix_web::HttpRequest,
    body: Json<NewKey>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let req = body.0;
    let tenant = caller.tenant_id.clone();
    let hash_of = serde_json::to_value(&req).map_err(anyhow::Error::from)?;
    huoke_shared::idempotency::once(&infra, &http, &tenant, "api_keys.create", &hash_of, &["key"], || {
        create_key(&infra, &caller, req)
    })
    .await
}

async fn create_key(infra: &Infra, caller: &Caller, req: NewKey) -> ApiResult<HttpResponse> {
    let mut errors = Vec::new();
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "1–100 characters"));
    }
    let roles = huoke_shared::auth::parse_roles(&req.roles, "roles", &mut errors);
    if roles.contains(&Role::Admin) {
        // A key that can make keys and staff would outlive anyone's departure.
        errors.push(FieldError::new("roles", "keys cannot be admins"));
    }
    let asked = req
        .scopes
        .unwrap_or_else(|| vec![Scope::LeadsWrite.as_str().to_string()]);
    let mut scopes = BTreeSet::new();
    for s in &asked {
        match Scope::parse(s) {
            Some(scope) => {
                scopes.insert(scope);
            }
            None => errors.push(FieldError::new(
                "scopes",
                format!("unknown scope `{s}` (leads:write, leads:read)"),
            )),
        }
    }
    if scopes.is_empty() && roles.is_empty() {
        errors.push(FieldError::new("scopes", "a key needs at least one scope or role"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let key = apikeys::generate();
    let row = KeyRow {
        id: new_id(),
        name,
        prefix: apikeys::shown_prefix(&key),
        scopes: scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
        roles: roles_to_string(&roles),
        created_by: caller.staff_id.clone(),
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes, roles, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&row.id)
    .bind(&caller.tenant_id)
    .bind(&row.name)
    .bind(&row.prefix)
    .bind(apikeys::hash(&key))
    .bind(&row.scopes)
    .bind(&row.roles)
    .bind(&row.created_by)
    .bind(row.created_at)
    .execute(infra.store.pool())
    .await?;
    let mut answer = view(&row);
    answer["key"] = Value::String(key);
    Ok(HttpResponse::Created().json(answer))
}

pub async fn list(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT id, name, prefix, scopes, roles, created_by, created_at, last_used_at, revoked_at
         FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 500",
    )
    .bind(&caller.tenant_id)
    .fetch_all(infra.store.pool())
    .await?;
    let items: Vec<Value> = rows.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}

/// Revokes at once: the next request with the key is refused. Revoking twice is
/// harmless; another tenant's key is not found.
pub async fn revoke(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    if !huoke_shared::repo::switch_off(&infra.store, "api_keys", "revoked_at", &caller.tenant_id, &id).await? {
        return Err(ApiError::not_found("API key"));
    }
    Ok(HttpResponse::NoContent().finish())
}
