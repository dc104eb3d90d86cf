use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::bus::Envelope;
use huoke_shared::clock::{now_ms, rfc3339};
use huoke_shared::messages::AssignmentAccepted;
use huoke_shared::paging::{PageQuery, Paged};
use huoke_shared::store::Outbox;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;

#[derive(FromRow)]
struct InboxRow {
    assignment_id: String,
    lead_id: String,
    state: String,
    sla_due_at: Option<i64>,
    created_at: i64,
    grade: Option<String>,
    score: Option<i64>,
    name: Option<String>,
    company: Option<String>,
    channel: Option<String>,
}

#[derive(Serialize)]
struct InboxItem {
    assignment_id: String,
    lead_id: String,
    state: String,
    sla_due_at: Option<String>,
    assigned_at: String,
    grade: Option<String>,
    score: Option<i64>,
    name: Option<String>,
    company: Option<String>,
    channel: Option<String>,
}

/// `GET /v1/inbox`: the caller's assignments, newest first.
pub async fn list(infra: web::Data<Infra>, caller: Caller, query: web::Query<PageQuery>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Sdr])?;
    let page = query.parse()?;
    let rows: Vec<InboxRow> = sqlx::query_as(
        "SELECT i.assignment_id, i.lead_id, i.state, i.sla_due_at, i.created_at,
                l.grade, l.score, l.name, l.company, l.channel
         FROM inbox_items i LEFT JOIN leads l ON l.tenant_id = i.tenant_id AND l.id = i.lead_id
         WHERE i.tenant_id = $1 AND i.staff_id = $2 AND ($3 = '' OR i.assignment_id < $3)
         ORDER BY i.assignment_id DESC LIMIT $4",
    )
    .bind(&caller.tenant_id)
    .bind(&caller.staff_id)
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.limit + 1)
    .fetch_all(infra.store.pool())
    .await?;
    let items: Vec<InboxItem> = rows
        .into_iter()
        .map(|r| InboxItem {
            assignment_id: r.assignment_id,
            lead_id: r.lead_id,
            state: r.state,
            sla_due_at: r.sla_due_at.map(rfc3339),
            assigned_at: rfc3339(r.created_at),
            grade: r.grade,
            score: r.score,
            name: r.name,
            company: r.company,
            channel: r.channel,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(items, &page, |i| i.assignment_id.clone())))
}

/// `POST /v1/assignments/{id}/accept`: the assignee takes the lead; the SLA clock stops.
/// Accepting again is harmless and answers the same.
pub async fn accept(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant_id.as_str();
    let mut tx = infra.store.begin().await?;
    let row: Option<(String, String, String, i64)> = sqlx::query_as(
        "SELECT staff_id, lead_id, state, updated_at FROM inbox_items WHERE tenant_id = $1 AND assignment_id = $2",
    )
    .bind(tenant)
    .bind(id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let (staff_id, lead_id, state, updated_at) = row.ok_or_else(|| ApiError::not_found("assignment"))?;
    if staff_id != caller.staff_id {
        return Err(ApiError::Forbidden(
            "only the assignee can accept this assignment".into(),
        ));
    }
    match state.as_str() {
        "accepted" => {
            return Ok(HttpResponse::Ok().json(json!({"assignment_id": id.as_str(), "lead_id": lead_id, "state": "accepted", "accepted_at": rfc3339(updated_at)})));
        }
        "offered" => {}
        other => {
            return Err(ApiError::Conflict(format!(
                "the assignment is {other} and can no longer be accepted"
            )));
        }
    }
    let now = now_ms();
    // Guarded: of concurrent accepts only the first changes anything (PostgreSQL
    // re-checks the condition once the other commits), so the history and the event
    // are written once.
    let won = sqlx::query(
        "UPDATE inbox_items SET state = 'accepted', updated_at = $1 WHERE tenant_id = $2 AND assignment_id = $3 AND state = 'offered'",
    )
    .bind(now)
    .bind(tenant)
    .bind(id.as_str())
    .execute(&mut *tx)
    .await?;
    if won.rows_affected() == 0 {
        drop(tx);
        let accepted_at: Option<i64> = sqlx::query_scalar(
            "SELECT updated_at FROM inbox_items WHERE tenant_id = $1 AND assignment_id = $2 AND state = 'accepted'",
        )
        .bind(tenant)
        .bind(id.as_str())
        .fetch_optional(infra.store.pool())
        .await?;
        return match accepted_at {
            Some(at) => Ok(HttpResponse::Ok().json(
                json!({"assignment_id": id.as_str(), "lead_id": lead_id, "state": "accepted", "accepted_at": rfc3339(at)}),
            )),
            None => Err(ApiError::Conflict("the assignment changed meanwhile; read it again".into())),
        };
    }
    sqlx::query("UPDATE assignments SET state = 'accepted', updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND state = 'offered'")
        .bind(now)
        .bind(tenant)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE leads SET status = 'accepted', updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND status = 'assigned'")
        .bind(now)
        .bind(tenant)
        .bind(&lead_id)
        .execute(&mut *tx)
        .await?;
    huoke_shared::repo::history::record(
        &mut tx,
        tenant,
        &lead_id,
        "accepted",
        &caller.staff_id,
        json!({"assignment_id": id.as_str()}),
    )
    .await?;
    let event = AssignmentAccepted {
        assignment_id: id.to_string(),
        lead_id: lead_id.clone(),
        staff_id: caller.staff_id.clone(),
    };
    Outbox::add(&mut tx, &Envelope::new(tenant, &event)).await?;
    tx.commit().await?;
    infra.kick_outbox();
    Ok(HttpResponse::Ok().json(
        json!({"assignment_id": id.as_str(), "lead_id": lead_id, "state": "accepted", "accepted_at": rfc3339(now)}),
    ))
}
