//! Signed webhooks: an admin makes a source (`POST /v1/webhook-sources`) with a
//! field mapping and gets its secret once; the provider then posts to
//! `/hooks/{source_id}` with
//!
//! ```text
//! X-Huoke-Timestamp: <unix seconds>
//! X-Huoke-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
//! ```
//!
//! A signature that does not verify (constant-time), a timestamp more than five
//! minutes off, or an event id already received is refused and counted
//! (`huoke_webhooks_refused_total{reason}`). The provider's event id is the
//! capture's idempotency key, so a retried delivery can never make a second lead.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use hmac::{Hmac, Mac};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::capture::{Submission, accept};
use huoke_shared::clock::{new_id, now_ms, rfc3339};
use huoke_shared::http::Json;
use huoke_shared::ratelimit::{self, Limit};
use huoke_shared::{ApiError, ApiResult, Infra, channels};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::FromRow;

use crate::mapping;

/// How far a timestamp may be from our clock.
const WINDOW_SECS: i64 = 300;
const HOOK_LIMIT: Limit = Limit {
    requests: 600,
    per: Duration::from_secs(60),
};

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSource {
    name: String,
    channel: String,
    campaign_id: Option<String>,
    /// JSON pointer → lead field.
    mapping: BTreeMap<String, String>,
    /// Where the provider's event id is (default `/id`).
    event_id_pointer: Option<String>,
}

#[derive(FromRow)]
struct SourceRow {
    id: String,
    tenant_id: String,
    name: String,
    secret: String,
    channel: String,
    campaign_id: Option<String>,
    mapping: String,
    event_id_pointer: String,
    created_at: i64,
}

fn view(row: &SourceRow) -> Value {
    json!({
        "id": row.id, "name": row.name, "channel": row.channel, "campaign_id": row.campaign_id,
        "mapping": serde_json::from_str::<Value>(&row.mapping).unwrap_or(Value::Null),
        "event_id_pointer": row.event_id_pointer, "url": format!("/hooks/{}", row.id),
        "created_at": rfc3339(row.created_at),
    })
}

const COLUMNS: &str = "id, tenant_id, name, secret, channel, campaign_id, mapping, event_id_pointer, created_at";

/// `POST /v1/webhook-sources` (admin): the secret is in this answer only.
pub async fn create_source(
    infra: web::Data<Infra>,
    caller: Caller,
    http: HttpRequest,
    body: Json<NewSource>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let req = body.0;
    let tenant = caller.tenant_id.clone();
    let hash_of = serde_json::to_value(&req).map_err(anyhow::Error::from)?;
    huoke_shared::idempotency::once(
        &infra,
        &http,
        &tenant,
        "webhook_sources.create",
        &hash_of,
        &["secret"],
        || create_source_now(&infra, &caller, req),
    )
    .await
}

async fn create_source_now(infra: &Infra, caller: &Caller, req: NewSource) -> ApiResult<HttpResponse> {
    let pointer = req.event_id_pointer.unwrap_or_else(|| "/id".into());
    let mut errors = mapping::check(&req.mapping, &pointer);
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(huoke_shared::error::FieldError::new("name", "1–100 characters"));
    }
    if !channels::is_known(&req.channel) {
        errors.push(huoke_shared::error::FieldError::new(
            "channel",
            format!("unknown channel `{}`", req.channel),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let secret: String = {
        let mut rng = rand::rng();
        (0..32).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
    };
    let row = SourceRow {
        id: new_id(),
        tenant_id: caller.tenant_id.clone(),
        name,
        secret,
        channel: req.channel,
        campaign_id: req.campaign_id,
        mapping: serde_json::to_string(&req.mapping).map_err(anyhow::Error::from)?,
        event_id_pointer: pointer,
        created_at: now_ms(),
    };
    sqlx::query(
        "INSERT INTO webhook_sources (id, tenant_id, name, secret, channel, campaign_id, mapping, event_id_pointer, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&row.id)
    .bind(&row.tenant_id)
    .bind(&row.name)
    .bind(&row.secret)
    .bind(&row.channel)
    .bind(&row.campaign_id)
    .bind(&row.mapping)
    .bind(&row.event_id_pointer)
    .bind(&caller.staff_id)
    .bind(row.created_at)
    .execute(infra.store.pool())
    .await?;
    let mut answer = view(&row);
    answer["secret"] = Value::String(row.secret.clone());
    Ok(HttpResponse::Created().json(answer))
}

/// `GET /v1/webhook-sources` (admin): never the secrets.
pub async fn list_sources(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let rows: Vec<SourceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_sources WHERE tenant_id = $1 AND disabled_at IS NULL ORDER BY created_at DESC LIMIT 500"
    )))
    .bind(&caller.tenant_id)
    .fetch_all(infra.store.pool())
    .await?;
    let items: Vec<Value> = rows.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}

