//! Two leads that turn out to be one person become one: the survivor (the older
//! lead, or the one a person chose) takes the other's identities, touches,
//! assignments and history; the merged lead stays, `merged`, pointing at the
//! survivor. Everything moved is written down in `lead_merges`, so the last merge of
//! a lead can be undone exactly.
//!
//! Owners: a survivor with an owner keeps it, and the merged lead's open assignments
//! are withdrawn (one person, one owner). A survivor nobody owns takes the merged
//! lead's owner and status along with its assignments.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::bus::Envelope;
use crate::clock::{new_id, now_ms};
use crate::messages::{LeadMerged, LeadQualified};
use crate::repo::history;
use crate::store::{Outbox, Tx};

use super::{AssignmentState, LeadStatus, LifecycleError};

/// Fields of the survivor a merge fills from the merged lead when the survivor has
/// none: what a person told us through the other channel is not lost.
const FILLABLE: [&str; 6] = ["name", "company", "title", "phone", "email", "uscc"];

#[derive(Debug, Clone, sqlx::FromRow)]
struct LeadState {
    id: String,
    status: String,
    owner_id: Option<String>,
    name: Option<String>,
    company: Option<String>,
    title: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    uscc: Option<String>,
    score: i64,
    grade: String,
    channel: String,
}

impl LeadState {
    fn field(&self, name: &str) -> Option<&String> {
        match name {
            "name" => self.name.as_ref(),
            "company" => self.company.as_ref(),
            "title" => self.title.as_ref(),
            "phone" => self.phone.as_ref(),
            "email" => self.email.as_ref(),
            "uscc" => self.uscc.as_ref(),
            _ => None,
        }
    }
}

/// What a merge moved and changed: enough to put everything back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Moved {
    identities: Vec<(String, String)>,
    touches: Vec<String>,
    history: Vec<String>,
    assignments: Vec<String>,
    /// Assignments of the merged lead ended by the merge, with their state before.
    withdrawn: Vec<(String, String)>,
    /// Survivor fields filled from the merged lead, with the value filled in.
    filled: Vec<(String, String)>,
    merged_status: String,
    merged_owner: Option<String>,
    survivor_status: String,
    survivor_owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeOutcome {
    pub merge_id: String,
    pub survivor_id: String,
    pub merged_id: String,
}

