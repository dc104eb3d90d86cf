//! Hosted forms: configured by a marketer, filled in on our page or posted as JSON
//! from an allowed site, escaped, guarded by a honeypot and limits, and routed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cards::form_body;
use crate::helpers::{Backend, eventually, spawn_app, start_early_in_a_minute};
use crate::on_both_backends;

on_both_backends!(hosted_forms_capture_leads_safely);

const HOSTILE: &str = "<script>alert(1)</script>\"'&";

async fn hosted_forms_capture_leads_safely(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let (status, problem) = app
        .post(&admin, "/v1/forms", &json!({"name": "x", "fields": ["name"]}))
        .await;
    assert_eq!(status, 422, "a form must ask for a phone or an e-mail: {problem}");
    let (status, form) = app
        .post(
            &admin,
            "/v1/forms",
            &json!({"name": HOSTILE, "fields": ["name", "phone", "message"], "required": ["phone"],
                    "consent_text": HOSTILE, "thank_you": "谢谢 <b>", "allowed_origins": ["https://www.example.com"]}),
        )
        .await;
    assert_eq!(status, 201, "{form}");
    let id = form["id"].as_str().unwrap().to_string();

    // The page escapes everything it shows.
    let page = app.client.get(app.url(&format!("/f/{id}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("name=\"website\""), "the honeypot is on the page");

    start_early_in_a_minute(Duration::from_secs(20)).await;
    // A person fills it in.
    let resp = app
        .client
        .post(app.url(&format!("/f/{id}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("name", "韩梅梅"),
            ("phone", "13600136066"),
            ("message", HOSTILE),
            ("consent", "yes"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("谢谢 &lt;b&gt;"));
    // Missing consent and phone: the page again, with the errors, values kept and escaped.
    let resp = app
        .client
        .post(app.url(&format!("/f/{id}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("name", HOSTILE)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let html = resp.text().await.unwrap();
    assert!(html.contains("consent") && !html.contains("<script>"), "{html}");
    // A bot fills the honeypot: thanked, nothing stored.
    let resp = app
        .client
        .post(app.url(&format!("/f/{id}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("phone", "13600136067"),
            ("consent", "yes"),
            ("website", "http://spam.example"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A company site posts JSON: allowed origins get CORS, others are refused.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url(&format!("/f/{id}/submit")))
        .header("origin", "https://www.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://www.example.com"
    );
    let resp = app
        .client
        .post(app.url(&format!("/f/{id}/submit")))
        .header("origin", "https://evil.example")
        .json(&json!({"phone": "13600136068", "consent": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A problem from an allowed site carries the CORS headers, so the page can show it.
    let resp = app
        .client
        .post(app.url(&format!("/f/{id}/submit")))
        .header("origin", "https://www.example.com")
        .json(&json!({"name": "no phone", "consent": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://www.example.com");
    let resp = app
        .client
        .post(app.url(&format!("/f/{id}/submit")))
        .header("origin", "https://www.example.com")
        .json(&json!({"name": "李雷", "phone": "13600136069", "consent": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://www.example.com");
    let answer: Value = resp.json().await.unwrap();
    let capture = answer["capture_id"].as_str().unwrap();
    let lead = app
        .wait_for_assigned_lead(&admin, capture, Duration::from_secs(10))
        .await;
    assert_eq!(lead["channel"], "web_form");
    assert!(lead["owner_id"].is_string(), "routed to an inbox");

    // Per address: ten posts a minute, then 429.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let resp = app
            .client
            .post(app.url(&format!("/f/{id}/submit")))
            .json(&json!({"phone": format!("1360013{i:04}"), "consent": true}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");

    // Switched off: gone from the public.
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/forms/{id}"),
            &json!({"active": false}),
        )
        .await;
    assert_eq!(status, 200);
    let gone = app.client.get(app.url(&format!("/f/{id}"))).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    let others = eventually(Duration::from_secs(1), "the form list", || async {
        let (status, list) = app.get(&admin, "/v1/forms").await;
        (status == 200).then_some(list)
    })
    .await;
    assert_eq!(others["items"][0]["active"], false);
    app.stop().await;
}
