//! Smart cards: editing and access, the public page (escaping, Open Graph, masked
//! phones), the vCard, the lead form routed to the card's owner, the honeypot and
//! the rate limit, share trees and the card's numbers.

use std::collections::HashMap;
use std::time::Duration;

use huoke_shared::repo::tenants::create_tenant;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    cards_are_created_updated_and_guarded,
    the_page_escapes_hostile_input_and_shows_open_graph,
    the_vcard_round_trips,
    the_card_form_routes_to_the_card_owner,
    honeypot_creates_nothing_and_the_form_is_rate_limited,
    shares_build_a_tree_and_stats_count_them,
    card_visits_after_the_form_count_as_the_leads_engagement
);

const HOSTILE: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
const HOSTILE_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;";

// ---- helpers -------------------------------------------------------------------

async fn put_card(app: &TestApp, token: &str, staff_id: &str, body: &Value) -> (u16, Value) {
    app.send(reqwest::Method::PUT, token, &format!("/v1/cards/{staff_id}"), body)
        .await
}

/// Creates (or replaces) a card and returns its slug.
pub(crate) async fn card_for(app: &TestApp, token: &str, staff_id: &str, body: Value) -> String {
    let (status, answer) = put_card(app, token, staff_id, &body).await;
    assert!(status == 201 || status == 200, "{status}: {answer}");
    answer["slug"].as_str().unwrap().to_string()
}