async fn load(tx: &mut Tx, tenant_id: &str, id: &str) -> sqlx::Result<Option<LeadState>> {
    sqlx::query_as(
        "SELECT id, status, owner_id, name, company, title, phone, email, uscc, score, grade, channel
         FROM leads WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

fn is_open(state: &str) -> bool {
    state == AssignmentState::Offered.as_str() || state == AssignmentState::Accepted.as_str()
}

/// Merges `merged_id` into `survivor_id`. `reason` says why (the shared identities,
/// or who asked); `actor` is who did it (`qualify`, or a staff id).
pub async fn merge(
    tx: &mut Tx,
    tenant_id: &str,
    survivor_id: &str,
    merged_id: &str,
    actor: &str,
    reason: serde_json::Value,
) -> Result<MergeOutcome, LifecycleError> {
    if survivor_id == merged_id {
        return Err(LifecycleError::WrongState("the same lead".into()));
    }
    let now = now_ms();
    // Claim both rows in id order (two merges of the same pair lock alike), each
    // guarded on not being merged already.
    let (first, second) = if survivor_id < merged_id {
        (survivor_id, merged_id)
    } else {
        (merged_id, survivor_id)
    };
    for id in [first, second] {
        let claimed =
            sqlx::query("UPDATE leads SET updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND merged_into IS NULL")
                .bind(now)
                .bind(tenant_id)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        if claimed.rows_affected() == 0 {
            return Err(match load(tx, tenant_id, id).await? {
                None => LifecycleError::NotFound("lead"),
                Some(_) => LifecycleError::WrongState(format!("lead {id} is already merged")),
            });
        }
    }
    let survivor = load(tx, tenant_id, survivor_id)
        .await?
        .ok_or(LifecycleError::NotFound("lead"))?;
    let merged = load(tx, tenant_id, merged_id)
        .await?
        .ok_or(LifecycleError::NotFound("lead"))?;

    let mut moved = Moved {
        merged_status: merged.status.clone(),
        merged_owner: merged.owner_id.clone(),
        survivor_status: survivor.status.clone(),
        survivor_owner: survivor.owner_id.clone(),
        ..Moved::default()
    };
    // Both owned: the merged lead's open assignments end; the survivor's owner stays.
    let assignments: Vec<(String, String)> =
        sqlx::query_as("SELECT id, state FROM assignments WHERE tenant_id = $1 AND lead_id = $2")
            .bind(tenant_id)
            .bind(merged_id)
            .fetch_all(&mut **tx)
            .await?;
    let survivor_owned = survivor.owner_id.is_some();
    for (id, state) in &assignments {
        if survivor_owned && is_open(state) {
            sqlx::query("UPDATE assignments SET state = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4")
                .bind(AssignmentState::Withdrawn.as_str())
                .bind(now)
                .bind(tenant_id)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM sla_timers WHERE assignment_id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            moved.withdrawn.push((id.clone(), state.clone()));
        }
        moved.assignments.push(id.clone());
    }

    moved.identities = sqlx::query_as(
        "UPDATE lead_identities SET lead_id = $1 WHERE tenant_id = $2 AND lead_id = $3 RETURNING kind, value",
    )
    .bind(survivor_id)
    .bind(tenant_id)
    .bind(merged_id)
    .fetch_all(&mut **tx)
    .await?;
    for (table, list) in [
        ("lead_touches", &mut moved.touches),
        ("lead_history", &mut moved.history),
        ("assignments", &mut Vec::new()),
    ] {
        *list = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET lead_id = $1 WHERE tenant_id = $2 AND lead_id = $3 RETURNING id"
        )))
        .bind(survivor_id)
        .bind(tenant_id)
        .bind(merged_id)
        .fetch_all(&mut **tx)
        .await?;
    }
    // They are one now; the survivor's own possible duplicates are found afresh by
    // the next capture.
    sqlx::query("DELETE FROM lead_possible_duplicates WHERE tenant_id = $1 AND (lead_id = $2 OR other_id = $2)")
        .bind(tenant_id)
        .bind(merged_id)
        .execute(&mut **tx)
        .await?;

    for field in FILLABLE {
        if survivor.field(field).is_none()
            && let Some(value) = merged.field(field)
        {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE leads SET {field} = $1 WHERE tenant_id = $2 AND id = $3"
            )))
            .bind(value)
            .bind(tenant_id)
            .bind(survivor_id)
            .execute(&mut **tx)
            .await?;
            moved.filled.push((field.to_string(), value.clone()));
        }
    }
    if !survivor_owned && merged.owner_id.is_some() {
        sqlx::query("UPDATE leads SET owner_id = $1, status = $2 WHERE tenant_id = $3 AND id = $4")
            .bind(&merged.owner_id)
            .bind(&merged.status)
            .bind(tenant_id)
            .bind(survivor_id)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("UPDATE leads SET status = $1, owner_id = NULL, merged_into = $2 WHERE tenant_id = $3 AND id = $4")
        .bind(LeadStatus::Merged.as_str())
        .bind(survivor_id)
        .bind(tenant_id)
        .bind(merged_id)
        .execute(&mut **tx)
        .await?;

    let merge_id = new_id();
    let moved_json = serde_json::to_string(&moved).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO lead_merges (id, tenant_id, survivor_id, merged_id, reason, actor, moved, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&merge_id)
    .bind(tenant_id)
    .bind(survivor_id)
    .bind(merged_id)
    .bind(reason.to_string())
    .bind(actor)
    .bind(moved_json)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    history::record(
        tx,
        tenant_id,
        survivor_id,
        "merged",
        actor,
        json!({"merge_id": merge_id, "merged_id": merged_id, "reason": reason,
               "identities": moved.identities.len(), "touches": moved.touches.len(),
               "assignments": moved.assignments.len(), "withdrawn": moved.withdrawn.len()}),
    )
    .await?;
    history::record(
        tx,
        tenant_id,
        merged_id,
        "merged_into",
        actor,
        json!({"merge_id": merge_id, "survivor_id": survivor_id}),
    )
    .await?;
    let event = LeadMerged {
        survivor_id: survivor_id.to_string(),
        merged_id: merged_id.to_string(),
        merge_id: merge_id.clone(),
        undone: false,
    };
    Outbox::add(tx, &Envelope::new(tenant_id, &event)).await?;
    Ok(MergeOutcome {
        merge_id,
        survivor_id: survivor_id.to_string(),
        merged_id: merged_id.to_string(),
    })
}

#[derive(sqlx::FromRow)]
struct MergeRow {
    id: String,
    merged_id: String,
    moved: String,
}

