//! Signed webhooks end to end: a source with a field mapping, a signed call that
//! becomes a lead in an inbox, and forged, stale, replayed and unsigned calls refused.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(signed_webhooks_become_leads_and_forgeries_do_not);

fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn call(app: &TestApp, url: &str, timestamp: Option<i64>, signature: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url(url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = timestamp {
        req = req.header("X-Huoke-Timestamp", t.to_string());
    }
    if let Some(s) = signature {
        req = req.header("X-Huoke-Signature", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn signed_webhooks_become_leads_and_forgeries_do_not(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let (status, problem) = app
        .post(
            &admin,
            "/v1/webhook-sources",
            &json!({"name": "x", "channel": "ads", "mapping": {"phone": "phone"}}),
        )
        .await;
    assert_eq!(status, 422, "pointers must start with /: {problem}");
    let (status, source) = app
        .post(
            &admin,
            "/v1/webhook-sources",
            &json!({"name": "Ad platform lead forms", "channel": "ads",
                    "mapping": {"/lead/full_name": "name", "/lead/phone_number": "phone", "/lead/city": "attributes.city"},
                    "event_id_pointer": "/event/id"}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    let secret = source["secret"].as_str().unwrap().to_string();
    let url = source["url"].as_str().unwrap().to_string();
    let (_, listed) = app.get(&admin, "/v1/webhook-sources").await;
    assert!(!listed.to_string().contains(&secret), "the secret is shown once");

    let body =
        json!({"event": {"id": "evt-1"}, "lead": {"full_name": "赵六", "phone_number": "13700137011", "city": "苏州"}})
            .to_string();
    let t = now();
    let (status, accepted) = call(&app, &url, Some(t), Some(&sign(&secret, t, &body)), &body).await;
    assert_eq!(status, 202, "{accepted}");
    let capture = accepted["capture_id"].as_str().unwrap();
    let lead = app
        .wait_for_assigned_lead(&admin, capture, Duration::from_secs(10))
        .await;
    assert_eq!(lead["name"], "赵六");
    assert_eq!(lead["phone"], "+8613700137011");
    assert_eq!(lead["channel"], "ads");
    assert!(lead["owner_id"].is_string(), "routed to an inbox");

    // The same delivery again (a replay, or the provider retrying): refused, no second lead.
    let (status, _) = call(&app, &url, Some(t), Some(&sign(&secret, t, &body)), &body).await;
    assert_eq!(status, 409);
    // Forged: signed with another secret, or the body changed after signing.
    let other = json!({"event": {"id": "evt-2"}, "lead": {"phone_number": "13700137012"}}).to_string();
    let (status, _) = call(&app, &url, Some(t), Some(&sign("not-the-secret", t, &other)), &other).await;
    assert_eq!(status, 401);
    let (status, _) = call(&app, &url, Some(t), Some(&sign(&secret, t, &body)), &other).await;
    assert_eq!(status, 401);
    // Stale: correctly signed, ten minutes old.
    let old = now() - 600;
    let (status, _) = call(&app, &url, Some(old), Some(&sign(&secret, old, &other)), &other).await;
    assert_eq!(status, 401);
    // Unsigned, or to a source that does not exist.
    let (status, _) = call(&app, &url, None, None, &other).await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &app,
        "/hooks/no-such-source",
        Some(t),
        Some(&sign(&secret, t, &other)),
        &other,
    )
    .await;
    assert_eq!(status, 404);
    // Signed but not JSON, or without an event id: a clear 4xx.
    let (status, _) = call(&app, &url, Some(t), Some(&sign(&secret, t, "{oops")), "{oops").await;
    assert_eq!(status, 400);
    let no_id = json!({"lead": {"phone_number": "13700137013"}}).to_string();
    let (status, _) = call(&app, &url, Some(t), Some(&sign(&secret, t, &no_id)), &no_id).await;
    assert_eq!(status, 422);

    let (_, metrics) = (
        0,
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    for reason in ["replayed", "forged", "stale", "unsigned"] {
        assert!(
            metrics.contains(&format!("huoke_webhooks_refused_total{{reason=\"{reason}\"}}")),
            "{reason} not counted"
        );
    }

    // Disabled: refused from then on.
    let id = source["id"].as_str().unwrap();
    let (status, _) = app
        .send(
            reqwest::Method::DELETE,
            &admin,
            &format!("/v1/webhook-sources/{id}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let fresh = json!({"event": {"id": "evt-9"}, "lead": {"phone_number": "13700137019"}}).to_string();
    let t = now();
    let (status, _) = call(&app, &url, Some(t), Some(&sign(&secret, t, &fresh)), &fresh).await;
    assert_eq!(status, 404);
    app.stop().await;
}
