//! Black-box tests: the real application on a random port, driven over HTTP.
//! Every scenario runs twice — on the embedded backends (SQLite, SQL-backed bus,
//! in-memory cache) and on PostgreSQL + RabbitMQ + Redis when `DATABASE_URL`,
//! `AMQP_URL` and `REDIS_URL` are set (required with `HUOKE_REQUIRE_BACKENDS=1`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly by design")]

mod helpers;

mod api_keys;
mod bus_contract;
mod cache_contract;
mod cards;
mod channel_durability;
mod cli;
mod codes;
mod codes_qr;
mod codes_wecom;
mod console_browser;
mod console_pages;
mod durability;
mod forms;
mod idempotent_creates;
mod identity;
mod imports;
mod inbox_stream;
mod input_errors;
mod lead_flow;
mod openapi;
mod ops;
mod pipeline;
mod pool;
mod proxy;
mod reports;
mod routing;
mod scan_tallies;
mod scoring;
mod security;
mod staff_and_auth;
mod tenancy;
mod webhooks;
mod webhooks_out;
mod wecom_callback;
mod wecom_messages;
