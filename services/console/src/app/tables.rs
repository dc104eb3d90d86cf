//! The declarative pages ([`super::sections`]): lists with their create forms and
//! row actions, and configuration documents edited as JSON (with a trial run where
//! the API has one). One template renders them all.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use huoke_shared::Infra;
use reqwest::Method;
use serde_json::Value;

use super::api::{Api, Refusal};
use super::form_data;
use super::pages::{forged, list_of, plain_id, refused, signed_in, text};
use super::sections::{Document, Field, Kind, Listing, PAGES, PageDef};
use super::session::{self, Session};
use super::{Chrome, SECTIONS, chrome, render};

pub struct FormField {
    pub name: &'static str,
    pub label: &'static str,
    /// `text`, `email`, `password`, `number`, `list`, `choice` or `json`.
    pub kind: &'static str,
    pub options: &'static [&'static str],
    pub required: bool,
}

pub struct RowView {
    pub id: String,
    pub cells: Vec<String>,
}

pub struct Table {
    pub index: usize,
    /// The address of the list's next page, when there is one.
    pub more: Option<String>,
    pub headers: Vec<&'static str>,
    pub rows: Vec<RowView>,
    pub form: Vec<FormField>,
    /// (index, label, input) of each row action.
    pub actions: Vec<(usize, &'static str, Option<FormField>)>,
    /// (label, href with `{id}`) of each row link.
    pub links: Vec<(&'static str, &'static str)>,
}

pub struct DocumentView {
    pub text: String,
    pub simulate: bool,
    pub trial: String,
    pub outcome: Option<String>,
}

#[derive(Template)]
#[template(path = "table.html")]
struct TablePage {
    chrome: Chrome,
    path: String,
    title: &'static str,
    tables: Vec<Table>,
    document: Option<DocumentView>,
}

/// A cell: lists joined, everything else as text.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => text(other),
    }
}

fn form_view(fields: &'static [Field]) -> Vec<FormField> {
    fields.iter().map(field_view).collect()
}

fn field_view(f: &'static Field) -> FormField {
    let (kind, options): (&'static str, &'static [&'static str]) = match f.kind {
        Kind::Text => ("text", &[]),
        Kind::Email => ("email", &[]),
        Kind::Password => ("password", &[]),
        Kind::Number => ("number", &[]),
        Kind::List => ("list", &[]),
        Kind::Choice(options) => ("choice", options),
        Kind::Json => ("json", &[]),
    };
    FormField {
        name: f.name,
        label: f.label,
        kind,
        options,
        required: f.required,
    }
}

/// The page a path names, if the person's roles reach it.
fn page_for(session: &Session, path: &str) -> Result<(&'static PageDef, &'static str), u16> {
    let path = path.trim_end_matches('/');
    let def = PAGES.iter().find(|p| p.path == path).ok_or(404u16)?;
    let (_, title, roles) = SECTIONS.iter().find(|(href, _, _)| *href == path).ok_or(404u16)?;
    if super::may_see(session, roles) {
        Ok((def, title))
    } else {
        Err(403)
    }
}

fn with_me(api: &str, session: &Session) -> String {
    api.replace("{me}", &session.staff_id)
}

/// Renders a page; `document` overrides what is read from the API (a failed save
/// shows what the person typed).
async fn page(
    req: &HttpRequest,
    session: &Session,
    path: &str,
    notice: Option<String>,
    document: Option<DocumentView>,
) -> HttpResponse {
    let (def, title_key) = match page_for(session, path) {
        Ok(found) => found,
        Err(status) => {
            let refusal = Refusal {
                status,
                detail: "not found".into(),
            };
            return refused(req, session, &refusal);
        }
    };
    let api = Api::of(req, session);
    let lang = super::Lang::of(req);
    // `?cursor=…&list=n`: the nth list, from that cursor on (the others from the start).
    let query = web::Query::<Paging>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .unwrap_or_default();
    let mut tables = Vec::new();
    for (index, listing) in def.listings.iter().enumerate() {
        let mut address = listing.api.to_string();
        if let Some(cursor) = query.cursor.as_deref().filter(|_| query.list == Some(index)) {
            let joiner = if address.contains('?') { '&' } else { '?' };
            address = format!("{address}{joiner}cursor={}", super::session::url_encode(cursor));
        }
        let answer = match api.get(&address).await {
            Ok(a) => a,
            Err(refusal) => return refused(req, session, &refusal),
        };
        let mut table = table(index, listing, &answer, lang);
        table.more = answer["next_cursor"]
            .as_str()
            .map(|next| format!("{}?list={index}&cursor={}", def.path, super::session::url_encode(next)));
        tables.push(table);
    }
    let document = match (document, &def.document) {
        (Some(view), _) => Some(view),
        (None, Some(doc)) => match read_document(&api, doc, session).await {
            Ok(view) => Some(view),
            Err(refusal) => return refused(req, session, &refusal),
        },
        (None, None) => None,
    };
    let page = TablePage {
        chrome: chrome(req, session, notice),
        path: def.path.to_string(),
        title: lang.t(title_key),
        tables,
        document,
    };
    session.finish(render(&page))
}

#[derive(serde::Deserialize, Default)]
struct Paging {
    cursor: Option<String>,
    list: Option<usize>,
}

fn table(index: usize, listing: &'static Listing, answer: &Value, lang: super::Lang) -> Table {
    Table {
        index,
        more: None,
        headers: listing.columns.iter().map(|(label, _)| lang.t(label)).collect(),
        rows: list_of(answer, listing.list, |item| RowView {
            id: text(&item["id"]),
            cells: listing.columns.iter().map(|(_, field)| cell(&item[*field])).collect(),
        }),
        form: listing.create.as_ref().map(|c| form_view(c.fields)).unwrap_or_default(),
        actions: listing
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| (i, a.label, a.input.as_ref().map(field_view)))
            .collect(),
        links: listing.links.iter().map(|l| (l.label, l.href)).collect(),
    }
}

