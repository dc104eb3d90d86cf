//! The public pool (公海): leads nobody owns — released by the router, given back, or
//! recycled — that any SDR may claim, within the tenant's daily claim limit and
//! holding limit. Both limits are exact under concurrent claims: each claim first
//! counts itself on the SDR's row for the day, which PostgreSQL locks until the
//! claim commits, so one SDR's claims are taken one after another.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::rfc3339;
use huoke_shared::lifecycle;
use huoke_shared::paging::{PageQuery, Paged};
use huoke_shared::schedule::DEFAULT_TZ;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;

use crate::settings;
use crate::work::lifecycle_error;

#[derive(FromRow, Serialize)]
struct PoolRow {
    lead_id: String,
    name: Option<String>,
    company: Option<String>,
    title: Option<String>,
    grade: String,
    score: i64,
    channel: String,
    #[serde(skip)]
    released_ms: Option<i64>,
    reason: Option<String>,
    recycle_count: i64,
}

/// `GET /v1/pool`: unowned leads, newest first. No contact details until claimed.
pub async fn list(infra: web::Data<Infra>, caller: Caller, query: web::Query<PageQuery>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Sdr, Role::Manager])?;
    let page = query.parse()?;
    let rows: Vec<PoolRow> = sqlx::query_as(
        "SELECT id AS lead_id, name, company, title, grade, score, channel, status_changed_at AS released_ms,
                status_reason AS reason, recycle_count
         FROM leads WHERE tenant_id = $1 AND status = 'pool' AND ($2 = '' OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(&caller.tenant_id)
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.limit + 1)
    .fetch_all(infra.store.pool())
    .await?;
    let items: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            let mut item = serde_json::to_value(&r).unwrap_or_default();
            item["released_at"] = json!(r.released_ms.map(rfc3339));
            item
        })
        .collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(items, &page, |i| {
        i["lead_id"].as_str().unwrap_or_default().to_string()
    })))
}

/// `POST /v1/pool/{lead_id}/claim`: the lead is the caller's, accepted.
pub async fn claim(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Sdr])?;
    let tenant = caller.tenant_id.as_str();
    let mut tx = infra.store.begin().await?;
    let limits = settings::load(&mut *tx, tenant).await?;
    let tz_name: Option<String> = sqlx::query_scalar("SELECT timezone FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
    let tz = tz_name.and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_TZ);
    let day = Utc::now().with_timezone(&tz).date_naive().to_string();
    let counted: Option<i64> = sqlx::query_scalar(
        "INSERT INTO pool_claims (tenant_id, staff_id, day, claims) VALUES ($1, $2, $3, 1)
         ON CONFLICT (tenant_id, staff_id, day) DO UPDATE SET claims = pool_claims.claims + 1
         WHERE pool_claims.claims < $4
         RETURNING claims",
    )
    .bind(tenant)
    .bind(&caller.staff_id)
    .bind(&day)
    .bind(limits.daily_claim_limit)
    .fetch_optional(&mut *tx)
    .await?;
    let claims_today = match counted {
        Some(n) if n <= limits.daily_claim_limit => n,
        _ => {
            return Err(ApiError::Conflict(format!(
                "daily claim limit reached: {} a day",
                limits.daily_claim_limit
            )));
        }
    };
    let (holding,): (i64,) = sqlx::query_as(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM leads
         WHERE tenant_id = $1 AND owner_id = $2 AND status IN ('assigned', 'accepted', 'contacted', 'sql')",
    )
    .bind(tenant)
    .bind(&caller.staff_id)
    .fetch_one(&mut *tx)
    .await?;
    if holding >= limits.holding_limit {
        return Err(ApiError::Conflict(format!(
            "holding limit reached: {} open leads at most",
            limits.holding_limit
        )));
    }
    let assignment_id = lifecycle::claim(&mut tx, tenant, &id, &caller.staff_id)
        .await
        .map_err(lifecycle_error)?;
    tx.commit().await?;
    infra.kick_outbox();
    Ok(HttpResponse::Ok().json(json!({
        "lead_id": id.as_str(), "assignment_id": assignment_id, "status": "accepted",
        "claims_today": claims_today, "holding": holding + 1,
    })))
}
