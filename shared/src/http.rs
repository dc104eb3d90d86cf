//! HTTP pieces every service uses: a JSON body extractor whose failures are
//! problem documents (with the field at fault), the operator endpoints, and the
//! error handlers that keep actix's own plain-text errors out of the API.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, FieldError};
use crate::infra::Infra;
use crate::service::Needs;

/// Bodies up to this size are read and discarded before a 413 so that the client
/// sees the answer instead of a reset connection; larger ones are cut off at once.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Where this process's own HTTP API answers (`HUOKE_API_URL`, else the address it
/// listens on): the web console reads and writes through the API like any client.
#[derive(Debug, Clone)]
pub struct ApiBase(pub String);

/// A JSON request body. Refuses the wrong content type (415), oversize bodies
/// (413), malformed JSON (400) and JSON of the wrong shape (422, naming the field).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<Infra>>()
            .map(|i| i.settings.max_body_bytes)
            .unwrap_or(256 * 1024);
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let declared: Option<usize> = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            if media != "application/json" && !media.ends_with("+json") {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as application/json".into(),
                ));
            }
            if declared.is_some_and(|n| n > DRAIN_LIMIT) {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            let body = read_limited(&mut payload, limit).await?;
            parse_json(&body).map(Json)
        })
    }
}

/// Reads a request body of at most `limit` bytes. A larger one is drained (up to
/// `DRAIN_LIMIT`) so the client reads our 413 rather than a reset connection.
pub async fn read_limited<S>(payload: &mut S, limit: usize) -> Result<web::BytesMut, ApiError>
where
    S: futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> + Unpin,
{
    let mut body = web::BytesMut::new();
    let mut too_large = false;
    // Everything read so far, kept or not: a chunked body has no length up front,
    // so this is what stops an endless one.
    let mut seen: usize = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            too_large = true;
            body.clear();
        }
        if too_large {
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        body.extend_from_slice(&chunk);
    }
    if too_large {
        Err(ApiError::PayloadTooLarge(limit))
    } else {
        Ok(body)
    }
}

pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the request body is empty; expected a JSON object".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { "body".to_string() } else { path };
                ApiError::Validation(vec![FieldError::new(field, strip_position(&inner.to_string()))])
            }
            _ => ApiError::BadRequest(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// `/healthz`, `/readyz` and `/metrics`, mounted on every service.
pub fn ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics_endpoint));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: every backend is checked and reported, but only those the process's
/// services cannot work without (`Needs`, in app data) make it fail.
async fn readyz(infra: web::Data<Infra>, needs: Option<web::Data<Needs>>) -> HttpResponse {
    let needs = needs.map(|n| **n).unwrap_or(Needs {
        store: true,
        bus: true,
        cache: true,
    });
    let limit = std::time::Duration::from_secs(2);
    let timed = |r: Result<anyhow::Result<()>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("no answer within 2 s".to_string()),
    };
    let (store, bus, cache) = tokio::join!(
        tokio::time::timeout(limit, async { infra.store.ping().await.map_err(anyhow::Error::from) }),
        tokio::time::timeout(limit, infra.bus.ping()),
        tokio::time::timeout(limit, infra.cache.ping()),
    );
    let (store, bus, cache) = (timed(store), timed(bus), timed(cache));
    let report = |r: &Result<(), String>| {
        r.as_ref()
            .map(|_| "ok".to_string())
            .unwrap_or_else(std::clone::Clone::clone)
    };
    let checks = json!({"store": report(&store), "bus": report(&bus), "cache": report(&cache)});
    let mut required = Vec::new();
    let mut missing = Vec::new();
    for (name, needed, result) in [
        ("store", needs.store, &store),
        ("bus", needs.bus, &bus),
        ("cache", needs.cache, &cache),
    ] {
        if needed {
            required.push(name);
            if result.is_err() {
                missing.push(name);
            }
        }
    }
    let degraded = store.is_err() || bus.is_err() || cache.is_err();
    if missing.is_empty() {
        let status = if degraded { "degraded" } else { "ready" };
        HttpResponse::Ok().json(json!({"status": status, "checks": checks, "required": required}))
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/problem+json")
            .json(json!({
                "type": "https://huoke.dev/problems/unavailable",
                "title": "Service Unavailable",
                "status": 503,
                "detail": format!("a backend this service needs is not reachable: {}", missing.join(", ")),
                "checks": checks,
                "required": required,
            }))
    }
}

async fn metrics_endpoint() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::render_metrics())
}

/// Installs problem+json handlers for path/query extraction errors.
pub fn error_configs(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::PathConfig::default().error_handler(|err, _| ApiError::NotFound(format!("path parameter ({err})")).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ApiError::BadRequest(format!("invalid query string: {err}")).into()),
    );
}

/// Answer for routes nobody serves.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("{} {}", req.method(), req.path())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Lead {
        phone: Option<String>,
        nested: Option<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    /// A chunked body has no Content-Length: the reader must stop on its own.
    #[actix_web::test]
    async fn an_endless_body_is_cut_off_after_the_drain_limit() {
        let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = pulled.clone();
        let mut endless = futures_util::stream::repeat_with(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, actix_web::error::PayloadError>(web::Bytes::from(vec![b'x'; 64 * 1024]))
        });
        let outcome = read_limited(&mut endless, 1024).await;
        assert!(matches!(outcome, Err(ApiError::PayloadTooLarge(1024))));
        let read = pulled.load(std::sync::atomic::Ordering::SeqCst) * 64 * 1024;
        assert!(read <= DRAIN_LIMIT + 64 * 1024, "read {read} bytes");
    }

    #[test]
    fn wrong_types_name_the_field() {
        match parse_json::<Lead>(br#"{"phone": 123}"#) {
            Err(ApiError::Validation(errors)) => {
                assert_eq!(errors[0].field, "phone");
                assert!(!errors[0].message.contains("line"));
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
        match parse_json::<Lead>(br#"{"nested": {"n": "x"}}"#) {
            Err(ApiError::Validation(errors)) => assert_eq!(errors[0].field, "nested.n"),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_and_empty_bodies_are_bad_requests() {
        assert!(matches!(
            parse_json::<Lead>(b"{\"phone\": "),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(parse_json::<Lead>(b"  "), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            parse_json::<Lead>(b"{} trailing"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(parse_json::<Lead>(b"{}").is_ok());
    }
}
