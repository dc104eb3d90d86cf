//! The lead pipeline under trouble: poison messages parked and replayed, readiness
//! that matches what each role needs, and backend outages in the middle of a burst.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use huoke::{all_services, service_named};
use huoke_shared::bus::Envelope;
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::messages::LeadQualified;
use huoke_shared::repo::tenants;
use serde_json::{Value, json};

use crate::helpers::{Backend, Environment, PASSWORD, TestApp, eventually, services_available, spawn_app};
use crate::on_both_backends;
use crate::proxy::Cuttable;

on_both_backends!(a_poison_message_is_parked_and_replayed_once_fixed);

async fn tenant_id(app: &TestApp, slug: &str) -> String {
    tenants::by_slug(&app.app.infra().store, slug)
        .await
        .unwrap()
        .unwrap()
        .id
}

/// `lead.qualified` for a lead that does not exist: the router can never route it.
fn poison(tenant: &str, lead_id: &str) -> Envelope {
    Envelope::new(
        tenant,
        &LeadQualified {
            lead_id: lead_id.to_string(),
            capture_id: new_id(),
            is_new_lead: true,
            score: 10,
            grade: "C".into(),
            channel: "api".into(),
            owner_hint: None,
        },
    )
}

/// What fixing the cause looks like here: the lead the message names now exists.
async fn create_lead(app: &TestApp, tenant: &str, lead_id: &str) {
    sqlx::query(
        "INSERT INTO leads (id, tenant_id, name, channel, score, grade, score_reasons, is_mql, status, created_at, updated_at)
         VALUES ($1, $2, 'Fixed Later', 'api', 10, 'C', '[]', 0, 'new', $3, $3)",
    )
    .bind(lead_id)
    .bind(tenant)
    .bind(now_ms())
    .execute(app.app.infra().store.pool())
    .await
    .unwrap();
}

