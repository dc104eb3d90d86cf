//! `assignment.rejected`, `sla.breached` and `assignment.handed_over` (the assignee
//! was switched off) → the next owner. An offer that was
//! turned down or left to expire goes to the next eligible SDR (never one who
//! already had it) until `max_hops` further offers were made; then to the manager of
//! the last assignee's team (an escalation, under the same SLA); when the manager
//! does not take it either — or there is none — to the public pool.

use chrono::Utc;
use huoke_shared::Infra;
use huoke_shared::bus::{Envelope, HandlerError};
use huoke_shared::consumer::Effect;
use huoke_shared::lifecycle::{self, Offer, OfferKind, Release};
use huoke_shared::messages::{AssignmentHandedOver, AssignmentRejected, SlaBreached};
use huoke_shared::store::Tx;
use serde_json::json;

use crate::consumer::lifecycle_failure;
use crate::routing::{Cursors, DecisionRow, ROUTING_RULE, Routed, record_decisions, route};
use crate::sla::{due_at, first_contact_due_at};
use crate::world;

pub struct Reroute {
    infra: Infra,
    cursors: Cursors,
}

impl Reroute {
    pub fn new(infra: &Infra) -> Self {
        Reroute {
            infra: infra.clone(),
            cursors: Cursors::new(),
        }
    }
}

/// What the two events share.
struct Closed {
    lead_id: String,
    staff_id: String,
    hop: i64,
    escalation: bool,
    cause: &'static str,
}

fn closed(envelope: &Envelope) -> Result<Closed, HandlerError> {
    if envelope.kind == <AssignmentHandedOver as huoke_shared::bus::Message>::TOPIC {
        let e: AssignmentHandedOver = envelope.decode()?;
        return Ok(Closed {
            lead_id: e.lead_id,
            staff_id: e.staff_id,
            hop: e.hop,
            escalation: e.kind == OfferKind::Escalation.as_str(),
            cause: "handed_over",
        });
    }
    if envelope.kind == <SlaBreached as huoke_shared::bus::Message>::TOPIC {
        let e: SlaBreached = envelope.decode()?;
        Ok(Closed {
            lead_id: e.lead_id,
            staff_id: e.staff_id,
            hop: e.hop,
            escalation: e.kind == OfferKind::Escalation.as_str(),
            cause: "sla_breached",
        })
    } else {
        let e: AssignmentRejected = envelope.decode()?;
        Ok(Closed {
            lead_id: e.lead_id,
            staff_id: e.staff_id,
            hop: e.hop,
            escalation: e.kind == OfferKind::Escalation.as_str(),
            cause: "rejected",
        })
    }
}

#[async_trait::async_trait]
impl Effect for Reroute {
    type Scratch = ();

    fn consumer(&self) -> &'static str {
        "router.reroutes"
    }

    async fn apply(&self, tx: &mut Tx, envelope: &Envelope, _: &mut ()) -> Result<(), HandlerError> {
        let event = closed(envelope)?;
        let tenant_id = envelope.tenant_id.as_str();
        let Some(lead) = world::lead(tx, tenant_id, &event.lead_id).await? else {
            return Err(HandlerError::Reject(format!("lead {} does not exist", event.lead_id)));
        };
        // Someone has it again (claimed from the pool, assigned by hand): done.
        if lead.owner_id.is_some() || lead.status != "rerouting" {
            return Ok(());
        }
        let release = |reason: &str| Release {
            tenant_id: tenant_id.to_string(),
            lead_id: lead.id.clone(),
            reason: reason.to_string(),
        };
        if event.escalation {
            let reason = format!("the manager did not take it ({})", event.cause);
            lifecycle::release_many(tx, "router", &[release(&reason)])
                .await
                .map_err(lifecycle_failure)?;
            return Ok(());
        }
        // Loaded only now: a manager's lapsed escalation above needs none of it.
        let now = Utc::now();
        let mut tenant = world::load_tenant(tx, tenant_id, now).await?;
        let tried = world::tried(tx, tenant_id, &lead.id).await?;
        let facts = world::facts(tx, tenant_id, &lead, None).await?;
        let next_hop = event.hop + 1;
        if next_hop <= tenant.sla.max_hops {
            let (routed, decision) = route(
                &self.infra,
                &self.cursors,
                &mut tenant,
                tenant_id,
                &lead.id,
                &facts,
                None,
                &tried,
                next_hop,
                event.cause,
                now,
            )
            .await;
            record_decisions(tx, &[decision], now.timestamp_millis()).await?;
            match routed {
                Routed::Offer(offer) => {
                    lifecycle::offer_many(tx, "router", &[offer])
                        .await
                        .map_err(lifecycle_failure)?;
                    return Ok(());
                }
                // The rules send it to the pool: no escalation.
                Routed::Release(release) if release.reason == ROUTING_RULE => {
                    lifecycle::release_many(tx, "router", &[release])
                        .await
                        .map_err(lifecycle_failure)?;
                    return Ok(());
                }
                Routed::Release(_) => {}
            }
        }
        // Nobody further may take it: the manager of the last assignee's team.
        let manager = tenant
            .manager_of(&event.staff_id)
            .filter(|m| !tried.contains(*m) && tenant.staff.get(*m).is_some_and(|c| c.active))
            .map(str::to_string);
        let Some(manager) = manager else {
            lifecycle::release_many(tx, "router", &[release("nobody took it and no manager to escalate to")])
                .await
                .map_err(lifecycle_failure)?;
            return Ok(());
        };
        let policy = tenant.sla.for_grade(&lead.grade, self.infra.settings.default_sla);
        let due = due_at(now, &policy, tenant.calendar.as_ref(), tenant.tz);
        let first_contact_due = first_contact_due_at(now, &policy, tenant.calendar.as_ref(), tenant.tz);
        let decision = DecisionRow {
            id: huoke_shared::clock::new_id(),
            tenant_id: tenant_id.to_string(),
            lead_id: lead.id.clone(),
            cause: event.cause,
            detail: json!({
                "decision": {"reason": "escalation", "chosen": manager, "after": event.staff_id, "tried": tried},
                "hop": next_hop, "sla": {"due_at_ms": due.timestamp_millis(), "accept_within_seconds": policy.accept_within_seconds},
            }),
        };
        let offer = Offer {
            tenant_id: tenant_id.to_string(),
            lead_id: lead.id.clone(),
            staff_id: manager,
            reason: "escalation".into(),
            kind: OfferKind::Escalation,
            hop: next_hop,
            due_at: Some(due.timestamp_millis()),
            first_contact_due_at: first_contact_due.map(|d| d.timestamp_millis()),
            decision_id: Some(decision.id.clone()),
        };
        record_decisions(tx, &[decision], now.timestamp_millis()).await?;
        lifecycle::offer_many(tx, "router", &[offer])
            .await
            .map_err(lifecycle_failure)?;
        Ok(())
    }
}
