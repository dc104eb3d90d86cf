//! What a service crate hands to the binary: its HTTP routes and its consumers.

use std::sync::Arc;

use actix_web::web;

use crate::bus::{ConsumerOptions, Handler};
use crate::infra::Infra;

pub struct Consumer {
    /// One of the queues in `messages::TOPOLOGY`.
    pub queue: &'static str,
    pub options: ConsumerOptions,
    pub handler: Arc<dyn Handler>,
}

#[derive(Clone, Copy)]
pub struct ServiceDef {
    pub name: &'static str,
    pub routes: fn(&mut web::ServiceConfig),
    pub consumers: fn(&Infra) -> Vec<Consumer>,
}

impl ServiceDef {
    /// A service with routes only.
    pub fn no_consumers(_: &Infra) -> Vec<Consumer> {
        Vec::new()
    }
}
