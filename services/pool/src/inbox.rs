use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::rfc3339;
use huoke_shared::http::Json;
use huoke_shared::lifecycle::{self, AssignmentRow, LifecycleError};
use huoke_shared::paging::{PageQuery, Paged};
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::{Deserialize, Serialize};
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
    /// Seconds left to accept (negative once overdue), for offers with an SLA.
    sla_seconds_left: Option<i64>,
    assigned_at: String,
    grade: Option<String>,
    score: Option<i64>,
    name: Option<String>,
    company: Option<String>,
    channel: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// Only assignments in this state (`offered`, `accepted`, …).
    state: Option<String>,
    /// Only leads of this grade.
    grade: Option<String>,
}

/// `GET /v1/inbox?state=&grade=`: the caller's assignments, newest first, each offer
/// with the seconds left to accept it.
pub async fn list(infra: web::Data<Infra>, caller: Caller, query: web::Query<InboxQuery>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Sdr])?;
    let query = query.into_inner();
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let state = query.state.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if state.is_some_and(|s| lifecycle::AssignmentState::parse(s).is_none()) {
        return Err(ApiError::invalid(
            "state",
            "offered, accepted, rejected, expired, withdrawn or released",
        ));
    }
    let grade = query.grade.as_deref().map(str::trim).filter(|g| !g.is_empty());
    if grade.is_some_and(|g| !["A", "B", "C", "D"].contains(&g)) {
        return Err(ApiError::invalid("grade", "A, B, C or D"));
    }
    let rows: Vec<InboxRow> = sqlx::query_as(
        "SELECT i.assignment_id, i.lead_id, COALESCE(a.state, i.state) AS state, COALESCE(a.sla_due_at, i.sla_due_at) AS sla_due_at,
                i.created_at, l.grade, l.score, l.name, l.company, l.channel
         FROM inbox_items i
         LEFT JOIN assignments a ON a.tenant_id = i.tenant_id AND a.id = i.assignment_id
         LEFT JOIN leads l ON l.tenant_id = i.tenant_id AND l.id = i.lead_id
         WHERE i.tenant_id = $1 AND i.staff_id = $2 AND ($3 = '' OR i.assignment_id < $3)
           AND ($5 = '' OR COALESCE(a.state, i.state) = $5) AND ($6 = '' OR l.grade = $6)
         ORDER BY i.assignment_id DESC LIMIT $4",
    )
    .bind(&caller.tenant_id)
    .bind(&caller.staff_id)
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.limit + 1)
    .bind(state.unwrap_or_default())
    .bind(grade.unwrap_or_default())
    .fetch_all(infra.store.pool())
    .await?;
    let now = huoke_shared::clock::now_ms();
    let items: Vec<InboxItem> = rows
        .into_iter()
        .map(|r| {
            let offered = r.state == "offered";
            InboxItem {
                assignment_id: r.assignment_id,
                lead_id: r.lead_id,
                state: r.state,
                sla_due_at: r.sla_due_at.map(rfc3339),
                sla_seconds_left: r.sla_due_at.filter(|_| offered).map(|due| (due - now).div_euclid(1000)),
                assigned_at: rfc3339(r.created_at),
                grade: r.grade,
                score: r.score,
                name: r.name,
                company: r.company,
                channel: r.channel,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(items, &page, |i| i.assignment_id.clone())))
}

fn lifecycle_error(err: LifecycleError) -> ApiError {
    match err {
        LifecycleError::NotFound(what) => ApiError::not_found(what),
        LifecycleError::NotAssignee => ApiError::Forbidden("only the assignee can answer this assignment".into()),
        LifecycleError::WrongState(state) => {
            ApiError::Conflict(format!("the assignment is {state} and can no longer be answered"))
        }
        LifecycleError::Conflict(_) => ApiError::Conflict("the assignment changed meanwhile; read it again".into()),
        LifecycleError::Store(err) => err.into(),
    }
}

fn answer(row: &AssignmentRow) -> serde_json::Value {
    let at = format!("{}_at", row.state);
    json!({"assignment_id": row.id, "lead_id": row.lead_id, "state": row.state, at: rfc3339(row.updated_at)})
}

/// `POST /v1/assignments/{id}/accept`: the assignee takes the lead; the SLA clock stops.
/// Accepting again is harmless and answers the same.
pub async fn accept(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let mut tx = infra.store.begin().await?;
    let accepted = lifecycle::accept(&mut tx, &caller.tenant_id, &id, &caller.staff_id).await;
    let row = match accepted {
        Ok(row) => row,
        // A concurrent accept by the same assignee won: answer what it did.
        Err(LifecycleError::Conflict(_)) => {
            drop(tx);
            let mut tx = infra.store.begin().await?;
            match lifecycle::assignment(&mut tx, &caller.tenant_id, &id).await? {
                Some(row) if row.state == "accepted" && row.staff_id == caller.staff_id => {
                    return Ok(HttpResponse::Ok().json(answer(&row)));
                }
                _ => return Err(lifecycle_error(LifecycleError::Conflict("assignment"))),
            }
        }
        Err(err) => return Err(lifecycle_error(err)),
    };
    tx.commit().await?;
    infra.kick_outbox();
    Ok(HttpResponse::Ok().json(answer(&row)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejection {
    reason: String,
}

/// `POST /v1/assignments/{id}/reject {reason}`: the assignee gives the lead up; the
/// router offers it to the next owner at once.
pub async fn reject(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    body: Json<Rejection>,
) -> ApiResult<HttpResponse> {
    let reason = body.0.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::invalid(
            "reason",
            "1 to 500 characters: why the lead is given up",
        ));
    }
    let mut tx = infra.store.begin().await?;
    let row = lifecycle::reject(&mut tx, &caller.tenant_id, &id, &caller.staff_id, &reason)
        .await
        .map_err(lifecycle_error)?;
    tx.commit().await?;
    infra.kick_outbox();
    Ok(HttpResponse::Ok().json(answer(&row)))
}
