//! `capture.received` → one lead per person → scored → `lead.qualified`.
//!
//! A capture whose identities belong to no lead makes a new one. One whose
//! identities belong to one lead adds to it. One whose identities belong to several
//! leads proves they are one person: they are merged into the oldest. Identities are
//! unique per tenant in the store, so two captures of one person racing in two
//! transactions cannot both create a lead — the second finds the first's identity
//! taken and is redone, and then finds the lead.

use huoke_shared::bus::{Envelope, HandlerError};
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::company::company_key;
use huoke_shared::consumer::Effect;
use huoke_shared::lifecycle::{self, LifecycleError};
use huoke_shared::messages::{CaptureReceived, LeadQualified};
use huoke_shared::repo::history::{self, Entry};
use huoke_shared::store::bulk::{self, Value};
use huoke_shared::store::{Outbox, Tx};
use serde_json::{Map, json};
use std::collections::{HashMap, HashSet};

use crate::duplicates::{self, Person};
use crate::engagement::link_visitor;
use crate::facts::{RulesCache, present_fields, rescore};
use crate::identity::{self, Identity};
use crate::scoring::{Event, Facts, score};

pub struct QualifyCaptures;

#[derive(Default)]
pub struct Scratch {
    rules: RulesCache,
}

/// One decoded capture of a batch.
struct Item<'a> {
    envelope: &'a Envelope,
    capture: CaptureReceived,
    ids: Vec<Identity>,
}

fn lifecycle_failure(err: LifecycleError) -> HandlerError {
    match err {
        LifecycleError::Store(err) => err.into(),
        // A lead merged or changed by a concurrent transaction: redo with fresh reads.
        other => HandlerError::Retry(other.to_string()),
    }
}

/// The leads owning any of `ids`, oldest first.
async fn owners(tx: &mut Tx, tenant: &str, ids: &[Identity]) -> sqlx::Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<String> = (0..ids.len())
        .map(|i| format!("(${}, ${})", 2 + 2 * i, 3 + 2 * i))
        .collect();
    // Row values against a VALUES list: the form both PostgreSQL and SQLite take.
    let sql = format!(
        "SELECT l.id FROM leads l WHERE l.tenant_id = $1 AND l.id IN (
             SELECT lead_id FROM lead_identities WHERE tenant_id = $1 AND (kind, value) IN (VALUES {}))
         ORDER BY l.created_at, l.id",
        pairs.join(", ")
    );
    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(tenant);
    for (kind, value) in ids {
        query = query.bind(*kind).bind(value);
    }
    query.fetch_all(&mut **tx).await
}

