//! `lead.assigned` → a row in the assignee's inbox.

use huoke_shared::bus::{Envelope, HandlerError};
use huoke_shared::clock::now_ms;
use huoke_shared::consumer::Effect;
use huoke_shared::messages::LeadAssigned;
use huoke_shared::store::Tx;
use huoke_shared::store::bulk::{self, Value};

pub struct ProjectAssignments;

#[async_trait::async_trait]
impl Effect for ProjectAssignments {
    type Scratch = ();

    fn consumer(&self) -> &'static str {
        "pool.assignments"
    }

    async fn apply(&self, tx: &mut Tx, envelope: &Envelope, _: &mut ()) -> Result<(), HandlerError> {
        let event: LeadAssigned = envelope.decode()?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO inbox_items (assignment_id, tenant_id, staff_id, lead_id, state, sla_due_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'offered', $5, $6, $6) ON CONFLICT (assignment_id) DO NOTHING",
        )
        .bind(&event.assignment_id)
        .bind(&envelope.tenant_id)
        .bind(&event.staff_id)
        .bind(&event.lead_id)
        .bind(event.sla_due_at_ms)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn apply_batch(&self, tx: &mut Tx, envelopes: &[&Envelope], _: &mut ()) -> Result<(), HandlerError> {
        let now = now_ms();
        let mut rows = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let event: LeadAssigned = envelope.decode()?;
            rows.push(vec![
                Value::from(event.assignment_id),
                Value::from(&envelope.tenant_id),
                Value::from(event.staff_id),
                Value::from(event.lead_id),
                Value::from("offered"),
                Value::from(event.sla_due_at_ms),
                Value::from(now),
                Value::from(now),
            ]);
        }
        bulk::insert(
            tx,
            "inbox_items",
            &[
                "assignment_id",
                "tenant_id",
                "staff_id",
                "lead_id",
                "state",
                "sla_due_at",
                "created_at",
                "updated_at",
            ],
            &rows,
            "ON CONFLICT (assignment_id) DO NOTHING",
        )
        .await?;
        Ok(())
    }
}
