//! intake: accepts captures from every channel, validates and normalises them,
//! makes them durable (capture row + outbox row in one transaction) and only then
//! answers 202. The outbox relay publishes `capture.received`.

mod handlers;

use actix_web::web;
use huoke_shared::{Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "intake",
        needs: huoke_shared::Needs::STORE,
        start: |_, _| Running::new(routes, Vec::new()),
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/leads", web::post().to(handlers::post_lead))
        .route("/v1/captures/{id}", web::get().to(handlers::get_capture));
}
