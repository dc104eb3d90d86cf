//! Routing one lead inside a consumer's transaction: decide, write the decision
//! down, and turn it into an offer (with its SLA deadline) or a release to the pool.
//! The lifecycle functions then make the changes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use huoke_shared::Infra;
use huoke_shared::clock::new_id;
use huoke_shared::lifecycle::{Offer, OfferKind, Release};
use huoke_shared::store::Tx;
use huoke_shared::store::bulk::{self, Value};
use serde_json::json;

use crate::decide::{Ask, Decision, by_precedence, cursor_key, decide};
use crate::facts::LeadFacts;
use crate::sla::{due_at, first_contact_due_at};
use crate::world::Tenant;

/// Rotation cursors: one atomic increment in the cache shared by every router
/// replica, so rotation is exact across them; a local counter when the cache is away.
pub struct Cursors {
    local: AtomicU64,
}

impl Cursors {
    pub fn new() -> Self {
        Cursors {
            local: AtomicU64::new(u64::from(rand::random::<u32>())),
        }
    }

    pub async fn next(&self, infra: &Infra, tenant_id: &str, key: &str) -> u64 {
        match infra.cache.incr(&format!("router:rr:{tenant_id}:{key}"), 1, None).await {
            Ok(n) => (n - 1).max(0) as u64,
            Err(err) => {
                tracing::warn!(error = %err, "rotation cursor unavailable in the cache; rotating locally");
                self.local.fetch_add(1, Ordering::Relaxed)
            }
        }
    }

    /// The position the next lead would get, without taking it (for simulations).
    pub async fn peek(infra: &Infra, tenant_id: &str, key: &str) -> u64 {
        match infra.cache.get(&format!("router:rr:{tenant_id}:{key}")).await {
            Ok(Some(n)) => n.parse().unwrap_or(0),
            _ => 0,
        }
    }
}

impl Default for Cursors {
    fn default() -> Self {
        Self::new()
    }
}

/// The release reason when a rule sends a lead to the pool.
pub const ROUTING_RULE: &str = "routing rule";

/// What routing one lead came to.
pub enum Routed {
    Offer(Offer),
    Release(Release),
}

/// A decision to store in `routing_decisions`.
pub struct DecisionRow {
    pub id: String,
    pub tenant_id: String,
    pub lead_id: String,
    pub cause: &'static str,
    pub detail: serde_json::Value,
}

/// The whole step for one lead: precedence, rules, strategy, SLA. `hop` is the
/// number of offers made since the lead was routed afresh.
#[allow(clippy::too_many_arguments, reason = "one routing step's inputs, all distinct")]
pub async fn route(
    infra: &Infra,
    cursors: &Cursors,
    tenant: &mut Tenant,
    tenant_id: &str,
    lead_id: &str,
    facts: &LeadFacts,
    account_owner: Option<&str>,
    tried: &BTreeSet<String>,
    hop: i64,
    cause: &'static str,
    now: DateTime<Utc>,
) -> (Routed, DecisionRow) {
    let mut ask = Ask {
        lead: facts,
        account_owner,
        tried,
        cursor: 0,
    };
    let decision = match by_precedence(&tenant.world(now), &ask) {
        Ok(decision) => decision,
        Err(_) => {
            ask.cursor = cursors.next(infra, tenant_id, &cursor_key(&tenant.rules, facts)).await;
            decide(&tenant.world(now), &ask)
        }
    };
    finish(infra, tenant, tenant_id, lead_id, facts, &decision, hop, cause, now)
}

/// Turns a decision into its offer or release and the row that records it.
#[allow(clippy::too_many_arguments, reason = "one routing step's inputs, all distinct")]
pub fn finish(
    infra: &Infra,
    tenant: &mut Tenant,
    tenant_id: &str,
    lead_id: &str,
    facts: &LeadFacts,
    decision: &Decision,
    hop: i64,
    cause: &'static str,
    now: DateTime<Utc>,
) -> (Routed, DecisionRow) {
    let policy = tenant.sla.for_grade(&facts.grade, infra.settings.default_sla);
    let due = due_at(now, &policy, tenant.calendar.as_ref(), tenant.tz);
    let first_contact_due = first_contact_due_at(now, &policy, tenant.calendar.as_ref(), tenant.tz);
    let id = new_id();
    let routed = match &decision.chosen {
        Some(staff_id) => {
            tenant.count_offer(staff_id);
            Routed::Offer(Offer {
                tenant_id: tenant_id.to_string(),
                lead_id: lead_id.to_string(),
                staff_id: staff_id.clone(),
                // Why this person: the precedence that chose them, or the strategy.
                reason: match (decision.reason, decision.strategy) {
                    ("rule" | "default", Some(strategy)) => strategy.as_str().to_string(),
                    (reason, _) => reason.to_string(),
                },
                kind: OfferKind::Offer,
                hop,
                due_at: Some(due.timestamp_millis()),
                first_contact_due_at: first_contact_due.map(|d| d.timestamp_millis()),
                decision_id: Some(id.clone()),
            })
        }
        None => Routed::Release(Release {
            tenant_id: tenant_id.to_string(),
            lead_id: lead_id.to_string(),
            reason: if decision.reason == "rule" {
                ROUTING_RULE.into()
            } else {
                "no eligible owner".into()
            },
        }),
    };
    let detail = json!({
        "decision": decision,
        "facts": facts,
        "rules_version": tenant.rules_version,
        "sla_version": tenant.sla_version,
        "sla": {"grade": facts.grade, "accept_within_seconds": policy.accept_within_seconds, "clock": policy.clock,
                "due_at_ms": decision.chosen.as_ref().map(|_| due.timestamp_millis())},
        "hop": hop,
    });
    (
        routed,
        DecisionRow {
            id,
            tenant_id: tenant_id.to_string(),
            lead_id: lead_id.to_string(),
            cause,
            detail,
        },
    )
}

pub async fn record_decisions(tx: &mut Tx, rows: &[DecisionRow], now_ms: i64) -> sqlx::Result<()> {
    let values: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| {
            vec![
                Value::from(&r.id),
                Value::from(&r.tenant_id),
                Value::from(&r.lead_id),
                Value::from(now_ms),
                Value::from(r.cause),
                Value::from(r.detail.to_string()),
            ]
        })
        .collect();
    bulk::insert(
        tx,
        "routing_decisions",
        &["id", "tenant_id", "lead_id", "at", "cause", "detail"],
        &values,
        "",
    )
    .await?;
    Ok(())
}
