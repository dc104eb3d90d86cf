//! intake: accepts captures from every channel, validates and normalises them,
//! makes them durable (capture row + outbox row in one transaction) and only then
//! answers 202. The outbox relay publishes `capture.received`. Callers: staff, API
//! keys with `leads:write`, signed webhooks from the sources an admin made, and
//! WeCom's customer-contact callback, and hosted web forms.

mod forms;
mod handlers;
mod hooks;
mod imports;
mod mapping;
mod wecom_callback;
mod wecom_contacts;

use actix_web::web;
use huoke_shared::{Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "intake",
        needs: huoke_shared::Needs::STORE,
        start: |infra, stop| {
            let contacts = huoke_shared::Consumer {
                queue: huoke_shared::messages::queues::INTAKE_WECOM_CONTACTS,
                options: infra.settings.consumer_options(),
                handler: std::sync::Arc::new(wecom_contacts::WecomContacts::new(infra)),
            };
            let mut running = Running::new(routes, vec![contacts]);
            running.tasks.push(imports::worker::start(infra.clone(), stop.clone()));
            running
        },
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/leads", web::post().to(handlers::post_lead))
        .route("/v1/leads/bulk", web::post().to(imports::upload))
        .route("/v1/imports/{id}", web::get().to(imports::status))
        .route("/v1/imports/{id}/errors", web::get().to(imports::errors_csv))
        .route("/v1/captures/{id}", web::get().to(handlers::get_capture))
        .route("/v1/webhook-sources", web::post().to(hooks::create_source))
        .route("/v1/webhook-sources", web::get().to(hooks::list_sources))
        .route("/v1/webhook-sources/{id}", web::delete().to(hooks::disable_source))
        .route("/hooks/{source_id}", web::post().to(hooks::receive))
        .route("/hooks/wecom/{tenant_id}", web::get().to(wecom_callback::verify_url))
        .route("/hooks/wecom/{tenant_id}", web::post().to(wecom_callback::receive))
        .route("/v1/forms", web::post().to(forms::create))
        .route("/v1/forms", web::get().to(forms::list))
        .route("/v1/forms/{id}", web::get().to(forms::get))
        .route("/v1/forms/{id}", web::patch().to(forms::update))
        .route("/f/{id}", web::get().to(forms::public::show))
        .route("/f/{id}", web::post().to(forms::public::post_page))
        .route("/f/{id}/submit", web::post().to(forms::public::post_json))
        .route(
            "/f/{id}/submit",
            web::method(actix_web::http::Method::OPTIONS).to(forms::public::preflight),
        );
}
