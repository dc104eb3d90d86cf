//! `capture.received` → identity resolution, lead upsert, score → `lead.qualified`.

use huoke_shared::bus::{Envelope, HandlerError};
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::consumer::Effect;
use huoke_shared::messages::{CaptureReceived, LeadQualified};
use huoke_shared::repo::history::{self, Entry};
use huoke_shared::store::bulk::{self, Value};
use huoke_shared::store::{Outbox, Tx};
use std::collections::{HashMap, HashSet};

use serde_json::json;
use sqlx::Row;

use crate::scoring::{Profile, score};

pub struct QualifyCaptures;

/// The identifiers of a capture, strongest first.
fn identities(c: &CaptureReceived) -> Vec<(&'static str, String)> {
    let mut ids = Vec::new();
    if let Some(v) = &c.wechat.unionid {
        ids.push(("unionid", v.clone()));
    }
    if let Some(v) = &c.wechat.external_userid {
        ids.push(("external_userid", v.clone()));
    }
    if let Some(v) = &c.phone {
        ids.push(("phone", v.clone()));
    }
    if let Some(v) = &c.email {
        ids.push(("email", v.clone()));
    }
    if let Some(v) = &c.wechat.openid {
        ids.push(("openid", v.clone()));
    }
    ids
}
async fn history(
    tx: &mut Tx,
    tenant_id: &str,
    lead_id: &str,
    kind: &str,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    huoke_shared::repo::history::record(tx, tenant_id, lead_id, kind, "qualify", detail).await
}

#[async_trait::async_trait]
impl Effect for QualifyCaptures {
    type Scratch = ();

