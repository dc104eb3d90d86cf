use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, PASSWORD, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_lead_reaches_an_sdr_inbox_and_is_accepted,
    the_same_person_written_differently_is_one_lead,
    round_robin_spreads_new_leads_over_the_sdrs,
    owner_hint_routes_to_that_sdr
);

async fn a_lead_reaches_an_sdr_inbox_and_is_accepted(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let capture_id = app
        .post_lead(&admin, json!({"name": "王小明", "phone": "13900139000", "email": "Wang@Example.com", "company": "Acme", "channel": "website"}))
        .await;

    let lead = app
        .wait_for_assigned_lead(&admin, &capture_id, Duration::from_secs(5))
        .await;
    assert_eq!(lead["name"], "王小明");
    assert_eq!(lead["phone"], "+8613900139000");
    assert_eq!(lead["email"], "wang@example.com");
    assert!(lead["score"].as_i64().unwrap() > 0);
    assert!(["A", "B", "C", "D"].contains(&lead["grade"].as_str().unwrap()));
    assert!(!lead["score_reasons"].as_array().unwrap().is_empty());
    let assignment = &lead["assignment"];
    assert_eq!(assignment["state"], "offered");
    assert!(assignment["sla_due_at"].is_string());
    let owner_id = lead["owner_id"].as_str().unwrap();
    assert_eq!(assignment["staff_id"], owner_id);

    let (_, capture) = app.get(&admin, &format!("/v1/captures/{capture_id}")).await;
    assert_eq!(capture["status"], "qualified");
    assert_eq!(capture["lead_id"], lead["id"]);

    // The owner is one of the three SDRs; sign in as them.
    let (status, owner) = app.get(&admin, &format!("/v1/staff/{owner_id}")).await;
    assert_eq!(status, 200);
    let email = owner["email"].as_str().unwrap();
    assert!(
        ["sdr1@demo.local", "sdr2@demo.local", "sdr3@demo.local"].contains(&email),
        "{email}"
    );
    let sdr = app.login("demo", email, PASSWORD).await;

    let assignment_id = assignment["id"].as_str().unwrap();
    let item = crate::helpers::eventually(Duration::from_secs(5), "the inbox item", || async {
        let (_, inbox) = app.get(&sdr, "/v1/inbox").await;
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["assignment_id"] == assignment_id)
            .cloned()
    })
    .await;
    assert_eq!(item["lead_id"], lead["id"]);
    assert_eq!(item["state"], "offered");
    assert_eq!(item["name"], "王小明");
    assert_eq!(item["channel"], "website");
    assert!(item["sla_due_at"].is_string());

    // Another SDR may not accept it.
    let other_email = ["sdr1@demo.local", "sdr2@demo.local", "sdr3@demo.local"]
        .into_iter()
        .find(|e| *e != email)
        .unwrap();
    let other = app.login("demo", other_email, PASSWORD).await;
    let (status, _) = app
        .post(&other, &format!("/v1/assignments/{assignment_id}/accept"), &json!({}))
        .await;
    assert_eq!(status, 403);

    let (status, accepted) = app
        .post(&sdr, &format!("/v1/assignments/{assignment_id}/accept"), &json!({}))
        .await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["state"], "accepted");
    // Accepting twice answers the same.
    let (status, again) = app
        .post(&sdr, &format!("/v1/assignments/{assignment_id}/accept"), &json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["state"], "accepted");

    let (_, lead) = app
        .get(&admin, &format!("/v1/leads/{}", lead["id"].as_str().unwrap()))
        .await;
    assert_eq!(lead["assignment"]["state"], "accepted");
    assert_eq!(lead["status"], "accepted");
    let kinds: Vec<_> = lead["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect();
    for k in ["created", "scored", "assigned", "accepted"] {
        assert!(kinds.iter().any(|x| x == k), "history lacks {k}: {kinds:?}");
    }
    let (_, inbox) = app.get(&sdr, "/v1/inbox").await;
    assert_eq!(inbox["items"][0]["state"], "accepted");
    app.stop().await;
}

async fn the_same_person_written_differently_is_one_lead(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let first = app
        .post_lead(&admin, json!({"phone": "+86 138-0013-8000", "channel": "ads"}))
        .await;
    let first_lead = app.wait_for_assigned_lead(&admin, &first, Duration::from_secs(5)).await;
    let second = app
        .post_lead(
            &admin,
            json!({"phone": "13800138000", "company": "Acme", "channel": "smart_card"}),
        )
        .await;
    let third = app
        .post_lead(
            &admin,
            json!({"phone": "0086 13800138000", "email": "x@acme.cn", "channel": "seminar"}),
        )
        .await;
    let second_lead = app
        .wait_for_assigned_lead(&admin, &second, Duration::from_secs(5))
        .await;
    let third_lead = app.wait_for_assigned_lead(&admin, &third, Duration::from_secs(5)).await;
    assert_eq!(first_lead["id"], second_lead["id"]);
    assert_eq!(first_lead["id"], third_lead["id"]);

    let (_, lead) = app
        .get(&admin, &format!("/v1/leads/{}", first_lead["id"].as_str().unwrap()))
        .await;
    assert_eq!(lead["touches"].as_array().unwrap().len(), 3);
    assert_eq!(lead["company"], "Acme");
    let identities = lead["identities"].as_array().unwrap();
    assert!(
        identities
            .iter()
            .any(|i| i["kind"] == "phone" && i["value"] == "+8613800138000")
    );
    assert!(
        identities
            .iter()
            .any(|i| i["kind"] == "email" && i["value"] == "x@acme.cn")
    );
    // More touches and a company raise the score; the owner is kept.
    assert!(lead["score"].as_i64() > first_lead["score"].as_i64());
    assert_eq!(lead["owner_id"], first_lead["owner_id"]);
    app.stop().await;
}

async fn round_robin_spreads_new_leads_over_the_sdrs(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let mut captures = Vec::new();
    for i in 0..6 {
        captures.push(
            app.post_lead(&admin, json!({"email": format!("p{i}@example.com"), "channel": "api"}))
                .await,
        );
    }
    let mut per_owner: HashMap<String, usize> = HashMap::new();
    for c in &captures {
        let lead = app.wait_for_assigned_lead(&admin, c, Duration::from_secs(10)).await;
        *per_owner
            .entry(lead["owner_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_owner.len(), 3, "{per_owner:?}");
    assert!(per_owner.values().all(|n| *n == 2), "{per_owner:?}");
    app.stop().await;
}

async fn owner_hint_routes_to_that_sdr(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let (_, staff) = app.get(&admin, "/v1/staff").await;
    let sdr3 = staff["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["email"] == "sdr3@demo.local")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let admin_id = staff["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["email"] == "admin@demo.local")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        let c = app
            .post_lead(
                &admin,
                json!({"email": format!("h{i}@example.com"), "channel": "smart_card", "owner_hint": sdr3}),
            )
            .await;
        let lead = app.wait_for_assigned_lead(&admin, &c, Duration::from_secs(5)).await;
        assert_eq!(lead["owner_id"], sdr3.as_str());
        assert_eq!(lead["assignment"]["reason"], "owner_hint");
    }
    // A hint naming someone who is not an SDR falls back to rotation.
    let c = app
        .post_lead(
            &admin,
            json!({"email": "h9@example.com", "channel": "smart_card", "owner_hint": admin_id}),
        )
        .await;
    let lead = app.wait_for_assigned_lead(&admin, &c, Duration::from_secs(5)).await;
    assert_eq!(lead["assignment"]["reason"], "round_robin");
    app.stop().await;
}
