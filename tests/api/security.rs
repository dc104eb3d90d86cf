//! Holes closed: each test here failed on the code before its fix.

use std::time::Duration;

use huoke::all_services;
use serde_json::json;

use crate::cards::{card_for, post_form};
use crate::helpers::{Backend, Environment, PASSWORD, TestApp, start_early_in_a_minute};
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
    start_early_in_a_minute(Duration::from_secs(10)).await;
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

on_both_backends!(sign_in_attempts_are_limited_and_failures_look_alike);

async fn sign_in(app: &TestApp, tenant: &str, email: &str, password: &str) -> (u16, Duration) {
    let started = std::time::Instant::now();
    let resp = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"tenant": tenant, "email": email, "password": password}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), started.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Guessing is slowed per account and per address, and a wrong e-mail cannot be
/// told from a wrong password by how long the answer takes.
async fn sign_in_attempts_are_limited_and_failures_look_alike(backend: Backend) {
    let mut env = Environment::new(backend).await;
    env.vars.insert("HUOKE_LOGIN_WINDOW_SECS".into(), "60".into());
    let app = TestApp::start(&env, all_services()).await;
    start_early_in_a_minute(Duration::from_secs(20)).await;
    let admin = "admin@demo.local";

    // Failures take as long whatever failed (both pay for one argon2 check).
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let (status, took) = sign_in(&app, "demo", &format!("ghost{i}@demo.local"), "whatever-1").await;
        assert_eq!(status, 401);
        unknown.push(took);
        let (status, took) = sign_in(&app, "demo", admin, "wrong-password").await;
        assert_eq!(status, 401);
        wrong.push(took);
    }
    let (unknown, wrong) = (median(unknown), median(wrong));
    assert!(
        unknown * 2 >= wrong,
        "an unknown e-mail answered in {unknown:?}, a wrong password in {wrong:?}"
    );

    // Ten attempts per account and window, right or wrong: the eleventh is refused
    // even with the right password.
    for _ in 3..10 {
        assert_eq!(sign_in(&app, "demo", admin, "wrong-password").await.0, 401);
    }
    assert_eq!(sign_in(&app, "demo", admin, PASSWORD).await.0, 429);

    // Thirty per address and minute, whatever account they aim at.
    for i in 0..16 {
        assert_eq!(
            sign_in(&app, "demo", &format!("spray{i}@demo.local"), "x-password")
                .await
                .0,
            401
        );
    }
    assert_eq!(sign_in(&app, "demo", "sdr1@demo.local", PASSWORD).await.0, 429);
    app.stop().await;
}

on_both_backends!(switching_someone_off_revokes_their_tokens_at_once);

/// A token lives for hours; switching its holder off ends it now, and switching
/// them on again does not bring the old token back.
async fn switching_someone_off_revokes_their_tokens_at_once(backend: Backend) {
    let (_env, app) = crate::helpers::spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr2_id = &ids["sdr2@demo.local"];
    let sdr2 = app.login("demo", "sdr2@demo.local", PASSWORD).await;
    assert_eq!(app.get(&sdr2, "/v1/me").await.0, 200);

    let path = format!("/v1/staff/{sdr2_id}");
    let (on, off) = (json!({"active": true}), json!({"active": false}));
    assert_eq!(app.send(reqwest::Method::PATCH, &admin, &path, &off).await.0, 200);
    assert_eq!(app.get(&sdr2, "/v1/me").await.0, 401);
    assert_eq!(app.get(&sdr2, "/v1/inbox").await.0, 401);
    assert_eq!(sign_in(&app, "demo", "sdr2@demo.local", PASSWORD).await.0, 401);

    assert_eq!(app.send(reqwest::Method::PATCH, &admin, &path, &on).await.0, 200);
    assert_eq!(app.get(&sdr2, "/v1/me").await.0, 401, "the old token stays revoked");
    // Revocation is kept per second: a new token from a later second works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = app.login("demo", "sdr2@demo.local", PASSWORD).await;
    assert_eq!(app.get(&again, "/v1/me").await.0, 200);
    // Others are untouched.
    assert_eq!(app.get(&admin, "/v1/me").await.0, 200);
    app.stop().await;
}

on_both_backends!(a_logo_that_claims_a_huge_image_is_refused_from_its_header);

