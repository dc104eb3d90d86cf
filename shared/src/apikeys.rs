//! API keys for machines (`Authorization: Bearer hk_…`): made by an admin, shown
//! once, stored only as a SHA-256 hash (a key is 190 random bits, so a fast hash is
//! safe where a password would need argon2), revocable at once.
//!
//! A key carries *scopes* — what a machine may do on the machine endpoints
//! (`leads:write` to post leads and read their captures, `leads:read` to read leads)
//! — and optionally *roles*, with which it may also call the staff endpoints those
//! roles allow, as a member without a person (it can never accept an assignment).
//! Handlers ask for what they need: [`Principal`] (staff or key, checked by scope) or
//! [`crate::auth::Caller`] (staff, or a key with roles).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::auth::{Caller, Role, roles_from_string};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::infra::Infra;
use crate::store::Store;

pub const PREFIX: &str = "hk_";
const KEY_CHARS: usize = 32;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a key may be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    LeadsWrite,
    LeadsRead,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::LeadsWrite, Scope::LeadsRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::LeadsWrite => "leads:write",
            Scope::LeadsRead => "leads:read",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

/// A new random key: `hk_` and 32 base62 characters.
pub fn generate() -> String {
    let mut rng = rand::rng();
    let body: String = (0..KEY_CHARS)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect();
    format!("{PREFIX}{body}")
}

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The first characters of a key, safe to show in lists and logs.
pub fn shown_prefix(key: &str) -> String {
    key.chars().take(PREFIX.len() + 6).collect()
}

pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// A key that authenticated a request.
#[derive(Debug, Clone)]
pub struct KeyCaller {
    pub id: String,
    pub tenant_id: String,
    pub scopes: BTreeSet<Scope>,
    pub roles: BTreeSet<Role>,
}

impl KeyCaller {
    /// How the key appears as an actor (`created_by`, history).
    pub fn actor(&self) -> String {
        format!("key:{}", self.id)
    }
}

/// Looks a presented key up; `None` when unknown or revoked. Records when it was
/// last used, at most once a minute (no write on most requests).
pub async fn authenticate(store: &Store, token: &str) -> Result<Option<KeyCaller>, ApiError> {
    let row: Option<(String, String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT id, tenant_id, scopes, roles, last_used_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash(token))
    .fetch_optional(store.pool())
    .await?;
    let Some((id, tenant_id, scopes, roles, last_used)) = row else {
        return Ok(None);
    };
    let now = now_ms();
    if last_used.is_none_or(|at| now - at > 60_000) {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&id)
            .execute(store.pool())
            .await?;
    }
    Ok(Some(KeyCaller {
        id,
        tenant_id,
        scopes: scopes.split(',').filter_map(|s| Scope::parse(s.trim())).collect(),
        roles: roles_from_string(&roles),
    }))
}

/// [`authenticate`], with an unknown or revoked key answered 401.
pub async fn required(store: &Store, token: &str) -> Result<KeyCaller, ApiError> {
    authenticate(store, token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key".into()))
}

/// The bearer token of a request, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
}

/// Who is calling a machine endpoint: a member of staff or an API key.
#[derive(Debug, Clone)]
pub enum Principal {
    Staff(Caller),
    Key(KeyCaller),
}

impl Principal {
    pub fn tenant_id(&self) -> &str {
        match self {
            Principal::Staff(c) => &c.tenant_id,
            Principal::Key(k) => &k.tenant_id,
        }
    }

    pub fn actor(&self) -> String {
        match self {
            Principal::Staff(c) => c.staff_id.clone(),
            Principal::Key(k) => k.actor(),
        }
    }

    /// Staff pass (their roles are checked where it matters); a key needs one of
    /// `scopes`.
    pub fn require_scope(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        match self {
            Principal::Staff(_) => Ok(()),
            Principal::Key(k) if scopes.iter().any(|s| k.scopes.contains(s)) => Ok(()),
            Principal::Key(_) => {
                let names: Vec<_> = scopes.iter().map(|s| s.as_str()).collect();
                Err(ApiError::Forbidden(format!(
                    "this API key lacks the scope: {}",
                    names.join(" or ")
                )))
            }
        }
    }
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let token = bearer(req).map(str::to_string);
        let infra = req.app_data::<web::Data<Infra>>().cloned();
        match token {
            Some(token) if looks_like_key(&token) => Box::pin(async move {
                let infra = infra.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("Infra missing from app data")))?;
                required(&infra.store, &token).await.map(Principal::Key)
            }),
            _ => {
                let staff = Caller::from_request(req, payload);
                Box::pin(async move { staff.await.map(Principal::Staff) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_recognisable() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), PREFIX.len() + KEY_CHARS);
        assert!(looks_like_key(&a));
        assert!(a[PREFIX.len()..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(hash(&a).len(), 64);
        assert_eq!(shown_prefix(&a), a[..9]);
    }

    #[test]
    fn scopes_read_back() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("leads:delete"), None);
    }
}
