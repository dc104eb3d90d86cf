//! The public side of a hosted form: `GET /f/{id}` (the page), `POST /f/{id}`
//! (the page's own post, form-encoded), and `POST /f/{id}/submit` (JSON, for a
//! company site, with CORS for the form's allowed origins). Everything rendered is
//! escaped; a filled honeypot (`website`) gets the thank-you answer and stores
//! nothing; posts are limited per client address and per form.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use huoke_shared::capture::{Submission, accept};
use huoke_shared::error::FieldError;
use huoke_shared::html::escape;
use huoke_shared::ratelimit::{self, Limit};
use huoke_shared::visitor::client_ip;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde_json::{Value, json};

use super::model::{self, FormConfig, Values};
use super::{Form, find};

const PER_ADDRESS: Limit = Limit {
    requests: 10,
    per: Duration::from_secs(60),
};
const PER_FORM: Limit = Limit {
    requests: 600,
    per: Duration::from_secs(60),
};
const HONEYPOT: &str = "website";

fn label(field: &str) -> &'static str {
    match field {
        "name" => "姓名 Name",
        "phone" => "手机 Phone",
        "email" => "邮箱 E-mail",
        "company" => "公司 Company",
        "title" => "职位 Title",
        _ => "留言 Message",
    }
}

fn page(form: &Form, values: &Values, errors: &[FieldError]) -> String {
    let c = &form.config;
    let mut html = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title></head><body><main><h1>{title}</h1>",
        title = escape(&c.name)
    );
    if !errors.is_empty() {
        html.push_str("<ul class=\"errors\" role=\"alert\">");
        for e in errors {
            html.push_str(&format!("<li>{}: {}</li>", escape(&e.field), escape(&e.message)));
        }
        html.push_str("</ul>");
    }
    html.push_str(&format!("<form method=\"post\" action=\"/f/{}\">", escape(&form.id)));
    for field in &c.fields {
        let value = escape(values.get(field).map_or("", String::as_str));
        let required = if c.required.contains(field) { " required" } else { "" };
        let name = escape(field);
        if field == "message" {
            html.push_str(&format!(
                "<label>{}<textarea name=\"{name}\"{required}>{value}</textarea></label>",
                label(field)
            ));
        } else {
            html.push_str(&format!(
                "<label>{}<input name=\"{name}\" value=\"{value}\"{required}></label>",
                label(field)
            ));
        }
    }
    // Hidden from people, filled by bots.
    html.push_str(&format!(
        "<div style=\"position:absolute;left:-9999px\" aria-hidden=\"true\"><input name=\"{HONEYPOT}\" tabindex=\"-1\" autocomplete=\"off\"></div>"
    ));
    if let Some(consent) = &c.consent_text {
        html.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"consent\" value=\"yes\" required> {}</label>",
            escape(consent)
        ));
    }
    html.push_str("<button type=\"submit\">提交 Submit</button></form></main></body></html>");
    html
}

fn thanks(config: &FormConfig) -> String {
    let text = config
        .thank_you
        .as_deref()
        .unwrap_or("谢谢！我们会尽快联系您。Thank you — we will be in touch soon.");
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title></head><body><main><p>{t}</p></main></body></html>",
        t = escape(text)
    )
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ))
        .body(body)
}

async fn live_form(infra: &Infra, id: &str) -> ApiResult<Option<Form>> {
    Ok(find(infra, id, None).await?.filter(|f| f.config.active))
}

pub async fn show(infra: web::Data<Infra>, id: web::Path<String>) -> ApiResult<HttpResponse> {
    match live_form(&infra, &id).await? {
        Some(form) => Ok(html(StatusCode::OK, page(&form, &Values::new(), &[]))),
        None => Err(ApiError::not_found("form")),
    }
}

/// What happened to a submission.
enum Outcome {
    Stored(String),
    Bot,
    Invalid(Vec<FieldError>),
}

