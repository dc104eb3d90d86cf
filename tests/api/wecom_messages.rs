//! WeCom app messages against a fake WeCom: the SDR a lead is offered to is told,
//! and on an escalation the team's manager.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, PASSWORD, TestApp, eventually, spawn_app};
use crate::on_both_backends;

on_both_backends!(offers_and_escalations_are_sent_as_wecom_messages);

async fn staff(app: &TestApp, admin: &str, email: &str, roles: &[&str], wecom: &str) -> String {
    let (status, created) = app
        .post(
            admin,
            "/v1/staff",
            &json!({"name": email, "email": email, "roles": roles, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            admin,
            &format!("/v1/staff/{id}"),
            &json!({"wecom_userid": wecom}),
        )
        .await;
    assert_eq!(status, 200);
    id
}

/// The bodies of the `message/send` calls the fake WeCom received.
async fn sent(wecom: &MockServer) -> Vec<Value> {
    wecom
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/cgi-bin/message/send")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn offers_and_escalations_are_sent_as_wecom_messages(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let wecom = crate::helpers::fake_wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/message/send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "errmsg": "ok"})))
        .mount(&wecom)
        .await;
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            &admin,
            "/v1/integrations/wecom",
            &json!({"corp_id": "ww-corp", "secret": "s3cret", "agent_id": "1000002", "callback_token": "QDG6eK",
                    "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "api_base": wecom.uri()}),
        )
        .await;
    assert_eq!(status, 200);

    let rep = staff(&app, &admin, "rep@demo.local", &["sdr"], "rep.wang").await;
    let boss = staff(&app, &admin, "boss@demo.local", &["manager"], "boss.li").await;
    let (status, team) = app
        .post(
            &admin,
            "/v1/teams",
            &json!({"name": "Squad", "manager_id": boss, "members": [rep]}),
        )
        .await;
    assert_eq!(status, 201, "{team}");
    let squad = team["id"].as_str().unwrap();
    for (path, body) in [
        (
            "/v1/routing/rules",
            json!({"rules": [{"name": "all", "target": {"team_id": squad}}]}),
        ),
        (
            "/v1/sla/policies",
            json!({"default": {"accept_within_seconds": 1}, "max_hops": 0}),
        ),
    ] {
        let (status, answer) = app.send(reqwest::Method::PUT, &admin, path, &body).await;
        assert_eq!(status, 200, "{answer}");
    }

    app.post_lead(
        &admin,
        json!({"name": "钱多多", "company": "Acme", "phone": "13200132009", "channel": "website"}),
    )
    .await;
    // Offered to the SDR: they are told; not accepted in a second: the manager is.
    let messages = eventually(Duration::from_secs(20), "both messages", || async {
        let m = sent(&wecom).await;
        (m.len() >= 2).then_some(m)
    })
    .await;
    let to_rep = messages
        .iter()
        .find(|m| m["touser"] == "rep.wang")
        .expect("a message to the SDR");
    assert_eq!(to_rep["agentid"], 1_000_002);
    assert_eq!(to_rep["msgtype"], "text");
    let text = to_rep["text"]["content"].as_str().unwrap();
    assert!(text.contains("钱多多") && text.contains("Acme"), "{text}");
    let to_boss = messages
        .iter()
        .find(|m| m["touser"] == "boss.li")
        .expect("a message to the manager");
    assert!(
        to_boss["text"]["content"].as_str().unwrap().starts_with("升级提醒"),
        "{to_boss}"
    );
    // Each offer is told once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent(&wecom).await.len(), 2);
}
