use serde_json::json;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(admins_manage_staff_and_everyone_sees_themselves);

async fn admins_manage_staff_and_everyone_sees_themselves(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;

    let (status, me) = app.get(&admin, "/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "admin@demo.local");
    assert_eq!(me["roles"], json!(["admin"]));
    assert_eq!(me["tenant"]["slug"], "demo");

    let (status, created) = app
        .post(&admin, "/v1/staff", &json!({"name": "Zhao Min", "email": "Zhao@Demo.Local", "roles": ["sdr"], "capacity": 20, "password": "zhao-password"}))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["email"], "zhao@demo.local");
    assert_eq!(created["active"], true);
    assert!(created.get("password_hash").is_none() && created.get("password").is_none());

    let (status, _) = app
        .post(
            &admin,
            "/v1/staff",
            &json!({"name": "Again", "email": "zhao@demo.local", "roles": ["sdr"]}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, problem) = app
        .post(
            &admin,
            "/v1/staff",
            &json!({"name": "", "email": "x", "roles": ["wizard"]}),
        )
        .await;
    assert_eq!(status, 422);
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"name") && fields.contains(&"email") && fields.contains(&"roles"),
        "{fields:?}"
    );

    let zhao = app.login("demo", "zhao@demo.local", "zhao-password").await;
    let (status, me) = app.get(&zhao, "/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], created["id"]);
    // An SDR may not create or list staff.
    let (status, _) = app
        .post(
            &zhao,
            "/v1/staff",
            &json!({"name": "X", "email": "x@demo.local", "roles": ["admin"]}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app.get(&zhao, "/v1/staff").await;
    assert_eq!(status, 403);

    // Paging: the demo tenant has admin, three SDRs and Zhao.
    let (_, page1) = app.get(&admin, "/v1/staff?limit=2").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app.get(&admin, &format!("/v1/staff?limit=2&cursor={cursor}")).await;
    let (_, page3) = app
        .get(
            &admin,
            &format!("/v1/staff?limit=2&cursor={}", page2["next_cursor"].as_str().unwrap()),
        )
        .await;
    assert_eq!(page3["items"].as_array().unwrap().len(), 1);
    assert!(page3["next_cursor"].is_null());
    app.stop().await;
}