async fn read_document(api: &Api, doc: &Document, session: &Session) -> Result<DocumentView, Refusal> {
    let mut current = match api.get(&with_me(doc.api, session)).await {
        Ok(value) => value,
        // Nothing saved yet (a card, WeCom settings): start from an empty document.
        Err(refusal) if refusal.status == 404 => Value::Object(serde_json::Map::new()),
        Err(refusal) => return Err(refusal),
    };
    // What the API reports but does not take back (versions, stamps, links), out;
    // what it takes but never shows (secrets), in as blanks to fill.
    if let Some(map) = current.as_object_mut() {
        for key in doc.strip {
            map.remove(*key);
        }
        for key in doc.blank {
            map.entry(*key).or_insert_with(|| Value::String(String::new()));
        }
    }
    Ok(DocumentView {
        text: serde_json::to_string_pretty(&current).unwrap_or_default(),
        simulate: doc.simulate.is_some(),
        trial: r#"{"lead": {"grade": "A", "channel": "website", "attributes": {"city": "上海"}}}"#.into(),
        outcome: None,
    })
}

pub async fn show(req: HttpRequest, infra: web::Data<Infra>) -> HttpResponse {
    let session = signed_in!(req, infra);
    let path = req.path().to_string();
    page(&req, &session, &path, None, None).await
}

/// `POST /app/{page}/create/{n}`: the page's `n`th list gets a new object.
pub async fn create(
    req: HttpRequest,
    infra: web::Data<Infra>,
    path: web::Path<(String, usize)>,
    body: web::Bytes,
) -> HttpResponse {
    let session = signed_in!(req, infra);
    let (page_path, index) = path.into_inner();
    let page_path = format!("/app/{page_path}");
    let pairs = form_data::pairs(&body);
    if !session::form_is_ours(&req, &infra, form_data::value(&pairs, "csrf").unwrap_or("")) {
        return session.finish(forged());
    }
    let Some(create) = page_for(&session, &page_path)
        .ok()
        .and_then(|(def, _)| def.listings.get(index))
        .and_then(|l| l.create.as_ref())
    else {
        return session.finish(HttpResponse::NotFound().finish());
    };
    let json = match form_data::body(create.fields, &pairs) {
        Ok(json) => json,
        Err(problem) => return with_status(page(&req, &session, &page_path, Some(problem), None).await, 422),
    };
    match Api::of(&req, &session).post(create.api, &json).await {
        Ok(answer) => {
            let mut line = super::Lang::of(&req).t("saved").to_string();
            let mut secret = false;
            for field in create.show_once {
                if let Some(v) = answer[*field].as_str() {
                    line.push_str(&format!(" · {field}: {v}"));
                    secret = true;
                }
            }
            if secret {
                // Shown on this answer only, never stored for a redirect.
                page(&req, &session, &page_path, Some(line), None).await
            } else {
                session.back_to(&infra, &page_path, &line)
            }
        }
        Err(refusal) => {
            let status = refusal.status;
            with_status(
                page(&req, &session, &page_path, Some(refusal.detail), None).await,
                status,
            )
        }
    }
}

/// The page's answer with the status of what went wrong.
fn with_status(mut response: HttpResponse, status: u16) -> HttpResponse {
    if response.status().is_success()
        && let Ok(code) = actix_web::http::StatusCode::from_u16(status)
    {
        *response.status_mut() = code;
    }
    response
}

