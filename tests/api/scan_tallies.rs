//! The scan path without a cache round trip per scan: the sticky pick in a signed,
//! path-scoped cookie; caps handed out from leased blocks that never pass a cap
//! across replicas; scans kept as tallies, with rows of earlier versions folded in.

use std::time::Duration;

use huoke::all_services;
use serde_json::{Value, json};

use crate::codes::{create_code, landing};
use crate::helpers::{Backend, Environment, TestApp, eventually, no_redirects, services_available};
use crate::on_both_backends;

on_both_backends!(
    a_sticky_pick_travels_in_a_signed_cookie_of_the_code_path,
    scan_rows_of_an_earlier_version_are_folded_into_the_tallies,
    ids_of_scan_flushes_are_kept_a_day,
    stats_start_on_the_hour_so_buckets_hold_whole_hours_of_visitors,
);

/// The cookie named `name` that a response sets, as its full `Set-Cookie` line.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn value_of(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1
}

async fn scan(app: &TestApp, code: &str, cookies: &str) -> reqwest::Response {
    let mut req = no_redirects().get(app.url(&format!("/s/{code}")));
    if !cookies.is_empty() {
        req = req.header("cookie", cookies);
    }
    req.send().await.unwrap()
}

async fn a_sticky_pick_travels_in_a_signed_cookie_of_the_code_path(backend: Backend) {
    let (_env, app) = crate::helpers::spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(&app, &admin, json!({
        "name": "sticky cookie",
        "members": [{"staff_id": ids["sdr1@demo.local"], "daily_limit": 1}, {"staff_id": ids["sdr2@demo.local"], "daily_limit": 1}],
        "backup_staff_id": ids["sdr3@demo.local"],
    }))
    .await;
    let c = code["code"].as_str().unwrap();

    // Visitor A: a visitor cookie for the whole site, the pick for this code's path only.
    let first = scan(&app, c, "").await;
    assert_eq!(first.status(), 200);
    let visitor_a = set_cookie(&first, "hk_v").expect("a visitor cookie");
    let pick_a = set_cookie(&first, "hk_p").expect("a sticky-pick cookie");
    assert!(pick_a.contains(&format!("Path=/s/{c}")), "{pick_a}");
    assert!(pick_a.contains("HttpOnly"), "{pick_a}");
    let page_a = first.text().await.unwrap();
    let a_cookies = format!("hk_v={}; hk_p={}", value_of(&visitor_a), value_of(&pick_a));
    for _ in 0..3 {
        let again = scan(&app, c, &a_cookies).await;
        assert!(set_cookie(&again, "hk_p").is_none(), "a kept pick is not sealed again");
        assert_eq!(again.text().await.unwrap(), page_a, "A keeps their member");
    }

    // Visitor B gets the other member (A's is full).
    let b = scan(&app, c, "").await;
    let visitor_b = set_cookie(&b, "hk_v").unwrap();
    let pick_b = set_cookie(&b, "hk_p").unwrap();
    let page_b = b.text().await.unwrap();
    assert_ne!(page_b, page_a);
    let b_cookies = format!("hk_v={}; hk_p={}", value_of(&visitor_b), value_of(&pick_b));
    assert_eq!(scan(&app, c, &b_cookies).await.text().await.unwrap(), page_b);
    // B with A's pick cookie copied: it is bound to A, so B is picked afresh, and with
    // both caps full that is the backup — not A's member.
    let copied = scan(
        &app,
        c,
        &format!("hk_v={}; hk_p={}", value_of(&visitor_b), value_of(&pick_a)),
    )
    .await;
    assert!(
        copied.text().await.unwrap().contains("SDR 3"),
        "a copied pick is not honoured"
    );
    let junk = scan(&app, c, &format!("hk_v={}; hk_p=junk.x", value_of(&visitor_b))).await;
    assert!(
        junk.text().await.unwrap().contains("SDR 3"),
        "a broken pick cookie is a new pick"
    );

    // A's cookie with a forged member: not honoured, A is picked afresh (backup).
    let sealed = value_of(&pick_a).to_string();
    let other = if page_a.contains("SDR 1") {
        "sdr2@demo.local"
    } else {
        "sdr1@demo.local"
    };
    let mut parts: Vec<&str> = sealed.split('.').collect();
    parts[1] = ids[other].as_str();
    let forged = parts.join(".");
    let resp = scan(&app, c, &format!("hk_v={}; hk_p={forged}", value_of(&visitor_a))).await;
    assert!(
        resp.text().await.unwrap().contains("SDR 3"),
        "a forged pick is not honoured"
    );
    app.stop().await;
}

