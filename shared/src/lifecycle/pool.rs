//! After acceptance: the SDR's activities, the sales funnel, the public pool (claim,
//! give back, recycle) and handing a switched-off person's leads to others.
//!
//! Funnel: `accepted` → `contacted` (the first activity does it) → `sql` →
//! `converted` (handed to an account executive) → `won` | `lost`; `disqualified`
//! (with a reason) from `accepted`, `contacted` or `sql`, and `lost` also from `sql`.
//! Each step is guarded on the status it leaves, timed from when the lead entered
//! that status, written to history and announced (`lead.status_changed`).

use serde_json::json;

use crate::bus::Envelope;
use crate::clock::{new_id, now_ms};
use crate::messages::{AssignmentHandedOver, LeadClaimed, LeadReleased, LeadStatusChanged};
use crate::repo::history;
use crate::store::{Outbox, Tx};

use super::{AssignmentState, LeadStatus, LifecycleError};

/// A step of the sales funnel an SDR (or their manager) takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SalesStep {
    Contacted,
    Sql,
    Disqualified,
    Converted,
    Won,
    Lost,
}

impl SalesStep {
    pub const ALL: [SalesStep; 6] = [
        SalesStep::Contacted,
        SalesStep::Sql,
        SalesStep::Disqualified,
        SalesStep::Converted,
        SalesStep::Won,
        SalesStep::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SalesStep::Contacted => "contacted",
            SalesStep::Sql => "sql",
            SalesStep::Disqualified => "disqualified",
            SalesStep::Converted => "converted",
            SalesStep::Won => "won",
            SalesStep::Lost => "lost",
        }
    }

    /// The lead column stamped the first time the lead reaches this step, if any.
    fn reached_column(self) -> Option<&'static str> {
        match self {
            SalesStep::Contacted => None,
            SalesStep::Sql => Some("sql_at"),
            SalesStep::Disqualified => Some("disqualified_at"),
            SalesStep::Converted => Some("converted_at"),
            SalesStep::Won => Some("won_at"),
            SalesStep::Lost => Some("lost_at"),
        }
    }

    pub fn parse(s: &str) -> Option<SalesStep> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }

    /// The statuses this step may be taken from.
    pub fn from(self) -> &'static [&'static str] {
        match self {
            SalesStep::Contacted => &["accepted"],
            SalesStep::Sql => &["contacted"],
            SalesStep::Disqualified => &["accepted", "contacted", "sql"],
            SalesStep::Converted => &["sql"],
            SalesStep::Won => &["converted"],
            SalesStep::Lost => &["sql", "converted"],
        }
    }
}

/// Statuses in which a lead is someone's open work (can be given back, recycled or
/// handed over); later ones are outcomes and stay with their owner.
const OPEN_WORK: [&str; 4] = ["assigned", "accepted", "contacted", "sql"];

#[derive(sqlx::FromRow)]
struct LeadNow {
    status: String,
    owner_id: Option<String>,
    status_changed_at: Option<i64>,
    updated_at: i64,
}

async fn lead_now(tx: &mut Tx, tenant_id: &str, lead_id: &str) -> Result<LeadNow, LifecycleError> {
    sqlx::query_as("SELECT status, owner_id, status_changed_at, updated_at FROM leads WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(lead_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(LifecycleError::NotFound("lead"))
}

/// Takes one funnel step. Returns the status left.
pub async fn advance(
    tx: &mut Tx,
    tenant_id: &str,
    lead_id: &str,
    to: SalesStep,
    actor: &str,
    reason: Option<&str>,
) -> Result<String, LifecycleError> {
    let lead = lead_now(tx, tenant_id, lead_id).await?;
    if !to.from().contains(&lead.status.as_str()) {
        return Err(LifecycleError::WrongState(format!(
            "{} (a lead goes to {} only from {})",
            lead.status,
            to.as_str(),
            to.from().join(" or ")
        )));
    }
    let now = now_ms();
    // The step's own time column, stamped the first time the lead gets there.
    let reached = to
        .reached_column()
        .map(|c| format!(", {c} = COALESCE({c}, $2)"))
        .unwrap_or_default();
    let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE leads SET status = $1, status_changed_at = $2, status_reason = $3, updated_at = $2{reached}
         WHERE tenant_id = $4 AND id = $5 AND status = $6"
    )))
    .bind(to.as_str())
    .bind(now)
    .bind(reason)
    .bind(tenant_id)
    .bind(lead_id)
    .bind(&lead.status)
    .execute(&mut **tx)
    .await?;
    if moved.rows_affected() == 0 {
        return Err(LifecycleError::Conflict("lead"));
    }
    let after_ms = now - lead.status_changed_at.unwrap_or(lead.updated_at);
    history::record(
        tx,
        tenant_id,
        lead_id,
        "status_changed",
        actor,
        json!({"from": lead.status, "to": to.as_str(), "reason": reason, "after_ms": after_ms}),
    )
    .await?;
    let event = LeadStatusChanged {
        lead_id: lead_id.to_string(),
        from: lead.status.clone(),
        to: to.as_str().to_string(),
        reason: reason.map(str::to_string),
        staff_id: lead.owner_id.clone(),
        after_ms: Some(after_ms),
    };
    Outbox::add(tx, &Envelope::new(tenant_id, &event)).await?;
    Ok(lead.status)
}