/// Takes back the latest merge into `survivor_id` that is still in force: what moved
/// goes back, withdrawn acceptances are restored, and a lead left without an owner
/// is routed again (`lead.qualified`). Rows the survivor gained since the merge stay
/// with it.
pub async fn undo_last_merge(
    tx: &mut Tx,
    tenant_id: &str,
    survivor_id: &str,
    actor: &str,
) -> Result<MergeOutcome, LifecycleError> {
    let now = now_ms();
    let row: MergeRow = sqlx::query_as(
        "SELECT id, merged_id, moved FROM lead_merges
         WHERE tenant_id = $1 AND survivor_id = $2 AND undone_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(survivor_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(LifecycleError::NotFound("merge"))?;
    // Guarded: of two undos only one finds the merge still in force.
    let taken =
        sqlx::query("UPDATE lead_merges SET undone_at = $1, undone_by = $2 WHERE id = $3 AND undone_at IS NULL")
            .bind(now)
            .bind(actor)
            .bind(&row.id)
            .execute(&mut **tx)
            .await?;
    if taken.rows_affected() == 0 {
        return Err(LifecycleError::Conflict("merge"));
    }
    let moved: Moved = serde_json::from_str(&row.moved).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    let merged_id = row.merged_id.as_str();

    for (kind, value) in &moved.identities {
        sqlx::query(
            "UPDATE lead_identities SET lead_id = $1 WHERE tenant_id = $2 AND kind = $3 AND value = $4 AND lead_id = $5",
        )
        .bind(merged_id)
        .bind(tenant_id)
        .bind(kind)
        .bind(value)
        .bind(survivor_id)
        .execute(&mut **tx)
        .await?;
    }
    for (table, ids) in [
        ("lead_touches", &moved.touches),
        ("lead_history", &moved.history),
        ("assignments", &moved.assignments),
    ] {
        for id in ids {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET lead_id = $1 WHERE tenant_id = $2 AND id = $3 AND lead_id = $4"
            )))
            .bind(merged_id)
            .bind(tenant_id)
            .bind(id)
            .bind(survivor_id)
            .execute(&mut **tx)
            .await?;
        }
    }
    // An accepted assignment comes back; an offer whose accept window was cut short
    // does not (its timer is gone) — the lead is routed again instead.
    let mut merged_status = moved.merged_status.clone();
    let mut merged_owner = moved.merged_owner.clone();
    for (id, before) in &moved.withdrawn {
        if before == AssignmentState::Accepted.as_str() {
            sqlx::query(
                "UPDATE assignments SET state = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4 AND state = $5",
            )
            .bind(before)
            .bind(now)
            .bind(tenant_id)
            .bind(id)
            .bind(AssignmentState::Withdrawn.as_str())
            .execute(&mut **tx)
            .await?;
        } else {
            merged_status = LeadStatus::New.as_str().to_string();
            merged_owner = None;
        }
    }
    for (field, value) in &moved.filled {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE leads SET {field} = NULL WHERE tenant_id = $1 AND id = $2 AND {field} = $3"
        )))
        .bind(tenant_id)
        .bind(survivor_id)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    }
    // The survivor took the merged lead's owner: that ownership goes back with it.
    if moved.survivor_owner.is_none() && moved.merged_owner.is_some() {
        sqlx::query("UPDATE leads SET owner_id = NULL, status = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(&moved.survivor_status)
            .bind(tenant_id)
            .bind(survivor_id)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "UPDATE leads SET status = $1, owner_id = $2, merged_into = NULL, updated_at = $3 WHERE tenant_id = $4 AND id = $5",
    )
    .bind(&merged_status)
    .bind(&merged_owner)
    .bind(now)
    .bind(tenant_id)
    .bind(merged_id)
    .execute(&mut **tx)
    .await?;

    for (lead, other) in [(survivor_id, merged_id), (merged_id, survivor_id)] {
        history::record(
            tx,
            tenant_id,
            lead,
            "merge_undone",
            actor,
            json!({"merge_id": row.id, "other_id": other}),
        )
        .await?;
    }
    let mut events = vec![Envelope::new(
        tenant_id,
        &LeadMerged {
            survivor_id: survivor_id.to_string(),
            merged_id: merged_id.to_string(),
            merge_id: row.id.clone(),
            undone: true,
        },
    )];
    for id in [survivor_id, merged_id] {
        if let Some(lead) = load(tx, tenant_id, id).await?
            && lead.owner_id.is_none()
            && lead.status == LeadStatus::New.as_str()
        {
            events.push(Envelope::new(
                tenant_id,
                &LeadQualified {
                    lead_id: lead.id.clone(),
                    capture_id: row.id.clone(),
                    is_new_lead: false,
                    score: lead.score,
                    grade: lead.grade.clone(),
                    channel: lead.channel.clone(),
                    owner_hint: None,
                },
            ));
        }
    }
    Outbox::add_many(tx, &events).await?;
    Ok(MergeOutcome {
        merge_id: row.id,
        survivor_id: survivor_id.to_string(),
        merged_id: merged_id.to_string(),
    })
}
