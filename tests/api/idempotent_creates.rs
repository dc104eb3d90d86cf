//! `Idempotency-Key` on the create endpoints: a retry gets the first answer (without
//! the secret shown once), another body with the same key is refused, and only one
//! object exists.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::identity::lead_of;
use crate::on_both_backends;

on_both_backends!(retried_creates_make_one_object);

async fn post_keyed(app: &TestApp, token: &str, path: &str, key: &str, body: &Value) -> (u16, bool, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (status, replayed, resp.json().await.unwrap_or(Value::Null))
}

async fn retried_creates_make_one_object(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let form = json!({"name": "Expo form", "fields": ["name", "phone"], "required": ["phone"]});
    let sdr = app.staff_ids(&admin).await["sdr1@demo.local"].clone();
    let (status, capture) = app
        .post(
            &admin,
            "/v1/leads",
            &json!({"channel": "website", "phone": "13800138099"}),
        )
        .await;
    assert_eq!(status, 202, "{capture}");
    let lead = lead_of(&app, &admin, capture["capture_id"].as_str().unwrap()).await;
    let activities = format!("/v1/leads/{}/activities", lead["id"].as_str().unwrap());
    let cases = [
        (
            "/v1/api-keys",
            json!({"name": "crm"}),
            json!({"name": "crm 2"}),
            Some("key"),
        ),
        (
            "/v1/webhook-subscriptions",
            json!({"url": "https://hooks.example.com/in", "events": ["*"]}),
            json!({"url": "https://hooks.example.com/other", "events": ["*"]}),
            Some("secret"),
        ),
        (
            "/v1/webhook-sources",
            json!({"name": "ads", "channel": "ads", "mapping": {"/phone": "phone"}}),
            json!({"name": "ads 2", "channel": "ads", "mapping": {"/phone": "phone"}}),
            Some("secret"),
        ),
        (
            "/v1/forms",
            form.clone(),
            json!({"name": "Other form", "fields": ["phone"], "required": ["phone"]}),
            None,
        ),
        (
            "/v1/live-codes",
            json!({"name": "expo", "members": [{"staff_id": sdr}]}),
            json!({"name": "expo 2", "members": [{"staff_id": sdr}]}),
            None,
        ),
        (
            "/v1/teams",
            json!({"name": "East", "members": [sdr]}),
            json!({"name": "West"}),
            None,
        ),
        (
            "/v1/campaigns",
            json!({"name": "Spring"}),
            json!({"name": "Autumn"}),
            None,
        ),
        (
            "/v1/channels",
            json!({"name": "Expo booth", "kind": "seminar"}),
            json!({"name": "Expo flyer", "kind": "seminar"}),
            None,
        ),
        (
            activities.as_str(),
            json!({"kind": "call", "body": "left a message"}),
            json!({"kind": "note", "body": "another"}),
            None,
        ),
    ];
    for (path, body, other, secret) in cases {
        let (status, replayed, first) = post_keyed(&app, &admin, path, "create-1", &body).await;
        assert_eq!(status, 201, "{path}: {first}");
        assert!(!replayed);
        if let Some(field) = secret {
            assert!(
                first[field].is_string(),
                "{path}: the secret is shown the first time: {first}"
            );
        }
        let (status, replayed, again) = post_keyed(&app, &admin, path, "create-1", &body).await;
        assert_eq!(status, 201, "{path}: {again}");
        assert!(replayed, "{path}: marked as a replay");
        assert_eq!(again["id"], first["id"], "{path}: the same object");
        if let Some(field) = secret {
            assert!(again.get(field).is_none(), "{path}: the secret is not kept: {again}");
        }
        let (status, _, problem) = post_keyed(&app, &admin, path, "create-1", &other).await;
        assert_eq!(status, 422, "{path}: {problem}");
        // Another key is another object.
        let (status, _, second) = post_keyed(&app, &admin, path, "create-2", &body).await;
        if ["/v1/teams", "/v1/campaigns"].contains(&path) {
            assert_eq!(status, 409, "{path}: names are unique: {second}");
            continue;
        }
        assert_eq!(status, 201, "{path}: {second}");
        assert_ne!(second["id"], first["id"]);
    }
    // Staff: a retried invitation is one person (a second key with the same e-mail is
    // the usual conflict).
    let person = json!({"name": "Wang", "email": "wang@demo.local", "roles": ["sdr"]});
    let (status, _, first) = post_keyed(&app, &admin, "/v1/staff", "invite-1", &person).await;
    assert_eq!(status, 201, "{first}");
    let (status, replayed, again) = post_keyed(&app, &admin, "/v1/staff", "invite-1", &person).await;
    assert_eq!((status, replayed), (201, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    let (status, _, _) = post_keyed(&app, &admin, "/v1/staff", "invite-2", &person).await;
    assert_eq!(status, 409);
    // The same key on another lead is another request, so it is refused.
    let (status, capture) = app
        .post(
            &admin,
            "/v1/leads",
            &json!({"channel": "website", "phone": "13800138098"}),
        )
        .await;
    assert_eq!(status, 202, "{capture}");
    let other = lead_of(&app, &admin, capture["capture_id"].as_str().unwrap()).await;
    let (status, _, _) = post_keyed(
        &app,
        &admin,
        &format!("/v1/leads/{}/activities", other["id"].as_str().unwrap()),
        "create-1",
        &json!({"kind": "call", "body": "left a message"}),
    )
    .await;
    assert_eq!(status, 422);
    app.stop().await;
}
