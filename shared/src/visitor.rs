//! Anonymous visitors of public pages: a first-party cookie holding a random id,
//! stored and compared only as a salted hash, and a coarse client class.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "hk_v";

pub struct Visitor {
    /// Stable per browser and tenant; safe to store.
    pub hash: String,
    /// Set when the browser had no cookie yet: attach it to the response.
    pub new_cookie: Option<Cookie<'static>>,
}

/// Identifies the visitor by cookie, minting one when absent. The hash is salted
/// with the tenant so ids cannot be correlated across tenants.
pub fn identify(req: &HttpRequest, tenant_id: &str) -> Visitor {
    let existing = req
        .cookie(COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| (16..=64).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric()));
    match existing {
        Some(v) => Visitor {
            hash: hash(tenant_id, &v),
            new_cookie: None,
        },
        None => {
            // 128 random bits from the thread's generator (no system call per visitor).
            let v = format!("{:032x}", rand::random::<u128>());
            let hash = hash(tenant_id, &v);
            let cookie = Cookie::build(COOKIE, v)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .max_age(CookieDuration::days(365))
                .finish();
            Visitor {
                hash,
                new_cookie: Some(cookie),
            }
        }
    }
}

/// SHA-256 of `{tenant_id}:{raw}`, fed in parts (no joined copy), first 12 bytes in hex.
pub fn hash(tenant_id: &str, raw: &str) -> String {
    let digest = Sha256::new()
        .chain_update(tenant_id.as_bytes())
        .chain_update(b":")
        .chain_update(raw.as_bytes())
        .finalize();
    hex::encode(&digest[..12])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Wechat,
    Wecom,
    Other,
}

impl Client {
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Wechat => "wechat",
            Client::Wecom => "wecom",
            Client::Other => "other",
        }
    }

    /// WeCom's in-app browser says `wxwork`; WeChat's says `MicroMessenger` (WeCom's
    /// says both, so it is checked first).
    pub fn from_user_agent(ua: &str) -> Client {
        if contains_ignoring_case(ua, b"wxwork") {
            Client::Wecom
        } else if contains_ignoring_case(ua, b"micromessenger") {
            Client::Wechat
        } else {
            Client::Other
        }
    }

    pub fn of(req: &HttpRequest) -> Client {
        let ua = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Client::from_user_agent(ua)
    }
}

/// Whether `haystack` contains `needle` (lowercase ASCII) in any case, without a
/// lowercased copy of the whole user agent per request.
fn contains_ignoring_case(haystack: &str, needle: &[u8]) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// The client address for rate limiting: the first `X-Forwarded-For` hop when the
/// peer is a trusted proxy (loopback or private network), else the peer itself.
pub fn client_ip(req: &HttpRequest) -> String {
    client_addr(req).map_or_else(|| "unknown".into(), |ip| ip.to_string())
}

/// The client's address (see `client_ip`), without formatting it.
pub fn client_addr(req: &HttpRequest) -> Option<std::net::IpAddr> {
    let trusted = req
        .app_data::<actix_web::web::Data<crate::Infra>>()
        .map(|infra| infra.settings.trusted_proxies.as_slice())
        .unwrap_or_default();
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    crate::proxies::client_address(req.peer_addr().map(|a| a.ip()), forwarded, trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_classify() {
        let wecom = "Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0 wxwork/4.1.0";
        assert_eq!(Client::from_user_agent(wecom), Client::Wecom);
        assert_eq!(
            Client::from_user_agent("Mozilla/5.0 MicroMessenger/8.0.40"),
            Client::Wechat
        );
        assert_eq!(Client::from_user_agent("curl/8"), Client::Other);
        assert_eq!(
            Client::from_user_agent("x MICROMESSENGER/8"),
            Client::Wechat,
            "any case"
        );
        assert_eq!(Client::from_user_agent("WxWork"), Client::Wecom);
        assert_eq!(Client::from_user_agent(""), Client::Other);
    }

    #[test]
    fn hashes_depend_on_the_tenant() {
        assert_ne!(hash("t1", "abc"), hash("t2", "abc"));
        assert_eq!(hash("t1", "abc").len(), 24);
    }

    #[test]
    fn the_hash_is_that_of_tenant_colon_id() {
        // Stored visitor hashes must not change when the hashing code does.
        let whole = Sha256::digest(b"t1:abc");
        assert_eq!(hash("t1", "abc"), hex::encode(&whole[..12]));
    }
}