/// Logs an activity. The first one marks the first contact, and a lead still only
/// `accepted` becomes `contacted`.
pub async fn record_activity(
    tx: &mut Tx,
    tenant_id: &str,
    lead_id: &str,
    staff_id: &str,
    kind: &str,
    body: Option<&str>,
    occurred_at: i64,
) -> Result<String, LifecycleError> {
    let lead = lead_now(tx, tenant_id, lead_id).await?;
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO lead_activities (id, tenant_id, lead_id, staff_id, kind, body, occurred_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(lead_id)
    .bind(staff_id)
    .bind(kind)
    .bind(body)
    .bind(occurred_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE leads SET first_contact_at = COALESCE(first_contact_at, $1),
                last_activity_at = CASE WHEN last_activity_at IS NULL OR last_activity_at < $1 THEN $1 ELSE last_activity_at END
         WHERE tenant_id = $2 AND id = $3",
    )
    .bind(occurred_at)
    .bind(tenant_id)
    .bind(lead_id)
    .execute(&mut **tx)
    .await?;
    history::record(
        tx,
        tenant_id,
        lead_id,
        "activity",
        staff_id,
        json!({"activity_id": id, "kind": kind}),
    )
    .await?;
    if lead.status == LeadStatus::Accepted.as_str() {
        advance(
            tx,
            tenant_id,
            lead_id,
            SalesStep::Contacted,
            staff_id,
            Some("first activity"),
        )
        .await?;
    }
    Ok(id)
}

/// An SDR takes a lead from the public pool: it is theirs, accepted, at once.
/// Returns the new assignment's id. Limits are the caller's to check first.
pub async fn claim(tx: &mut Tx, tenant_id: &str, lead_id: &str, staff_id: &str) -> Result<String, LifecycleError> {
    let now = now_ms();
    let taken = sqlx::query(
        "UPDATE leads SET owner_id = $1, status = $2, status_changed_at = $3, status_reason = NULL, updated_at = $3
         WHERE tenant_id = $4 AND id = $5 AND status = $6 AND owner_id IS NULL",
    )
    .bind(staff_id)
    .bind(LeadStatus::Accepted.as_str())
    .bind(now)
    .bind(tenant_id)
    .bind(lead_id)
    .bind(LeadStatus::Pool.as_str())
    .execute(&mut **tx)
    .await?;
    if taken.rows_affected() == 0 {
        let lead = lead_now(tx, tenant_id, lead_id).await?;
        return Err(LifecycleError::WrongState(format!("{}, not in the pool", lead.status)));
    }
    let assignment_id = new_id();
    sqlx::query(
        "INSERT INTO assignments (id, tenant_id, lead_id, staff_id, state, reason, sla_due_at, hop, kind, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'claimed from the pool', NULL, 0, 'claim', $6, $6)",
    )
    .bind(&assignment_id)
    .bind(tenant_id)
    .bind(lead_id)
    .bind(staff_id)
    .bind(AssignmentState::Accepted.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    history::record(
        tx,
        tenant_id,
        lead_id,
        "claimed",
        staff_id,
        json!({"assignment_id": assignment_id}),
    )
    .await?;
    let event = LeadClaimed {
        lead_id: lead_id.to_string(),
        staff_id: staff_id.to_string(),
        assignment_id: assignment_id.clone(),
    };
    Outbox::add(tx, &Envelope::new(tenant_id, &event)).await?;
    Ok(assignment_id)
}

/// Ends the lead's open assignments in `state` (their SLA clocks stop).
async fn end_open_assignments(
    tx: &mut Tx,
    tenant_id: &str,
    lead_id: &str,
    state: AssignmentState,
    now: i64,
) -> sqlx::Result<()> {
    let open: Vec<String> = sqlx::query_scalar(
        "UPDATE assignments SET state = $1, updated_at = $2
         WHERE tenant_id = $3 AND lead_id = $4 AND state IN ('offered', 'accepted') RETURNING id",
    )
    .bind(state.as_str())
    .bind(now)
    .bind(tenant_id)
    .bind(lead_id)
    .fetch_all(&mut **tx)
    .await?;
    for id in open {
        sqlx::query("DELETE FROM sla_timers WHERE assignment_id = $1")
            .bind(&id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The lead goes back to the public pool: given back by its owner (or a manager),
/// or recycled for want of activity (`recycled`, counted on the lead). Guarded on
/// the owner the caller saw.
pub async fn give_back(
    tx: &mut Tx,
    tenant_id: &str,
    lead_id: &str,
    owner_id: &str,
    actor: &str,
    reason: &str,
    recycled: bool,
) -> Result<(), LifecycleError> {
    let lead = lead_now(tx, tenant_id, lead_id).await?;
    if lead.owner_id.as_deref() != Some(owner_id) || !OPEN_WORK.contains(&lead.status.as_str()) {
        return Err(LifecycleError::WrongState(format!(
            "{}, not open work of this owner",
            lead.status
        )));
    }
    let now = now_ms();
    let released = sqlx::query(
        "UPDATE leads SET owner_id = NULL, status = $1, status_changed_at = $2, status_reason = $3,
                recycle_count = recycle_count + $4, updated_at = $2
         WHERE tenant_id = $5 AND id = $6 AND owner_id = $7 AND status = $8",
    )
    .bind(LeadStatus::Pool.as_str())
    .bind(now)
    .bind(reason)
    .bind(i64::from(recycled))
    .bind(tenant_id)
    .bind(lead_id)
    .bind(owner_id)
    .bind(&lead.status)
    .execute(&mut **tx)
    .await?;
    if released.rows_affected() == 0 {
        return Err(LifecycleError::Conflict("lead"));
    }
    end_open_assignments(tx, tenant_id, lead_id, AssignmentState::Released, now).await?;
    history::record(
        tx,
        tenant_id,
        lead_id,
        if recycled { "recycled" } else { "released" },
        actor,
        json!({"reason": reason, "owner_id": owner_id, "from": lead.status}),
    )
    .await?;
    let event = LeadReleased {
        lead_id: lead_id.to_string(),
        reason: reason.to_string(),
    };
    Outbox::add(tx, &Envelope::new(tenant_id, &event)).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OpenAssignment {
    id: String,
    lead_id: String,
    hop: i64,
    kind: String,
}

/// Someone was switched off: each lead that is their open work loses its owner and
/// goes to the router (`assignment.handed_over`), which offers it to the next
/// eligible person by the rules. Returns the leads handed over.
pub async fn hand_over(
    tx: &mut Tx,
    tenant_id: &str,
    staff_id: &str,
    actor: &str,
) -> Result<Vec<String>, LifecycleError> {
    let open: Vec<OpenAssignment> = sqlx::query_as(
        "SELECT a.id, a.lead_id, a.hop, a.kind FROM assignments a
         JOIN leads l ON l.tenant_id = a.tenant_id AND l.id = a.lead_id
         WHERE a.tenant_id = $1 AND a.staff_id = $2 AND a.state IN ('offered', 'accepted')
           AND l.owner_id = $2 AND l.status IN ('assigned', 'accepted', 'contacted', 'sql')",
    )
    .bind(tenant_id)
    .bind(staff_id)
    .fetch_all(&mut **tx)
    .await?;
    let now = now_ms();
    let mut handed = Vec::with_capacity(open.len());
    for a in open {
        sqlx::query(
            "UPDATE leads SET owner_id = NULL, status = $1, status_changed_at = $2, updated_at = $2
             WHERE tenant_id = $3 AND id = $4 AND owner_id = $5",
        )
        .bind(LeadStatus::Rerouting.as_str())
        .bind(now)
        .bind(tenant_id)
        .bind(&a.lead_id)
        .bind(staff_id)
        .execute(&mut **tx)
        .await?;
        end_open_assignments(tx, tenant_id, &a.lead_id, AssignmentState::Withdrawn, now).await?;
        history::record(
            tx,
            tenant_id,
            &a.lead_id,
            "handed_over",
            actor,
            json!({"assignment_id": a.id, "from": staff_id, "why": "switched off"}),
        )
        .await?;
        let event = AssignmentHandedOver {
            assignment_id: a.id.clone(),
            lead_id: a.lead_id.clone(),
            staff_id: staff_id.to_string(),
            hop: a.hop,
            kind: a.kind,
        };
        Outbox::add(tx, &Envelope::new(tenant_id, &event)).await?;
        handed.push(a.lead_id);
    }
    Ok(handed)
}
