//! Reading what a routing decision needs from the store: the tenant's rules, SLA
//! policies, calendar and staff with their current load; the lead's facts.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use huoke_shared::auth::{Role, roles_from_string};
use huoke_shared::repo::versioned::current_version;
use huoke_shared::schedule::{DEFAULT_TZ, Schedule};
use huoke_shared::store::Tx;
use serde_json::{Map, Value};
use sqlx::FromRow;

use crate::decide::{Candidate, World};
use crate::facts::LeadFacts;
use crate::rules::RuleSet;
use crate::sla::SlaPolicies;

/// A tenant's routing state, read once per transaction.
pub struct Tenant {
    pub tz: Tz,
    pub rules: RuleSet,
    pub rules_version: i64,
    pub sla: SlaPolicies,
    pub sla_version: i64,
    pub calendar: Option<Schedule>,
    pub staff: BTreeMap<String, Candidate>,
    pub teams: BTreeMap<String, Vec<String>>,
    pub managers: BTreeMap<String, String>,
}

impl Tenant {
    pub fn world(&self, now: DateTime<Utc>) -> World<'_> {
        World {
            now,
            tenant_tz: self.tz,
            calendar: self.calendar.as_ref(),
            rules: &self.rules,
            staff: &self.staff,
            teams: &self.teams,
        }
    }

    /// Counts an offer just made, so later decisions in the same batch see it.
    pub fn count_offer(&mut self, staff_id: &str) {
        if let Some(c) = self.staff.get_mut(staff_id) {
            c.open += 1;
            c.today += 1;
        }
    }

    /// The manager of `staff_id`'s team, when there is one.
    pub fn manager_of(&self, staff_id: &str) -> Option<&str> {
        let team = self.staff.get(staff_id)?.team_id.as_deref()?;
        self.managers.get(team).map(String::as_str)
    }
}

#[derive(FromRow)]
struct StaffRow {
    id: String,
    roles: String,
    team_id: Option<String>,
    capacity: Option<i64>,
    daily_cap: Option<i64>,
    timezone: String,
    working_hours: Option<String>,
    active: i64,
}

