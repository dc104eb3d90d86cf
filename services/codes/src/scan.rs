//! `GET /s/{code}`: pick, record, answer — without touching the database or waiting
//! on the broker in the common case. Only ever sends the visitor to our own card
//! page or renders a page of ours; never redirects to a URL taken from input.

use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use huoke_shared::Infra;
use huoke_shared::telemetry::RouteLabel;
use huoke_shared::visitor::{Client, client_addr, identify};

use crate::pages;
use crate::pick::{Outcome, pick, remembered};
use crate::recorder::ScanRecord;
use crate::schedule::local_day;
use crate::snapshot::{Person, Snapshot};
use crate::state::CodesState;
use crate::sticky;
use crate::wecom_landing::contact_way;

fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(body)
}

/// Public codes are base62; anything else cannot be one of ours.
pub fn plausible_code(code: &str) -> bool {
    (8..=32).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Serves everything under `/s/` (the default service of the `/s` scope): the code
/// is the rest of the path. Routing by prefix costs a string comparison where a
/// `/s/{code}` route would run a regex on every scan.
pub async fn scan(req: HttpRequest, infra: web::Data<Infra>, state: web::Data<CodesState>) -> HttpResponse {
    use actix_web::http::{Method, StatusCode, header::ALLOW};
    RouteLabel("/s/{code}").set(&req);
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return HttpResponse::MethodNotAllowed()
            .insert_header((ALLOW, "GET, HEAD"))
            .finish();
    }
    let code = req.path().strip_prefix("/s/").unwrap_or_default();
    if !plausible_code(code) {
        return html(StatusCode::NOT_FOUND, pages::not_found());
    }
    // One clock reading for the whole scan: the flood window, the day, the tally.
    let now = Utc::now();
    let at_ms = now.timestamp_millis();
    if !state.flood.allow(client_addr(&req), (at_ms / 1000) as u64) {
        metrics::counter!("huoke_scans_refused_total").increment(1);
        return html(StatusCode::TOO_MANY_REQUESTS, pages::busy());
    }
    let snap = match state.snapshots.get(&infra.store, code).await {
        Ok(Some(snap)) => snap,
        Ok(None) => return html(StatusCode::NOT_FOUND, pages::not_found()),
        Err(err) => {
            tracing::error!(error = %err, "loading a code failed");
            return html(StatusCode::SERVICE_UNAVAILABLE, pages::nobody());
        }
    };
    if snap.deleted || !snap.active {
        return html(StatusCode::GONE, pages::gone());
    }

    let visitor = identify(&req, &snap.tenant_id);
    let client = Client::of(&req);
    let day = local_day(now, snap.tz);
    // Without the key (the store unreachable since start) picks are made without
    // remembering them: the visitor is served all the same.
    let key = state.sticky_key.get();
    let brought = match (&key, &visitor.new_cookie) {
        // A visitor we have just given a cookie cannot have an earlier pick.
        (Some(key), None) => req
            .cookie(sticky::COOKIE)
            .and_then(|c| key.open(&snap.id, &visitor.hash, &day, c.value()).map(str::to_string)),
        _ => None,
    };
    let picked = pick(
        &*infra.cache,
        &state.cursors,
        &state.leases,
        &snap,
        brought.as_deref(),
        now,
        &day,
    )
    .await;
    // A fallback pick took no place on a cap and may be anyone: it is not remembered.
    let (outcome, remember) = match picked {
        Ok(outcome) => (outcome, true),
        Err(err) => {
            // The cache is down: fall back to the backup (or first member) uncounted,
            // rather than turning a prospect away.
            tracing::warn!(error = %err, code = %snap.code, "pick failed; using the fallback");
            (fallback(&snap), false)
        }
    };

    let visitor_hash = visitor.hash;
    let sticky = match &outcome {
        Outcome::Group { sticky, .. } | Outcome::Member { sticky, .. } => *sticky,
        _ => false,
    };
    count_scan(outcome.label(), sticky);
    state.recorder.record(&ScanRecord {
        code: &snap,
        staff_id: outcome.staff_id(),
        visitor: &visitor_hash,
        first_visit: visitor.new_cookie.is_some(),
        client: client.as_str(),
        outcome: outcome.label(),
        at_ms,
    });

    let mut response = match &outcome {
        Outcome::Member { person, .. } | Outcome::Backup { person } => {
            answer_person(&infra, &state, &snap, person, client).await
        }
        Outcome::Group { index, .. } => {
            let group = &snap.groups[*index];
            html(
                StatusCode::OK,
                pages::group_landing(&group.name, &group.qr_url, snap.welcome_text.as_deref()),
            )
        }
        Outcome::Nobody => html(StatusCode::OK, pages::nobody()),
    };
    if let (Some(key), true, Some(pick)) = (&key, remember, remembered(&outcome)) {
        let sealed = key.seal(&snap.id, &visitor_hash, &day, &pick);
        let _ = response.add_cookie(&sticky::cookie(&snap.code, sealed));
    }
    if let Some(cookie) = visitor.new_cookie {
        let _ = response.add_cookie(&cookie);
    }
    response
}

thread_local! {
    /// `huoke_scans_total` handles per outcome and stickiness, per thread: no label
    /// key is built or looked up per scan.
    static SCAN_COUNTERS: std::cell::RefCell<Vec<(&'static str, bool, metrics::Counter)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn count_scan(outcome: &'static str, sticky: bool) {
    SCAN_COUNTERS.with(|counters| {
        let mut counters = counters.borrow_mut();
        if let Some((_, _, counter)) = counters.iter().find(|(o, s, _)| *o == outcome && *s == sticky) {
            counter.increment(1);
            return;
        }
        let counter =
            metrics::counter!("huoke_scans_total", "outcome" => outcome, "sticky" => if sticky { "yes" } else { "no" });
        counter.increment(1);
        counters.push((outcome, sticky, counter));
    });
}

fn fallback(snap: &Snapshot) -> Outcome<'_> {
    if let Some(person) = snap.backup.as_ref().filter(|p| p.active) {
        return Outcome::Backup { person };
    }
    match snap.people.iter().flatten().find(|p| p.active) {
        Some(person) => Outcome::Member { person, sticky: false },
        None => Outcome::Nobody,
    }
}

async fn answer_person(
    infra: &Infra,
    state: &CodesState,
    snap: &Snapshot,
    person: &Person,
    client: Client,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    if client != Client::Other && snap.wecom_configured && person.wecom_userid.is_some() {
        match contact_way(infra, state, snap, person).await {
            Ok(Some(qr)) => {
                return html(
                    StatusCode::OK,
                    pages::contact_landing(&person.name, &qr, snap.welcome_text.as_deref()),
                );
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), code = %snap.code, "WeCom contact way unavailable; showing the card");
            }
        }
    }
    match &person.card_slug {
        // A path on our own host, built from our own data: never an open redirect.
        Some(slug) => HttpResponse::Found()
            .insert_header((LOCATION, format!("/c/{slug}?via={}", snap.code)))
            .insert_header((CACHE_CONTROL, "no-store"))
            .finish(),
        None => html(
            StatusCode::OK,
            pages::person(&person.name, snap.welcome_text.as_deref()),
        ),
    }
}
