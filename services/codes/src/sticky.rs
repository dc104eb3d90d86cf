//! A visitor's pick of the day, kept in their own browser rather than in the cache:
//! a cookie scoped to the code's path (`/s/{code}`), holding the local day, the
//! pick (a staff id or `group:{index}`) and a MAC over the code, the visitor, the day
//! and the pick. A returning visitor sends it back and keeps their member without a
//! cache lookup; a forged, copied or yesterday's cookie is ignored and the visitor is
//! picked afresh. The MAC key is made once per deployment and kept in the store
//! (`service_keys`), so every replica honours every other's cookies.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use hmac::{Hmac, Mac};
use huoke_shared::clock::now_ms;
use huoke_shared::store::Store;
use sha2::Sha256;

pub const COOKIE: &str = "hk_p";
const KEY_NAME: &str = "codes.sticky_pick";
/// A little over a day: the pick is for one local day, checked from its contents.
const MAX_AGE_HOURS: i64 = 36;
const MAC_BYTES: usize = 16;

/// The MAC keyed once: each use clones the keyed state instead of hashing the key
/// again (two of the four SHA-256 blocks per pick).
pub struct StickyKey(Hmac<Sha256>);

impl StickyKey {
    #[cfg(test)]
    pub fn new(secret: &[u8]) -> StickyKey {
        StickyKey::keyed(secret).unwrap()
    }

    /// None only for a key HMAC refuses, which it never does (any length will do).
    fn keyed(secret: &[u8]) -> Option<StickyKey> {
        Hmac::<Sha256>::new_from_slice(secret).ok().map(StickyKey)
    }

    /// Makes the deployment's key on first use, or reads the one another replica made.
    pub async fn load(store: &Store) -> sqlx::Result<StickyKey> {
        let fresh = hex::encode(rand::random::<[u8; 32]>());
        sqlx::query(
            "INSERT INTO service_keys (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(KEY_NAME)
        .bind(&fresh)
        .bind(now_ms())
        .execute(store.pool())
        .await?;
        let secret: String = sqlx::query_scalar("SELECT secret FROM service_keys WHERE name = $1")
            .bind(KEY_NAME)
            .fetch_one(store.pool())
            .await?;
        StickyKey::keyed(secret.as_bytes())
            .ok_or_else(|| sqlx::Error::Protocol("the sticky-pick key was refused".into()))
    }

    fn mac(&self, code_id: &str, visitor: &str, day: &str, pick: &str) -> String {
        let mut mac = self.0.clone();
        for part in [code_id, visitor, day, pick] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        hex::encode(&mac.finalize().into_bytes()[..MAC_BYTES])
    }

    /// The cookie's value for this visitor's pick on `day`.
    pub fn seal(&self, code_id: &str, visitor: &str, day: &str, pick: &str) -> String {
        format!("{day}.{pick}.{}", self.mac(code_id, visitor, day, pick))
    }

    /// The pick in a cookie's value, when it is this visitor's, for this code and
    /// for `day`, and untouched.
    pub fn open<'v>(&self, code_id: &str, visitor: &str, day: &str, value: &'v str) -> Option<&'v str> {
        let (dated, mac) = value.rsplit_once('.')?;
        let (cookie_day, pick) = dated.split_once('.')?;
        if cookie_day != day || pick.is_empty() {
            return None;
        }
        let expected = self.mac(code_id, visitor, day, pick);
        // Compared in constant time, so the MAC cannot be guessed byte by byte.
        let equal = expected.len() == mac.len()
            && expected.bytes().zip(mac.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        equal.then_some(pick)
    }
}

/// The cookie carrying a sealed pick, sent back only to this code's scans.
pub fn cookie(code: &str, value: String) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path(format!("/s/{code}"))
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::hours(MAX_AGE_HOURS))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_pick_opens_only_for_its_visitor_code_and_day() {
        let key = StickyKey::new(b"k1");
        let value = key.seal("c1", "v1", "20261201", "staff-1");
        assert_eq!(key.open("c1", "v1", "20261201", &value), Some("staff-1"));
        assert_eq!(key.open("c1", "v2", "20261201", &value), None, "another visitor");
        assert_eq!(key.open("c2", "v1", "20261201", &value), None, "another code");
        assert_eq!(key.open("c1", "v1", "20261202", &value), None, "another day");
        assert_eq!(
            StickyKey::new(b"k2").open("c1", "v1", "20261201", &value),
            None,
            "another deployment"
        );
        let forged = value.replace("staff-1", "staff-2");
        assert_eq!(key.open("c1", "v1", "20261201", &forged), None, "another pick");
        for junk in ["", ".", "20261201", "20261201..", "20261201.staff-1", "x.y.z"] {
            assert_eq!(key.open("c1", "v1", "20261201", junk), None, "{junk:?}");
        }
        let group = key.seal("c1", "v1", "20261201", "group:2");
        assert_eq!(key.open("c1", "v1", "20261201", &group), Some("group:2"));
    }

    #[test]
    fn the_cookie_goes_back_only_to_its_code() {
        let c = cookie("AbCdEf1234", "v".into());
        assert_eq!(c.path(), Some("/s/AbCdEf1234"));
        assert_eq!(c.http_only(), Some(true));
    }
}
