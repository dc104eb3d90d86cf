//! The marketer's live codes: each with its QR preview, scan URL and downloads, and a
//! form that makes a new one from the tenant's people.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use huoke_shared::Infra;
use serde_json::{Value, json};

use super::api::Api;
use super::pages::{forged, list_of, refused, signed_in, text};
use super::session;
use super::{Chrome, chrome, render, see_other};

pub struct CodeLine {
    pub id: String,
    pub name: String,
    pub url: String,
    pub active: bool,
    pub members: usize,
}

pub struct Person {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "codes.html")]
struct CodesPage {
    chrome: Chrome,
    codes: Vec<CodeLine>,
    people: Vec<Person>,
}

pub async fn list(req: HttpRequest, infra: web::Data<Infra>) -> HttpResponse {
    let session = signed_in!(req, infra);
    page(&req, &session, None).await
}

async fn page(req: &HttpRequest, session: &session::Session, notice: Option<String>) -> HttpResponse {
    let api = Api::of(req, session);
    let (codes, staff) = match (api.get("/v1/live-codes").await, api.get("/v1/staff").await) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(refusal), _) | (_, Err(refusal)) => return refused(req, session, &refusal),
    };
    let codes = list_of(&codes, "items", |c| CodeLine {
        id: text(&c["id"]),
        name: text(&c["name"]),
        url: text(&c["url"]),
        active: c["active"].as_bool().unwrap_or(false),
        members: c["members"].as_array().map_or(0, Vec::len),
    });
    let people = list_of(&staff, "items", |s| {
        s["active"].as_bool().unwrap_or(true).then(|| Person {
            id: text(&s["id"]),
            name: format!("{} <{}>", text(&s["name"]), text(&s["email"])),
        })
    })
    .into_iter()
    .flatten()
    .collect();
    let page = CodesPage {
        chrome: chrome(req, session, notice),
        codes,
        people,
    };
    session.finish(render(&page))
}

/// The create form: `name`, one `member` per chosen person, an optional
/// `daily_limit` for each.
pub async fn create(req: HttpRequest, infra: web::Data<Infra>, body: web::Bytes) -> HttpResponse {
    let session = signed_in!(req, infra);
    // Repeated `member` fields: read the pairs, not a struct.
    let pairs: Vec<(String, String)> = form_pairs(&body);
    let value = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string());
    if !session::form_is_ours(&req, &infra, &value("csrf").unwrap_or_default()) {
        return forged();
    }
    let limit: Option<i64> = value("daily_limit").and_then(|l| l.parse().ok());
    let members: Vec<Value> = pairs
        .iter()
        .filter(|(k, _)| k == "member")
        .map(|(_, id)| match limit {
            Some(l) => json!({"staff_id": id, "daily_limit": l}),
            None => json!({"staff_id": id}),
        })
        .collect();
    let body = json!({"name": value("name").unwrap_or_default(), "members": members});
    let api = Api::of(&req, &session);
    match api.post("/v1/live-codes", &body).await {
        Ok(_) => session.finish(see_other("/app/codes")),
        Err(refusal) if refusal.status == 422 => {
            let mut response = page(&req, &session, Some(refusal.detail)).await;
            *response.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
        Err(refusal) => refused(&req, &session, &refusal),
    }
}

/// `application/x-www-form-urlencoded` as ordered pairs (names may repeat).
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&bytes[i + 1..i + 3]), 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_and_escapes_are_read() {
        let pairs = form_pairs(b"name=%E5%B1%95%E4%BC%9A+A&member=s1&member=s2&bad=%zz&end=%4");
        assert_eq!(pairs[0], ("name".into(), "展会 A".into()));
        assert_eq!(pairs[1].1, "s1");
        assert_eq!(pairs[2].1, "s2");
        assert_eq!(pairs[3].1, "%zz");
        assert_eq!(pairs[4].1, "%4");
    }
}
