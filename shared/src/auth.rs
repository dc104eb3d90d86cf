//! Authentication: JWTs as the API contract describes them (HS256 with a shared
//! secret, or RS256/EdDSA with a key pair), an actix extractor yielding the caller,
//! role checks, and argon2 password hashing.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::JwtConfig;
use crate::error::ApiError;
use crate::infra::Infra;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    Marketer,
    Sdr,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "marketer" => Some(Role::Marketer),
            "sdr" => Some(Role::Sdr),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Marketer => "marketer",
            Role::Sdr => "sdr",
        }
    }

    /// Roles nest: an admin may do what a manager or marketer may, a manager what
    /// an SDR may.
    pub fn grants(self, needed: Role) -> bool {
        self == needed || matches!((self, needed), (Role::Admin, _) | (Role::Manager, Role::Sdr))
    }
}

/// Roles as stored: comma-separated names.
pub fn roles_to_string(roles: &BTreeSet<Role>) -> String {
    roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

/// Role names from a request; each unknown one is a problem on `field`.
pub fn parse_roles(names: &[String], field: &str, errors: &mut Vec<crate::error::FieldError>) -> BTreeSet<Role> {
    let mut roles = BTreeSet::new();
    for name in names {
        match Role::parse(name) {
            Some(role) => {
                roles.insert(role);
            }
            None => errors.push(crate::error::FieldError::new(
                field,
                format!("unknown role `{name}` (admin, manager, marketer, sdr)"),
            )),
        }
    }
    roles
}

pub fn roles_from_string(s: &str) -> BTreeSet<Role> {
    s.split(',').filter_map(|r| Role::parse(r.trim())).collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tid: String,
    pub roles: Vec<Role>,
    pub exp: i64,
    pub iat: i64,
    /// Who issued the token: always [`ISSUER`].
    pub iss: String,
    /// Who it is for: always [`AUDIENCE`]. A token another system signed with a
    /// shared key, for itself, is refused here.
    pub aud: String,
}

pub const ISSUER: &str = "huoke";
pub const AUDIENCE: &str = "huoke-api";

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub staff_id: String,
    pub tenant_id: String,
    pub roles: BTreeSet<Role>,
}

impl Caller {
    pub fn has(&self, needed: Role) -> bool {
        self.roles.iter().any(|r| r.grants(needed))
    }

    /// Passes when any held role grants any of `allowed`.
    pub fn require_any(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            let names: Vec<_> = allowed.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "this needs one of the roles: {}",
                names.join(", ")
            )))
        }
    }
}

pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
}

impl JwtKeys {
    pub fn from_config(config: &JwtConfig) -> anyhow::Result<Self> {
        match config {
            JwtConfig::Secret(secret) => Ok(JwtKeys {
                algorithm: Algorithm::HS256,
                encoding: Some(EncodingKey::from_secret(secret)?),
                decoding: DecodingKey::from_secret(secret)?,
            }),
            JwtConfig::KeyPair {
                public_pem,
                private_pem,
            } => {
                let pem = public_pem.as_bytes();
                let (algorithm, decoding) = match DecodingKey::from_rsa_pem(pem) {
                    Ok(key) => (Algorithm::RS256, key),
                    Err(_) => (
                        Algorithm::EdDSA,
                        DecodingKey::from_ed_pem(pem)
                            .map_err(|e| anyhow::anyhow!("HUOKE_JWT_PUBLIC_KEY is neither RSA nor Ed25519: {e}"))?,
                    ),
                };
                let encoding = match private_pem {
                    None => None,
                    Some(p) => Some(
                        match algorithm {
                            Algorithm::RS256 => EncodingKey::from_rsa_pem(p.as_bytes()),
                            _ => EncodingKey::from_ed_pem(p.as_bytes()),
                        }
                        .map_err(|e| anyhow::anyhow!("HUOKE_JWT_PRIVATE_KEY: {e}"))?,
                    ),
                };
                Ok(JwtKeys {
                    algorithm,
                    encoding,
                    decoding,
                })
            }
        }
    }

    pub fn issue(
        &self,
        staff_id: &str,
        tenant_id: &str,
        roles: &BTreeSet<Role>,
        ttl_secs: i64,
    ) -> anyhow::Result<String> {
        let encoding = self
            .encoding
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this process cannot issue tokens: set HUOKE_JWT_PRIVATE_KEY"))?;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: staff_id.to_string(),
            tid: tenant_id.to_string(),
            roles: roles.iter().copied().collect(),
            iat: now,
            exp: now + ttl_secs,
            iss: ISSUER.to_string(),
            aud: AUDIENCE.to_string(),
        };
        Ok(jsonwebtoken::encode(&Header::new(self.algorithm), &claims, encoding)?)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 30;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let infra = req.app_data::<web::Data<Infra>>().cloned();
        // An API key with roles may act with exactly those roles (never as a person).
        if let Some(token) = crate::apikeys::bearer(req).filter(|t| crate::apikeys::looks_like_key(t)) {
            let token = token.to_string();
            return Box::pin(async move {
                let infra = infra.ok_or_else(no_infra)?;
                let key = crate::apikeys::required(&infra.store, &token).await?;
                if key.roles.is_empty() {
                    return Err(ApiError::Forbidden(
                        "this API key has scopes but no role, and this endpoint needs a role".into(),
                    ));
                }
                Ok(Caller {
                    staff_id: key.actor(),
                    tenant_id: key.tenant_id,
                    roles: key.roles,
                })
            });
        }
        let verified = claims_of(req);
        Box::pin(async move {
            let (claims, infra) = (verified?, infra.ok_or_else(no_infra)?);
            // Switched off since the token was issued: refused at once.
            let standing = crate::revocation::standing(&*infra.cache, &infra.store, &claims.tid, &claims.sub).await?;
            if !standing.is_some_and(|s| s.accepts(claims.iat)) {
                return Err(ApiError::Unauthorized(
                    "this token has been revoked; sign in again".into(),
                ));
            }
            Ok(Caller {
                staff_id: claims.sub,
                tenant_id: claims.tid,
                roles: claims.roles.into_iter().collect(),
            })
        })
    }
}

