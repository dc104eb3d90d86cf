//! One person, one lead: phone numbers read as libphonenumber reads them, identities
//! that link leads merge them (and the merge can be taken back), simultaneous
//! captures of one person end as one lead, and alike people of one company are
//! flagged, not merged.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, TestApp, eventually, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    spellings_of_one_number_are_one_person_and_bad_numbers_are_refused,
    a_capture_linking_two_leads_merges_them_and_the_merge_can_be_undone,
    leads_are_merged_by_hand_by_managers_only,
    simultaneous_captures_over_three_channels_are_one_lead,
    company_name_variants_are_flagged_as_possible_duplicates,
    the_tenants_region_reads_numbers_without_a_country_code,
);

/// The lead a capture ended in, once qualified, following merges to the survivor.
pub async fn lead_of(app: &TestApp, token: &str, capture_id: &str) -> Value {
    let lead_id = eventually(Duration::from_secs(20), "the capture to be qualified", || async {
        let (_, capture) = app.get(token, &format!("/v1/captures/{capture_id}")).await;
        capture["lead_id"].as_str().map(str::to_string)
    })
    .await;
    let mut lead = get_lead(app, token, &lead_id).await;
    while let Some(survivor) = lead["merged_into"].as_str() {
        lead = get_lead(app, token, survivor).await;
    }
    lead
}

async fn get_lead(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, lead) = app.get(token, &format!("/v1/leads/{id}")).await;
    assert_eq!(status, 200, "{lead}");
    lead
}

