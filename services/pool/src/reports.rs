//! Reports over a period of the tenant's local dates (`from`, `to` inclusive, in the
//! tenant's time zone), as JSON or CSV (`format=csv`).
//!
//! - **Funnel** (`GET /v1/reports/funnel?by=channel|campaign|live_code|team`): scans and
//!   captures counted when they happened in the period; leads created in the period,
//!   and how many of those reached MQL, SQL, SAL (converted: handed to an account
//!   executive) and won — a cohort, so the stages of one row are the same leads. A
//!   lead's channel, campaign and live code are its first capture's; its team is its
//!   owner's. Scans belong to a live code and, through it, a campaign; they are not
//!   split by channel or team.
//! - **SLA** (`GET /v1/reports/sla`): offers made in the period, per SDR and per team:
//!   accepted, rejected, breached (let expire), time to accept and time from the offer
//!   to the first contact (median and 90th percentile, seconds).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::error::FieldError;
use huoke_shared::schedule::DEFAULT_TZ;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::AnyPool;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    by: Option<String>,
    format: Option<String>,
}

/// The period as epoch milliseconds `[start, end)` and as the dates asked for.
struct Period {
    from: NaiveDate,
    to: NaiveDate,
    start_ms: i64,
    end_ms: i64,
    timezone: String,
}

async fn period(pool: &AnyPool, tenant_id: &str, q: &ReportQuery) -> ApiResult<Period> {
    let tz_name: Option<String> = sqlx::query_scalar("SELECT timezone FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await?;
    let tz = tz_name.as_deref().and_then(|n| n.parse().ok()).unwrap_or(DEFAULT_TZ);
    let today = Utc::now().with_timezone(&tz).date_naive();
    let date = |field: &str, raw: &Option<String>, default: NaiveDate| -> Result<NaiveDate, FieldError> {
        match raw.as_deref() {
            None => Ok(default),
            Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| FieldError::new(field, "a date, YYYY-MM-DD (the tenant's local date)")),
        }
    };
    let (to, from) = match (
        date("to", &q.to, today),
        date("from", &q.from, today - Duration::days(29)),
    ) {
        (Ok(to), Ok(from)) => (to, from),
        (a, b) => return Err(ApiError::Validation(a.err().into_iter().chain(b.err()).collect())),
    };
    if from > to || (to - from).num_days() > 366 {
        return Err(ApiError::invalid(
            "from",
            "on or before `to`, and at most 366 days before it",
        ));
    }
    let midnight = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| tz.from_local_datetime(&t).earliest())
            .map_or(0, |t| t.timestamp_millis())
    };
    Ok(Period {
        from,
        to,
        start_ms: midnight(from),
        end_ms: midnight(to + Duration::days(1)),
        timezone: tz.name().to_string(),
    })
}

fn wants_csv(q: &ReportQuery) -> ApiResult<bool> {
    match q.format.as_deref() {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(ApiError::invalid("format", "json or csv")),
    }
}

