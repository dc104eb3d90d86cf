//! Builds the application from settings: backends, topology, consumers, the outbox
//! relay and the HTTP server, for one service or for all of them.

use std::net::TcpListener;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use huoke_shared::config::Settings;
use huoke_shared::http::{ApiBase, error_configs, not_found, ops_routes};
use huoke_shared::messages::TOPOLOGY;
use huoke_shared::store::OutboxRelay;
use huoke_shared::telemetry::{http_metrics, init_metrics};
use huoke_shared::{Infra, Needs, ServiceDef, deadletters, housekeeping};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub fn all_services() -> Vec<ServiceDef> {
    vec![
        huoke_console::service(),
        huoke_intake::service(),
        huoke_qualify::service(),
        huoke_router::service(),
        huoke_pool::service(),
        huoke_codes::service(),
        huoke_cards::service(),
        huoke_notify::service(),
    ]
}

pub fn service_named(name: &str) -> Option<ServiceDef> {
    all_services().into_iter().find(|s| s.name == name)
}

const OPENAPI: &str = include_str!("../docs/openapi.json");
/// How long a graceful stop waits for consumers and background tasks.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

pub struct Application {
    port: u16,
    infra: Infra,
    server: actix_web::dev::ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Application {
    /// Connects the backends, declares the bus topology, starts the services'
    /// consumers and the outbox relay, and starts serving HTTP.
    pub async fn build(settings: Settings, services: Vec<ServiceDef>) -> anyhow::Result<Application> {
        init_metrics();
        let listen = settings.listen;
        let workers_wanted = settings.http_workers;
        let infra = Infra::connect(settings).await?;
        Self::start(infra, services, listen, workers_wanted).await
    }

    pub async fn start(
        infra: Infra,
        services: Vec<ServiceDef>,
        listen: std::net::SocketAddr,
        http_workers: usize,
    ) -> anyhow::Result<Application> {
        // Every process declares every queue, so a message published before its
        // consumer ever ran still has somewhere durable to wait.
        tokio::time::timeout(std::time::Duration::from_secs(30), infra.bus.declare(TOPOLOGY))
            .await
            .context("declaring bus topology: no answer within 30 s")?
            .context("declaring bus topology")?;

        let (stop, stop_rx) = watch::channel(false);
        let mut workers = Vec::new();
        let mut routes = Vec::new();
        let mut needs = Needs::NOTHING;
        for service in &services {
            needs = needs.union(service.needs);
            let running = (service.start)(&infra, &stop_rx);
            for consumer in running.consumers {
                workers.push(
                    infra
                        .bus
                        .consume(consumer.queue, consumer.options, consumer.handler, stop_rx.clone()),
                );
            }
            workers.extend(running.tasks);
            routes.push(running.routes);
        }
        // Every process parks dead letters and prunes bookkeeping: competing
        // consumers and small idempotent deletes, so replicas only share the work.
        for parker in deadletters::parkers(&infra.store) {
            workers.push(
                infra
                    .bus
                    .consume(parker.queue, parker.options, parker.handler, stop_rx.clone()),
            );
        }
        workers.push(tokio::spawn(housekeeping::run(
            infra.store.clone(),
            infra.settings.processed_retention,
            stop_rx.clone(),
        )));
        let relay = OutboxRelay::new(infra.store.clone(), infra.bus.clone(), infra.outbox_wakeup.clone());
        workers.push(tokio::spawn(relay.run(stop_rx.clone())));

        let listener =
            TcpListener::bind(listen).with_context(|| format!("binding {listen} (HUOKE_LISTEN / --listen)"))?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(infra.clone());
        let needs = web::Data::new(needs);
        let own_host = match listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let api_base =
            web::Data::new(ApiBase(infra.settings.api_url.clone().unwrap_or_else(|| {
                format!("http://{}", std::net::SocketAddr::new(own_host, port))
            })));
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(data.clone())
                .app_data(needs.clone())
                .app_data(api_base.clone())
                .wrap(from_fn(http_metrics))
                .configure(error_configs)
                .configure(ops_routes)
                .route(
                    "/openapi.json",
                    web::get().to(|| async { HttpResponse::Ok().content_type("application/json").body(OPENAPI) }),
                );
            for configure in &routes {
                app = app.configure(|cfg| configure(cfg));
            }
            app.default_service(web::to(not_found))
        })
        .disable_signals()
        .shutdown_timeout(5);
        if http_workers > 0 {
            server = server.workers(http_workers);
        }
        let server = server.listen(listener)?.run();
        let handle = server.handle();
        let server_task = tokio::spawn(server);
        let names: Vec<_> = services.iter().map(|s| s.name).collect();
        tracing::info!(port, services = ?names, "huoke is serving");
        Ok(Application {
            port,
            infra,
            server: handle,
            server_task,
            stop,
            workers,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn infra(&self) -> &Infra {
        &self.infra
    }

    /// Graceful stop: the server finishes in-flight requests, consumers finish the
    /// message in hand, the relay its batch.
    /// A task still busy after [`STOP_GRACE`] is abandoned: what it held is safe
    /// elsewhere (an unacked message is redelivered, a leased row's lease lapses), and
    /// a stop that never ends is worse than one that ends a little rudely.
    pub async fn stop(self) {
        self.server.stop(true).await;
        let _ = self.server_task.await;
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        for mut worker in self.workers {
            if tokio::time::timeout_at(deadline, &mut worker).await.is_err() {
                tracing::warn!(
                    grace_s = STOP_GRACE.as_secs(),
                    "a background task did not stop in time; abandoning it"
                );
                worker.abort();
            }
        }
    }

    /// Serves until Ctrl-C or SIGTERM, then stops gracefully.
    pub async fn run_until_signalled(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("stopping");
        self.stop().await;
        Ok(())
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "no SIGTERM handler; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