async fn scan_rows_of_an_earlier_version_are_folded_into_the_tallies(backend: Backend) {
    let env = Environment::new(backend).await;
    let app = TestApp::start(&env, all_services()).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(
        &app,
        &admin,
        json!({"name": "old rows", "members": [{"staff_id": ids["sdr1@demo.local"]}]}),
    )
    .await;
    let (id, c) = (code["id"].as_str().unwrap(), code["code"].as_str().unwrap());
    let tenant: String = sqlx::query_scalar("SELECT tenant_id FROM live_codes WHERE id = $1")
        .bind(id)
        .fetch_one(app.app.infra().store.pool())
        .await
        .unwrap();
    // Rows as earlier versions wrote them, one per scan: three scans by two visitors.
    let now = huoke_shared::clock::now_ms();
    for (n, visitor, client) in [(1, "v1", "wechat"), (2, "v1", "wechat"), (3, "v2", "other")] {
        sqlx::query(
            "INSERT INTO scans (id, tenant_id, code_id, staff_id, group_index, visitor, client, referer, outcome, at)
             VALUES ($1, $2, $3, $4, NULL, $5, $6, NULL, 'member', $7)",
        )
        .bind(format!("old-{n}"))
        .bind(&tenant)
        .bind(id)
        .bind(&ids["sdr1@demo.local"])
        .bind(visitor)
        .bind(client)
        .bind(now - 1_000)
        .execute(app.app.infra().store.pool())
        .await
        .unwrap();
    }
    app.stop().await;

    // The next start folds them; a new scan adds to them.
    let app = TestApp::start(&env, all_services()).await;
    let admin = app.admin().await;
    landing(&no_redirects(), &app.url(&format!("/s/{c}")), "Mozilla/5.0").await;
    let stats: Value = eventually(
        Duration::from_secs(10),
        "old rows folded and the new scan written",
        || async {
            let (_, s) = app.get(&admin, &format!("/v1/live-codes/{id}/stats")).await;
            (s["scans"] == 4).then_some(s)
        },
    )
    .await;
    assert_eq!(stats["unique_visitors"], 3, "{stats}");
    assert_eq!(stats["by_client"]["wechat"], 2, "{stats}");
    assert_eq!(stats["members"][0]["picks_today"], 4, "{stats}");
    let left: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM scans")
        .fetch_one(app.app.infra().store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "folded rows are deleted");
    app.stop().await;
}

/// Two replicas sharing Redis hand out a member's cap from leased blocks: together
/// they never pass it, and with scans arriving at both, they fill it exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fill_a_cap_exactly_from_leased_blocks() {
    crate::helpers::bounded(async {
        if !services_available() {
            return;
        }
        let env = Environment::new(Backend::Services).await;
        let one = TestApp::start(&env, all_services()).await;
        let two = TestApp::start(&env, all_services()).await;
        let admin = one.admin().await;
        let ids = one.staff_ids(&admin).await;
        let code = create_code(
            &one,
            &admin,
            json!({
                "name": "two replicas",
                "members": [{"staff_id": ids["sdr1@demo.local"], "daily_limit": 300}],
                "backup_staff_id": ids["sdr2@demo.local"],
            }),
        )
        .await;
        let c = code["code"].as_str().unwrap().to_string();
        let mut tasks = Vec::new();
        for worker in 0..16 {
            let url = if worker % 2 == 0 {
                one.url(&format!("/s/{c}"))
            } else {
                two.url(&format!("/s/{c}"))
            };
            tasks.push(tokio::spawn(async move {
                let client = no_redirects();
                let mut member = 0;
                for _ in 0..50 {
                    if landing(&client, &url, "Mozilla/5.0").await.1.contains("SDR 1") {
                        member += 1;
                    }
                }
                member
            }));
        }
        let mut member = 0;
        for task in tasks {
            member += task.await.unwrap();
        }
        assert_eq!(
            member, 300,
            "800 scans over two replicas: exactly the cap of 300 went to the member"
        );
        one.stop().await;
        two.stop().await;
    })
    .await;
}

