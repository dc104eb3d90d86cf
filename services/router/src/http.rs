//! The router's HTTP surface: versioned routing rules and SLA policies, the tenant
//! calendar, the decisions behind a lead's owners, and a side-effect-free simulator.

use std::collections::BTreeSet;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::{now_ms, rfc3339};
use huoke_shared::http::Json;
use huoke_shared::repo::versioned::{Versioned, get_version, history, parse_stored, put_version};
use huoke_shared::schedule::Schedule;
use huoke_shared::store::Tx;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::decide::{Ask, by_precedence, cursor_key, decide};
use crate::facts::LeadFacts;
use crate::routing::Cursors;
use crate::rules::RuleSet;
use crate::sla::{SlaPolicies, due_at};
use crate::world;

const MANAGERS: &[Role] = &[Role::Admin, Role::Manager];

impl Versioned for RuleSet {
    const TABLE: &'static str = "routing_rules";

    async fn problems(&self, tx: &mut Tx, tenant_id: &str) -> ApiResult<Vec<huoke_shared::error::FieldError>> {
        let teams: Vec<String> = sqlx::query_scalar("SELECT id FROM teams WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(&mut **tx)
            .await?;
        let staff: Vec<String> = sqlx::query_scalar("SELECT id FROM staff WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(&mut **tx)
            .await?;
        let teams: BTreeSet<String> = teams.into_iter().collect();
        let staff: BTreeSet<String> = staff.into_iter().collect();
        Ok(self.check(&teams, &staff))
    }
}

impl Versioned for SlaPolicies {
    const TABLE: &'static str = "sla_policies";

    async fn problems(&self, _: &mut Tx, _: &str) -> ApiResult<Vec<huoke_shared::error::FieldError>> {
        Ok(self.check())
    }
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

pub async fn put_sla(infra: web::Data<Infra>, caller: Caller, body: Json<SlaPolicies>) -> ApiResult<HttpResponse> {
    put_version(&infra, &caller, body.0).await
}

pub async fn get_sla(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    get_version::<SlaPolicies>(&infra, &caller).await
}

pub async fn sla_history(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    history::<SlaPolicies>(&infra, &caller).await
}

/// `PUT /v1/calendar`: the tenant's business hours, dates off and adjusted working
/// days (one current version; business-time SLAs count its open hours).
pub async fn put_calendar(infra: web::Data<Infra>, caller: Caller, body: Json<Schedule>) -> ApiResult<HttpResponse> {
    caller.require_any(MANAGERS)?;
    let calendar = body.0;
    let problems = calendar.check_as("calendar");
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let text = serde_json::to_string(&calendar).map_err(anyhow::Error::from)?;
    sqlx::query(
        "INSERT INTO tenant_calendars (tenant_id, body, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
    )
    .bind(&caller.tenant_id)
    .bind(&text)
    .bind(now_ms())
    .execute(infra.store.pool())
    .await?;
    Ok(HttpResponse::Ok().json(calendar))
}

pub async fn get_calendar(infra: web::Data<Infra>, caller: Caller) -> ApiResult<HttpResponse> {
    caller.require_any(MANAGERS)?;
    let body: Option<String> = sqlx::query_scalar("SELECT body FROM tenant_calendars WHERE tenant_id = $1")
        .bind(&caller.tenant_id)
        .fetch_optional(infra.store.pool())
        .await?;
    Ok(HttpResponse::Ok().json(body.map_or_else(|| json!({"weekly": {}, "dates_off": []}), |b| parse_stored(&b))))
}

/// `GET /v1/leads/{id}/decisions`: every routing decision for the lead, oldest first.
pub async fn decisions(infra: web::Data<Infra>, caller: Caller, id: web::Path<String>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Admin, Role::Manager, Role::Sdr])?;
    let mut tx = infra.store.begin().await?;
    let lead = world::lead(&mut tx, &caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("lead"))?;
    if !caller.has(Role::Manager) && lead.owner_id.as_deref() != Some(caller.staff_id.as_str()) {
        // An SDR reads the decisions of their own leads only.
        return Err(ApiError::not_found("lead"));
    }
    let rows: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT id, at, cause, detail FROM routing_decisions WHERE tenant_id = $1 AND lead_id = $2 ORDER BY at, id",
    )
    .bind(&caller.tenant_id)
    .bind(id.as_str())
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, at, cause, detail)| {
            let mut item = json!({"id": id, "at": rfc3339(at), "cause": cause});
            if let (Value::Object(item), Value::Object(detail)) = (&mut item, parse_stored(&detail)) {
                item.extend(detail);
            }
            item
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulation {
    lead: LeadFacts,
    #[serde(default)]
    account_owner: Option<String>,
    /// Staff to treat as having had the lead already (a re-offer).
    #[serde(default)]
    tried: BTreeSet<String>,
}

/// `POST /v1/routing/simulate`: the decision the router would make for this lead
/// now, with the rules, calendar, SLA policies and loads in force — changing nothing
/// (the rotation position is read, not advanced).
pub async fn simulate(infra: web::Data<Infra>, caller: Caller, body: Json<Simulation>) -> ApiResult<HttpResponse> {
    caller.require_any(MANAGERS)?;
    let sim = body.0;
    if sim.lead.channel.trim().is_empty() {
        return Err(ApiError::invalid("lead.channel", "the channel the lead came through"));
    }
    let now = Utc::now();
    let mut tx = infra.store.begin().await?;
    let tenant = world::load_tenant(&mut tx, &caller.tenant_id, now).await?;
    drop(tx);
    let mut ask = Ask {
        lead: &sim.lead,
        account_owner: sim.account_owner.as_deref(),
        tried: &sim.tried,
        cursor: 0,
    };
    let world = tenant.world(now);
    let decision = match by_precedence(&world, &ask) {
        Ok(decision) => decision,
        Err(_) => {
            ask.cursor = Cursors::peek(&infra, &caller.tenant_id, &cursor_key(&tenant.rules, &sim.lead)).await;
            decide(&world, &ask)
        }
    };
    let policy = tenant.sla.for_grade(&sim.lead.grade, infra.settings.default_sla);
    let due = decision
        .chosen
        .as_ref()
        .map(|_| rfc3339(due_at(now, &policy, tenant.calendar.as_ref(), tenant.tz).timestamp_millis()));
    Ok(HttpResponse::Ok().json(json!({
        "decision": decision,
        "rules_version": tenant.rules_version,
        "sla_version": tenant.sla_version,
        "sla": {"grade": sim.lead.grade, "accept_within_seconds": policy.accept_within_seconds, "clock": policy.clock, "due_at": due},
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    from: String,
    to: String,
    rules: RuleSet,
}

/// Most recorded decisions one replay looks at.
const REPLAY_LIMIT: i64 = 5_000;

fn instant(field: &str, value: &str) -> ApiResult<chrono::DateTime<Utc>> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid(field, "an RFC 3339 time such as 2026-12-01T08:00:00Z"))
}

/// `POST /v1/routing/replay {from, to, rules}`: the first routing of every lead in
/// `[from, to)` decided again under a draft rule set — with each lead's recorded
/// facts, rotation position and time of day, and today's staff — reporting which
/// leads would get another owner, and why. Changes nothing.
pub async fn replay(infra: web::Data<Infra>, caller: Caller, body: Json<Replay>) -> ApiResult<HttpResponse> {
    caller.require_any(MANAGERS)?;
    let replay = body.0;
    let from = instant("from", &replay.from)?;
    let to = instant("to", &replay.to)?;
    if to <= from {
        return Err(ApiError::invalid("to", "after from"));
    }
    let tenant_id = caller.tenant_id.as_str();
    let mut tx = infra.store.begin().await?;
    let problems = replay.rules.problems(&mut tx, tenant_id).await?;
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let mut tenant = world::load_tenant(&mut tx, tenant_id, Utc::now()).await?;
    let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT id, lead_id, at, detail FROM routing_decisions
         WHERE tenant_id = $1 AND cause = 'qualified' AND at >= $2 AND at < $3 ORDER BY at, id LIMIT $4",
    )
    .bind(tenant_id)
    .bind(from.timestamp_millis())
    .bind(to.timestamp_millis())
    .bind(REPLAY_LIMIT + 1)
    .fetch_all(&mut *tx)
    .await?;
    drop(tx);
    let truncated = rows.len() as i64 > REPLAY_LIMIT;
    tenant.rules = replay.rules;
    let no_one = BTreeSet::new();
    let (mut items, mut changed) = (Vec::new(), 0);
    for (decision_id, lead_id, at, detail) in rows.into_iter().take(REPLAY_LIMIT as usize) {
        let detail = parse_stored(&detail);
        let recorded = &detail["decision"];
        let Ok(facts) = serde_json::from_value::<LeadFacts>(detail["facts"].clone()) else {
            continue;
        };
        let account_owner = (recorded["reason"] == "account_owner")
            .then(|| recorded["chosen"].as_str())
            .flatten();
        let when = chrono::DateTime::from_timestamp_millis(at).unwrap_or_else(Utc::now);
        let ask = Ask {
            lead: &facts,
            account_owner,
            tried: &no_one,
            cursor: recorded["cursor"].as_u64().unwrap_or(0),
        };
        let draft = decide(&tenant.world(when), &ask);
        let recorded_owner = recorded["chosen"].as_str();
        let differs = draft.chosen.as_deref() != recorded_owner;
        changed += usize::from(differs);
        let rule_name = |rule: &Option<(usize, String)>| rule.as_ref().map(|(_, name)| name.clone());
        items.push(json!({
            "lead_id": lead_id,
            "decision_id": decision_id,
            "at": rfc3339(at),
            "changed": differs,
            "recorded": {"chosen": recorded_owner, "reason": recorded["reason"], "rule": recorded["rule"][1]},
            "draft": {"chosen": draft.chosen, "reason": draft.reason, "rule": rule_name(&draft.rule), "to_pool": draft.to_pool,
                      "excluded": draft.considered.iter().filter(|c| c.excluded.is_some()).map(|c| json!({"staff_id": c.staff_id, "why": c.excluded})).collect::<Vec<_>>()},
        }));
    }
    Ok(HttpResponse::Ok().json(json!({
        "total": items.len(),
        "changed": changed,
        "truncated": truncated,
        "items": items,
    })))
}
