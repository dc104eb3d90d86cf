//! The baseline for `bench/scan.sh`: a bare actix-web server that answers every
//! `GET /s/{code}` with `302 Location: /c/x?via={code}` and does nothing else — no
//! middleware, no state, no I/O. It runs with the same number of HTTP workers as
//! the benchmarked `huoke serve codes` (2, or `BARE_WORKERS`).
//!
//! ```sh
//! cargo run --release --example bare302 -- 127.0.0.1:18081
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark tool, not served code"
)]

use actix_web::http::header::LOCATION;
use actix_web::{App, HttpResponse, HttpServer, web};

async fn scan(code: web::Path<String>) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((LOCATION, format!("/c/x?via={}", code.into_inner())))
        .finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".to_string());
    let workers = std::env::var("BARE_WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
        .unwrap_or(2);
    eprintln!("bare302 listening on {addr} with {workers} workers");
    HttpServer::new(|| App::new().route("/s/{code}", web::get().to(scan)))
        .workers(workers)
        .bind(addr)?
        .run()
        .await
}
