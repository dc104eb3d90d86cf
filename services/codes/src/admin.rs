//! `/v1/live-codes`: create, list, read, change, delete. The public code is minted
//! once and never changes, whatever happens to members or settings.

use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::{new_id, now_ms, rfc3339};
use huoke_shared::error::FieldError;
use huoke_shared::http::Json;
use huoke_shared::paging::{PageQuery, Paged};
use huoke_shared::{ApiError, ApiResult, Infra};
use rand::Rng;
use serde_json::{Value, json};

use crate::model::{CodeConfig, CodeInput};
use crate::snapshot::{CODE_COLUMNS, CodeRow};
use crate::state::CodesState;

const WRITERS: &[Role] = &[Role::Marketer, Role::Manager];

/// 10 base62 characters: 8.4e17 possibilities, unguessable by scanning.
pub fn mint_code() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn view(infra: &Infra, row: &CodeRow) -> ApiResult<Value> {
    let c = row.config()?;
    let base = infra.settings.public_base();
    Ok(json!({
        "id": row.id,
        "code": row.code,
        "url": format!("{base}/s/{}", row.code),
        "qr_png": format!("{base}/v1/live-codes/{}/qr.png", row.id),
        "qr_svg": format!("{base}/v1/live-codes/{}/qr.svg", row.id),
        "name": c.name,
        "kind": c.kind,
        "campaign_id": c.campaign_id,
        "channel_id": c.channel_id,
        "mode": c.mode,
        "members": c.members,
        "schedule": c.schedule,
        "backup_staff_id": c.backup_staff_id,
        "tags": c.tags,
        "welcome_text": c.welcome_text,
        "state": c.state,
        "groups": c.groups,
        "active": c.active,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }))
}

/// Checks that need the database: staff, campaign and channel belong to the tenant.
async fn check_references(infra: &Infra, tenant_id: &str, c: &CodeConfig) -> ApiResult<Vec<FieldError>> {
    let mut errors = c.check();
    for (i, m) in c.members.iter().enumerate() {
        if huoke_shared::repo::staff::by_id(&infra.store, tenant_id, &m.staff_id)
            .await?
            .is_none()
        {
            errors.push(FieldError::new(
                format!("members[{i}].staff_id"),
                "no such staff member",
            ));
        }
    }
    if let Some(b) = &c.backup_staff_id
        && huoke_shared::repo::staff::by_id(&infra.store, tenant_id, b)
            .await?
            .is_none()
    {
        errors.push(FieldError::new("backup_staff_id", "no such staff member"));
    }
    for (field, table, id) in [
        ("campaign_id", "campaigns", &c.campaign_id),
        ("channel_id", "channels", &c.channel_id),
    ] {
        if let Some(id) = id {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table} WHERE tenant_id = $1 AND id = $2"
            )))
            .bind(tenant_id)
            .bind(id)
            .fetch_one(infra.store.pool())
            .await?;
            if n == 0 {
                errors.push(FieldError::new(field, "not found in this tenant"));
            }
        }
    }
    Ok(errors)
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds a configuration's twelve columns, in the order both the INSERT and the
/// UPDATE list them first.
fn bind_config<'q>(query: AnyQuery<'q>, c: &'q CodeConfig) -> ApiResult<AnyQuery<'q>> {
    Ok(query
        .bind(&c.name)
        .bind(&c.campaign_id)
        .bind(&c.channel_id)
        .bind(c.mode.as_str())
        .bind(json(&c.members)?)
        .bind(
            c.schedule
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(anyhow::Error::from)?,
        )
        .bind(&c.backup_staff_id)
        .bind(json(&c.tags)?)
        .bind(&c.welcome_text)
        .bind(&c.state)
        .bind(json(&c.groups)?)
        .bind(c.active as i64))
}

/// JSON text of a value, for the TEXT columns that hold JSON.
fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string(value)?)
}

pub async fn load(infra: &Infra, tenant_id: &str, id: &str) -> ApiResult<CodeRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CODE_COLUMNS} FROM live_codes WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(infra.store.pool())
    .await?
    .ok_or_else(|| ApiError::not_found("live code"))
}

pub async fn create(
    infra: web::Data<Infra>,
    caller: Caller,
    req: actix_web::HttpRequest,
    body: Json<CodeInput>,
) -> ApiResult<HttpResponse> {
    huoke_shared::idempotency::keyed(infra, caller, req, body, "live_codes.create", create_code).await
}