/// Merges every lead but the first of `leads` into the first.
async fn merge_into_first(
    tx: &mut Tx,
    tenant: &str,
    leads: &[String],
    capture_id: &str,
    ids: &[Identity],
) -> Result<(), HandlerError> {
    let Some((survivor, others)) = leads.split_first() else {
        return Ok(());
    };
    for other in others {
        let shared: Vec<&str> = ids.iter().map(|(kind, _)| *kind).collect();
        lifecycle::merge(
            tx,
            tenant,
            survivor,
            other,
            "qualify",
            json!({"capture_id": capture_id, "identities": shared}),
        )
        .await
        .map_err(lifecycle_failure)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Effect for QualifyCaptures {
    type Scratch = Scratch;

    fn consumer(&self) -> &'static str {
        "qualify.captures"
    }

    async fn apply(&self, tx: &mut Tx, envelope: &Envelope, scratch: &mut Scratch) -> Result<(), HandlerError> {
        let capture: CaptureReceived = envelope.decode()?;
        let tenant = envelope.tenant_id.as_str();
        let ids = identity::of(&capture);
        let found = owners(tx, tenant, &ids).await?;
        let Some(lead_id) = found.first().cloned() else {
            // Someone seen for the first time: the same path as a batch of them.
            return Self::create_leads(tx, &[Item { envelope, capture, ids }], scratch).await;
        };
        merge_into_first(tx, tenant, &found, &capture.capture_id, &ids).await?;
        let now = now_ms();

        // Fill gaps only: what a person told us first is not overwritten by a later form.
        let key = capture.company.as_deref().and_then(company_key);
        sqlx::query(
            "UPDATE leads SET name = COALESCE(name, $1), company = COALESCE(company, $2), title = COALESCE(title, $3),
                    phone = COALESCE(phone, $4), email = COALESCE(email, $5), uscc = COALESCE(uscc, $6),
                    company_key = COALESCE(company_key, $7), consent = CASE WHEN $8 = 1 THEN 1 ELSE consent END,
                    updated_at = $9
             WHERE tenant_id = $10 AND id = $11",
        )
        .bind(&capture.name)
        .bind(&capture.company)
        .bind(&capture.title)
        .bind(&capture.phone)
        .bind(&capture.email)
        .bind(&capture.uscc)
        .bind(&key)
        .bind(i64::from(capture.consent.unwrap_or(false)))
        .bind(now)
        .bind(tenant)
        .bind(&lead_id)
        .execute(&mut **tx)
        .await?;
        if !capture.attributes.is_empty() {
            fill_attributes(tx, tenant, &lead_id, &capture.attributes).await?;
        }

        for (kind, value) in &ids {
            sqlx::query(
                "INSERT INTO lead_identities (tenant_id, kind, value, lead_id, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (tenant_id, kind, value) DO NOTHING",
            )
            .bind(tenant)
            .bind(*kind)
            .bind(value)
            .bind(&lead_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        // An identity another transaction gave a new lead meanwhile (PostgreSQL waited
        // for it to commit): that lead is this person too.
        let late: Vec<String> = owners(tx, tenant, &ids).await?;
        if late.iter().any(|l| *l != lead_id) {
            let mut all = vec![lead_id.clone()];
            all.extend(late.into_iter().filter(|l| *l != lead_id));
            merge_into_first(tx, tenant, &all, &capture.capture_id, &ids).await?;
        }

        if let Some(visitor) = &capture.visitor {
            link_visitor(tx, tenant, visitor, &lead_id, capture.received_at_ms).await?;
        }
        sqlx::query(
            "INSERT INTO lead_touches (id, tenant_id, lead_id, capture_id, channel, campaign_id, occurred_at, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'capture') ON CONFLICT (tenant_id, capture_id) DO NOTHING",
        )
        .bind(new_id())
        .bind(tenant)
        .bind(&lead_id)
        .bind(&capture.capture_id)
        .bind(&capture.channel)
        .bind(&capture.campaign_id)
        .bind(capture.received_at_ms)
        .execute(&mut **tx)
        .await?;

        let person: Person =
            sqlx::query_as("SELECT id, name, company_key, uscc FROM leads WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(&lead_id)
                .fetch_one(&mut **tx)
                .await?;
        duplicates::flag(tx, tenant, &person).await?;

        let (version, rules) = scratch.rules.get(tx, tenant).await?;
        let scored = rescore(tx, tenant, &lead_id, version, &rules, now).await?;
        history::record(
            tx,
            tenant,
            &lead_id,
            "matched",
            "qualify",
            json!({"capture_id": capture.capture_id, "channel": capture.channel, "matched_on": ids.iter().map(|(k, _)| *k).collect::<Vec<_>>()}),
        )
        .await?;
        history::record(
            tx,
            tenant,
            &lead_id,
            "scored",
            "qualify",
            json!({"score": scored.points, "grade": scored.grade, "rules_version": version, "reasons": scored.reasons}),
        )
        .await?;

        sqlx::query(
            "UPDATE captures SET status = 'qualified', lead_id = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(&lead_id)
        .bind(now)
        .bind(tenant)
        .bind(&capture.capture_id)
        .execute(&mut **tx)
        .await?;

        let event = LeadQualified {
            lead_id: lead_id.clone(),
            capture_id: capture.capture_id.clone(),
            is_new_lead: false,
            score: scored.points,
            grade: scored.grade.to_string(),
            channel: capture.channel.clone(),
            owner_hint: capture.owner_hint.clone(),
        };
        Outbox::add(tx, &Envelope::new(tenant, &event)).await?;
        tracing::debug!(lead = %lead_id, capture = %capture.capture_id, score = scored.points, "returning capture qualified");
        Ok(())
    }

    /// The same result as `apply` on each capture in turn: captures of people seen
    /// for the first time (nothing known about any of their identities, and no
    /// earlier capture of the batch sharing one) are created together; the others
    /// then go through `apply` one by one, in order, so they find those new leads.
    async fn apply_batch(
        &self,
        tx: &mut Tx,
        envelopes: &[&Envelope],
        scratch: &mut Scratch,
    ) -> Result<(), HandlerError> {
        let mut items = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let capture: CaptureReceived = envelope.decode()?;
            let ids = identity::of(&capture);
            items.push(Item { envelope, capture, ids });
        }
        let known = Self::known_identities(tx, &items).await?;
        let mut taken: HashSet<(String, String, String)> = HashSet::new();
        let (mut first_seen, mut returning) = (Vec::new(), Vec::new());
        for item in items {
            let keys: Vec<(String, String, String)> = item
                .ids
                .iter()
                .map(|(k, v)| (item.envelope.tenant_id.clone(), k.to_string(), v.clone()))
                .collect();
            if keys.iter().any(|k| known.contains(k) || taken.contains(k)) {
                returning.push(item.envelope);
            } else {
                taken.extend(keys);
                first_seen.push(item);
            }
        }
        if !first_seen.is_empty() {
            Self::create_leads(tx, &first_seen, scratch).await?;
        }
        for envelope in returning {
            self.apply(tx, envelope, scratch).await?;
        }
        Ok(())
    }
}

/// Adds the capture's attributes the lead does not have yet (first answer kept).
async fn fill_attributes(
    tx: &mut Tx,
    tenant: &str,
    lead_id: &str,
    extra: &Map<String, serde_json::Value>,
) -> sqlx::Result<()> {
    let stored: Option<String> = sqlx::query_scalar("SELECT attributes FROM leads WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(lead_id)
        .fetch_one(&mut **tx)
        .await?;
    let mut attributes: Map<String, serde_json::Value> =
        stored.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
    let before = attributes.len();
    for (k, v) in extra {
        attributes.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if attributes.len() == before {
        return Ok(());
    }
    sqlx::query("UPDATE leads SET attributes = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(serde_json::Value::Object(attributes).to_string())
        .bind(tenant)
        .bind(lead_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What scoring knows of a capture that makes a new lead.
fn facts_of_capture(c: &CaptureReceived, ids: &[Identity]) -> Facts {
    Facts {
        fields: present_fields([
            ("name", c.name.as_ref()),
            ("company", c.company.as_ref()),
            ("title", c.title.as_ref()),
            ("phone", c.phone.as_ref()),
            ("email", c.email.as_ref()),
            ("uscc", c.uscc.as_ref()),
            ("channel", Some(&c.channel)),
        ]),
        has_wechat: ids.iter().any(|(k, _)| identity::is_wechat(k)),
        consent: c.consent.unwrap_or(false),
        attributes: c.attributes.clone(),
        events: vec![Event {
            kind: "capture".into(),
            channel: c.channel.clone(),
            at_ms: c.received_at_ms,
        }],
    }
}

impl QualifyCaptures {
    /// Which of the items' identities already belong to a lead: one read per tenant.
    async fn known_identities(tx: &mut Tx, items: &[Item<'_>]) -> sqlx::Result<HashSet<(String, String, String)>> {
        let mut by_tenant: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
        for item in items {
            let pairs = by_tenant.entry(item.envelope.tenant_id.as_str()).or_default();
            pairs.extend(item.ids.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut known = HashSet::new();
        for (tenant, pairs) in by_tenant {
            if pairs.is_empty() {
                continue;
            }
            let values: Vec<String> = (0..pairs.len())
                .map(|i| format!("(${}, ${})", 2 + 2 * i, 3 + 2 * i))
                .collect();
            let sql = format!(
                "SELECT kind, value FROM lead_identities WHERE tenant_id = $1 AND (kind, value) IN (VALUES {})",
                values.join(", ")
            );
            let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql)).bind(tenant);
            for (kind, value) in &pairs {
                query = query.bind(*kind).bind(*value);
            }
            for (kind, value) in query.fetch_all(&mut **tx).await? {
                known.insert((tenant.to_string(), kind, value));
            }
        }
        Ok(known)
    }

    /// Creates one lead per capture — each a person seen for the first time — with
    /// one statement per table.
    async fn create_leads(tx: &mut Tx, items: &[Item<'_>], scratch: &mut Scratch) -> Result<(), HandlerError> {
        let now = now_ms();
        let (mut leads, mut identities, mut touches, mut captures) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut entries, mut outgoing, mut people) = (Vec::new(), Vec::new(), Vec::new());
        let lead_ids: Vec<String> = items.iter().map(|_| new_id()).collect();
        for (item, lead_id) in items.iter().zip(&lead_ids) {
            let (c, tenant) = (&item.capture, item.envelope.tenant_id.as_str());
            let (version, rules) = scratch.rules.get(tx, tenant).await?;
            let scored = score(&rules, &facts_of_capture(c, &item.ids), now);
            let key = c.company.as_deref().and_then(company_key);
            leads.push(vec![
                Value::from(lead_id),
                Value::from(tenant),
                Value::from(&c.name),
                Value::from(&c.company),
                Value::from(&c.title),
                Value::from(&c.phone),
                Value::from(&c.email),
                Value::from(&c.channel),
                Value::from(scored.points),
                Value::from(scored.grade),
                Value::from(serde_json::to_string(&scored.reasons).map_err(anyhow::Error::from)?),
                Value::from(i64::from(scored.is_mql)),
                Value::from(huoke_shared::lifecycle::LeadStatus::New.as_str()),
                Value::from(now),
                Value::from(now),
                Value::from(&key),
                Value::from(&c.uscc),
                Value::from(scored.is_mql.then_some(now)),
                Value::from(now),
                Value::from(version),
                Value::from(
                    (!c.attributes.is_empty()).then(|| serde_json::Value::Object(c.attributes.clone()).to_string()),
                ),
                Value::from(i64::from(c.consent.unwrap_or(false))),
            ]);
            if c.name.is_some() && (key.is_some() || c.uscc.is_some()) {
                people.push((
                    tenant,
                    Person {
                        id: lead_id.clone(),
                        name: c.name.clone(),
                        company_key: key.clone(),
                        uscc: c.uscc.clone(),
                    },
                ));
            }
            for (kind, value) in &item.ids {
                identities.push(vec![
                    Value::from(tenant),
                    Value::from(*kind),
                    Value::from(value),
                    Value::from(lead_id),
                    Value::from(now),
                ]);
            }
            touches.push(vec![
                Value::from(new_id()),
                Value::from(tenant),
                Value::from(lead_id),
                Value::from(&c.capture_id),
                Value::from(&c.channel),
                Value::from(&c.campaign_id),
                Value::from(c.received_at_ms),
                Value::from("capture"),
            ]);
            captures.push(vec![
                Value::from(tenant),
                Value::from(&c.capture_id),
                Value::from(lead_id),
            ]);
            entries.push(Entry {
                tenant_id: tenant,
                lead_id,
                kind: "created",
                detail: json!({"capture_id": c.capture_id, "channel": c.channel, "matched_on": serde_json::Value::Null}),
            });
            entries.push(Entry {
                tenant_id: tenant,
                lead_id,
                kind: "scored",
                detail: json!({"score": scored.points, "grade": scored.grade, "rules_version": version, "reasons": scored.reasons}),
            });
            outgoing.push(Envelope::new(
                tenant,
                &LeadQualified {
                    lead_id: lead_id.clone(),
                    capture_id: c.capture_id.clone(),
                    is_new_lead: true,
                    score: scored.points,
                    grade: scored.grade.to_string(),
                    channel: c.channel.clone(),
                    owner_hint: c.owner_hint.clone(),
                },
            ));
        }
        bulk::insert(
            tx,
            "leads",
            &[
                "id",
                "tenant_id",
                "name",
                "company",
                "title",
                "phone",
                "email",
                "channel",
                "score",
                "grade",
                "score_reasons",
                "is_mql",
                "status",
                "created_at",
                "updated_at",
                "company_key",
                "uscc",
                "mql_at",
                "scored_at",
                "scoring_version",
                "attributes",
                "consent",
            ],
            &leads,
            "",
        )
        .await?;
        let claimed = bulk::insert(
            tx,
            "lead_identities",
            &["tenant_id", "kind", "value", "lead_id", "created_at"],
            &identities,
            "ON CONFLICT (tenant_id, kind, value) DO NOTHING",
        )
        .await?;
        if claimed != identities.len() as u64 {
            // Another capture of one of these people committed first: the batch is
            // run again message by message, and that one finds its lead.
            return Err(HandlerError::Retry("identity claimed concurrently".into()));
        }
        bulk::insert(
            tx,
            "lead_touches",
            &[
                "id",
                "tenant_id",
                "lead_id",
                "capture_id",
                "channel",
                "campaign_id",
                "occurred_at",
                "kind",
            ],
            &touches,
            "ON CONFLICT (tenant_id, capture_id) DO NOTHING",
        )
        .await?;
        for (tenant, person) in &people {
            duplicates::flag(tx, tenant, person).await?;
        }
        for (item, lead_id) in items.iter().zip(&lead_ids) {
            if let Some(visitor) = &item.capture.visitor {
                link_visitor(
                    tx,
                    &item.envelope.tenant_id,
                    visitor,
                    lead_id,
                    item.capture.received_at_ms,
                )
                .await?;
            }
        }
        history::record_many(tx, "qualify", entries).await?;
        bulk::update_from_values(
            tx,
            "captures",
            "status = 'qualified', lead_id = v.column3, updated_at = $1",
            "captures.tenant_id = v.column1 AND captures.id = v.column2",
            &[Value::from(now)],
            &captures,
        )
        .await?;
        Outbox::add_many(tx, &outgoing).await?;
        Ok(())
    }
}
