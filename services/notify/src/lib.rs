//! notify: tells the outside world. Outbound webhooks — a tenant subscribes a URL to
//! lead and assignment events; each event becomes one delivery per subscription
//! (`notify.fanout`), and each delivery is POSTed, signed, by `notify.deliveries`,
//! retried with the bus's backoff, parked as a dead letter when it keeps failing and
//! replayable from there like any other message. And WeCom app messages to whoever
//! a lead is offered to.

mod deliver;
mod fanout;
mod subscriptions;
mod wecom_messages;

use actix_web::web;
use huoke_shared::consumer::Transactional;
use huoke_shared::messages::queues;
use huoke_shared::{Consumer, Infra, Running, ServiceDef};

pub fn service() -> ServiceDef {
    ServiceDef {
        name: "notify",
        needs: huoke_shared::Needs::STORE,
        start: |infra, _| Running::new(routes, consumers(infra)),
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/webhook-subscriptions", web::post().to(subscriptions::create))
        .route("/v1/webhook-subscriptions", web::get().to(subscriptions::list))
        .route(
            "/v1/webhook-subscriptions/{id}",
            web::delete().to(subscriptions::revoke),
        )
        .route(
            "/v1/webhook-subscriptions/{id}/deliveries",
            web::get().to(subscriptions::deliveries),
        );
}

fn consumers(infra: &Infra) -> Vec<Consumer> {
    let mut deliveries = infra.settings.consumer_options();
    // A receiver may be down for hours: more tries, further apart, one at a time.
    deliveries.max_attempts = infra.settings.webhook_max_attempts;
    deliveries.batch = 1;
    deliveries.prefetch = deliveries.prefetch.min(32);
    vec![
        Consumer {
            queue: queues::NOTIFY_FANOUT,
            options: infra.settings.consumer_options(),
            handler: Transactional::new(infra, fanout::FanOut),
        },
        Consumer {
            queue: queues::NOTIFY_DELIVERIES,
            options: deliveries,
            handler: std::sync::Arc::new(deliver::Deliver::new(infra)),
        },
        Consumer {
            queue: queues::NOTIFY_WECOM,
            options: infra.settings.consumer_options(),
            handler: std::sync::Arc::new(wecom_messages::WecomMessages::new(infra)),
        },
    ]
}
