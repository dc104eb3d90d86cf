//! The web console over plain HTTP: signing in sets guarded cookies, pages carry a
//! strict CSP and escape what people typed, a form post without the CSRF value is
//! refused, the session cookie reads the API but never changes anything, and the
//! sign-in never redirects off the site.

use std::time::Duration;

use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, eventually, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    the_console_guards_its_sessions_and_escapes_everything,
    each_role_works_its_pages
);

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A form body, as a browser sends one.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

trait Form {
    fn form_of(self, pairs: &[(&str, &str)]) -> Self;
}

impl Form for reqwest::RequestBuilder {
    fn form_of(self, pairs: &[(&str, &str)]) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
    }
}

async fn page_text(client: &reqwest::Client, app: &TestApp, path: &str) -> String {
    client.get(app.url(path)).send().await.unwrap().text().await.unwrap()
}

async fn post_form(client: &reqwest::Client, app: &TestApp, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    client.post(app.url(path)).form_of(pairs).send().await.unwrap()
}

/// The CSRF value a page's forms carry.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string()
}

async fn sign_in(app: &TestApp, client: &reqwest::Client, email: &str, next: &str) -> reqwest::Response {
    let page = page_text(client, app, "/app/login").await;
    let form = [
        ("tenant", "demo"),
        ("email", email),
        ("password", PASSWORD),
        ("csrf", &csrf_of(&page)),
        ("next", next),
    ];
    post_form(client, app, "/app/login", &form).await
}

