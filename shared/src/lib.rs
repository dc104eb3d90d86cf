//! Infrastructure every huoke service shares: configuration, the three I/O seams
//! (store, bus, cache), auth, problem+json errors, telemetry and the message catalogue.
//!
//! Services depend on this crate and never on each other.

pub mod apikeys;
pub mod auth;
pub mod bus;
pub mod cache;
pub mod capture;
pub mod channels;
pub mod clock;
pub mod company;
pub mod config;
pub mod consumer;
pub mod contact;
pub mod deadletters;
pub mod error;
pub mod housekeeping;
pub mod html;
pub mod http;
pub mod idempotency;
pub mod infra;
pub mod lifecycle;
pub mod messages;
pub mod outbound;
pub mod paging;
pub mod proxies;
pub mod ratelimit;
pub mod repo;
pub mod revocation;
pub mod schedule;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod visitor;
pub mod wecom;
pub mod wecom_crypto;

pub use error::{ApiError, ApiResult};
pub use infra::Infra;
pub use service::{Consumer, Needs, Running, ServiceDef};
