//! Holes closed: each test here failed on the code before its fix.

use std::time::Duration;

use huoke::all_services;
use serde_json::json;

use crate::cards::{card_for, post_form};
use crate::helpers::{Backend, Environment, TestApp};
use crate::on_both_backends;

on_both_backends!(rotating_forwarded_for_does_not_dodge_rate_limits);

/// No trusted proxies configured (the default): a client that writes a new
/// `X-Forwarded-For` on every post is still one client, and hits the form's limit.
async fn rotating_forwarded_for_does_not_dodge_rate_limits(backend: Backend) {
    let mut env = Environment::new(backend).await;
    env.vars.remove("HUOKE_TRUSTED_PROXIES");
    let app = TestApp::start(&env, all_services()).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let slug = card_for(&app, &admin, &ids["sdr1@demo.local"], json!({"display_name": "Rate"})).await;
    let bot = [
        ("name", "Bot"),
        ("phone", "13700137000"),
        ("website", "http://spam.example"),
    ];

    // Ten posts a minute per address; start early in a window so all eleven share it.
    let into_window = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 60_000;
    if into_window > 50_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into_window + 100) as u64)).await;
    }
    for i in 0..10 {
        let answer = post_form(&app, &slug, &format!("203.0.113.{i}"), None, &bot).await;
        assert_eq!(answer.status, 200, "post {i}");
    }
    let limited = post_form(&app, &slug, "203.0.113.99", None, &bot).await;
    assert_eq!(limited.status, 429, "a fresh X-Forwarded-For is not a fresh client");
    app.stop().await;
}

on_both_backends!(wecom_api_base_must_be_public_https);

/// Scans are anonymous and call WeCom with the tenant's secret: the API base can
/// not point at internal services, nor send the secret over plain HTTP.
async fn wecom_api_base_must_be_public_https(backend: Backend) {
    let (_env, app) = crate::helpers::spawn_app(backend).await;
    let admin = app.admin().await;
    let settings = |base: &str| {
        json!({
            "corp_id": "ww-corp", "secret": "s3cret", "callback_token": "QDG6eK",
            "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "api_base": base,
        })
    };
    for bad in [
        "http://169.254.169.254/latest/meta-data",
        "https://10.0.0.8",
        "http://qyapi.weixin.qq.com",
        "https://localhost:8443",
    ] {
        let (status, body) = app
            .send(reqwest::Method::PUT, &admin, "/v1/integrations/wecom", &settings(bad))
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["errors"][0]["field"], "api_base");
    }
    let (status, body) = app
        .send(
            reqwest::Method::PUT,
            &admin,
            "/v1/integrations/wecom",
            &settings("https://qyapi.weixin.qq.com"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}
