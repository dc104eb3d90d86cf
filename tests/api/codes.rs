//! Live codes and the scan path, on both backends.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, eventually, no_redirects, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    caps_hold_under_200_concurrent_scans,
    rotation_modes_share_scans_as_configured,
    schedule_offline_members_and_backup,
    returning_visitors_keep_their_member_without_using_a_cap,
    disabled_deleted_and_unknown_codes,
    scans_never_redirect_off_site,
    group_codes_fill_in_turn,
    stats_count_scans_visitors_picks_and_captures,
    codes_stay_inside_their_tenant,
    a_flood_from_one_address_is_refused,
    the_scan_path_answers_only_get_on_one_segment,
);

async fn the_scan_path_answers_only_get_on_one_segment(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let client = no_redirects();
    let post = client.post(app.url("/s/abcdefgh12")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    for path in ["/s/abcdefgh12/more", "/s/", "/s", "/s/abc%20defgh12"] {
        let resp = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    app.stop().await;
}

pub async fn create_code(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, code) = app.post(token, "/v1/live-codes", &body).await;
    assert_eq!(status, 201, "{code}");
    code
}

/// The name on the page a scan lands on (`<h1>` of our pages), or the redirect target.
pub async fn landing(client: &reqwest::Client, url: &str, user_agent: &str) -> (u16, String) {
    let resp = client.get(url).header("user-agent", user_agent).send().await.unwrap();
    let status = resp.status().as_u16();
    if let Some(location) = resp.headers().get("location") {
        return (status, location.to_str().unwrap().to_string());
    }
    let body = resp.text().await.unwrap();
    let name = body
        .split("<h1>")
        .nth(1)
        .and_then(|s| s.split("</h1>").next())
        .unwrap_or("")
        .to_string();
    (status, name)
}

async fn scan_as_new_visitor(app: &TestApp, code: &str) -> String {
    landing(&no_redirects(), &app.url(&format!("/s/{code}")), "Mozilla/5.0")
        .await
        .1
}

async fn caps_hold_under_200_concurrent_scans(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(
        &app,
        &admin,
        json!({
            "name": "Expo hall",
            "members": [
                {"staff_id": ids["sdr1@demo.local"], "daily_limit": 30},
                {"staff_id": ids["sdr2@demo.local"], "daily_limit": 40},
                {"staff_id": ids["sdr3@demo.local"], "daily_limit": 50},
            ],
            "backup_staff_id": ids["admin@demo.local"],
        }),
    )
    .await;
    let url = app.url(&format!("/s/{}", code["code"].as_str().unwrap()));
    // One client (its pool opens the connections) and all 200 requests released at
    // once; no cookies, so every scan is a new visitor.
    let client = no_redirects();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (url, client, start) = (url.clone(), client.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            landing(&client, &url, "Mozilla/5.0").await
        }));
    }
    let mut landed: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let (status, name) = t.await.unwrap();
        assert_eq!(status, 200);
        *landed.entry(name).or_default() += 1;
    }
    assert_eq!(landed.get("SDR 1"), Some(&30), "{landed:?}");
    assert_eq!(landed.get("SDR 2"), Some(&40), "{landed:?}");
    assert_eq!(landed.get("SDR 3"), Some(&50), "{landed:?}");
    assert_eq!(landed.get("Administrator"), Some(&80), "{landed:?}");
    app.stop().await;
}

