use serde_json::{Value, json};

use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(bad_input_gets_a_problem_document_never_a_500);

async fn assert_problem(resp: reqwest::Response, expected: u16, what: &str) -> Value {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, expected, "{what}: {body}");
    assert_eq!(content_type, "application/problem+json", "{what}");
    assert_eq!(body["status"], expected, "{what}");
    assert!(
        body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
        "{what}: {body}"
    );
    body
}

async fn bad_input_gets_a_problem_document_never_a_500(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let leads = app.url("/v1/leads");
    let post = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(&leads)
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    assert_problem(
        post(b"{\"phone\": \"138".to_vec(), "application/json").await.unwrap(),
        400,
        "malformed JSON",
    )
    .await;
    assert_problem(post(b"".to_vec(), "application/json").await.unwrap(), 400, "empty body").await;
    assert_problem(
        post(b"[1,2]".to_vec(), "application/json").await.unwrap(),
        422,
        "an array",
    )
    .await;

    let body = assert_problem(
        post(br#"{"name": "Li", "channel": "api"}"#.to_vec(), "application/json")
            .await
            .unwrap(),
        422,
        "no contact",
    )
    .await;
    assert!(body["errors"].as_array().unwrap().iter().any(|e| e["field"] == "phone"));

    let body = assert_problem(
        post(
            br#"{"phone": 13800138000, "channel": "api"}"#.to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
        422,
        "a number where a string belongs",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "phone");
    let body = assert_problem(
        post(
            br#"{"phone": "13800138000", "channel": "carrier_pigeon"}"#.to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
        422,
        "unknown channel",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "channel");
    let body = assert_problem(
        post(
            br#"{"phone": "13800138000", "channel": "api", "wechat": "abc"}"#.to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
        422,
        "wechat as a string",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "wechat");
    assert_problem(
        post(
            br#"{"phone": "12", "email": "nope", "channel": "api"}"#.to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
        422,
        "bad phone and e-mail",
    )
    .await;

    let huge = format!(
        "{{\"phone\": \"13800138000\", \"channel\": \"api\", \"name\": \"{}\"}}",
        "x".repeat(10 * 1024 * 1024)
    );
    assert_problem(
        post(huge.into_bytes(), "application/json").await.unwrap(),
        413,
        "a 10 MB body",
    )
    .await;
    assert_problem(
        post(b"phone=1".to_vec(), "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        415,
        "a form body",
    )
    .await;

    // No or a bad token.
    let resp = app
        .client
        .post(&leads)
        .json(&json!({"phone": "13800138000", "channel": "api"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "no token").await;
    let resp = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "a forged token").await;
    // Unknown things.
    let resp = app
        .client
        .get(app.url("/v1/captures/does-not-exist"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 404, "unknown capture").await;
    let resp = app.client.get(app.url("/v1/nothing-here")).send().await.unwrap();
    assert_problem(resp, 404, "unknown route").await;
    let resp = app
        .client
        .get(app.url("/v1/staff?limit=100000"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(resp, 422, "limit too large").await;
    let resp = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"tenant": "demo", "email": "admin@demo.local", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "wrong password").await;
    app.stop().await;
}
