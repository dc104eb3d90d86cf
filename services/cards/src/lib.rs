//! cards: routes arrive with the capture-surfaces work; the crate already takes its
//! place in the binary so deployment files and health endpoints are in place.

use actix_web::web;
use huoke_shared::{Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "cards",
        start: |_, _| Running::new(routes, Vec::new()),
    }
}

fn routes(_cfg: &mut web::ServiceConfig) {}
