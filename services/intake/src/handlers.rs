use actix_web::{HttpRequest, HttpResponse, web};
use huoke_shared::apikeys::{Principal, Scope};
use huoke_shared::capture::{CaptureInput, Submission, accept};
use huoke_shared::clock::rfc3339;
use huoke_shared::http::Json;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde_json::json;
use sqlx::FromRow;

/// `POST /v1/leads`: 202 once the capture and its outbox event are committed.
pub async fn post_lead(
    req: HttpRequest,
    infra: web::Data<Infra>,
    principal: Principal,
    body: Json<CaptureInput>,
) -> ApiResult<HttpResponse> {
    principal.require_scope(&[Scope::LeadsWrite])?;
    let key = huoke_shared::idempotency::key_of(&req)?;
    let actor = principal.actor();
    let who = Submission {
        tenant_id: principal.tenant_id(),
        created_by: &actor,
        idempotency_key: key.as_deref(),
        visitor: None,
    };
    let capture_id = accept(&infra, who, &body.0).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/captures/{capture_id}")))
        .json(json!({"capture_id": capture_id})))
}

#[derive(FromRow)]
struct CaptureRow {
    id: String,
    channel: String,
    status: String,
    lead_id: Option<String>,
    errors: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// `GET /v1/captures/{id}`: where a capture stands.
pub async fn get_capture(
    infra: web::Data<Infra>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    principal.require_scope(&[Scope::LeadsWrite, Scope::LeadsRead])?;
    let row: CaptureRow = sqlx::query_as(
        "SELECT id, channel, status, lead_id, errors, created_at, updated_at FROM captures WHERE tenant_id = $1 AND id = $2",
    )
    .bind(principal.tenant_id())
    .bind(id.as_str())
    .fetch_optional(infra.store.pool())
    .await?
    .ok_or_else(|| ApiError::not_found("capture"))?;
    let errors: Option<serde_json::Value> = row.errors.as_deref().and_then(|e| serde_json::from_str(e).ok());
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
