//! The scan tallies in the store: adding a flush onto them, folding the one-row-per-
//! scan table of earlier versions into them, and reading visitor sketches back.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use huoke_shared::Infra;
use huoke_shared::store::bulk::{self, Value};
use huoke_shared::store::{Backend, Tx};
use sqlx::{AnyPool, AssertSqlSafe};
use tokio::sync::watch;

use crate::sketch::UniqueSketch;
use crate::tally::{Scan, Tally};

const MINUTE_COLUMNS: &[&str] = &[
    "tenant_id",
    "code_id",
    "minute",
    "staff_id",
    "outcome",
    "client",
    "scans",
    "first_visits",
];
const ADD_ONTO: &str = "ON CONFLICT (tenant_id, code_id, minute, staff_id, outcome, client) DO UPDATE
     SET scans = scan_minutes.scans + excluded.scans, first_visits = scan_minutes.first_visits + excluded.first_visits";

/// Raw rows folded per transaction.
const FOLD_BATCH: usize = 5_000;

fn encode(sketch: &UniqueSketch) -> String {
    BASE64.encode(sketch.to_bytes())
}

fn decode(stored: &str) -> Option<UniqueSketch> {
    UniqueSketch::from_bytes(&BASE64.decode(stored).ok()?)
}

/// Adds a tally onto the stored one, inside the caller's transaction. Rows are
/// touched in key order, so two processes writing at once cannot deadlock.
pub async fn write_tally(tx: &mut Tx, backend: Backend, tally: &Tally) -> anyhow::Result<()> {
    let codes: BTreeMap<_, _> = tally.codes.iter().collect();
    let mut rows: Vec<Vec<Value>> = Vec::new();
    for (code_id, code) in &codes {
        let mut cells: Vec<_> = code.cells.iter().collect();
        cells.sort_by(|a, b| {
            (a.minute, &a.staff_id, a.outcome, a.client).cmp(&(b.minute, &b.staff_id, b.outcome, b.client))
        });
        for cell in cells {
            rows.push(vec![
                code.tenant_id.as_str().into(),
                code_id.as_str().into(),
                cell.minute.into(),
                cell.staff_id.as_str().into(),
                cell.outcome.into(),
                cell.client.into(),
                cell.scans.into(),
                cell.first_visits.into(),
            ]);
        }
    }
    if !rows.is_empty() {
        bulk::insert(tx, "scan_minutes", MINUTE_COLUMNS, &rows, ADD_ONTO).await?;
    }

    let lock = match backend {
        Backend::Postgres => " FOR UPDATE",
        // Writers are serialised by BEGIN IMMEDIATE.
        Backend::Sqlite => "",
    };
    let read = format!("SELECT sketch FROM scan_visitors WHERE tenant_id = $1 AND code_id = $2 AND hour = $3{lock}");
    for (code_id, code) in &codes {
        let hours: BTreeMap<_, _> = code.visitors.iter().collect();
        for (hour, sketch) in hours {
            let created = sqlx::query(
                "INSERT INTO scan_visitors (tenant_id, code_id, hour, sketch) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id, code_id, hour) DO NOTHING",
            )
            .bind(&code.tenant_id)
            .bind(code_id.as_str())
            .bind(*hour)
            .bind(encode(sketch))
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if created == 1 {
                continue;
            }
            let stored: String = sqlx::query_scalar(AssertSqlSafe(read.as_str()))
                .bind(&code.tenant_id)
                .bind(code_id.as_str())
                .bind(*hour)
                .fetch_one(&mut **tx)
                .await?;
            let mut merged = decode(&stored).unwrap_or_else(|| {
                tracing::error!(code = %code_id, hour, "a stored visitor sketch could not be read; starting it afresh");
                UniqueSketch::new()
            });
            merged.merge(sketch);
            sqlx::query("UPDATE scan_visitors SET sketch = $4 WHERE tenant_id = $1 AND code_id = $2 AND hour = $3")
                .bind(&code.tenant_id)
                .bind(code_id.as_str())
                .bind(*hour)
                .bind(encode(&merged))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// The labels a raw row may carry, as the tally's static labels.
fn label(value: &str, known: &[&'static str], otherwise: &'static str) -> &'static str {
    known.iter().find(|k| **k == value).copied().unwrap_or(otherwise)
}

type RawScan = (String, String, Option<String>, String, String, String, i64);

/// Folds the rows of the `scans` table (one per scan, written by earlier versions)
/// into the tallies, deleting each batch in the transaction that adds it, so a row
/// is counted once even with several processes folding at the same time. Answers
/// the rows folded. Whether a scan was a first visit was not kept in those rows:
/// they add scans, not first visits.
pub async fn fold_raw_scans(infra: &Infra) -> anyhow::Result<u64> {
    let mut folded = 0;
    loop {
        let mut tx = infra.store.begin().await?;
        let sql = format!(
            "DELETE FROM scans WHERE id IN (SELECT id FROM scans LIMIT {FOLD_BATCH})
             RETURNING tenant_id, code_id, staff_id, visitor, client, outcome, at"
        );
        let rows: Vec<RawScan> = sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(folded);
        }
        let mut tally = Tally::default();
        for (tenant_id, code_id, staff_id, visitor, client, outcome, at_ms) in &rows {
            tally.add(Scan {
                tenant_id,
                code_id,
                staff_id: staff_id.as_deref(),
                outcome: label(outcome, &["member", "backup", "group", "none"], "none"),
                client: label(client, &["wechat", "wecom", "other"], "other"),
                visitor,
                first_visit: false,
                at_ms: *at_ms,
            });
        }
        write_tally(&mut tx, infra.store.backend(), &tally).await?;
        tx.commit().await?;
        folded += rows.len() as u64;
    }
}

/// How often rows of the one-row-per-scan table are looked for: during a rolling
/// deploy, replicas of the earlier version keep writing them until they stop.
const FOLD_EVERY: Duration = Duration::from_secs(300);

/// Folds raw scan rows now and every [`FOLD_EVERY`] until `stop` turns true (an empty
/// table costs one statement that deletes nothing).
pub async fn keep_folding_raw_scans(infra: Infra, mut stop: watch::Receiver<bool>) {
    loop {
        match fold_raw_scans(&infra).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "scan rows of an earlier version folded into the tallies"),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "folding earlier scan rows failed; will try again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLD_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The code's visitor sketches of the hours starting in `[from_hour, to)`, by hour.
pub async fn visitor_sketches(
    pool: &AnyPool,
    tenant_id: &str,
    code_id: &str,
    from_hour: i64,
    to: i64,
) -> sqlx::Result<Vec<(i64, UniqueSketch)>> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT hour, sketch FROM scan_visitors WHERE tenant_id = $1 AND code_id = $2 AND hour >= $3 AND hour < $4 ORDER BY hour",
    )
    .bind(tenant_id)
    .bind(code_id)
    .bind(from_hour)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(hour, stored)| decode(&stored).map(|sketch| (hour, sketch)))
        .collect())
}
