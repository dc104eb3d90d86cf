//! router: gives every qualified lead an owner by the tenant's routing rules —
//! the account's owner or the employee the prospect came through when they may take
//! it, else the first matching rule's team, person or the public pool, with
//! round-robin, weighted or least-loaded choice among those eligible (active, in
//! working hours, under their caps) — and holds them to the SLA: an offer not
//! accepted in time goes to the next SDR, then the manager, then the pool. Every
//! decision is written down with its candidates and exclusions.

mod consumer;
pub mod decide;
pub mod facts;
mod http;
mod reroute;
mod routing;
pub mod rules;
pub mod sla;
mod timers;
mod world;

use actix_web::web;
use huoke_shared::consumer::Transactional;
use huoke_shared::messages::queues;
use huoke_shared::{Consumer, Infra, Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "router",
        needs: huoke_shared::Needs::STORE,
        start: |infra, stop| {
            let mut running = Running::new(routes, consumers(infra));
            running.tasks.push(timers::start(infra.clone(), stop.clone()));
            running
        },
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/routing/rules", web::get().to(http::get_rules))
        .route("/v1/routing/rules", web::put().to(http::put_rules))
        .route("/v1/routing/rules/history", web::get().to(http::rules_history))
        .route("/v1/routing/simulate", web::post().to(http::simulate))
        .route("/v1/routing/replay", web::post().to(http::replay))
        .route("/v1/sla/policies", web::get().to(http::get_sla))
        .route("/v1/sla/policies", web::put().to(http::put_sla))
        .route("/v1/sla/policies/history", web::get().to(http::sla_history))
        .route("/v1/calendar", web::get().to(http::get_calendar))
        .route("/v1/calendar", web::put().to(http::put_calendar))
        .route("/v1/leads/{id}/decisions", web::get().to(http::decisions));
}

fn consumers(infra: &Infra) -> Vec<Consumer> {
    vec![
        Consumer {
            queue: queues::ROUTER_LEADS,
            options: infra.settings.consumer_options(),
            handler: Transactional::new(infra, consumer::RouteLeads::new(infra)),
        },
        Consumer {
            queue: queues::ROUTER_REROUTES,
            options: infra.settings.consumer_options(),
            handler: Transactional::new(infra, reroute::Reroute::new(infra)),
        },
    ]
}
