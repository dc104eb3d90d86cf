//! Scans are recorded off the request path: the handler drops a record into a
//! bounded channel and returns; a background task writes them to the store in
//! batches, each batch in one transaction with its `scan.recorded` events (outbox).
//! A crash loses at most the last second of scan records — analytics, never leads.

use std::time::Duration;

use huoke_shared::Infra;
use huoke_shared::bus::Envelope;
use huoke_shared::messages::ScanRecorded;
use huoke_shared::store::Outbox;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const BUFFER: usize = 50_000;
const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct ScanRecord {
    pub tenant_id: String,
    pub event: ScanRecorded,
    pub referer: Option<String>,
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
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n == 0,
            _ = tokio::time::sleep(FLUSH_EVERY) => false,
            _ = stop.changed() => true,
        };
        if stopping {
            // Drain what is buffered before leaving.
            while let Ok(r) = rx.try_recv() {
                batch.push(r);
            }
        }
        if !batch.is_empty() {
            let mut attempt = 0;
            while let Err(err) = write(&infra, &batch).await {
                attempt += 1;
                if attempt >= 5 {
                    tracing::error!(error = %err, lost = batch.len(), "scan records could not be written");
                    metrics::counter!("huoke_scans_dropped_total").increment(batch.len() as u64);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            batch.clear();
        }
        if stopping {
            return;
        }
    }
}

async fn write(infra: &Infra, batch: &[ScanRecord]) -> anyhow::Result<()> {
    let mut tx = infra.store.begin().await?;
    for r in batch {
        let e = &r.event;
        sqlx::query(
            "INSERT INTO scans (id, tenant_id, code_id, staff_id, group_index, visitor, client, referer, outcome, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&e.scan_id)
        .bind(&r.tenant_id)
        .bind(&e.code_id)
        .bind(&e.staff_id)
        .bind(e.group_index)
        .bind(&e.visitor)
        .bind(&e.client)
        .bind(&r.referer)
        .bind(&e.outcome)
        .bind(e.at_ms)
        .execute(&mut *tx)
        .await?;
        Outbox::add(&mut tx, &Envelope::new(&r.tenant_id, e)).await?;
    }
    tx.commit().await?;
    infra.kick_outbox();
    metrics::counter!("huoke_scans_recorded_total").increment(batch.len() as u64);
    Ok(())
}
