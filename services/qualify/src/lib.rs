//! qualify: resolves each capture to one person — identities (personal phone,
//! e-mail, WeChat ids scoped to their app or corp) unique per tenant, leads that
//! turn out to be one person merged (and the merge undoable), possible duplicates
//! flagged — then scores the lead with the tenant's versioned rules (fit, and
//! engagement that decays) and publishes `lead.qualified`. Also serves the lead
//! read API, manual merges and the scoring rules.

mod consumer;
mod decay;
mod duplicates;
mod engagement;
mod facts;
mod http;
mod identity;
mod read;
pub mod rules;
pub mod scoring;
mod visibility;

use actix_web::web;
use huoke_shared::consumer::Transactional;
use huoke_shared::messages::queues;
use huoke_shared::{Consumer, Infra, Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "qualify",
        needs: huoke_shared::Needs::STORE,
        start: |infra, stop| {
            let mut running = Running::new(routes, consumers(infra));
            running.tasks.push(decay::start(infra.clone(), stop.clone()));
            running
        },
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/leads/{id}", web::get().to(read::get_lead))
        .route("/v1/leads/{id}/score", web::get().to(http::score_at))
        .route("/v1/leads/{id}/merge", web::post().to(http::merge))
        .route("/v1/leads/{id}/merge/undo", web::post().to(http::undo_merge))
        .route("/v1/scoring/rules", web::get().to(http::get_rules))
        .route("/v1/scoring/rules", web::put().to(http::put_rules))
        .route("/v1/scoring/rules/history", web::get().to(http::rules_history));
}

fn consumers(infra: &Infra) -> Vec<Consumer> {
    vec![
        Consumer {
            queue: queues::QUALIFY_CAPTURES,
            options: infra.settings.consumer_options(),
            handler: Transactional::new(infra, consumer::QualifyCaptures),
        },
        Consumer {
            queue: queues::QUALIFY_ENGAGEMENT,
            options: infra.settings.consumer_options(),
            handler: Transactional::new(infra, engagement::CreditEngagement),
        },
    ]
}
