//! `lead.qualified` → assignment → `lead.assigned`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use huoke_shared::Infra;
use huoke_shared::bus::{Envelope, HandlerError};
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::consumer::Effect;
use huoke_shared::messages::{LeadAssigned, LeadQualified};
use huoke_shared::repo::history::{self, Entry};
use huoke_shared::repo::staff;
use huoke_shared::store::bulk::{self, Value, placeholders};
use huoke_shared::store::{Outbox, Tx};
use serde_json::json;

use crate::pick::pick_owner;

pub struct RouteLeads {
    infra: Infra,
    /// Used when the cache is unreachable, so a Redis outage slows nothing down:
    /// rotation is then fair per process instead of across replicas.
    local_cursor: AtomicU64,
}

impl RouteLeads {
    pub fn new(infra: &Infra) -> Self {
        Self {
            infra: infra.clone(),
            local_cursor: AtomicU64::new(rand::random::<u32>() as u64),
        }
    }

    /// The next rotation position for `tenant`: one atomic increment in the cache,
    /// shared by every router replica, so rotation is exact across them.
    async fn next_cursor(&self, tenant: &str) -> u64 {
        let key = format!("router:rr:{tenant}");
        match self.infra.cache.incr(&key, 1, None).await {
            Ok(n) => (n - 1).max(0) as u64,
            Err(err) => {
                tracing::warn!(error = %err, "rotation cursor unavailable in the cache; rotating locally");
                self.local_cursor.fetch_add(1, Ordering::Relaxed)
            }
        }
    }
}

impl RouteLeads {
    /// The owner (or none) of every lead the events name, one read per tenant; a
    /// lead that does not exist is absent. Also loads each tenant's eligible SDRs.
    async fn current_owners(
        &self,
        tx: &mut Tx,
        events: &[(&Envelope, LeadQualified)],
        scratch: &mut Scratch,
    ) -> Result<HashMap<(String, String), Option<String>>, HandlerError> {
        let mut by_tenant: HashMap<&str, Vec<&str>> = HashMap::new();
        for (envelope, event) in events {
            by_tenant.entry(&envelope.tenant_id).or_default().push(&event.lead_id);
        }
        let mut owners = HashMap::new();
        for (tenant, leads) in by_tenant {
            if !scratch.eligible.contains_key(tenant) {
                let sdrs = staff::active_sdrs_in(tx, tenant)
                    .await?
                    .into_iter()
                    .map(|s| s.id)
                    .collect();
                scratch.eligible.insert(tenant.to_string(), sdrs);
            }
            let sql = format!(
                "SELECT id, owner_id FROM leads WHERE tenant_id = $1 AND id IN ({})",
                placeholders(2, leads.len())
            );
            let mut query = sqlx::query_as::<_, (String, Option<String>)>(sqlx::AssertSqlSafe(sql)).bind(tenant);
            for lead in &leads {
                query = query.bind(*lead);
            }
            for (id, owner) in query.fetch_all(&mut **tx).await? {
                owners.insert((tenant.to_string(), id), owner);
            }
        }
        Ok(owners)
    }
}

/// Per transaction: each tenant's eligible SDRs.
#[derive(Default)]
pub struct Scratch {
    eligible: HashMap<String, Vec<String>>,
}

#[async_trait::async_trait]
impl Effect for RouteLeads {
    type Scratch = Scratch;