/// A CSV field: quoted when it needs to be, and never read as a formula by a
/// spreadsheet (a leading =, +, - or @ gets a quote mark first).
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn csv_response(name: &str, header: &[&str], rows: Vec<Vec<String>>) -> HttpResponse {
    let mut out = header.join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&row.iter().map(|v| csv_field(v)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("content-disposition", format!("attachment; filename=\"{name}.csv\"")))
        .body(out)
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct FunnelRow {
    pub key: String,
    /// `null` when scans cannot be split this way (by channel or team).
    pub scans: Option<i64>,
    pub captures: i64,
    pub leads: i64,
    pub mql: i64,
    pub sql: i64,
    pub sal: i64,
    pub won: i64,
}

#[derive(sqlx::FromRow)]
struct CohortLead {
    channel: String,
    team: Option<String>,
    campaign_id: Option<String>,
    live_code: Option<String>,
    mql_at: Option<i64>,
    sql_at: Option<i64>,
    converted_at: Option<i64>,
    won_at: Option<i64>,
}

const NONE: &str = "(none)";

/// A capture's channel, its lead's team, campaign and live code.
type CaptureKey = (String, Option<String>, Option<String>, Option<String>);

/// `GET /v1/reports/funnel`
pub async fn funnel(
    infra: web::Data<Infra>,
    caller: Caller,
    query: web::Query<ReportQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Manager, Role::Marketer])?;
    let q = query.into_inner();
    let by = q.by.clone().unwrap_or_else(|| "channel".into());
    if !["channel", "campaign", "live_code", "team"].contains(&by.as_str()) {
        return Err(ApiError::invalid("by", "channel, campaign, live_code or team"));
    }
    let csv = wants_csv(&q)?;
    let pool = infra.store.pool();
    let tenant = caller.tenant_id.as_str();
    let p = period(pool, tenant, &q).await?;
    let key_of = |channel: &str, team: &Option<String>, campaign: &Option<String>, code: &Option<String>| -> String {
        let key = match by.as_str() {
            "channel" => Some(channel.to_string()),
            "campaign" => campaign.clone(),
            "live_code" => code.clone(),
            _ => team.clone(),
        };
        key.unwrap_or_else(|| NONE.to_string())
    };
    let mut rows: BTreeMap<String, FunnelRow> = BTreeMap::new();

    let cohort: Vec<CohortLead> = sqlx::query_as(
        "SELECT l.channel, t.name AS team,
                (SELECT lt.campaign_id FROM lead_touches lt WHERE lt.tenant_id = l.tenant_id AND lt.lead_id = l.id
                   AND lt.kind = 'capture' ORDER BY lt.occurred_at, lt.id LIMIT 1) AS campaign_id,
                (SELECT c.live_code FROM lead_touches lt JOIN captures c ON c.tenant_id = lt.tenant_id AND c.id = lt.capture_id
                   WHERE lt.tenant_id = l.tenant_id AND lt.lead_id = l.id AND lt.kind = 'capture'
                   ORDER BY lt.occurred_at, lt.id LIMIT 1) AS live_code,
                l.mql_at, l.sql_at, l.converted_at, l.won_at
         FROM leads l
         LEFT JOIN staff s ON s.tenant_id = l.tenant_id AND s.id = l.owner_id
         LEFT JOIN teams t ON t.tenant_id = l.tenant_id AND t.id = s.team_id
         WHERE l.tenant_id = $1 AND l.created_at >= $2 AND l.created_at < $3 AND l.merged_into IS NULL",
    )
    .bind(tenant)
    .bind(p.start_ms)
    .bind(p.end_ms)
    .fetch_all(pool)
    .await?;
    for lead in &cohort {
        let row = rows
            .entry(key_of(&lead.channel, &lead.team, &lead.campaign_id, &lead.live_code))
            .or_default();
        row.leads += 1;
        row.mql += i64::from(lead.mql_at.is_some());
        row.sql += i64::from(lead.sql_at.is_some());
        row.sal += i64::from(lead.converted_at.is_some());
        row.won += i64::from(lead.won_at.is_some());
    }

    let captures: Vec<CaptureKey> = sqlx::query_as(
        "SELECT lt.channel, t.name, lt.campaign_id, c.live_code
         FROM lead_touches lt
         LEFT JOIN captures c ON c.tenant_id = lt.tenant_id AND c.id = lt.capture_id
         LEFT JOIN leads l ON l.tenant_id = lt.tenant_id AND l.id = lt.lead_id
         LEFT JOIN staff s ON s.tenant_id = l.tenant_id AND s.id = l.owner_id
         LEFT JOIN teams t ON t.tenant_id = l.tenant_id AND t.id = s.team_id
         WHERE lt.tenant_id = $1 AND lt.kind = 'capture' AND lt.occurred_at >= $2 AND lt.occurred_at < $3",
    )
    .bind(tenant)
    .bind(p.start_ms)
    .bind(p.end_ms)
    .fetch_all(pool)
    .await?;
    for (channel, team, campaign, code) in &captures {
        rows.entry(key_of(channel, team, campaign, code)).or_default().captures += 1;
    }

    let splits_scans = matches!(by.as_str(), "campaign" | "live_code");
    let scans: Vec<(Option<String>, Option<String>, i64)> = sqlx::query_as(
        // Scans are tallied per code and minute (the codes service's `scan_minutes`),
        // read per code through the tallies' key (tenant, code, minute): a minute
        // counts when it starts within the period.
        "SELECT lc.code, lc.campaign_id, CAST(SUM(sm.scans) AS BIGINT) FROM live_codes lc
         JOIN scan_minutes sm ON sm.tenant_id = lc.tenant_id AND sm.code_id = lc.id AND sm.minute >= $2 AND sm.minute < $3
         WHERE lc.tenant_id = $1 GROUP BY lc.code, lc.campaign_id",
    )
    .bind(tenant)
    .bind(p.start_ms)
    .bind(p.end_ms)
    .fetch_all(pool)
    .await?;
    let total_scans: i64 = scans.iter().map(|(_, _, n)| n).sum();
    if splits_scans {
        for (code, campaign, n) in &scans {
            let row = rows.entry(key_of("", &None, campaign, code)).or_default();
            *row.scans.get_or_insert(0) += n;
        }
        for row in rows.values_mut() {
            row.scans.get_or_insert(0);
        }
    }
    let mut rows: Vec<FunnelRow> = rows.into_iter().map(|(key, row)| FunnelRow { key, ..row }).collect();
    rows.sort_by(|a, b| b.leads.cmp(&a.leads).then(a.key.cmp(&b.key)));
    let total = FunnelRow {
        key: "total".into(),
        scans: Some(total_scans),
        captures: rows.iter().map(|r| r.captures).sum(),
        leads: rows.iter().map(|r| r.leads).sum(),
        mql: rows.iter().map(|r| r.mql).sum(),
        sql: rows.iter().map(|r| r.sql).sum(),
        sal: rows.iter().map(|r| r.sal).sum(),
        won: rows.iter().map(|r| r.won).sum(),
    };
    if csv {
        let line = |r: &FunnelRow| {
            vec![
                r.key.clone(),
                r.scans.map(|n| n.to_string()).unwrap_or_default(),
                r.captures.to_string(),
                r.leads.to_string(),
                r.mql.to_string(),
                r.sql.to_string(),
                r.sal.to_string(),
                r.won.to_string(),
            ]
        };
        let mut lines: Vec<Vec<String>> = rows.iter().map(line).collect();
        lines.push(line(&total));
        return Ok(csv_response(
            "funnel",
            &[by.as_str(), "scans", "captures", "leads", "mql", "sql", "sal", "won"],
            lines,
        ));
    }
    Ok(HttpResponse::Ok().json(json!({
        "from": p.from.to_string(), "to": p.to.to_string(), "timezone": p.timezone, "by": by,
        "rows": rows, "total": total,
    })))
}

