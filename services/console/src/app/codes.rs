//! The marketer's live codes: each with its QR preview, scan URL and downloads, and a
//! form that makes a new one from the tenant's people.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use huoke_shared::Infra;
use serde_json::{Value, json};

use super::api::Api;
use super::pages::{forged, list_of, plain_id, refused, signed_in, text};
use super::session;
use super::{Chrome, chrome, render, see_other};

pub struct CodeLine {
    pub id: String,
    pub name: String,
    pub url: String,
    pub active: bool,
    pub members: usize,
}

#[derive(serde::Deserialize)]
pub struct SwitchForm {
    csrf: String,
    /// `on` or `off`.
    to: String,
}

/// `POST /app/codes/{id}/switch`: takes a code offline or puts it back online.
pub async fn switch(
    req: HttpRequest,
    infra: web::Data<Infra>,
    id: web::Path<String>,
    form: web::Form<SwitchForm>,
) -> HttpResponse {
    let session = signed_in!(req, infra);
    if !session::form_is_ours(&req, &infra, &form.csrf) {
        return session.finish(forged());
    }
    let id = plain_id!(session, id.into_inner());
    let body = json!({"active": form.to == "on"});
    let api = Api::of(&req, &session);
    match api
        .send(reqwest::Method::PATCH, &format!("/v1/live-codes/{id}"), Some(&body))
        .await
    {
        Ok(_) => session.finish(see_other("/app/codes")),
        Err(refusal) => refused(&req, &session, &refusal),
    }
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
    /// (id, name) of the tenant's campaigns, for the code's attribution.
    campaigns: Vec<(String, String)>,
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
    let campaigns = api.get("/v1/campaigns").await.unwrap_or_default();
    let campaigns = list_of(&campaigns, "items", |c| (text(&c["id"]), text(&c["name"])));
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
        campaigns,
    };
    session.finish(render(&page))
}

/// The create form: `name`, one `member` per chosen person, an optional
/// `daily_limit` for each.
pub async fn create(req: HttpRequest, infra: web::Data<Infra>, body: web::Bytes) -> HttpResponse {
    let session = signed_in!(req, infra);
    // Repeated `member` fields: read the pairs, not a struct.
    let pairs: Vec<(String, String)> = super::form_data::pairs(&body);
    let value = |name: &str| super::form_data::value(&pairs, name).map(str::to_string);
    if !session::form_is_ours(&req, &infra, &value("csrf").unwrap_or_default()) {
        return session.finish(forged());
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
    let mut body = json!({"name": value("name").unwrap_or_default(), "members": members});
    if let Some(campaign) = value("campaign_id").filter(|c| !c.is_empty()) {
        body["campaign_id"] = json!(campaign);
    }
    // Weekly hours and dates off, as the API takes them (optional).
    if let Some(schedule) = value("schedule").filter(|s| !s.is_empty()) {
        match serde_json::from_str::<Value>(&schedule) {
            Ok(parsed) => body["schedule"] = parsed,
            Err(e) => {
                let mut response = page(&req, &session, Some(format!("schedule: {e}"))).await;
                *response.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
                return response;
            }
        }
    }
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
