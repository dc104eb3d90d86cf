//! `lead.qualified` → a routing decision → an offer under the SLA (`lead.assigned`) or
//! a release to the public pool. A lead that already has an owner keeps it.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use huoke_shared::Infra;
use huoke_shared::bus::{Envelope, HandlerError};
use huoke_shared::consumer::Effect;
use huoke_shared::lifecycle::{self, LeadStatus, LifecycleError};
use huoke_shared::messages::LeadQualified;
use huoke_shared::repo::history::{self, Entry};
use huoke_shared::store::Tx;
use serde_json::json;

use crate::routing::{Cursors, Routed, record_decisions, route};
use crate::world::{self, Tenant};

pub struct RouteLeads {
    infra: Infra,
    cursors: Cursors,
}

impl RouteLeads {
    pub fn new(infra: &Infra) -> Self {
        Self {
            infra: infra.clone(),
            cursors: Cursors::new(),
        }
    }
}

/// Per transaction: each tenant's routing state, updated as offers are made.
#[derive(Default)]
pub struct Scratch {
    tenants: HashMap<String, Tenant>,
}

pub fn lifecycle_failure(err: LifecycleError) -> HandlerError {
    match err {
        // Another router replica got there first: roll back and redo.
        LifecycleError::Conflict(_) => HandlerError::Retry(err.to_string()),
        LifecycleError::Store(err) => err.into(),
        other => HandlerError::Reject(other.to_string()),
    }
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
    /// it), then makes every offer and release with one statement per table.
    async fn apply_batch(
        &self,
        tx: &mut Tx,
        envelopes: &[&Envelope],
        scratch: &mut Scratch,
    ) -> Result<(), HandlerError> {
        let now = Utc::now();
        let (mut offers, mut releases, mut decisions, mut kept) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut routed_now: BTreeSet<(String, String)> = BTreeSet::new();
        let no_one_tried = BTreeSet::new();
        for envelope in envelopes {
            let event: LeadQualified = envelope.decode()?;
            let tenant_id = envelope.tenant_id.as_str();
            let Some(lead) = world::lead(tx, tenant_id, &event.lead_id).await? else {
                return Err(HandlerError::Reject(format!("lead {} does not exist", event.lead_id)));
            };
            if lead.status == LeadStatus::Merged.as_str() {
                // Merged since it was qualified: its survivor is routed on its own.
                continue;
            }
            if let Some(owner) = &lead.owner_id {
                kept.push((
                    tenant_id.to_string(),
                    lead.id.clone(),
                    owner.clone(),
                    event.capture_id.clone(),
                ));
                continue;
            }
            if !routed_now.insert((tenant_id.to_string(), lead.id.clone())) {
                // Met again in this batch: it keeps what the first event gave it.
                let owner = offers
                    .iter()
                    .find(|o: &&huoke_shared::lifecycle::Offer| o.tenant_id == tenant_id && o.lead_id == lead.id)
                    .map_or_else(String::new, |o| o.staff_id.clone());
                kept.push((tenant_id.to_string(), lead.id.clone(), owner, event.capture_id.clone()));
                continue;
            }
            if !scratch.tenants.contains_key(tenant_id) {
                let loaded = world::load_tenant(tx, tenant_id, now).await?;
                scratch.tenants.insert(tenant_id.to_string(), loaded);
            }
            let mut facts = world::facts(tx, tenant_id, &lead, Some(&event.capture_id)).await?;
            if facts.owner_hint.is_none() {
                facts.owner_hint = event.owner_hint.clone();
            }
            let account_owner = world::account_owner(tx, tenant_id, &lead).await?;
            let Some(tenant) = scratch.tenants.get_mut(tenant_id) else {
                continue;
            };
            let (routed, decision) = route(
                &self.infra,
                &self.cursors,
                tenant,
                tenant_id,
                &lead.id,
                &facts,
                account_owner.as_deref(),
                &no_one_tried,
                0,
                "qualified",
                now,
            )
            .await;
            decisions.push(decision);
            match routed {
                Routed::Offer(offer) => offers.push(offer),
                Routed::Release(release) => releases.push(release),
            }
        }
        record_decisions(tx, &decisions, now.timestamp_millis()).await?;
        lifecycle::offer_many(tx, "router", &offers)
            .await
            .map_err(lifecycle_failure)?;
        lifecycle::release_many(tx, "router", &releases)
            .await
            .map_err(lifecycle_failure)?;
        let entries = kept
            .iter()
            .map(|(tenant, lead, owner, capture)| Entry {
                tenant_id: tenant,
                lead_id: lead,
                kind: "kept_owner",
                detail: json!({"owner_id": owner, "capture_id": capture}),
            })
            .collect();
        history::record_many(tx, "router", entries).await?;
        Ok(())
    }
}
