//! pool: the SDR's side. Projects `lead.assigned` into each SDR's inbox and lets
//! the assignee accept within the SLA.

mod consumer;
mod inbox;

use std::sync::Arc;

use actix_web::web;
use huoke_shared::bus::ConsumerOptions;
use huoke_shared::messages::queues;
use huoke_shared::{Consumer, Infra, Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "pool",
        start: |infra, _| Running::new(routes, consumers(infra)),
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/inbox", web::get().to(inbox::list))
        .route("/v1/assignments/{id}/accept", web::post().to(inbox::accept));
}

fn consumers(infra: &Infra) -> Vec<Consumer> {
    vec![Consumer {
        queue: queues::POOL_ASSIGNMENTS,
        options: ConsumerOptions {
            prefetch: infra.settings.bus_prefetch,
            ..Default::default()
        },
        handler: Arc::new(consumer::ProjectAssignments { infra: infra.clone() }),
    }]
}
