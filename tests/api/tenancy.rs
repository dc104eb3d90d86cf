use std::time::Duration;

use huoke_shared::repo::tenants::create_tenant;
use serde_json::json;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_tenant_never_sees_another_tenants_data,
    idempotency_keys_replay_and_refuse_other_bodies
);

async fn a_tenant_never_sees_another_tenants_data(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    create_tenant(
        &app.app.infra().store,
        "other",
        "Other Co.",
        "boss@other.example",
        "other-password",
    )
    .await
    .unwrap();
    let demo = app.admin().await;
    let other = app.login("other", "boss@other.example", "other-password").await;

    let capture = app
        .post_lead(&demo, json!({"phone": "13700137000", "channel": "api"}))
        .await;
    let lead = app
        .wait_for_assigned_lead(&demo, &capture, Duration::from_secs(5))
        .await;
    let lead_id = lead["id"].as_str().unwrap();
    let owner_id = lead["owner_id"].as_str().unwrap();

    for path in [
        format!("/v1/captures/{capture}"),
        format!("/v1/leads/{lead_id}"),
        format!("/v1/staff/{owner_id}"),
    ] {
        let (status, _) = app.get(&other, &path).await;
        assert_eq!(status, 404, "{path} leaked across tenants");
    }
    let (_, staff) = app.get(&other, "/v1/staff").await;
    let emails: Vec<_> = staff["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["boss@other.example"]);
    let (status, _) = app
        .post(
            &other,
            &format!("/v1/assignments/{}/accept", lead["assignment"]["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);

    // The same phone in the other tenant is a different lead there, routed nowhere
    // (that tenant has no SDRs) and never merged with demo's.
    let theirs = app
        .post_lead(&other, json!({"phone": "13700137000", "channel": "api"}))
        .await;
    let their_lead = crate::helpers::eventually(Duration::from_secs(5), "the other tenant's lead", || async {
        let (_, c) = app.get(&other, &format!("/v1/captures/{theirs}")).await;
        c["lead_id"].as_str().map(str::to_string)
    })
    .await;
    assert_ne!(their_lead, lead_id);
    let (status, _) = app.get(&demo, &format!("/v1/leads/{their_lead}")).await;
    assert_eq!(status, 404);
    app.stop().await;
}

async fn idempotency_keys_replay_and_refuse_other_bodies(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let send = |body: serde_json::Value| {
        app.client
            .post(app.url("/v1/leads"))
            .bearer_auth(&admin)
            .header("Idempotency-Key", "order-42")
            .json(&body)
            .send()
    };
    let first = send(json!({"phone": "13600136000", "channel": "api"})).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: serde_json::Value = first.json().await.unwrap();
    let again = send(json!({"channel": "api", "phone": "13600136000"})).await.unwrap();
    assert_eq!(again.status(), 202);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(first["capture_id"], again["capture_id"]);
    let conflict = send(json!({"phone": "13600136001", "channel": "api"})).await.unwrap();
    assert_eq!(conflict.status(), 409);
    app.stop().await;
}
