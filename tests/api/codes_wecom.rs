//! The WeCom landing of the scan path, against a fake WeCom server.

use serde_json::{Value, json};

use crate::codes::{create_code, landing};
use crate::helpers::{Backend, no_redirects, spawn_app};
use crate::on_both_backends;

on_both_backends!(wecom_landing_uses_a_contact_way_from_wecom);

async fn wecom_landing_uses_a_contact_way_from_wecom(backend: Backend) {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let wecom = MockServer::start().await;
    // The first token is already stale by the time it is used; the second works.
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .and(query_param("corpid", "ww-corp"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"errcode": 0, "access_token": "STALE", "expires_in": 7200})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&wecom)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"errcode": 0, "access_token": "FRESH", "expires_in": 7200})),
        )
        .expect(1)
        .mount(&wecom)
        .await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/externalcontact/add_contact_way"))
        .and(query_param("access_token", "STALE"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 42001, "errmsg": "access_token expired"})),
        )
        .expect(1)
        .mount(&wecom)
        .await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/externalcontact/add_contact_way"))
        .and(query_param("access_token", "FRESH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"errcode": 0, "config_id": "cfg-1", "qr_code": "https://wework.qpic.cn/wwpic/contact-me-1"}),
        ))
        .expect(1)
        .mount(&wecom)
        .await;

    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr1 = &ids["sdr1@demo.local"];
    let resp = app
        .client
        .put(app.url("/v1/integrations/wecom"))
        .bearer_auth(&admin)
        .json(&json!({
            "corp_id": "ww-corp", "secret": "s3cret", "callback_token": "QDG6eK",
            "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "api_base": wecom.uri(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let shown: Value = resp.json().await.unwrap();
    assert_eq!(shown["secret_set"], true);
    assert!(!shown.to_string().contains("s3cret"), "secrets are write-only");
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/staff/{sdr1}"),
            &json!({"wecom_userid": "zhangsan"}),
        )
        .await;
    assert_eq!(status, 200);
    let code = create_code(
        &app,
        &admin,
        json!({"name": "wecom", "members": [{"staff_id": sdr1}], "welcome_text": "欢迎 <b>来访</b>"}),
    )
    .await;
    let url = app.url(&format!("/s/{}", code["code"].as_str().unwrap()));

    let wechat = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 MicroMessenger/8.0.47";
    for _ in 0..3 {
        let resp = no_redirects()
            .get(&url)
            .header("user-agent", wechat)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("src=\"https://wework.qpic.cn/wwpic/contact-me-1\""),
            "{html}"
        );
        assert!(html.contains("欢迎 &lt;b&gt;来访&lt;/b&gt;"));
    }
    // Outside WeChat the visitor is not shown the WeCom page.
    let (status, name) = landing(&no_redirects(), &url, "Mozilla/5.0 (X11; Linux)").await;
    assert_eq!((status, name.as_str()), (200, "SDR 1"));

    let requests = wecom.received_requests().await.unwrap();
    let created: Vec<Value> = requests
        .iter()
        .filter(|r| r.url.path().ends_with("add_contact_way"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let last = created.last().unwrap();
    assert_eq!(last["user"], json!(["zhangsan"]));
    let state = last["state"].as_str().unwrap();
    assert!(
        state.starts_with(code["code"].as_str().unwrap()) && state.len() <= 30,
        "{state}"
    );
    app.stop().await;
    // The mock checks its `expect` counts when dropped: one contact way for three scans.
    drop(wecom);
}
