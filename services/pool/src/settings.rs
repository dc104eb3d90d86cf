//! The tenant's pool rules: how many leads an SDR may claim a day and hold at once,
//! after how long without activity an owned lead goes back to the pool, and the
//! reasons a lead may be disqualified for. One current version per tenant.

use actix_web::{HttpResponse, web};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::now_ms;
use huoke_shared::error::FieldError;
use huoke_shared::http::Json;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    /// Leads one SDR may claim from the pool per day (the tenant's local date).
    pub daily_claim_limit: i64,
    /// Open leads (assigned, accepted, contacted, SQL) one SDR may hold for a claim
    /// to be allowed.
    pub holding_limit: i64,
    /// An owned lead with no activity for this long goes back to the pool; `null`
    /// never. Fractions of a day are allowed.
    #[serde(default)]
    pub recycle_after_days: Option<f64>,
    /// The reasons a lead may be disqualified for.
    pub disqualify_reasons: Vec<String>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            daily_claim_limit: 20,
            holding_limit: 200,
            recycle_after_days: None,
            disqualify_reasons: [
                "no budget",
                "no need",
                "wrong contact",
                "chose a competitor",
                "duplicate",
            ]
            .into_iter()
            .map(str::to_string)
            .collect(),
        }
    }
}

impl PoolSettings {
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !(0..=10_000).contains(&self.daily_claim_limit) {
            errors.push(FieldError::new("daily_claim_limit", "0 to 10000"));
        }
        if !(0..=100_000).contains(&self.holding_limit) {
            errors.push(FieldError::new("holding_limit", "0 to 100000"));
        }
        if let Some(days) = self.recycle_after_days
            && !(days.is_finite() && days > 0.0 && days <= 3650.0)
        {
            errors.push(FieldError::new(
                "recycle_after_days",
                "more than 0 and at most 3650, or null",
            ));
        }
        let reasons = &self.disqualify_reasons;
        if reasons.is_empty()
            || reasons.len() > 50
            || reasons.iter().any(|r| r.trim().is_empty() || r.chars().count() > 100)
        {
            errors.push(FieldError::new(
                "disqualify_reasons",
                "1 to 50 reasons of 1 to 100 characters",
            ));
        }
        errors
    }
}

/// The tenant's settings, read in the caller's transaction or straight from the pool.
pub async fn load<'e, E>(executor: E, tenant_id: &str) -> anyhow::Result<PoolSettings>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let body: Option<String> = sqlx::query_scalar("SELECT body FROM pool_settings WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(executor)
        .await?;
    Ok(match body {
        Some(text) => serde_json::from_str(&text)?,
        None => PoolSettings::default(),
    })
}

pub async fn get(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin, Role::Manager, Role::Sdr])?;
    // A plain read: no transaction (on SQLite one would take the write lock).
    let settings = load(infra.store.pool(), &caller.tenant_id).await?;
    Ok(HttpResponse::Ok().json(settings))
}

pub async fn put(infra: web::Data<Infra>, caller: Caller, body: Json<PoolSettings>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin, Role::Manager])?;
    let settings = body.0;
    let problems = settings.check();
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    sqlx::query(
        "INSERT INTO pool_settings (tenant_id, body, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
    )
    .bind(&caller.tenant_id)
    .bind(serde_json::to_string(&settings).map_err(anyhow::Error::from)?)
    .bind(now_ms())
    .execute(infra.store.pool())
    .await?;
    Ok(HttpResponse::Ok().json(settings))
}
