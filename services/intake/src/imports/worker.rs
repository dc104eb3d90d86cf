//! Turns stored import files into captures, one file at a time per process. An
//! import is leased (`locked_until`) so two processes never work one file at once;
//! a process that dies leaves the lease to expire and another starts the file again
//! from its first row — every row's capture has the idempotency key
//! `import:<id>:<row>`, so a row done before the crash is answered, not repeated.

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use huoke_shared::Infra;
use huoke_shared::capture::accept_many;
use huoke_shared::clock::now_ms;
use huoke_shared::error::FieldError;
use serde_json::{Map, Value};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::parse::{self, Format, Records};

const LEASE_MS: i64 = 60_000;
/// How soon an interrupted import is taken up again by any process.
const RETRY_AFTER_MS: i64 = 3_000;
/// Rows per transaction (and per progress update).
const BATCH: usize = 200;

/// A row's number and its values (or why it has none).
type PendingRow = (i64, Result<Map<String, Value>, Vec<FieldError>>);

static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// A new file is waiting.
pub fn kick() {
    WAKE.notify_one();
}

pub fn start(infra: Infra, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match next(&infra).await {
                Ok(Some(id)) => {
                    if let Err(err) = run(&infra, &id).await {
                        tracing::warn!(import = %id, error = %format!("{err:#}"), "import interrupted; it will be taken up again");
                        // A passing failure (a busy or briefly unreachable store) should
                        // cost seconds, not the whole lease.
                        let _ = sqlx::query("UPDATE imports SET locked_until = $1 WHERE id = $2")
                            .bind(now_ms() + RETRY_AFTER_MS)
                            .bind(&id)
                            .execute(infra.store.pool())
                            .await;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %format!("{err:#}"), "looking for imports failed"),
            }
            tokio::select! {
                _ = WAKE.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stop.changed() => return,
            }
        }
    })
}

/// Leases the oldest waiting (or abandoned) import.
async fn next(infra: &Infra) -> anyhow::Result<Option<String>> {
    let now = now_ms();
    let candidate: Option<String> = sqlx::query_scalar(
        "SELECT id FROM imports WHERE status IN ('queued', 'running') AND locked_until < $1 ORDER BY created_at LIMIT 1",
    )
    .bind(now)
    .fetch_optional(infra.store.pool())
    .await?;
    let Some(id) = candidate else {
        return Ok(None);
    };
    let leased = sqlx::query(
        "UPDATE imports SET status = 'running', locked_until = $1, rows_done = 0, rows_failed = 0, updated_at = $2
         WHERE id = $3 AND locked_until < $2 AND status IN ('queued', 'running')",
    )
    .bind(now + LEASE_MS)
    .bind(now)
    .bind(&id)
    .execute(infra.store.pool())
    .await?;
    Ok((leased.rows_affected() == 1).then_some(id))
}

#[derive(sqlx::FromRow)]
struct Job {
    tenant_id: String,
    format: String,
    encoding: Option<String>,
    chunks: i64,
    channel: Option<String>,
    campaign_id: Option<String>,
}

