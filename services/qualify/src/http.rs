//! qualify's HTTP surface beyond reading a lead: merging two leads by hand and
//! taking the last merge back, a lead's score at any moment, and the scoring rules.

use actix_web::{HttpResponse, web};
use chrono::DateTime;
use huoke_shared::apikeys::{Principal, Scope};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::{now_ms, rfc3339};
use huoke_shared::error::FieldError;
use huoke_shared::http::Json;
use huoke_shared::lifecycle::{self, LifecycleError, MergeOutcome};
use huoke_shared::repo::versioned::{get_version, history, in_force, put_version};
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::json;

use crate::facts;
use crate::rules::RuleSet;
use crate::scoring::score;
use crate::visibility::{self, Sight};

const MANAGERS: &[Role] = &[Role::Admin, Role::Manager];

fn merge_error(err: LifecycleError) -> ApiError {
    match err {
        LifecycleError::NotFound(what) => ApiError::not_found(what),
        LifecycleError::Store(err) => err.into(),
        LifecycleError::WrongState(why) => ApiError::Conflict(format!("cannot merge: {why}")),
        other => ApiError::Conflict(other.to_string()),
    }
}

fn merge_view(outcome: &MergeOutcome) -> serde_json::Value {
    json!({"merge_id": outcome.merge_id, "survivor_id": outcome.survivor_id, "merged_id": outcome.merged_id})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    other_id: String,
}

/// `POST /v1/leads/{id}/merge {other_id}`: `other_id` is the same person as `id`
/// and is merged into it.
pub async fn merge(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    body: Json<MergeRequest>,
) -> ApiResult<HttpResponse> {
    caller.require_any(MANAGERS)?;
    if body.0.other_id == *id {
        return Err(ApiError::Validation(vec![FieldError::new(
            "other_id",
            "a lead cannot be merged into itself",
        )]));
    }
    let mut tx = infra.store.begin().await?;
    let outcome = lifecycle::merge(
        &mut tx,
        &caller.tenant_id,
        &id,
        &body.0.other_id,
        &caller.staff_id,
        json!({"by_hand": true}),
    )
    .await
    .map_err(merge_error)?;
    tx.commit().await?;
    infra.kick_outbox();
    Ok(HttpResponse::Ok().json(merge_view(&outcome)))
}

/// `POST /v1/leads/{id}/merge/undo`: takes back the latest merge into `id`.
pub async fn undo_merge(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(MANAGERS)?;
    let mut tx = infra.store.begin().await?;
    let outcome = lifecycle::undo_last_merge(&mut tx, &caller.tenant_id, &id, &caller.staff_id)
        .await
        .map_err(merge_error)?;
    tx.commit().await?;
    infra.kick_outbox();
    Ok(HttpResponse::Ok().json(merge_view(&outcome)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreQuery {
    at: Option<String>,
}

/// `GET /v1/leads/{id}/score?at=<RFC 3339>`: the score the lead would have at `at`
/// (default now) under the rules in force — events after `at` not counted, earlier
/// ones decayed to it. Nothing is stored.
pub async fn score_at(
    infra: web::Data<Infra>,
    principal: Principal,
    id: web::Path<String>,
    query: web::Query<ScoreQuery>,
) -> ApiResult<HttpResponse> {
    principal.require_scope(&[Scope::LeadsRead])?;
    let at_ms = match query.at.as_deref() {
        None => now_ms(),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|_| {
                ApiError::Validation(vec![FieldError::new(
                    "at",
                    "an RFC 3339 time, such as 2027-01-31T09:00:00+08:00",
                )])
            })?
            .timestamp_millis(),
    };
    let tenant = principal.tenant_id();
    let found: Option<(Option<String>, String)> =
        sqlx::query_as("SELECT owner_id, status FROM leads WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id.as_str())
            .fetch_optional(infra.store.pool())
            .await?;
    let (owner, status) = found.ok_or_else(|| ApiError::not_found("lead"))?;
    if visibility::of(infra.store.pool(), &principal, &id, owner.as_deref(), &status).await? == Sight::Hidden {
        return Err(ApiError::not_found("lead"));
    }
    // A read: a plain connection, no transaction (and so no write lock on SQLite).
    let mut conn = infra.store.pool().acquire().await?;
    let (version, rules) = in_force::<RuleSet>(&mut conn, tenant).await?;
    let facts = facts::of_lead(&mut conn, tenant, &id).await?;
    let scored = score(&rules, &facts, at_ms);
    Ok(HttpResponse::Ok().json(json!({
        "lead_id": id.as_str(),
        "at": rfc3339(at_ms),
        "rules_version": version,
        "score": scored.points,
        "grade": scored.grade,
        "is_mql": scored.is_mql,
        "score_reasons": scored.reasons,
    })))
}

pub async fn put_rules(infra: web::Data<Infra>, caller: Caller, body: Json<RuleSet>) -> ApiResult<HttpResponse> {
    put_version(&infra, &caller, body.0).await
}

pub async fn get_rules(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    get_version::<RuleSet>(&infra, &caller).await
}

pub async fn rules_history(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    history::<RuleSet>(&infra, &caller).await
}