/// The ids that make a retried flush count once are pruned after a day.
async fn ids_of_scan_flushes_are_kept_a_day(backend: Backend) {
    let env = Environment::new(backend).await;
    let store = huoke_shared::store::Store::connect(&env.settings().effective_database_url())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let now = huoke_shared::clock::now_ms();
    let day = 24 * 3_600_000;
    for (id, at) in [
        ("a", now - 2 * day),
        ("b", now - day - 1_000),
        ("c", now - 1_000),
        ("d", now),
    ] {
        sqlx::query("INSERT INTO scan_flushes (id, at) VALUES ($1, $2)")
            .bind(id)
            .bind(at)
            .execute(store.pool())
            .await
            .unwrap();
    }
    assert_eq!(huoke_shared::housekeeping::prune_scan_flushes(&store).await.unwrap(), 2);
    let left: Vec<String> = sqlx::query_scalar("SELECT id FROM scan_flushes ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(left, ["c", "d"]);
    store.close().await;
}

async fn stats_start_on_the_hour_so_buckets_hold_whole_hours_of_visitors(backend: Backend) {
    let (_env, app) = crate::helpers::spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let code = create_code(
        &app,
        &admin,
        json!({"name": "hours", "members": [{"staff_id": ids["sdr1@demo.local"]}]}),
    )
    .await;
    let (id, c) = (code["id"].as_str().unwrap(), code["code"].as_str().unwrap());
    let first = scan(&app, c, "").await;
    let visitor = value_of(&set_cookie(&first, "hk_v").unwrap()).to_string();
    scan(&app, c, &format!("hk_v={visitor}")).await;
    scan(&app, c, "").await;
    // A `from` in the middle of an hour, 90 minutes and 17 seconds ago.
    let from = chrono::Utc::now() - chrono::Duration::seconds(90 * 60 + 17);
    let query = format!(
        "/v1/live-codes/{id}/stats?granularity=hour&from={}",
        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let stats: Value = eventually(Duration::from_secs(10), "the scans written", || async {
        let (_, s) = app.get(&admin, &query).await;
        (s["scans"] == 3).then_some(s)
    })
    .await;
    let on_the_hour = |at: &Value| {
        use chrono::Timelike;
        let at = chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap();
        (at.minute(), at.second(), at.nanosecond()) == (0, 0, 0)
    };
    assert!(on_the_hour(&stats["from"]), "{stats}");
    assert_eq!(stats["unique_visitors"], 2, "{stats}");
    let series = stats["series"].as_array().unwrap();
    assert_eq!(series.iter().map(|b| b["scans"].as_i64().unwrap()).sum::<i64>(), 3);
    for bucket in series {
        assert!(on_the_hour(&bucket["at"]), "{bucket}");
        assert!(
            bucket["unique_visitors"].as_i64().unwrap() >= 1,
            "a bucket with scans has visitors: {bucket}"
        );
    }
    app.stop().await;
}

/// While the cache is unreachable a scan still lands on someone, uncounted; that
/// fallback took no place on a cap, so it is not remembered in a pick cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_pick_is_not_remembered() {
    crate::helpers::bounded(async {
        if !services_available() {
            return;
        }
        let mut env = Environment::new(Backend::Services).await;
        let redis = crate::pipeline::proxied(&mut env, "REDIS_URL").await;
        let app = TestApp::start(&env, all_services()).await;
        let admin = app.admin().await;
        let ids = app.staff_ids(&admin).await;
        let code = create_code(
            &app,
            &admin,
            json!({"name": "fallback", "members": [{"staff_id": ids["sdr1@demo.local"], "daily_limit": 5}]}),
        )
        .await;
        let c = code["code"].as_str().unwrap();
        let picked = scan(&app, c, "").await;
        assert!(set_cookie(&picked, "hk_p").is_some(), "a real pick is remembered");
        redis.cut();
        let fallback = scan(&app, c, "").await;
        assert_eq!(fallback.status(), 200);
        assert!(set_cookie(&fallback, "hk_p").is_none(), "a fallback is not remembered");
        assert!(
            fallback.text().await.unwrap().contains("SDR 1"),
            "the visitor is still served"
        );
        redis.restore();
        app.stop().await;
    })
    .await;
}
