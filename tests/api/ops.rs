use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(health_readiness_metrics_and_openapi_are_served);

async fn health_readiness_metrics_and_openapi_are_served(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    let expected_bus = if backend == Backend::Services {
        "rabbitmq"
    } else {
        "sql"
    };
    assert_eq!(app.app.infra().bus.name(), expected_bus);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("huoke_http_request_seconds"), "{metrics}");
    let openapi: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/leads",
        "/v1/inbox",
        "/v1/live-codes",
        "/v1/live-codes/{id}/qr.png",
        "/s/{code}",
        "/c/{slug}",
        "/v1/cards/{staff_id}",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} is not described in /openapi.json"
        );
    }
    app.stop().await;
}