async fn run(infra: &Infra, id: &str) -> anyhow::Result<()> {
    let job: Job =
        sqlx::query_as("SELECT tenant_id, format, encoding, chunks, channel, campaign_id FROM imports WHERE id = $1")
            .bind(id)
            .fetch_one(infra.store.pool())
            .await?;
    let format = Format::parse(&job.format).unwrap_or(Format::Ndjson);
    let encoding = job
        .encoding
        .as_deref()
        .and_then(|e| encoding_rs::Encoding::for_label(e.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    let mut records = Records::new(format, encoding);
    let mut headers: Option<Vec<String>> = None;
    let (mut row, mut done, mut failed) = (0i64, 0i64, 0i64);
    let mut batch: Vec<PendingRow> = Vec::with_capacity(BATCH);
    for seq in 0..job.chunks {
        let data: String = sqlx::query_scalar("SELECT data FROM import_chunks WHERE import_id = $1 AND seq = $2")
            .bind(id)
            .bind(seq)
            .fetch_one(infra.store.pool())
            .await?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(data)?;
        records.feed(&bytes, seq + 1 == job.chunks);
        while let Some(record) = records.next_record() {
            let values = match (format, &headers) {
                (Format::Csv, None) => {
                    headers = Some(parse::csv_fields(&record));
                    continue;
                }
                (Format::Csv, Some(h)) => Ok(h
                    .iter()
                    .cloned()
                    .zip(parse::csv_fields(&record).into_iter().map(Value::String))
                    .collect::<Map<String, Value>>()),
                (Format::Ndjson, _) => match serde_json::from_str::<Value>(&record) {
                    Ok(Value::Object(map)) => Ok(map),
                    _ => Err(vec![FieldError::new("line", "not a JSON object")]),
                },
            };
            row += 1;
            batch.push((row, values));
            if batch.len() >= BATCH {
                flush(infra, id, &job, &mut batch, &mut done, &mut failed).await?;
                progress(infra, id, done, failed, None).await?;
            }
        }
    }
    flush(infra, id, &job, &mut batch, &mut done, &mut failed).await?;
    progress(infra, id, done, failed, Some("done")).await?;
    sqlx::query("DELETE FROM import_chunks WHERE import_id = $1")
        .bind(id)
        .execute(infra.store.pool())
        .await?;
    infra.kick_outbox();
    Ok(())
}

/// Makes the batch's rows captures in one transaction, and records the problems of
/// the rows that could not be.
async fn flush(
    infra: &Infra,
    id: &str,
    job: &Job,
    batch: &mut Vec<PendingRow>,
    done: &mut i64,
    failed: &mut i64,
) -> anyhow::Result<()> {
    let mut rows = Vec::with_capacity(batch.len());
    let mut numbers = Vec::with_capacity(batch.len());
    for (row, values) in batch.drain(..) {
        match values {
            Ok(values) => {
                let input = parse::capture(&values, job.channel.as_deref(), job.campaign_id.as_deref());
                rows.push((format!("import:{id}:{row}"), input));
                numbers.push(row);
            }
            Err(errors) => {
                *failed += 1;
                record_errors(infra, id, row, &errors).await?;
            }
        }
    }
    let actor = format!("import:{id}");
    let answers = accept_many(infra, &job.tenant_id, &actor, &rows)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (row, answer) in numbers.into_iter().zip(answers) {
        match answer {
            Ok(_) => *done += 1,
            Err(errors) => {
                *failed += 1;
                record_errors(infra, id, row, &errors).await?;
            }
        }
    }
    Ok(())
}

async fn record_errors(infra: &Infra, id: &str, row: i64, errors: &[FieldError]) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO import_errors (import_id, row_number, errors) VALUES ($1, $2, $3) ON CONFLICT (import_id, row_number) DO NOTHING",
    )
    .bind(id)
    .bind(row)
    .bind(serde_json::to_string(errors)?)
    .execute(infra.store.pool())
    .await?;
    Ok(())
}

/// Counts so far, and renews the lease (or finishes).
async fn progress(infra: &Infra, id: &str, done: i64, failed: i64, finished: Option<&str>) -> anyhow::Result<()> {
    let now = now_ms();
    sqlx::query(
        "UPDATE imports SET rows_done = $1, rows_failed = $2, locked_until = $3, updated_at = $4,
                status = COALESCE($5, status), finished_at = CASE WHEN $5 IS NULL THEN NULL ELSE $4 END
         WHERE id = $6",
    )
    .bind(done)
    .bind(failed)
    .bind(if finished.is_some() { 0 } else { now + LEASE_MS })
    .bind(now)
    .bind(finished)
    .bind(id)
    .execute(infra.store.pool())
    .await?;
    Ok(())
}
