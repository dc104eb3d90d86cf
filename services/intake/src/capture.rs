//! Parsing a capture: everything a client may send, checked at once so the client
//! gets every problem in one answer.

use huoke_shared::channels;
use huoke_shared::contact::{Email, Phone};
use huoke_shared::error::FieldError;
use huoke_shared::messages::{CaptureReceived, WechatIds};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct CaptureInput {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub wechat: Option<WechatIds>,
    pub channel: Option<String>,
    pub campaign_id: Option<String>,
    pub owner_hint: Option<String>,
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
    pub consent: Option<bool>,
}

const MAX_TEXT: usize = 200;
const MAX_ATTRIBUTES_BYTES: usize = 8 * 1024;

fn text(field: &str, value: &Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let v = value
        .as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())?;
    if v.chars().count() > MAX_TEXT {
        errors.push(FieldError::new(
            field,
            format!("at most {MAX_TEXT} characters"),
        ));
        return None;
    }
    if v.chars().any(|c| c.is_control()) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
        return None;
    }
    Some(v)
}

/// Checks and normalises a capture. `capture_id` and `received_at_ms` are the
/// server's; everything else comes from the client.
pub fn validate(
    input: &CaptureInput,
    capture_id: &str,
    received_at_ms: i64,
) -> Result<CaptureReceived, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = text("name", &input.name, &mut errors);
    let company = text("company", &input.company, &mut errors);
    let title = text("title", &input.title, &mut errors);
    let campaign_id = text("campaign_id", &input.campaign_id, &mut errors);
    let owner_hint = text("owner_hint", &input.owner_hint, &mut errors);

    let phone = match input
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(raw) => match Phone::parse(raw) {
            Ok(p) => Some(p.as_str().to_string()),
            Err(msg) => {
                errors.push(FieldError::new("phone", msg));
                None
            }
        },
        None => None,
    };
    let email = match input
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(raw) => match Email::parse(raw) {
            Ok(e) => Some(e.as_str().to_string()),
            Err(msg) => {
                errors.push(FieldError::new("email", msg));
                None
            }
        },
        None => None,
    };
    let mut wechat = WechatIds::default();
    if let Some(w) = &input.wechat {
        wechat.unionid = text("wechat.unionid", &w.unionid, &mut errors);
        wechat.openid = text("wechat.openid", &w.openid, &mut errors);
        wechat.external_userid = text("wechat.external_userid", &w.external_userid, &mut errors);
    }
    let has_contact = phone.is_some() || email.is_some() || !wechat.is_empty();
    let contact_given = input.phone.as_deref().is_some_and(|p| !p.trim().is_empty())
        || input.email.as_deref().is_some_and(|e| !e.trim().is_empty());
    if !has_contact && !contact_given {
        errors.push(FieldError::new(
            "phone",
            "give at least one of phone, email or a WeChat id",
        ));
    }

    let channel = match input.channel.as_deref().map(str::trim) {
        None | Some("") => {
            errors.push(FieldError::new("channel", "required"));
            String::new()
        }
        Some(c) if channels::is_known(c) => c.to_string(),
        Some(c) => {
            errors.push(FieldError::new(
                "channel",
                format!(
                    "unknown channel `{}`",
                    c.chars().take(40).collect::<String>()
                ),
            ));
            String::new()
        }
    };
    let attributes = input.attributes.clone().unwrap_or_default();
    if serde_json::to_vec(&attributes)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > MAX_ATTRIBUTES_BYTES
    {
        errors.push(FieldError::new(
            "attributes",
            format!("at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CaptureReceived {
        capture_id: capture_id.to_string(),
        channel,
        campaign_id,
        owner_hint,
        name,
        phone,
        email,
        company,
        title,
        wechat,
        attributes,
        consent: input.consent,
        received_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(phone: &str, channel: &str) -> CaptureInput {
        CaptureInput {
            phone: Some(phone.into()),
            channel: Some(channel.into()),
            ..Default::default()
        }
    }

    #[test]
    fn phones_are_normalised() {
        let c = validate(&input("+86 138-0013-8000", "api"), "c1", 0).unwrap();
        assert_eq!(c.phone.as_deref(), Some("+8613800138000"));
    }

    #[test]
    fn a_contact_is_required() {
        let errs = validate(
            &CaptureInput {
                name: Some("Li".into()),
                channel: Some("api".into()),
                ..Default::default()
            },
            "c",
            0,
        )
        .unwrap_err();
        assert!(errs.iter().any(|e| e.message.contains("at least one")));
        let ok = CaptureInput {
            wechat: Some(WechatIds {
                unionid: Some("u1".into()),
                ..Default::default()
            }),
            channel: Some("wecom".into()),
            ..Default::default()
        };
        assert!(validate(&ok, "c", 0).is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = CaptureInput {
            phone: Some("12".into()),
            email: Some("nope".into()),
            channel: Some("carrier_pigeon".into()),
            name: Some("x".repeat(300)),
            ..Default::default()
        };
        let fields: Vec<_> = validate(&bad, "c", 0)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        for f in ["phone", "email", "channel", "name"] {
            assert!(fields.iter().any(|x| x == f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn channel_is_required() {
        let errs = validate(
            &CaptureInput {
                phone: Some("13800138000".into()),
                ..Default::default()
            },
            "c",
            0,
        )
        .unwrap_err();
        assert_eq!(errs[0].field, "channel");
    }
}
