//! An SDR's work on a lead they own: activities, funnel steps, giving it back to the
//! pool. Managers and admins may do the same on any lead of the tenant.

use actix_web::{HttpResponse, web};
use chrono::DateTime;
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::{now_ms, rfc3339};
use huoke_shared::error::FieldError;
use huoke_shared::http::Json;
use huoke_shared::lifecycle::{self, LifecycleError, SalesStep};
use huoke_shared::store::Tx;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::settings;

pub const ACTIVITY_KINDS: [&str; 4] = ["call", "wechat", "email", "note"];

pub fn lifecycle_error(err: LifecycleError) -> ApiError {
    match err {
        LifecycleError::NotFound(what) => ApiError::not_found(what),
        LifecycleError::WrongState(why) => ApiError::Conflict(format!("the lead is {why}")),
        LifecycleError::Conflict(_) => ApiError::Conflict("the lead changed meanwhile; read it again".into()),
        LifecycleError::NotAssignee => ApiError::Forbidden("only the lead's owner may do this".into()),
        LifecycleError::Store(err) => err.into(),
    }
}

/// The lead's owner, once the caller is shown to be allowed to work on it: its
/// owner, or a manager or admin. Another tenant's lead is not found.
async fn owner_for_work(tx: &mut Tx, caller: &Caller, lead_id: &str) -> ApiResult<Option<String>> {
    let found: Option<(Option<String>,)> =
        sqlx::query_as("SELECT owner_id FROM leads WHERE tenant_id = $1 AND id = $2")
            .bind(&caller.tenant_id)
            .bind(lead_id)
            .fetch_optional(&mut **tx)
            .await?;
    let (owner,) = found.ok_or_else(|| ApiError::not_found("lead"))?;
    if owner.as_deref() != Some(caller.staff_id.as_str()) && !caller.has(Role::Manager) {
        return Err(ApiError::Forbidden(
            "only the lead's owner, a manager or an admin may do this".into(),
        ));
    }
    Ok(owner)
}

#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewActivity {
    kind: String,
    body: Option<String>,
    /// When it happened (RFC 3339); default now. Not in the future.
    occurred_at: Option<String>,
}

/// `POST /v1/leads/{id}/activities`: a call, WeChat message, e-mail or note. The
/// first marks the lead's first contact.
pub async fn add_activity(
    infra: web::Data<Infra>,
    caller: Caller,
    req: actix_web::HttpRequest,
    id: web::Path<String>,
    body: Json<NewActivity>,
) -> ApiResult<HttpResponse> {
    let (tenant, input, id) = (caller.tenant_id.clone(), body.0, id.into_inner());
    // The lead is part of the request: the same key on another lead is refused.
    let data = infra.clone();
    let request = (id.clone(), input.clone());
    huoke_shared::idempotency::once(&data, &req, &tenant, "activities.create", &request, &[], move || {
        add_activity_once(infra, caller, web::Path::from(id), Json(input))
    })
    .await
}

