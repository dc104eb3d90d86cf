//! codes: employee live codes (员工活码), channel codes and group codes; the public
//! scan path `/s/{code}`; QR images; scan analytics; the tenant's WeCom settings.

mod admin;
mod flood;
mod integrations;
mod leases;
pub mod model;
mod pages;
pub mod pick;
mod qr;
mod recorder;
pub mod rotation;
mod scan;
mod sketch;
mod tally;
mod tally_store;
pub use huoke_shared::schedule;
mod snapshot;
mod state;
mod stats;
mod sticky;
mod wecom_landing;

use std::sync::Arc;

use actix_web::web;
use huoke_shared::service::Routes;
use huoke_shared::wecom::WecomClient;
use huoke_shared::{Infra, Running, ServiceDef};
use tokio::sync::watch;

use crate::state::CodesState;

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "codes",
        start,
        // Scans are served from the in-memory snapshot (and the cache's in-process
        // fallback) while the store or Redis is away.
        needs: huoke_shared::Needs::NOTHING,
    }
}

fn start(infra: &Infra, stop: &watch::Receiver<bool>) -> Running {
    let (recorder, flusher) = recorder::Recorder::start(infra.clone(), stop.clone());
    let leases = Arc::new(leases::CapLeases::default());
    let lease_keeper = tokio::spawn(leases::run(leases.clone(), infra.cache.clone(), stop.clone()));
    let state = web::Data::new(CodesState {
        snapshots: Default::default(),
        cursors: Default::default(),
        recorder,
        wecom: WecomClient::with_allowed_hosts(infra.settings.wecom_allowed_hosts.clone()),
        flood: flood::FloodGuard::new(infra.settings.scan_rate_per_ip),
        leases,
        sticky_key: Default::default(),
    });
    let key_loader = tokio::spawn(load_sticky_key(infra.clone(), state.clone(), stop.clone()));
    let routes: Routes = Arc::new(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state.clone())
            .service(web::scope("/s").default_service(web::to(scan::scan)))
            .route("/v1/live-codes", web::post().to(admin::create))
            .route("/v1/live-codes", web::get().to(admin::list))
            .route("/v1/live-codes/{id}", web::get().to(admin::get))
            .route("/v1/live-codes/{id}", web::patch().to(admin::update))
            .route("/v1/live-codes/{id}", web::delete().to(admin::delete))
            .route("/v1/live-codes/{id}/qr.{format}", web::get().to(qr::image))
            .route("/v1/live-codes/{id}/logo", web::put().to(qr::put_logo))
            .route("/v1/live-codes/{id}/stats", web::get().to(stats::stats))
            .route("/v1/campaigns/{id}/qr.zip", web::get().to(qr::campaign_zip))
            .route("/v1/integrations/wecom", web::put().to(integrations::put))
            .route("/v1/integrations/wecom", web::get().to(integrations::get));
    });
    let fold = tokio::spawn(tally_store::keep_folding_raw_scans(infra.clone(), stop.clone()));
    Running {
        routes,
        consumers: Vec::new(),
        tasks: vec![flusher, fold, lease_keeper, key_loader],
    }
}

/// Makes or reads the sticky-pick key off the scan path, retrying every second while
/// the store is away: scans never wait on the store for it, and until it is in they
/// pick without remembering.
async fn load_sticky_key(infra: Infra, state: web::Data<CodesState>, mut stop: watch::Receiver<bool>) {
    loop {
        match sticky::StickyKey::load(&infra.store).await {
            Ok(key) => {
                let _ = state.sticky_key.set(key);
                return;
            }
            Err(err) => tracing::warn!(error = %err, "the sticky-pick key is unavailable; picking without it for now"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}