/// The nearest-rank percentile of sorted values (`p` in 0–1), or `None` for none.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[derive(Debug, Default, Serialize)]
struct SlaRow {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<String>,
    offers: i64,
    accepted: i64,
    rejected: i64,
    breached: i64,
    first_contact_breached: i64,
    accept_median_s: Option<i64>,
    accept_p90_s: Option<i64>,
    first_contact_median_s: Option<i64>,
    first_contact_p90_s: Option<i64>,
    #[serde(skip)]
    accept_ms: Vec<i64>,
    #[serde(skip)]
    contact_ms: Vec<i64>,
}

impl SlaRow {
    fn add(&mut self, o: &Offer) {
        self.offers += 1;
        match o.state.as_str() {
            "accepted" => self.accepted += 1,
            "rejected" => self.rejected += 1,
            "expired" => self.breached += 1,
            _ => {}
        }
        self.first_contact_breached += i64::from(o.first_contact_breached_at.is_some());
        if let Some(at) = o.accepted_at {
            self.accept_ms.push(at - o.created_at);
        }
        if let Some(at) = o
            .first_contact_at
            .filter(|at| *at >= o.created_at && o.accepted_at.is_some())
        {
            self.contact_ms.push(at - o.created_at);
        }
    }

    fn finish(mut self) -> Self {
        self.accept_ms.sort_unstable();
        self.contact_ms.sort_unstable();
        let secs = |v: Option<i64>| v.map(|ms| ms / 1000);
        self.accept_median_s = secs(percentile(&self.accept_ms, 0.5));
        self.accept_p90_s = secs(percentile(&self.accept_ms, 0.9));
        self.first_contact_median_s = secs(percentile(&self.contact_ms, 0.5));
        self.first_contact_p90_s = secs(percentile(&self.contact_ms, 0.9));
        self
    }
}

#[derive(sqlx::FromRow)]
struct Offer {
    staff_id: String,
    name: Option<String>,
    team: Option<String>,
    state: String,
    created_at: i64,
    accepted_at: Option<i64>,
    first_contact_at: Option<i64>,
    first_contact_breached_at: Option<i64>,
}