async fn add_activity_once(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    body: Json<NewActivity>,
) -> ApiResult<HttpResponse> {
    let input = body.0;
    let mut errors = Vec::new();
    if !ACTIVITY_KINDS.contains(&input.kind.as_str()) {
        errors.push(FieldError::new("kind", format!("one of {}", ACTIVITY_KINDS.join(", "))));
    }
    let text = input.body.as_deref().map(str::trim).filter(|b| !b.is_empty());
    if text.is_some_and(|b| b.chars().count() > 5000) {
        errors.push(FieldError::new("body", "at most 5000 characters"));
    }
    let now = now_ms();
    let occurred_at = match input.occurred_at.as_deref() {
        None => now,
        Some(raw) => match DateTime::parse_from_rfc3339(raw) {
            Ok(at) if at.timestamp_millis() <= now + 60_000 => at.timestamp_millis(),
            Ok(_) => {
                errors.push(FieldError::new("occurred_at", "not in the future"));
                now
            }
            Err(_) => {
                errors.push(FieldError::new("occurred_at", "an RFC 3339 time"));
                now
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut tx = infra.store.begin().await?;
    owner_for_work(&mut tx, &caller, &id).await?;
    let activity_id = lifecycle::record_activity(
        &mut tx,
        &caller.tenant_id,
        &id,
        &caller.staff_id,
        &input.kind,
        text,
        occurred_at,
    )
    .await
    .map_err(lifecycle_error)?;
    tx.commit().await?;
    infra.kick_outbox();
    Ok(HttpResponse::Created().json(json!({
        "id": activity_id, "lead_id": id.as_str(), "staff_id": caller.staff_id, "kind": input.kind,
        "body": text, "occurred_at": rfc3339(occurred_at),
    })))
}

/// `GET /v1/leads/{id}/activities`, oldest first.
pub async fn list_activities(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let mut tx = infra.store.begin().await?;
    owner_for_work(&mut tx, &caller, &id).await?;
    let rows: Vec<(String, String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT id, staff_id, kind, body, occurred_at FROM lead_activities WHERE tenant_id = $1 AND lead_id = $2
         ORDER BY occurred_at, id LIMIT 1000",
    )
    .bind(&caller.tenant_id)
    .bind(id.as_str())
    .fetch_all(&mut *tx)
    .await?;
    tx.rollback().await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|(aid, staff, kind, body, at)| json!({"id": aid, "staff_id": staff, "kind": kind, "body": body, "occurred_at": rfc3339(at)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    status: String,
    reason: Option<String>,
}

/// `POST /v1/leads/{id}/status {status, reason}`: one step of the funnel.
/// Disqualifying needs a reason from the tenant's list.
pub async fn change_status(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    body: Json<StatusChange>,
) -> ApiResult<HttpResponse> {
    let change = body.0;
    let Some(step) = SalesStep::parse(&change.status) else {
        let names: Vec<&str> = SalesStep::ALL.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::invalid("status", format!("one of {}", names.join(", "))));
    };
    let reason = change.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::invalid("reason", "at most 500 characters"));
    }
    let mut tx = infra.store.begin().await?;
    if step == SalesStep::Disqualified {
        let allowed = settings::load(&mut *tx, &caller.tenant_id).await?.disqualify_reasons;
        if !reason.is_some_and(|r| allowed.iter().any(|a| a == r)) {
            return Err(ApiError::invalid(
                "reason",
                format!("one of the tenant's reasons: {}", allowed.join(", ")),
            ));
        }
    }
    owner_for_work(&mut tx, &caller, &id).await?;
    let from = lifecycle::advance(&mut tx, &caller.tenant_id, &id, step, &caller.staff_id, reason)
        .await
        .map_err(lifecycle_error)?;
    tx.commit().await?;
    infra.kick_outbox();
    Ok(HttpResponse::Ok()
        .json(json!({"lead_id": id.as_str(), "from": from, "status": step.as_str(), "reason": reason})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    reason: String,
}

/// `POST /v1/leads/{id}/release {reason}`: the owner gives the lead back to the
/// public pool.
pub async fn release(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    body: Json<Release>,
) -> ApiResult<HttpResponse> {
    let reason = body.0.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid(
            "reason",
            "1 to 500 characters: why the lead goes back",
        ));
    }
    let mut tx = infra.store.begin().await?;
    let Some(owner) = owner_for_work(&mut tx, &caller, &id).await? else {
        return Err(ApiError::Conflict("the lead has no owner to give it back".into()));
    };
    lifecycle::give_back(
        &mut tx,
        &caller.tenant_id,
        &id,
        &owner,
        &caller.staff_id,
        &reason,
        false,
    )
    .await
    .map_err(lifecycle_error)?;
    tx.commit().await?;
    infra.kick_outbox();
    Ok(HttpResponse::Ok().json(json!({"lead_id": id.as_str(), "status": "pool", "reason": reason})))
}
