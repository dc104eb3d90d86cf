//! The one owner of lead and assignment state. Every change of `leads.owner_id` /
//! `leads.status` and of `assignments.state` goes through a function here, which does
//! the guarded update, the history row and the outbox event in the caller's
//! transaction — so a change is all three or none, and of two racing callers (two
//! router replicas, an accept racing an SLA timer) exactly one wins.
//!
//! An assignment is `offered` → `accepted` | `rejected` | `expired`. A lead is `new`
//! (qualified, not yet routed) → `assigned` (an offer is open) → `accepted`; a
//! rejected or breached offer makes it `rerouting` until the router offers it to the
//! next owner, escalates it to a manager (`escalated`, an offer to the manager) or
//! releases it to the public pool (`pool`). A lead found to be the same person as
//! another is `merged` into it (`merge`), which can be undone.

use serde_json::json;

use crate::bus::Envelope;
use crate::clock::{new_id, now_ms};
use crate::messages::{
    AssignmentAccepted, AssignmentRejected, FirstContactBreached, LeadAssigned, LeadEscalated, LeadReleased,
    SlaBreached,
};
use crate::repo::history::{self, Entry};
use crate::store::bulk::{self, Value};
use crate::store::{Outbox, Tx};

mod merge;
mod pool;
pub use merge::{MergeOutcome, merge, undo_last_merge};
pub use pool::{SalesStep, advance, claim, give_back, hand_over, record_activity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentState {
    Offered,
    Accepted,
    Rejected,
    Expired,
    /// Ended because its lead was merged into a lead someone else owns, or because
    /// its assignee was switched off (the lead went to the next owner).
    Withdrawn,
    /// Ended because the lead went back to the public pool (given back or recycled).
    Released,
}

impl AssignmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentState::Offered => "offered",
            AssignmentState::Accepted => "accepted",
            AssignmentState::Rejected => "rejected",
            AssignmentState::Expired => "expired",
            AssignmentState::Withdrawn => "withdrawn",
            AssignmentState::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Offered,
            Self::Accepted,
            Self::Rejected,
            Self::Expired,
            Self::Withdrawn,
            Self::Released,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeadStatus {
    New,
    Assigned,
    Accepted,
    Rerouting,
    Pool,
    /// Found to be the same person as another lead, which now holds everything.
    Merged,
}

impl LeadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::Assigned => "assigned",
            LeadStatus::Accepted => "accepted",
            LeadStatus::Rerouting => "rerouting",
            LeadStatus::Pool => "pool",
            LeadStatus::Merged => "merged",
        }
    }
}

/// Why an offer goes to someone: a first routing, the next SDR after a rejection or a
/// breach, or an escalation to the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferKind {
    Offer,
    Escalation,
}

