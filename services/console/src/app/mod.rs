//! The web console under `/app`: server-rendered pages (askama templates compiled
//! into the binary, every value escaped), in Chinese and English, for marketers,
//! SDRs, managers and admins. Pages read and change things through the HTTP API as
//! the signed-in person ([`api`]); a little JavaScript adds the inbox's live updates
//! and SLA countdowns. Every answer carries a strict Content-Security-Policy: scripts
//! and styles only from `/app/assets`, no inline code, no framing.

mod api;
mod codes;
mod form_data;
mod funnel;
mod i18n;
mod pages;
mod sections;
pub(crate) mod session;
mod tables;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use huoke_shared::Infra;
use huoke_shared::auth::Role;
use huoke_shared::http::ApiBase;
use serde::Deserialize;

pub use i18n::Lang;
use session::Session;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/app", web::get().to(home))
        .route("/app/login", web::get().to(login_page))
        .route("/app/login", web::post().to(login))
        .route("/app/logout", web::post().to(logout))
        .route("/app/lang/{lang}", web::get().to(switch_language))
        .route("/app/assets/{file}", web::get().to(asset))
        // Browsers ask every page's host for one; "nothing" rather than a 404.
        .route(
            "/favicon.ico",
            web::get().to(|| async {
                HttpResponse::NoContent()
                    .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
                    .finish()
            }),
        )
        .route("/app/inbox", web::get().to(pages::inbox))
        .route("/app/assignments/{id}/{action}", web::post().to(pages::answer_offer))
        .route("/app/leads/{id}", web::get().to(pages::lead))
        .route("/app/leads/{id}/activities", web::post().to(pages::add_activity))
        .route("/app/leads/{id}/status", web::post().to(pages::change_status))
        .route("/app/leads/{id}/release", web::post().to(pages::release))
        .route("/app/pool", web::get().to(pages::pool))
        .route("/app/pool/{id}/claim", web::post().to(pages::claim))
        .route("/app/codes", web::get().to(codes::list))
        .route("/app/codes", web::post().to(codes::create))
        .route("/app/codes/{id}/switch", web::post().to(codes::switch))
        .route("/app/reports/funnel", web::get().to(funnel::show))
        .route("/app/{page:.*}/create/{n}", web::post().to(tables::create))
        .route("/app/{page:.*}/rows/{n}/{action}/{id}", web::post().to(tables::act))
        .route("/app/{page:.*}/document", web::post().to(tables::save_document))
        .route("/app/{page:.*}", web::get().to(tables::show));
}

/// One link of the navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What every page shows around its content.
pub struct Chrome {
    pub lang: Lang,
    /// This page's address, for the language switch to come back to.
    pub here: String,
    pub nav: Vec<NavItem>,
    pub csrf: String,
    /// A line to show above the content (a refusal from the API, a confirmation).
    pub notice: Option<String>,
}

impl Chrome {
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }
}

/// The pages of the navigation, in order, with the roles that work in each (a role
/// that grants another — admin — reaches its pages too).
pub const SECTIONS: &[(&str, &str, &[Role])] = &[
    ("/app/inbox", "nav.inbox", &[Role::Sdr]),
    ("/app/pool", "nav.pool", &[Role::Sdr]),
    ("/app/codes", "nav.codes", &[Role::Marketer]),
    ("/app/campaigns", "nav.campaigns", &[Role::Marketer]),
    ("/app/cards", "nav.cards", &[Role::Marketer, Role::Sdr]),
    ("/app/forms", "nav.forms", &[Role::Marketer]),
    ("/app/webhook-sources", "nav.sources", &[Role::Admin]),
    ("/app/reports/funnel", "nav.funnel", &[Role::Marketer, Role::Manager]),
    ("/app/teams", "nav.teams", &[Role::Manager]),
    ("/app/routing", "nav.routing", &[Role::Manager]),
    ("/app/sla", "nav.sla", &[Role::Manager]),
    ("/app/reports/sla", "nav.sla_report", &[Role::Manager]),
    ("/app/dead-letters", "nav.dead_letters", &[Role::Admin]),
    ("/app/staff", "nav.staff", &[Role::Admin]),
    ("/app/api-keys", "nav.api_keys", &[Role::Admin]),
    ("/app/wecom", "nav.wecom", &[Role::Admin]),
];

/// Whether the person works in a section of [`SECTIONS`].
pub fn may_see(session: &Session, roles: &[Role]) -> bool {
    roles.iter().any(|r| session.has(*r))
}

pub fn chrome(req: &HttpRequest, session: &Session, notice: Option<String>) -> Chrome {
    let lang = Lang::of(req);
    let here = if req.method() == actix_web::http::Method::GET {
        req.uri()
            .path_and_query()
            .map_or("/app", actix_web::http::uri::PathAndQuery::as_str)
            .to_string()
    } else {
        req.path().to_string()
    };
    let path = req.path();
    let nav = SECTIONS
        .iter()
        .filter(|(_, _, roles)| may_see(session, roles))
        .map(|(href, key, _)| NavItem {
            href,
            label: lang.t(key),
            current: path == *href,
        })
        .collect();
    Chrome {
        lang,
        here: session::url_encode(&safe_next(Some(&here))),
        nav,
        csrf: session.csrf.clone(),
        notice: notice.or_else(|| session.notice.clone()),
    }
}

/// An HTML answer with the console's headers.
pub fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

