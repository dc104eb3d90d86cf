//! Scans are recorded off the request path: the handler drops a record into a
//! bounded channel and returns; a background task writes what has gathered every
//! 100 ms, in one transaction per 2 000 rows: the raw rows (one statement whatever their
//! number, the rows passed as one JSON parameter) and, per tenant, one small
//! `scan.counted` event with the scans counted per code, member, outcome and minute
//! (outbox). What a crash can lose is what sat in the buffer: the scans of at most
//! the last flush interval (0.1 s) plus the batch being written — scan analytics,
//! never a lead; the cap counters and sticky picks are already in the cache.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use huoke_shared::Infra;
use huoke_shared::bus::Envelope;
use huoke_shared::clock::new_id;
use huoke_shared::messages::{ScanCount, ScansCounted};
use huoke_shared::store::Outbox;
use huoke_shared::store::bulk::{JsonColumn, insert_json_rows};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::snapshot::Snapshot;

const BUFFER: usize = 100_000;
/// Rows per transaction.
const BATCH: usize = 2_000;
/// Short, so the writes come in small, even portions rather than bursts that the
/// scans on the same cores feel as latency (and a crash loses less).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
const MINUTE_MS: i64 = 60_000;

/// One scan, as the handler hands it over: the code's snapshot is shared, not copied.
#[derive(Debug, Clone)]
pub struct ScanRecord {
    pub code: Arc<Snapshot>,
    pub staff_id: Option<String>,
    pub group_index: Option<i64>,
    pub visitor: String,
    pub first_visit: bool,
    pub client: &'static str,
    pub outcome: &'static str,
    pub referer: Option<String>,
    pub at_ms: i64,
}

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<ScanRecord>,
}

impl Recorder {
    pub fn start(infra: Infra, stop: watch::Receiver<bool>) -> (Recorder, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(BUFFER);
        (Recorder { tx }, tokio::spawn(flush_loop(infra, rx, stop)))
    }

    /// Never waits: when the buffer is full the record is counted as dropped.
    pub fn record(&self, record: ScanRecord) {
        if self.tx.try_send(record).is_err() {
            metrics::counter!("huoke_scans_dropped_total").increment(1);
        }
    }
}

async fn flush_loop(infra: Infra, mut rx: mpsc::Receiver<ScanRecord>, mut stop: watch::Receiver<bool>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Gather for a whole interval: one write per interval while scans are few.
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        // Then write everything that gathered, a batch at a time, so the buffer
        // empties at any scan rate the store can take.
        loop {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            let full = batch.len() == BATCH;
            write_with_retries(&infra, &batch).await;
            batch.clear();
            if !full {
                break;
            }
        }
        if stopping {
            return;
        }
    }
}

