//! WeCom's callback: the SDK's reference vector, forged calls refused, a customer
//! added through a live code's "contact me" QR becoming a lead routed to that member
//! with the details `externalcontact/get` gives, and a WeCom that refuses or cannot
//! be reached not holding the lead up.

use std::time::Duration;

use huoke_shared::wecom_crypto;
use serde_json::{Value, json};

use crate::codes::create_code;
use huoke::all_services;

use crate::helpers::{Backend, Environment, TestApp, eventually, no_redirects, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    wecom_callbacks_verify_decrypt_and_attribute,
    a_wecom_without_details_does_not_hold_the_lead_up
);

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
    use wiremock::{Mock, ResponseTemplate};

    let v = vector();
    let (token, aes, corp) = (
        v["token"].as_str().unwrap(),
        v["encoding_aes_key"].as_str().unwrap(),
        v["receive_id"].as_str().unwrap(),
    );
    let wecom = crate::helpers::fake_wecom().await;
    Mock::given(method("POST"))
        .and(path("/cgi-bin/externalcontact/add_contact_way"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"errcode": 0, "config_id": "cfg-9", "qr_code": "https://wework.qpic.cn/wwpic/contact-me-9"}),
        ))
        .mount(&wecom)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/externalcontact/get"))
        .and(wiremock::matchers::query_param("external_userid", "wmEXTERNAL0001"))
        .and(wiremock::matchers::query_param("access_token", "T"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "errcode": 0, "errmsg": "ok",
            "external_contact": {"external_userid": "wmEXTERNAL0001", "name": "王五", "position": "采购经理",
                "corp_name": "星河", "corp_full_name": "星河科技有限公司", "type": 2, "gender": 1, "unionid": "o-union-wangwu"},
            "follow_user": [{"userid": "lisi", "remark": "王总", "description": "展会认识", "createtime": 1733040000,
                "remark_mobiles": ["13800138000"], "tags": [{"group_name": "客户", "tag_name": "重点"}], "state": "x"}]
        })))
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
    // What WeCom knows of the customer, and what lisi noted.
    assert_eq!(routed["name"], "王五", "{routed}");
    assert_eq!(routed["company"], "星河科技有限公司");
    assert_eq!(routed["title"], "采购经理");
    assert_eq!(routed["phone"], "+8613800138000");
    let noted = &routed["attributes"];
    assert_eq!(noted["wecom_remark"], "王总", "{routed}");
    assert_eq!(noted["wecom_tags"], json!(["重点"]));
    // The unionid is an identity: the same person through a mini program is this lead.
    let (status, _) = app
        .post(
            &admin,
            "/v1/leads",
            &json!({"channel": "mini_program", "wechat": {"unionid": "o-union-wangwu", "openid": "o-1", "appid": "wx-app"}}),
        )
        .await;
    assert_eq!(status, 202);
    let lead_id = routed["id"].as_str().unwrap().to_string();
    eventually(
        Duration::from_secs(10),
        "the mini-program touch on the WeCom lead",
        || async {
            let (_, lead) = app.get(&admin, &format!("/v1/leads/{lead_id}")).await;
            (lead["attribution"]["last_touch"]["channel"] == "mini_program").then_some(())
        },
    )
    .await;
    app.stop().await;
}

/// Sets up the tenant's WeCom integration against `api_base` and a member `lisi`
/// (sdr1); returns the callback URL and the admin token.
async fn integrated(app: &TestApp, api_base: &str) -> (String, String) {
    let v = vector();
    let admin = app.admin().await;
    let (_, me) = app.get(&admin, "/v1/me").await;
    let body = json!({"corp_id": v["receive_id"], "secret": "s", "callback_token": v["token"],
        "encoding_aes_key": v["encoding_aes_key"], "api_base": api_base});
    let (status, _) = app
        .send(reqwest::Method::PUT, &admin, "/v1/integrations/wecom", &body)
        .await;
    assert_eq!(status, 200);
    let sdr1 = app.staff_ids(&admin).await["sdr1@demo.local"].clone();
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            &format!("/v1/staff/{sdr1}"),
            &json!({"wecom_userid": "lisi"}),
        )
        .await;
    assert_eq!(status, 200);
    (format!("/hooks/wecom/{}", me["tenant"]["id"].as_str().unwrap()), admin)
}

fn added(corp: &str, external_userid: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{corp}]]></ToUserName><CreateTime>1733040001</CreateTime>\
         <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>\
         <ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[lisi]]></UserID>\
         <ExternalUserID><![CDATA[{external_userid}]]></ExternalUserID></xml>"
    )
}

/// The lead WeCom's `external_userid` became, once it is in the member's (sdr1's) inbox.
async fn lead_of_external(app: &TestApp, admin: &str, external_userid: &str, within: Duration) -> Value {
    let sdr = app.login("demo", "sdr1@demo.local", crate::helpers::PASSWORD).await;
    eventually(within, external_userid, || async {
        let (_, inbox) = app.get(&sdr, "/v1/inbox").await;
        for item in inbox["items"].as_array()?.iter().filter(|i| i["channel"] == "wecom") {
            let (_, lead) = app
                .get(admin, &format!("/v1/leads/{}", item["lead_id"].as_str()?))
                .await;
            let theirs = lead["identities"].as_array()?.iter().any(|i| {
                i["kind"] == "external_userid" && i["value"].as_str().is_some_and(|v| v.ends_with(external_userid))
            });
            if theirs {
                return Some(lead);
            }
        }
        None
    })
    .await
}

async fn a_wecom_without_details_does_not_hold_the_lead_up(backend: Backend) {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, ResponseTemplate};

    let wecom = crate::helpers::fake_wecom().await;
    // One customer WeCom will not describe (not the member's contact), one it is down for.
    Mock::given(method("GET"))
        .and(path("/cgi-bin/externalcontact/get"))
        .and(query_param("external_userid", "wm-refused"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode": 84061, "errmsg": "not external contact"})),
        )
        .mount(&wecom)
        .await;
    Mock::given(method("GET"))
        .and(path("/cgi-bin/externalcontact/get"))
        .and(query_param("external_userid", "wm-unreachable"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&wecom)
        .await;
    let mut env = Environment::new(backend).await;
    env.vars.insert("HUOKE_WECOM_DETAILS_WAIT_SECS".into(), "3".into());
    env.vars.insert("HUOKE_BUS_RETRY_BASE_MS".into(), "200".into());
    let app = TestApp::start(&env, all_services()).await;
    let (url, admin) = integrated(&app, &wecom.uri()).await;
    let v = vector();
    let (token, aes, corp) = (
        v["token"].as_str().unwrap(),
        v["encoding_aes_key"].as_str().unwrap(),
        v["receive_id"].as_str().unwrap(),
    );
    for external in ["wm-refused", "wm-unreachable"] {
        let (status, answer) = post_event(&app, &url, token, aes, corp, &added(corp, external)).await;
        assert_eq!((status, answer.as_str()), (200, "success"));
    }
    let refused = lead_of_external(&app, &admin, "wm-refused", Duration::from_secs(10)).await;
    assert!(refused["name"].is_null(), "{refused}");
    let unreachable = lead_of_external(&app, &admin, "wm-unreachable", Duration::from_secs(20)).await;
    assert!(unreachable["name"].is_null(), "{unreachable}");
    let asked = wecom
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.query().is_some_and(|q| q.contains("wm-unreachable")))
        .count();
    assert!(asked >= 2, "WeCom was asked again while it was down: {asked}");
    app.stop().await;
}
