//! Routing by rules and SLA, end to end: rules first-match by field; working hours,
//! dates off, caps and capacity; offers that breach go to the next SDR, then the
//! manager, then the pool; rejections re-offer at once; racing routers; and the
//! simulator agreeing with what the router then does.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Environment, PASSWORD, TestApp, eventually, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    unanswered_offers_go_to_the_next_sdr_then_the_manager_then_the_pool,
    a_rejected_offer_goes_to_the_next_sdr_at_once,
    rules_match_by_field_and_respect_hours_caps_capacity_and_dates_off,
    the_simulator_answers_what_the_router_then_does,
    configuration_is_validated_and_versioned,
    racing_routers_assign_each_lead_once
);

/// Creates a staff member who can sign in; returns their id.
async fn staff(app: &TestApp, admin: &str, email: &str, roles: &[&str], extra: Value) -> String {
    let mut body = json!({"name": email, "email": email, "roles": roles, "password": PASSWORD});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    let (status, created) = app.post(admin, "/v1/staff", &body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

async fn team(app: &TestApp, admin: &str, name: &str, manager: Option<&str>, members: &[&str]) -> String {
    let (status, team) = app
        .post(
            admin,
            "/v1/teams",
            &json!({"name": name, "manager_id": manager, "members": members}),
        )
        .await;
    assert_eq!(status, 201, "{team}");
    team["id"].as_str().unwrap().to_string()
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let (status, answer) = app.send(Method::PUT, token, path, &body).await;
    assert_eq!(status, 200, "PUT {path}: {answer}");
    answer
}

async fn lead(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, lead) = app.get(token, &format!("/v1/leads/{id}")).await;
    assert_eq!(status, 200, "{lead}");
    lead
}

fn history_kinds(lead: &Value) -> Vec<String> {
    lead["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the lead's newest assignment is an open offer other than `previous`.
async fn next_offer(app: &TestApp, token: &str, lead_id: &str, previous: &str, within: Duration) -> Value {
    eventually(within, "the next offer", || async {
        let lead = lead(app, token, lead_id).await;
        let assignment = &lead["assignment"];
        (assignment["id"] != previous && assignment["state"] == "offered").then(|| lead.clone())
    })
    .await
}

async fn unanswered_offers_go_to_the_next_sdr_then_the_manager_then_the_pool(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let a = staff(&app, &admin, "a@demo.local", &["sdr"], json!({})).await;
    let b = staff(&app, &admin, "b@demo.local", &["sdr"], json!({})).await;
    let boss = staff(&app, &admin, "boss@demo.local", &["manager"], json!({})).await;
    let squad = team(&app, &admin, "Squad", Some(&boss), &[&a, &b]).await;
    put(
        &app,
        &admin,
        "/v1/routing/rules",
        json!({"rules": [{"name": "all", "target": {"team_id": squad}}]}),
    )
    .await;
    put(
        &app,
        &admin,
        "/v1/sla/policies",
        json!({"default": {"accept_within_seconds": 2}, "max_hops": 1}),
    )
    .await;

    let capture = app
        .post_lead(&admin, json!({"phone": "13700137000", "channel": "website"}))
        .await;
    let first = app
        .wait_for_assigned_lead(&admin, &capture, Duration::from_secs(10))
        .await;
    let lead_id = first["id"].as_str().unwrap().to_string();
    let first_owner = first["assignment"]["staff_id"].as_str().unwrap().to_string();
    assert!([&a, &b].contains(&&first_owner));
    let first_offer = first["assignment"]["id"].as_str().unwrap().to_string();

    // Breach 1: the other SDR of the team.
    let second = next_offer(&app, &admin, &lead_id, &first_offer, Duration::from_secs(10)).await;
    // The assignment, not `owner_id`: the lead view reads the two with separate
    // statements, so under load the owner can be a step behind the newest offer.
    let second_owner = second["assignment"]["staff_id"].as_str().unwrap().to_string();
    assert_ne!(second_owner, first_owner);
    assert!([&a, &b].contains(&&second_owner));

    // Breach 2 (hops used up): the team's manager.
    let second_offer = second["assignment"]["id"].as_str().unwrap().to_string();
    let third = next_offer(&app, &admin, &lead_id, &second_offer, Duration::from_secs(10)).await;
    assert_eq!(third["assignment"]["staff_id"], boss.as_str());

    // Breach 3: the manager let it pass too — the public pool.
    let pooled = eventually(Duration::from_secs(10), "the lead in the pool", || async {
        let lead = lead(&app, &admin, &lead_id).await;
        (lead["status"] == "pool").then_some(lead)
    })
    .await;
    assert!(pooled["owner_id"].is_null());
    let kinds = history_kinds(&pooled);
    let breaches = kinds.iter().filter(|k| *k == "sla_breached").count();
    assert_eq!(breaches, 3, "{kinds:?}");
    for kind in ["assigned", "escalated", "released"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in {kinds:?}");
    }

    // Every decision is written down; the re-offer shows why the first SDR was passed over.
    let (status, decisions) = app.get(&admin, &format!("/v1/leads/{lead_id}/decisions")).await;
    assert_eq!(status, 200, "{decisions}");
    let items = decisions["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{decisions}");
    assert_eq!(items[0]["cause"], "qualified");
    assert_eq!(items[0]["decision"]["rule"][1], "all");
    assert_eq!(items[1]["cause"], "sla_breached");
    let passed_over = items[1]["decision"]["considered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["staff_id"] == first_owner.as_str())
        .unwrap();
    assert_eq!(passed_over["excluded"], "already_offered");
    assert_eq!(items[2]["decision"]["reason"], "escalation");
    app.stop().await;
}

async fn a_rejected_offer_goes_to_the_next_sdr_at_once(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let capture = app
        .post_lead(&admin, json!({"email": "reject@example.com", "channel": "website"}))
        .await;
    let first = app
        .wait_for_assigned_lead(&admin, &capture, Duration::from_secs(10))
        .await;
    let lead_id = first["id"].as_str().unwrap();
    let owner = first["owner_id"].as_str().unwrap();
    let assignment = first["assignment"]["id"].as_str().unwrap();
    let ids = app.staff_ids(&admin).await;
    let email = ids.iter().find(|(_, id)| id.as_str() == owner).unwrap().0.clone();
    let sdr = app.login("demo", &email, PASSWORD).await;
    let other_email = ["sdr1@demo.local", "sdr2@demo.local", "sdr3@demo.local"]
        .into_iter()
        .find(|e| *e != email)
        .unwrap();
    let other = app.login("demo", other_email, PASSWORD).await;
    let path = format!("/v1/assignments/{assignment}/reject");

    let (status, problem) = app.post(&sdr, &path, &json!({"reason": "  "})).await;
    assert_eq!(status, 422, "{problem}");
    let (status, _) = app.post(&other, &path, &json!({"reason": "not mine"})).await;
    assert_eq!(status, 403);
    let (status, rejected) = app.post(&sdr, &path, &json!({"reason": "wrong region"})).await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["state"], "rejected");
    let (status, _) = app
        .post(&sdr, &format!("/v1/assignments/{assignment}/accept"), &json!({}))
        .await;
    assert_eq!(status, 409, "a rejected offer cannot be accepted");

    // Offered to someone else within a moment — the default SLA is 30 minutes, so
    // this is the rejection, not a timer.
    let next = next_offer(&app, &admin, lead_id, assignment, Duration::from_secs(5)).await;
    assert_ne!(next["owner_id"], owner);
    let kinds = history_kinds(&next);
    assert!(kinds.iter().any(|k| k == "rejected"), "{kinds:?}");
    app.stop().await;
}

async fn rules_match_by_field_and_respect_hours_caps_capacity_and_dates_off(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    // Never in working hours: no window on any day.
    let night = staff(
        &app,
        &admin,
        "night@demo.local",
        &["sdr"],
        json!({"working_hours": {"weekly": {}}}),
    )
    .await;
    let full = staff(&app, &admin, "full@demo.local", &["sdr"], json!({"capacity": 0})).await;
    let capped = staff(&app, &admin, "capped@demo.local", &["sdr"], json!({"daily_cap": 0})).await;
    let ok = staff(
        &app,
        &admin,
        "ok@demo.local",
        &["sdr"],
        json!({"working_hours": {"weekly": {
        "mon": [{"start": "00:00", "end": "24:00"}], "tue": [{"start": "00:00", "end": "24:00"}],
        "wed": [{"start": "00:00", "end": "24:00"}], "thu": [{"start": "00:00", "end": "24:00"}],
        "fri": [{"start": "00:00", "end": "24:00"}], "sat": [{"start": "00:00", "end": "24:00"}],
        "sun": [{"start": "00:00", "end": "24:00"}]}}}),
    )
    .await;
    let fairs = staff(&app, &admin, "fairs@demo.local", &["sdr"], json!({})).await;
    let east = team(&app, &admin, "East", None, &[&night, &full, &capped, &ok]).await;
    put(
        &app,
        &admin,
        "/v1/routing/rules",
        json!({"rules": [
            {"name": "trade fairs", "when": {"channel": ["seminar"]}, "target": {"staff_id": fairs}},
            {"name": "jiangsu", "when": {"province": ["江苏"], "score": {"min": 0}}, "target": {"team_id": east}, "strategy": "least_loaded"},
            {"name": "rest", "target": {"pool": true}}
        ]}),
    )
    .await;

    let owner_of = |capture: String| {
        let app = &app;
        let admin = admin.clone();
        async move {
            eventually(Duration::from_secs(10), "the lead routed", || async {
                let (_, c) = app.get(&admin, &format!("/v1/captures/{capture}")).await;
                let id = c["lead_id"].as_str()?.to_string();
                let lead = lead(app, &admin, &id).await;
                (lead["owner_id"].is_string() || lead["status"] == "pool").then_some(lead)
            })
            .await
        }
    };
    let jiangsu = app
        .post_lead(
            &admin,
            json!({"phone": "13600136001", "channel": "website", "attributes": {"province": "江苏"}}),
        )
        .await;
    let routed = owner_of(jiangsu).await;
    assert_eq!(routed["owner_id"], ok.as_str());
    let (_, decisions) = app
        .get(
            &admin,
            &format!("/v1/leads/{}/decisions", routed["id"].as_str().unwrap()),
        )
        .await;
    let why: HashMap<String, Value> = decisions["items"][0]["decision"]["considered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["staff_id"].as_str().unwrap().to_string(), c["excluded"].clone()))
        .collect();
    assert_eq!(why[&night], "off_hours");
    assert_eq!(why[&full], "at_capacity");
    assert_eq!(why[&capped], "daily_cap");
    assert!(why[&ok].is_null());
    assert_eq!(decisions["items"][0]["decision"]["strategy"], "least_loaded");

    let fair = app
        .post_lead(
            &admin,
            json!({"phone": "13600136002", "channel": "seminar", "attributes": {"province": "江苏"}}),
        )
        .await;
    assert_eq!(
        owner_of(fair).await["owner_id"],
        fairs.as_str(),
        "the first matching rule wins"
    );
    let elsewhere = app
        .post_lead(
            &admin,
            json!({"phone": "13600136003", "channel": "website", "attributes": {"province": "浙江"}}),
        )
        .await;
    let pooled = owner_of(elsewhere).await;
    assert_eq!(pooled["status"], "pool");
    assert!(pooled["owner_id"].is_null());

    // A company holiday today: nobody in the team may take a lead.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d")
        .to_string();
    put(&app, &admin, "/v1/calendar", json!({"dates_off": [today]})).await;
    let holiday = app
        .post_lead(
            &admin,
            json!({"phone": "13600136004", "channel": "website", "attributes": {"province": "江苏"}}),
        )
        .await;
    let pooled = owner_of(holiday).await;
    assert_eq!(pooled["status"], "pool");
    let (_, decisions) = app
        .get(
            &admin,
            &format!("/v1/leads/{}/decisions", pooled["id"].as_str().unwrap()),
        )
        .await;
    let ok_seen = decisions["items"][0]["decision"]["considered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["staff_id"] == ok.as_str())
        .unwrap()
        .clone();
    assert_eq!(ok_seen["excluded"], "date_off");
    app.stop().await;
}

async fn the_simulator_answers_what_the_router_then_does(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    put(
        &app,
        &admin,
        "/v1/sla/policies",
        json!({"grades": {"A": {"accept_within_seconds": 60}, "B": {"accept_within_seconds": 120}, "C": {"accept_within_seconds": 180}, "D": {"accept_within_seconds": 240}}}),
    )
    .await;
    for i in 0..4 {
        let facts = json!({"channel": "website", "grade": "C", "score": 10});
        let (status, simulated) = app.post(&admin, "/v1/routing/simulate", &json!({"lead": facts})).await;
        assert_eq!(status, 200, "{simulated}");
        let predicted = simulated["decision"]["chosen"].as_str().unwrap().to_string();
        assert_eq!(simulated["decision"]["reason"], "default");
        // Simulating changes nothing: asking twice answers the same.
        let (_, again) = app.post(&admin, "/v1/routing/simulate", &json!({"lead": facts})).await;
        assert_eq!(again["decision"]["chosen"], predicted.as_str());

        let capture = app
            .post_lead(&admin, json!({"phone": format!("1350013500{i}"), "channel": "website"}))
            .await;
        let routed = app
            .wait_for_assigned_lead(&admin, &capture, Duration::from_secs(10))
            .await;
        let grade = routed["grade"].as_str().unwrap();
        if grade == "C" {
            assert_eq!(routed["owner_id"], predicted.as_str(), "lead {i}");
        }
        // The SLA deadline follows the lead's grade.
        let (_, decisions) = app
            .get(
                &admin,
                &format!("/v1/leads/{}/decisions", routed["id"].as_str().unwrap()),
            )
            .await;
        let within = decisions["items"][0]["sla"]["accept_within_seconds"].as_i64().unwrap();
        let expected = match grade {
            "A" => 60,
            "B" => 120,
            "C" => 180,
            _ => 240,
        };
        assert_eq!(within, expected);
    }

    // Replaying those decisions under the rules in force changes nobody; under a
    // draft that pools everything, everybody, and says why.
    let from = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let (status, same) = app
        .post(
            &admin,
            "/v1/routing/replay",
            &json!({"from": from, "to": to, "rules": {}}),
        )
        .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["total"], 4, "{same}");
    assert_eq!(same["changed"], 0, "{same}");
    let draft = json!({"rules": [{"name": "everything to the pool", "target": {"pool": true}}]});
    let (status, pooled) = app
        .post(
            &admin,
            "/v1/routing/replay",
            &json!({"from": from, "to": to, "rules": draft}),
        )
        .await;
    assert_eq!(status, 200, "{pooled}");
    assert_eq!(pooled["changed"], 4, "{pooled}");
    let item = &pooled["items"][0];
    assert_eq!(item["draft"]["rule"], "everything to the pool");
    assert_eq!(item["draft"]["to_pool"], true);
    assert!(item["draft"]["chosen"].is_null());
    assert!(item["recorded"]["chosen"].is_string());
    let (status, _) = app
        .post(
            &admin,
            "/v1/routing/replay",
            &json!({"from": to, "to": from, "rules": {}}),
        )
        .await;
    assert_eq!(status, 422);
    app.stop().await;
}

async fn configuration_is_validated_and_versioned(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let (status, empty) = app.get(&admin, "/v1/routing/rules").await;
    assert_eq!(status, 200);
    assert_eq!(empty["version"], 0);

    let (status, problem) = app
        .send(
            Method::PUT,
            &admin,
            "/v1/routing/rules",
            &json!({"rules": [{"name": "x", "target": {"team_id": "no-such-team"}}]}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "rules[0].target.team_id");
    let (status, _) = app
        .send(
            Method::PUT,
            &admin,
            "/v1/routing/rules",
            &json!({"rules": [{"name": "x", "when": {"colour": ["red"]}, "target": {"pool": true}}]}),
        )
        .await;
    assert!((400..500).contains(&status), "unknown condition refused: {status}");
    let (status, _) = app
        .send(
            Method::PUT,
            &admin,
            "/v1/sla/policies",
            &json!({"default": {"accept_within_seconds": 0}}),
        )
        .await;
    assert_eq!(status, 422);

    let v1 = put(
        &app,
        &admin,
        "/v1/routing/rules",
        json!({"rules": [{"name": "all", "target": {"all_sdrs": true}}]}),
    )
    .await;
    let v2 = put(
        &app,
        &admin,
        "/v1/routing/rules",
        json!({"rules": [{"name": "pool", "target": {"pool": true}}]}),
    )
    .await;
    assert_eq!((v1["version"].as_i64(), v2["version"].as_i64()), (Some(1), Some(2)));
    let (_, current) = app.get(&admin, "/v1/routing/rules").await;
    assert_eq!(current["version"], 2);
    assert_eq!(current["rules"][0]["name"], "pool");
    let (_, history) = app.get(&admin, "/v1/routing/rules/history").await;
    let versions: Vec<i64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [2, 1]);

    // SDRs may not change routing.
    let sdr = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let (status, _) = app
        .send(Method::PUT, &sdr, "/v1/routing/rules", &json!({"rules": []}))
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

const CHANNELS: [&str; 3] = ["website", "ads", "seminar"];

async fn racing_routers_assign_each_lead_once(backend: Backend) {
    let env = Environment::new(backend).await;
    let first = TestApp::start(&env, huoke::all_services()).await;
    let second = TestApp::start(&env, vec![huoke_router::service()]).await;
    let admin = first.admin().await;
    // Each person arrives three times, so both routers see events for one lead.
    let mut captures = Vec::new();
    for channel in CHANNELS {
        for person in 0..12 {
            captures.push(
                first
                    .post_lead(
                        &admin,
                        json!({"phone": format!("1330013{person:04}"), "channel": channel}),
                    )
                    .await,
            );
        }
    }
    let mut leads = BTreeSet::new();
    for capture in &captures {
        let lead = first
            .wait_for_assigned_lead(&admin, capture, Duration::from_secs(30))
            .await;
        leads.insert(lead["id"].as_str().unwrap().to_string());
    }
    for id in &leads {
        let lead = eventually(Duration::from_secs(10), "every capture seen by a router", || async {
            let lead = lead(&first, &admin, id).await;
            let kinds = history_kinds(&lead);
            let seen = kinds.iter().filter(|k| *k == "assigned" || *k == "kept_owner").count();
            let captures = lead["touches"].as_array().map_or(0, Vec::len);
            (seen >= captures).then_some(lead)
        })
        .await;
        let assigned = history_kinds(&lead).iter().filter(|k| *k == "assigned").count();
        assert_eq!(assigned, 1, "lead {id} assigned once: {:?}", history_kinds(&lead));
        let (_, decisions) = first.get(&admin, &format!("/v1/leads/{id}/decisions")).await;
        assert_eq!(decisions["items"].as_array().unwrap().len(), 1, "{decisions}");
    }
    second.stop().await;
    first.stop().await;
}
