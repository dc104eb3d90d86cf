//! console: tenants' people and access — sign-in tokens, staff, teams, `/v1/me` —
//! and the landing page of the web console.

mod api_keys;
mod app;
mod campaigns;
mod dead_letters;
mod handlers;
mod refresh;
mod signin;
mod teams;

use actix_web::web;
use huoke_shared::{Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "console",
        needs: huoke_shared::Needs::STORE,
        start: |_, _| Running::new(routes, Vec::new()),
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    app::routes(cfg);
    cfg.route("/", web::get().to(handlers::landing))
        .route("/v1/auth/token", web::post().to(signin::issue_token))
        .route("/v1/auth/refresh", web::post().to(refresh::refresh))
        .route("/v1/api-keys", web::post().to(api_keys::create))
        .route("/v1/api-keys", web::get().to(api_keys::list))
        .route("/v1/api-keys/{id}", web::delete().to(api_keys::revoke))
        .route("/v1/staff", web::post().to(handlers::create_staff))
        .route("/v1/staff", web::get().to(handlers::list_staff))
        .route("/v1/staff/{id}", web::get().to(handlers::get_staff))
        .route("/v1/me", web::get().to(handlers::me))
        .route("/v1/tenant", web::get().to(handlers::get_tenant))
        .route("/v1/tenant", web::patch().to(handlers::update_tenant))
        .route("/v1/teams", web::post().to(teams::create_team))
        .route("/v1/staff/{id}", web::patch().to(handlers::update_staff))
        .route("/v1/teams", web::get().to(teams::list_teams))
        .route("/v1/campaigns", web::post().to(campaigns::create_campaign))
        .route("/v1/campaigns", web::get().to(campaigns::list_campaigns))
        .route("/v1/channels", web::post().to(campaigns::create_channel))
        .route("/v1/channels", web::get().to(campaigns::list_channels))
        .route("/v1/admin/dead-letters", web::get().to(dead_letters::list))
        .route(
            "/v1/admin/dead-letters/replay",
            web::post().to(dead_letters::replay_queue),
        )
        .route("/v1/admin/dead-letters/{id}", web::get().to(dead_letters::show))
        .route(
            "/v1/admin/dead-letters/{id}/replay",
            web::post().to(dead_letters::replay_one),
        );
}
