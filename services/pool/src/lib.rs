//! pool: the SDR's side. Projects `lead.assigned` into each SDR's inbox and lets
//! the assignee accept or reject an offer (the lead lifecycle in `huoke_shared::lifecycle`).

mod consumer;
mod inbox;

use actix_web::web;
use huoke_shared::consumer::Transactional;
use huoke_shared::messages::queues;
use huoke_shared::{Consumer, Infra, Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "pool",
        needs: huoke_shared::Needs::STORE,
        start: |infra, _| Running::new(routes, consumers(infra)),
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/inbox", web::get().to(inbox::list))
        .route("/v1/assignments/{id}/accept", web::post().to(inbox::accept))
        .route("/v1/assignments/{id}/reject", web::post().to(inbox::reject));
}

fn consumers(infra: &Infra) -> Vec<Consumer> {
    vec![Consumer {
        queue: queues::POOL_ASSIGNMENTS,
        options: infra.settings.consumer_options(),
        handler: Transactional::new(infra, consumer::ProjectAssignments),
    }]
}