async fn the_console_guards_its_sessions_and_escapes_everything(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let hostile = "<script>alert(1)</script>";
    let (status, capture) = app
        .post(
            &admin,
            "/v1/leads",
            &json!({"channel": "website", "phone": "13700137000", "name": hostile}),
        )
        .await;
    assert_eq!(status, 202);
    // Whoever the router offered it to signs in.
    let owner = eventually(Duration::from_secs(15), "the lead's offer", || async {
        let lead = crate::identity::lead_of(&app, &admin, capture["capture_id"].as_str().unwrap()).await;
        lead["owner_id"].as_str().map(str::to_string)
    })
    .await;
    let ids = app.staff_ids(&admin).await;
    let sdr_email = ids
        .iter()
        .find(|(_, id)| **id == owner)
        .map(|(email, _)| email.clone())
        .unwrap();

    // Not signed in: to the sign-in page, coming back afterwards.
    let client = browser();
    let resp = client.get(app.url("/app/inbox")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[LOCATION], "/app/login?next=%2Fapp%2Finbox");

    // A wrong password is refused on the page; a right one sets guarded cookies and
    // never sends the person off the site.
    let page = page_text(&client, &app, "/app/login").await;
    let resp = post_form(
        &client,
        &app,
        "/app/login",
        &[
            ("tenant", "demo"),
            ("email", sdr_email.as_str()),
            ("password", "wrong"),
            ("csrf", &csrf_of(&page)),
        ],
    )
    .await;
    assert_eq!(resp.status(), 401);
    let resp = sign_in(&app, &client, &sdr_email, "https://evil.example/").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()[LOCATION], "/app");
    let cookies: Vec<String> = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().to_string())
        .collect();
    for name in ["huoke_session=", "huoke_refresh="] {
        let cookie = cookies.iter().find(|c| c.starts_with(name)).unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite"), "{cookie}");
    }

    // The inbox escapes the hostile name and carries the CSP.
    let html = eventually(Duration::from_secs(15), "the lead in the SDR's inbox page", || async {
        let resp = client.get(app.url("/app/inbox")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let csp = resp.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        let html = resp.text().await.unwrap();
        // Escaped, in whichever spelling (`&lt;` or `&#60;`).
        let escaped = html.contains("script&gt;alert(1)") || html.contains("script&#62;alert(1)");
        escaped.then_some(html)
    })
    .await;
    assert!(!html.contains(hostile), "unescaped: {html}");

    // A form post without the CSRF value, or with another, is refused.
    let assignment = html
        .split("/app/assignments/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    for csrf in ["", "0123456789abcdef0123456789abcdef"] {
        let resp = post_form(
            &client,
            &app,
            &format!("/app/assignments/{assignment}/accept"),
            &[("csrf", csrf)],
        )
        .await;
        assert_eq!(resp.status(), 403, "csrf {csrf:?}");
    }
    // Another site's form is refused even with the right value.
    let resp = client
        .post(app.url(&format!("/app/assignments/{assignment}/accept")))
        .header("Origin", "https://evil.example")
        .form_of(&[("csrf", csrf_of(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // The session cookie reads what the pages load (the inbox stream, QR images) and
    // nothing else, and changes nothing.
    let resp = client.get(app.url("/v1/inbox/stream")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    let resp = client.get(app.url("/v1/inbox")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "the cookie reads only what the pages load");
    let resp = client
        .post(app.url(&format!("/v1/assignments/{assignment}/accept")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a cookie never authorises a change through the API");
    // An id that would steer the console's API call elsewhere is refused.
    let resp = post_form(
        &client,
        &app,
        "/app/assignments/..%2F..%2Fstaff%2Fx%23/accept",
        &[("csrf", csrf_of(&html).as_str())],
    )
    .await;
    assert_eq!(resp.status(), 404);

    // The console's own form, with the value, does.
    let resp = post_form(
        &client,
        &app,
        &format!("/app/assignments/{assignment}/accept"),
        &[("csrf", csrf_of(&html).as_str())],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let (_, inbox) = app
        .get(&app.login("demo", &sdr_email, PASSWORD).await, "/v1/inbox")
        .await;
    assert!(
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["state"] == "accepted"),
        "{inbox}"
    );
    // The owner gives the lead back to the pool from its page.
    let lead_id = crate::identity::lead_of(&app, &admin, capture["capture_id"].as_str().unwrap()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lead_page = page_text(&client, &app, &format!("/app/leads/{lead_id}")).await;
    assert!(
        lead_page.contains(&format!("/app/leads/{lead_id}/release")),
        "{lead_page}"
    );
    let resp = post_form(
        &client,
        &app,
        &format!("/app/leads/{lead_id}/release"),
        &[("csrf", csrf_of(&lead_page).as_str()), ("reason", "不在服务区域")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let (_, lead) = app.get(&admin, &format!("/v1/leads/{lead_id}")).await;
    assert_eq!(lead["status"], "pool", "{lead}");

    // Roles: an SDR does not see the admin's pages.
    let resp = client.get(app.url("/app/staff")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // Signing out clears the session.
    let page = page_text(&client, &app, "/app/inbox").await;
    let resp = post_form(&client, &app, "/app/logout", &[("csrf", csrf_of(&page).as_str())]).await;
    assert_eq!(resp.status(), 303);
    let resp = client.get(app.url("/app/inbox")).send().await.unwrap();
    assert_eq!(resp.status(), 303, "signed out");
    app.stop().await;
}

/// The text of the page's first textarea named `name`, unescaped.
fn textarea(html: &str, name: &str) -> String {
    let start = html.find(&format!("<textarea name=\"{name}\"")).unwrap();
    let body = &html[start..];
    let body = &body[body.find('>').unwrap() + 1..];
    let raw = &body[..body.find("</textarea>").unwrap()];
    [
        ("&quot;", "\""),
        ("&#34;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&lt;", "<"),
        ("&#60;", "<"),
        ("&gt;", ">"),
        ("&#62;", ">"),
        ("&amp;", "&"),
        ("&#38;", "&"),
    ]
    .iter()
    .fold(raw.to_string(), |text, (entity, plain)| text.replace(entity, plain))
}

async fn each_role_works_its_pages(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let (status, person) = app
        .post(
            &admin,
            "/v1/staff",
            &json!({"name": "Mia", "email": "mia@demo.local", "roles": ["marketer"], "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{person}");

    // A marketer makes live codes from the people of the tenant.
    let marketer = browser();
    assert_eq!(
        sign_in(&app, &marketer, "mia@demo.local", "/app/codes").await.status(),
        303
    );
    let resp = marketer.get(app.url("/app/codes")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("sdr1@demo.local"), "members to choose from");
    let resp = marketer.get(app.url("/app/staff")).send().await.unwrap();
    assert_eq!(resp.status(), 403, "not a marketer's page");

    // A manager's configuration round-trips: what the page shows saves unchanged.
    let manager = browser();
    assert_eq!(sign_in(&app, &manager, "admin@demo.local", "/app").await.status(), 303);
    for path in ["/app/routing", "/app/sla"] {
        let html = page_text(&manager, &app, path).await;
        let document = textarea(&html, "document");
        let resp = post_form(
            &manager,
            &app,
            &format!("{path}/document"),
            &[("csrf", &csrf_of(&html)), ("document", &document)],
        )
        .await;
        assert_eq!(resp.status(), 303, "{path} saves what it shows: {document}");
        assert_eq!(resp.headers()[LOCATION], path);
        let after = page_text(&manager, &app, path).await;
        assert!(
            after.contains("class=\"notice\""),
            "{path}: the save is confirmed after the redirect"
        );
        // Broken JSON is refused on the page, with what was typed kept.
        let resp = post_form(
            &manager,
            &app,
            &format!("{path}/document"),
            &[("csrf", &csrf_of(&html)), ("document", "{not json")],
        )
        .await;
        assert_eq!(resp.status(), 422);
        assert!(resp.text().await.unwrap().contains("{not json"));
    }
    // The simulator answers a trial lead.
    let html = page_text(&manager, &app, "/app/routing").await;
    let resp = post_form(
        &manager,
        &app,
        "/app/routing/document",
        &[
            ("csrf", &csrf_of(&html)),
            ("document", "{}"),
            ("simulate", "1"),
            ("trial", r#"{"lead": {"grade": "A", "channel": "website"}}"#),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("id=\"outcome\""));

    // An admin's create is not repeated by a reload: it redirects, and says so once.
    let html = page_text(&manager, &app, "/app/campaigns").await;
    let resp = post_form(
        &manager,
        &app,
        "/app/campaigns/create/0",
        &[("csrf", &csrf_of(&html)), ("name", "双十一")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let page = page_text(&manager, &app, "/app/campaigns").await;
    assert!(page.contains("双十一") && page.contains("class=\"notice\""), "{page}");
    let again = page_text(&manager, &app, "/app/campaigns").await;
    assert!(!again.contains("class=\"notice\""), "the notice is said once");
    // Long lists page: the staff list (50 a page) links to the rest.
    for i in 0..50 {
        let body = json!({"name": format!("Temp {i:02}"), "email": format!("temp{i:02}@demo.local"), "roles": ["sdr"]});
        assert_eq!(app.post(&admin, "/v1/staff", &body).await.0, 201);
    }
    let first = page_text(&manager, &app, "/app/staff").await;
    let more = first
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .map(|href| href.replace("&amp;", "&").replace("&#38;", "&"))
        .find(|href| href.starts_with("/app/staff?list=0&cursor="))
        .expect("a next-page link");
    let second = page_text(&manager, &app, &more).await;
    assert!(
        second.contains("temp49@demo.local") && !first.contains("temp49@demo.local"),
        "{second}"
    );
    // The funnel over a chosen period.
    let resp = manager
        .get(app.url("/app/reports/funnel?by=campaign&from=2026-11-01&to=2026-11-30"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let funnel = resp.text().await.unwrap();
    assert!(
        funnel.contains("value=\"2026-11-01\"") && funnel.contains("<svg"),
        "{funnel}"
    );
    // An admin links a person to WeCom from the staff list (a row action with a field).
    let sdr1 = app.staff_ids(&admin).await["sdr1@demo.local"].clone();
    let staff_page = page_text(&manager, &app, "/app/staff").await;
    let resp = post_form(
        &manager,
        &app,
        &format!("/app/staff/rows/0/1/{sdr1}"),
        &[("csrf", &csrf_of(&staff_page)), ("wecom_userid", "lisi")],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let (_, person) = app.get(&admin, &format!("/v1/staff/{sdr1}")).await;
    assert_eq!(person["wecom_userid"], "lisi");
    // An API key's secret is shown on the answer to its creation.
    let resp = post_form(
        &manager,
        &app,
        "/app/api-keys/create/0",
        &[("csrf", &csrf_of(&html)), ("name", "crm"), ("scopes", "leads:write")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("key: hk_"));
    app.stop().await;
}
