//! router: gives every qualified lead an owner — the employee the prospect came
//! through when they are an active SDR, otherwise the next active SDR in
//! round-robin — records why, starts the SLA clock and publishes `lead.assigned`.

mod consumer;
pub mod pick;

use actix_web::web;
use huoke_shared::consumer::Transactional;
use huoke_shared::messages::queues;
use huoke_shared::{Consumer, Infra, Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "router",
        needs: huoke_shared::Needs::STORE,
        start: |infra, _| Running::new(routes, consumers(infra)),
    }
}

fn routes(_cfg: &mut web::ServiceConfig) {}

fn consumers(infra: &Infra) -> Vec<Consumer> {
    vec![Consumer {
        queue: queues::ROUTER_LEADS,
        options: infra.settings.consumer_options(),
        handler: Transactional::new(infra, consumer::RouteLeads::new(infra)),
    }]
}
