//! Refresh tokens: access tokens live minutes (`HUOKE_TOKEN_TTL_SECS`, 15 min by
//! default) so a leaked one is short-lived; a refresh token (`HUOKE_REFRESH_TTL_SECS`,
//! 30 days) buys a new pair. Refresh tokens are random, stored as SHA-256 hashes,
//! rotated on every use (a used one is refused), and refused for a member switched
//! off since it was issued.

use actix_web::{HttpResponse, web};
use huoke_shared::clock::{new_id, now_ms};
use huoke_shared::http::Json;
use huoke_shared::repo::staff;
use huoke_shared::revocation;
use huoke_shared::{ApiError, ApiResult, Infra};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new refresh token for a member; answers the token itself (shown once).
pub async fn issue(infra: &Infra, tenant_id: &str, staff_id: &str) -> sqlx::Result<String> {
    let token = format!("hkr_{}{}", new_id(), new_id());
    let now = now_ms() / 1000;
    sqlx::query(
        "INSERT INTO refresh_tokens (id, tenant_id, staff_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(tenant_id)
    .bind(staff_id)
    .bind(hash(&token))
    .bind(now)
    .bind(now + infra.settings.refresh_ttl.as_secs() as i64)
    .execute(infra.store.pool())
    .await?;
    Ok(token)
}

/// The answer of a sign-in or a refresh: an access token and its refresh token.
pub async fn token_pair(infra: &Infra, tenant_id: &str, member: &staff::StaffRow) -> ApiResult<Value> {
    let ttl = infra.settings.token_ttl.as_secs() as i64;
    let access = infra.jwt.issue(&member.id, tenant_id, &member.roles(), ttl)?;
    let refresh = issue(infra, tenant_id, &member.id).await?;
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
        "refresh_expires_in": infra.settings.refresh_ttl.as_secs(),
    }))
}

#[derive(Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
}

fn refused() -> ApiError {
    ApiError::Unauthorized("refresh token unknown, used, expired or revoked; sign in again".into())
}

/// `POST /v1/auth/refresh {refresh_token}` → a new access token and refresh token.
pub async fn refresh(infra: web::Data<Infra>, body: Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(rotate(&infra, &body.0.refresh_token).await?))
}

/// Ends a refresh token (signing out): it can no longer be spent.
pub async fn revoke(infra: &Infra, refresh_token: &str) -> ApiResult<()> {
    sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
        .bind(now_ms() / 1000)
        .bind(hash(refresh_token.trim()))
        .execute(infra.store.pool())
        .await?;
    Ok(())
}

/// Spends a refresh token (once) for a new token pair.
pub async fn rotate(infra: &Infra, refresh_token: &str) -> ApiResult<Value> {
    let now = now_ms() / 1000;
    // Claimed in one guarded update: of two concurrent uses only one wins.
    let claimed: Option<(String, String, i64)> = sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = $1
         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
         RETURNING tenant_id, staff_id, created_at",
    )
    .bind(now)
    .bind(hash(refresh_token.trim()))
    .fetch_optional(infra.store.pool())
    .await?;
    let (tenant_id, staff_id, created_at) = claimed.ok_or_else(refused)?;
    let standing = revocation::standing(&*infra.cache, &infra.store, &tenant_id, &staff_id).await?;
    if !standing.is_some_and(|s| s.accepts(created_at)) {
        return Err(refused());
    }
    let member = staff::by_id(&infra.store, &tenant_id, &staff_id)
        .await?
        .ok_or_else(refused)?;
    token_pair(infra, &tenant_id, &member).await
}
