//! Scans are recorded off the request path: the handler drops a record into a
//! bounded channel and returns. A background task drains the channel continuously
//! into an in-memory [`Tally`] and, every [`FLUSH_EVERY`], writes the tally in one
//! transaction: scans per code, minute, member, outcome and client added onto
//! `scan_minutes`, each code's visitor sketch of the hour merged into
//! `scan_visitors`, and per tenant one small `scan.counted` event (outbox).
//!
//! What a crash can lose is scan analytics, never a lead: the scans counted since
//! the last write (at most one interval, 1 s) plus a write in flight, and records
//! still in the channel. The cap counters are in the cache and the sticky picks in
//! the visitors' cookies, so picking is not affected. A clean stop writes everything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use huoke_shared::Infra;
use huoke_shared::bus::Envelope;
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::messages::{ScanCount, ScansCounted};
use huoke_shared::store::{Outbox, Tx};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::snapshot::Snapshot;
use crate::tally::{Scan, Tally};
use crate::tally_store::write_tally;

const BUFFER: usize = 100_000;
/// How often the tally is written: what a crash may lose, and what the stats lag.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Records taken from the channel per wake-up.
const DRAIN: usize = 1_024;

/// One scan, as the handler hands it over: the code's snapshot is shared, not copied.
#[derive(Debug, Clone)]
pub struct ScanRecord {
    pub code: Arc<Snapshot>,
    pub staff_id: Option<String>,
    pub visitor: String,
    pub first_visit: bool,
    pub client: &'static str,
    pub outcome: &'static str,
    pub at_ms: i64,
}

impl ScanRecord {
    fn as_scan(&self) -> Scan<'_> {
        Scan {
            tenant_id: &self.code.tenant_id,
            code_id: &self.code.id,
            staff_id: self.staff_id.as_deref(),
            outcome: self.outcome,
            client: self.client,
            visitor: &self.visitor,
            first_visit: self.first_visit,
            at_ms: self.at_ms,
        }
    }
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
    let mut tally = Tally::default();
    let mut records = Vec::with_capacity(DRAIN);
    // One write at a time, in its own task, so the channel keeps draining while the
    // store is slow or a write is being retried.
    let mut writing: Option<JoinHandle<()>> = None;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                if !tally.is_empty() && writing.as_ref().is_none_or(JoinHandle::is_finished) {
                    let full = std::mem::take(&mut tally);
                    writing = Some(tokio::spawn(write_with_retries(infra.clone(), full)));
                }
            }
            received = rx.recv_many(&mut records, DRAIN) => {
                if received == 0 {
                    break;
                }
                for record in records.drain(..) {
                    tally.add(record.as_scan());
                }
            }
        }
    }
    // Stopping: what is in the channel and the tally is written before the task ends.
    while let Ok(record) = rx.try_recv() {
        tally.add(record.as_scan());
    }
    if let Some(previous) = writing {
        let _ = previous.await;
    }
    if !tally.is_empty() {
        write_with_retries(infra, tally).await;
    }
}

async fn write_with_retries(infra: Infra, tally: Tally) {
    // The flush id is fixed before the first attempt: a retry after an unclear
    // failure finds it written and adds nothing twice.
    let flush_id = new_id();
    let mut attempt = 0;
    while let Err(err) = write(&infra, &flush_id, &tally).await {
        attempt += 1;
        if attempt >= 5 {
            tracing::error!(error = %err, lost = tally.scans, "scan tallies could not be written");
            metrics::counter!("huoke_scans_dropped_total").increment(tally.scans);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
    metrics::counter!("huoke_scans_recorded_total").increment(tally.scans);
}

async fn write(infra: &Infra, flush_id: &str, tally: &Tally) -> anyhow::Result<()> {
    let mut tx = infra.store.begin().await?;
    let fresh = sqlx::query("INSERT INTO scan_flushes (id, at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(flush_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if fresh == 0 {
        // An earlier attempt of this flush was committed after all.
        tx.commit().await?;
        return Ok(());
    }
    write_tally(&mut tx, infra.store.backend(), tally).await?;
    announce(&mut tx, tally).await?;
    tx.commit().await?;
    infra.kick_outbox();
    Ok(())
}

/// Per tenant, one `scan.counted` event: the tally per code, member, outcome and
/// minute (client classes added together).
async fn announce(tx: &mut Tx, tally: &Tally) -> anyhow::Result<()> {
    // tenant → (code, member, outcome, minute) → (scans, first visits)
    type Counts<'a> = BTreeMap<(&'a str, &'a str, &'a str, i64), (u32, u32)>;
    let mut by_tenant: BTreeMap<&str, Counts<'_>> = BTreeMap::new();
    for (code_id, code) in &tally.codes {
        let counts = by_tenant.entry(code.tenant_id.as_str()).or_default();
        for cell in &code.cells {
            let entry = counts
                .entry((code_id.as_str(), cell.staff_id.as_str(), cell.outcome, cell.minute))
                .or_default();
            entry.0 += u32::try_from(cell.scans).unwrap_or(u32::MAX);
            entry.1 += u32::try_from(cell.first_visits).unwrap_or(u32::MAX);
        }
    }
    for (tenant, counts) in by_tenant {
        let counts = counts
            .into_iter()
            .map(
                |((code_id, staff_id, outcome, minute_ms), (scans, first_visits))| ScanCount {
                    code_id: code_id.to_string(),
                    staff_id: (!staff_id.is_empty()).then(|| staff_id.to_string()),
                    outcome: outcome.to_string(),
                    minute_ms,
                    scans,
                    first_visits,
                },
            )
            .collect();
        Outbox::add(tx, &Envelope::new(tenant, &ScansCounted { counts })).await?;
    }
    Ok(())
}