/// `GET /v1/reports/sla`
pub async fn sla(infra: web::Data<Infra>, caller: Caller, query: web::Query<ReportQuery>) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Manager])?;
    let q = query.into_inner();
    if q.by.is_some() {
        return Err(ApiError::invalid("by", "the SLA report is always by SDR and by team"));
    }
    let csv = wants_csv(&q)?;
    let pool = infra.store.pool();
    let p = period(pool, &caller.tenant_id, &q).await?;
    // An accepted assignment's `updated_at` is when it was accepted (nothing changes
    // it after); claims from the pool are no offers.
    let offers: Vec<Offer> = sqlx::query_as(
        "SELECT a.staff_id, s.name, t.name AS team, a.state, a.created_at,
                CASE WHEN a.state = 'accepted' THEN a.updated_at ELSE NULL END AS accepted_at,
                l.first_contact_at, a.first_contact_breached_at
         FROM assignments a
         LEFT JOIN staff s ON s.tenant_id = a.tenant_id AND s.id = a.staff_id
         LEFT JOIN teams t ON t.tenant_id = a.tenant_id AND t.id = s.team_id
         LEFT JOIN leads l ON l.tenant_id = a.tenant_id AND l.id = a.lead_id
         WHERE a.tenant_id = $1 AND a.created_at >= $2 AND a.created_at < $3 AND a.kind <> 'claim'",
    )
    .bind(&caller.tenant_id)
    .bind(p.start_ms)
    .bind(p.end_ms)
    .fetch_all(pool)
    .await?;
    let mut by_sdr: BTreeMap<String, SlaRow> = BTreeMap::new();
    let mut by_team: BTreeMap<String, SlaRow> = BTreeMap::new();
    for o in &offers {
        let sdr = by_sdr.entry(o.staff_id.clone()).or_insert_with(|| SlaRow {
            key: o.staff_id.clone(),
            team: Some(o.team.clone().unwrap_or_else(|| NONE.into())),
            ..SlaRow::default()
        });
        sdr.add(o);
        let team = o.team.clone().unwrap_or_else(|| NONE.into());
        by_team
            .entry(team.clone())
            .or_insert_with(|| SlaRow {
                key: team,
                ..SlaRow::default()
            })
            .add(o);
    }
    let names: BTreeMap<&str, &str> = offers
        .iter()
        .filter_map(|o| o.name.as_deref().map(|n| (o.staff_id.as_str(), n)))
        .collect();
    let sdrs: Vec<SlaRow> = by_sdr.into_values().map(SlaRow::finish).collect();
    let teams: Vec<SlaRow> = by_team.into_values().map(SlaRow::finish).collect();
    if csv {
        let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        let line = |level: &str, r: &SlaRow, name: &str| {
            vec![
                level.to_string(),
                r.key.clone(),
                name.to_string(),
                r.team.clone().unwrap_or_default(),
                r.offers.to_string(),
                r.accepted.to_string(),
                r.rejected.to_string(),
                r.breached.to_string(),
                r.first_contact_breached.to_string(),
                opt(r.accept_median_s),
                opt(r.accept_p90_s),
                opt(r.first_contact_median_s),
                opt(r.first_contact_p90_s),
            ]
        };
        let mut lines: Vec<Vec<String>> = sdrs
            .iter()
            .map(|r| line("sdr", r, names.get(r.key.as_str()).copied().unwrap_or_default()))
            .collect();
        lines.extend(teams.iter().map(|r| line("team", r, "")));
        return Ok(csv_response(
            "sla",
            &[
                "level",
                "key",
                "name",
                "team",
                "offers",
                "accepted",
                "rejected",
                "breached",
                "first_contact_breached",
                "accept_median_s",
                "accept_p90_s",
                "first_contact_median_s",
                "first_contact_p90_s",
            ],
            lines,
        ));
    }
    let sdr_views: Vec<serde_json::Value> = sdrs
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["staff_id"] = json!(r.key);
            v["name"] = json!(names.get(r.key.as_str()));
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "from": p.from.to_string(), "to": p.to.to_string(), "timezone": p.timezone,
        "sdrs": sdr_views, "teams": teams,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.5), Some(5));
        assert_eq!(percentile(&v, 0.9), Some(9));
        assert_eq!(percentile(&[7], 0.9), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("-1"), "'-1");
    }
}
