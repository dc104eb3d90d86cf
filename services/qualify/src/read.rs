//! `GET /v1/leads/{id}`: the lead with its identities, touches, score and why,
//! current assignment and history.

use actix_web::{HttpResponse, web};
use huoke_shared::apikeys::{Principal, Scope};
use huoke_shared::clock::rfc3339;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde_json::{Value, json};
use sqlx::FromRow;

#[derive(FromRow)]
struct LeadRow {
    id: String,
    name: Option<String>,
    company: Option<String>,
    title: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    channel: String,
    score: i64,
    grade: String,
    score_reasons: String,
    is_mql: i64,
    status: String,
    owner_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(FromRow)]
struct AssignmentRow {
    id: String,
    staff_id: String,
    state: String,
    reason: Option<String>,
    sla_due_at: Option<i64>,
    created_at: i64,
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Staff of the tenant, or an API key with `leads:read`.
pub async fn get_lead(infra: web::Data<Infra>, principal: Principal, id: web::Path<String>) -> ApiResult<HttpResponse> {
    principal.require_scope(&[Scope::LeadsRead])?;
    let pool = infra.store.pool();
    let tenant = principal.tenant_id();
    let lead: LeadRow = sqlx::query_as(
        "SELECT id, name, company, title, phone, email, channel, score, grade, score_reasons, is_mql, status, owner_id, created_at, updated_at
         FROM leads WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::not_found("lead"))?;

    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, value FROM lead_identities WHERE tenant_id = $1 AND lead_id = $2 ORDER BY created_at, kind",
    )
    .bind(tenant)
    .bind(&lead.id)
    .fetch_all(pool)
    .await?;
    let touches: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT capture_id, channel, campaign_id, occurred_at FROM lead_touches WHERE tenant_id = $1 AND lead_id = $2 ORDER BY occurred_at",
    )
    .bind(tenant)
    .bind(&lead.id)
    .fetch_all(pool)
    .await?;
    let assignment: Option<AssignmentRow> = sqlx::query_as(
        "SELECT id, staff_id, state, reason, sla_due_at, created_at FROM assignments
         WHERE tenant_id = $1 AND lead_id = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(&lead.id)
    .fetch_optional(pool)
    .await?;
    let history: Vec<(i64, String, Option<String>, String)> = sqlx::query_as(
        "SELECT at, kind, actor, detail FROM lead_history WHERE tenant_id = $1 AND lead_id = $2 ORDER BY at, id",
    )
    .bind(tenant)
    .bind(&lead.id)
    .fetch_all(pool)
    .await?;

    Ok(HttpResponse::Ok().json(json!({
        "id": lead.id,
        "name": lead.name,
        "company": lead.company,
        "title": lead.title,
        "phone": lead.phone,
        "email": lead.email,
        "channel": lead.channel,
        "identities": identities.into_iter().map(|(kind, value)| json!({"kind": kind, "value": value})).collect::<Vec<_>>(),
        "touches": touches.into_iter().map(|(capture_id, channel, campaign_id, at)| json!({
            "capture_id": capture_id, "channel": channel, "campaign_id": campaign_id, "at": rfc3339(at),
        })).collect::<Vec<_>>(),
        "score": lead.score,
        "grade": lead.grade,
        "is_mql": lead.is_mql != 0,
        "score_reasons": parse_json(&lead.score_reasons),
        "status": lead.status,
        "owner_id": lead.owner_id,
        "assignment": assignment.map(|a| json!({
            "id": a.id, "staff_id": a.staff_id, "state": a.state, "reason": a.reason,
            "sla_due_at": a.sla_due_at.map(rfc3339), "created_at": rfc3339(a.created_at),
        })),
        "history": history.into_iter().map(|(at, kind, actor, detail)| json!({
            "at": rfc3339(at), "kind": kind, "actor": actor, "detail": parse_json(&detail),
        })).collect::<Vec<_>>(),
        "created_at": rfc3339(lead.created_at),
        "updated_at": rfc3339(lead.updated_at),
    })))
}
