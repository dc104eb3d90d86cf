//! Reports against a data set made for them: the funnel by channel and campaign, the
//! SLA by SDR and team, the period in the tenant's time zone, CSV.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(reports_count_the_funnel_and_the_sla_of_a_known_data_set);

/// Creates a lead, waits for its offer, and takes it as far as `stage`.
async fn lead_to(app: &TestApp, admin: &str, body: Value, stage: &str) -> Value {
    let capture = app.post_lead(admin, body).await;
    let lead = app
        .wait_for_assigned_lead(admin, &capture, Duration::from_secs(20))
        .await;
    if stage == "offered" {
        return lead;
    }
    let owner = lead["assignment"]["staff_id"].as_str().unwrap();
    let (_, staff) = app.get(admin, &format!("/v1/staff/{owner}")).await;
    let sdr = app.login("demo", staff["email"].as_str().unwrap(), PASSWORD).await;
    let assignment = lead["assignment"]["id"].as_str().unwrap();
    let (status, _) = app
        .post(&sdr, &format!("/v1/assignments/{assignment}/accept"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let id = lead["id"].as_str().unwrap();
    let steps: &[&str] = match stage {
        "accepted" => &[],
        "sql" => &["contacted", "sql"],
        "won" => &["contacted", "sql", "converted", "won"],
        other => panic!("no stage {other}"),
    };
    if !steps.is_empty() {
        let (status, _) = app
            .post(&sdr, &format!("/v1/leads/{id}/activities"), &json!({"kind": "call"}))
            .await;
        assert_eq!(status, 201);
    }
    for step in steps.iter().skip(1) {
        let (status, answer) = app
            .post(&sdr, &format!("/v1/leads/{id}/status"), &json!({"status": step}))
            .await;
        assert_eq!(status, 200, "{step}: {answer}");
    }
    lead
}

fn row<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row {key}: {report}"))
}

async fn reports_count_the_funnel_and_the_sla_of_a_known_data_set(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    // A title makes an MQL; nothing else scores.
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            &admin,
            "/v1/scoring/rules",
            &json!({"fit": [{"name": "has a title", "field": "title", "points": 60}], "grades": {"A": 80, "B": 60, "C": 40}, "mql_threshold": 50}),
        )
        .await;
    assert_eq!(status, 200);
    let expo = |n: u32, title: Option<&str>| json!({"name": format!("Expo {n}"), "phone": format!("1360013{n:04}"), "title": title, "channel": "seminar", "campaign_id": "spring-expo"});
    lead_to(&app, &admin, expo(1, Some("CTO")), "won").await;
    lead_to(&app, &admin, expo(2, Some("CFO")), "sql").await;
    lead_to(&app, &admin, expo(3, None), "offered").await;
    let form = |n: u32, title: Option<&str>| json!({"name": format!("Form {n}"), "email": format!("form{n}@example.com"), "title": title, "channel": "web_form"});
    lead_to(&app, &admin, form(1, Some("Buyer")), "accepted").await;
    lead_to(&app, &admin, form(2, None), "offered").await;
    // A returning person: a second capture, no second lead.
    let again = app.post_lead(&admin, expo(1, None)).await;
    crate::identity::lead_of(&app, &admin, &again).await;

    let today = Utc::now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive()
        .to_string();
    let period = format!("from={today}&to={today}");
    let (status, by_channel) = app
        .get(&admin, &format!("/v1/reports/funnel?{period}&by=channel"))
        .await;
    assert_eq!(status, 200, "{by_channel}");
    assert_eq!(by_channel["timezone"], "Asia/Shanghai");
    let seminar = row(&by_channel, "seminar");
    assert_eq!(
        [
            &seminar["captures"],
            &seminar["leads"],
            &seminar["mql"],
            &seminar["sql"],
            &seminar["sal"],
            &seminar["won"]
        ],
        [&json!(4), &json!(3), &json!(2), &json!(2), &json!(1), &json!(1)],
        "{seminar}"
    );
    assert!(seminar["scans"].is_null(), "scans are not split by channel");
    let web = row(&by_channel, "web_form");
    assert_eq!(
        (
            web["captures"].as_i64(),
            web["leads"].as_i64(),
            web["mql"].as_i64(),
            web["sql"].as_i64()
        ),
        (Some(2), Some(2), Some(1), Some(0))
    );
    assert_eq!(by_channel["total"]["leads"], 5);
    assert_eq!(by_channel["total"]["won"], 1);

    let (_, by_campaign) = app
        .get(&admin, &format!("/v1/reports/funnel?{period}&by=campaign"))
        .await;
    assert_eq!(row(&by_campaign, "spring-expo")["leads"], 3);
    assert_eq!(row(&by_campaign, "(none)")["leads"], 2);
    let (_, by_team) = app.get(&admin, &format!("/v1/reports/funnel?{period}&by=team")).await;
    assert_eq!(row(&by_team, "Inbound")["leads"], 5, "{by_team}");

    // Another period has none of it.
    let (_, past) = app
        .get(&admin, "/v1/reports/funnel?from=2020-01-01&to=2020-01-31")
        .await;
    assert_eq!(past["total"]["leads"], 0);

    // CSV, ready for a spreadsheet.
    let resp = app
        .client
        .get(app.url(&format!("/v1/reports/funnel?{period}&by=channel&format=csv")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = resp.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("channel,scans,captures,leads,mql,sql,sal,won"));
    assert!(text.lines().any(|l| l == "seminar,,4,3,2,2,1,1"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("total,")), "{text}");

    // The SLA: five offers, three accepted, none breached, by SDR and by team.
    let (status, sla) = app.get(&admin, &format!("/v1/reports/sla?{period}")).await;
    assert_eq!(status, 200, "{sla}");
    let teams = sla["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 1, "{sla}");
    let inbound = &teams[0];
    assert_eq!(
        (
            inbound["key"].as_str(),
            inbound["offers"].as_i64(),
            inbound["accepted"].as_i64(),
            inbound["breached"].as_i64()
        ),
        (Some("Inbound"), Some(5), Some(3), Some(0))
    );
    assert!(inbound["accept_median_s"].is_i64());
    assert!(
        inbound["first_contact_median_s"].is_i64(),
        "two accepted leads were contacted: {inbound}"
    );
    let sdrs = sla["sdrs"].as_array().unwrap();
    assert_eq!(sdrs.iter().map(|s| s["offers"].as_i64().unwrap()).sum::<i64>(), 5);
    assert!(sdrs.iter().all(|s| s["name"].is_string() && s["team"] == "Inbound"));
    let resp = app
        .client
        .get(app.url(&format!("/v1/reports/sla?{period}&format=csv")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("level,key,name,team,offers,accepted,rejected,breached,"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("team,Inbound,,,5,3,0,0,")), "{text}");

    // Who may read them, and what is refused.
    let sdr = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    assert_eq!(app.get(&sdr, "/v1/reports/funnel").await.0, 403);
    assert_eq!(app.get(&sdr, "/v1/reports/sla").await.0, 403);
    for bad in [
        "from=2026-13-01",
        "from=2026-02-01&to=2026-01-01",
        "by=mood",
        "format=xml",
        "from=2020-01-01&to=2026-01-01",
    ] {
        let (status, problem) = app.get(&admin, &format!("/v1/reports/funnel?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }
}