async fn submit(infra: &Infra, req: &HttpRequest, form: &Form, values: &Values) -> ApiResult<Outcome> {
    ratelimit::check(
        &*infra.cache,
        "form-address",
        &format!("{}:{}", form.id, client_ip(req)),
        PER_ADDRESS,
    )
    .await?;
    ratelimit::check(&*infra.cache, "form", &form.id, PER_FORM).await?;
    if values.get(HONEYPOT).is_some_and(|v| !v.trim().is_empty()) {
        tracing::info!(form = %form.id, "form honeypot filled; dropped");
        return Ok(Outcome::Bot);
    }
    let consented = values
        .get("consent")
        .is_some_and(|v| matches!(v.as_str(), "yes" | "on" | "true" | "1"));
    let input = match model::capture(&form.id, &form.config, values, consented) {
        Ok(input) => input,
        Err(errors) => return Ok(Outcome::Invalid(errors)),
    };
    let actor = format!("form:{}", form.id);
    let who = Submission {
        tenant_id: &form.tenant_id,
        created_by: &actor,
        idempotency_key: None,
        visitor: None,
    };
    match accept(infra, who, &input).await {
        Ok(id) => Ok(Outcome::Stored(id)),
        Err(ApiError::Validation(errors)) => Ok(Outcome::Invalid(errors)),
        Err(other) => Err(other),
    }
}

/// `POST /f/{id}`: the page's own form.
pub async fn post_page(
    infra: web::Data<Infra>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Form<BTreeMap<String, String>>,
) -> ApiResult<HttpResponse> {
    let form = live_form(&infra, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("form"))?;
    let values = body.into_inner();
    Ok(match submit(&infra, &req, &form, &values).await? {
        Outcome::Stored(_) | Outcome::Bot => html(StatusCode::OK, thanks(&form.config)),
        Outcome::Invalid(errors) => html(StatusCode::UNPROCESSABLE_ENTITY, page(&form, &values, &errors)),
    })
}

fn with_cors(mut response: HttpResponse, origin: Option<&str>) -> HttpResponse {
    if let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// The request's `Origin` when the form allows it; a browser request from any
/// other origin is refused. Requests without `Origin` (servers) pass.
fn allowed_origin(req: &HttpRequest, form: &Form) -> ApiResult<Option<String>> {
    match req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => Ok(None),
        Some(origin) if form.config.allows_origin(origin) => Ok(Some(origin.to_string())),
        Some(_) => Err(ApiError::Forbidden("this site may not post this form".into())),
    }
}

/// `OPTIONS /f/{id}/submit`: the CORS preflight.
pub async fn preflight(infra: web::Data<Infra>, req: HttpRequest, id: web::Path<String>) -> ApiResult<HttpResponse> {
    let form = live_form(&infra, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("form"))?;
    let origin = allowed_origin(&req, &form)?;
    let response = HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .finish();
    Ok(with_cors(response, origin.as_deref()))
}

/// `POST /f/{id}/submit`: JSON `{field: value, …, consent?}`.
pub async fn post_json(
    infra: web::Data<Infra>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<BTreeMap<String, Value>>,
) -> ApiResult<HttpResponse> {
    let form = live_form(&infra, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("form"))?;
    let origin = allowed_origin(&req, &form)?;
    let values: Values = body
        .into_inner()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Bool(b) => Some((k, if b { "yes".into() } else { String::new() })),
            Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect();
    let response = match submit(&infra, &req, &form, &values).await {
        Ok(Outcome::Stored(capture_id)) => {
            HttpResponse::Accepted().json(json!({"capture_id": capture_id, "message": form.config.thank_you}))
        }
        // The same answer a person gets, with an id that leads nowhere.
        Ok(Outcome::Bot) => HttpResponse::Accepted()
            .json(json!({"capture_id": huoke_shared::clock::new_id(), "message": form.config.thank_you})),
        // Problems are answered with the CORS headers too, so the site's page can show
        // them (a 422 naming the fields, a 429).
        Ok(Outcome::Invalid(errors)) => ApiError::Validation(errors).error_response(),
        Err(err) => err.error_response(),
    };
    Ok(with_cors(response, origin.as_deref()))
}
