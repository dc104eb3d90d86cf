//! Signing in to the console, and staying signed in.
//!
//! - `huoke_session`: the access token, `HttpOnly`, `SameSite=Lax`, `Secure` when the
//!   console is served over HTTPS. The API accepts it for reads only (see
//!   `huoke_shared::auth`), so the browser can open the inbox stream and QR previews.
//! - `huoke_refresh`: the refresh token, `HttpOnly`, `SameSite=Strict`, sent only to
//!   `/app`; a page that finds the access token expired spends it for a new pair.
//! - `huoke_csrf`: a random value every form carries back (double submit), checked
//!   together with `Origin` on every console `POST`.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieAge};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use huoke_shared::Infra;
use huoke_shared::auth::{Role, SESSION_COOKIE};
use serde_json::Value;

pub const REFRESH_COOKIE: &str = "huoke_refresh";
pub const CSRF_COOKIE: &str = "huoke_csrf";
pub const NOTICE_COOKIE: &str = "huoke_notice";

/// The signed-in person, and the cookies the answer must set.
pub struct Session {
    pub staff_id: String,
    pub roles: Vec<Role>,
    /// The access token, for calling the API on the person's behalf.
    pub token: String,
    pub csrf: String,
    /// What the previous request left to say (after a redirect).
    pub notice: Option<String>,
    set_cookies: Vec<Cookie<'static>>,
}

impl Session {
    pub fn has(&self, needed: Role) -> bool {
        self.roles.iter().any(|r| r.grants(needed))
    }

    /// The answer with the session's new cookies.
    pub fn finish(&self, mut response: HttpResponse) -> HttpResponse {
        for cookie in &self.set_cookies {
            let _ = response.add_cookie(cookie);
        }
        response
    }

    /// Back to `location` (post/redirect/get), saying `notice` there.
    pub fn back_to(&self, infra: &Infra, location: &str, notice: &str) -> HttpResponse {
        let mut response = self.finish(super::see_other(location));
        let _ = response.add_cookie(&notice_cookie(infra, notice));
        response
    }
}

fn secure(infra: &Infra) -> bool {
    infra.settings.public_base().starts_with("https://")
}

fn cookie(
    infra: &Infra,
    name: &'static str,
    value: String,
    path: &'static str,
    same_site: SameSite,
    age: i64,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .secure(secure(infra))
        .same_site(same_site)
        .max_age(CookieAge::seconds(age))
        .finish()
}

/// The cookies of a fresh token pair (an answer of sign-in or refresh).
pub fn token_cookies(infra: &Infra, pair: &Value) -> Vec<Cookie<'static>> {
    let text = |k: &str| pair[k].as_str().unwrap_or_default().to_string();
    vec![
        cookie(
            infra,
            SESSION_COOKIE,
            text("access_token"),
            "/",
            SameSite::Lax,
            pair["expires_in"].as_i64().unwrap_or(900),
        ),
        cookie(
            infra,
            REFRESH_COOKIE,
            text("refresh_token"),
            "/app",
            // Lax: a link from WeCom or an e-mail to a console page must still find it.
            SameSite::Lax,
            pair["refresh_expires_in"].as_i64().unwrap_or(86_400),
        ),
    ]
}

/// The cookies that sign out.
pub fn cleared(infra: &Infra) -> Vec<Cookie<'static>> {
    vec![
        cookie(infra, SESSION_COOKIE, String::new(), "/", SameSite::Lax, 0),
        cookie(infra, REFRESH_COOKIE, String::new(), "/app", SameSite::Lax, 0),
    ]
}

/// A new CSRF value and its cookie (at sign-in: a value planted before cannot
/// outlive it).
pub fn new_csrf(infra: &Infra) -> (String, Cookie<'static>) {
    let value = hex::encode(rand::random::<[u8; 16]>());
    // Lax: a visit from another site must not replace the value other tabs hold.
    let set = cookie(infra, CSRF_COOKIE, value.clone(), "/app", SameSite::Lax, 86_400 * 30);
    (value, set)
}

/// A line for the next page the person sees (after a redirect), for a minute.
pub fn notice_cookie(infra: &Infra, text: &str) -> Cookie<'static> {
    let encoded: String = url_encode(text);
    cookie(infra, NOTICE_COOKIE, encoded, "/app", SameSite::Lax, 60)
}

/// The request's CSRF value, or a new one with the cookie that sets it.
pub fn csrf_of(req: &HttpRequest, infra: &Infra) -> (String, Option<Cookie<'static>>) {
    let ours = |v: &String| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit());
    match req.cookie(CSRF_COOKIE).map(|c| c.value().to_string()).filter(ours) {
        Some(value) => (value, None),
        None => {
            let (value, set) = new_csrf(infra);
            (value, Some(set))
        }
    }
}