async fn rotation_modes_share_scans_as_configured(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let (s1, s2, s3) = (
        &ids["sdr1@demo.local"],
        &ids["sdr2@demo.local"],
        &ids["sdr3@demo.local"],
    );

    let rr = create_code(
        &app,
        &admin,
        json!({"name": "rr", "mode": "round_robin", "members": [{"staff_id": s1}, {"staff_id": s2}, {"staff_id": s3}]}),
    )
    .await;
    let mut seq = Vec::new();
    for _ in 0..6 {
        seq.push(scan_as_new_visitor(&app, rr["code"].as_str().unwrap()).await);
    }
    assert_eq!(seq, ["SDR 1", "SDR 2", "SDR 3", "SDR 1", "SDR 2", "SDR 3"]);

    let weighted = create_code(&app, &admin, json!({"name": "w", "mode": "weighted", "members": [{"staff_id": s1, "weight": 3}, {"staff_id": s2, "weight": 1}]})).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..8 {
        *counts
            .entry(scan_as_new_visitor(&app, weighted["code"].as_str().unwrap()).await)
            .or_default() += 1;
    }
    assert_eq!((counts["SDR 1"], counts["SDR 2"]), (6, 2), "{counts:?}");

    let fill = create_code(
        &app,
        &admin,
        json!({
            "name": "fill", "mode": "fill",
            "members": [{"staff_id": s1, "daily_limit": 2}, {"staff_id": s2, "daily_limit": 2}],
            "backup_staff_id": s3,
        }),
    )
    .await;
    let mut seq = Vec::new();
    for _ in 0..5 {
        seq.push(scan_as_new_visitor(&app, fill["code"].as_str().unwrap()).await);
    }
    assert_eq!(seq, ["SDR 1", "SDR 1", "SDR 2", "SDR 2", "SDR 3"]);

    let random = create_code(
        &app,
        &admin,
        json!({"name": "r", "mode": "random", "members": [{"staff_id": s1}, {"staff_id": s2}]}),
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        seen.insert(scan_as_new_visitor(&app, random["code"].as_str().unwrap()).await);
    }
    assert_eq!(seen.len(), 2, "random picks both members over 30 scans: {seen:?}");

    // Changing members keeps the code and its URL.
    let id = rr["id"].as_str().unwrap();
    let (status, changed) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/live-codes/{id}"),
            &json!({"members": [{"staff_id": s3}]}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["code"], rr["code"]);
    assert_eq!(changed["url"], rr["url"]);
    assert_eq!(scan_as_new_visitor(&app, rr["code"].as_str().unwrap()).await, "SDR 3");
    app.stop().await;
}

