//! `GET /v1/live-codes/{id}/stats`: scans, unique visitors, client classes, a time
//! series, picks per member against their caps, and captures attributed to the code.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, TimeZone, Utc};
use huoke_shared::auth::{Caller, Role};
use huoke_shared::clock::{now_ms, rfc3339};
use huoke_shared::{ApiError, ApiResult, Infra};
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use crate::admin::load;
use crate::schedule::parse_tz;
use crate::sketch::UniqueSketch;
use crate::tally::HOUR_MS;
use crate::tally_store::visitor_sketches;

#[derive(Deserialize)]
pub struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
    granularity: Option<String>,
}

fn instant(field: &str, value: &Option<String>, default: i64) -> ApiResult<i64> {
    match value {
        None => Ok(default),
        Some(v) => DateTime::parse_from_rfc3339(v)
            .map(|t| t.timestamp_millis())
            .map_err(|_| ApiError::invalid(field, "an RFC 3339 time such as 2026-11-28T00:00:00Z")),
    }
}

pub async fn stats(
    infra: web::Data<Infra>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<StatsQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_any(&[Role::Marketer, Role::Manager])?;
    let row = load(&infra, &caller.tenant_id, &id).await?;
    let now = now_ms();
    let to = instant("to", &query.to, now + 1)?;
    let from = instant("from", &query.from, to - 7 * 86_400_000)?;
    if from >= to {
        return Err(ApiError::invalid("from", "must be before `to`"));
    }
    let bucket_ms: i64 = match query.granularity.as_deref().unwrap_or("day") {
        "hour" => 3_600_000,
        "day" => 86_400_000,
        _ => return Err(ApiError::invalid("granularity", "hour or day")),
    };
    if (to - from) / bucket_ms > 5000 {
        return Err(ApiError::invalid(
            "from",
            "the range holds too many buckets; use a coarser granularity",
        ));
    }
    let pool = infra.store.pool();
    let tenant = caller.tenant_id.as_str();

    // Visitors are sketched per hour (scans tallied per minute), so the range starts
    // at the hour of `from`: every count and every bucket then covers whole hours of
    // visitors, and the answer's `from` says where it started. It ends with the last
    // minute (hour) starting before `to`.
    let from = from - from.rem_euclid(HOUR_MS);
    let (scans,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(scans), 0) AS BIGINT) FROM scan_minutes
         WHERE tenant_id = $1 AND code_id = $2 AND minute >= $3 AND minute < $4",
    )
    .bind(tenant)
    .bind(&row.id)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    let by_client: Vec<(String, i64)> = sqlx::query_as(
        "SELECT client, CAST(SUM(scans) AS BIGINT) FROM scan_minutes WHERE tenant_id = $1 AND code_id = $2 AND minute >= $3 AND minute < $4 GROUP BY client",
    )
    .bind(tenant)
    .bind(&row.id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let by_outcome: Vec<(String, i64)> = sqlx::query_as(
        "SELECT outcome, CAST(SUM(scans) AS BIGINT) FROM scan_minutes WHERE tenant_id = $1 AND code_id = $2 AND minute >= $3 AND minute < $4 GROUP BY outcome",
    )
    .bind(tenant)
    .bind(&row.id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let series: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT CAST((minute - $3) / $5 AS BIGINT) AS bucket, CAST(SUM(scans) AS BIGINT)
         FROM scan_minutes WHERE tenant_id = $1 AND code_id = $2 AND minute >= $3 AND minute < $4 GROUP BY bucket ORDER BY bucket",
    )
    .bind(tenant)
    .bind(&row.id)
    .bind(from)
    .bind(to)
    .bind(bucket_ms)
    .fetch_all(pool)
    .await?;
    let (unique, unique_by_bucket) = unique_visitors(
        visitor_sketches(pool, tenant, &row.id, from, to).await?,
        from,
        bucket_ms,
    );

    // Picks today are counted from the start of the tenant's local day.
    let tz_name: Option<String> = sqlx::query_scalar("SELECT timezone FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_optional(pool)
        .await?;
    let tz = parse_tz(tz_name.as_deref()).unwrap_or(crate::schedule::DEFAULT_TZ);
    let local_midnight = Utc::now()
        .with_timezone(&tz)
        .date_naive()
        .and_time(chrono::NaiveTime::MIN);
    let day_start = tz
        .from_local_datetime(&local_midnight)
        .earliest()
        .map(|t| t.timestamp_millis())
        .unwrap_or(now);
    let picks: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT staff_id, CAST(SUM(CASE WHEN minute >= $3 AND minute < $4 THEN scans ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN minute >= $5 THEN scans ELSE 0 END) AS BIGINT)
         FROM scan_minutes WHERE tenant_id = $1 AND code_id = $2 AND staff_id <> '' AND outcome = 'member' GROUP BY staff_id",
    )
    .bind(tenant)
    .bind(&row.id)
    .bind(from)
    .bind(to)
    .bind(day_start)
    .fetch_all(pool)
    .await?;
    let captures: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM captures WHERE tenant_id = $1 AND live_code = $2 AND created_at >= $3 AND created_at < $4",
    )
    .bind(tenant)
    .bind(&row.code)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;

    let config = row.config()?;
    let members: Vec<_> = config
        .members
        .iter()
        .map(|m| {
            let (range, today) = picks.iter().find(|(s, _, _)| *s == m.staff_id).map(|(_, r, t)| (*r, *t)).unwrap_or((0, 0));
            json!({"staff_id": m.staff_id, "picks": range, "picks_today": today, "daily_limit": m.daily_limit, "online": m.online})
        })
        .collect();
    let mut clients = json!({"wechat": 0, "wecom": 0, "other": 0});
    for (client, n) in by_client {
        clients[client] = json!(n);
    }
    let mut outcomes = json!({"member": 0, "backup": 0, "group": 0, "none": 0});
    for (outcome, n) in by_outcome {
        outcomes[outcome] = json!(n);
    }
    Ok(HttpResponse::Ok().json(json!({
        "code_id": row.id,
        "from": rfc3339(from),
        "to": rfc3339(to),
        "granularity": if bucket_ms == 3_600_000 { "hour" } else { "day" },
        "scans": scans,
        "unique_visitors": unique,
        "by_client": clients,
        "by_outcome": outcomes,
        "series": series.into_iter().map(|(b, n)| json!({"at": rfc3339(from + b * bucket_ms), "scans": n, "unique_visitors": unique_by_bucket.get(&b).copied().unwrap_or(0)})).collect::<Vec<_>>(),
        "members": members,
        "captures": captures,
    })))
}

