//! `/v1/admin/dead-letters…`: a tenant admin's view of their messages that a
//! consumer gave up on, and the way to send them through again once the cause is
//! fixed. Operators see every tenant's through `huoke dlq`.

use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::deadletters::{self, Scope};
use huoke_shared::http::Json;
use huoke_shared::paging::{PageQuery, Paged};
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub struct ListQuery {
    queue: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// A replay fails when the bus or the store is away: worth trying again later.
fn unavailable(err: &anyhow::Error) -> ApiError {
    tracing::warn!(error = %format!("{err:#}"), "dead-letter replay failed");
    ApiError::Unavailable("could not replay now; the bus or the store is not reachable".into())
}

fn queue_param(queue: Option<&str>) -> Result<Option<&'static str>, ApiError> {
    match queue.map(str::trim).filter(|q| !q.is_empty()) {
        None => Ok(None),
        Some(q) => deadletters::known_queue(q)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("queue", "not a queue of this system")),
    }
}

/// `GET /v1/admin/dead-letters?queue=&limit=&cursor=`
pub async fn list(infra: web::Data<Infra>, caller: Caller, query: web::Query<ListQuery>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let scope = Scope {
        tenant_id: Some(&caller.tenant_id),
        queue: queue_param(query.queue.as_deref())?,
    };
    let rows = deadletters::list(&infra.store, scope, page.after.as_deref(), page.limit + 1).await?;
    Ok(HttpResponse::Ok().json(Paged::from_rows(rows, &page, |d| d.id.clone())))
}

/// `GET /v1/admin/dead-letters/{id}` (its id or the message id), with the message.
pub async fn show(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let scope = Scope {
        tenant_id: Some(&caller.tenant_id),
        queue: None,
    };
    let found = deadletters::get(&infra.store, scope, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("dead letter"))?;
    Ok(HttpResponse::Ok().json(found))
}

/// `POST /v1/admin/dead-letters/{id}/replay`
pub async fn replay_one(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let scope = Scope {
        tenant_id: Some(&caller.tenant_id),
        queue: None,
    };
    if deadletters::get(&infra.store, scope, &id).await?.is_none() {
        return Err(ApiError::not_found("dead letter"));
    }
    let replayed = deadletters::replay(&infra.store, &*infra.bus, scope, Some(&id))
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(HttpResponse::Ok().json(json!({"replayed": replayed})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayAll {
    queue: String,
}

/// `POST /v1/admin/dead-letters/replay {queue}`: every dead letter of the tenant in
/// that queue.
pub async fn replay_queue(infra: web::Data<Infra>, caller: Caller, body: Json<ReplayAll>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin])?;
    let queue = queue_param(Some(&body.0.queue))?.ok_or_else(|| ApiError::invalid("queue", "required"))?;
    let scope = Scope {
        tenant_id: Some(&caller.tenant_id),
        queue: Some(queue),
    };
    let replayed = deadletters::replay(&infra.store, &*infra.bus, scope, None)
        .await
        .map_err(|e| unavailable(&e))?;
    Ok(HttpResponse::Ok().json(json!({"replayed": replayed, "queue": queue})))
}