async fn schedule_offline_members_and_backup(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let (s1, s2, s3) = (
        &ids["sdr1@demo.local"],
        &ids["sdr2@demo.local"],
        &ids["sdr3@demo.local"],
    );
    // Open around the clock on every day...
    let always: serde_json::Map<String, Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| (d.to_string(), json!([{"start": "00:00", "end": "24:00"}])))
        .collect();
    let code = create_code(
        &app,
        &admin,
        json!({
            "name": "sched", "members": [{"staff_id": s1}, {"staff_id": s2, "online": false}],
            "schedule": {"weekly": always}, "backup_staff_id": s3,
        }),
    )
    .await;
    let c = code["code"].as_str().unwrap();
    let id = code["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(
            scan_as_new_visitor(&app, c).await,
            "SDR 1",
            "the offline member is skipped"
        );
    }
    // ...except today, in the tenant's time zone: everyone goes to the backup.
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%d")
        .to_string();
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/live-codes/{id}"),
            &json!({"schedule": {"weekly": always, "dates_off": [today]}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(scan_as_new_visitor(&app, c).await, "SDR 3");
    // Closed all week: the backup too.
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/live-codes/{id}"),
            &json!({"schedule": {"weekly": {}}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(scan_as_new_visitor(&app, c).await, "SDR 3");
    // Open again, but the only online member is switched off as staff: backup.
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/live-codes/{id}"),
            &json!({"schedule": null}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/staff/{s1}"),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/live-codes/{id}"),
            &json!({"name": "sched 2"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(scan_as_new_visitor(&app, c).await, "SDR 3");
    // No backup left: a polite page, still 200.
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/live-codes/{id}"),
            &json!({"backup_staff_id": null}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, page) = landing(&no_redirects(), &app.url(&format!("/s/{c}")), "Mozilla/5.0").await;
    assert_eq!((status, page.as_str()), (200, "暂无可用顾问"));
    // Bad schedules are refused with the field named.
    let (status, problem) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/live-codes/{id}"),
            &json!({"schedule": {"weekly": {"mon": [{"start": "18:00", "end": "09:00"}]}}}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "schedule.weekly.mon[0]");
    app.stop().await;
}

async fn returning_visitors_keep_their_member_without_using_a_cap(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(&app, &admin, json!({
        "name": "sticky",
        "members": [{"staff_id": ids["sdr1@demo.local"], "daily_limit": 1}, {"staff_id": ids["sdr2@demo.local"], "daily_limit": 1}],
        "backup_staff_id": ids["sdr3@demo.local"],
    })).await;
    let url = app.url(&format!("/s/{}", code["code"].as_str().unwrap()));
    let returning = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = landing(&returning, &url, "Mozilla/5.0").await.1;
    for _ in 0..4 {
        assert_eq!(
            landing(&returning, &url, "Mozilla/5.0").await.1,
            first,
            "a returning visitor keeps their member"
        );
    }
    // Four repeat scans used no cap: the next new visitor still gets the other member.
    let second = scan_as_new_visitor(&app, code["code"].as_str().unwrap()).await;
    assert_ne!(second, first);
    assert_ne!(second, "SDR 3");
    assert_eq!(
        scan_as_new_visitor(&app, code["code"].as_str().unwrap()).await,
        "SDR 3",
        "both caps used: backup"
    );
    app.stop().await;
}

async fn disabled_deleted_and_unknown_codes(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(
        &app,
        &admin,
        json!({"name": "off", "members": [{"staff_id": ids["sdr1@demo.local"]}]}),
    )
    .await;
    let c = code["code"].as_str().unwrap();
    let id = code["id"].as_str().unwrap();
    assert!(c.len() >= 8 && c.chars().all(|ch| ch.is_ascii_alphanumeric()));
    let client = no_redirects();
    assert_eq!(landing(&client, &app.url(&format!("/s/{c}")), "x").await.0, 200);

    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/live-codes/{id}"),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(status, 200);
    let resp = client.get(app.url(&format!("/s/{c}"))).send().await.unwrap();
    assert_eq!(resp.status(), 410);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/live-codes/{id}"),
            &json!({"active": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(landing(&client, &app.url(&format!("/s/{c}")), "x").await.0, 200);

    let resp = app
        .client
        .delete(app.url(&format!("/v1/live-codes/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        client.get(app.url(&format!("/s/{c}"))).send().await.unwrap().status(),
        410
    );
    let (status, _) = app.get(&admin, &format!("/v1/live-codes/{id}")).await;
    assert_eq!(status, 404);

    for unknown in ["ZZZZZZZZZZ", "short", "has.dots.in.it", "%3Cscript%3E"] {
        let resp = client.get(app.url(&format!("/s/{unknown}"))).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{unknown}");
    }
    // Validation: members must exist in the tenant.
    let (status, problem) = app
        .post(
            &admin,
            "/v1/live-codes",
            &json!({"name": "x", "members": [{"staff_id": "nobody"}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "members[0].staff_id");
    // An SDR may not create codes.
    let sdr = app.login("demo", "sdr1@demo.local", crate::helpers::PASSWORD).await;
    let (status, _) = app
        .post(
            &sdr,
            "/v1/live-codes",
            &json!({"name": "x", "members": [{"staff_id": ids["sdr1@demo.local"]}]}),
        )
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

async fn scans_never_redirect_off_site(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr1 = &ids["sdr1@demo.local"];
    let (status, card) = app
        .client
        .put(app.url(&format!("/v1/cards/{sdr1}")))
        .bearer_auth(&admin)
        .json(&json!({"display_name": "SDR One"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert!(status == 200 || status == 201, "card: {status}");
    let slug = card.json::<Value>().await.unwrap()["slug"]
        .as_str()
        .unwrap()
        .to_string();
    let code = create_code(&app, &admin, json!({"name": "redir", "members": [{"staff_id": sdr1}]})).await;
    let c = code["code"].as_str().unwrap();
    let client = no_redirects();
    for suffix in [
        "",
        "?next=https://evil.example",
        "?via=https://evil.example&url=//evil.example",
    ] {
        let resp = client
            .get(app.url(&format!("/s/{c}{suffix}")))
            .header("referer", "https://evil.example/")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let location = resp.headers()["location"].to_str().unwrap();
        assert_eq!(location, format!("/c/{slug}?via={c}"));
    }
    app.stop().await;
}

async fn group_codes_fill_in_turn(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(
        &app,
        &admin,
        json!({
            "name": "groups", "kind": "group",
            "groups": [
                {"name": "Group One", "qr_url": "https://example.com/g1.png", "capacity": 2},
                {"name": "Group Two", "qr_url": "https://example.com/g2.png", "capacity": 3, "count": 1},
            ],
            "backup_staff_id": ids["sdr3@demo.local"],
        }),
    )
    .await;
    let mut seq = Vec::new();
    for _ in 0..5 {
        seq.push(scan_as_new_visitor(&app, code["code"].as_str().unwrap()).await);
    }
    assert_eq!(seq, ["Group One", "Group One", "Group Two", "Group Two", "SDR 3"]);
    app.stop().await;
}

async fn stats_count_scans_visitors_picks_and_captures(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(&app, &admin, json!({"name": "stats", "members": [{"staff_id": ids["sdr1@demo.local"], "daily_limit": 2}], "backup_staff_id": ids["sdr2@demo.local"]})).await;
    let c = code["code"].as_str().unwrap();
    let id = code["id"].as_str().unwrap();
    let url = app.url(&format!("/s/{c}"));
    let returning = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    landing(&returning, &url, "Mozilla/5.0 MicroMessenger/8.0").await;
    landing(&returning, &url, "Mozilla/5.0 MicroMessenger/8.0").await;
    for _ in 0..3 {
        landing(&no_redirects(), &url, "Mozilla/5.0").await;
    }
    app.post_lead(
        &admin,
        json!({"phone": "13500135000", "channel": "employee_live_code", "live_code": c}),
    )
    .await;

    let stats = eventually(Duration::from_secs(5), "scans flushed to the store", || async {
        let (_, s) = app
            .get(&admin, &format!("/v1/live-codes/{id}/stats?granularity=hour"))
            .await;
        (s["scans"] == 5).then_some(s)
    })
    .await;
    assert_eq!(stats["unique_visitors"], 4);
    assert_eq!(stats["by_client"]["wechat"], 2);
    assert_eq!(stats["by_client"]["other"], 3);
    assert_eq!(stats["by_outcome"]["member"], 3, "{stats}");
    assert_eq!(stats["by_outcome"]["backup"], 2, "{stats}");
    assert_eq!(stats["members"][0]["picks_today"], 3);
    assert_eq!(stats["members"][0]["daily_limit"], 2);
    assert_eq!(
        stats["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["scans"].as_i64().unwrap())
            .sum::<i64>(),
        5
    );
    assert_eq!(stats["captures"], 1);
    let (status, _) = app
        .get(&admin, &format!("/v1/live-codes/{id}/stats?granularity=week"))
        .await;
    assert_eq!(status, 422);
    app.stop().await;
}

async fn codes_stay_inside_their_tenant(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    huoke_shared::repo::tenants::create_tenant(
        &app.app.infra().store,
        "rival",
        "Rival",
        "boss@rival.example",
        "rival-password",
    )
    .await
    .unwrap();
    let admin = app.admin().await;
    let rival = app.login("rival", "boss@rival.example", "rival-password").await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(
        &app,
        &admin,
        json!({"name": "mine", "members": [{"staff_id": ids["sdr1@demo.local"]}]}),
    )
    .await;
    let id = code["id"].as_str().unwrap();
    for path in [
        format!("/v1/live-codes/{id}"),
        format!("/v1/live-codes/{id}/stats"),
        format!("/v1/live-codes/{id}/qr.png"),
    ] {
        assert_eq!(app.get(&rival, &path).await.0, 404, "{path}");
    }
    let (_, list) = app.get(&rival, "/v1/live-codes").await;
    assert!(list["items"].as_array().unwrap().is_empty());
    // Nor can a rival put our staff on their code.
    let (status, _) = app
        .post(
            &rival,
            "/v1/live-codes",
            &json!({"name": "steal", "members": [{"staff_id": ids["sdr1@demo.local"]}]}),
        )
        .await;
    assert_eq!(status, 422);
    app.stop().await;
}

async fn a_flood_from_one_address_is_refused(backend: Backend) {
    let mut env = crate::helpers::Environment::new(backend).await;
    env.vars.insert("HUOKE_SCAN_RATE_PER_IP".into(), "5".into());
    let app = TestApp::start(&env, huoke::all_services()).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(
        &app,
        &admin,
        json!({"name": "flood", "members": [{"staff_id": ids["sdr1@demo.local"]}]}),
    )
    .await;
    let url = app.url(&format!("/s/{}", code["code"].as_str().unwrap()));
    let client = no_redirects();
    let mut statuses = Vec::new();
    // Twelve quick scans: however a second boundary splits them, one side holds six.
    for _ in 0..12 {
        statuses.push(client.get(&url).send().await.unwrap().status().as_u16());
    }
    // Within one second at most five pass; the rest are told to wait (a new second may
    // begin mid-loop, so count rather than expect an exact sequence).
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 5, "{statuses:?}");
    app.stop().await;
}
