//! Every channel's capture survives a broker and cache outage: a signed webhook, a
//! hosted form and a bulk import are each answered 202 while RabbitMQ and Redis are
//! unreachable, and each becomes an assigned lead once they are back.

use std::time::Duration;

use hmac::{Hmac, Mac};
use huoke::all_services;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Backend, Environment, TestApp, eventually, services_available};
use crate::pipeline::proxied;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_keeps_its_captures_through_an_outage() {
    crate::helpers::bounded(scenario()).await;
}

async fn scenario() {
    if !services_available() {
        return;
    }
    let mut env = Environment::new(Backend::Services).await;
    let amqp = proxied(&mut env, "AMQP_URL").await;
    let redis = proxied(&mut env, "REDIS_URL").await;
    let app = TestApp::start(&env, all_services()).await;
    let admin = app.admin().await;
    let (status, source) = app
        .post(
            &admin,
            "/v1/webhook-sources",
            &json!({"name": "ads", "channel": "ads", "mapping": {"/phone": "phone", "/name": "name"}}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    let (status, form) = app
        .post(&admin, "/v1/forms", &json!({"name": "Expo", "fields": ["name", "phone"], "required": ["phone"], "allowed_origins": ["https://www.example.com"]}))
        .await;
    assert_eq!(status, 201, "{form}");

    amqp.cut();
    redis.cut();

    // A signed webhook.
    let body = json!({"id": "evt-outage", "name": "Webhook", "phone": "13500135801"}).to_string();
    let t = chrono::Utc::now().timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(source["secret"].as_str().unwrap().as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let resp = app
        .client
        .post(app.url(source["url"].as_str().unwrap()))
        .header("content-type", "application/json")
        .header("X-Huoke-Timestamp", t.to_string())
        .header(
            "X-Huoke-Signature",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "the webhook is accepted during the outage");
    let webhook: Value = resp.json().await.unwrap();

    // A hosted form, posted by a company site.
    let resp = app
        .client
        .post(app.url(&format!("/f/{}/submit", form["id"].as_str().unwrap())))
        .header("origin", "https://www.example.com")
        .json(&json!({"name": "Form", "phone": "13500135802"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "the form is accepted during the outage");
    let submitted: Value = resp.json().await.unwrap();

    // A file of leads.
    let resp = app
        .client
        .post(app.url("/v1/leads/bulk?channel=web_form"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body("name,phone\nImported,13500135803\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "the import is accepted during the outage");
    let import: Value = resp.json().await.unwrap();
    let import_id = import["import_id"].as_str().unwrap().to_string();
    // The import needs only the store: it finishes while the broker is away.
    eventually(
        Duration::from_secs(20),
        "the import to finish during the outage",
        || async {
            let (_, i) = app.get(&admin, &format!("/v1/imports/{import_id}")).await;
            (i["status"] == "done").then_some(())
        },
    )
    .await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    amqp.restore();
    redis.restore();
    for capture in [&webhook["capture_id"], &submitted["capture_id"]] {
        let lead = app
            .wait_for_assigned_lead(&admin, capture.as_str().unwrap(), Duration::from_secs(60))
            .await;
        assert!(lead["owner_id"].is_string());
    }
    let imported = eventually(Duration::from_secs(60), "the imported lead assigned", || async {
        let rows: Vec<(Option<String>,)> = sqlx::query_as("SELECT owner_id FROM leads WHERE phone = '+8613500135803'")
            .fetch_all(app.app.infra().store.pool())
            .await
            .unwrap();
        rows.first().and_then(|(owner,)| owner.clone())
    })
    .await;
    assert!(!imported.is_empty());
    app.stop().await;
}