fn identities(lead: &Value) -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = lead["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_string(),
                i["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ids.sort();
    ids
}

fn has_identity(lead: &Value, kind: &str, value: &str) -> bool {
    identities(lead).contains(&(kind.to_string(), value.to_string()))
}

async fn spellings_of_one_number_are_one_person_and_bad_numbers_are_refused(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let mut captures = Vec::new();
    for (phone, channel) in [
        ("13700137000", "web_form"),
        ("+86 137-0013-7000", "website"),
        ("0086 137 0013 7000", "api"),
        ("８６１３７００１３７０００", "seminar"),
        ("（+86）137.0013.7000", "call_center"),
    ] {
        captures.push(app.post_lead(&admin, json!({"phone": phone, "channel": channel})).await);
    }
    let first = lead_of(&app, &admin, &captures[0]).await;
    for capture in &captures[1..] {
        assert_eq!(lead_of(&app, &admin, capture).await["id"], first["id"], "{capture}");
    }
    let lead = get_lead(&app, &admin, first["id"].as_str().unwrap()).await;
    assert_eq!(lead["phone"], "+8613700137000");
    assert!(has_identity(&lead, "phone", "+8613700137000"), "{lead}");
    assert_eq!(lead["touches"].as_array().unwrap().len(), 5, "{lead}");

    // Numbers that are not valid where they are read are refused with the field named.
    for phone in ["+86 12000000000", "9123 4567", "110", "1380013800", "13800138000 转 5"] {
        let (status, problem) = app
            .post(&admin, "/v1/leads", &json!({"phone": phone, "channel": "api"}))
            .await;
        assert_eq!(status, 422, "{phone}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "phone", "{phone}: {problem}");
    }
    // A Hong Kong number with its country code is fine.
    let hk = app
        .post_lead(&admin, json!({"phone": "+852 9123 4567", "channel": "api"}))
        .await;
    assert_eq!(lead_of(&app, &admin, &hk).await["phone"], "+85291234567");

    // A company's 400 number identifies no one: two people giving it are two leads.
    let a = app
        .post_lead(
            &admin,
            json!({"name": "甲", "phone": "400-810-8888", "channel": "call_center"}),
        )
        .await;
    let b = app
        .post_lead(
            &admin,
            json!({"name": "乙", "phone": "4008108888", "channel": "call_center"}),
        )
        .await;
    let (lead_a, lead_b) = (lead_of(&app, &admin, &a).await, lead_of(&app, &admin, &b).await);
    assert_ne!(lead_a["id"], lead_b["id"]);
    assert_eq!(lead_a["phone"], "+864008108888");
    assert!(identities(&lead_a).is_empty(), "{lead_a}");
}

async fn a_capture_linking_two_leads_merges_them_and_the_merge_can_be_undone(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let wechat = app
        .post_lead(
            &admin,
            json!({"name": "张伟", "wechat": {"unionid": "union-zhang"}, "channel": "smart_card"}),
        )
        .await;
    let older = app
        .wait_for_assigned_lead(&admin, &wechat, Duration::from_secs(20))
        .await;
    let phone = app
        .post_lead(
            &admin,
            json!({"phone": "13600136000", "company": "Acme", "channel": "web_form"}),
        )
        .await;
    let newer = app
        .wait_for_assigned_lead(&admin, &phone, Duration::from_secs(20))
        .await;
    assert_ne!(older["id"], newer["id"]);
    let (older_id, newer_id) = (older["id"].as_str().unwrap(), newer["id"].as_str().unwrap());

    // One capture carries both: they are one person, and the older lead survives.
    let both = app
        .post_lead(
            &admin,
            json!({"phone": "+86 136 0013 6000", "wechat": {"unionid": "union-zhang"}, "channel": "employee_live_code"}),
        )
        .await;
    let survivor = lead_of(&app, &admin, &both).await;
    assert_eq!(survivor["id"], older_id);
    assert!(has_identity(&survivor, "unionid", "union-zhang"));
    assert!(has_identity(&survivor, "phone", "+8613600136000"));
    assert_eq!(survivor["touches"].as_array().unwrap().len(), 3, "{survivor}");
    assert_eq!(survivor["name"], "张伟");
    assert_eq!(survivor["company"], "Acme", "the gap is filled from the merged lead");
    assert!(
        survivor["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "merged"),
        "{survivor}"
    );
    let merged = get_lead(&app, &admin, newer_id).await;
    assert_eq!(merged["status"], "merged");
    assert_eq!(merged["merged_into"], older_id);
    assert!(merged["owner_id"].is_null());
    assert!(identities(&merged).is_empty());
    // Both were owned: the merged lead's offer was withdrawn, the survivor's stands.
    assert_eq!(survivor["owner_id"], older["owner_id"]);

    // Undo puts everything back where it was, and the lead that lost its offer is
    // routed again.
    let (status, undone) = app
        .post(&admin, &format!("/v1/leads/{older_id}/merge/undo"), &json!({}))
        .await;
    assert_eq!(status, 200, "{undone}");
    assert_eq!(
        (undone["survivor_id"].as_str(), undone["merged_id"].as_str()),
        (Some(older_id), Some(newer_id))
    );
    let restored = eventually(
        Duration::from_secs(20),
        "the restored lead to be routed again",
        || async {
            let lead = get_lead(&app, &admin, newer_id).await;
            (lead["status"] == "assigned").then_some(lead)
        },
    )
    .await;
    assert!(restored["merged_into"].is_null());
    assert!(has_identity(&restored, "phone", "+8613600136000"));
    assert_eq!(restored["touches"].as_array().unwrap().len(), 1);
    assert_eq!(restored["company"], "Acme");
    let survivor = get_lead(&app, &admin, older_id).await;
    assert!(!has_identity(&survivor, "phone", "+8613600136000"));
    assert!(
        survivor["company"].is_null(),
        "the filled gap is emptied again: {survivor}"
    );
    assert_eq!(survivor["touches"].as_array().unwrap().len(), 2);
    // Nothing left to undo.
    let (status, problem) = app
        .post(&admin, &format!("/v1/leads/{older_id}/merge/undo"), &json!({}))
        .await;
    assert_eq!(status, 404, "{problem}");
}

async fn leads_are_merged_by_hand_by_managers_only(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let a = app
        .post_lead(
            &admin,
            json!({"name": "Li Lei", "email": "li.lei@example.com", "channel": "web_form"}),
        )
        .await;
    let b = app
        .post_lead(
            &admin,
            json!({"name": "Lei Li", "email": "lilei@work.example", "channel": "seminar"}),
        )
        .await;
    let (a, b) = (lead_of(&app, &admin, &a).await, lead_of(&app, &admin, &b).await);
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let sdr = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let (status, _) = app
        .post(&sdr, &format!("/v1/leads/{a_id}/merge"), &json!({"other_id": b_id}))
        .await;
    assert_eq!(status, 403);
    let (status, problem) = app
        .post(&admin, &format!("/v1/leads/{a_id}/merge"), &json!({"other_id": a_id}))
        .await;
    assert_eq!(status, 422, "{problem}");
    let (status, _) = app
        .post(
            &admin,
            &format!("/v1/leads/{a_id}/merge"),
            &json!({"other_id": "no-such-lead"}),
        )
        .await;
    assert_eq!(status, 404);

    let (status, merge) = app
        .post(&admin, &format!("/v1/leads/{a_id}/merge"), &json!({"other_id": b_id}))
        .await;
    assert_eq!(status, 200, "{merge}");
    assert_eq!(merge["survivor_id"], a_id);
    let survivor = get_lead(&app, &admin, a_id).await;
    assert!(has_identity(&survivor, "email", "lilei@work.example"));
    // The next capture of the merged lead's e-mail lands on the survivor.
    let again = app
        .post_lead(&admin, json!({"email": "LILEI@work.example", "channel": "website"}))
        .await;
    let (_, capture) = eventually(Duration::from_secs(20), "the capture", || async {
        let (s, c) = app.get(&admin, &format!("/v1/captures/{again}")).await;
        c["lead_id"].is_string().then_some((s, c))
    })
    .await;
    assert_eq!(capture["lead_id"], a_id);
    // Merging a merged lead again is a conflict.
    let (status, problem) = app
        .post(&admin, &format!("/v1/leads/{a_id}/merge"), &json!({"other_id": b_id}))
        .await;
    assert_eq!(status, 409, "{problem}");
}

async fn simultaneous_captures_over_three_channels_are_one_lead(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    for round in 0..4 {
        let phone = format!("1350013{round:04}");
        let email = format!("person{round}@example.com");
        let unionid = format!("union-{round}");
        // A chain: the form gives a phone, the website phone and e-mail, the card
        // e-mail and WeChat. Sent at once, processed in any order.
        let bodies = [
            json!({"phone": phone, "channel": "web_form"}),
            json!({"phone": phone, "email": email, "channel": "website"}),
            json!({"email": email, "wechat": {"unionid": unionid}, "channel": "smart_card"}),
        ];
        let posts = bodies.iter().map(|b| app.post(&admin, "/v1/leads", b));
        let answers = futures_util::future::join_all(posts).await;
        let mut ids = Vec::new();
        for (status, answer) in answers {
            assert_eq!(status, 202, "{answer}");
            let lead = lead_of(&app, &admin, answer["capture_id"].as_str().unwrap()).await;
            ids.push(lead["id"].as_str().unwrap().to_string());
        }
        // Merges may still be settling when the first capture is read: read again.
        let settled = eventually(Duration::from_secs(20), "one lead for the person", || async {
            let mut survivors = Vec::new();
            for id in &ids {
                let mut lead = get_lead(&app, &admin, id).await;
                while let Some(s) = lead["merged_into"].as_str() {
                    lead = get_lead(&app, &admin, s).await;
                }
                survivors.push(lead);
            }
            survivors
                .windows(2)
                .all(|w| w[0]["id"] == w[1]["id"])
                .then(|| survivors.remove(0))
        })
        .await;
        let phone_e164 = format!("+86{phone}");
        assert!(has_identity(&settled, "phone", &phone_e164), "{settled}");
        assert!(has_identity(&settled, "email", &email));
        assert!(has_identity(&settled, "unionid", &unionid));
        assert_eq!(settled["touches"].as_array().unwrap().len(), 3, "{settled}");
    }
}

async fn company_name_variants_are_flagged_as_possible_duplicates(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let first = app
        .post_lead(
            &admin,
            json!({"name": "王小明", "company": "北京字节跳动科技有限公司", "phone": "13300133001", "channel": "seminar"}),
        )
        .await;
    let first = lead_of(&app, &admin, &first).await;
    let second = app
        .post_lead(
            &admin,
            json!({"name": "王晓明", "company": "字节跳动科技（北京）有限公司", "email": "wxm@example.com", "channel": "web_form"}),
        )
        .await;
    let second = lead_of(&app, &admin, &second).await;
    let colleague = app
        .post_lead(
            &admin,
            json!({"name": "李大为", "company": "字节跳动科技集团股份有限公司", "email": "ldw@example.com", "channel": "web_form"}),
        )
        .await;
    let colleague = lead_of(&app, &admin, &colleague).await;
    assert_ne!(
        first["id"], second["id"],
        "alike is not the same: no identity links them"
    );

    let flagged = &second["possible_duplicates"];
    assert_eq!(flagged.as_array().unwrap().len(), 1, "{second}");
    assert_eq!(flagged[0]["lead_id"], first["id"]);
    let reasons: Vec<&str> = flagged[0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("字节跳动科技"), "{reasons:?}");
    assert!(reasons[1].starts_with("similar names"), "{reasons:?}");
    let first = get_lead(&app, &admin, first["id"].as_str().unwrap()).await;
    assert_eq!(first["possible_duplicates"][0]["lead_id"], second["id"], "both ways");
    assert!(
        colleague["possible_duplicates"].as_array().unwrap().is_empty(),
        "{colleague}"
    );

    // One unified social credit code is one company whatever it is called; a code
    // with a wrong check character is refused.
    let (status, problem) = app
        .post(
            &admin,
            "/v1/leads",
            &json!({"name": "X", "email": "x@example.com", "uscc": "911100001011003237", "channel": "api"}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "uscc");
    let a = app
        .post_lead(
            &admin,
            json!({"name": "Chen Jing", "company": "Foo Trading", "uscc": "91350100M000100Y43", "email": "cj@foo.example", "channel": "api"}),
        )
        .await;
    let b = app
        .post_lead(
            &admin,
            json!({"name": "chen jing", "company": "福州某某贸易", "uscc": "91350100m000100y43", "email": "cj@bar.example", "channel": "api"}),
        )
        .await;
    let (a, b) = (lead_of(&app, &admin, &a).await, lead_of(&app, &admin, &b).await);
    assert_eq!(b["uscc"], "91350100M000100Y43");
    assert_eq!(b["possible_duplicates"][0]["lead_id"], a["id"], "{b}");
}

async fn the_tenants_region_reads_numbers_without_a_country_code(backend: Backend) {
    let (_env, app) = spawn_app(backend).await;
    let admin = app.admin().await;
    let (status, tenant) = app.get(&admin, "/v1/tenant").await;
    assert_eq!(status, 200, "{tenant}");
    assert_eq!(tenant["phone_region"], "CN");
    let (status, problem) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            "/v1/tenant",
            &json!({"phone_region": "XX"}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let sdr = app.login("demo", "sdr1@demo.local", PASSWORD).await;
    let (status, _) = app
        .send(
            reqwest::Method::PATCH,
            &sdr,
            "/v1/tenant",
            &json!({"phone_region": "HK"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, tenant) = app
        .send(
            reqwest::Method::PATCH,
            &admin,
            "/v1/tenant",
            &json!({"phone_region": "hk"}),
        )
        .await;
    assert_eq!(status, 200, "{tenant}");
    assert_eq!(tenant["phone_region"], "HK");

    // A Hong Kong tenant's "9123 4567" is a Hong Kong mobile; a mainland mobile needs +86.
    let hk = app
        .post_lead(&admin, json!({"phone": "9123 4567", "channel": "api"}))
        .await;
    assert_eq!(lead_of(&app, &admin, &hk).await["phone"], "+85291234567");
    let (status, problem) = app
        .post(&admin, "/v1/leads", &json!({"phone": "13800138000", "channel": "api"}))
        .await;
    assert_eq!(status, 422, "{problem}");
    let cn = app
        .post_lead(&admin, json!({"phone": "+86 138 0013 8000", "channel": "api"}))
        .await;
    assert_eq!(lead_of(&app, &admin, &cn).await["phone"], "+8613800138000");
}
