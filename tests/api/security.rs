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