async fn create_code(infra: web::Data<Infra>, caller: Caller, body: Json<CodeInput>) -> ApiResult<HttpResponse> {
    caller.require_any(WRITERS)?;
    let config = CodeConfig::merged(None, body.0);
    let errors = check_references(&infra, &caller.tenant_id, &config).await?;
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let now = now_ms();
    let id = new_id();
    let mut attempts = 0;
    loop {
        let code = mint_code();
        let mut tx = infra.store.begin().await?;
        let inserted = bind_config(
            sqlx::query(
                "INSERT INTO live_codes (name, campaign_id, channel_id, mode, members, schedule, backup_staff_id, tags, welcome_text, state, groups, active,
                                         id, tenant_id, code, kind, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)",
            ),
            &config,
        )?
        .bind(&id)
        .bind(&caller.tenant_id)
        .bind(&code)
        .bind(config.kind.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            // A collision of two random 60-bit codes: mint another.
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() && attempts < 3 => {
                attempts += 1;
                continue;
            }
            other => {
                other?;
            }
        }
        tx.commit().await?;
        break;
    }
    let row = load(&infra, &caller.tenant_id, &id).await?;
    Ok(HttpResponse::Created().json(view(&infra, &row)?))
}

pub async fn list(infra: web::Data<Infra>, caller: Caller, query: web::Query<PageQuery>) -> ApiResult<HttpResponse> {
    caller.require_any(WRITERS)?;
    let page = query.parse()?;
    let rows: Vec<CodeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CODE_COLUMNS} FROM live_codes WHERE tenant_id = $1 AND deleted_at IS NULL AND id > $2 ORDER BY id LIMIT $3"
    )))
    .bind(&caller.tenant_id)
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.limit + 1)
    .fetch_all(infra.store.pool())
    .await?;
    let views = rows.iter().map(|r| view(&infra, r)).collect::<ApiResult<Vec<_>>>()?;
    Ok(HttpResponse::Ok().json(Paged::from_rows(views, &page, |v| {
        v["id"].as_str().unwrap_or_default().to_string()
    })))
}

pub async fn get(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(WRITERS)?;
    let row = load(&infra, &caller.tenant_id, &id).await?;
    Ok(HttpResponse::Ok().json(view(&infra, &row)?))
}

pub async fn update(
    infra: web::Data<Infra>,
    state: web::Data<CodesState>,
    caller: Caller,
    id: web::Path<String>,
    body: Json<CodeInput>,
) -> ApiResult<HttpResponse> {
    caller.require_any(WRITERS)?;
    let row = load(&infra, &caller.tenant_id, &id).await?;
    let current = row.config()?;
    let input = body.0;
    if input.kind.is_some_and(|k| k != current.kind) {
        return Err(ApiError::invalid(
            "kind",
            "a code's kind cannot change; create a new code",
        ));
    }
    let config = CodeConfig::merged(Some(&current), input);
    let errors = check_references(&infra, &caller.tenant_id, &config).await?;
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = infra.store.begin().await?;
    bind_config(
        sqlx::query(
            "UPDATE live_codes SET name = $1, campaign_id = $2, channel_id = $3, mode = $4, members = $5, schedule = $6,
                    backup_staff_id = $7, tags = $8, welcome_text = $9, state = $10, groups = $11, active = $12, updated_at = $13
             WHERE tenant_id = $14 AND id = $15",
        ),
        &config,
    )?
    .bind(now_ms())
    .bind(&caller.tenant_id)
    .bind(&row.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.snapshots.forget(&row.code);
    let row = load(&infra, &caller.tenant_id, &row.id).await?;
    Ok(HttpResponse::Ok().json(view(&infra, &row)?))
}

/// Deleting keeps the row so the printed code answers 410 and is never reissued.
pub async fn delete(
    infra: web::Data<Infra>,
    state: web::Data<CodesState>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require_any(WRITERS)?;
    let row = load(&infra, &caller.tenant_id, &id).await?;
    let now = now_ms();
    let mut tx = infra.store.begin().await?;
    sqlx::query("UPDATE live_codes SET deleted_at = $1, active = 0, updated_at = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(now)
        .bind(&caller.tenant_id)
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    state.snapshots.forget(&row.code);
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_are_long_enough_and_base62() {
        let c = super::mint_code();
        assert_eq!(c.len(), 10);
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(super::mint_code(), c);
    }
}
