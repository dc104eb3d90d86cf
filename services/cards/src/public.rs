//! The public side of a card: the page, "save contact" and share links. Nothing
//! here is authenticated; the slug (unguessable) names the card and its tenant.

use std::time::Duration;

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use huoke_shared::http::parse_json;
use huoke_shared::ratelimit::{self, Limit};
use huoke_shared::visitor::{self, client_ip};
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::json;

use crate::model::{Card, card_url, looks_like_code, looks_like_id, share_url};
use crate::page::{self, CardPage};
use crate::repo::{self, EventKind};
use crate::vcard::{self, VCard};

/// Share links minted per client address and minute.
pub const SHARE_RATE_SCOPE: &str = "card-share";
pub const SHARE_LIMIT: Limit = Limit {
    requests: 30,
    per: Duration::from_secs(60),
};
/// The share call carries at most a parent token.
pub const SHARE_BODY_MAX: usize = 4 * 1024;

/// The card a public request names, or none (also for malformed slugs, which
/// never reach the database).
pub async fn find_card(infra: &Infra, slug: &str) -> sqlx::Result<Option<Card>> {
    if !looks_like_id(slug) {
        return Ok(None);
    }
    repo::by_slug(infra, slug).await
}

/// An HTML answer with the headers every public page carries.
pub fn html_response(status: StatusCode, body: String, cookie: Option<Cookie<'static>>) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header(("Content-Security-Policy", page::content_security_policy()))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "strict-origin-when-cross-origin"));
    if let Some(cookie) = cookie {
        response.cookie(cookie);
    }
    response.body(body)
}

pub fn not_found() -> HttpResponse {
    html_response(StatusCode::NOT_FOUND, page::not_found_page(), None)
}

#[derive(Deserialize, Default)]
struct PageQuery {
    s: Option<String>,
    via: Option<String>,
}

/// Views and saves recorded per client address, card and minute. The page is always
/// served; past this a flood from one address stops writing rows.
pub const RECORDED_PER_ADDRESS: Limit = Limit {
    requests: 60,
    per: Duration::from_secs(60),
};

async fn worth_recording(infra: &Infra, req: &HttpRequest, card: &Card) -> bool {
    let key = format!("{}:{}", card.id, client_ip(req));
    ratelimit::check(&*infra.cache, "card-events", &key, RECORDED_PER_ADDRESS)
        .await
        .is_ok()
}

/// `GET /c/{slug}`: the card page; records a view.
pub async fn page(infra: web::Data<Infra>, req: HttpRequest, slug: web::Path<String>) -> ApiResult<HttpResponse> {
    let Some(card) = find_card(&infra, &slug).await? else {
        return Ok(not_found());
    };
    // A malformed query string is a visitor's typo, not a reason to refuse the page.
    let query = web::Query::<PageQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let share = repo::checked_share(&infra, &card, query.s.as_deref()).await?;
    let via = query.via.as_deref().map(str::trim).filter(|v| looks_like_code(v));
    let live_code = match card.fields.live_code_id.as_deref() {
        Some(id) => repo::live_code_public(&infra, &card.tenant_id, id).await?,
        None => None,
    };
    let visitor = visitor::identify(&req, &card.tenant_id);
    if worth_recording(&infra, &req, &card).await {
        repo::record_event_quietly(&infra, &card, EventKind::View, &visitor.hash, share.as_deref()).await;
    }
    let page_url = card_url(&infra.settings.public_base(), &card.slug);
    let html = page::card_page(&CardPage {
        card: &card,
        page_url: &page_url,
        live_code: live_code.as_deref(),
        share_token: share.as_deref(),
        via,
    });
    Ok(html_response(StatusCode::OK, html, visitor.new_cookie))
}

#[derive(Deserialize, Default)]
struct VcardQuery {
    s: Option<String>,
}

/// `GET /c/{slug}/vcard`: "save contact"; records a save.
pub async fn vcard(infra: web::Data<Infra>, req: HttpRequest, slug: web::Path<String>) -> ApiResult<HttpResponse> {
    let Some(card) = find_card(&infra, &slug).await? else {
        return Ok(not_found());
    };
    let query = web::Query::<VcardQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let share = repo::checked_share(&infra, &card, query.s.as_deref()).await?;
    let visitor = visitor::identify(&req, &card.tenant_id);
    if worth_recording(&infra, &req, &card).await {
        repo::record_event_quietly(&infra, &card, EventKind::Vcard, &visitor.hash, share.as_deref()).await;
    }
    let f = &card.fields;
    let url = card_url(&infra.settings.public_base(), &card.slug);
    let body = vcard::render(&VCard {
        name: &f.display_name,
        org: f.company.as_deref(),
        title: f.title.as_deref(),
        tel: f.phone.as_deref().filter(|_| f.show_phone),
        email: f.email.as_deref(),
        url: &url,
        note: f.bio.as_deref(),
        photo: f.avatar_url.as_deref(),
    });
    let mut response = HttpResponse::Ok();
    response
        .insert_header((CONTENT_TYPE, vcard::CONTENT_TYPE))
        .insert_header(("Content-Disposition", vcard::CONTENT_DISPOSITION))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if let Some(cookie) = visitor.new_cookie {
        response.cookie(cookie);
    }
    Ok(response.body(body))
}

#[derive(Deserialize, Default)]
struct ShareBody {
    parent: Option<String>,
}

/// The optional `parent` of a share call: JSON, a form, or no body at all.
fn parent_of(req: &HttpRequest, body: &[u8]) -> ApiResult<Option<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let media = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let parsed: ShareBody = if media == "application/json" || media.ends_with("+json") {
        parse_json(body)?
    } else if media == "application/x-www-form-urlencoded" {
        let text = std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("the form is not UTF-8".into()))?;
        web::Query::<ShareBody>::from_query(text)
            .map_err(|e| ApiError::BadRequest(format!("malformed form: {e}")))?
            .into_inner()
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "send application/json or application/x-www-form-urlencoded".into(),
        ));
    };
    Ok(parsed.parent)
}

/// `POST /c/{slug}/share`: a visitor shares the card; the new token remembers the
/// share they arrived through.
pub async fn share(
    infra: web::Data<Infra>,
    req: HttpRequest,
    slug: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let card = find_card(&infra, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found("card"))?;
    ratelimit::check(&*infra.cache, SHARE_RATE_SCOPE, &client_ip(&req), SHARE_LIMIT).await?;
    let parent = parent_of(&req, &body)?;
    let parent = repo::checked_share(&infra, &card, parent.as_deref()).await?;
    let visitor = visitor::identify(&req, &card.tenant_id);
    let token = repo::add_share(&infra, &card, &visitor.hash, parent.as_deref()).await?;
    let url = share_url(&infra.settings.public_base(), &card.slug, &token);
    let mut response = HttpResponse::Created();
    response.insert_header((CACHE_CONTROL, "no-store"));
    if let Some(cookie) = visitor.new_cookie {
        response.cookie(cookie);
    }
    Ok(response.json(json!({"token": token, "url": url})))
}