/// Unique visitors over the whole range and per bucket: the hours' sketches merged.
/// A visitor seen in several hours of a bucket counts once in it.
fn unique_visitors(hours: Vec<(i64, UniqueSketch)>, from: i64, bucket_ms: i64) -> (u64, BTreeMap<i64, u64>) {
    let mut all = UniqueSketch::new();
    let mut buckets: BTreeMap<i64, UniqueSketch> = BTreeMap::new();
    for (hour, sketch) in hours {
        all.merge(&sketch);
        buckets.entry((hour - from) / bucket_ms).or_default().merge(&sketch);
    }
    let per_bucket = buckets.into_iter().map(|(b, s)| (b, s.estimate())).collect();
    (all.estimate(), per_bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(visitors: &[&str]) -> UniqueSketch {
        let mut sketch = UniqueSketch::new();
        for v in visitors {
            sketch.add(v);
        }
        sketch
    }

    #[test]
    fn visitors_of_several_hours_count_once_per_bucket_and_range() {
        let day = 86_400_000;
        let hours = vec![
            (0, sketch_of(&["a", "b"])),
            (HOUR_MS, sketch_of(&["b", "c"])),
            (day, sketch_of(&["a", "d"])),
        ];
        let (all, per_bucket) = unique_visitors(hours, 0, day);
        assert_eq!(all, 4);
        assert_eq!(per_bucket[&0], 3);
        assert_eq!(per_bucket[&1], 2);
    }
}
