//! The sales pool: activities and the funnel, the public pool's claim limits under
//! concurrency, giving back and recycling, handing a switched-off person's leads to
//! others, and who may read which lead.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, eventually, spawn_app};
use crate::identity::lead_of;
use crate::on_both_backends;

on_both_backends!(
    activities_and_the_funnel_move_a_lead_step_by_step,
    claims_stay_within_the_daily_and_holding_limits_under_concurrency,
    idle_leads_are_recycled_and_owners_can_give_leads_back,
    switching_someone_off_hands_their_leads_to_others,
    each_role_reads_only_the_leads_it_should,
    the_inbox_filters_by_state_and_grade_and_counts_down,
    the_first_activity_stops_the_first_contact_clock,
);

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let (status, answer) = app.send(reqwest::Method::PUT, token, path, &body).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// Signs in as whoever the lead was offered to.
async fn owner_token(app: &TestApp, admin: &str, lead: &Value) -> (String, String) {
    let owner = lead["assignment"]["staff_id"].as_str().unwrap().to_string();
    let (_, staff) = app.get(admin, &format!("/v1/staff/{owner}")).await;
    let token = app.login("demo", staff["email"].as_str().unwrap(), PASSWORD).await;
    (owner, token)
}

async fn assigned_and_accepted(app: &TestApp, admin: &str, body: Value) -> (Value, String, String) {
    let capture = app.post_lead(admin, body).await;
    let lead = app
        .wait_for_assigned_lead(admin, &capture, Duration::from_secs(20))
        .await;
    let (owner, token) = owner_token(app, admin, &lead).await;
    let assignment = lead["assignment"]["id"].as_str().unwrap();
    let (status, answer) = app
        .post(&token, &format!("/v1/assignments/{assignment}/accept"), &json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    (lead, owner, token)
}

async fn lead(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, lead) = app.get(token, &format!("/v1/leads/{id}")).await;
    assert_eq!(status, 200, "{lead}");
    lead
}