fn no_infra() -> ApiError {
    ApiError::Internal(anyhow::anyhow!("Infra missing from app data"))
}

/// The web console's sign-in cookie: the same access token, kept `HttpOnly`.
pub const SESSION_COOKIE: &str = "huoke_session";

/// The API reads the console's pages make from the browser itself.
pub fn cookie_may_read(path: &str) -> bool {
    let under = |prefix: &str, suffixes: &[&str]| {
        path.strip_prefix(prefix).is_some_and(|rest| {
            suffixes.iter().any(|s| {
                rest.strip_suffix(s)
                    .is_some_and(|id| !id.is_empty() && !id.contains('/'))
            })
        })
    };
    path == "/v1/inbox/stream"
        || under("/v1/live-codes/", &["/qr.png", "/qr.svg"])
        || under("/v1/campaigns/", &["/qr.zip"])
}

fn claims_of(req: &HttpRequest) -> Result<Claims, ApiError> {
    let infra = req.app_data::<web::Data<Infra>>().ok_or_else(no_infra)?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // The console's pages read a few things from the browser with their cookie: the
    // inbox stream and QR images. Only those, and only reads: a cookie rides along on
    // requests other sites make, so it never authorises a change (no CSRF through
    // the API) nor reads anything else.
    let safe = matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    );
    if header.is_none()
        && safe
        && cookie_may_read(req.path())
        && let Some(cookie) = req.cookie(SESSION_COOKIE)
    {
        return infra.jwt.verify(cookie.value());
    }
    let header = header.ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer token".into()))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".into()))?;
    infra.jwt.verify(token)
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_reads_only_what_pages_load() {
        for ok in [
            "/v1/inbox/stream",
            "/v1/live-codes/abc/qr.png",
            "/v1/live-codes/abc/qr.svg",
            "/v1/campaigns/c1/qr.zip",
        ] {
            assert!(cookie_may_read(ok), "{ok}");
        }
        for no in [
            "/v1/inbox",
            "/v1/leads/1",
            "/v1/live-codes//qr.png",
            "/v1/live-codes/a/b/qr.png",
            "/v1/me",
        ] {
            assert!(!cookie_may_read(no), "{no}");
        }
    }

    #[test]
    fn roles_nest() {
        assert!(Role::Admin.grants(Role::Sdr));
        assert!(Role::Admin.grants(Role::Marketer));
        assert!(Role::Manager.grants(Role::Sdr));
        assert!(!Role::Manager.grants(Role::Marketer));
        assert!(!Role::Sdr.grants(Role::Manager));
        assert!(!Role::Marketer.grants(Role::Sdr));
    }

    #[test]
    fn role_strings_round_trip() {
        let roles: BTreeSet<Role> = [Role::Sdr, Role::Admin].into();
        assert_eq!(roles_from_string(&roles_to_string(&roles)), roles);
        assert!(roles_from_string("sdr,ghost").contains(&Role::Sdr));
    }

    #[test]
    fn hs256_tokens_verify_and_expire() {
        let keys = JwtKeys::from_config(&JwtConfig::Secret(b"0123456789abcdef0123456789abcdef".to_vec())).unwrap();
        let roles: BTreeSet<Role> = [Role::Sdr].into();
        let token = keys.issue("s1", "t1", &roles, 60).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.tid.as_str()), ("s1", "t1"));
        assert_eq!(claims.roles, vec![Role::Sdr]);

        let expired = keys.issue("s1", "t1", &roles, -3600).unwrap();
        assert!(keys.verify(&expired).is_err());

        let other = JwtKeys::from_config(&JwtConfig::Secret(b"another-secret-another-secret-xx".to_vec())).unwrap();
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn tokens_must_name_our_issuer_and_audience() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let keys = JwtKeys::from_config(&JwtConfig::Secret(secret.to_vec())).unwrap();
        let now = chrono::Utc::now().timestamp();
        let forge = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret).unwrap(),
            )
            .unwrap()
        };
        let base = serde_json::json!({"sub": "s1", "tid": "t1", "roles": ["admin"], "iat": now, "exp": now + 60});
        let with = |extra: serde_json::Value| {
            let mut c = base.clone();
            c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            forge(c)
        };
        // Same key, but no issuer or audience: signed by something else that shares the key.
        assert!(keys.verify(&with(serde_json::json!({}))).is_err());
        assert!(keys.verify(&with(serde_json::json!({"iss": "huoke"}))).is_err());
        assert!(
            keys.verify(&with(serde_json::json!({"iss": "other", "aud": AUDIENCE})))
                .is_err()
        );
        assert!(
            keys.verify(&with(serde_json::json!({"iss": ISSUER, "aud": "other-api"})))
                .is_err()
        );
        assert!(
            keys.verify(&with(serde_json::json!({"iss": ISSUER, "aud": AUDIENCE})))
                .is_ok()
        );
    }

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }
}