impl OfferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferKind::Offer => "offer",
            OfferKind::Escalation => "escalation",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("the {0} changed meanwhile")]
    Conflict(&'static str),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("only the assignee may do this")]
    NotAssignee,
    #[error("the assignment is {0}")]
    WrongState(String),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// One offer to make: the lead must be unowned (new, rerouting or in the pool).
#[derive(Debug, Clone)]
pub struct Offer {
    pub tenant_id: String,
    pub lead_id: String,
    pub staff_id: String,
    pub reason: String,
    pub kind: OfferKind,
    /// Offers made for this lead since it was last routed afresh (0 for the first).
    pub hop: i64,
    /// When the accept window closes (epoch ms); `None` for no SLA.
    pub due_at: Option<i64>,
    /// By when the owner must first contact the lead (epoch ms); `None` for no
    /// first-contact SLA.
    pub first_contact_due_at: Option<i64>,
    pub decision_id: Option<String>,
}

/// Makes every offer, with one statement per table. Fails with a conflict when any
/// lead was given an owner since the caller read it (another router replica): the
/// caller's transaction must then roll back and the work be redone.
pub async fn offer_many(tx: &mut Tx, actor: &str, offers: &[Offer]) -> Result<Vec<String>, LifecycleError> {
    if offers.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let ids: Vec<String> = offers.iter().map(|_| new_id()).collect();
    let claims: Vec<Vec<Value>> = offers
        .iter()
        .map(|o| {
            vec![
                Value::from(&o.tenant_id),
                Value::from(&o.lead_id),
                Value::from(&o.staff_id),
            ]
        })
        .collect();
    let claimed = bulk::update_from_values(
        tx,
        "leads",
        "owner_id = v.column3, status = 'assigned', updated_at = $1",
        "leads.tenant_id = v.column1 AND leads.id = v.column2 AND leads.owner_id IS NULL",
        &[Value::from(now)],
        &claims,
    )
    .await?;
    if claimed != offers.len() as u64 {
        return Err(LifecycleError::Conflict("lead"));
    }
    let assignments: Vec<Vec<Value>> = offers
        .iter()
        .zip(&ids)
        .map(|(o, id)| {
            vec![
                Value::from(id),
                Value::from(&o.tenant_id),
                Value::from(&o.lead_id),
                Value::from(&o.staff_id),
                Value::from(AssignmentState::Offered.as_str()),
                Value::from(&o.reason),
                Value::from(o.due_at),
                Value::from(o.first_contact_due_at),
                Value::from(o.hop),
                Value::from(o.kind.as_str()),
                Value::from(now),
                Value::from(now),
            ]
        })
        .collect();
    bulk::insert(
        tx,
        "assignments",
        &[
            "id",
            "tenant_id",
            "lead_id",
            "staff_id",
            "state",
            "reason",
            "sla_due_at",
            "first_contact_due_at",
            "hop",
            "kind",
            "created_at",
            "updated_at",
        ],
        &assignments,
        "",
    )
    .await?;
    let timers: Vec<Vec<Value>> = offers
        .iter()
        .zip(&ids)
        .filter_map(|(o, id)| {
            o.due_at.map(|due| {
                vec![
                    Value::from(id),
                    Value::from(&o.tenant_id),
                    Value::from(&o.lead_id),
                    Value::from(due),
                ]
            })
        })
        .collect();
    bulk::insert(
        tx,
        "sla_timers",
        &["assignment_id", "tenant_id", "lead_id", "due_at"],
        &timers,
        "",
    )
    .await?;
    let entries = offers
        .iter()
        .zip(&ids)
        .map(|(o, id)| Entry {
            tenant_id: &o.tenant_id,
            lead_id: &o.lead_id,
            kind: match o.kind {
                OfferKind::Offer => "assigned",
                OfferKind::Escalation => "escalated",
            },
            detail: json!({
                "assignment_id": id, "owner_id": o.staff_id, "reason": o.reason, "hop": o.hop,
                "sla_due_at_ms": o.due_at, "decision_id": o.decision_id,
            }),
        })
        .collect();
    history::record_many(tx, actor, entries).await?;
    let mut events = Vec::with_capacity(offers.len() * 2);
    for (o, id) in offers.iter().zip(&ids) {
        if o.kind == OfferKind::Escalation {
            events.push(Envelope::new(
                &o.tenant_id,
                &LeadEscalated {
                    lead_id: o.lead_id.clone(),
                    manager_id: o.staff_id.clone(),
                    assignment_id: id.clone(),
                },
            ));
        }
        events.push(Envelope::new(
            &o.tenant_id,
            &LeadAssigned {
                assignment_id: id.clone(),
                lead_id: o.lead_id.clone(),
                staff_id: o.staff_id.clone(),
                reason: o.reason.clone(),
                sla_due_at_ms: o.due_at,
            },
        ));
    }
    Outbox::add_many(tx, &events).await?;
    Ok(ids)
}

/// One lead to release to the public pool, and why.
#[derive(Debug, Clone)]
pub struct Release {
    pub tenant_id: String,
    pub lead_id: String,
    pub reason: String,
}

/// Puts unowned leads in the public pool (owned ones are left alone: someone got
/// them meanwhile).
pub async fn release_many(tx: &mut Tx, actor: &str, releases: &[Release]) -> Result<(), LifecycleError> {
    if releases.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let rows: Vec<Vec<Value>> = releases
        .iter()
        .map(|r| vec![Value::from(&r.tenant_id), Value::from(&r.lead_id)])
        .collect();
    bulk::update_from_values(
        tx,
        "leads",
        "status = 'pool', updated_at = $1",
        "leads.tenant_id = v.column1 AND leads.id = v.column2 AND leads.owner_id IS NULL",
        &[Value::from(now)],
        &rows,
    )
    .await?;
    let entries = releases
        .iter()
        .map(|r| Entry {
            tenant_id: &r.tenant_id,
            lead_id: &r.lead_id,
            kind: "released",
            detail: json!({"reason": r.reason}),
        })
        .collect();
    history::record_many(tx, actor, entries).await?;
    let events: Vec<Envelope> = releases
        .iter()
        .map(|r| {
            Envelope::new(
                &r.tenant_id,
                &LeadReleased {
                    lead_id: r.lead_id.clone(),
                    reason: r.reason.clone(),
                },
            )
        })
        .collect();
    Outbox::add_many(tx, &events).await?;
    Ok(())
}

/// An assignment as the lifecycle needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssignmentRow {
    pub id: String,
    pub lead_id: String,
    pub staff_id: String,
    pub state: String,
    pub hop: i64,
    pub kind: String,
    pub sla_due_at: Option<i64>,
    pub updated_at: i64,
}

