//! `Idempotency-Key` on create endpoints (every `POST` that makes an object; a
//! capture keeps its own key on the capture row). The first request with a key claims it, runs, and stores its
//! answer; a retry with the same key and the same body gets that answer again
//! (`Idempotent-Replayed: true`) and creates nothing; the same key with another body
//! is refused (422), and one still being handled is a conflict (409). A secret shown
//! once at creation is not kept, so a replay answers without it: the caller that lost
//! the first answer rotates the secret instead of getting a second object. A failed
//! request (an error answer) frees its key. Keys are kept 24 hours.

use std::future::Future;

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::clock::now_ms;
use crate::{ApiError, ApiResult, Infra};

/// How long a key is remembered.
pub const KEEP_MS: i64 = 24 * 3600 * 1000;

/// The request's `Idempotency-Key`, if it sent one.
pub fn key_of(req: &HttpRequest) -> ApiResult<Option<String>> {
    let key = req
        .headers()
        .get("Idempotency-Key")
        .map(|v| v.to_str().map(|s| s.trim().to_string()))
        .transpose()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?
        .filter(|k| !k.is_empty());
    if key.as_ref().is_some_and(|k| k.len() > 200) {
        return Err(ApiError::invalid("Idempotency-Key", "at most 200 characters"));
    }
    Ok(key)
}

/// [`once`] for the usual create handler, `create(infra, caller, body)`, with no
/// secret in its answer: the handler's wrapper is one call.
pub async fn keyed<T, F, Fut>(
    infra: actix_web::web::Data<Infra>,
    caller: Caller,
    req: HttpRequest,
    body: crate::http::Json<T>,
    route: &'static str,
    create: F,
) -> ApiResult<HttpResponse>
where
    T: Serialize + Clone,
    F: FnOnce(actix_web::web::Data<Infra>, Caller, crate::http::Json<T>) -> Fut,
    Fut: Future<Output = ApiResult<HttpResponse>>,
{
    let (tenant, input, data) = (caller.tenant_id.clone(), body.0, infra.clone());
    once(&data, &req, &tenant, route, &input.clone(), &[], move || {
        create(infra, caller, crate::http::Json(input))
    })
    .await
}

/// Runs `create` once per key (see the module). `secret_fields` are removed from the
/// stored answer.
pub async fn once<T, F, Fut>(
    infra: &Infra,
    req: &HttpRequest,
    tenant_id: &str,
    route: &'static str,
    body: &T,
    secret_fields: &[&str],
    create: F,
) -> ApiResult<HttpResponse>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<HttpResponse>>,
{
    let Some(key) = key_of(req)? else {
        return create().await;
    };
    let hash = hex::encode(Sha256::digest(serde_json::to_vec(body).map_err(anyhow::Error::from)?));
    let pool = infra.store.pool();
    let now = now_ms();
    sqlx::query("DELETE FROM idempotent_requests WHERE tenant_id = $1 AND route = $2 AND key = $3 AND created_at < $4")
        .bind(tenant_id)
        .bind(route)
        .bind(&key)
        .bind(now - KEEP_MS)
        .execute(pool)
        .await?;
    let claimed = sqlx::query(
        "INSERT INTO idempotent_requests (tenant_id, route, key, request_hash, status, created_at)
         VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (tenant_id, route, key) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(route)
    .bind(&key)
    .bind(&hash)
    .bind(now)
    .execute(pool)
    .await?;
    if claimed.rows_affected() == 0 {
        let (stored_hash, status, stored): (String, i64, Option<String>) = sqlx::query_as(
            "SELECT request_hash, status, body FROM idempotent_requests WHERE tenant_id = $1 AND route = $2 AND key = $3",
        )
        .bind(tenant_id)
        .bind(route)
        .bind(&key)
        .fetch_one(pool)
        .await?;
        if stored_hash != hash {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "already used with another request body",
            ));
        }
        if status == 0 {
            return Err(ApiError::Conflict(
                "a request with this Idempotency-Key is still being handled".into(),
            ));
        }
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        return Ok(HttpResponse::build(status)
            .content_type("application/json")
            .insert_header(("Idempotent-Replayed", "true"))
            .body(stored.unwrap_or_else(|| "null".into())));
    }
    let forget = || async {
        let _ = sqlx::query("DELETE FROM idempotent_requests WHERE tenant_id = $1 AND route = $2 AND key = $3")
            .bind(tenant_id)
            .bind(route)
            .bind(&key)
            .execute(pool)
            .await;
    };
    let answer = match create().await {
        Ok(answer) => answer,
        Err(err) => {
            forget().await;
            return Err(err);
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = match answer.into_body().try_into_bytes() {
        Ok(bytes) => bytes,
        Err(_) => {
            // Not a body that can be kept (never the case for these endpoints).
            forget().await;
            return Err(ApiError::Internal(anyhow::anyhow!(
                "an idempotent answer could not be stored"
            )));
        }
    };
    let mut kept: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if let Some(object) = kept.as_object_mut() {
        for field in secret_fields {
            object.remove(*field);
        }
    }
    sqlx::query(
        "UPDATE idempotent_requests SET status = $1, body = $2 WHERE tenant_id = $3 AND route = $4 AND key = $5",
    )
    .bind(i64::from(status.as_u16()))
    .bind(kept.to_string())
    .bind(tenant_id)
    .bind(route)
    .bind(&key)
    .execute(pool)
    .await?;
    let mut rebuilt = HttpResponse::build(status);
    for (name, value) in &headers {
        rebuilt.insert_header((name.clone(), value.clone()));
    }
    Ok(rebuilt.body(bytes))
}
