//! API keys: made by an admin and shown once, scoped, usable where machines call,
//! revoked at once, and never crossing tenants.

use huoke_shared::repo::tenants::create_tenant;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, spawn_app};
use crate::on_both_backends;

on_both_backends!(api_keys_are_scoped_revocable_and_tenant_bound);

async fn api_keys_are_scoped_revocable_and_tenant_bound(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;

    // Only admins make keys; nonsense is refused with the field named.
    let sdr = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let (status, _) = app.post(&sdr, "/v1/api-keys", &json!({"name": "x"})).await;
    assert_eq!(status, 403);
    for bad in [
        json!({"name": "x", "scopes": ["leads:delete"]}),
        json!({"name": "x", "roles": ["admin"]}),
        json!({"name": "", "scopes": ["leads:write"]}),
        json!({"name": "x", "scopes": []}),
    ] {
        let (status, problem) = app.post(&admin, "/v1/api-keys", &bad).await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }

    let (status, writer) = app.post(&admin, "/v1/api-keys", &json!({"name": "Ad platform"})).await;
    assert_eq!(status, 201, "{writer}");
    let write_key = writer["key"].as_str().unwrap().to_string();
    assert!(write_key.starts_with("hk_"), "{write_key}");
    assert_eq!(writer["scopes"], json!(["leads:write"]), "leads:write by default");
    let (_, reader) = app
        .post(&admin, "/v1/api-keys", &json!({"name": "BI", "scopes": ["leads:read"]}))
        .await;
    let read_key = reader["key"].as_str().unwrap().to_string();
    let (_, marketer) = app
        .post(
            &admin,
            "/v1/api-keys",
            &json!({"name": "Campaign tool", "scopes": [], "roles": ["marketer"]}),
        )
        .await;
    let marketer_key = marketer["key"].as_str().unwrap().to_string();

    // The key is shown once: lists show its prefix, never the key or its hash.
    let (status, list) = app.get(&admin, "/v1/api-keys").await;
    assert_eq!(status, 200);
    let listed = list.to_string();
    assert!(!listed.contains(&write_key) && !listed.contains("key_hash"), "{listed}");
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert!(write_key.starts_with(list["items"][2]["prefix"].as_str().unwrap()));

    // leads:write posts leads and reads their captures, nothing else.
    let capture = app
        .post_lead(&write_key, json!({"phone": "13900139077", "channel": "ads"}))
        .await;
    let (status, seen) = app.get(&write_key, &format!("/v1/captures/{capture}")).await;
    assert_eq!(status, 200, "{seen}");
    let lead = app
        .wait_for_assigned_lead(&admin, &capture, std::time::Duration::from_secs(10))
        .await;
    let lead_path = format!("/v1/leads/{}", lead["id"].as_str().unwrap());
    assert_eq!(app.get(&write_key, &lead_path).await.0, 403);
    assert_eq!(app.get(&write_key, "/v1/staff").await.0, 403);
    // leads:read reads leads but does not post them.
    assert_eq!(app.get(&read_key, &lead_path).await.0, 200);
    let (status, _) = app
        .post(
            &read_key,
            "/v1/leads",
            &json!({"phone": "13900139078", "channel": "ads"}),
        )
        .await;
    assert_eq!(status, 403);
    // A key with a role acts with that role, as nobody in particular.
    let (status, campaign) = app
        .post(&marketer_key, "/v1/campaigns", &json!({"name": "Spring fair"}))
        .await;
    assert_eq!(status, 201, "{campaign}");
    assert_eq!(app.get(&marketer_key, "/v1/me").await.0 / 100, 4);

    // Another tenant's admin can neither see nor revoke the key.
    create_tenant(
        &app.app.infra().store,
        "other",
        "Other Co.",
        "boss@other.example",
        "other-password",
    )
    .await
    .unwrap();
    let other = app.login("other", "boss@other.example", "other-password").await;
    let (_, theirs) = app.get(&other, "/v1/api-keys").await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    let id = writer["id"].as_str().unwrap();
    let (status, _) = app
        .send(Method::DELETE, &other, &format!("/v1/api-keys/{id}"), &json!({}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.get(&other, &format!("/v1/captures/{capture}")).await.0, 404);

    // Revoked: refused at once.
    let (status, _) = app
        .send(Method::DELETE, &admin, &format!("/v1/api-keys/{id}"), &json!({}))
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .post(
            &write_key,
            "/v1/leads",
            &json!({"phone": "13900139079", "channel": "ads"}),
        )
        .await;
    assert_eq!(status, 401);
    let (_, list) = app.get(&admin, "/v1/api-keys").await;
    let revoked = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap();
    assert!(revoked["revoked_at"].is_string());
    assert!(revoked["last_used_at"].is_string(), "use is recorded");
    // An unknown key is 401, not a 500.
    assert_eq!(app.get("hk_nonsense", "/v1/staff").await.0, 401);
    app.stop().await;
}
