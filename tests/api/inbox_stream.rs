//! The inbox as Server-Sent Events: a new offer arrives on the open stream, changes
//! of the SDR's assignments follow, heartbeats keep it open, a reconnect with
//! `Last-Event-ID` replays what was missed, and an offer made by one replica reaches
//! a stream held by another.

use std::time::{Duration, Instant};

use huoke::service_named;
use serde_json::{Value, json};

use crate::helpers::{Backend, Environment, PASSWORD, TestApp, services_available};
use crate::on_both_backends;

on_both_backends!(offers_reach_an_open_inbox_stream_and_a_reconnect_resumes);

/// An open event stream and what was read from it so far.
struct Stream {
    resp: reqwest::Response,
    text: String,
}

impl Stream {
    async fn open(app: &TestApp, token: &str, last_event_id: Option<&str>) -> Stream {
        let mut request = reqwest::Client::new()
            .get(app.url("/v1/inbox/stream"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Stream {
            resp,
            text: String::new(),
        }
    }

    /// Reads until `found` finds something in the frames read so far.
    async fn until<T>(&mut self, within: Duration, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(v) = found(&self.text) {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {what} within {within:?}; read: {}", self.text);
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(chunk))) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(other) => panic!("the stream ended ({other:?}) before {what}; read: {}", self.text),
                Err(_) => {}
            }
        }
    }
}

/// The `offer` frames read so far: (id, data).
fn offers(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|frame| frame.contains("event: offer"))
        .filter_map(|frame| {
            let id = frame.lines().find_map(|l| l.strip_prefix("id: "))?.to_string();
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((id, serde_json::from_str(data).ok()?))
        })
        .collect()
}

async fn lead_for(app: &TestApp, admin: &str, owner: &str, n: u32) -> String {
    app.post_lead(
        admin,
        json!({"name": format!("Live {n}"), "phone": format!("1330013{n:04}"), "channel": "smart_card", "owner_hint": owner}),
    )
    .await
}

async fn offers_reach_an_open_inbox_stream_and_a_reconnect_resumes(backend: Backend) {
    let mut env = Environment::new(backend).await;
    env.vars.insert("HUOKE_SSE_HEARTBEAT_MS".into(), "300".into());
    let app = TestApp::start(&env, huoke::all_services()).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr1_id = ids["sdr1@demo.local"].clone();
    let sdr1 = app.login("demo", "sdr1@demo.local", PASSWORD).await;

    let mut stream = Stream::open(&app, &sdr1, None).await;
    stream
        .until(Duration::from_secs(5), "the first heartbeat", |t| {
            t.contains(": ping").then_some(())
        })
        .await;
    let capture = lead_for(&app, &admin, &sdr1_id, 1).await;
    let lead = app
        .wait_for_assigned_lead(&admin, &capture, Duration::from_secs(20))
        .await;
    let (first_id, offer) = stream
        .until(Duration::from_secs(5), "the offer", |t| offers(t).into_iter().next())
        .await;
    assert_eq!(offer["lead_id"], lead["id"]);
    assert_eq!(first_id, lead["assignment"]["id"].as_str().unwrap());
    assert!(offer["sla_due_at"].is_string());
    // Accepting it shows on the stream too.
    let (status, _) = app
        .post(&sdr1, &format!("/v1/assignments/{first_id}/accept"), &json!({}))
        .await;
    assert_eq!(status, 200);
    stream
        .until(Duration::from_secs(5), "the acceptance", |t| {
            t.contains("\"state\":\"accepted\"").then_some(())
        })
        .await;
    // Another SDR's offers are not shown.
    let sdr2_id = ids["sdr2@demo.local"].clone();
    let other = lead_for(&app, &admin, &sdr2_id, 2).await;
    app.wait_for_assigned_lead(&admin, &other, Duration::from_secs(20))
        .await;
    drop(stream);

    // Offers made while disconnected come first on the reconnect.
    let mut missed = Vec::new();
    for n in 3..5 {
        let capture = lead_for(&app, &admin, &sdr1_id, n).await;
        missed.push(
            app.wait_for_assigned_lead(&admin, &capture, Duration::from_secs(20))
                .await,
        );
    }
    let mut resumed = Stream::open(&app, &sdr1, Some(&first_id)).await;
    let replayed = resumed
        .until(Duration::from_secs(5), "the missed offers", |t| {
            let o = offers(t);
            (o.len() >= 2).then_some(o)
        })
        .await;
    let replayed_leads: Vec<&Value> = replayed.iter().map(|(_, d)| &d["lead_id"]).collect();
    assert_eq!(replayed_leads, vec![&missed[0]["id"], &missed[1]["id"]]);
    assert!(replayed.iter().all(|(id, _)| id.as_str() > first_id.as_str()));
    // An open stream would hold a graceful stop for its whole grace period.
    drop(resumed);
    app.stop().await;

    // Two replicas: the stream is held by a pool process, the offer made by another.
    if !services_available() || backend != Backend::Services {
        return;
    }
    let names = |list: &[&str]| list.iter().map(|n| service_named(n).unwrap()).collect::<Vec<_>>();
    let holder = TestApp::start(&env, names(&["console", "pool"])).await;
    let router = TestApp::start(&env, names(&["console", "intake", "qualify", "router"])).await;
    let sdr1 = holder.login("demo", "sdr1@demo.local", PASSWORD).await;
    let admin = router.admin().await;
    let mut stream = Stream::open(&holder, &sdr1, None).await;
    stream
        .until(Duration::from_secs(5), "the connection", |t| {
            t.contains(": connected").then_some(())
        })
        .await;
    let capture = lead_for(&router, &admin, &sdr1_id, 9).await;
    let (_, offer) = stream
        .until(Duration::from_secs(10), "the offer made by the other replica", |t| {
            offers(t).into_iter().next()
        })
        .await;
    let (_, made) = router.get(&admin, &format!("/v1/captures/{capture}")).await;
    assert_eq!(offer["lead_id"], made["lead_id"]);
    drop(stream);
    holder.stop().await;
    router.stop().await;
}
