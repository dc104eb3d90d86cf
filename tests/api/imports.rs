//! Bulk import: GBK CSV with Chinese headers and NDJSON, streamed into the store,
//! worked in the background, per-row errors, progress, and the same file twice one
//! import.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Backend, PASSWORD, TestApp, eventually, spawn_app};
use crate::on_both_backends;

on_both_backends!(imports_take_gbk_csv_and_ndjson_and_report_each_row);

async fn upload(app: &TestApp, token: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url("/v1/leads/bulk?channel=web_form"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    eventually(Duration::from_secs(20), "the import to finish", || async {
        let (_, import) = app.get(token, &format!("/v1/imports/{id}")).await;
        (import["status"] == "done").then_some(import)
    })
    .await
}

async fn imports_take_gbk_csv_and_ndjson_and_report_each_row(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;

    let csv = "姓名,手机号,公司,行业\r\n李雷,13800138101,\"Acme, Inc.\",制造\r\n韩梅梅,+86 139-0013-9102,中华公司,零售\r\n无效,12345,X,Y\r\n";
    let (gbk, _, unmappable) = encoding_rs::GB18030.encode(csv);
    assert!(!unmappable);
    let (status, answer) = upload(&app, &admin, "text/csv", gbk.to_vec()).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["import_id"].as_str().unwrap().to_string();
    let import = finished(&app, &admin, &id).await;
    assert_eq!(import["encoding"], "gb18030", "{import}");
    assert_eq!(
        (import["rows_imported"].as_i64(), import["rows_failed"].as_i64()),
        (Some(2), Some(1)),
        "{import}"
    );
    assert_eq!(import["errors"][0]["row"], 3);
    let errors = app
        .client
        .get(app.url(&format!("/v1/imports/{id}/errors")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(
        errors.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = errors.text().await.unwrap();
    assert!(text.starts_with("row,field,message\n3,phone,"), "{text}");

    // The same file again is the same import, not a second one.
    let (status, again) = upload(&app, &admin, "text/csv", gbk.to_vec()).await;
    assert_eq!(status, 202);
    assert_eq!(again["import_id"], id.as_str());
    assert_eq!(again["duplicate"], true);

    // The leads reach inboxes, with their Chinese names intact. "done" means every row
    // is a capture; qualifying and routing them follows through the bus.
    let sdrs = [
        app.login("demo", "sdr1@demo.local", PASSWORD).await,
        app.login("demo", "sdr2@demo.local", PASSWORD).await,
        app.login("demo", "sdr3@demo.local", PASSWORD).await,
    ];
    eventually(Duration::from_secs(20), "both imported leads in inboxes", || async {
        let mut names = Vec::new();
        for sdr in &sdrs {
            let (_, inbox) = app.get(sdr, "/v1/inbox").await;
            names.extend(
                inbox["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|i| i["name"].as_str().map(str::to_string)),
            );
        }
        names.sort();
        (names == ["李雷", "韩梅梅"]).then_some(())
    })
    .await;

    // NDJSON through an API key; a line that is not an object is a row error.
    let (_, key) = app
        .post(&admin, "/v1/api-keys", &serde_json::json!({"name": "crm sync"}))
        .await;
    let key = key["key"].as_str().unwrap().to_string();
    let ndjson = "{\"name\": \"张三\", \"email\": \"zhang@example.com\"}\nnot json\n{\"phone\": \"13700137103\", \"channel\": \"ads\"}\n";
    let (status, answer) = upload(&app, &key, "application/x-ndjson", ndjson.as_bytes().to_vec()).await;
    assert_eq!(status, 202, "{answer}");
    let import = finished(&app, &key, answer["import_id"].as_str().unwrap()).await;
    assert_eq!(
        (import["rows_imported"].as_i64(), import["rows_failed"].as_i64()),
        (Some(2), Some(1)),
        "{import}"
    );
    assert_eq!(import["errors"][0]["errors"][0]["field"], "line");

    // What is refused before anything is stored.
    let (status, _) = upload(&app, &admin, "application/json", b"{}".to_vec()).await;
    assert_eq!(status, 415);
    let (status, _) = upload(&app, &admin, "text/csv", Vec::new()).await;
    assert_eq!(status, 422);
    let sdr = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let (status, _) = upload(&app, &sdr, "text/csv", b"phone\n13800138000\n".to_vec()).await;
    assert_eq!(status, 403);
    app.stop().await;
}