/// `POST /app/{page}/rows/{n}/{action}/{id}`: a row action, then back to the page.
pub async fn act(
    req: HttpRequest,
    infra: web::Data<Infra>,
    path: web::Path<(String, usize, usize, String)>,
    posted: web::Bytes,
) -> HttpResponse {
    let session = signed_in!(req, infra);
    let pairs = form_data::pairs(&posted);
    if !session::form_is_ours(&req, &infra, form_data::value(&pairs, "csrf").unwrap_or("")) {
        return session.finish(forged());
    }
    let (page_path, index, action, id) = path.into_inner();
    let page_path = format!("/app/{page_path}");
    let id = plain_id!(session, id);
    let Some(action) = page_for(&session, &page_path)
        .ok()
        .and_then(|(def, _)| def.listings.get(index))
        .and_then(|l| l.actions.get(action))
    else {
        return session.finish(HttpResponse::NotFound().finish());
    };
    let method = Method::from_bytes(action.method.as_bytes()).unwrap_or(Method::POST);
    let mut body: Option<Value> = serde_json::from_str(action.body).ok();
    if let Some(input) = &action.input {
        match form_data::body(std::slice::from_ref(input), &pairs) {
            Ok(Value::Object(extra)) => {
                let mut merged = body.and_then(|b| b.as_object().cloned()).unwrap_or_default();
                merged.extend(extra);
                body = Some(Value::Object(merged));
            }
            Ok(_) => {}
            Err(problem) => return session.back_to(&infra, &page_path, &problem),
        }
    }
    let api_path = action.api.replace("{id}", &id);
    let notice = match Api::of(&req, &session).send(method, &api_path, body.as_ref()).await {
        Ok(_) => super::Lang::of(&req).t("saved").to_string(),
        Err(refusal) => refusal.detail,
    };
    // Post/redirect/get: reloading the page does not repeat the action.
    session.back_to(&infra, &page_path, &notice)
}

/// `POST /app/{page}/document`: saves the edited document (`PUT`), or with
/// `simulate` set, tries the trial input against the API's simulator.
pub async fn save_document(
    req: HttpRequest,
    infra: web::Data<Infra>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let session = signed_in!(req, infra);
    let page_path = format!("/app/{}", path.into_inner());
    let pairs = form_data::pairs(&body);
    if !session::form_is_ours(&req, &infra, form_data::value(&pairs, "csrf").unwrap_or("")) {
        return session.finish(forged());
    }
    let Some(doc) = page_for(&session, &page_path)
        .ok()
        .and_then(|(def, _)| def.document.as_ref())
    else {
        return session.finish(HttpResponse::NotFound().finish());
    };
    let typed = form_data::value(&pairs, "document").unwrap_or("").to_string();
    let trial = form_data::value(&pairs, "trial").unwrap_or("").to_string();
    let api = Api::of(&req, &session);
    let lang = super::Lang::of(&req);
    let mut view = DocumentView {
        text: typed.clone(),
        simulate: doc.simulate.is_some(),
        trial: trial.clone(),
        outcome: None,
    };
    if let (Some(_), Some(simulator)) = (form_data::value(&pairs, "simulate"), doc.simulate) {
        let outcome = match serde_json::from_str::<Value>(&trial) {
            Err(e) => format!("JSON: {e}"),
            Ok(input) => match api.post(simulator, &input).await {
                Ok(answer) => serde_json::to_string_pretty(&answer).unwrap_or_default(),
                Err(refusal) => refusal.detail,
            },
        };
        view.outcome = Some(outcome);
        return page(&req, &session, &page_path, None, Some(view)).await;
    }
    let (problem, status) = match serde_json::from_str::<Value>(&typed) {
        Err(e) => (format!("JSON: {e}"), 422),
        Ok(document) => match api
            .send(Method::PUT, &with_me(doc.api, &session), Some(&document))
            .await
        {
            Ok(_) => return session.back_to(&infra, &page_path, lang.t("saved")),
            Err(refusal) => (refusal.detail, refusal.status),
        },
    };
    with_status(
        page(&req, &session, &page_path, Some(problem), Some(view)).await,
        status,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_without_its_own_page_has_a_declaration() {
        let own = ["/app/inbox", "/app/pool", "/app/codes", "/app/reports/funnel"];
        for (href, _, _) in SECTIONS {
            assert!(
                own.contains(href) || PAGES.iter().any(|p| p.path == *href),
                "{href} has no page"
            );
        }
    }

    #[test]
    fn every_label_has_text() {
        let lang = super::super::Lang::En;
        for page in PAGES {
            for listing in page.listings {
                let labels = listing
                    .columns
                    .iter()
                    .map(|(label, _)| *label)
                    .chain(listing.create.iter().flat_map(|c| c.fields.iter().map(|f| f.label)))
                    .chain(listing.actions.iter().map(|a| a.label))
                    .chain(listing.links.iter().map(|l| l.label));
                for label in labels {
                    assert_ne!(lang.t(label), "??", "{label}");
                }
            }
        }
    }

    #[test]
    fn actions_are_valid_requests() {
        for page in PAGES {
            for listing in page.listings {
                for action in listing.actions {
                    assert!(Method::from_bytes(action.method.as_bytes()).is_ok());
                    assert!(action.body.is_empty() || serde_json::from_str::<Value>(action.body).is_ok());
                    assert!(action.api.contains("{id}"));
                }
            }
        }
    }
}