pub fn render(template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => html(actix_web::http::StatusCode::OK, body),
        Err(err) => {
            tracing::error!(error = %err, "rendering a console page failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .finish()
}

pub fn api_base(req: &HttpRequest) -> String {
    req.app_data::<web::Data<ApiBase>>()
        .map(|b| b.0.clone())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub title: String,
    pub message: String,
}

/// `/app`: the first page of the person's first section.
async fn home(req: HttpRequest, infra: web::Data<Infra>) -> HttpResponse {
    let session = match session::session(&req, &infra).await {
        Ok(s) => s,
        Err(redirect) => return redirect,
    };
    let first = SECTIONS
        .iter()
        .find(|(_, _, roles)| may_see(&session, roles))
        .map_or("/app/inbox", |(href, _, _)| href);
    session.finish(see_other(first))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    lang: Lang,
    csrf: String,
    next: String,
    tenant: String,
    email: String,
    error: Option<&'static str>,
}

impl LoginPage {
    fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }

    /// This page again, still going on to `next` (for the language switch).
    fn back_here(&self) -> String {
        session::url_encode(&format!("/app/login?next={}", session::url_encode(&self.next)))
    }
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only our own pages: no open redirect through `next`, nothing odd in a header.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/app" || n.starts_with("/app/") || n.starts_with("/app?"))
                && !n.contains("..")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_string()
        }
        _ => "/app".to_string(),
    }
}

async fn login_page(req: HttpRequest, infra: web::Data<Infra>, q: web::Query<Next>) -> HttpResponse {
    let (csrf, set) = session::csrf_of(&req, &infra);
    let page = LoginPage {
        lang: Lang::of(&req),
        csrf,
        next: safe_next(q.next.as_deref()),
        tenant: String::new(),
        email: String::new(),
        error: None,
    };
    let mut response = render(&page);
    if let Some(c) = set {
        let _ = response.add_cookie(&c);
    }
    response
}

#[derive(Deserialize)]
struct LoginForm {
    tenant: String,
    email: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

async fn login(req: HttpRequest, infra: web::Data<Infra>, form: web::Form<LoginForm>) -> HttpResponse {
    let form = form.into_inner();
    let lang = Lang::of(&req);
    if !session::form_is_ours(&req, &infra, &form.csrf) {
        return html(actix_web::http::StatusCode::FORBIDDEN, "CSRF check failed".into());
    }
    let request = crate::signin::TokenRequest {
        tenant: form.tenant.clone(),
        email: form.email.clone(),
        password: form.password,
    };
    match crate::signin::sign_in(&req, &infra, request).await {
        Ok(pair) => {
            let mut response = see_other(&safe_next(form.next.as_deref()));
            for c in session::token_cookies(&infra, &pair) {
                let _ = response.add_cookie(&c);
            }
            let _ = response.add_cookie(&session::new_csrf(&infra).1);
            response
        }
        Err(err) => {
            let busy = matches!(err, huoke_shared::ApiError::TooManyRequests);
            let page = LoginPage {
                lang,
                csrf: form.csrf,
                next: safe_next(form.next.as_deref()),
                tenant: form.tenant,
                email: form.email,
                error: Some(if busy { "login.busy" } else { "login.failed" }),
            };
            let mut response = render(&page);
            *response.status_mut() = if busy {
                actix_web::http::StatusCode::TOO_MANY_REQUESTS
            } else {
                actix_web::http::StatusCode::UNAUTHORIZED
            };
            response
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf: String,
}

async fn logout(req: HttpRequest, infra: web::Data<Infra>, form: web::Form<CsrfOnly>) -> HttpResponse {
    if !session::form_is_ours(&req, &infra, &form.csrf) {
        return html(actix_web::http::StatusCode::FORBIDDEN, "CSRF check failed".into());
    }
    // The refresh token dies with the session, not just its cookie.
    if let Some(refresh) = req.cookie(session::REFRESH_COOKIE)
        && let Err(err) = crate::refresh::revoke(&infra, refresh.value()).await
    {
        tracing::warn!(error = %err, "revoking a refresh token at sign-out failed");
    }
    let mut response = see_other("/app/login");
    for c in session::cleared(&infra) {
        let _ = response.add_cookie(&c);
    }
    response
}

async fn switch_language(lang: web::Path<String>, q: web::Query<Next>) -> HttpResponse {
    let Some(lang) = Lang::parse(&lang) else {
        return HttpResponse::NotFound().finish();
    };
    let back = safe_next(q.next.as_deref());
    let mut response = see_other(&back);
    let cookie = actix_web::cookie::Cookie::build(i18n::LANG_COOKIE, lang.short())
        .path("/")
        .same_site(actix_web::cookie::SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    let _ = response.add_cookie(&cookie);
    response
}

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");

async fn asset(file: web::Path<String>) -> HttpResponse {
    let (body, kind) = match file.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_our_pages() {
        assert_eq!(safe_next(Some("/app/leads/1")), "/app/leads/1");
        assert_eq!(safe_next(Some("/app?x=1")), "/app?x=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "/v1/me",
            "",
            "/apple",
            "/app/../v1/me",
            "/app/x\r\nSet-Cookie: a=b",
            "/app/a b",
        ] {
            assert_eq!(safe_next(Some(bad)), "/app", "{bad}");
        }
        assert_eq!(safe_next(None), "/app");
    }
}
