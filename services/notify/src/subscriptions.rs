//! `/v1/webhook-subscriptions`: an admin subscribes a URL to some of the tenant's
//! events. The signing secret is shown once, at creation. Revoking stops new
//! deliveries and skips the ones still queued.

use actix_web::{HttpResponse, web};
use base64::Engine;
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::{new_id, now_ms, rfc3339};
use huoke_shared::error::FieldError;
use huoke_shared::http::Json;
use huoke_shared::messages::WEBHOOK_EVENTS;
use huoke_shared::outbound::check_public_url;
use huoke_shared::paging::{PageQuery, Paged};
use huoke_shared::{ApiError, ApiResult, Infra};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    url: String,
    /// Event types, or `["*"]` for all of them.
    events: Vec<String>,
    description: Option<String>,
}

#[derive(Serialize, sqlx::FromRow)]
pub struct SubscriptionRow {
    id: String,
    url: String,
    #[serde(skip)]
    events: String,
    description: Option<String>,
    #[serde(skip)]
    created_at: i64,
    #[serde(skip)]
    revoked_at: Option<i64>,
}

impl SubscriptionRow {
    fn view(&self) -> serde_json::Value {
        json!({
            "id": self.id, "url": self.url, "description": self.description,
            "events": serde_json::from_str::<serde_json::Value>(&self.events).unwrap_or_default(),
            "created_at": rfc3339(self.created_at), "revoked_at": self.revoked_at.map(rfc3339),
        })
    }
}

fn check(infra: &Infra, input: &NewSubscription) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if input.url.len() > 2000 {
        errors.push(FieldError::new("url", "at most 2000 characters"));
    } else if let Err(why) = check_public_url(input.url.trim(), &infra.settings.webhook_allowed_hosts) {
        errors.push(FieldError::new("url", why));
    }
    let all = input.events.len() == 1 && input.events[0] == "*";
    if input.events.is_empty() || (!all && input.events.iter().any(|e| !WEBHOOK_EVENTS.contains(&e.as_str()))) {
        errors.push(FieldError::new(
            "events",
            format!("[\"*\"] or some of {}", WEBHOOK_EVENTS.join(", ")),
        ));
    }
    if input.description.as_ref().is_some_and(|d| d.chars().count() > 200) {
        errors.push(FieldError::new("description", "at most 200 characters"));
    }
    errors
}

/// `POST /v1/webhook-subscriptions`: answers the secret, once.
pub async fn create(
    infra: web::Data<Infra>,
    caller: Caller,
    req: actix_web::HttpRequest,
    body: Json<NewSubscription>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let input = body.0;
    let tenant = caller.tenant_id.clone();
    let hash_of = serde_json::to_value(&input).map_err(anyhow::Error::from)?;
    huoke_shared::idempotency::once(
        &infra,
        &req,
        &tenant,
        "webhook_subscriptions.create",
        &hash_of,
        &["secret"],
        || create_now(&infra, &caller, input),
    )
    .await
}

async fn create_now(infra: &Infra, caller: &Caller, input: NewSubscription) -> ApiResult<HttpResponse> {
    let problems = check(infra, &input);
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let secret = format!("whsec_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
    let id = new_id();
    let now = now_ms();
    let mut events = input.events.clone();
    events.sort();
    events.dedup();
    let events = serde_json::to_string(&events).map_err(anyhow::Error::from)?;
    sqlx::query(
        "INSERT INTO webhook_subscriptions (id, tenant_id, url, secret, events, description, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&caller.tenant_id)
    .bind(input.url.trim())
    .bind(&secret)
    .bind(&events)
    .bind(&input.description)
    .bind(&caller.staff_id)
    .bind(now)
    .execute(infra.store.pool())
    .await?;
    let row = SubscriptionRow {
        id,
        url: input.url.trim().to_string(),
        events,
        description: input.description,
        created_at: now,
        revoked_at: None,
    };
    let mut view = row.view();
    view["secret"] = json!(secret);
    Ok(HttpResponse::Created().json(view))
}

/// `GET /v1/webhook-subscriptions`, newest first, without secrets.
pub async fn list(infra: web::Data<Infra>, caller: Caller, query: web::Query<PageQuery>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let page = query.parse()?;
    let rows: Vec<SubscriptionRow> = sqlx::query_as(
        "SELECT id, url, events, description, created_at, revoked_at FROM webhook_subscriptions
         WHERE tenant_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(&caller.tenant_id)
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.limit + 1)
    .fetch_all(infra.store.pool())
    .await?;
    let views: Vec<serde_json::Value> = rows.iter().map(SubscriptionRow::view).collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(views, &page, |v| {
        v["id"].as_str().unwrap_or_default().to_string()
    })))
}

/// `DELETE /v1/webhook-subscriptions/{id}`.
pub async fn revoke(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    if !huoke_shared::repo::switch_off(
        &infra.store,
        "webhook_subscriptions",
        "revoked_at",
        &caller.tenant_id,
        &id,
    )
    .await?
    {
        return Err(ApiError::not_found("webhook subscription"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

/// `GET /v1/webhook-subscriptions/{id}/deliveries`: the latest deliveries and how
/// they went.
pub async fn deliveries(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let page = query.parse()?;
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2")
            .bind(&caller.tenant_id)
            .bind(id.as_str())
            .fetch_optional(infra.store.pool())
            .await?;
    if exists.is_none() {
        return Err(ApiError::not_found("webhook subscription"));
    }
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT id, event_id, event_type, status, attempts, last_status, last_error, created_at, delivered_at
         FROM webhook_deliveries WHERE tenant_id = $1 AND subscription_id = $2 AND ($3 = '' OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(&caller.tenant_id)
    .bind(id.as_str())
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.limit + 1)
    .fetch_all(infra.store.pool())
    .await?;
    let views: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id, "event_id": d.event_id, "event_type": d.event_type, "status": d.status,
                "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error,
                "created_at": rfc3339(d.created_at), "delivered_at": d.delivered_at.map(rfc3339),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(views, &page, |v| {
        v["id"].as_str().unwrap_or_default().to_string()
    })))
}
