//! The web console in a real browser (headless Chromium through ChromeDriver): a
//! marketer signs in and makes a live code, a prospect opens its scan URL on a phone
//! and leaves their details on the card, and the SDR sees the lead arrive in an
//! inbox they never reload, then accepts it. Phone-width screenshots of the card,
//! the hosted form and the inbox are kept under `target/screenshots/`; no page may
//! log an error to the browser console.
//!
//! Needs `chromedriver` and Chromium (Debian: `chromium`, `chromium-driver`).
//! Skipped without them unless `HUOKE_REQUIRE_BROWSER=1` (CI installs them).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::cards::card_for;
use crate::helpers::{Backend, PASSWORD, TestApp, eventually, spawn_app};
use crate::on_both_backends;

on_both_backends!(a_card_lead_reaches_the_live_inbox_in_a_browser);

const PHONE: (u32, u32) = (390, 844);

fn driver_path() -> Option<PathBuf> {
    let path =
        std::env::var("HUOKE_CHROMEDRIVER").map_or_else(|_| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
    let required = std::env::var("HUOKE_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    match (path.exists(), required) {
        (true, _) => Some(path),
        (false, true) => panic!("HUOKE_REQUIRE_BROWSER=1 but there is no {}", path.display()),
        (false, false) => {
            eprintln!("skipping the browser test: no {}", path.display());
            None
        }
    }
}

/// A ChromeDriver of this test's own, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(path: &PathBuf) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver { child, url };
    eventually(Duration::from_secs(20), "chromedriver to listen", || async {
        reqwest::get(format!("{}/status", driver.url)).await.ok().map(|_| ())
    })
    .await;
    driver
}