/// `DELETE /v1/webhook-sources/{id}` (admin): calls to it are refused from now on.
pub async fn disable_source(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    if !huoke_shared::repo::switch_off(&infra.store, "webhook_sources", "disabled_at", &caller.tenant_id, &id).await? {
        return Err(ApiError::not_found("webhook source"));
    }
    Ok(HttpResponse::NoContent().finish())
}

fn refused(reason: &'static str, err: ApiError) -> ApiError {
    metrics::counter!("huoke_webhooks_refused_total", "reason" => reason).increment(1);
    err
}

/// Checks `X-Huoke-Signature` over `"<timestamp>.<body>"`, in constant time.
pub fn verify(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// `POST /hooks/{source_id}`: a signed capture from a provider.
pub async fn receive(
    req: HttpRequest,
    infra: web::Data<Infra>,
    source_id: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let source: Option<SourceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_sources WHERE id = $1 AND disabled_at IS NULL"
    )))
    .bind(source_id.as_str())
    .fetch_optional(infra.store.pool())
    .await?;
    let source = source.ok_or_else(|| refused("unknown_source", ApiError::not_found("webhook source")))?;
    ratelimit::check(&*infra.cache, "hooks", &source.id, HOOK_LIMIT).await?;

    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (Some(timestamp), Some(signature)) = (header("x-huoke-timestamp"), header("x-huoke-signature")) else {
        return Err(refused(
            "unsigned",
            ApiError::Unauthorized("X-Huoke-Timestamp and X-Huoke-Signature are required".into()),
        ));
    };
    if !verify(&source.secret, &timestamp, &body, &signature) {
        return Err(refused(
            "forged",
            ApiError::Unauthorized("the signature does not verify".into()),
        ));
    }
    // Checked after the signature, so only the secret's holder learns about our clock.
    let fresh = timestamp
        .trim()
        .parse::<i64>()
        .is_ok_and(|t| (now_ms() / 1000 - t).abs() <= WINDOW_SECS);
    if !fresh {
        return Err(refused(
            "stale",
            ApiError::Unauthorized("the timestamp is more than five minutes from ours".into()),
        ));
    }
    let payload: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let event_id = mapping::event_id(&payload, &source.event_id_pointer).ok_or_else(|| {
        ApiError::invalid(
            "event_id",
            format!("no event id at {} (the idempotency key)", source.event_id_pointer),
        )
    })?;
    let key = format!("hook:{}:{event_id}", source.id);
    let seen: Option<String> =
        sqlx::query_scalar("SELECT id FROM captures WHERE tenant_id = $1 AND idempotency_key = $2")
            .bind(&source.tenant_id)
            .bind(&key)
            .fetch_optional(infra.store.pool())
            .await?;
    if let Some(capture_id) = seen {
        return Err(refused(
            "replayed",
            ApiError::Conflict(format!("event {event_id} was received already (capture {capture_id})")),
        ));
    }
    let fields: BTreeMap<String, String> = serde_json::from_str(&source.mapping).map_err(anyhow::Error::from)?;
    let input = mapping::apply(&payload, &fields, &source.channel, source.campaign_id.as_deref());
    let actor = format!("hook:{}", source.id);
    let who = Submission {
        tenant_id: &source.tenant_id,
        created_by: &actor,
        idempotency_key: Some(&key),
        visitor: None,
    };
    let capture_id = accept(&infra, who, &input).await?;
    metrics::counter!("huoke_webhooks_accepted_total").increment(1);
    Ok(HttpResponse::Accepted().json(json!({"capture_id": capture_id, "event_id": event_id})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_cover_the_timestamp_and_every_byte() {
        let body = br#"{"id":"e1"}"#;
        let good = sign("s3cret", "1700000000", body);
        assert!(verify("s3cret", "1700000000", body, &good));
        assert!(!verify("s3cret", "1700000001", body, &good), "another timestamp");
        assert!(
            !verify("s3cret", "1700000000", br#"{"id":"e2"}"#, &good),
            "another body"
        );
        assert!(!verify("other", "1700000000", body, &good), "another secret");
        assert!(!verify("s3cret", "1700000000", body, "sha256=zz"));
        assert!(!verify("s3cret", "1700000000", body, &good.replace("sha256=", "md5=")));
    }
}
