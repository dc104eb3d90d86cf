//! The SDR's pages: the inbox (live, with SLA countdowns), a lead (activities,
//! status) and the public pool.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use huoke_shared::Infra;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{Api, Refusal};
use super::session::{self, Session};
use super::{Chrome, MessagePage, chrome, render, see_other};

/// A JSON value as text for a page: strings as they are, nothing for null.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The answer's list under `key` (or the answer itself when it is a list), each
/// entry made into a `T`.
pub fn list_of<T>(answer: &Value, key: &str, make: impl Fn(&Value) -> T) -> Vec<T> {
    answer[key]
        .as_array()
        .or_else(|| answer.as_array())
        .map(|items| items.iter().map(make).collect())
        .unwrap_or_default()
}

/// The session, or the answer that sends the visitor to sign in.
macro_rules! signed_in {
    ($req:expr, $infra:expr) => {
        match $crate::app::session::session(&$req, &$infra).await {
            Ok(s) => s,
            Err(redirect) => return redirect,
        }
    };
}
pub(crate) use signed_in;

/// A refusal from the API, shown as a page in the console's frame (a lapsed
/// sign-in goes to the sign-in page instead).
pub fn refused(req: &HttpRequest, session: &Session, refusal: &Refusal) -> HttpResponse {
    if refusal.status == 401 {
        return session::to_sign_in(req);
    }
    let chrome = chrome(req, session, None);
    let title = chrome.t("error.title").to_string();
    let message = if refusal.status == 403 {
        chrome.t("error.forbidden").to_string()
    } else {
        refusal.detail.clone()
    };
    let mut response = render(&MessagePage { chrome, title, message });
    *response.status_mut() =
        actix_web::http::StatusCode::from_u16(refusal.status).unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    session.finish(response)
}

pub struct InboxItem {
    pub assignment_id: String,
    pub lead_id: String,
    pub name: String,
    pub company: String,
    pub grade: String,
    pub channel: String,
    pub state: String,
    pub sla_seconds_left: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    chrome: Chrome,
    items: Vec<InboxItem>,
}

#[derive(Template)]
#[template(path = "inbox_items.html")]
struct InboxItems {
    chrome: Chrome,
    items: Vec<InboxItem>,
}

#[derive(Deserialize)]
pub struct InboxQuery {
    /// Only the list, for the live refresh.
    fragment: Option<u8>,
}

pub async fn inbox(req: HttpRequest, infra: web::Data<Infra>, q: web::Query<InboxQuery>) -> HttpResponse {
    let session = signed_in!(req, infra);
    let api = Api::of(&req, &session);
    let answer = match api.get("/v1/inbox").await {
        Ok(a) => a,
        Err(refusal) => return refused(&req, &session, &refusal),
    };
    let items = list_of(&answer, "items", |i| InboxItem {
        assignment_id: text(&i["assignment_id"]),
        lead_id: text(&i["lead_id"]),
        name: text(&i["name"]),
        company: text(&i["company"]),
        grade: text(&i["grade"]),
        channel: text(&i["channel"]),
        state: text(&i["state"]),
        sla_seconds_left: text(&i["sla_seconds_left"]),
    });
    let chrome = chrome(&req, &session, None);
    let response = if q.fragment == Some(1) {
        render(&InboxItems { chrome, items })
    } else {
        render(&InboxPage { chrome, items })
    };
    session.finish(response)
}

#[derive(Deserialize)]
pub struct OfferForm {
    csrf: String,
    reason: Option<String>,
}

/// `accept` or `reject` an offer, then back to the inbox.
pub async fn answer_offer(
    req: HttpRequest,
    infra: web::Data<Infra>,
    path: web::Path<(String, String)>,
    form: web::Form<OfferForm>,
) -> HttpResponse {
    let session = signed_in!(req, infra);
    if !session::form_is_ours(&req, &infra, &form.csrf) {
        return session.finish(forged());
    }
    let (id, action) = path.into_inner();
    let id = plain_id!(session, id);
    let body = match action.as_str() {
        "accept" => json!({}),
        "reject" => {
            json!({"reason": form.reason.clone().filter(|r| !r.trim().is_empty()).unwrap_or_else(|| "rejected in the console".into())})
        }
        _ => return session.finish(HttpResponse::NotFound().finish()),
    };
    let api = Api::of(&req, &session);
    match api.post(&format!("/v1/assignments/{id}/{action}"), &body).await {
        Ok(_) => session.finish(see_other("/app/inbox")),
        Err(refusal) => refused(&req, &session, &refusal),
    }
}

