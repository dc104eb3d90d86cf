//! Outbound webhooks: subscriptions refuse internal addresses, deliveries are signed,
//! retried until the receiver answers, parked when it never does, and replayed.

use std::time::Duration;

use hmac::{Hmac, Mac};
use huoke::all_services;
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Environment, PASSWORD, TestApp, eventually};
use crate::on_both_backends;

on_both_backends!(outbound_webhooks_are_signed_retried_parked_and_replayed);

async fn subscribe(app: &TestApp, admin: &str, url: &str, events: Value) -> (u16, Value) {
    app.post(
        admin,
        "/v1/webhook-subscriptions",
        &json!({"url": url, "events": events}),
    )
    .await
}

async fn deliveries(app: &TestApp, admin: &str, subscription: &str) -> Vec<Value> {
    let (status, list) = app
        .get(admin, &format!("/v1/webhook-subscriptions/{subscription}/deliveries"))
        .await;
    assert_eq!(status, 200, "{list}");
    list["items"].as_array().unwrap().clone()
}

async fn outbound_webhooks_are_signed_retried_parked_and_replayed(backend: Backend) {
    let mut env = Environment::new(backend).await;
    for (k, v) in [
        ("HUOKE_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1"),
        ("HUOKE_WEBHOOK_MAX_ATTEMPTS", "3"),
        ("HUOKE_BUS_RETRY_BASE_MS", "100"),
        ("HUOKE_BUS_RETRY_CAP_MS", "400"),
    ] {
        env.vars.insert(k.into(), v.into());
    }
    let app = TestApp::start(&env, all_services()).await;
    let admin = app.admin().await;

    // Internal addresses, plain HTTP to public hosts and unknown events are refused.
    for url in [
        "https://169.254.169.254/latest",
        "http://example.com/hook",
        "https://10.0.0.7/hook",
        "ftp://127.0.0.1/x",
    ] {
        let (status, problem) = subscribe(&app, &admin, url, json!(["lead.qualified"])).await;
        assert_eq!(status, 422, "{url}: {problem}");
    }
    let (status, _) = subscribe(&app, &admin, "https://hooks.example.com/x", json!(["lead.exploded"])).await;
    assert_eq!(status, 422);
    let sdr = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let (status, _) = subscribe(&app, &sdr, "https://hooks.example.com/x", json!(["*"])).await;
    assert_eq!(status, 403);

    // A receiver that fails twice, then takes it.
    let flaky = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .mount(&flaky)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&flaky)
        .await;
    let (status, sub) = subscribe(
        &app,
        &admin,
        &format!("{}/hook", flaky.uri()),
        json!(["lead.qualified"]),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let secret = sub["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let (_, listed) = app.get(&admin, "/v1/webhook-subscriptions").await;
    assert!(
        listed["items"][0].get("secret").is_none(),
        "the secret is shown once: {listed}"
    );

    // A receiver that is down for good.
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let (status, dead_sub) = subscribe(&app, &admin, &format!("{}/in", down.uri()), json!(["lead.assigned"])).await;
    assert_eq!(status, 201, "{dead_sub}");
    let dead_sub_id = dead_sub["id"].as_str().unwrap().to_string();

    let capture = app
        .post_lead(
            &admin,
            json!({"name": "Hook Test", "phone": "13400134001", "channel": "website"}),
        )
        .await;
    let lead = app
        .wait_for_assigned_lead(&admin, &capture, Duration::from_secs(20))
        .await;

    let delivered = eventually(Duration::from_secs(30), "the delivery to get through", || async {
        deliveries(&app, &admin, &sub_id)
            .await
            .into_iter()
            .find(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(delivered["attempts"], 3, "{delivered}");
    assert_eq!(delivered["last_status"], 204);
    assert_eq!(delivered["event_type"], "lead.qualified");

    let requests = flaky.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let ids: Vec<&str> = requests
        .iter()
        .map(|r| r.headers.get("x-huoke-delivery").unwrap().to_str().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one delivery id on every try: {ids:?}"
    );
    let last = requests.last().unwrap();
    let body: Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(body["type"], "lead.qualified");
    assert_eq!(body["data"]["lead_id"], lead["id"]);
    let timestamp = last.headers.get("x-huoke-timestamp").unwrap().to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&last.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        last.headers.get("x-huoke-signature").unwrap().to_str().unwrap(),
        expected
    );

    // The dead receiver's delivery is tried three times, then parked.
    let parked = eventually(Duration::from_secs(30), "the failing delivery parked", || async {
        let (_, list) = app.get(&admin, "/v1/admin/dead-letters?queue=notify.deliveries").await;
        list["items"].as_array().and_then(|items| items.first().cloned())
    })
    .await;
    assert_eq!(parked["type"], "webhook.delivery");
    assert_eq!(down.received_requests().await.unwrap().len(), 3);
    let failing = deliveries(&app, &admin, &dead_sub_id).await;
    assert_eq!(failing[0]["status"], "failing");
    assert_eq!(failing[0]["last_status"], 503);

    // The receiver is back: replaying the dead letter delivers it.
    down.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&down)
        .await;
    let (status, replayed) = app
        .post(
            &admin,
            &format!("/v1/admin/dead-letters/{}/replay", parked["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{replayed}");
    eventually(
        Duration::from_secs(30),
        "the replayed delivery to get through",
        || async {
            let list = deliveries(&app, &admin, &dead_sub_id).await;
            (list[0]["status"] == "delivered").then_some(())
        },
    )
    .await;

    // Revoked: nothing more is sent.
    let (status, _) = app
        .send(
            reqwest::Method::DELETE,
            &admin,
            &format!("/v1/webhook-subscriptions/{sub_id}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let before = flaky.received_requests().await.unwrap().len();
    let again = app
        .post_lead(
            &admin,
            json!({"name": "After", "phone": "13400134002", "channel": "website"}),
        )
        .await;
    app.wait_for_assigned_lead(&admin, &again, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(flaky.received_requests().await.unwrap().len(), before);
    app.stop().await;
}
