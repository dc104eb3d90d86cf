//! A webhook source's field mapping: JSON pointers into the provider's payload →
//! lead fields, so an ad platform's lead form or a call centre maps without code.
//! Pure: validation and applying a mapping.
//!
//! ```json
//! {"/lead/full_name": "name", "/lead/phone_number": "phone", "/lead/city": "attributes.city"}
//! ```

use std::collections::BTreeMap;

use huoke_shared::capture::CaptureInput;
use huoke_shared::error::FieldError;
use huoke_shared::messages::WechatIds;
use serde_json::{Map, Value};

const FIELDS: &[&str] = &[
    "name",
    "phone",
    "email",
    "company",
    "title",
    "owner_hint",
    "consent",
    "wechat.unionid",
    "wechat.openid",
    "wechat.external_userid",
    "wechat.appid",
    "wechat.corpid",
    "uscc",
];

pub fn check(mapping: &BTreeMap<String, String>, event_id_pointer: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if mapping.is_empty() || mapping.len() > 50 {
        errors.push(FieldError::new("mapping", "1 to 50 JSON pointers → lead fields"));
    }
    for (pointer, field) in mapping {
        if !pointer.starts_with('/') || pointer.len() > 200 {
            errors.push(FieldError::new(
                format!("mapping.{pointer}"),
                "a JSON pointer such as /lead/phone",
            ));
        }
        let attribute = field.strip_prefix("attributes.").is_some_and(|k| {
            !k.is_empty() && k.len() <= 64 && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !FIELDS.contains(&field.as_str()) && !attribute {
            errors.push(FieldError::new(
                format!("mapping.{pointer}"),
                format!("a lead field ({}) or attributes.<name>", FIELDS.join(", ")),
            ));
        }
    }
    if !event_id_pointer.starts_with('/') {
        errors.push(FieldError::new("event_id_pointer", "a JSON pointer such as /id"));
    }
    errors
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The provider's event id at `pointer`, as text.
pub fn event_id(payload: &Value, pointer: &str) -> Option<String> {
    payload
        .pointer(pointer)
        .and_then(as_text)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= 200)
}

/// The capture a payload makes under `mapping`; pointers that find nothing are skipped.
pub fn apply(
    payload: &Value,
    mapping: &BTreeMap<String, String>,
    channel: &str,
    campaign_id: Option<&str>,
) -> CaptureInput {
    let mut input = CaptureInput {
        channel: Some(channel.to_string()),
        campaign_id: campaign_id.map(str::to_string),
        ..CaptureInput::default()
    };
    let mut wechat = WechatIds::default();
    let mut attributes = Map::new();
    for (pointer, field) in mapping {
        let Some(value) = payload.pointer(pointer).filter(|v| !v.is_null()) else {
            continue;
        };
        match field.as_str() {
            "consent" => input.consent = value.as_bool(),
            "wechat.unionid" => wechat.unionid = as_text(value),
            "wechat.openid" => wechat.openid = as_text(value),
            "wechat.external_userid" => wechat.external_userid = as_text(value),
            "wechat.appid" => wechat.appid = as_text(value),
            "wechat.corpid" => wechat.corpid = as_text(value),
            "uscc" => input.uscc = as_text(value),
            "name" => input.name = as_text(value),
            "phone" => input.phone = as_text(value),
            "email" => input.email = as_text(value),
            "company" => input.company = as_text(value),
            "title" => input.title = as_text(value),
            "owner_hint" => input.owner_hint = as_text(value),
            other => {
                if let Some(key) = other.strip_prefix("attributes.") {
                    attributes.insert(key.to_string(), value.clone());
                }
            }
        }
    }
    input.with_extras(wechat, attributes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(p, f)| ((*p).to_string(), (*f).to_string()))
            .collect()
    }

    #[test]
    fn pointers_fill_lead_fields_and_attributes() {
        let payload = json!({"id": 42, "lead": {"full_name": "王小明", "phone_number": "13800138000", "city": "苏州", "opt_in": true}, "ad": {"id": "a1"}});
        let m = mapping(&[
            ("/lead/full_name", "name"),
            ("/lead/phone_number", "phone"),
            ("/lead/city", "attributes.city"),
            ("/lead/opt_in", "consent"),
            ("/ad/id", "attributes.ad_id"),
            ("/lead/missing", "email"),
        ]);
        let input = apply(&payload, &m, "ads", Some("c1"));
        assert_eq!(input.name.as_deref(), Some("王小明"));
        assert_eq!(input.phone.as_deref(), Some("13800138000"));
        assert_eq!(input.email, None);
        assert_eq!(input.consent, Some(true));
        assert_eq!(input.channel.as_deref(), Some("ads"));
        assert_eq!(input.campaign_id.as_deref(), Some("c1"));
        let attributes = input.attributes.unwrap();
        assert_eq!(attributes["city"], "苏州");
        assert_eq!(attributes["ad_id"], "a1");
        assert_eq!(event_id(&payload, "/id").as_deref(), Some("42"));
        assert_eq!(event_id(&payload, "/nope"), None);
    }

    #[test]
    fn bad_mappings_are_explained() {
        let m = mapping(&[("lead/phone", "phone"), ("/x", "salary"), ("/y", "attributes.")]);
        let fields: Vec<String> = check(&m, "id").into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["mapping./x", "mapping./y", "mapping.lead/phone", "event_id_pointer"]
        );
    }

    proptest::proptest! {
        #[test]
        fn no_payload_or_mapping_makes_apply_panic(payload in ".{0,200}", pointer in "(/[a-z0-9~]{0,6}){0,4}", field in "[a-z_.]{0,20}") {
            let value = serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload.clone()));
            let m = mapping(&[(pointer.as_str(), field.as_str())]);
            let _ = check(&m, &pointer);
            let _ = apply(&value, &m, "ads", None);
            let _ = event_id(&value, &pointer);
        }
    }
}
