//! Structured logs (tracing) and Prometheus metrics, installed once per process.

use std::sync::OnceLock;
use std::time::Instant;

use std::borrow::Cow;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Logs go to stderr; `HUOKE_LOG` is the filter (default `info`), `HUOKE_LOG_FORMAT=json`
/// gives one JSON object per line. Safe to call more than once.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("HUOKE_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
    let json = std::env::var("HUOKE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}

/// Installs the Prometheus recorder (once per process).
#[allow(
    clippy::expect_used,
    reason = "constant buckets, and a thread at start-up: failing here is a broken build or host"
)]
pub fn init_metrics() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        // Fixed buckets: recording into a bucketed histogram is a few atomic adds,
        // where the default summary keeps a sketch per series.
        const BUCKETS: &[f64] = &[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // A second recorder (several apps in one test process) is refused; the first serves all.
        let _ = metrics::set_global_recorder(recorder);
        // Histogram samples wait in lock-free buffers until drained; drain them
        // regularly so memory stays flat when nobody scrapes /metrics.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("metrics upkeep thread");
        handle
    })
}

pub fn render_metrics() -> String {
    init_metrics().render()
}

/// A handler on a hot path names its own route pattern in the request's extensions,
/// which spares `http_metrics` matching the path against the route table a second
/// time (a regex match per request on the scan path).
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

impl RouteLabel {
    pub fn set(self, req: &actix_web::HttpRequest) {
        req.extensions_mut().insert(self);
    }
}

/// Times every request, labelled by route pattern (never the raw path, which may
/// carry codes or contact details) and status. The common labels are static
/// strings, so a request allocates no label.
pub async fn http_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let res = next.call(req).await?;
    let labelled = res.request().extensions().get::<RouteLabel>().copied();
    let route: Cow<'static, str> = match labelled {
        Some(RouteLabel(route)) => Cow::Borrowed(route),
        None => res
            .request()
            .match_pattern()
            .map_or(Cow::Borrowed("unmatched"), Cow::Owned),
    };
    let status = status_label(res.status());
    let elapsed = started.elapsed();
    tracing::debug!(%method, %route, %status, micros = elapsed.as_micros() as u64, "request");
    record_request(method, route, status, elapsed.as_secs_f64());
    Ok(res)
}

/// A `&'static str` by where it lives: two with the same address and length hold
/// the same text.
type StaticKey = (usize, usize);

fn static_key(text: &'static str) -> StaticKey {
    (text.as_ptr() as usize, text.len())
}

thread_local! {
    /// Histogram handles by their (static) labels, per thread: building a labelled
    /// key and finding it in the registry on every request costs an allocation and a
    /// hash; the handle costs neither.
    static REQUEST_HISTOGRAMS: std::cell::RefCell<std::collections::HashMap<(StaticKey, StaticKey, StaticKey), metrics::Histogram>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn record_request(method: Cow<'static, str>, route: Cow<'static, str>, status: Cow<'static, str>, seconds: f64) {
    let (Cow::Borrowed(m), Cow::Borrowed(r), Cow::Borrowed(s)) = (&method, &route, &status) else {
        metrics::histogram!("huoke_http_request_seconds", "method" => method, "route" => route, "status" => status)
            .record(seconds);
        return;
    };
    let key = (static_key(m), static_key(r), static_key(s));
    REQUEST_HISTOGRAMS.with(|histograms| {
        histograms
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| {
                metrics::histogram!("huoke_http_request_seconds", "method" => method, "route" => route, "status" => status)
            })
            .record(seconds);
    });
}

fn method_label(method: &Method) -> Cow<'static, str> {
    Cow::Borrowed(match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => return Cow::Owned(method.as_str().to_string()),
    })
}

fn status_label(status: StatusCode) -> Cow<'static, str> {
    Cow::Borrowed(match status.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        302 => "302",
        303 => "303",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        410 => "410",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        other => return Cow::Owned(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_codes_and_methods_themselves() {
        for code in [200u16, 202, 302, 404, 418, 429, 503, 599] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(status_label(status), code.to_string());
        }
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"PURGE").unwrap()), "PURGE");
    }
}