async fn dead_letters(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.get(token, "/v1/admin/dead-letters?queue=router.leads").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn wait_for_owner(app: &TestApp, token: &str, lead_id: &str) -> Value {
    eventually(Duration::from_secs(15), "the replayed lead to be assigned", || async {
        let (status, lead) = app.get(token, &format!("/v1/leads/{lead_id}")).await;
        (status == 200 && lead["owner_id"].is_string() && lead["assignment"].is_object()).then_some(lead)
    })
    .await
}

/// The CLI beside the running app, on the same storage.
fn cli(env: &Environment, args: &[&str]) -> std::process::Output {
    crate::cli::huoke()
        .envs(&env.vars)
        .args(args)
        .output()
        .expect("huoke runs")
}

async fn a_poison_message_is_parked_and_replayed_once_fixed(backend: Backend) {
    let (env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let tenant = tenant_id(&app, "demo").await;
    let (first_lead, second_lead) = (new_id(), new_id());
    let (first, second) = (poison(&tenant, &first_lead), poison(&tenant, &second_lead));
    app.app.infra().bus.publish(&first).await.unwrap();
    app.app.infra().bus.publish(&second).await.unwrap();

    // Rejected at once (it can never succeed), parked, listed with the reason.
    let items = eventually(Duration::from_secs(15), "two dead letters", || async {
        let items = dead_letters(&app, &admin).await;
        (items.len() == 2).then_some(items)
    })
    .await;
    for item in &items {
        assert_eq!(item["queue"], "router.leads");
        assert_eq!(item["type"], "lead.qualified");
        assert_eq!(item["attempts"], 1);
        assert!(item["reason"].as_str().unwrap().contains("does not exist"), "{item}");
        assert!(item.get("envelope").is_none(), "lists leave the message out");
    }
    let by_message: HashMap<&str, &Value> = items.iter().map(|i| (i["message_id"].as_str().unwrap(), i)).collect();
    let first_item = by_message[first.id.as_str()];
    let (status, shown) = app
        .get(
            &admin,
            &format!("/v1/admin/dead-letters/{}", first_item["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["envelope"]["data"]["lead_id"], first_lead.as_str());

    // Another tenant's admin sees none of it, and SDRs may not look.
    tenants::create_tenant(&app.app.infra().store, "other", "Other", "admin@other.local", PASSWORD)
        .await
        .unwrap();
    let other = app.login("other", "admin@other.local", PASSWORD).await;
    assert!(dead_letters(&app, &other).await.is_empty());
    let (status, _) = app
        .get(
            &other,
            &format!("/v1/admin/dead-letters/{}", first_item["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, 404);
    let sdr = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let (status, _) = app.get(&sdr, "/v1/admin/dead-letters").await;
    assert_eq!(status, 403);

    // Fixed, then replayed through the API: routed once, gone from the list.
    create_lead(&app, &tenant, &first_lead).await;
    let (status, body) = app
        .post(
            &admin,
            &format!("/v1/admin/dead-letters/{}/replay", first_item["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], 1);
    let lead = wait_for_owner(&app, &admin, &first_lead).await;
    assert_eq!(lead["assignment"]["state"], "offered");

    // Fixed, then replayed with the CLI.
    create_lead(&app, &tenant, &second_lead).await;
    let listed = cli(&env, &["dlq", "list", "router.leads"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&second.id));
    let replayed = cli(&env, &["dlq", "replay", "router.leads", "--id", &second.id]);
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let answer: Value = serde_json::from_slice(&replayed.stdout).unwrap();
    assert_eq!(answer["replayed"], 1);
    wait_for_owner(&app, &admin, &second_lead).await;
    assert!(dead_letters(&app, &admin).await.is_empty());

    // Each was assigned exactly once.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for lead in [&first_lead, &second_lead] {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assignments WHERE lead_id = $1")
            .bind(lead)
            .fetch_one(app.app.infra().store.pool())
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    let unknown = cli(&env, &["dlq", "list", "no.such.queue"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown queue"));
    app.stop().await;
}

/// `scheme://user@host:port/rest` with host:port replaced by the proxy's.
fn through(url: &str, port: u16) -> (String, String) {
    let start = url.find("://").unwrap() + 3;
    let end = url[start..].find('/').map(|i| start + i).unwrap_or(url.len());
    let authority = &url[start..end];
    let (creds, hostport) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let upstream = if hostport.contains(':') {
        hostport.to_string()
    } else {
        let default = if url.starts_with("redis") {
            6379
        } else if url.starts_with("amqp") {
            5672
        } else {
            5432
        };
        format!("{hostport}:{default}")
    };
    (
        format!("{}{creds}127.0.0.1:{port}{}", &url[..start], &url[end..]),
        upstream,
    )
}

/// Puts a cuttable proxy in front of the backend named by `var`.
pub(crate) async fn proxied(env: &mut Environment, var: &str) -> Cuttable {
    let (_, upstream) = through(&env.vars[var], 0);
    let proxy = Cuttable::start(&upstream).await;
    let (url, _) = through(&env.vars[var], proxy.port);
    env.vars.insert(var.to_string(), url);
    proxy
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_what_each_role_needs() {
    crate::helpers::bounded(readiness_follows_what_each_role_needs_scenario()).await;
}

async fn readiness_follows_what_each_role_needs_scenario() {
    if !services_available() {
        return;
    }
    let mut env = Environment::new(Backend::Services).await;
    let pg = proxied(&mut env, "DATABASE_URL").await;
    let redis = proxied(&mut env, "REDIS_URL").await;
    let amqp = proxied(&mut env, "AMQP_URL").await;
    let intake = TestApp::start(&env, vec![service_named("intake").unwrap()]).await;
    let codes = TestApp::start(&env, vec![service_named("codes").unwrap()]).await;
    let (status, body) = ready(&intake).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")), "{body}");
    assert_eq!(body["required"], json!(["store"]));

    // Intake needs the store only: the outbox rides out a broker outage.
    redis.cut();
    amqp.cut();
    // The proxy drops connections asynchronously: wait until both are seen gone.
    let (status, body) = eventually(Duration::from_secs(10), "cache and bus reported down", || async {
        let (status, body) = ready(&intake).await;
        (body["checks"]["cache"] != "ok" && body["checks"]["bus"] != "ok").then_some((status, body))
    })
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["store"], "ok");

    pg.cut();
    let (status, body) = eventually(Duration::from_secs(10), "store reported down", || async {
        let (status, body) = ready(&intake).await;
        (body["checks"]["store"] != "ok").then_some((status, body))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    // The scan path serves from its snapshot, whatever is down.
    let (status, body) = ready(&codes).await;
    assert_eq!(status, 200, "{body}");
    // Liveness is not readiness.
    let health = intake.client.get(intake.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    pg.restore();
    redis.restore();
    amqp.restore();
    eventually(Duration::from_secs(20), "readiness after the outage", || async {
        let (status, body) = ready(&intake).await;
        (status == 200 && body["status"] == "ready").then_some(())
    })
    .await;
    intake.stop().await;
    codes.stop().await;
}

/// Posts one lead until it is accepted, as a careful client would: the same
/// Idempotency-Key on every try, so an unknown outcome is never a second lead.
async fn post_until_accepted(app: &TestApp, token: &str, i: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let resp = app
            .client
            .post(app.url("/v1/leads"))
            .bearer_auth(token)
            .header("Idempotency-Key", format!("burst-{i}"))
            .json(
                &json!({"email": format!("burst{i}@example.com"), "name": format!("Burst {i}"), "channel": "web_form"}),
            )
            .send()
            .await;
        if let Ok(resp) = resp {
            let status = resp.status().as_u16();
            if status == 202 {
                let body: Value = resp.json().await.unwrap();
                return body["capture_id"].as_str().unwrap().to_string();
            }
            assert!(status >= 500, "lead {i}: answered {status}");
        }
        assert!(Instant::now() < deadline, "lead {i} never accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 1,000 leads posted over ~35 s; Redis disappears for 30 s and PostgreSQL
/// "restarts" (every connection dropped, 5 s refusing) in the middle. Every
/// accepted lead ends up assigned exactly once, with no replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_mid_burst_lose_nothing() {
    crate::helpers::bounded(outages_mid_burst_lose_nothing_scenario()).await;
}

async fn outages_mid_burst_lose_nothing_scenario() {
    if !services_available() {
        return;
    }
    const LEADS: usize = 1000;
    const WORKERS: usize = 8;
    let mut env = Environment::new(Backend::Services).await;
    let direct_db = env.vars["DATABASE_URL"].clone();
    let pg = proxied(&mut env, "DATABASE_URL").await;
    let redis = proxied(&mut env, "REDIS_URL").await;
    env.vars.insert("HUOKE_BUS_RETRY_BASE_MS".into(), "200".into());
    let app = std::sync::Arc::new(TestApp::start(&env, all_services()).await);
    let admin = app.admin().await;

    let started = Instant::now();
    let posters: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (app, admin) = (app.clone(), admin.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for (k, i) in (w..LEADS).step_by(WORKERS).enumerate() {
                    // Paced: lead i is due at i × 35 ms.
                    let due = started + Duration::from_millis(35 * (k * WORKERS + w) as u64);
                    tokio::time::sleep_until(due.into()).await;
                    ids.push(post_until_accepted(&app, &admin, i).await);
                }
                ids
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.cut();
    let redis_cut_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(7)).await;
    pg.cut();
    tokio::time::sleep(Duration::from_secs(5)).await;
    pg.restore();
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(redis_cut_at.elapsed())).await;
    redis.restore();

    let mut captures = Vec::new();
    for p in posters {
        captures.extend(p.await.unwrap());
    }
    assert_eq!(captures.len(), LEADS);

    let db = sqlx::PgPool::connect(&direct_db).await.unwrap();
    let assigned = eventually(Duration::from_secs(120), "every accepted lead in an inbox", || {
        let db = db.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM captures c JOIN inbox_items i ON i.lead_id = c.lead_id")
                    .fetch_one(&db)
                    .await
                    .unwrap();
            (n >= LEADS as i64).then_some(n)
        }
    })
    .await;
    assert_eq!(assigned, LEADS as i64);
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM captures), (SELECT COUNT(*) FROM leads),
                (SELECT COUNT(*) FROM assignments), (SELECT COUNT(*) FROM inbox_items)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        counts,
        (1000, 1000, 1000, 1000),
        "captures, leads, assignments, inbox rows"
    );
    let dead: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(dead, 0, "nothing needed a replay");
    db.close().await;
    match std::sync::Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => panic!("posters still hold the app"),
    }
}

on_both_backends!(a_backlog_is_qualified_in_batches_with_exact_dedupe);

/// Captures pile up while only intake runs; then every consumer starts on the
/// backlog, so qualify and router take them in batches. People who came twice (by
/// e-mail, then by phone and e-mail) are one lead each; everyone is assigned once,
/// in strict rotation.
async fn a_backlog_is_qualified_in_batches_with_exact_dedupe(backend: Backend) {
    let env = Environment::new(backend).await;
    let intake_only = vec![service_named("console").unwrap(), service_named("intake").unwrap()];
    let app = TestApp::start(&env, intake_only).await;
    let admin = app.admin().await;
    let mut captures = Vec::new();
    for i in 0..21 {
        captures.push(
            app.post_lead(
                &admin,
                json!({"email": format!("twice{i}@example.com"), "channel": "api"}),
            )
            .await,
        );
        captures.push(
            app.post_lead(
                &admin,
                json!({"email": format!("TWICE{i}@example.com"), "phone": format!("+86 138 0000 {:04}", i), "channel": "web_form"}),
            )
            .await,
        );
    }
    app.stop().await;

    let app = TestApp::start(&env, all_services()).await;
    let admin = app.admin().await;
    let mut leads: HashMap<String, Value> = HashMap::new();
    for c in &captures {
        let lead = app.wait_for_assigned_lead(&admin, c, Duration::from_secs(20)).await;
        leads.insert(lead["id"].as_str().unwrap().to_string(), lead);
    }
    assert_eq!(leads.len(), 21, "one lead per person");
    let mut per_owner: HashMap<&str, usize> = HashMap::new();
    for lead in leads.values() {
        *per_owner.entry(lead["owner_id"].as_str().unwrap()).or_default() += 1;
        let kinds: Vec<&str> = lead["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"phone") && kinds.contains(&"email"), "{lead}");
        assert_eq!(lead["touches"].as_array().unwrap().len(), 2, "{lead}");
    }
    assert_eq!(per_owner.len(), 3, "{per_owner:?}");
    assert!(per_owner.values().all(|n| *n == 7), "strict rotation: {per_owner:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (assignments, inbox): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM assignments), (SELECT COUNT(*) FROM inbox_items)")
            .fetch_one(app.app.infra().store.pool())
            .await
            .unwrap();
    assert_eq!((assignments, inbox), (21, 21));
    app.stop().await;
}

on_both_backends!(old_processed_markers_are_pruned_in_batches);

/// Markers older than the retention go (more than one delete batch of them);
/// recent ones stay, so a late redelivery is still recognised.
async fn old_processed_markers_are_pruned_in_batches(backend: Backend) {
    let env = Environment::new(backend).await;
    let store = huoke_shared::store::Store::connect(&env.settings().effective_database_url())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let day = 24 * 3600 * 1000;
    let now = now_ms();
    let mut tx = store.begin().await.unwrap();
    for i in 0..2500 {
        let at = if i < 2300 { now - 2 * day } else { now - 1000 };
        sqlx::query("INSERT INTO processed_messages (consumer, message_id, processed_at) VALUES ('c', $1, $2)")
            .bind(format!("m{i}"))
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let pruned = huoke_shared::housekeeping::prune_processed(&store, Duration::from_secs(24 * 3600))
        .await
        .unwrap();
    assert_eq!(pruned, 2300);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM processed_messages")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(left, 200);
    store.close().await;
}

on_both_backends!(concurrent_accepts_record_one_acceptance);

/// An SDR double-tapping "accept" (or a flaky network retrying): every answer says
/// accepted, and the history and the event say it once.
async fn concurrent_accepts_record_one_acceptance(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let capture = app
        .post_lead(&admin, json!({"email": "tap@example.com", "channel": "api"}))
        .await;
    let lead = app
        .wait_for_assigned_lead(&admin, &capture, Duration::from_secs(10))
        .await;
    let owner = lead["owner_id"].as_str().unwrap();
    let ids = app.staff_ids(&admin).await;
    let email = ids.iter().find(|(_, id)| id.as_str() == owner).unwrap().0.clone();
    let sdr = app.login("demo", &email, PASSWORD).await;
    let path = format!("/v1/assignments/{}/accept", lead["assignment"]["id"].as_str().unwrap());
    let empty = json!({});
    let taps: Vec<_> = (0..8).map(|_| app.post(&sdr, &path, &empty)).collect();
    for (status, body) in futures_util::future::join_all(taps).await {
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["state"], "accepted");
    }
    let store = &app.app.infra().store;
    let accepted: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM lead_history WHERE lead_id = $1 AND kind = 'accepted'")
            .bind(lead["id"].as_str().unwrap())
            .fetch_one(store.pool())
            .await
            .unwrap();
    // The event is written in the same guarded transaction as this history row.
    assert_eq!(accepted, 1);
    app.stop().await;
}
