//! `lead.assigned` → a row in the assignee's inbox.

use huoke_shared::Infra;
use huoke_shared::bus::{Envelope, Handler, HandlerError};
use huoke_shared::clock::now_ms;
use huoke_shared::messages::LeadAssigned;
use huoke_shared::store::first_delivery;

pub struct ProjectAssignments {
    pub infra: Infra,
}

#[async_trait::async_trait]
impl Handler for ProjectAssignments {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let event: LeadAssigned = envelope.decode()?;
        let mut tx = self.infra.store.begin().await?;
        if !first_delivery(&mut tx, "pool.assignments", &envelope.id).await? {
            return Ok(());
        }
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
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
