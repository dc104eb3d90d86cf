//! cards: smart business cards (智能名片). A staff member's card is a small public
//! H5 page with Open Graph tags for WeChat sharing, a vCard to save, tracked share
//! links (a share tree), and a lead form whose captures route to the card's owner.

mod form;
mod manage;
mod model;
mod page;
mod public;
mod repo;
mod vcard;

use actix_web::web;
use huoke_shared::{Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "cards",
        needs: huoke_shared::Needs::STORE,
        start: |_, _| Running::new(routes, Vec::new()),
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/cards/{staff_id}", web::put().to(manage::put_card))
        .route("/v1/cards/{staff_id}", web::get().to(manage::get_card))
        .route("/v1/cards/{staff_id}/shares", web::post().to(manage::create_share))
        .route("/v1/cards/{staff_id}/stats", web::get().to(manage::stats))
        .route("/c/{slug}", web::get().to(public::page))
        .route("/c/{slug}/vcard", web::get().to(public::vcard))
        .service(
            web::resource("/c/{slug}/share")
                .app_data(web::PayloadConfig::new(public::SHARE_BODY_MAX))
                .route(web::post().to(public::share)),
        )
        .service(
            web::resource("/c/{slug}/leads")
                .app_data(form::form_config())
                .route(web::post().to(form::submit)),
        );
}