pub async fn load_tenant(tx: &mut Tx, tenant_id: &str, now: DateTime<Utc>) -> anyhow::Result<Tenant> {
    let tz_name: Option<String> = sqlx::query_scalar("SELECT timezone FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
    let tz = tz_name.and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_TZ);
    let (rules_version, rules) = match current_version(&mut *tx, "routing_rules", tenant_id).await? {
        Some((v, body)) => (v, serde_json::from_str(&body)?),
        None => (0, RuleSet::default()),
    };
    let (sla_version, sla) = match current_version(&mut *tx, "sla_policies", tenant_id).await? {
        Some((v, body)) => (v, serde_json::from_str(&body)?),
        None => (0, SlaPolicies::default()),
    };
    let calendar: Option<String> = sqlx::query_scalar("SELECT body FROM tenant_calendars WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
    let calendar = calendar.map(|c| serde_json::from_str(&c)).transpose()?;

    let rows: Vec<StaffRow> = sqlx::query_as(
        "SELECT id, roles, team_id, capacity, daily_cap, timezone, working_hours, active FROM staff WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(&mut **tx)
    .await?;
    let open = counts(
        tx,
        "SELECT staff_id, CAST(COUNT(*) AS BIGINT) FROM assignments WHERE tenant_id = $1 AND state IN ('offered', 'accepted') AND created_at >= $2 GROUP BY staff_id",
        tenant_id,
        0,
    )
    .await?;
    let midnight = local_midnight(now, tz);
    let today = counts(
        tx,
        "SELECT staff_id, CAST(COUNT(*) AS BIGINT) FROM assignments WHERE tenant_id = $1 AND created_at >= $2 GROUP BY staff_id",
        tenant_id,
        midnight,
    )
    .await?;
    let mut staff = BTreeMap::new();
    let mut teams: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        let roles = roles_from_string(&row.roles);
        if let Some(team) = &row.team_id {
            teams.entry(team.clone()).or_default().push(row.id.clone());
        }
        staff.insert(
            row.id.clone(),
            Candidate {
                active: row.active != 0,
                is_sdr: roles.contains(&Role::Sdr),
                team_id: row.team_id,
                capacity: row.capacity,
                daily_cap: row.daily_cap,
                open: open.get(&row.id).copied().unwrap_or(0),
                today: today.get(&row.id).copied().unwrap_or(0),
                // Working hours that do not parse (older, looser data) do not restrict.
                hours: row.working_hours.as_deref().and_then(|w| serde_json::from_str(w).ok()),
                timezone: row.timezone.parse().ok(),
                staff_id: row.id,
            },
        );
    }
    let managers: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, manager_id FROM teams WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(&mut **tx)
            .await?;
    let managers = managers.into_iter().filter_map(|(t, m)| m.map(|m| (t, m))).collect();
    Ok(Tenant {
        tz,
        rules,
        rules_version,
        sla,
        sla_version,
        calendar,
        staff,
        teams,
        managers,
    })
}

async fn counts(tx: &mut Tx, sql: &'static str, tenant_id: &str, since: i64) -> sqlx::Result<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(sql)
        .bind(tenant_id)
        .bind(since)
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Epoch ms of the start of `now`'s local day in `tz`.
pub fn local_midnight(now: DateTime<Utc>, tz: Tz) -> i64 {
    use chrono::TimeZone;
    let date = now.with_timezone(&tz).date_naive();
    tz.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .map_or(now.timestamp_millis(), |t| t.timestamp_millis())
}

/// A lead as routing reads it.
#[derive(Debug, Clone, FromRow)]
pub struct LeadRow {
    pub id: String,
    pub owner_id: Option<String>,
    pub status: String,
    pub grade: String,
    pub score: i64,
    pub channel: String,
    pub company: Option<String>,
    pub company_key: Option<String>,
    pub uscc: Option<String>,
}

pub async fn lead(tx: &mut Tx, tenant_id: &str, lead_id: &str) -> sqlx::Result<Option<LeadRow>> {
    sqlx::query_as(
        "SELECT id, owner_id, status, grade, score, channel, company, company_key, uscc FROM leads WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(lead_id)
    .fetch_optional(&mut **tx)
    .await
}

/// The facts of a lead: its own fields and the attributes of `capture_id` (or of its
/// latest capture).
pub async fn facts(tx: &mut Tx, tenant_id: &str, lead: &LeadRow, capture_id: Option<&str>) -> sqlx::Result<LeadFacts> {
    let payload: Option<String> =
        match capture_id {
            Some(id) => {
                sqlx::query_scalar("SELECT payload FROM captures WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?
            }
            None => sqlx::query_scalar(
                "SELECT payload FROM captures WHERE tenant_id = $1 AND lead_id = $2 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(tenant_id)
            .bind(&lead.id)
            .fetch_optional(&mut **tx)
            .await?,
        };
    let capture: Map<String, Value> = payload
        .and_then(|p| serde_json::from_str::<Value>(&p).ok())
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    let text = |key: &str| capture.get(key).and_then(Value::as_str).map(str::to_string);
    let facts = LeadFacts {
        channel: lead.channel.clone(),
        grade: lead.grade.clone(),
        score: lead.score,
        company: lead.company.clone(),
        campaign_id: text("campaign_id"),
        owner_hint: text("owner_hint"),
        ..LeadFacts::default()
    };
    Ok(match capture.get("attributes") {
        Some(Value::Object(attributes)) => facts.with_attributes(attributes),
        _ => facts,
    })
}

/// The owner of another open lead of the same company (names compared trimmed and
/// case-insensitively), if any.
pub async fn account_owner(tx: &mut Tx, tenant_id: &str, lead: &LeadRow) -> sqlx::Result<Option<String>> {
    // The same company: one unified social credit code, or one normalised name.
    let (key, uscc) = (lead.company_key.as_deref(), lead.uscc.as_deref());
    if key.is_none() && uscc.is_none() {
        return Ok(None);
    }
    sqlx::query_scalar(
        "SELECT owner_id FROM leads
         WHERE tenant_id = $1 AND (company_key = $2 OR uscc = $3) AND owner_id IS NOT NULL AND id <> $4
         ORDER BY updated_at DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(key)
    .bind(uscc)
    .bind(&lead.id)
    .fetch_optional(&mut **tx)
    .await
}

/// Everyone a lead was offered to and who did not take it.
pub async fn tried(tx: &mut Tx, tenant_id: &str, lead_id: &str) -> sqlx::Result<BTreeSet<String>> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT staff_id FROM assignments WHERE tenant_id = $1 AND lead_id = $2 AND state IN ('rejected', 'expired')",
    )
    .bind(tenant_id)
    .bind(lead_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}
