//! WeCom's callback: the SDK's reference vector, forged calls refused, and a customer
//! added through a live code's "contact me" QR becoming a lead routed to that member.

use std::time::Duration;

use huoke_shared::wecom_crypto;
use serde_json::{Value, json};

use crate::codes::create_code;
use crate::helpers::{Backend, TestApp, eventually, no_redirects, spawn_app};
use crate::on_both_backends;

on_both_backends!(wecom_callbacks_verify_decrypt_and_attribute);

fn vector() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/shared/testdata/wecom-callback.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn post_event(app: &TestApp, url: &str, token: &str, aes: &str, corp: &str, event: &str) -> (u16, String) {
    let key = wecom_crypto::aes_key(aes).unwrap();
    let encrypted = wecom_crypto::encrypt(&key, event, corp, [9; 16]);
    let (timestamp, nonce) = ("1733040000", "4242");
    let signature = wecom_crypto::signature(token, timestamp, nonce, &encrypted);
    let body =
        format!("<xml><ToUserName><![CDATA[{corp}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>");
    let resp = app
        .client
        .post(app.url(&format!(
            "{url}?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
        )))
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// WeCom's URL check with the vector's values and `signature`.
async fn url_check(app: &TestApp, url: &str, check: &Value, signature: &str) -> reqwest::Response {
    let field = |name: &str| check[name].as_str().unwrap().to_string();
    app.client
        .get(app.url(url))
        .query(&[
            ("msg_signature", signature.to_string()),
            ("timestamp", field("timestamp")),
            ("nonce", field("nonce")),
            ("echostr", field("echostr")),
        ])
        .send()
        .await
        .unwrap()
}

async fn wecom_callbacks_verify_decrypt_and_attribute(backend: Backend) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let v = vector();
    let (token, aes, corp) = (
        v["token"].as_str().unwrap(),
        v["encoding_aes_key"].as_str().unwrap(),
        v["receive_id"].as_str().unwrap(),
    );
    let wecom = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/gettoken"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 0, "access_token": "T", "expires_in": 7200})),
        )
        .mount(&wecom)
        .await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/externalcontact/add_contact_way"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"errcode": 0, "config_id": "cfg-9", "qr_code": "https://wework.qpic.cn/wwpic/contact-me-9"}),
        ))
        .mount(&wecom)
        .await;

    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let (_, me) = app.get(&admin, "/v1/me").await;
    let url = format!("/hooks/wecom/{}", me["tenant"]["id"].as_str().unwrap());
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            &admin,
            "/v1/integrations/wecom",
            &json!({"corp_id": corp, "secret": "s", "callback_token": token, "encoding_aes_key": aes, "api_base": wecom.uri()}),
        )
        .await;
    assert_eq!(status, 200);

    // The SDK's URL check and message, verbatim.
    let check = &v["verify_url"];
    let resp = url_check(&app, &url, check, check["msg_signature"].as_str().unwrap()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), check["plaintext"].as_str().unwrap());
    let msg = &v["decrypt_message"];
    let resp = app
        .client
        .post(app.url(&format!(
            "{url}?msg_signature={}&timestamp={}&nonce={}",
            msg["msg_signature"].as_str().unwrap(),
            msg["timestamp"].as_str().unwrap(),
            msg["nonce"].as_str().unwrap()
        )))
        .body(format!(
            "<xml><Encrypt><![CDATA[{}]]></Encrypt></xml>",
            msg["encrypt"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "an ordinary message is acknowledged");
    assert_eq!(resp.text().await.unwrap(), "success");

    // Forged: a signature that does not match, or another tenant's URL.
    let resp = url_check(&app, &url, check, "0000000000000000000000000000000000000000").await;
    assert_eq!(resp.status(), 401);
    let (status, _) = post_event(&app, "/hooks/wecom/no-such-tenant", token, aes, corp, "<xml/>").await;
    assert_eq!(status, 404);
    let (status, _) = post_event(&app, &url, "another-token", aes, corp, "<xml/>").await;
    assert_eq!(status, 401);
    let (status, _) = post_event(&app, &url, token, aes, "another-corp", "<xml/>").await;
    assert_eq!(status, 400, "a message for another corp is refused");

    // A prospect scans a live code in WeChat, gets sdr2's "contact me" QR and adds them.
    let ids = app.staff_ids(&admin).await;
    let sdr2 = ids["sdr2@demo.local"].clone();
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/staff/{sdr2}"),
            &json!({"wecom_userid": "lisi"}),
        )
        .await;
    assert_eq!(status, 200);
    let code = create_code(&app, &admin, json!({"name": "expo", "members": [{"staff_id": sdr2}]})).await;
    let public = code["code"].as_str().unwrap().to_string();
    let resp = no_redirects()
        .get(app.url(&format!("/s/{public}")))
        .header("user-agent", "Mozilla/5.0 (iPhone) MicroMessenger/8.0.47")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let requests = wecom.received_requests().await.unwrap();
    let way: Value = requests
        .iter()
        .filter(|r| r.url.path().ends_with("add_contact_way"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .next_back()
        .unwrap();
    let state = way["state"].as_str().unwrap();
    let event = format!(
        "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>1733040000</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType>\
         <UserID><![CDATA[lisi]]></UserID><ExternalUserID><![CDATA[wmEXTERNAL0001]]></ExternalUserID>\
         <State><![CDATA[{state}]]></State><WelcomeCode><![CDATA[WELCOME]]></WelcomeCode></xml>"
    );
    for _ in 0..2 {
        // WeCom retries a delivery it thinks failed: the second is the same capture.
        let (status, answer) = post_event(&app, &url, token, aes, corp, &event).await;
        assert_eq!((status, answer.as_str()), (200, "success"));
    }
    let lead = eventually(Duration::from_secs(10), "the WeCom lead", || async {
        let (_, stats) = app
            .get(
                &admin,
                &format!("/v1/live-codes/{}/stats", code["id"].as_str().unwrap()),
            )
            .await;
        (stats["captures"].as_i64() == Some(1)).then_some(stats)
    })
    .await;
    assert_eq!(lead["captures"], 1, "one capture for two deliveries: {lead}");
    let sdr = app.login("demo", "sdr2@demo.local", crate::helpers::PASSWORD).await;
    let item = eventually(Duration::from_secs(10), "the lead in sdr2's inbox", || async {
        let (_, inbox) = app.get(&sdr, "/v1/inbox").await;
        inbox["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["channel"] == "wecom").cloned())
    })
    .await;
    let (_, routed) = app
        .get(&admin, &format!("/v1/leads/{}", item["lead_id"].as_str().unwrap()))
        .await;
    assert_eq!(routed["owner_id"], sdr2.as_str());
    assert_eq!(routed["assignment"]["reason"], "owner_hint");
    app.stop().await;
}