async fn activities_and_the_funnel_move_a_lead_step_by_step(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let (created, owner, sdr) = assigned_and_accepted(
        &app,
        &admin,
        json!({"name": "孙七", "phone": "13500135007", "channel": "seminar"}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let path = |p: &str| format!("/v1/leads/{id}/{p}");

    // Only the owner (or a manager or admin) works on it.
    let other = another_sdr(&app, &admin, &owner).await;
    let (status, _) = app.post(&other, &path("activities"), &json!({"kind": "call"})).await;
    assert_eq!(status, 403);
    let (status, problem) = app.post(&sdr, &path("activities"), &json!({"kind": "telepathy"})).await;
    assert_eq!(status, 422, "{problem}");

    // The first activity is the first contact: accepted → contacted.
    let (status, activity) = app
        .post(
            &sdr,
            &path("activities"),
            &json!({"kind": "call", "body": "想要报价 <b>下周</b>"}),
        )
        .await;
    assert_eq!(status, 201, "{activity}");
    let (status, _) = app.post(&sdr, &path("activities"), &json!({"kind": "wechat"})).await;
    assert_eq!(status, 201);
    let now = lead(&app, &admin, id).await;
    assert_eq!(now["status"], "contacted");
    assert!(now["first_contact_at"].is_string());
    let (_, list) = app.get(&sdr, &path("activities")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["body"], "想要报价 <b>下周</b>");

    // Steps are validated: won only from converted; disqualified only for a listed reason.
    let step = |status: &str, reason: Option<&str>| json!({"status": status, "reason": reason});
    let (code, problem) = app.post(&sdr, &path("status"), &step("won", None)).await;
    assert_eq!(code, 409, "{problem}");
    let (code, _) = app.post(&sdr, &path("status"), &step("promoted", None)).await;
    assert_eq!(code, 422);
    let (code, problem) = app
        .post(&sdr, &path("status"), &step("disqualified", Some("too tall")))
        .await;
    assert_eq!(code, 422, "{problem}");
    let (code, moved) = app.post(&sdr, &path("status"), &step("sql", None)).await;
    assert_eq!(code, 200, "{moved}");
    assert_eq!(
        (moved["from"].as_str(), moved["status"].as_str()),
        (Some("contacted"), Some("sql"))
    );
    let (code, _) = app.post(&sdr, &path("status"), &step("converted", None)).await;
    assert_eq!(code, 200);
    let (code, _) = app.post(&admin, &path("status"), &step("won", None)).await;
    assert_eq!(code, 200, "a manager or admin may take the step too");
    let done = lead(&app, &admin, id).await;
    assert_eq!(done["status"], "won");
    let steps: Vec<(String, i64)> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "status_changed")
        .map(|h| {
            (
                h["detail"]["to"].as_str().unwrap().to_string(),
                h["detail"]["after_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(to, _)| to.as_str()).collect();
    assert_eq!(names, ["contacted", "sql", "converted", "won"]);
    assert!(steps.iter().all(|(_, after)| *after >= 0));

    // Disqualifying with one of the tenant's reasons.
    let (second, _, sdr2) = assigned_and_accepted(
        &app,
        &admin,
        json!({"name": "周八", "phone": "13500135008", "channel": "seminar"}),
    )
    .await;
    let (code, moved) = app
        .post(
            &sdr2,
            &format!("/v1/leads/{}/status", second["id"].as_str().unwrap()),
            &step("disqualified", Some("no budget")),
        )
        .await;
    assert_eq!(code, 200, "{moved}");
    assert_eq!(
        lead(&app, &admin, second["id"].as_str().unwrap()).await["status_reason"],
        "no budget"
    );
}

/// Signs in as an SDR other than `owner`.
async fn another_sdr(app: &TestApp, admin: &str, owner: &str) -> String {
    let ids = app.staff_ids(admin).await;
    let email = ids
        .iter()
        .find(|(email, id)| email.starts_with("sdr") && id.as_str() != owner)
        .map(|(email, _)| email.clone())
        .unwrap();
    app.login("demo", &email, PASSWORD).await
}

async fn claim(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    app.post(token, &format!("/v1/pool/{id}/claim"), &json!({})).await
}

/// Every lead goes straight to the public pool.
async fn everything_to_the_pool(app: &TestApp, admin: &str) {
    put(
        app,
        admin,
        "/v1/routing/rules",
        json!({"rules": [{"name": "all to the pool", "target": {"pool": true}}]}),
    )
    .await;
}

async fn pooled_leads(app: &TestApp, admin: &str, n: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let capture = app
            .post_lead(admin, json!({"name": format!("{prefix} {i}"), "email": format!("{prefix}{i}@pool.example"), "channel": "ads"}))
            .await;
        let lead = lead_of(app, admin, &capture).await;
        let id = lead["id"].as_str().unwrap().to_string();
        eventually(Duration::from_secs(20), "the lead in the pool", || async {
            let (_, l) = app.get(admin, &format!("/v1/leads/{id}")).await;
            (l["status"] == "pool").then_some(())
        })
        .await;
        ids.push(id);
    }
    ids
}

async fn claims_stay_within_the_daily_and_holding_limits_under_concurrency(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    everything_to_the_pool(&app, &admin).await;
    put(
        &app,
        &admin,
        "/v1/pool/settings",
        json!({"daily_claim_limit": 3, "holding_limit": 100, "disqualify_reasons": ["no budget"]}),
    )
    .await;
    let ids = pooled_leads(&app, &admin, 8, "Pool").await;
    let sdr1 = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let sdr2 = app.login("demo", "sdr2@demo.local", PASSWORD).await;

    // The pool lists them without contact details.
    let (status, pool) = app.get(&sdr1, "/v1/pool?limit=100").await;
    assert_eq!(status, 200, "{pool}");
    assert_eq!(pool["items"].as_array().unwrap().len(), 8);
    assert!(pool["items"][0].get("email").is_none());

    // Six claims at once by one SDR with a daily limit of three: exactly three win.
    let claims = ids[..6].iter().map(|id| claim(&app, &sdr1, id));
    let answers = join_all(claims).await;
    let won: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, a)| a).collect();
    assert_eq!(won.len(), 3, "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 409), "{answers:?}");
    let claimed = lead(&app, &sdr1, won[0]["lead_id"].as_str().unwrap()).await;
    assert_eq!(claimed["status"], "accepted");
    assert!(
        claimed["email"].as_str().unwrap().ends_with("@pool.example"),
        "the claimer sees the contact: {claimed}"
    );

    // Two SDRs racing for one lead: one gets it.
    let free = ids[6].clone();
    let race = join_all([&sdr2, &admin].map(|t| claim(&app, t, &free))).await;
    assert_eq!(race.iter().filter(|(s, _)| *s == 200).count(), 1, "{race:?}");

    // The holding limit: sdr1 holds 3; with a limit of 4 only one more claim of two
    // concurrent ones fits (the daily limit is out of the way).
    put(
        &app,
        &admin,
        "/v1/pool/settings",
        json!({"daily_claim_limit": 100, "holding_limit": 4, "disqualify_reasons": ["no budget"]}),
    )
    .await;
    let (_, pool) = app.get(&sdr1, "/v1/pool?limit=100").await;
    let left: Vec<String> = pool["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["lead_id"].as_str().unwrap().to_string())
        .collect();
    assert!(left.len() >= 2, "{pool}");
    let answers = join_all(left[..2].iter().map(|id| claim(&app, &sdr1, id))).await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 1, "{answers:?}");
    let refused = answers.iter().find(|(s, _)| *s == 409).unwrap();
    assert!(
        refused.1["detail"].as_str().unwrap().contains("holding limit"),
        "{refused:?}"
    );

    // A lead that is not in the pool cannot be claimed; marketers cannot claim.
    let (status, _) = app
        .post(
            &sdr2,
            &format!("/v1/pool/{}/claim", won[0]["lead_id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, problem) = app
        .send(
            reqwest::Method::PUT,
            &admin,
            "/v1/pool/settings",
            &json!({"daily_claim_limit": -1, "holding_limit": 1, "disqualify_reasons": []}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
}

async fn idle_leads_are_recycled_and_owners_can_give_leads_back(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    // Given back by hand.
    let (given, _, sdr) = assigned_and_accepted(
        &app,
        &admin,
        json!({"name": "吴九", "phone": "13500135009", "channel": "seminar"}),
    )
    .await;
    let id = given["id"].as_str().unwrap();
    let (status, problem) = app
        .post(&sdr, &format!("/v1/leads/{id}/release"), &json!({"reason": ""}))
        .await;
    assert_eq!(status, 422, "{problem}");
    let (status, answer) = app
        .post(
            &sdr,
            &format!("/v1/leads/{id}/release"),
            &json!({"reason": "wrong region"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let back = lead(&app, &admin, id).await;
    assert_eq!(back["status"], "pool");
    assert!(back["owner_id"].is_null());
    assert_eq!(back["status_reason"], "wrong region");
    assert_eq!(back["recycle_count"], 0);
    assert_eq!(back["assignment"]["state"], "released");
    assert_ne!(back["assignment"]["staff_id"], Value::Null);

    // Recycled: no activity for the tenant's period (about two seconds here).
    put(
        &app,
        &admin,
        "/v1/pool/settings",
        json!({"daily_claim_limit": 20, "holding_limit": 200, "recycle_after_days": 2.0 / 86400.0, "disqualify_reasons": ["no budget"]}),
    )
    .await;
    let (idle, _, _) = assigned_and_accepted(
        &app,
        &admin,
        json!({"name": "郑十", "phone": "13500135010", "channel": "seminar"}),
    )
    .await;
    let idle_id = idle["id"].as_str().unwrap();
    let recycled = eventually(Duration::from_secs(20), "the idle lead recycled", || async {
        let l = lead(&app, &admin, idle_id).await;
        (l["status"] == "pool").then_some(l)
    })
    .await;
    assert_eq!(recycled["recycle_count"], 1);
    assert!(recycled["status_reason"].as_str().unwrap().starts_with("no activity"));
    assert!(
        recycled["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "recycled")
    );
    let (_, pool) = app.get(&sdr, "/v1/pool").await;
    assert!(
        pool["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["lead_id"] == idle_id && i["recycle_count"] == 1)
    );
}

async fn switching_someone_off_hands_their_leads_to_others(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let capture = app
        .post_lead(
            &admin,
            json!({"name": "冯十一", "phone": "13500135011", "channel": "seminar"}),
        )
        .await;
    let offered = app
        .wait_for_assigned_lead(&admin, &capture, Duration::from_secs(20))
        .await;
    let (first_owner, token) = owner_token(&app, &admin, &offered).await;
    let id = offered["id"].as_str().unwrap();

    let (status, answer) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/staff/{first_owner}"),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // Their session ends at once, and the lead is offered to someone else.
    assert_eq!(app.get(&token, "/v1/inbox").await.0, 401);
    let moved = eventually(Duration::from_secs(20), "the lead offered to another SDR", || async {
        let l = lead(&app, &admin, id).await;
        (l["status"] == "assigned" && l["assignment"]["staff_id"] != first_owner.as_str()).then_some(l)
    })
    .await;
    assert_ne!(moved["owner_id"], first_owner.as_str());
    let kinds: Vec<&str> = moved["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"handed_over"), "{kinds:?}");
    let (_, decisions) = app.get(&admin, &format!("/v1/leads/{id}/decisions")).await;
    assert!(decisions.to_string().contains("handed_over"), "{decisions}");
}

async fn each_role_reads_only_the_leads_it_should(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let capture = app
        .post_lead(
            &admin,
            json!({"name": "陈十二", "phone": "13500135012", "email": "chen@example.com", "channel": "seminar"}),
        )
        .await;
    let offered = app
        .wait_for_assigned_lead(&admin, &capture, Duration::from_secs(20))
        .await;
    let (owner, owner_token) = owner_token(&app, &admin, &offered).await;
    let id = offered["id"].as_str().unwrap();
    let path = format!("/v1/leads/{id}");

    assert_eq!(lead(&app, &owner_token, id).await["phone"], "+8613500135012");
    let other = another_sdr(&app, &admin, &owner).await;
    let (status, _) = app.get(&other, &path).await;
    assert_eq!(status, 404, "another SDR's lead is not found");
    let (status, _) = app.get(&other, &format!("{path}/score")).await;
    assert_eq!(status, 404);

    let (status, created) = app
        .post(
            &admin,
            "/v1/staff",
            &json!({"name": "Mia", "email": "mia@demo.local", "roles": ["marketer"], "password": "mia-password-1"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let marketer = app.login("demo", "mia@demo.local", "mia-password-1").await;
    let masked = lead(&app, &marketer, id).await;
    assert_eq!(masked["name"], "陈十二");
    assert_ne!(masked["phone"], "+8613500135012");
    assert!(masked["phone"].as_str().unwrap().contains('*'), "{masked}");
    assert_eq!(masked["email"], "c***@example.com");
    assert!(
        !masked.to_string().contains("13500135012"),
        "no identity leaks it: {masked}"
    );
}

async fn the_inbox_filters_by_state_and_grade_and_counts_down(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr1_id = ids["sdr1@demo.local"].clone();
    let sdr1 = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let mut offered = Vec::new();
    for n in 0..2 {
        let capture = app
            .post_lead(&admin, json!({"name": format!("Inbox {n}"), "phone": format!("1310013{n:04}"), "channel": "smart_card", "owner_hint": sdr1_id}))
            .await;
        offered.push(
            app.wait_for_assigned_lead(&admin, &capture, Duration::from_secs(20))
                .await,
        );
    }
    let first = offered[0]["assignment"]["id"].as_str().unwrap();
    let (status, _) = app
        .post(&sdr1, &format!("/v1/assignments/{first}/accept"), &json!({}))
        .await;
    assert_eq!(status, 200);
    // The inbox is projected from the offers through the bus: wait for both.
    eventually(Duration::from_secs(20), "both offers in the inbox", || async {
        let (_, all) = app.get(&sdr1, "/v1/inbox").await;
        (all["items"].as_array().unwrap().len() == 2).then_some(())
    })
    .await;

    let (_, open) = app.get(&sdr1, "/v1/inbox?state=offered").await;
    let items = open["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{open}");
    let left = items[0]["sla_seconds_left"].as_i64().unwrap();
    assert!(
        (1..=30 * 60).contains(&left),
        "the default 30-minute window counts down: {left}"
    );
    let (_, accepted) = app.get(&sdr1, "/v1/inbox?state=accepted").await;
    let accepted = accepted["items"].as_array().unwrap();
    assert_eq!(accepted.len(), 1);
    assert!(
        accepted[0]["sla_seconds_left"].is_null(),
        "an accepted offer has no clock"
    );
    let grade = offered[1]["grade"].as_str().unwrap();
    let (_, graded) = app.get(&sdr1, &format!("/v1/inbox?grade={grade}")).await;
    assert!(graded["items"].as_array().unwrap().iter().all(|i| i["grade"] == grade));
    for bad in ["state=lost-in-space", "grade=Z", "colour=red"] {
        let (status, problem) = app.get(&sdr1, &format!("/v1/inbox?{bad}")).await;
        assert!(status == 400 || status == 422, "{bad}: {status} {problem}");
    }
}

async fn the_first_activity_stops_the_first_contact_clock(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    put(
        &app,
        &admin,
        "/v1/sla/policies",
        json!({"default": {"accept_within_seconds": 600, "first_contact_within_seconds": 4}}),
    )
    .await;
    // Accepted and left alone: the first-contact deadline passes.
    let (idle, _, _) = assigned_and_accepted(
        &app,
        &admin,
        json!({"name": "慢", "phone": "13900139101", "channel": "seminar"}),
    )
    .await;
    // Accepted and called at once: no breach.
    let (called, _, sdr) = assigned_and_accepted(
        &app,
        &admin,
        json!({"name": "快", "phone": "13900139102", "channel": "seminar"}),
    )
    .await;
    let called_id = called["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &sdr,
            &format!("/v1/leads/{called_id}/activities"),
            &json!({"kind": "call"}),
        )
        .await;
    assert_eq!(status, 201);

    let idle_id = idle["id"].as_str().unwrap();
    let breached = eventually(Duration::from_secs(20), "the first-contact breach", || async {
        let l = lead(&app, &admin, idle_id).await;
        l["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["kind"] == "first_contact_breached")
            .cloned()
    })
    .await;
    assert_eq!(breached["actor"], "router");
    // Well past the called lead's deadline too: still no breach there.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let called = lead(&app, &admin, called_id).await;
    assert!(
        called["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["kind"] != "first_contact_breached"),
        "{called}"
    );
    let (_, sla) = app.get(&admin, "/v1/reports/sla").await;
    let total: i64 = sla["sdrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["first_contact_breached"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 1, "{sla}");
}
