use actix_web::{HttpRequest, HttpResponse, web};
use huoke_shared::auth::Caller;
use huoke_shared::bus::Envelope;
use huoke_shared::clock::{new_id, now_ms, rfc3339};
use huoke_shared::http::Json;
use huoke_shared::store::Outbox;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::FromRow;

use crate::capture::{CaptureInput, validate};

const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

#[derive(FromRow)]
struct CaptureRow {
    id: String,
    channel: String,
    status: String,
    lead_id: Option<String>,
    errors: Option<String>,
    request_hash: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const CAPTURE_COLUMNS: &str = "SELECT id, channel, status, lead_id, errors, request_hash, created_at, updated_at FROM captures";

async fn by_idempotency_key(
    infra: &Infra,
    tenant_id: &str,
    key: &str,
) -> sqlx::Result<Option<CaptureRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CAPTURE_COLUMNS} WHERE tenant_id = $1 AND idempotency_key = $2"
    )))
    .bind(tenant_id)
    .bind(key)
    .fetch_optional(infra.store.pool())
    .await
}

fn replay(existing: CaptureRow, request_hash: &str) -> ApiResult<HttpResponse> {
    if existing.request_hash.as_deref() != Some(request_hash) {
        return Err(ApiError::Conflict(
            "this Idempotency-Key was used with a different body".into(),
        ));
    }
    Ok(accepted(&existing.id))
}

fn accepted(capture_id: &str) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/captures/{capture_id}")))
        .json(json!({"capture_id": capture_id}))
}

/// `POST /v1/leads`: 202 once the capture and its outbox event are committed.
pub async fn post_lead(
    req: HttpRequest,
    infra: web::Data<Infra>,
    caller: Caller,
    body: Json<CaptureInput>,
) -> ApiResult<HttpResponse> {
    let input = body.0;
    let key = req
        .headers()
        .get(IDEMPOTENCY_HEADER)
        .map(|v| v.to_str().map(|s| s.trim().to_string()))
        .transpose()
        .map_err(|_| ApiError::invalid(IDEMPOTENCY_HEADER, "must be visible ASCII"))?
        .filter(|k| !k.is_empty());
    if key.as_ref().is_some_and(|k| k.len() > 200) {
        return Err(ApiError::invalid(
            IDEMPOTENCY_HEADER,
            "at most 200 characters",
        ));
    }
    // The hash covers the parsed request, so formatting differences do not matter.
    let request_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&input).map_err(anyhow::Error::from)?,
    ));
    if let Some(key) = &key {
        if let Some(existing) = by_idempotency_key(&infra, &caller.tenant_id, key).await? {
            return replay(existing, &request_hash);
        }
    }

    let now = now_ms();
    let capture_id = new_id();
    let capture = validate(&input, &capture_id, now).map_err(ApiError::Validation)?;
    let envelope = Envelope::new(&caller.tenant_id, &capture);
    let payload = serde_json::to_string(&capture).map_err(anyhow::Error::from)?;

    let mut tx = infra.store.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO captures (id, tenant_id, channel, payload, status, idempotency_key, request_hash, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $8)",
    )
    .bind(&capture_id)
    .bind(&caller.tenant_id)
    .bind(&capture.channel)
    .bind(&payload)
    .bind(&key)
    .bind(&request_hash)
    .bind(&caller.staff_id)
    .bind(now)
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(db)) = &inserted {
        if db.is_unique_violation() {
            // A concurrent request with the same key won the race: answer as it did.
            drop(tx);
            let key = key.as_deref().unwrap_or_default();
            let existing = by_idempotency_key(&infra, &caller.tenant_id, key)
                .await?
                .ok_or_else(|| ApiError::Conflict("idempotency key in use".into()))?;
            return replay(existing, &request_hash);
        }
    }
    inserted?;
    Outbox::add(&mut tx, &envelope).await?;
    tx.commit().await?;
    infra.kick_outbox();

    metrics::counter!("huoke_captures_accepted_total", "channel" => capture.channel.clone())
        .increment(1);
    tracing::info!(
        capture = %capture_id,
        channel = %capture.channel,
        phone = capture.phone.as_deref().map(huoke_shared::contact::mask_phone).unwrap_or_default(),
        "capture accepted"
    );
    Ok(accepted(&capture_id))
}

/// `GET /v1/captures/{id}`: where a capture stands.
pub async fn get_capture(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let row: CaptureRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{CAPTURE_COLUMNS} WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(&caller.tenant_id)
    .bind(id.as_str())
    .fetch_optional(infra.store.pool())
    .await?
    .ok_or_else(|| ApiError::not_found("capture"))?;
    let errors: Option<serde_json::Value> = row
        .errors
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok());
    Ok(HttpResponse::Ok().json(json!({
        "id": row.id,
        "status": row.status,
        "lead_id": row.lead_id,
        "errors": errors,
        "channel": row.channel,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    })))
}
