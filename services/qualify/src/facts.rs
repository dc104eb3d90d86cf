//! What scoring knows about a stored lead, and rescoring it in place.

use std::collections::HashMap;
use std::sync::Arc;

use huoke_shared::ApiResult;
use huoke_shared::error::FieldError;
use huoke_shared::repo::versioned::{Versioned, in_force};
use huoke_shared::store::Tx;
use serde_json::Map;

use crate::identity;
use crate::rules::RuleSet;
use crate::scoring::{Event, Facts, Score, score};

impl Versioned for RuleSet {
    const TABLE: &'static str = "scoring_rules";

    async fn problems(&self, _: &mut Tx, _: &str) -> ApiResult<Vec<FieldError>> {
        Ok(self.check())
    }
}

/// The most recent touches a score looks at; older ones have decayed to nothing
/// under any sensible half-life long before a lead has this many.
const MAX_EVENTS: i64 = 1000;

/// Rule sets read once per batch of messages.
#[derive(Default)]
pub struct RulesCache(HashMap<String, (i64, Arc<RuleSet>)>);

impl RulesCache {
    pub async fn get(&mut self, tx: &mut Tx, tenant_id: &str) -> anyhow::Result<(i64, Arc<RuleSet>)> {
        if let Some((version, rules)) = self.0.get(tenant_id) {
            return Ok((*version, rules.clone()));
        }
        let (version, rules) = in_force::<RuleSet>(&mut *tx, tenant_id).await?;
        let rules = Arc::new(rules);
        self.0.insert(tenant_id.to_string(), (version, rules.clone()));
        Ok((version, rules))
    }
}

#[derive(sqlx::FromRow)]
struct LeadFields {
    name: Option<String>,
    company: Option<String>,
    title: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    uscc: Option<String>,
    channel: String,
    consent: i64,
    attributes: Option<String>,
}

/// Named fields that are present, for fit rules.
pub fn present_fields(pairs: [(&'static str, Option<&String>); 7]) -> std::collections::BTreeMap<&'static str, String> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.trim().is_empty()).map(|v| (k, v.clone())))
        .collect()
}

/// What scoring reads of a lead. Takes a connection: inside the capture's
/// transaction when rescoring, a plain one for `GET …/score`.
pub async fn of_lead(conn: &mut sqlx::AnyConnection, tenant_id: &str, lead_id: &str) -> sqlx::Result<Facts> {
    let lead: LeadFields = sqlx::query_as(
        "SELECT name, company, title, phone, email, uscc, channel, consent, attributes FROM leads WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(lead_id)
    .fetch_one(&mut *conn)
    .await?;
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM lead_identities WHERE tenant_id = $1 AND lead_id = $2")
            .bind(tenant_id)
            .bind(lead_id)
            .fetch_all(&mut *conn)
            .await?;
    let touches: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT kind, channel, occurred_at FROM lead_touches WHERE tenant_id = $1 AND lead_id = $2
         ORDER BY occurred_at DESC LIMIT $3",
    )
    .bind(tenant_id)
    .bind(lead_id)
    .bind(MAX_EVENTS)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Facts {
        fields: present_fields([
            ("name", lead.name.as_ref()),
            ("company", lead.company.as_ref()),
            ("title", lead.title.as_ref()),
            ("phone", lead.phone.as_ref()),
            ("email", lead.email.as_ref()),
            ("uscc", lead.uscc.as_ref()),
            ("channel", Some(&lead.channel)),
        ]),
        has_wechat: kinds.iter().any(|k| identity::is_wechat(k)),
        consent: lead.consent != 0,
        attributes: lead
            .attributes
            .and_then(|a| serde_json::from_str::<Map<String, serde_json::Value>>(&a).ok())
            .unwrap_or_default(),
        events: touches
            .into_iter()
            .map(|(kind, channel, at_ms)| Event { kind, channel, at_ms })
            .collect(),
    })
}

/// Scores the lead as it now stands and stores the result. `mql_at` is set the first
/// time the lead reaches the threshold and kept after.
pub async fn rescore(
    tx: &mut Tx,
    tenant_id: &str,
    lead_id: &str,
    version: i64,
    rules: &RuleSet,
    at_ms: i64,
) -> anyhow::Result<Score> {
    // Rescoring is read-then-write: two transactions adding touches to one lead must
    // take turns, or the later write would lack the other's touch. The row lock makes
    // the second wait, and its reads then see the first's committed touch.
    sqlx::query("UPDATE leads SET updated_at = updated_at WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(lead_id)
        .execute(&mut **tx)
        .await?;
    let facts = of_lead(&mut *tx, tenant_id, lead_id).await?;
    let scored = score(rules, &facts, at_ms);
    sqlx::query(
        "UPDATE leads SET score = $1, grade = $2, score_reasons = $3, is_mql = $4,
                mql_at = CASE WHEN mql_at IS NULL AND $4 = 1 THEN $5 ELSE mql_at END,
                scored_at = $5, scoring_version = $6, updated_at = $5
         WHERE tenant_id = $7 AND id = $8",
    )
    .bind(scored.points)
    .bind(scored.grade)
    .bind(serde_json::to_string(&scored.reasons)?)
    .bind(i64::from(scored.is_mql))
    .bind(at_ms)
    .bind(version)
    .bind(tenant_id)
    .bind(lead_id)
    .execute(&mut **tx)
    .await?;
    Ok(scored)
}
