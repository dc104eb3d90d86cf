//! pool: the SDR's side. Projects `lead.assigned` into each SDR's inbox; lets the
//! assignee accept or reject an offer, log activities and move the lead along the
//! funnel; keeps the public pool (claims within limits, give-backs, recycling). Every
//! change of a lead goes through `huoke_shared::lifecycle`.

mod consumer;
mod inbox;
mod public_pool;
mod recycle;
mod reports;
mod settings;
mod stream;
mod work;

use actix_web::web;
use huoke_shared::consumer::Transactional;
use huoke_shared::messages::queues;
use huoke_shared::{Consumer, Infra, Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "pool",
        needs: huoke_shared::Needs::STORE,
        start: |infra, stop| {
            let mut running = Running::new(routes, consumers(infra));
            running.tasks.push(recycle::start(infra.clone(), stop.clone()));
            // The live feed is set up now, not at the first stream: an offer made
            // while the first SDR connects is not missed.
            drop(infra.bus.live());
            running
        },
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/inbox", web::get().to(inbox::list))
        .route("/v1/inbox/stream", web::get().to(stream::stream))
        .route("/v1/assignments/{id}/accept", web::post().to(inbox::accept))
        .route("/v1/assignments/{id}/reject", web::post().to(inbox::reject))
        .route("/v1/leads/{id}/activities", web::post().to(work::add_activity))
        .route("/v1/leads/{id}/activities", web::get().to(work::list_activities))
        .route("/v1/leads/{id}/status", web::post().to(work::change_status))
        .route("/v1/leads/{id}/release", web::post().to(work::release))
        .route("/v1/pool", web::get().to(public_pool::list))
        .route("/v1/pool/settings", web::get().to(settings::get))
        .route("/v1/pool/settings", web::put().to(settings::put))
        .route("/v1/pool/{id}/claim", web::post().to(public_pool::claim))
        .route("/v1/reports/funnel", web::get().to(reports::funnel))
        .route("/v1/reports/sla", web::get().to(reports::sla));
}

fn consumers(infra: &Infra) -> Vec<Consumer> {
    vec![Consumer {
        queue: queues::POOL_ASSIGNMENTS,
        options: infra.settings.consumer_options(),
        handler: Transactional::new(infra, consumer::ProjectAssignments),
    }]
}
