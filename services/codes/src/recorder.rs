//! Scans are recorded off the request path without waking anything: the handler
//! adds the scan to one of a few in-process [`Tally`] shards (a short lock, no
//! channel, no task woken per scan), and a background task takes the shards every
//! [`FLUSH_EVERY`] and writes them in one transaction: scans per code, minute,
//! member, outcome and client added onto `scan_minutes`, each code's visitor sketch
//! of the hour merged into `scan_visitors`, and per tenant one small `scan.counted`
//! event (outbox).
//!
//! A tally's size depends on how many codes, members and minutes it covers, not on
//! how many scans it counts, so nothing is dropped for want of room: while the
//! database is failing, scans keep adding to the tally in memory and are written
//! when it is back. What a crash loses is scan analytics only, never a lead: the
//! scans tallied since the last successful write — at most one interval (1 s) while
//! the database is up. The cap counters are in the cache and the sticky picks in the
//! visitors' cookies, so picking is not affected. A clean stop writes everything.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use huoke_shared::Infra;
use huoke_shared::bus::Envelope;
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::messages::{ScanCount, ScansCounted};
use huoke_shared::store::{Outbox, Tx};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::snapshot::Snapshot;
use crate::tally::{Scan, Tally};
use crate::tally_store::write_tally;

/// How often the tally is written: what a crash may lose, and what the stats lag.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Shards of the in-memory tally: each thread keeps to one, so HTTP workers rarely
/// meet on a lock.
const SHARDS: usize = 8;
/// Attempts of the last write at a clean stop.
const FINAL_ATTEMPTS: u32 = 5;

/// One scan, as the handler hands it over.
#[derive(Debug, Clone)]
pub struct ScanRecord<'a> {
    pub code: &'a Snapshot,
    pub staff_id: Option<&'a str>,
    pub visitor: &'a str,
    pub first_visit: bool,
    pub client: &'static str,
    pub outcome: &'static str,
    pub at_ms: i64,
}

#[derive(Clone)]
pub struct Recorder {
    shards: Arc<[Mutex<Tally>]>,
}

fn lock(shard: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// This thread's shard, handed out round-robin on first use.
    static SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl Recorder {
    pub fn start(infra: Infra, stop: watch::Receiver<bool>) -> (Recorder, JoinHandle<()>) {
        let recorder = Recorder {
            shards: (0..SHARDS).map(|_| Mutex::new(Tally::default())).collect(),
        };
        (recorder.clone(), tokio::spawn(flush_loop(infra, recorder, stop)))
    }

    /// Never waits on I/O: adds the scan to this thread's shard.
    pub fn record(&self, record: &ScanRecord<'_>) {
        let shard = SHARD.with(|shard| *shard);
        lock(&self.shards[shard]).add(Scan {
            tenant_id: &record.code.tenant_id,
            code_id: &record.code.id,
            staff_id: record.staff_id,
            outcome: record.outcome,
            client: record.client,
            visitor: record.visitor,
            first_visit: record.first_visit,
            at_ms: record.at_ms,
        });
    }

    /// Everything tallied so far, leaving the shards empty.
    fn take(&self) -> Tally {
        let mut all = Tally::default();
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut *lock(shard));
            all.absorb(taken);
        }
        all
    }
}

/// A tally on its way to the store. Its id is fixed at the first attempt, so an
/// attempt whose commit was unclear and is then retried adds nothing twice; for the
/// same reason nothing is added to it once it has been tried.
struct Pending {
    id: String,
    tally: Tally,
}

async fn flush_loop(infra: Infra, recorder: Recorder, mut stop: watch::Receiver<bool>) {
    let mut unclear: Option<Pending> = None;
    let mut fresh = Tally::default();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        fresh.absorb(recorder.take());
        let attempts = if stopping { FINAL_ATTEMPTS } else { 1 };
        for attempt in 1..=attempts {
            match flush(&infra, &mut unclear, &mut fresh).await {
                Ok(()) => break,
                Err(err) => {
                    metrics::counter!("huoke_scan_flush_failures_total").increment(1);
                    let waiting = unclear.as_ref().map_or(0, |p| p.tally.scans) + fresh.scans;
                    tracing::warn!(error = %format!("{err:#}"), waiting, "scan tallies not written; kept for the next attempt");
                    if attempt < attempts {
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    }
                }
            }
        }
        if stopping {
            let lost = unclear.map_or(0, |p| p.tally.scans) + fresh.scans;
            if lost > 0 {
                tracing::error!(lost, "stopping with scan tallies unwritten");
                metrics::counter!("huoke_scans_dropped_total").increment(lost);
            }
            return;
        }
    }
}

/// Writes the tally whose earlier attempt was unclear (under its id), then the fresh
/// one. A failure leaves what was not written for the next call.
async fn flush(infra: &Infra, unclear: &mut Option<Pending>, fresh: &mut Tally) -> anyhow::Result<()> {
    if let Some(pending) = unclear {
        write(infra, &pending.id, &pending.tally).await?;
        metrics::counter!("huoke_scans_recorded_total").increment(pending.tally.scans);
        *unclear = None;
    }
    if fresh.is_empty() {
        return Ok(());
    }
    let pending = Pending {
        id: new_id(),
        tally: std::mem::take(fresh),
    };
    match write(infra, &pending.id, &pending.tally).await {
        Ok(()) => {
            metrics::counter!("huoke_scans_recorded_total").increment(pending.tally.scans);
            Ok(())
        }
        Err(err) => {
            *unclear = Some(pending);
            Err(err)
        }
    }
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
