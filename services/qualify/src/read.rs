//! `GET /v1/leads/{id}`: the lead with its identities, touches, score and why,
//! current assignment and history.

use actix_web::{HttpResponse, web};
use huoke_shared::apikeys::{Principal, Scope};
use huoke_shared::clock::rfc3339;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde_json::{Value, json};
use sqlx::FromRow;

use crate::visibility::{self, Sight};

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
    merged_into: Option<String>,
    uscc: Option<String>,
    attributes: Option<String>,
    mql_at: Option<i64>,
    scored_at: Option<i64>,
    scoring_version: Option<i64>,
    first_contact_at: Option<i64>,
    last_activity_at: Option<i64>,
    status_reason: Option<String>,
    recycle_count: i64,
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
        "SELECT id, name, company, title, phone, email, channel, score, grade, score_reasons, is_mql, status, owner_id,
                merged_into, uscc, attributes, mql_at, scored_at, scoring_version, first_contact_at, last_activity_at,
                status_reason, recycle_count, created_at, updated_at
         FROM leads WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::not_found("lead"))?;
    let sight = visibility::of(pool, &principal, &lead.id, lead.owner_id.as_deref(), &lead.status).await?;
    if sight == Sight::Hidden {
        return Err(ApiError::not_found("lead"));
    }

    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, value FROM lead_identities WHERE tenant_id = $1 AND lead_id = $2 ORDER BY created_at, kind",
    )
    .bind(tenant)
    .bind(&lead.id)
    .fetch_all(pool)
    .await?;
    let touches: Vec<(String, String, Option<String>, i64, String)> = sqlx::query_as(
        "SELECT capture_id, channel, campaign_id, occurred_at, kind FROM lead_touches WHERE tenant_id = $1 AND lead_id = $2 ORDER BY occurred_at, id",
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
    let duplicates: Vec<(String, String)> = sqlx::query_as(
        "SELECT other_id, reasons FROM lead_possible_duplicates WHERE tenant_id = $1 AND lead_id = $2 ORDER BY created_at, other_id",
    )
    .bind(tenant)
    .bind(&lead.id)
    .fetch_all(pool)
    .await?;
    let history: Vec<(i64, String, Option<String>, String)> = sqlx::query_as(
        "SELECT at, kind, actor, detail FROM lead_history WHERE tenant_id = $1 AND lead_id = $2 ORDER BY at, id",
    )
    .bind(tenant)
    .bind(&lead.id)
    .fetch_all(pool)
    .await?;

    // First- and last-touch attribution: the captures (not engagement) that brought
    // the lead in and that last brought it back.
    let touch_view = |(capture_id, channel, campaign_id, at, kind): &(String, String, Option<String>, i64, String)| json!({"capture_id": capture_id, "kind": kind, "channel": channel, "campaign_id": campaign_id, "at": rfc3339(*at)});
    let captures: Vec<_> = touches.iter().filter(|t| t.4 == "capture").collect();
    let attribution = json!({
        "first_touch": captures.first().map(|t| touch_view(t)),
        "last_touch": captures.last().map(|t| touch_view(t)),
    });
    let mut view = json!({
        "id": lead.id,
        "name": lead.name,
        "company": lead.company,
        "title": lead.title,
        "phone": lead.phone,
        "email": lead.email,
        "channel": lead.channel,
        "identities": identities.into_iter().map(|(kind, value)| json!({"kind": kind, "value": value})).collect::<Vec<_>>(),
        "uscc": lead.uscc,
        // What the captures said beyond the standard fields (first answer per key).
        "attributes": lead.attributes.as_deref().map_or_else(|| json!({}), parse_json),
        "touches": touches.iter().map(touch_view).collect::<Vec<_>>(),
        "attribution": attribution,
        "score": lead.score,
        "grade": lead.grade,
        "is_mql": lead.is_mql != 0,
        "mql_at": lead.mql_at.map(rfc3339),
        "scored_at": lead.scored_at.map(rfc3339),
        "scoring_version": lead.scoring_version,
        "score_reasons": parse_json(&lead.score_reasons),
        "status": lead.status,
        "status_reason": lead.status_reason,
        "first_contact_at": lead.first_contact_at.map(rfc3339),
        "last_activity_at": lead.last_activity_at.map(rfc3339),
        "recycle_count": lead.recycle_count,
        "owner_id": lead.owner_id,
        "merged_into": lead.merged_into,
        "possible_duplicates": duplicates.into_iter().map(|(other, reasons)| json!({
            "lead_id": other, "reasons": parse_json(&reasons),
        })).collect::<Vec<_>>(),
        "assignment": assignment.map(|a| json!({
            "id": a.id, "staff_id": a.staff_id, "state": a.state, "reason": a.reason,
            "sla_due_at": a.sla_due_at.map(rfc3339), "created_at": rfc3339(a.created_at),
        })),
        "history": history.into_iter().map(|(at, kind, actor, detail)| json!({
            "at": rfc3339(at), "kind": kind, "actor": actor, "detail": parse_json(&detail),
        })).collect::<Vec<_>>(),
        "created_at": rfc3339(lead.created_at),
        "updated_at": rfc3339(lead.updated_at),
    });
    if sight == Sight::Masked {
        visibility::mask(&mut view);
    }
    Ok(HttpResponse::Ok().json(view))
}
