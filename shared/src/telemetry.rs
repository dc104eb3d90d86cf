//! Structured logs (tracing) and Prometheus metrics, installed once per process.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
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

/// Times every request, labelled by route pattern (never the raw path, which may
/// carry codes or contact details) and status.
pub async fn http_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    metrics::histogram!("huoke_http_request_seconds", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .record(elapsed.as_secs_f64());
    tracing::debug!(%method, %route, status, micros = elapsed.as_micros() as u64, "request");
    Ok(res)
}