pub(crate) struct Page {
    pub status: u16,
    content_type: String,
    /// The visitor cookie (`hk_v=…`) the server set, if any.
    cookie: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

/// A public GET as a browser without cookie support would make it.
async fn visit(app: &TestApp, path: &str, cookie: Option<&str>) -> Page {
    let mut request = app.client.get(app.url(path));
    if let Some(c) = cookie {
        request = request.header(COOKIE, c);
    }
    read_page(request.send().await.unwrap()).await
}

async fn read_page(resp: reqwest::Response) -> Page {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let cookie = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hk_v="))
        .map(|v| v.split(';').next().unwrap().to_string());
    let body = resp.text().await.unwrap();
    Page {
        status,
        content_type,
        cookie,
        headers,
        body,
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Posts the card form from client address `ip` (the test server trusts
/// `X-Forwarded-For` from loopback, so each scenario has its own rate-limit bucket).
pub(crate) async fn post_form(
    app: &TestApp,
    slug: &str,
    ip: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> Page {
    let mut request = app
        .client
        .post(app.url(&format!("/c/{slug}/leads")))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("X-Forwarded-For", ip)
        .body(form_body(fields));
    if let Some(c) = cookie {
        request = request.header(COOKIE, c);
    }
    read_page(request.send().await.unwrap()).await
}

/// The capture id the thank-you page carries on its body element.
fn capture_id_of(html: &str) -> String {
    let start = html.find("data-capture-id=\"").expect("a data-capture-id attribute") + "data-capture-id=\"".len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_string()
}

async fn stats(app: &TestApp, token: &str, staff_id: &str) -> Value {
    let (status, stats) = app.get(token, &format!("/v1/cards/{staff_id}/stats")).await;
    assert_eq!(status, 200, "{stats}");
    stats
}

async fn tenant_id(app: &TestApp, token: &str) -> String {
    let (_, me) = app.get(token, "/v1/me").await;
    me["tenant"]["id"].as_str().unwrap().to_string()
}

/// A live code row as the codes service stores it; returns its id.
async fn insert_live_code(app: &TestApp, tenant_id: &str, code: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    sqlx::query(
        "INSERT INTO live_codes (id, tenant_id, code, kind, name, mode, members, tags, groups, active, created_at, updated_at)
         VALUES ($1, $2, $3, 'live', 'card code', 'round_robin', '[]', '[]', '[]', 1, 0, 0)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(code)
    .execute(app.app.infra().store.pool())
    .await
    .unwrap();
    id
}

// ---- a tiny vCard reader, independent of the server's writer --------------------

/// Undoes line folding: a CRLF followed by a space or tab disappears.
fn unfold(text: &str) -> String {
    text.replace("\r\n ", "").replace("\r\n\t", "")
}

/// `(NAME;PARAMS, raw value)` per content line.
fn vcard_lines(text: &str) -> Vec<(String, String)> {
    unfold(text)
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap_or_else(|| panic!("no colon in {l:?}"));
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// Splits a structured value on unescaped semicolons.
fn components(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                parts.last_mut().unwrap().push(c);
                if let Some(next) = chars.next() {
                    parts.last_mut().unwrap().push(next);
                }
            }
            ';' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => panic!("dangling backslash in {value:?}"),
            }
        } else {
            assert!(c != ',' && c != ';', "unescaped {c:?} in text value {value:?}");
            out.push(c);
        }
    }
    out
}

// ---- scenarios -----------------------------------------------------------------

async fn cards_are_created_updated_and_guarded(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr1_id = &ids["sdr1@demo.local"];
    let sdr2_id = &ids["sdr2@demo.local"];
    let sdr1 = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let sdr2 = app.login("demo", "sdr2@demo.local", PASSWORD).await;

    // The owner creates their card: 201 with a fresh, unguessable slug.
    let (status, created) = put_card(
        &app,
        &sdr2,
        sdr2_id,
        &json!({"display_name": "李雷", "title": "客户经理", "company": "Acme", "phone": "138 0013 8000",
                "email": "Li.Lei@Example.com", "links": [{"label": "官网", "url": "https://acme.example", "kind": "website"}]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let slug = created["slug"].as_str().unwrap().to_string();
    assert_eq!(slug.len(), 10);
    assert!(slug.chars().all(|c| c.is_ascii_alphanumeric()), "{slug}");
    assert!(
        created["url"].as_str().unwrap().ends_with(&format!("/c/{slug}")),
        "{created}"
    );

    // Updates keep the slug, whether by the owner or an admin.
    let (status, updated) = put_card(
        &app,
        &sdr2,
        sdr2_id,
        &json!({"display_name": "李雷 Lei", "theme": "dark"}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["slug"], slug.as_str());
    let (status, by_admin) = put_card(
        &app,
        &admin,
        sdr2_id,
        &json!({"display_name": "李雷", "company": "Acme", "phone": "+86 138-0013-8000", "show_phone": true,
                "email": "li@example.com", "theme": "ocean"}),
    )
    .await;
    assert_eq!(status, 200, "{by_admin}");
    assert_eq!(by_admin["slug"], slug.as_str());

    let (status, card) = app.get(&sdr2, &format!("/v1/cards/{sdr2_id}")).await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["slug"], slug.as_str());
    assert_eq!(card["display_name"], "李雷");
    assert_eq!(card["phone"], "+8613800138000");
    assert_eq!(card["show_phone"], true);
    assert_eq!(card["email"], "li@example.com");
    assert_eq!(card["theme"], "ocean");
    assert_eq!(card["title"], Value::Null, "a replace clears what is not sent");
    assert_eq!(card["links"], json!([]));

    // Another SDR may neither edit nor read it; nobody may without a token.
    let (status, _) = put_card(&app, &sdr1, sdr2_id, &json!({"display_name": "hijack"})).await;
    assert_eq!(status, 403);
    let (status, _) = app.get(&sdr1, &format!("/v1/cards/{sdr2_id}")).await;
    assert_eq!(status, 403);
    let (status, _) = app.get(&sdr1, &format!("/v1/cards/{sdr2_id}/stats")).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .post(&sdr1, &format!("/v1/cards/{sdr2_id}/shares"), &json!({}))
        .await;
    assert_eq!(status, 403);
    let resp = app
        .client
        .put(app.url(&format!("/v1/cards/{sdr2_id}")))
        .json(&json!({"display_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (_, card) = app.get(&admin, &format!("/v1/cards/{sdr2_id}")).await;
    assert_eq!(card["display_name"], "李雷", "the refused edits changed nothing");
    // A staff member without a card yet.
    let (status, _) = app.get(&sdr1, &format!("/v1/cards/{sdr1_id}")).await;
    assert_eq!(status, 404);

    // Everything wrong is reported at once.
    let (status, problem) = put_card(
        &app,
        &sdr1,
        sdr1_id,
        &json!({"title": "t".repeat(101), "avatar_url": "javascript:alert(1)", "phone": "12", "email": "nope",
                "live_code_id": "no-such-code", "bio": "b".repeat(2001), "company_intro": "c".repeat(4001),
                "links": [{"label": "x", "url": "javascript:alert(1)"}, {"url": "https://ok.example"}],
                "theme": "neon"}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "display_name",
        "title",
        "avatar_url",
        "phone",
        "email",
        "live_code_id",
        "bio",
        "company_intro",
        "links[0].url",
        "links[1].label",
        "theme",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    let (status, problem) = put_card(&app, &sdr1, sdr1_id, &json!({"display_name": "x", "show_phone": "yes"})).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "show_phone");
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"label": format!("l{i}"), "url": "https://x.example"}))
        .collect();
    let (status, problem) = put_card(&app, &sdr1, sdr1_id, &json!({"display_name": "x", "links": too_many})).await;
    assert_eq!(status, 422);
    assert_eq!(problem["errors"][0]["field"], "links");
    let (status, _) = app.get(&sdr1, &format!("/v1/cards/{sdr1_id}")).await;
    assert_eq!(status, 404, "refused bodies create nothing");

    // A live code of the tenant is accepted and linked as "Add me".
    let demo_tenant = tenant_id(&app, &admin).await;
    let code_id = insert_live_code(&app, &demo_tenant, "AddMe42").await;
    let (status, answer) = put_card(
        &app,
        &sdr1,
        sdr1_id,
        &json!({"display_name": "韩梅梅", "live_code_id": code_id}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let sdr1_slug = answer["slug"].as_str().unwrap().to_string();
    assert_ne!(sdr1_slug, slug);
    let page = visit(&app, &format!("/c/{sdr1_slug}"), None).await;
    assert!(page.body.contains("href=\"/s/AddMe42\""), "{}", page.body);
    let page = visit(&app, &format!("/c/{slug}"), None).await;
    assert!(!page.body.contains("href=\"/s/"), "no live code, no Add me link");

    // Other tenants: their staff ids are unknown here, ours unknown there.
    create_tenant(
        &app.app.infra().store,
        "other",
        "Other Co.",
        "boss@other.example",
        "other-password",
    )
    .await
    .unwrap();
    let other = app.login("other", "boss@other.example", "other-password").await;
    let other_ids = app.staff_ids(&other).await;
    let boss_id = &other_ids["boss@other.example"];
    let (status, _) = put_card(&app, &admin, boss_id, &json!({"display_name": "x"})).await;
    assert_eq!(status, 404);
    let (status, _) = put_card(&app, &other, sdr2_id, &json!({"display_name": "x"})).await;
    assert_eq!(status, 404);
    for path in [format!("/v1/cards/{sdr2_id}"), format!("/v1/cards/{sdr2_id}/stats")] {
        let (status, _) = app.get(&other, &path).await;
        assert_eq!(status, 404, "{path} leaked across tenants");
    }
    let (status, _) = app
        .post(&other, &format!("/v1/cards/{sdr2_id}/shares"), &json!({}))
        .await;
    assert_eq!(status, 404);
    // Nor may their card use our live code.
    let (status, problem) = put_card(
        &app,
        &other,
        boss_id,
        &json!({"display_name": "Boss", "live_code_id": code_id}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "live_code_id");

    // A deleted live code is no longer offered, nor accepted.
    sqlx::query("UPDATE live_codes SET deleted_at = 1, active = 0 WHERE id = $1")
        .bind(&code_id)
        .execute(app.app.infra().store.pool())
        .await
        .unwrap();
    let page = visit(&app, &format!("/c/{sdr1_slug}"), None).await;
    assert!(!page.body.contains("/s/AddMe42"));
    let (status, _) = put_card(
        &app,
        &sdr1,
        sdr1_id,
        &json!({"display_name": "韩梅梅", "live_code_id": code_id}),
    )
    .await;
    assert_eq!(status, 422);
    app.stop().await;
}

async fn the_page_escapes_hostile_input_and_shows_open_graph(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr1_id = &ids["sdr1@demo.local"];
    let sdr3_id = &ids["sdr3@demo.local"];

    // A javascript: link never gets in through the API...
    let (status, _) = put_card(
        &app,
        &admin,
        sdr1_id,
        &json!({"display_name": "x", "links": [{"label": "x", "url": "javascript:alert(1)"}]}),
    )
    .await;
    assert_eq!(status, 422);
    let slug = card_for(
        &app,
        &admin,
        sdr1_id,
        json!({"display_name": HOSTILE, "title": HOSTILE, "company": HOSTILE, "bio": HOSTILE,
               "company_intro": HOSTILE, "phone": "13800138000", "show_phone": false,
               "avatar_url": "https://img.example/a.png?x=\"><script>alert(3)</script>",
               "links": [{"label": HOSTILE, "url": "https://example.com/?q=\"><script>alert(4)</script>"}]}),
    )
    .await;
    // ... and one stored behind the API's back is still neutralised on the page.
    sqlx::query("UPDATE cards SET links = $1 WHERE slug = $2")
        .bind(
            json!([{"label": HOSTILE, "url": "https://example.com/?q=\"><script>alert(4)</script>"},
                   {"label": "evil", "url": "javascript:alert(5)"}])
            .to_string(),
        )
        .bind(&slug)
        .execute(app.app.infra().store.pool())
        .await
        .unwrap();

    let page = visit(&app, &format!("/c/{slug}"), None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert_eq!(page.headers["cache-control"], "no-store");
    let html = &page.body;
    assert!(!html.contains(HOSTILE));
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"));
    assert!(!html.contains("javascript:"));
    assert!(html.matches(HOSTILE_ESCAPED).count() >= 5, "{html}");
    assert!(html.contains("<title>&lt;script&gt;alert(1)"));
    assert!(html.contains("href=\"https://example.com/?q=&quot;&gt;&lt;script&gt;alert(4)&lt;/script&gt;\""));
    assert!(html.contains("href=\"#\""), "the javascript: link became #");
    assert!(html.contains("src=\"https://img.example/a.png?x=&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;\""));
    // The only script is the page's own share script.
    assert_eq!(html.matches("<script").count(), 1);
    // Masked phone: recognisable, not callable.
    assert!(html.contains("+86138****8000"));
    assert!(!html.contains("13800138000"));
    // Open Graph for WeChat, the viewport, and the parts of the page.
    assert!(html.contains("<meta name=\"viewport\""));
    for property in ["og:title", "og:description", "og:type", "og:url", "og:image"] {
        assert!(
            html.contains(&format!("<meta property=\"{property}\" content=\"")),
            "{property} missing"
        );
    }
    assert!(html.contains(&format!("<meta property=\"og:url\" content=\"{}", "http")));
    assert!(html.contains(&format!("/c/{slug}\">")));
    assert!(html.contains(&format!("href=\"/c/{slug}/vcard\"")));
    assert!(html.contains(&format!("action=\"/c/{slug}/leads\"")));
    for field in ["name", "phone", "company", "message", "consent", "website"] {
        assert!(
            html.contains(&format!("name=\"{field}\"")),
            "form field {field} missing"
        );
    }
    assert!(html.contains("id=\"share\""));
    // A visitor cookie was handed out.
    assert!(page.cookie.is_some());
    assert!(!html.contains(sdr1_id.as_str()), "staff ids stay off the page");

    // Shown phone: the full number with a tel: link; no avatar, no og:image.
    let shown_slug = card_for(
        &app,
        &admin,
        sdr3_id,
        json!({"display_name": "王小明", "title": "销售总监", "company": "Acme", "phone": "13800138000", "show_phone": true}),
    )
    .await;
    let page = visit(&app, &format!("/c/{shown_slug}"), None).await;
    assert!(page.body.contains("href=\"tel:+8613800138000\""));
    assert!(!page.body.contains("****"));
    assert!(
        page.body
            .contains("<meta property=\"og:title\" content=\"王小明 · 销售总监 · Acme\">")
    );
    assert!(!page.body.contains("og:image"));
    assert!(!page.body.contains("<img"));

    // Unknown and malformed slugs: an HTML 404, not JSON.
    for path in ["/c/NoSuchCard", "/c/not-a-slug!", "/c/NoSuchCard/vcard"] {
        let page = visit(&app, path, None).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(
            page.content_type.starts_with("text/html"),
            "{path}: {}",
            page.content_type
        );
        assert!(page.body.contains("<html"));
    }
    app.stop().await;
}

async fn the_vcard_round_trips(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr2_id = &ids["sdr2@demo.local"];
    let name = format!("王, 小明; \"测试\" \\ {}", "欧阳".repeat(20));
    let bio = "十年外贸, 擅长欧洲; 市场\n第二行 \\ 反斜杠";
    let slug = card_for(
        &app,
        &admin,
        sdr2_id,
        json!({"display_name": name, "company": "Acme, Inc.; 中国", "title": "销售总监, 华东",
               "phone": "138-0013-8000", "show_phone": true, "email": "Wang@Example.com", "bio": bio,
               "avatar_url": "https://img.example/w.png"}),
    )
    .await;
    let page = visit(&app, &format!("/c/{slug}/vcard"), None).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/vcard; charset=utf-8");
    assert_eq!(page.headers["content-disposition"], "attachment; filename=\"card.vcf\"");
    let text = &page.body;
    assert!(text.ends_with("\r\n"));
    assert!(
        !text.replace("\r\n", "").contains(['\r', '\n']),
        "bare CR or LF in {text:?}"
    );
    for physical in text.split("\r\n") {
        assert!(physical.len() <= 75, "{} octets: {physical:?}", physical.len());
    }
    assert!(text.contains("\r\n "), "the long name is folded");

    let lines = vcard_lines(text);
    let get = |name: &str| -> String {
        lines
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing from {lines:?}"))
    };
    assert_eq!(lines.first().unwrap(), &("BEGIN".to_string(), "VCARD".to_string()));
    assert_eq!(get("VERSION"), "4.0");
    assert_eq!(lines.last().unwrap(), &("END".to_string(), "VCARD".to_string()));
    assert_eq!(unescape(&get("FN")), name);
    let n = components(&get("N"));
    assert_eq!(n.len(), 5, "{n:?}");
    assert_eq!(unescape(&n[0]), name);
    assert!(n[1..].iter().all(String::is_empty));
    assert_eq!(unescape(&components(&get("ORG"))[0]), "Acme, Inc.; 中国");
    assert_eq!(unescape(&get("TITLE")), "销售总监, 华东");
    assert_eq!(get("TEL;TYPE=cell"), "+8613800138000");
    assert_eq!(unescape(&get("EMAIL")), "wang@example.com");
    assert_eq!(unescape(&get("NOTE")), bio);
    assert_eq!(get("PHOTO"), "https://img.example/w.png");
    assert!(get("URL").ends_with(&format!("/c/{slug}")));
    assert!(get("URL").starts_with("http"));

    // A hidden phone stays off the vCard too.
    card_for(
        &app,
        &admin,
        sdr2_id,
        json!({"display_name": "Li", "phone": "13800138000"}),
    )
    .await;
    let page = visit(&app, &format!("/c/{slug}/vcard"), None).await;
    assert!(!page.body.contains("TEL"));
    assert!(!page.body.contains("13800138000"));
    assert_eq!(stats(&app, &admin, sdr2_id).await["vcard_saves"], 2);
    app.stop().await;
}

async fn the_card_form_routes_to_the_card_owner(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr2_id = ids["sdr2@demo.local"].clone();
    let sdr2 = app.login("demo", "sdr2@demo.local", PASSWORD).await;
    let slug = card_for(
        &app,
        &sdr2,
        &sdr2_id,
        json!({"display_name": "李雷", "company": "Acme"}),
    )
    .await;
    let demo_tenant = tenant_id(&app, &admin).await;
    insert_live_code(&app, &demo_tenant, "ViaCode7").await;
    const IP: &str = "203.0.113.20";

    let page = visit(&app, &format!("/c/{slug}?via=ViaCode7"), None).await;
    assert!(
        page.body
            .contains("<input type=\"hidden\" name=\"via\" value=\"ViaCode7\">")
    );
    let cookie = page.cookie.clone().unwrap();
    let answer = post_form(
        &app,
        &slug,
        IP,
        Some(&cookie),
        &[
            ("name", "张三"),
            ("phone", "139 0013 9001"),
            ("company", "Initech"),
            ("message", "想了解报价 & <b>细节</b>"),
            ("consent", "on"),
            ("website", ""),
            ("via", "ViaCode7"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.content_type.starts_with("text/html"));
    let capture_id = capture_id_of(&answer.body);
    let lead = app
        .wait_for_assigned_lead(&admin, &capture_id, Duration::from_secs(15))
        .await;
    assert_eq!(lead["owner_id"], sdr2_id.as_str(), "{lead}");
    assert_eq!(lead["assignment"]["reason"], "owner_hint", "{lead}");
    assert_eq!(lead["assignment"]["staff_id"], sdr2_id.as_str());
    assert_eq!(lead["phone"], "+8613900139001");
    assert_eq!(lead["name"], "张三");

    let (created_by, payload, live_code): (String, String, Option<String>) =
        sqlx::query_as("SELECT created_by, payload, live_code FROM captures WHERE id = $1")
            .bind(&capture_id)
            .fetch_one(app.app.infra().store.pool())
            .await
            .unwrap();
    assert_eq!(created_by, format!("card:{slug}"));
    assert_eq!(live_code.as_deref(), Some("ViaCode7"));
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["channel"], "smart_card");
    assert_eq!(payload["owner_hint"], sdr2_id.as_str());
    assert_eq!(payload["consent"], true);
    assert_eq!(payload["company"], "Initech");
    assert_eq!(payload["attributes"]["card"], slug.as_str());
    assert_eq!(payload["attributes"]["message"], "想了解报价 & <b>细节</b>");

    // What a person gets wrong comes back as a page saying so, escaped, form kept.
    let bad = post_form(
        &app,
        &slug,
        IP,
        None,
        &[
            ("name", "<b>Eve</b>"),
            ("phone", "12<script>x</script>"),
            ("consent", "on"),
        ],
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.content_type.starts_with("text/html"));
    assert!(bad.body.contains("手机号"));
    assert!(!bad.body.contains("<script>x"));
    assert!(!bad.body.contains("<b>Eve"));
    assert!(bad.body.contains("value=\"&lt;b&gt;Eve&lt;/b&gt;\""));
    assert!(bad.body.contains("checked"));
    let missing = post_form(&app, &slug, IP, None, &[("name", "No Phone"), ("phone", "  ")]).await;
    assert_eq!(missing.status, 422);
    assert!(missing.body.contains("请填写手机号"));
    assert!(!missing.body.contains("data-capture-id"));

    // Bodies that are not a form: a 4xx, never a 500.
    let json_body = app
        .client
        .post(app.url(&format!("/c/{slug}/leads")))
        .header("X-Forwarded-For", IP)
        .json(&json!({"phone": "13900139002"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 415);
    let huge = post_form(&app, &slug, IP, None, &[("message", &"x".repeat(20_000))]).await;
    assert_eq!(huge.status, 413);
    let duplicate = app
        .client
        .post(app.url(&format!("/c/{slug}/leads")))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("X-Forwarded-For", IP)
        .body("phone=1&phone=2")
        .send()
        .await
        .unwrap();
    assert!(duplicate.status().is_client_error(), "{}", duplicate.status());
    let unknown = post_form(&app, "NoSuchCard", IP, None, &[("phone", "13900139003")]).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.content_type.starts_with("text/html"));

    // One lead, counted once.
    let s = stats(&app, &sdr2, &sdr2_id).await;
    assert_eq!(s["leads"], 1, "{s}");
    app.stop().await;
}

async fn honeypot_creates_nothing_and_the_form_is_rate_limited(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr1_id = &ids["sdr1@demo.local"];
    let slug = card_for(&app, &admin, sdr1_id, json!({"display_name": "韩梅梅"})).await;
    let pool = app.app.infra().store.pool();

    let bot = [
        ("name", "Bot"),
        ("phone", "13700137000"),
        ("consent", "on"),
        ("website", "http://spam.example"),
    ];
    let answer = post_form(&app, &slug, "198.51.100.1", None, &bot).await;
    assert_eq!(answer.status, 200);
    let fake_id = capture_id_of(&answer.body);
    assert!(answer.body.contains("韩梅梅"), "the same thank-you page");
    let (status, _) = app.get(&admin, &format!("/v1/captures/{fake_id}")).await;
    assert_eq!(status, 404);
    let (captures,): (i64,) = sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM captures")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(captures, 0);
    assert_eq!(stats(&app, &admin, sdr1_id).await["leads"], 0);

    // Ten posts a minute per address, then 429. Start early in a window so all
    // eleven fall into the same one.
    crate::helpers::start_early_in_a_minute(Duration::from_secs(10)).await;
    let ip = "198.51.100.2";
    for i in 0..10 {
        let answer = post_form(&app, &slug, ip, None, &bot).await;
        assert_eq!(answer.status, 200, "post {i}");
    }
    let limited = post_form(&app, &slug, ip, None, &bot).await;
    assert_eq!(limited.status, 429);
    assert!(limited.content_type.starts_with("text/html"));
    assert_eq!(limited.headers["retry-after"], "60");
    // A real submission from that address is refused too; another address is not.
    let refused = post_form(&app, &slug, ip, None, &[("phone", "13700137001")]).await;
    assert_eq!(refused.status, 429);
    let other = post_form(&app, &slug, "198.51.100.3", None, &bot).await;
    assert_eq!(other.status, 200);
    let (captures,): (i64,) = sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM captures")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(captures, 0, "neither bots nor refused posts made captures");
    app.stop().await;
}

async fn shares_build_a_tree_and_stats_count_them(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr3_id = ids["sdr3@demo.local"].clone();
    let sdr3 = app.login("demo", "sdr3@demo.local", PASSWORD).await;
    let slug = card_for(&app, &sdr3, &sdr3_id, json!({"display_name": "王小明"})).await;
    let pool = app.app.infra().store.pool();

    let empty = stats(&app, &sdr3, &sdr3_id).await;
    assert_eq!(
        empty,
        json!({"views": 0, "unique_visitors": 0, "shares": 0, "vcard_saves": 0, "leads": 0})
    );

    // The owner mints a share link.
    let (status, staff_share) = app
        .post(&sdr3, &format!("/v1/cards/{sdr3_id}/shares"), &json!({}))
        .await;
    assert_eq!(status, 201, "{staff_share}");
    let t1 = staff_share["token"].as_str().unwrap().to_string();
    assert!(t1.len() >= 12 && t1.chars().all(|c| c.is_ascii_alphanumeric()), "{t1}");
    assert!(
        staff_share["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/c/{slug}?s={t1}"))
    );

    // Visitor A arrives through it and shares on, as the page's script does.
    let a = visit(&app, &format!("/c/{slug}?s={t1}"), None).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains(&format!("data-share=\"{t1}\"")));
    assert!(
        a.body
            .contains(&format!("<input type=\"hidden\" name=\"s\" value=\"{t1}\">"))
    );
    let a_cookie = a.cookie.clone().expect("a visitor cookie");
    let resp = app
        .client
        .post(app.url(&format!("/c/{slug}/share")))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(COOKIE, &a_cookie)
        .body(format!("parent={t1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().get(SET_COOKIE).is_none(), "A keeps their cookie");
    let visitor_share: Value = resp.json().await.unwrap();
    let t2 = visitor_share["token"].as_str().unwrap().to_string();
    assert_ne!(t1, t2);
    assert!(t2.len() >= 12);
    assert!(
        visitor_share["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/c/{slug}?s={t2}"))
    );

    // The share tree: T2's parent is T1; T1 is the staff member's, T2 a visitor's.
    let tree: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT token, sharer, parent_token FROM card_shares ORDER BY created_at, token")
            .fetch_all(pool)
            .await
            .unwrap();
    let by_token: HashMap<_, _> = tree
        .iter()
        .map(|(t, s, p)| (t.clone(), (s.clone(), p.clone())))
        .collect();
    assert_eq!(by_token[&t1], (format!("staff:{sdr3_id}"), None));
    let (a_hash, parent) = &by_token[&t2];
    assert_eq!(parent.as_deref(), Some(t1.as_str()));
    assert!(!a_hash.starts_with("staff:") && a_hash.len() >= 16, "{a_hash}");

    // Visitor B arrives through A's share, twice, saves the contact and leaves a lead.
    let b = visit(&app, &format!("/c/{slug}?s={t2}"), None).await;
    let b_cookie = b.cookie.clone().expect("a visitor cookie");
    assert!(b.body.contains(&format!("href=\"/c/{slug}/vcard?s={t2}\"")));
    let again = visit(&app, &format!("/c/{slug}?s={t2}"), Some(&b_cookie)).await;
    assert!(again.cookie.is_none(), "a returning visitor keeps their cookie");
    let vcard = visit(&app, &format!("/c/{slug}/vcard?s={t2}"), Some(&b_cookie)).await;
    assert_eq!(vcard.status, 200);
    let lead = post_form(
        &app,
        &slug,
        "192.0.2.50",
        Some(&b_cookie),
        &[("name", "B"), ("phone", "13600136000"), ("consent", "true"), ("s", &t2)],
    )
    .await;
    assert_eq!(lead.status, 200, "{}", lead.body);
    let capture_id = capture_id_of(&lead.body);
    let (payload,): (String,) = sqlx::query_as("SELECT payload FROM captures WHERE id = $1")
        .bind(&capture_id)
        .fetch_one(pool)
        .await
        .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["attributes"]["share_token"], t2.as_str());

    // Visitor C comes with a token that is no share of this card: a plain view.
    let c = visit(&app, &format!("/c/{slug}?s=NotARealToken123"), None).await;
    assert_eq!(c.status, 200);
    assert!(!c.body.contains("data-share=\""));
    // A share token of this card is no parent on another card.
    let admin_id = ids["admin@demo.local"].clone();
    let admin_slug = card_for(&app, &admin, &admin_id, json!({"display_name": "Admin"})).await;
    let resp = app
        .client
        .post(app.url(&format!("/c/{admin_slug}/share")))
        .json(&json!({"parent": t1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let orphan: Value = resp.json().await.unwrap();
    let (parent,): (Option<String>,) = sqlx::query_as("SELECT parent_token FROM card_shares WHERE token = $1")
        .bind(orphan["token"].as_str().unwrap())
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(parent, None);

    // Who arrived through whose share.
    let views: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT e.visitor, e.share_token FROM card_events e JOIN cards c ON c.id = e.card_id
         WHERE c.slug = $1 AND e.kind = 'view' ORDER BY e.at, e.id",
    )
    .bind(&slug)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(views.len(), 4, "{views:?}");
    assert_eq!(views[0], (a_hash.clone(), Some(t1.clone())), "A's view came through T1");
    assert_eq!(views[1].1.as_deref(), Some(t2.as_str()));
    assert_eq!(views[1].0, views[2].0, "B is one visitor");
    assert_ne!(views[1].0, views[0].0);
    assert_eq!(views[3].1, None);

    // The numbers: A once, B twice, C once; the staff share and A's; B's save and
    // B's lead.
    let s = stats(&app, &sdr3, &sdr3_id).await;
    assert_eq!(
        s,
        json!({"views": 4, "unique_visitors": 3, "shares": 2, "vcard_saves": 1, "leads": 1})
    );
    assert_eq!(stats(&app, &admin, &sdr3_id).await, s);
    // The other card's numbers are its own.
    let other = stats(&app, &admin, &admin_id).await;
    assert_eq!(other["shares"], 1);
    assert_eq!(other["views"], 0);

    // Malformed share calls are the client's fault.
    let resp = app
        .client
        .post(app.url(&format!("/c/{slug}/share")))
        .header(CONTENT_TYPE, "application/json")
        .body("{\"parent\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = app
        .client
        .post(app.url(&format!("/c/{slug}/share")))
        .header(CONTENT_TYPE, "text/plain")
        .body("parent")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = app.client.post(app.url("/c/NoSuchCard/share")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    app.stop().await;
}

async fn card_visits_after_the_form_count_as_the_leads_engagement(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let ids = app.staff_ids(&admin).await;
    let sdr3_id = ids["sdr3@demo.local"].clone();
    let sdr3 = app.login("demo", "sdr3@demo.local", PASSWORD).await;
    let slug = card_for(&app, &sdr3, &sdr3_id, json!({"display_name": "王五"})).await;

    // A stranger's visits count for no one.
    let stranger = visit(&app, &format!("/c/{slug}"), None).await;
    assert_eq!(stranger.status, 200);
    // The visitor who sends the form becomes the lead; their later visits are its
    // engagement.
    let page = visit(&app, &format!("/c/{slug}"), None).await;
    let cookie = page.cookie.clone().unwrap();
    let answer = post_form(
        &app,
        &slug,
        "203.0.113.31",
        Some(&cookie),
        &[("name", "赵六"), ("phone", "137 0013 7001"), ("website", "")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let capture_id = capture_id_of(&answer.body);
    let lead = app
        .wait_for_assigned_lead(&admin, &capture_id, Duration::from_secs(15))
        .await;
    let lead_id = lead["id"].as_str().unwrap().to_string();
    let score_before = lead["score"].as_i64().unwrap();
    assert!(
        lead["score_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["rule"] != "viewed a card")
    );

    for path in [format!("/c/{slug}"), format!("/c/{slug}"), format!("/c/{slug}/vcard")] {
        assert_eq!(visit(&app, &path, Some(&cookie)).await.status, 200);
    }
    visit(&app, &format!("/c/{slug}"), None).await;
    let lead = crate::helpers::eventually(Duration::from_secs(20), "the visits to be credited", || async {
        let (_, lead) = app.get(&admin, &format!("/v1/leads/{lead_id}")).await;
        let kinds: Vec<String> = lead["touches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["kind"].as_str().unwrap().to_string())
            .collect();
        // The score is stored with the touches it counted; the view reads the lead
        // and its touches by separate statements, so wait for both to show all three.
        let saved = lead["score_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "saved a card's contact")
            && lead["score_reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["rule"] == "viewed a card" && r["events"] == 2);
        (kinds.iter().filter(|k| *k == "card_view").count() == 2 && kinds.contains(&"card_save".to_string()) && saved)
            .then_some(lead)
    })
    .await;
    let viewed = lead["score_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "viewed a card")
        .cloned()
        .unwrap_or_else(|| panic!("no card-view reason: {lead}"));
    assert_eq!(viewed["events"], 2, "only the lead's own visits after the form: {lead}");
    assert!(
        lead["score_reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "saved a card's contact")
    );
    assert!(lead["score"].as_i64().unwrap() > score_before, "{lead}");
    assert_eq!(
        lead["touches"].as_array().unwrap().len(),
        4,
        "the capture and three visits: {lead}"
    );
}
