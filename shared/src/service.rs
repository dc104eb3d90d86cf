//! What a service crate hands to the binary: its HTTP routes, its consumers and any
//! background tasks, started once per process and shared by every HTTP worker.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bus::{ConsumerOptions, Handler};
use crate::infra::Infra;

pub struct Consumer {
    /// One of the queues in `messages::TOPOLOGY`.
    pub queue: &'static str,
    pub options: ConsumerOptions,
    pub handler: Arc<dyn Handler>,
}

pub type Routes = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A started service: routes (called once per HTTP worker), consumers for the bus to
/// run, and tasks it spawned itself (which stop when the stop signal turns true).
pub struct Running {
    pub routes: Routes,
    pub consumers: Vec<Consumer>,
    pub tasks: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn new(routes: fn(&mut web::ServiceConfig), consumers: Vec<Consumer>) -> Self {
        Running {
            routes: Arc::new(routes),
            consumers,
            tasks: Vec::new(),
        }
    }
}

#[derive(Clone, Copy)]
pub struct ServiceDef {
    pub name: &'static str,
    pub start: fn(&Infra, &watch::Receiver<bool>) -> Running,
    /// The backends without which the service cannot answer its HTTP traffic; only
    /// these make `/readyz` fail. The outbox rides through a broker outage and the
    /// cache has fallbacks, so most services need only the store.
    pub needs: Needs,
}

/// Which backends a process cannot serve without.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub store: bool,
    pub bus: bool,
    pub cache: bool,
}

impl Needs {
    pub const NOTHING: Needs = Needs {
        store: false,
        bus: false,
        cache: false,
    };
    pub const STORE: Needs = Needs {
        store: true,
        bus: false,
        cache: false,
    };

    /// What a process running several services needs.
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            store: self.store || other.store,
            bus: self.bus || other.bus,
            cache: self.cache || other.cache,
        }
    }
}

/// Runs `job` now and then every `every` until the stop signal, in a task of its own.
/// A failed run is logged (as `what`) and the next one comes as usual: these are
/// sweeps that find their work in the store, so nothing is lost by waiting.
pub fn every<F, Fut>(what: &'static str, every: Duration, mut stop: watch::Receiver<bool>, mut job: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<usize>> + Send,
{
    tokio::spawn(async move {
        loop {
            if let Err(err) = job().await {
                tracing::warn!(task = what, error = %format!("{err:#}"), "a periodic task failed; it runs again later");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    })
}