pub async fn assignment(tx: &mut Tx, tenant_id: &str, id: &str) -> sqlx::Result<Option<AssignmentRow>> {
    sqlx::query_as(
        "SELECT id, lead_id, staff_id, state, hop, kind, sla_due_at, updated_at FROM assignments WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Moves an offered assignment to `to`, guarded on its still being offered. True when
/// this call made the change.
async fn close_offer(tx: &mut Tx, tenant_id: &str, id: &str, to: AssignmentState, now: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE assignments SET state = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4 AND state = 'offered'",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(tenant_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM sla_timers WHERE assignment_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// The assignee takes the lead; the accept clock stops. Accepting twice answers the
/// first acceptance. Returns the assignment as it now is.
pub async fn accept(tx: &mut Tx, tenant_id: &str, id: &str, staff_id: &str) -> Result<AssignmentRow, LifecycleError> {
    let found = assignment(tx, tenant_id, id)
        .await?
        .ok_or(LifecycleError::NotFound("assignment"))?;
    if found.staff_id != staff_id {
        return Err(LifecycleError::NotAssignee);
    }
    match AssignmentState::parse(&found.state) {
        Some(AssignmentState::Accepted) => return Ok(found),
        Some(AssignmentState::Offered) => {}
        _ => return Err(LifecycleError::WrongState(found.state)),
    }
    let now = now_ms();
    // Of concurrent accepts (or an accept racing the SLA timer) only the first
    // changes anything: PostgreSQL re-checks the guard once the other commits.
    if !close_offer(tx, tenant_id, id, AssignmentState::Accepted, now).await? {
        return Err(LifecycleError::Conflict("assignment"));
    }
    sqlx::query(
        "UPDATE leads SET status = 'accepted', updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND owner_id = $4",
    )
    .bind(now)
    .bind(tenant_id)
    .bind(&found.lead_id)
    .bind(staff_id)
    .execute(&mut **tx)
    .await?;
    history::record(
        tx,
        tenant_id,
        &found.lead_id,
        "accepted",
        staff_id,
        json!({"assignment_id": id}),
    )
    .await?;
    let event = AssignmentAccepted {
        assignment_id: id.to_string(),
        lead_id: found.lead_id.clone(),
        staff_id: staff_id.to_string(),
    };
    Outbox::add(tx, &Envelope::new(tenant_id, &event)).await?;
    Ok(AssignmentRow {
        state: AssignmentState::Accepted.as_str().into(),
        updated_at: now,
        ..found
    })
}

/// Gives the lead up: it goes back to the router, which offers it to the next owner
/// at once (`assignment.rejected`).
pub async fn reject(
    tx: &mut Tx,
    tenant_id: &str,
    id: &str,
    staff_id: &str,
    reason: &str,
) -> Result<AssignmentRow, LifecycleError> {
    let found = assignment(tx, tenant_id, id)
        .await?
        .ok_or(LifecycleError::NotFound("assignment"))?;
    if found.staff_id != staff_id {
        return Err(LifecycleError::NotAssignee);
    }
    if found.state == AssignmentState::Rejected.as_str() {
        return Ok(found);
    }
    if found.state != AssignmentState::Offered.as_str() {
        return Err(LifecycleError::WrongState(found.state));
    }
    let now = now_ms();
    if !close_offer(tx, tenant_id, id, AssignmentState::Rejected, now).await? {
        return Err(LifecycleError::Conflict("assignment"));
    }
    disown(tx, tenant_id, &found.lead_id, staff_id, now).await?;
    history::record(
        tx,
        tenant_id,
        &found.lead_id,
        "rejected",
        staff_id,
        json!({"assignment_id": id, "reason": reason}),
    )
    .await?;
    let event = AssignmentRejected {
        assignment_id: id.to_string(),
        lead_id: found.lead_id.clone(),
        staff_id: staff_id.to_string(),
        reason: reason.to_string(),
        hop: found.hop,
        kind: found.kind.clone(),
    };
    Outbox::add(tx, &Envelope::new(tenant_id, &event)).await?;
    Ok(AssignmentRow {
        state: AssignmentState::Rejected.as_str().into(),
        updated_at: now,
        ..found
    })
}

/// The accept window closed with the offer still open: the offer expires and the lead
/// goes back to the router (`sla.breached`). False when the assignment was answered
/// meanwhile (nothing changes).
pub async fn expire(tx: &mut Tx, tenant_id: &str, id: &str) -> Result<bool, LifecycleError> {
    let Some(found) = assignment(tx, tenant_id, id).await? else {
        return Ok(false);
    };
    let now = now_ms();
    if found.sla_due_at.is_none_or(|due| due > now)
        || !close_offer(tx, tenant_id, id, AssignmentState::Expired, now).await?
    {
        return Ok(false);
    }
    disown(tx, tenant_id, &found.lead_id, &found.staff_id, now).await?;
    history::record(
        tx,
        tenant_id,
        &found.lead_id,
        "sla_breached",
        "router",
        json!({"assignment_id": id, "owner_id": found.staff_id, "sla_due_at_ms": found.sla_due_at, "late_ms": now - found.sla_due_at.unwrap_or(now)}),
    )
    .await?;
    let event = SlaBreached {
        assignment_id: id.to_string(),
        lead_id: found.lead_id.clone(),
        staff_id: found.staff_id.clone(),
        due_at_ms: found.sla_due_at.unwrap_or(now),
        hop: found.hop,
        kind: found.kind.clone(),
    };
    Outbox::add(tx, &Envelope::new(tenant_id, &event)).await?;
    Ok(true)
}

/// An accepted offer's owner made no first contact by its deadline: the breach is
/// marked once (guarded, so two router processes record it once), written to the
/// lead's history and announced as `sla.first_contact_breached`. False when it was
/// already marked.
pub async fn breach_first_contact(
    tx: &mut Tx,
    tenant_id: &str,
    assignment_id: &str,
    lead_id: &str,
    staff_id: &str,
    due_at_ms: i64,
) -> Result<bool, LifecycleError> {
    let now = now_ms();
    let marked = sqlx::query(
        "UPDATE assignments SET first_contact_breached_at = $1
         WHERE tenant_id = $2 AND id = $3 AND first_contact_breached_at IS NULL",
    )
    .bind(now)
    .bind(tenant_id)
    .bind(assignment_id)
    .execute(&mut **tx)
    .await?;
    if marked.rows_affected() == 0 {
        return Ok(false);
    }
    history::record(
        tx,
        tenant_id,
        lead_id,
        "first_contact_breached",
        "router",
        json!({"assignment_id": assignment_id, "staff_id": staff_id, "due_at": crate::clock::rfc3339(due_at_ms)}),
    )
    .await?;
    let event = FirstContactBreached {
        assignment_id: assignment_id.to_string(),
        lead_id: lead_id.to_string(),
        staff_id: staff_id.to_string(),
        due_at_ms,
    };
    Outbox::add(tx, &Envelope::new(tenant_id, &event)).await?;
    Ok(true)
}

async fn disown(tx: &mut Tx, tenant_id: &str, lead_id: &str, staff_id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE leads SET owner_id = NULL, status = 'rerouting', updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND owner_id = $4",
    )
    .bind(now)
    .bind(tenant_id)
    .bind(lead_id)
    .bind(staff_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back() {
        for state in [
            AssignmentState::Offered,
            AssignmentState::Accepted,
            AssignmentState::Rejected,
            AssignmentState::Expired,
        ] {
            assert_eq!(AssignmentState::parse(state.as_str()), Some(state));
        }
        assert_eq!(AssignmentState::parse("lost"), None);
    }
}
