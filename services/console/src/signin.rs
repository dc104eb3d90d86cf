//! `POST /v1/auth/token`: password sign-in, hardened against guessing.
//!
//! - Attempts are limited per client address and per account (tenant + e-mail),
//!   counted before the password is checked, in the shared cache so every replica
//!   counts together.
//! - Unknown tenants, unknown or inactive staff and staff without a password are
//!   checked against a dummy hash, so a failure takes as long whatever the reason.
//! - At most [`HASHING_AT_ONCE`] password checks run at once per process: argon2id
//!   takes ~19 MiB and tens of milliseconds each, so an unbounded burst of sign-ins
//!   would exhaust memory and the blocking pool.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use huoke_shared::auth::{hash_password, verify_password};
use huoke_shared::http::Json;
use huoke_shared::ratelimit::{self, Limit};
use huoke_shared::repo::{staff, tenants};
use huoke_shared::visitor::client_ip;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use tokio::sync::Semaphore;

pub const HASHING_AT_ONCE: usize = 4;
static HASHING: Semaphore = Semaphore::const_new(HASHING_AT_ONCE);

#[derive(Deserialize)]
pub struct TokenRequest {
    pub tenant: String,
    pub email: String,
    pub password: String,
}

/// One answer for every failed sign-in, so the endpoint does not reveal which
/// tenants or e-mail addresses exist.
fn bad_credentials() -> ApiError {
    ApiError::Unauthorized("tenant, e-mail or password is wrong".into())
}

/// A real argon2id hash of a password nobody knows, made once.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(&huoke_shared::clock::new_id()).unwrap_or_default())
}

pub async fn issue_token(
    req: HttpRequest,
    infra: web::Data<Infra>,
    body: Json<TokenRequest>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(sign_in(&req, &infra, body.0).await?))
}

/// Checks a password sign-in (limits, constant-time failure) and answers a token pair.
pub async fn sign_in(req: &HttpRequest, infra: &Infra, r: TokenRequest) -> ApiResult<serde_json::Value> {
    let s = &infra.settings;
    let per_address = Limit {
        requests: s.login_attempts_per_ip,
        per: Duration::from_secs(60),
    };
    let per_account = Limit {
        requests: s.login_attempts_per_account,
        per: s.login_window,
    };
    let account = format!("{}:{}", r.tenant.trim().to_lowercase(), r.email.trim().to_lowercase());
    ratelimit::check(&*infra.cache, "login-ip", &client_ip(req), per_address).await?;
    ratelimit::check(&*infra.cache, "login-account", &account, per_account).await?;

    let tenant = tenants::by_slug(&infra.store, r.tenant.trim()).await?;
    let member = match &tenant {
        Some(t) => staff::by_email(&infra.store, &t.id, &r.email)
            .await?
            .filter(|m| m.active != 0),
        None => None,
    };
    let hash = member.as_ref().and_then(|m| m.password_hash.clone());
    let known = hash.is_some();
    let checked = verify(r.password, hash.unwrap_or_else(|| dummy_hash().to_string())).await?;
    let (Some(tenant), Some(member), true, true) = (tenant, member, known, checked) else {
        return Err(bad_credentials());
    };
    crate::refresh::token_pair(infra, &tenant.id, &member).await
}

/// Checks a password on the blocking pool, a bounded number at a time.
async fn verify(password: String, hash: String) -> Result<bool, ApiError> {
    let busy = || ApiError::Unavailable("too many sign-ins at once; try again shortly".into());
    let _permit = tokio::time::timeout(Duration::from_secs(5), HASHING.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    web::block(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password check: {e}")))
}
