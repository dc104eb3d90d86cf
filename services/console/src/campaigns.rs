//! Campaigns and channels: what marketers hang codes on, so scans, captures and
//! leads can be reported per channel.

use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::channels;
use huoke_shared::clock::{new_id, now_ms, rfc3339};
use huoke_shared::error::FieldError;
use huoke_shared::http::Json;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::{Deserialize, Serialize};
use serde_json::json;

const MARKETING: &[Role] = &[Role::Marketer, Role::Manager];

fn unique(e: sqlx::Error, what: &str) -> ApiError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            ApiError::Conflict(format!("a {what} with this name exists"))
        }
        _ => e.into(),
    }
}

#[derive(Clone, Deserialize, Serialize)]
pub struct NewCampaign {
    name: String,
}

pub async fn create_campaign(
    infra: web::Data<Infra>,
    caller: Caller,
    req: actix_web::HttpRequest,
    body: Json<NewCampaign>,
) -> ApiResult<HttpResponse> {
    huoke_shared::idempotency::keyed(infra, caller, req, body, "campaigns.create", create_campaign_once).await
}

async fn create_campaign_once(
    infra: web::Data<Infra>,
    caller: Caller,
    body: Json<NewCampaign>,
) -> ApiResult<HttpResponse> {
    caller.require_any(MARKETING)?;
    let name = body.0.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "1–100 characters"));
    }
    let (id, now) = (new_id(), now_ms());
    let mut tx = infra.store.begin().await?;
    sqlx::query("INSERT INTO campaigns (id, tenant_id, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(&caller.tenant_id)
        .bind(&name)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique(e, "campaign"))?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(json!({"id": id, "name": name, "created_at": rfc3339(now)})))
}

pub async fn list_campaigns(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_any(MARKETING)?;
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT id, name, created_at FROM campaigns WHERE tenant_id = $1 ORDER BY id")
            .bind(&caller.tenant_id)
            .fetch_all(infra.store.pool())
            .await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|(id, name, at)| json!({"id": id, "name": name, "created_at": rfc3339(at)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}

#[derive(Clone, Deserialize, Serialize)]
pub struct NewChannel {
    name: String,
    kind: String,
    campaign_id: Option<String>,
}

pub async fn create_channel(
    infra: web::Data<Infra>,
    caller: Caller,
    req: actix_web::HttpRequest,
    body: Json<NewChannel>,
) -> ApiResult<HttpResponse> {
    huoke_shared::idempotency::keyed(infra, caller, req, body, "channels.create", create_channel_once).await
}

async fn create_channel_once(
    infra: web::Data<Infra>,
    caller: Caller,
    body: Json<NewChannel>,
) -> ApiResult<HttpResponse> {
    caller.require_any(MARKETING)?;
    let req = body.0;
    let mut errors = Vec::new();
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "1–100 characters"));
    }
    if !channels::is_known(&req.kind) {
        errors.push(FieldError::new(
            "kind",
            format!("one of: {}", channels::CHANNELS.join(", ")),
        ));
    }
    if let Some(c) = &req.campaign_id {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM campaigns WHERE tenant_id = $1 AND id = $2")
            .bind(&caller.tenant_id)
            .bind(c)
            .fetch_one(infra.store.pool())
            .await?;
        if n == 0 {
            errors.push(FieldError::new("campaign_id", "no such campaign"));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (id, now) = (new_id(), now_ms());
    let mut tx = infra.store.begin().await?;
    sqlx::query(
        "INSERT INTO channels (id, tenant_id, campaign_id, name, kind, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(&caller.tenant_id)
    .bind(&req.campaign_id)
    .bind(&name)
    .bind(&req.kind)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(
        json!({"id": id, "name": name, "kind": req.kind, "campaign_id": req.campaign_id, "created_at": rfc3339(now)}),
    ))
}

pub async fn list_channels(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_any(MARKETING)?;
    let rows: Vec<(String, Option<String>, String, String, i64)> =
        sqlx::query_as("SELECT id, campaign_id, name, kind, created_at FROM channels WHERE tenant_id = $1 ORDER BY id")
            .bind(&caller.tenant_id)
            .fetch_all(infra.store.pool())
            .await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|(id, campaign_id, name, kind, at)| json!({"id": id, "campaign_id": campaign_id, "name": name, "kind": kind, "created_at": rfc3339(at)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}