async fn write_with_retries(infra: &Infra, batch: &[ScanRecord]) {
    // Ids are fixed before the first attempt, so a retry after an unclear failure
    // cannot write a scan twice.
    let rows = match rows_json(batch) {
        Ok(rows) => rows,
        Err(err) => {
            tracing::error!(error = %err, lost = batch.len(), "scan records could not be encoded");
            metrics::counter!("huoke_scans_dropped_total").increment(batch.len() as u64);
            return;
        }
    };
    let counts = count(batch);
    let mut attempt = 0;
    while let Err(err) = write(infra, &rows, &counts).await {
        attempt += 1;
        if attempt >= 5 {
            tracing::error!(error = %err, lost = batch.len(), "scan records could not be written");
            metrics::counter!("huoke_scans_dropped_total").increment(batch.len() as u64);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
    metrics::counter!("huoke_scans_recorded_total").increment(batch.len() as u64);
}

#[derive(Serialize)]
struct Row<'a> {
    id: String,
    tenant_id: &'a str,
    code_id: &'a str,
    staff_id: Option<&'a str>,
    group_index: Option<i64>,
    visitor: &'a str,
    client: &'a str,
    referer: Option<&'a str>,
    outcome: &'a str,
    at: i64,
}

const COLUMNS: &[JsonColumn] = &[
    JsonColumn::Text("id"),
    JsonColumn::Text("tenant_id"),
    JsonColumn::Text("code_id"),
    JsonColumn::Text("staff_id"),
    JsonColumn::Int("group_index"),
    JsonColumn::Text("visitor"),
    JsonColumn::Text("client"),
    JsonColumn::Text("referer"),
    JsonColumn::Text("outcome"),
    JsonColumn::Int("at"),
];

fn rows_json(batch: &[ScanRecord]) -> serde_json::Result<String> {
    let rows: Vec<Row<'_>> = batch
        .iter()
        .map(|r| Row {
            id: new_id(),
            tenant_id: &r.code.tenant_id,
            code_id: &r.code.id,
            staff_id: r.staff_id.as_deref(),
            group_index: r.group_index,
            visitor: &r.visitor,
            client: r.client,
            referer: r.referer.as_deref(),
            outcome: r.outcome,
            at: r.at_ms,
        })
        .collect();
    serde_json::to_string(&rows)
}

/// Per tenant: the batch counted per code, member, outcome and minute.
fn count(batch: &[ScanRecord]) -> BTreeMap<String, Vec<ScanCount>> {
    type Key<'a> = (&'a str, &'a str, Option<&'a str>, &'static str, i64);
    let mut counts: BTreeMap<Key<'_>, (u32, u32)> = BTreeMap::new();
    for r in batch {
        let minute = r.at_ms - r.at_ms.rem_euclid(MINUTE_MS);
        let key = (
            r.code.tenant_id.as_str(),
            r.code.id.as_str(),
            r.staff_id.as_deref(),
            r.outcome,
            minute,
        );
        let entry = counts.entry(key).or_default();
        entry.0 += 1;
        entry.1 += u32::from(r.first_visit);
    }
    let mut by_tenant: BTreeMap<String, Vec<ScanCount>> = BTreeMap::new();
    for ((tenant, code_id, staff_id, outcome, minute_ms), (scans, first_visits)) in counts {
        by_tenant.entry(tenant.to_string()).or_default().push(ScanCount {
            code_id: code_id.to_string(),
            staff_id: staff_id.map(str::to_string),
            outcome: outcome.to_string(),
            minute_ms,
            scans,
            first_visits,
        });
    }
    by_tenant
}

async fn write(infra: &Infra, rows: &str, counts: &BTreeMap<String, Vec<ScanCount>>) -> anyhow::Result<()> {
    let mut tx = infra.store.begin().await?;
    insert_json_rows(
        &mut tx,
        infra.store.backend(),
        "scans",
        COLUMNS,
        "ON CONFLICT (id) DO NOTHING",
        rows.to_string(),
    )
    .await?;
    for (tenant, counts) in counts {
        let event = ScansCounted { counts: counts.clone() };
        Outbox::add(&mut tx, &Envelope::new(tenant, &event)).await?;
    }
    tx.commit().await?;
    infra.kick_outbox();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(code: &Arc<Snapshot>, staff: Option<&str>, at_ms: i64, first_visit: bool) -> ScanRecord {
        ScanRecord {
            code: code.clone(),
            staff_id: staff.map(str::to_string),
            group_index: None,
            visitor: "v".into(),
            first_visit,
            client: "other",
            outcome: if staff.is_some() { "member" } else { "none" },
            referer: None,
            at_ms,
        }
    }

    #[test]
    fn a_batch_is_counted_per_code_member_outcome_and_minute() {
        let code = Arc::new(Snapshot::for_tests("t1", "c1"));
        let batch = [
            record(&code, Some("s1"), 60_000, true),
            record(&code, Some("s1"), 119_999, false),
            record(&code, Some("s1"), 120_000, true),
            record(&code, Some("s2"), 60_001, true),
            record(&code, None, 60_002, false),
        ];
        let counts = count(&batch);
        let t1 = &counts["t1"];
        let find = |staff: Option<&str>, minute: i64| {
            t1.iter()
                .find(|c| c.staff_id.as_deref() == staff && c.minute_ms == minute)
                .map(|c| (c.scans, c.first_visits))
        };
        assert_eq!(find(Some("s1"), 60_000), Some((2, 1)));
        assert_eq!(find(Some("s1"), 120_000), Some((1, 1)));
        assert_eq!(find(Some("s2"), 60_000), Some((1, 1)));
        assert_eq!(find(None, 60_000), Some((1, 0)));
        assert_eq!(t1.iter().map(|c| c.scans).sum::<u32>(), 5);
    }

    #[test]
    fn rows_carry_every_column_by_name() {
        let code = Arc::new(Snapshot::for_tests("t1", "c1"));
        let json = rows_json(&[record(&code, Some("s1"), 5, true)]).unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        for column in COLUMNS {
            let name = match column {
                JsonColumn::Text(n) | JsonColumn::Int(n) => *n,
            };
            assert!(rows[0].get(name).is_some(), "{name} missing");
        }
    }
}