/// CRC-32 (IEEE) of PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A few hundred bytes that say "30000 × 30000 pixels": decoding it first would
/// reserve most of a gigabyte.
fn png_bomb() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 30_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&30_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(chunk(b"IEND", &[]));
    png
}

async fn a_logo_that_claims_a_huge_image_is_refused_from_its_header(backend: Backend) {
    let (_env, app) = crate::helpers::spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = crate::codes::create_code(
        &app,
        &admin,
        json!({"name": "bomb", "members": [{"staff_id": ids["sdr1@demo.local"]}]}),
    )
    .await;
    let started = std::time::Instant::now();
    let resp = app
        .client
        .put(app.url(&format!("/v1/live-codes/{}/logo", code["id"].as_str().unwrap())))
        .bearer_auth(&admin)
        .header("content-type", "image/png")
        .body(png_bomb())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert!(problem.to_string().contains("2048"), "refused for its size: {problem}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    app.stop().await;
}

on_both_backends!(a_campaign_zip_is_bounded);

/// Seventeen codes at 4,096 pixels would be ~285 M pixels rendered into memory at
/// once: refused with a way out; the same codes at a normal size are served.
async fn a_campaign_zip_is_bounded(backend: Backend) {
    let (_env, app) = crate::helpers::spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let (_, campaign) = app.post(&admin, "/v1/campaigns", &json!({"name": "Big expo"})).await;
    for i in 0..17 {
        crate::codes::create_code(
            &app,
            &admin,
            json!({"name": format!("booth {i}"), "campaign_id": campaign["id"], "members": [{"staff_id": ids["sdr1@demo.local"]}]}),
        )
        .await;
    }
    let zip = |size: u32| {
        app.client
            .get(app.url(&format!(
                "/v1/campaigns/{}/qr.zip?size={size}",
                campaign["id"].as_str().unwrap()
            )))
            .bearer_auth(&admin)
            .send()
    };
    let refused = zip(4096).await.unwrap();
    assert_eq!(refused.status(), 422);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "size", "{problem}");
    assert_eq!(zip(256).await.unwrap().status(), 200);
    app.stop().await;
}

on_both_backends!(a_flood_of_card_views_from_one_address_stops_writing_rows);

/// Every view is served, but one address cannot write a row per request.
async fn a_flood_of_card_views_from_one_address_stops_writing_rows(backend: Backend) {
    let (_env, app) = crate::helpers::spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let slug = card_for(&app, &admin, &ids["sdr3@demo.local"], json!({"display_name": "Flood"})).await;
    start_early_in_a_minute(Duration::from_secs(15)).await;
    for _ in 0..75 {
        let resp = app
            .client
            .get(app.url(&format!("/c/{slug}")))
            .header("X-Forwarded-For", "198.18.0.7")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM card_events WHERE kind = 'view'")
        .fetch_one(app.app.infra().store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 60, "views recorded from one address in a minute");
    app.stop().await;
}

on_both_backends!(access_tokens_are_short_and_refresh_tokens_rotate);

/// Access tokens live minutes; a refresh token buys a new pair once, and never
/// for someone switched off.
async fn access_tokens_are_short_and_refresh_tokens_rotate(backend: Backend) {
    let (_env, app) = crate::helpers::spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let signed_in: serde_json::Value = app
        .client
        .post(app.url("/v1/auth/token"))
        .json(&json!({"tenant": "demo", "email": "sdr1@demo.local", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(signed_in["expires_in"], 900, "{signed_in}");
    let first = signed_in["refresh_token"].as_str().unwrap().to_string();
    assert!(first.starts_with("hkr_"));

    let refresh = |token: String| {
        let app = &app;
        async move {
            let resp = app
                .client
                .post(app.url("/v1/auth/refresh"))
                .json(&json!({ "refresh_token": token }))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let (status, pair) = refresh(first.clone()).await;
    assert_eq!(status, 200, "{pair}");
    let second = pair["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(app.get(pair["access_token"].as_str().unwrap(), "/v1/me").await.0, 200);
    assert_eq!(refresh(first).await.0, 401, "a refresh token works once");

    let off = json!({"active": false});
    let path = format!("/v1/staff/{}", ids["sdr1@demo.local"]);
    assert_eq!(app.send(reqwest::Method::PATCH, &admin, &path, &off).await.0, 200);
    assert_eq!(refresh(second).await.0, 401, "not for someone switched off");
    assert_eq!(refresh("hkr_made_up".into()).await.0, 401);
    app.stop().await;
}
