//! qualify: resolves each capture to a person (exact match on normalised phone,
//! e-mail or WeChat ids), creates or updates the lead, scores it with explainable
//! rules and publishes `lead.qualified`. Also serves the lead read API.

mod consumer;
mod read;
pub mod scoring;

use actix_web::web;
use huoke_shared::consumer::Transactional;
use huoke_shared::messages::queues;
use huoke_shared::{Consumer, Infra, Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "qualify",
        needs: huoke_shared::Needs::STORE,
        start: |infra, _| Running::new(routes, consumers(infra)),
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/leads/{id}", web::get().to(read::get_lead));
}

fn consumers(infra: &Infra) -> Vec<Consumer> {
    vec![Consumer {
        queue: queues::QUALIFY_CAPTURES,
        options: infra.settings.consumer_options(),
        handler: Transactional::new(infra, consumer::QualifyCaptures),
    }]
}
