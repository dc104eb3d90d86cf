//! `POST /c/{slug}/leads`: the card's lead form. For humans, so every answer is a
//! page: thanks (200), what to correct (422), slow down (429). A capture is made
//! through `capture::accept` with the card's owner as the routing hint.

use std::time::Duration;

use actix_web::error::{InternalError, UrlencodedError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use huoke_shared::capture::{self, CaptureInput, Submission};
use huoke_shared::clock::new_id;
use huoke_shared::error::FieldError;
use huoke_shared::ratelimit::{self, Limit};
use huoke_shared::visitor::{self, client_ip};
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::model::{Card, looks_like_code};
use crate::page::{self, FormValues};
use crate::public::{find_card, html_response, not_found};
use crate::repo::{self, EventKind};

/// Form posts per client address and minute.
pub const FORM_RATE_SCOPE: &str = "card-form";
pub const FORM_LIMIT: Limit = Limit {
    requests: 10,
    per: Duration::from_secs(60),
};
pub const FORM_MAX_BYTES: usize = 16 * 1024;
pub const MAX_MESSAGE: usize = 1000;
pub const CHANNEL: &str = "smart_card";

#[derive(Debug, Default, Deserialize)]
pub struct LeadForm {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub message: Option<String>,
    pub consent: Option<String>,
    /// The honeypot: hidden from humans.
    pub website: Option<String>,
    /// The share token the visitor arrived through.
    pub s: Option<String>,
    /// The live code the visitor came through.
    pub via: Option<String>,
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A checked checkbox: browsers send `on`; scripts may send `true`.
pub fn is_checked(value: Option<&str>) -> bool {
    matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("on" | "true" | "1" | "yes")
    )
}

/// Whether a bot filled in the field humans never see.
pub fn is_bot(form: &LeadForm) -> bool {
    present(&form.website).is_some()
}

/// The capture a form post asks for. `share` and `via` are already checked
/// against the card's tenant.
pub fn capture_input(
    card: &Card,
    form: &LeadForm,
    share: Option<&str>,
    via: Option<&str>,
) -> Result<CaptureInput, Vec<FieldError>> {
    let mut errors = Vec::new();
    if present(&form.phone).is_none() {
        errors.push(FieldError::new("phone", "请填写手机号"));
    }
    let message = present(&form.message);
    if message.is_some_and(|m| m.chars().count() > MAX_MESSAGE) {
        errors.push(FieldError::new("message", format!("最多 {MAX_MESSAGE} 字")));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut attributes = Map::new();
    attributes.insert("card".into(), Value::from(card.slug.as_str()));
    if let Some(m) = message {
        attributes.insert("message".into(), Value::from(m));
    }
    if let Some(token) = share {
        attributes.insert("share_token".into(), Value::from(token));
    }
    Ok(CaptureInput {
        name: present(&form.name).map(str::to_string),
        phone: present(&form.phone).map(str::to_string),
        company: present(&form.company).map(str::to_string),
        channel: Some(CHANNEL.into()),
        owner_hint: Some(card.staff_id.clone()),
        consent: Some(is_checked(form.consent.as_deref())),
        live_code: via.map(str::to_string),
        attributes: Some(attributes),
        ..Default::default()
    })
}

/// Field errors as a visitor reads them.
fn readable(errors: Vec<FieldError>) -> Vec<(String, String)> {
    errors
        .into_iter()
        .map(|e| {
            let message = if e.field == "phone" && !e.message.contains('手') {
                format!("请填写正确的手机号（{}）", e.message)
            } else {
                e.message
            };
            (e.field, message)
        })
        .collect()
}

pub async fn submit(
    infra: web::Data<Infra>,
    req: HttpRequest,
    slug: web::Path<String>,
    form: web::Form<LeadForm>,
) -> ApiResult<HttpResponse> {
    let Some(card) = find_card(&infra, &slug).await? else {
        return Ok(not_found());
    };
    if let Err(ApiError::TooManyRequests) =
        ratelimit::check(&*infra.cache, FORM_RATE_SCOPE, &client_ip(&req), FORM_LIMIT).await
    {
        let mut response = html_response(StatusCode::TOO_MANY_REQUESTS, page::rate_limited_page(), None);
        response
            .headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, FORM_LIMIT.per.as_secs().into());
        return Ok(response);
    }
    let form = form.into_inner();
    if is_bot(&form) {
        // The same answer a person gets, so the bot learns nothing; nothing is stored.
        tracing::info!(card = %card.id, "card form honeypot filled; dropped");
        return Ok(html_response(StatusCode::OK, page::thanks_page(&card, &new_id()), None));
    }
    let share = repo::checked_share(&infra, &card, form.s.as_deref()).await?;
    let via = match present(&form.via).filter(|v| looks_like_code(v)) {
        Some(code) if repo::live_code_by_code(&infra, &card.tenant_id, code).await? => Some(code),
        _ => None,
    };
    let values = FormValues {
        name: form.name.as_deref().unwrap_or(""),
        phone: form.phone.as_deref().unwrap_or(""),
        company: form.company.as_deref().unwrap_or(""),
        message: form.message.as_deref().unwrap_or(""),
        consent: is_checked(form.consent.as_deref()),
    };
    let invalid = |errors: Vec<FieldError>| {
        let html = page::form_errors_page(&card, &readable(errors), &values, share.as_deref(), via);
        html_response(StatusCode::UNPROCESSABLE_ENTITY, html, None)
    };
    let input = match capture_input(&card, &form, share.as_deref(), via) {
        Ok(input) => input,
        Err(errors) => return Ok(invalid(errors)),
    };
    let created_by = format!("card:{}", card.slug);
    let visitor = visitor::identify(&req, &card.tenant_id);
    let who = Submission {
        tenant_id: &card.tenant_id,
        created_by: &created_by,
        idempotency_key: None,
        visitor: Some(&visitor.hash),
    };
    let capture_id = match capture::accept(&infra, who, &input).await {
        Ok(id) => id,
        Err(ApiError::Validation(errors)) => return Ok(invalid(errors)),
        Err(other) => return Err(other),
    };
    repo::record_event_quietly(&infra, &card, EventKind::Lead, &visitor.hash, share.as_deref()).await;
    tracing::info!(card = %card.id, capture = %capture_id, "card form captured");
    Ok(html_response(
        StatusCode::OK,
        page::thanks_page(&card, &capture_id),
        visitor.new_cookie,
    ))
}

/// Form bodies that cannot be read get a page too (413, 415 or 400), not actix's
/// plain text.
pub fn form_error(err: UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    let status = err.status_code();
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "提交的内容太长。",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "请通过名片页面上的表单提交。",
        _ => "提交的表单格式有误，请返回名片页面重新填写。",
    };
    let response = html_response(status, page::bad_form_page(detail), None);
    InternalError::from_response(err, response).into()
}

pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(FORM_MAX_BYTES)
        .error_handler(form_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CardFields;

    fn card() -> Card {
        Card {
            id: "c1".into(),
            tenant_id: "t1".into(),
            staff_id: "sdr2".into(),
            slug: "AbCdEfGhIj".into(),
            fields: CardFields {
                display_name: "Li".into(),
                title: None,
                company: None,
                avatar_url: None,
                phone: None,
                show_phone: false,
                email: None,
                live_code_id: None,
                bio: None,
                company_intro: None,
                links: vec![],
                theme: "classic".into(),
            },
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_post_becomes_a_smart_card_capture_for_the_owner() {
        let form = LeadForm {
            name: Some(" 张三 ".into()),
            phone: Some("13800138000".into()),
            company: Some("".into()),
            message: Some("想了解报价".into()),
            consent: Some("on".into()),
            ..Default::default()
        };
        let input = capture_input(&card(), &form, Some("Tok123456789abcd"), Some("code1")).unwrap();
        assert_eq!(input.channel.as_deref(), Some("smart_card"));
        assert_eq!(input.owner_hint.as_deref(), Some("sdr2"));
        assert_eq!(input.name.as_deref(), Some("张三"));
        assert_eq!(input.company, None);
        assert_eq!(input.consent, Some(true));
        assert_eq!(input.live_code.as_deref(), Some("code1"));
        let attrs = input.attributes.unwrap();
        assert_eq!(attrs["card"], "AbCdEfGhIj");
        assert_eq!(attrs["message"], "想了解报价");
        assert_eq!(attrs["share_token"], "Tok123456789abcd");
        // It passes the shared capture checks.
        let input = capture_input(&card(), &form, None, None).unwrap();
        assert!(capture::validate(&input, "c", 0).is_ok());
    }

    #[test]
    fn a_phone_is_required_and_messages_are_bounded() {
        let errs = capture_input(&card(), &LeadForm::default(), None, None).unwrap_err();
        assert_eq!(errs[0].field, "phone");
        let long = LeadForm {
            phone: Some("13800138000".into()),
            message: Some("字".repeat(MAX_MESSAGE + 1)),
            ..Default::default()
        };
        assert_eq!(
            capture_input(&card(), &long, None, None).unwrap_err()[0].field,
            "message"
        );
    }

    #[test]
    fn checkboxes_and_honeypots() {
        assert!(is_checked(Some("on")));
        assert!(is_checked(Some("TRUE")));
        assert!(!is_checked(Some("off")));
        assert!(!is_checked(None));
        let consent_missing = capture_input(
            &card(),
            &LeadForm {
                phone: Some("13800138000".into()),
                ..Default::default()
            },
            None,
            None,
        )
        .unwrap();
        assert_eq!(consent_missing.consent, Some(false));
        assert!(is_bot(&LeadForm {
            website: Some("http://spam.example".into()),
            ..Default::default()
        }));
        assert!(!is_bot(&LeadForm {
            website: Some("  ".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn phone_errors_read_well() {
        let r = readable(vec![
            FieldError::new("phone", "not a valid mobile number"),
            FieldError::new("phone", "请填写手机号"),
        ]);
        assert!(r[0].1.starts_with("请填写正确的手机号"));
        assert_eq!(r[1].1, "请填写手机号");
    }
}
