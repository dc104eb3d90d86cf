//! Bulk import: `POST /v1/leads/bulk` (CSV in UTF-8 or GBK/GB18030, or NDJSON)
//! streams the body into the store in 1 MiB chunks — the file never sits in memory —
//! and answers 202 with the import's id once it is stored; the same file again (by
//! its SHA-256) answers the first import. A background worker in every intake
//! process turns the rows into captures (`worker.rs`); `GET /v1/imports/{id}` shows
//! progress and the first errors, `GET /v1/imports/{id}/errors` all of them as CSV.

pub mod parse;
pub mod worker;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use futures_util::StreamExt;
use huoke_shared::apikeys::{Principal, Scope};
use huoke_shared::auth::Role;
use huoke_shared::clock::{new_id, now_ms, rfc3339};
use huoke_shared::{ApiError, ApiResult, Infra, channels};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use parse::Format;

const CHUNK: usize = 1024 * 1024;
const MAX_FILE: usize = 1024 * 1024 * 1024;

#[derive(Deserialize)]
pub struct ImportQuery {
    channel: Option<String>,
    campaign_id: Option<String>,
}

fn format_of(req: &HttpRequest) -> ApiResult<Format> {
    let media = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "text/csv" => Ok(Format::Csv),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" => {
            Ok(Format::Ndjson)
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "send the file as text/csv or application/x-ndjson".into(),
        )),
    }
}

async fn store_chunk(infra: &Infra, import_id: &str, seq: i64, bytes: &[u8]) -> ApiResult<()> {
    sqlx::query("INSERT INTO import_chunks (import_id, seq, data) VALUES ($1, $2, $3)")
        .bind(import_id)
        .bind(seq)
        .bind(base64::engine::general_purpose::STANDARD.encode(bytes))
        .execute(infra.store.pool())
        .await?;
    Ok(())
}

async fn forget(infra: &Infra, import_id: &str) -> ApiResult<()> {
    sqlx::query("DELETE FROM import_chunks WHERE import_id = $1")
        .bind(import_id)
        .execute(infra.store.pool())
        .await?;
    sqlx::query("DELETE FROM imports WHERE id = $1")
        .bind(import_id)
        .execute(infra.store.pool())
        .await?;
    Ok(())
}

async fn existing(infra: &Infra, tenant_id: &str, sha: &str) -> ApiResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM imports WHERE tenant_id = $1 AND sha256 = $2")
            .bind(tenant_id)
            .bind(sha)
            .fetch_optional(infra.store.pool())
            .await?,
    )
}

pub async fn upload(
    req: HttpRequest,
    infra: web::Data<Infra>,
    principal: Principal,
    query: web::Query<ImportQuery>,
    mut body: web::Payload,
) -> ApiResult<HttpResponse> {
    principal.require_scope(&[Scope::LeadsWrite])?;
    if let Principal::Staff(caller) = &principal {
        caller.require_any(&[Role::Admin, Role::Marketer])?;
    }
    let format = format_of(&req)?;
    if let Some(channel) = &query.channel
        && !channels::is_known(channel)
    {
        return Err(ApiError::invalid("channel", format!("unknown channel `{channel}`")));
    }
    let tenant_id = principal.tenant_id().to_string();
    let id = new_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO imports (id, tenant_id, format, sha256, bytes, chunks, channel, campaign_id, status, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 0, 0, $5, $6, 'receiving', $7, $8, $8)",
    )
    .bind(&id)
    .bind(&tenant_id)
    .bind(format.as_str())
    .bind(format!("receiving:{id}"))
    .bind(&query.channel)
    .bind(&query.campaign_id)
    .bind(principal.actor())
    .bind(now)
    .execute(infra.store.pool())
    .await?;

    let (mut hasher, mut buffer, mut total, mut seq) = (Sha256::new(), Vec::with_capacity(CHUNK), 0usize, 0i64);
    let mut encoding = None;
    while let Some(piece) = body.next().await {
        let piece = match piece {
            Ok(p) => p,
            Err(err) => {
                forget(&infra, &id).await?;
                return Err(ApiError::BadRequest(format!("the upload broke off: {err}")));
            }
        };
        total += piece.len();
        if total > MAX_FILE {
            forget(&infra, &id).await?;
            return Err(ApiError::PayloadTooLarge(MAX_FILE));
        }
        hasher.update(&piece);
        buffer.extend_from_slice(&piece);
        while buffer.len() >= CHUNK {
            let rest = buffer.split_off(CHUNK);
            encoding.get_or_insert_with(|| parse::detect(&buffer).name());
            store_chunk(&infra, &id, seq, &buffer).await?;
            seq += 1;
            buffer = rest;
        }
    }
    if !buffer.is_empty() {
        encoding.get_or_insert_with(|| parse::detect(&buffer).name());
        store_chunk(&infra, &id, seq, &buffer).await?;
        seq += 1;
    }
    if total == 0 {
        forget(&infra, &id).await?;
        return Err(ApiError::invalid("body", "the file is empty"));
    }
    let sha = hex::encode(hasher.finalize());
    // The same file again: the first import answers.
    if let Some(first) = existing(&infra, &tenant_id, &sha).await? {
        forget(&infra, &id).await?;
        return Ok(HttpResponse::Accepted().json(json!({"import_id": first, "duplicate": true})));
    }
    let stored = sqlx::query(
        "UPDATE imports SET sha256 = $1, bytes = $2, chunks = $3, encoding = $4, status = 'queued', updated_at = $5 WHERE id = $6",
    )
    .bind(&sha)
    .bind(total as i64)
    .bind(seq)
    .bind(encoding.unwrap_or("UTF-8"))
    .bind(now_ms())
    .bind(&id)
    .execute(infra.store.pool())
    .await;
    match stored {
        Ok(_) => {}
        // The same file uploaded twice at once: the other one won.
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            forget(&infra, &id).await?;
            let first = existing(&infra, &tenant_id, &sha).await?.unwrap_or(id);
            return Ok(HttpResponse::Accepted().json(json!({"import_id": first, "duplicate": true})));
        }
        Err(err) => return Err(err.into()),
    }
    worker::kick();
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/imports/{id}")))
        .json(json!({"import_id": id, "duplicate": false})))
}