async fn browser(driver: &Driver) -> Client {
    let profile = tempfile::tempdir().unwrap().keep();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("HUOKE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", format!("--window-size={},{}", PHONE.0, PHONE.1),
                     format!("--user-data-dir={}", profile.display()), "--lang=zh-CN"],
            // A phone's viewport (a desktop window cannot be narrower than 500 px).
            "mobileEmulation": {"deviceMetrics": {"width": PHONE.0, "height": PHONE.1, "pixelRatio": 2}},
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// What the page logged to the console since the last call, as errors only.
async fn console_errors(driver: &Driver, client: &Client) -> Vec<String> {
    let session = client.session_id().await.unwrap().unwrap_or_default();
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/session/{session}/se/log", driver.url))
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null);
    answer["value"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["level"] == "SEVERE")
                .map(|e| e["message"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn fill(client: &Client, at: Locator<'_>, text: &str) {
    client.find(at).await.unwrap().send_keys(text).await.unwrap();
}

async fn click(client: &Client, at: Locator<'_>) {
    client.find(at).await.unwrap().click().await.unwrap();
}

async fn sign_in(client: &Client, app: &TestApp, email: &str) {
    client.goto(&app.url("/app/login")).await.unwrap();
    fill(client, Locator::Id("tenant"), "demo").await;
    fill(client, Locator::Id("email"), email).await;
    fill(client, Locator::Id("password"), PASSWORD).await;
    click(client, Locator::Id("sign-in")).await;
    client.wait().for_element(Locator::Css("header.top nav")).await.unwrap();
}

async fn a_card_lead_reaches_the_live_inbox_in_a_browser(backend: Backend) {
    let Some(path) = driver_path() else { return };
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let sdr1 = app.staff_ids(&admin).await["sdr1@demo.local"].clone();
    card_for(
        &app,
        &admin,
        &sdr1,
        json!({"display_name": "李娜", "title": "客户经理", "company": "演示公司"}),
    )
    .await;
    let (status, form) = app
        .post(
            &admin,
            "/v1/forms",
            &json!({"name": "展会报名", "fields": ["name", "phone", "company"], "required": ["phone"]}),
        )
        .await;
    assert_eq!(status, 201, "{form}");

    let driver = start_driver(&path).await;
    let marketer = browser(&driver).await;
    let sdr = browser(&driver).await;

    // The SDR opens the inbox and leaves it open.
    sign_in(&sdr, &app, "sdr1@demo.local").await;
    assert!(sdr.current_url().await.unwrap().path().ends_with("/app/inbox"));
    eventually(Duration::from_secs(15), "the inbox stream to connect", || async {
        let connected = sdr
            .execute(
                "return document.getElementById('inbox').dataset.connected || ''",
                vec![],
            )
            .await
            .ok()?;
        (connected == "1").then_some(())
    })
    .await;

    // The marketer makes a live code for sdr1.
    sign_in(&marketer, &app, "admin@demo.local").await;
    marketer.goto(&app.url("/app/codes")).await.unwrap();
    fill(&marketer, Locator::Id("code-name"), "展会活码").await;
    click(&marketer, Locator::Css(&format!("input[name=member][value='{sdr1}']"))).await;
    click(&marketer, Locator::Id("create-code")).await;
    let scan_url = marketer
        .wait()
        .for_element(Locator::Css("a.scan-url"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let qr_loaded = marketer
        .execute(
            "const i = document.querySelector('.code img'); return i.complete && i.naturalWidth > 0",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(qr_loaded, json!(true), "the QR preview loads with the session cookie");
    let errors = console_errors(&driver, &marketer).await;
    assert!(errors.is_empty(), "console errors on the console pages: {errors:?}");

    // Every section of the navigation opens, in both languages, without an error.
    let mut sections = Vec::new();
    for link in marketer.find_all(Locator::Css("header.top nav a")).await.unwrap() {
        sections.push(link.attr("href").await.unwrap().unwrap());
    }
    assert!(sections.len() >= 16, "an admin sees every section: {sections:?}");
    for lang in ["zh", "en"] {
        marketer
            .goto(&app.url(&format!("/app/lang/{lang}?next=/app/codes")))
            .await
            .unwrap();
        for href in &sections {
            marketer.goto(&app.url(href)).await.unwrap();
            let heading = marketer
                .find(Locator::Css("main h1"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let problems = marketer.find_all(Locator::Css("main .problem")).await.unwrap();
            assert!(
                problems.is_empty() && !heading.is_empty(),
                "{href} ({lang}) shows an error: {heading}"
            );
            let errors = console_errors(&driver, &marketer).await;
            assert!(errors.is_empty(), "console errors on {href} ({lang}): {errors:?}");
        }
    }

    // A prospect scans it on a phone and leaves their details on sdr1's card. (The
    // test server listens on port 0, which is what its public URL names: the path
    // is what counts.)
    let scan_path = scan_url
        .split_once("/s/")
        .map(|(_, code)| format!("/s/{code}"))
        .unwrap();
    marketer.goto(&app.url(&scan_path)).await.unwrap();
    let landed = marketer.current_url().await.unwrap();
    assert!(landed.path().starts_with("/c/"), "{landed}");
    screenshot(&marketer, "card").await;
    fill(&marketer, Locator::Css("input[name=name]"), "王小明").await;
    fill(&marketer, Locator::Css("input[name=phone]"), "13912345678").await;
    click(&marketer, Locator::Css("input[name=consent]")).await;
    click(&marketer, Locator::Css("form button[type=submit]")).await;
    let errors = console_errors(&driver, &marketer).await;
    assert!(errors.is_empty(), "console errors on the card pages: {errors:?}");

    // The hosted form, at phone width.
    marketer
        .goto(&app.url(&format!("/f/{}", form["id"].as_str().unwrap())))
        .await
        .unwrap();
    screenshot(&marketer, "form").await;
    let errors = console_errors(&driver, &marketer).await;
    assert!(errors.is_empty(), "console errors on the form page: {errors:?}");

    // The lead appears in the open inbox without a reload, and sdr1 accepts it.
    let item = sdr
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::XPath(
            "//li[contains(@class,'item')][.//a[contains(., '王小明')]]",
        ))
        .await
        .unwrap_or_else(|e| {
            panic!("the lead in the inbox without a reload: {e}");
        });
    assert_eq!(
        sdr.execute(
            "return document.getElementById('inbox').dataset.connected || ''",
            vec![]
        )
        .await
        .unwrap(),
        json!("1"),
        "still the same page"
    );
    let countdown = item
        .find(Locator::Css(".countdown"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(countdown.contains(':'), "an SLA countdown: {countdown}");
    screenshot(&sdr, "inbox").await;
    item.find(Locator::Css("button.accept"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    sdr.wait()
        .for_element(Locator::XPath(
            "//li[contains(@class,'item')][.//a[contains(., '王小明')]]//span[@class='state']",
        ))
        .await
        .expect("the offer accepted");
    let errors = console_errors(&driver, &sdr).await;
    assert!(errors.is_empty(), "console errors on the inbox: {errors:?}");

    // sdr1 opens the lead and logs the first call.
    click(&sdr, Locator::XPath("//a[contains(., '王小明')]")).await;
    fill(&sdr, Locator::Css("textarea[name=body]"), "打过电话，约了下周演示").await;
    click(&sdr, Locator::Css("form[action$='/activities'] button")).await;
    sdr.wait()
        .for_element(Locator::XPath(
            "//ol[@class='history']/li[contains(., 'activity') or contains(., 'first_contact')]",
        ))
        .await
        .expect("the activity in the lead's history");
    let errors = console_errors(&driver, &sdr).await;
    assert!(errors.is_empty(), "console errors on the lead page: {errors:?}");

    marketer.close().await.unwrap();
    sdr.close().await.unwrap();
    app.stop().await;
}