    fn consumer(&self) -> &'static str {
        "router.leads"
    }

    async fn apply(&self, tx: &mut Tx, envelope: &Envelope, scratch: &mut Scratch) -> Result<(), HandlerError> {
        self.apply_batch(tx, &[envelope], scratch).await
    }

    /// Routes each message in turn (a lead met twice keeps the owner the first gave
    /// it), then writes the batch with one statement per table.
    async fn apply_batch(
        &self,
        tx: &mut Tx,
        envelopes: &[&Envelope],
        scratch: &mut Scratch,
    ) -> Result<(), HandlerError> {
        let mut events = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            events.push((*envelope, envelope.decode::<LeadQualified>()?));
        }
        let owners = self.current_owners(tx, &events, scratch).await?;
        let mut owners: HashMap<(&str, &str), Option<String>> = owners
            .iter()
            .map(|((t, l), o)| ((t.as_str(), l.as_str()), o.clone()))
            .collect();

        let now = now_ms();
        let sla: Duration = self.infra.settings.default_sla;
        let due = now + sla.as_millis() as i64;
        let (mut claims, mut assignments, mut outgoing, mut pooled) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut entries = Vec::new();
        for (envelope, event) in &events {
            let tenant = envelope.tenant_id.as_str();
            let Some(current) = owners.get(&(tenant, event.lead_id.as_str())) else {
                return Err(HandlerError::Reject(format!("lead {} does not exist", event.lead_id)));
            };
            if let Some(owner) = current {
                entries.push(Entry {
                    tenant_id: tenant,
                    lead_id: &event.lead_id,
                    kind: "kept_owner",
                    detail: json!({"owner_id": owner, "capture_id": event.capture_id}),
                });
                continue;
            }
            let eligible = &scratch.eligible[tenant];
            let needs_cursor = event.owner_hint.as_ref().is_none_or(|h| !eligible.contains(h));
            let cursor = if needs_cursor && !eligible.is_empty() {
                self.next_cursor(tenant).await
            } else {
                0
            };
            let Some(pick) = pick_owner(event.owner_hint.as_deref(), eligible, cursor) else {
                tracing::warn!(lead = %event.lead_id, "no active SDR; lead left in the pool");
                pooled.push(vec![Value::from(tenant), Value::from(&event.lead_id)]);
                entries.push(Entry {
                    tenant_id: tenant,
                    lead_id: &event.lead_id,
                    kind: "unassigned",
                    detail: json!({"why": "no active SDR in the tenant"}),
                });
                continue;
            };
            let assignment_id = new_id();
            claims.push(vec![
                Value::from(tenant),
                Value::from(&event.lead_id),
                Value::from(&pick.staff_id),
            ]);
            assignments.push(vec![
                Value::from(&assignment_id),
                Value::from(tenant),
                Value::from(&event.lead_id),
                Value::from(&pick.staff_id),
                Value::from("offered"),
                Value::from(pick.reason),
                Value::from(due),
                Value::from(now),
                Value::from(now),
            ]);
            entries.push(Entry {
                tenant_id: tenant,
                lead_id: &event.lead_id,
                kind: "assigned",
                detail: json!({"assignment_id": assignment_id, "owner_id": pick.staff_id, "reason": pick.reason, "eligible": eligible.len(), "sla_minutes": sla.as_secs() / 60}),
            });
            outgoing.push(Envelope::new(
                tenant,
                &LeadAssigned {
                    assignment_id,
                    lead_id: event.lead_id.clone(),
                    staff_id: pick.staff_id.clone(),
                    reason: pick.reason.to_string(),
                    sla_due_at_ms: Some(due),
                },
            ));
            owners.insert((tenant, event.lead_id.as_str()), Some(pick.staff_id));
        }

        let claimed = bulk::update_from_values(
            tx,
            "leads",
            "owner_id = v.column3, status = 'assigned', updated_at = $1",
            "leads.tenant_id = v.column1 AND leads.id = v.column2 AND leads.owner_id IS NULL",
            &[Value::from(now)],
            &claims,
        )
        .await?;
        if claimed != claims.len() as u64 {
            // Another router replica assigned one of them since we read the owners.
            return Err(HandlerError::Retry("lead assigned concurrently".into()));
        }
        bulk::update_from_values(
            tx,
            "leads",
            "status = 'pool', updated_at = $1",
            "leads.tenant_id = v.column1 AND leads.id = v.column2",
            &[Value::from(now)],
            &pooled,
        )
        .await?;
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
                "created_at",
                "updated_at",
            ],
            &assignments,
            "",
        )
        .await?;
        history::record_many(tx, "router", entries).await?;
        Outbox::add_many(tx, &outgoing).await?;
        Ok(())
    }
}