#[derive(sqlx::FromRow)]
struct ImportRow {
    id: String,
    format: String,
    encoding: Option<String>,
    bytes: i64,
    status: String,
    rows_done: i64,
    rows_failed: i64,
    created_at: i64,
    finished_at: Option<i64>,
}

async fn import_of(infra: &Infra, principal: &Principal, id: &str) -> ApiResult<ImportRow> {
    principal.require_scope(&[Scope::LeadsWrite, Scope::LeadsRead])?;
    sqlx::query_as(
        "SELECT id, format, encoding, bytes, status, rows_done, rows_failed, created_at, finished_at
         FROM imports WHERE tenant_id = $1 AND id = $2 AND status <> 'receiving'",
    )
    .bind(principal.tenant_id())
    .bind(id)
    .fetch_optional(infra.store.pool())
    .await?
    .ok_or_else(|| ApiError::not_found("import"))
}

/// `GET /v1/imports/{id}`: progress and the first 100 row errors.
pub async fn status(infra: web::Data<Infra>, principal: Principal, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let row = import_of(&infra, &principal, &id).await?;
    let errors: Vec<(i64, String)> = sqlx::query_as(
        "SELECT row_number, errors FROM import_errors WHERE import_id = $1 ORDER BY row_number LIMIT 100",
    )
    .bind(&row.id)
    .fetch_all(infra.store.pool())
    .await?;
    let errors: Vec<Value> = errors
        .into_iter()
        .map(|(n, e)| json!({"row": n, "errors": serde_json::from_str::<Value>(&e).unwrap_or(Value::Null)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": row.id, "status": row.status, "format": row.format, "encoding": row.encoding, "bytes": row.bytes,
        "rows": row.rows_done + row.rows_failed, "rows_imported": row.rows_done, "rows_failed": row.rows_failed,
        "errors": errors, "errors_url": format!("/v1/imports/{}/errors", row.id),
        "created_at": rfc3339(row.created_at), "finished_at": row.finished_at.map(rfc3339),
    })))
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `GET /v1/imports/{id}/errors`: every row error as CSV (`row,field,message`).
pub async fn errors_csv(
    infra: web::Data<Infra>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let row = import_of(&infra, &principal, &id).await?;
    let errors: Vec<(i64, String)> =
        sqlx::query_as("SELECT row_number, errors FROM import_errors WHERE import_id = $1 ORDER BY row_number")
            .bind(&row.id)
            .fetch_all(infra.store.pool())
            .await?;
    let mut out = String::from("row,field,message\n");
    for (n, e) in errors {
        let list: Vec<Value> = serde_json::from_str(&e).unwrap_or_default();
        for item in list {
            let field = item["field"].as_str().unwrap_or("");
            let message = item["message"].as_str().unwrap_or("");
            out.push_str(&format!("{n},{},{}\n", csv_cell(field), csv_cell(message)));
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"import-{}-errors.csv\"", row.id),
        ))
        .body(out))
}