pub fn forged() -> HttpResponse {
    super::html(actix_web::http::StatusCode::FORBIDDEN, "CSRF check failed".into())
}

/// The id from a console URL, or the 404 that ends the request.
macro_rules! plain_id {
    ($session:expr, $id:expr) => {
        match $crate::app::session::safe_id(&$id) {
            Some(id) => id.to_string(),
            None => return $session.finish(actix_web::HttpResponse::NotFound().finish()),
        }
    };
}
pub(crate) use plain_id;

pub struct HistoryLine {
    pub at: String,
    pub kind: String,
    pub actor: String,
}

#[derive(Template)]
#[template(path = "lead.html")]
struct LeadPage {
    chrome: Chrome,
    id: String,
    fields: Vec<(&'static str, String)>,
    /// What the captures said beyond the standard fields (hidden from masked views).
    attributes: Vec<(String, String)>,
    /// The open offer's assignment id, when the lead waits for an answer.
    offer: Option<String>,
    history: Vec<HistoryLine>,
    statuses: &'static [&'static str],
    kinds: &'static [&'static str],
}

pub async fn lead(req: HttpRequest, infra: web::Data<Infra>, id: web::Path<String>) -> HttpResponse {
    let session = signed_in!(req, infra);
    let id = plain_id!(session, id.into_inner());
    let api = Api::of(&req, &session);
    let lead = match api.get(&format!("/v1/leads/{id}")).await {
        Ok(l) => l,
        Err(refusal) => return refused(&req, &session, &refusal),
    };
    let fields = [
        ("lead.name", "name"),
        ("lead.company", "company"),
        ("lead.title", "title"),
        ("lead.phone", "phone"),
        ("lead.email", "email"),
        ("lead.grade", "grade"),
        ("lead.score", "score"),
        ("lead.status", "status"),
        ("lead.channel", "channel"),
        ("lead.state", "/assignment/state"),
    ]
    .iter()
    .map(|(label, key)| {
        let value = if key.starts_with('/') {
            lead.pointer(key).cloned().unwrap_or(Value::Null)
        } else {
            lead[*key].clone()
        };
        (*label, text(&value))
    })
    .collect();
    let mut history = list_of(&lead, "history", |e| HistoryLine {
        at: text(&e["at"]),
        kind: text(&e["kind"]),
        actor: text(&e["actor"]),
    });
    history.reverse();
    let notice = req
        .query_string()
        .contains("saved=1")
        .then(|| super::Lang::of(&req).t("saved").to_string());
    let attributes = lead["attributes"]
        .as_object()
        .map(|map| map.iter().map(|(k, v)| (k.clone(), super::tables::cell(v))).collect())
        .unwrap_or_default();
    let offer = (lead.pointer("/assignment/state").and_then(Value::as_str) == Some("offered"))
        .then(|| text(&lead["assignment"]["id"]))
        .filter(|a| session::safe_id(a).is_some());
    let page = LeadPage {
        chrome: chrome(&req, &session, notice),
        id,
        fields,
        attributes,
        offer,
        history,
        statuses: &["contacted", "sql", "disqualified", "converted", "won", "lost"],
        kinds: &["call", "wechat", "email", "note"],
    };
    session.finish(render(&page))
}

#[derive(Deserialize)]
pub struct ActivityForm {
    csrf: String,
    kind: String,
    body: Option<String>,
}