    fn consumer(&self) -> &'static str {
        "qualify.captures"
    }

    async fn apply(&self, tx: &mut Tx, envelope: &Envelope, _: &mut ()) -> Result<(), HandlerError> {
        let capture: CaptureReceived = envelope.decode()?;
        let tenant = envelope.tenant_id.as_str();
        let ids = identities(&capture);
        if ids.is_empty() {
            return Err(HandlerError::Reject(format!(
                "capture {} has no identity",
                capture.capture_id
            )));
        }

        // Which leads already own any of these identifiers? The oldest wins.
        let mut matches: Vec<String> = Vec::new();
        for (kind, value) in &ids {
            let found: Option<String> = sqlx::query_scalar(
                "SELECT lead_id FROM lead_identities WHERE tenant_id = $1 AND kind = $2 AND value = $3",
            )
            .bind(tenant)
            .bind(*kind)
            .bind(value)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(id) = found
                && !matches.contains(&id)
            {
                matches.push(id);
            }
        }
        matches.sort();
        let Some(lead_id) = matches.first().cloned() else {
            // Someone seen for the first time: the same path as a batch of them.
            return Self::create_leads(tx, &[Item { envelope, capture, ids }]).await;
        };
        let now = now_ms();

        // Fill gaps only: what a person told us first is not overwritten by a later form.
        sqlx::query(
            "UPDATE leads SET name = COALESCE(name, $1), company = COALESCE(company, $2), title = COALESCE(title, $3),
                    phone = COALESCE(phone, $4), email = COALESCE(email, $5), updated_at = $6
             WHERE tenant_id = $7 AND id = $8",
        )
        .bind(&capture.name)
        .bind(&capture.company)
        .bind(&capture.title)
        .bind(&capture.phone)
        .bind(&capture.email)
        .bind(now)
        .bind(tenant)
        .bind(&lead_id)
        .execute(&mut **tx)
        .await?;
        if matches.len() > 1 {
            history(
                tx,
                tenant,
                &lead_id,
                "possible_duplicate",
                json!({"other_leads": &matches[1..]}),
            )
            .await?;
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

        sqlx::query(
            "INSERT INTO lead_touches (id, tenant_id, lead_id, capture_id, channel, campaign_id, occurred_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, capture_id) DO NOTHING",
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

        let scored = score(&profile_of(tx, tenant, &lead_id, capture.consent.unwrap_or(false)).await?);
        sqlx::query("UPDATE leads SET score = $1, grade = $2, score_reasons = $3, is_mql = $4, updated_at = $5 WHERE tenant_id = $6 AND id = $7")
            .bind(scored.points)
            .bind(scored.grade)
            .bind(serde_json::to_string(&scored.reasons).map_err(anyhow::Error::from)?)
            .bind(scored.is_mql as i64)
            .bind(now)
            .bind(tenant)
            .bind(&lead_id)
            .execute(&mut **tx)
            .await?;
        history(
            tx,
            tenant,
            &lead_id,
            "matched",
            json!({"capture_id": capture.capture_id, "channel": capture.channel, "matched_on": ids.iter().map(|(k, _)| *k).collect::<Vec<_>>()}),
        )
        .await?;
        history(
            tx,
            tenant,
            &lead_id,
            "scored",
            json!({"score": scored.points, "grade": scored.grade, "reasons": scored.reasons}),
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
    async fn apply_batch(&self, tx: &mut Tx, envelopes: &[&Envelope], scratch: &mut ()) -> Result<(), HandlerError> {
        let mut items = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let capture: CaptureReceived = envelope.decode()?;
            let ids = identities(&capture);
            if ids.is_empty() {
                return Err(HandlerError::Reject(format!(
                    "capture {} has no identity",
                    capture.capture_id
                )));
            }
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
            Self::create_leads(tx, &first_seen).await?;
        }
        for envelope in returning {
            self.apply(tx, envelope, scratch).await?;
        }
        Ok(())
    }
}

/// One decoded capture of a batch.
struct Item<'a> {
    envelope: &'a Envelope,
    capture: CaptureReceived,
    ids: Vec<(&'static str, String)>,
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
            let values: Vec<String> = (0..pairs.len())
                .map(|i| format!("(${}, ${})", 2 + 2 * i, 3 + 2 * i))
                .collect();
            // Row values against a VALUES list: the form both PostgreSQL and SQLite take.
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
    async fn create_leads(tx: &mut Tx, items: &[Item<'_>]) -> Result<(), HandlerError> {
        let now = now_ms();
        let (mut leads, mut identities, mut touches, mut captures) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut entries, mut outgoing) = (Vec::new(), Vec::new());
        let lead_ids: Vec<String> = items.iter().map(|_| new_id()).collect();
        for (item, lead_id) in items.iter().zip(&lead_ids) {
            let (c, tenant) = (&item.capture, item.envelope.tenant_id.as_str());
            let scored = score(&profile_of_capture(c, &item.ids, c.consent.unwrap_or(false)));
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
                Value::from(scored.is_mql as i64),
                Value::from(huoke_shared::lifecycle::LeadStatus::New.as_str()),
                Value::from(now),
                Value::from(now),
            ]);
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
                detail: json!({"score": scored.points, "grade": scored.grade, "reasons": scored.reasons}),
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
            ],
            &touches,
            "ON CONFLICT (tenant_id, capture_id) DO NOTHING",
        )
        .await?;
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

fn profile_of_capture(c: &CaptureReceived, ids: &[(&'static str, String)], consent: bool) -> Profile {
    Profile {
        has_phone: c.phone.is_some(),
        has_email: c.email.is_some(),
        has_wechat: ids
            .iter()
            .any(|(k, _)| matches!(*k, "unionid" | "openid" | "external_userid")),
        has_name: c.name.is_some(),
        has_company: c.company.is_some(),
        has_title: c.title.is_some(),
        touches: 1,
        channels: vec![c.channel.clone()],
        consent,
    }
}

async fn profile_of(tx: &mut Tx, tenant: &str, lead_id: &str, consent: bool) -> sqlx::Result<Profile> {
    let lead = sqlx::query("SELECT name, company, title, phone, email FROM leads WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(lead_id)
        .fetch_one(&mut **tx)
        .await?;
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM lead_identities WHERE tenant_id = $1 AND lead_id = $2")
            .bind(tenant)
            .bind(lead_id)
            .fetch_all(&mut **tx)
            .await?;
    let channels: Vec<String> =
        sqlx::query_scalar("SELECT channel FROM lead_touches WHERE tenant_id = $1 AND lead_id = $2")
            .bind(tenant)
            .bind(lead_id)
            .fetch_all(&mut **tx)
            .await?;
    let present = |col: &str| lead.get::<Option<String>, _>(col).is_some();
    let mut distinct = channels.clone();
    distinct.sort();
    distinct.dedup();
    Ok(Profile {
        has_phone: present("phone"),
        has_email: present("email"),
        has_wechat: kinds
            .iter()
            .any(|k| matches!(k.as_str(), "unionid" | "openid" | "external_userid")),
        has_name: present("name"),
        has_company: present("company"),
        has_title: present("title"),
        touches: channels.len() as u32,
        channels: distinct,
        consent,
    })
}