/// A console form post is ours: it names our origin (when the browser says) and
/// carries the CSRF cookie's value.
pub fn form_is_ours(req: &HttpRequest, infra: &Infra, submitted: &str) -> bool {
    // Browsers send Origin on every form post; when one does, it must be this site
    // (scheme, host and port) as the browser reached it or as it is published.
    let origin_ok = match req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => {
            let info = req.connection_info();
            let here = format!("{}://{}", info.scheme(), info.host());
            let public = infra.settings.public_base();
            origin == here || origin == public.trim_end_matches('/')
        }
    };
    let cookie = req
        .cookie(CSRF_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    origin_ok && !cookie.is_empty() && constant_time_eq(cookie.as_bytes(), submitted.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where an unsigned visitor goes: the sign-in page, back here afterwards.
pub fn to_sign_in(req: &HttpRequest) -> HttpResponse {
    let next = req
        .uri()
        .path_and_query()
        .map_or("/app", actix_web::http::uri::PathAndQuery::as_str);
    let next: String = url_encode(next);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/app/login?next={next}")))
        .finish()
}

/// Percent-encodes everything but unreserved characters (`/` too).
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An id taken from a console URL, before it goes into an API path: our ids are
/// short runs of letters, digits, `-` and `_`, so nothing else can steer the call
/// to another endpoint (`../`, `?`, `#`, an encoded `/`).
pub fn safe_id(id: &str) -> Option<&str> {
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then_some(id)
}

fn url_decode(text: &str) -> String {
    super::form_data::pairs(format!("v={text}").as_bytes())
        .pop()
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The signed-in person of a console page, renewing the access token with the
/// refresh cookie when it has expired; `Err` is the redirect to the sign-in page.
pub async fn session(req: &HttpRequest, infra: &Infra) -> Result<Session, HttpResponse> {
    let (csrf, csrf_cookie) = csrf_of(req, infra);
    let mut set_cookies: Vec<Cookie<'static>> = csrf_cookie.into_iter().collect();
    let current = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let mut claims = match &current {
        Some(token) => valid(infra, token).await.map(|c| (token.clone(), c)),
        None => None,
    };
    if claims.is_none()
        && let Some(refresh) = req.cookie(REFRESH_COOKIE).map(|c| c.value().to_string())
        && let Ok(pair) = crate::refresh::rotate(infra, &refresh).await
    {
        let token = pair["access_token"].as_str().unwrap_or_default().to_string();
        claims = valid(infra, &token).await.map(|c| (token, c));
        set_cookies.extend(token_cookies(infra, &pair));
    }
    let Some((token, claims)) = claims else {
        // Nothing is cleared here: a concurrent request may just have renewed the
        // cookies, and signing in replaces them anyway.
        let mut redirect = to_sign_in(req);
        for c in &set_cookies {
            let _ = redirect.add_cookie(c);
        }
        return Err(redirect);
    };
    let notice = req
        .cookie(NOTICE_COOKIE)
        .map(|c| url_decode(c.value()))
        .filter(|n| !n.is_empty());
    if notice.is_some() {
        set_cookies.push(cookie(infra, NOTICE_COOKIE, String::new(), "/app", SameSite::Lax, 0));
    }
    Ok(Session {
        staff_id: claims.sub,
        roles: claims.roles,
        token,
        csrf,
        notice,
        set_cookies,
    })
}

/// The token's claims when it verifies and its holder is still in good standing.
async fn valid(infra: &Infra, token: &str) -> Option<huoke_shared::auth::Claims> {
    let claims = infra.jwt.verify(token).ok()?;
    let standing = huoke_shared::revocation::standing(&*infra.cache, &infra.store, &claims.tid, &claims.sub)
        .await
        .ok()?;
    standing.is_some_and(|s| s.accepts(claims.iat)).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_urls_are_encoded() {
        assert_eq!(url_encode("/app/leads/1?x=a b&y"), "%2Fapp%2Fleads%2F1%3Fx%3Da%20b%26y");
        assert_eq!(url_decode(&url_encode("已保存 · key: hk_1/2")), "已保存 · key: hk_1/2");
    }

    #[test]
    fn only_plain_ids_reach_api_paths() {
        assert_eq!(safe_id("01a2-B_c"), Some("01a2-B_c"));
        for bad in ["", "../staff", "a/b", "a?b", "a#", "a%2Fb", &"x".repeat(65)] {
            assert_eq!(safe_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn comparison_needs_equal_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
