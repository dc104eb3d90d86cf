//! Scans are recorded off the request path: the handler drops a record into a
//! bounded channel and returns; a background task writes them to the store in
//! batches — multi-row inserts, each batch in one transaction with one
//! `scan.recorded` event per tenant (outbox). A crash loses at most the last half
//! second of scan records: analytics, never leads.

use std::collections::BTreeMap;
use std::time::Duration;

use huoke_shared::Infra;
use huoke_shared::bus::Envelope;
use huoke_shared::messages::{Scan, ScansRecorded};
use huoke_shared::store::Outbox;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const BUFFER: usize = 100_000;
const BATCH: usize = 2_000;
/// Rows per INSERT statement: 10 parameters each stays far below both backends' limits.
const ROWS_PER_STATEMENT: usize = 200;
const FLUSH_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct ScanRecord {
    pub tenant_id: String,
    pub scan: Scan,
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

fn insert_statement(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO scans (id, tenant_id, code_id, staff_id, group_index, visitor, client, referer, outcome, at) VALUES ",
    );
    for r in 0..rows {
        let b = r * 10;
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${},${},${},${},${},${},${},${},${},${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7,
            b + 8,
            b + 9,
            b + 10
        ));
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING");
    sql
}

async fn write(infra: &Infra, batch: &[ScanRecord]) -> anyhow::Result<()> {
    let mut tx = infra.store.begin().await?;
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_statement(chunk.len())));
        for r in chunk {
            let s = &r.scan;
            query = query
                .bind(s.scan_id.clone())
                .bind(r.tenant_id.clone())
                .bind(s.code_id.clone())
                .bind(s.staff_id.clone())
                .bind(s.group_index)
                .bind(s.visitor.clone())
                .bind(s.client.clone())
                .bind(r.referer.clone())
                .bind(s.outcome.clone())
                .bind(s.at_ms);
        }
        query.execute(&mut *tx).await?;
    }
    let mut by_tenant: BTreeMap<&str, Vec<Scan>> = BTreeMap::new();
    for r in batch {
        by_tenant.entry(&r.tenant_id).or_default().push(r.scan.clone());
    }
    for (tenant, scans) in by_tenant {
        Outbox::add(&mut tx, &Envelope::new(tenant, &ScansRecorded { scans })).await?;
    }
    tx.commit().await?;
    infra.kick_outbox();
    metrics::counter!("huoke_scans_recorded_total").increment(batch.len() as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_number_every_parameter() {
        let sql = super::insert_statement(2);
        assert!(sql.contains("($1,$2,$3,$4,$5,$6,$7,$8,$9,$10),($11,"));
        assert!(sql.ends_with("$20) ON CONFLICT (id) DO NOTHING"));
    }
}