pub async fn add_activity(
    req: HttpRequest,
    infra: web::Data<Infra>,
    id: web::Path<String>,
    form: web::Form<ActivityForm>,
) -> HttpResponse {
    let session = signed_in!(req, infra);
    if !session::form_is_ours(&req, &infra, &form.csrf) {
        return session.finish(forged());
    }
    let id = plain_id!(session, id.into_inner());
    let body = json!({"kind": form.kind, "body": form.body.clone().filter(|b| !b.trim().is_empty())});
    post_then_back(
        &req,
        &session,
        &format!("/v1/leads/{id}/activities"),
        &body,
        &format!("/app/leads/{id}?saved=1"),
    )
    .await
}

#[derive(Deserialize)]
pub struct StatusForm {
    csrf: String,
    status: String,
    reason: Option<String>,
}

pub async fn change_status(
    req: HttpRequest,
    infra: web::Data<Infra>,
    id: web::Path<String>,
    form: web::Form<StatusForm>,
) -> HttpResponse {
    let session = signed_in!(req, infra);
    if !session::form_is_ours(&req, &infra, &form.csrf) {
        return session.finish(forged());
    }
    let id = plain_id!(session, id.into_inner());
    let mut body = json!({"status": form.status});
    if let Some(reason) = form.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        body["reason"] = json!(reason);
    }
    post_then_back(
        &req,
        &session,
        &format!("/v1/leads/{id}/status"),
        &body,
        &format!("/app/leads/{id}?saved=1"),
    )
    .await
}

async fn post_then_back(req: &HttpRequest, session: &Session, path: &str, body: &Value, back: &str) -> HttpResponse {
    let api = Api::of(req, session);
    match api.post(path, body).await {
        Ok(_) => session.finish(see_other(back)),
        Err(refusal) => refused(req, session, &refusal),
    }
}

#[derive(Deserialize)]
pub struct ReleaseForm {
    csrf: String,
    reason: String,
}

/// `POST /app/leads/{id}/release`: the owner gives the lead back to the public pool.
pub async fn release(
    req: HttpRequest,
    infra: web::Data<Infra>,
    id: web::Path<String>,
    form: web::Form<ReleaseForm>,
) -> HttpResponse {
    let session = signed_in!(req, infra);
    if !session::form_is_ours(&req, &infra, &form.csrf) {
        return session.finish(forged());
    }
    let id = plain_id!(session, id.into_inner());
    let body = json!({"reason": form.reason.trim()});
    post_then_back(&req, &session, &format!("/v1/leads/{id}/release"), &body, "/app/inbox").await
}

pub struct PoolLine {
    pub lead_id: String,
    pub name: String,
    pub company: String,
    pub grade: String,
    pub channel: String,
    pub released_at: String,
}

#[derive(Template)]
#[template(path = "pool.html")]
struct PoolPage {
    chrome: Chrome,
    items: Vec<PoolLine>,
}

pub async fn pool(req: HttpRequest, infra: web::Data<Infra>) -> HttpResponse {
    let session = signed_in!(req, infra);
    let api = Api::of(&req, &session);
    let answer = match api.get("/v1/pool").await {
        Ok(a) => a,
        Err(refusal) => return refused(&req, &session, &refusal),
    };
    let items = list_of(&answer, "items", |i| PoolLine {
        lead_id: text(&i["lead_id"]),
        name: text(&i["name"]),
        company: text(&i["company"]),
        grade: text(&i["grade"]),
        channel: text(&i["channel"]),
        released_at: text(&i["released_at"]),
    });
    let page = PoolPage {
        chrome: chrome(&req, &session, None),
        items,
    };
    session.finish(render(&page))
}

pub async fn claim(
    req: HttpRequest,
    infra: web::Data<Infra>,
    id: web::Path<String>,
    form: web::Form<super::CsrfOnly>,
) -> HttpResponse {
    let session = signed_in!(req, infra);
    if !session::form_is_ours(&req, &infra, &form.csrf) {
        return session.finish(forged());
    }
    post_then_back(
        &req,
        &session,
        &format!("/v1/pool/{id}/claim"),
        &json!({}),
        &format!("/app/leads/{id}"),
    )
    .await
}
