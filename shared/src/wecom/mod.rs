//! WeCom (企业微信): a tenant's settings and a small API client. The client keeps the
//! access token in the cache until it expires and refreshes it once when WeCom says
//! it is invalid or expired. The API base is configurable so tests can use a fake.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod external_contact;

pub use external_contact::{Customer, ExternalContact, FollowUser};

use crate::cache::Cache;
use crate::clock::now_ms;
use crate::store::Store;

pub const DEFAULT_API_BASE: &str = "https://qyapi.weixin.qq.com";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WecomSettings {
    pub tenant_id: String,
    pub corp_id: String,
    pub secret: String,
    pub agent_id: Option<String>,
    pub callback_token: String,
    pub encoding_aes_key: String,
    pub api_base: Option<String>,
    pub updated_at: i64,
}

/// Whether we may call `base` with a tenant's corp secret. WeCom's own base always;
/// otherwise HTTPS to a public host, or any scheme to a host an operator listed in
/// `HUOKE_WECOM_ALLOWED_HOSTS` (a private test server). This keeps an admin from
/// pointing anonymous scans at internal services (server-side request forgery) or
/// sending the secret in clear text.
pub fn check_api_base(base: &str, allowed_hosts: &[String]) -> Result<(), String> {
    if base.trim_end_matches('/') == DEFAULT_API_BASE {
        return Ok(());
    }
    crate::outbound::check_public_url(base, allowed_hosts)
}

/// How long a tenant's WeCom failure keeps us from calling again (scans are
/// anonymous: without this every scan would retry a broken integration).
const FAILURE_BACKOFF: Duration = Duration::from_secs(30);

impl WecomSettings {
    pub fn base(&self) -> &str {
        self.api_base
            .as_deref()
            .unwrap_or(DEFAULT_API_BASE)
            .trim_end_matches('/')
    }
}

pub async fn settings(store: &Store, tenant_id: &str) -> sqlx::Result<Option<WecomSettings>> {
    sqlx::query_as(
        "SELECT tenant_id, corp_id, secret, agent_id, callback_token, encoding_aes_key, api_base, updated_at
         FROM wecom_settings WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(store.pool())
    .await
}

pub async fn save_settings(store: &Store, s: &WecomSettings) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO wecom_settings (tenant_id, corp_id, secret, agent_id, callback_token, encoding_aes_key, api_base, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id) DO UPDATE SET corp_id = $2, secret = $3, agent_id = $4, callback_token = $5,
             encoding_aes_key = $6, api_base = $7, updated_at = $8",
    )
    .bind(&s.tenant_id)
    .bind(&s.corp_id)
    .bind(&s.secret)
    .bind(&s.agent_id)
    .bind(&s.callback_token)
    .bind(&s.encoding_aes_key)
    .bind(&s.api_base)
    .bind(now_ms())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// WeCom answered, and the answer was not a success (an `errcode`, a 4xx, or a body
/// that is not WeCom's): trying again soon will not change it.
#[derive(Debug, thiserror::Error)]
#[error("WeCom {path} failed: {code} {message}")]
pub struct WecomRefused {
    pub path: String,
    pub code: i64,
    pub message: String,
}

impl WecomRefused {
    fn new(path: &str, code: i64, message: &str) -> Self {
        WecomRefused {
            path: path.to_string(),
            code,
            message: message.chars().take(200).collect(),
        }
    }
}

/// WeCom answers these when the access token is invalid or has expired.
const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];

#[derive(Deserialize)]
struct TokenAnswer {
    errcode: Option<i64>,
    errmsg: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactWay {
    pub config_id: String,
    pub qr_code: String,
}

#[derive(Clone)]
pub struct WecomClient {
    allowed_hosts: Vec<String>,
    http: reqwest::Client,
}

impl Default for WecomClient {
    fn default() -> Self {
        Self::new()
    }
}

impl WecomClient {
    pub fn new() -> Self {
        Self::with_allowed_hosts(Vec::new())
    }

    #[allow(
        clippy::expect_used,
        reason = "building a client without custom certificates only fails when TLS cannot start at all"
    )]
    pub fn with_allowed_hosts(allowed_hosts: Vec<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        WecomClient { http, allowed_hosts }
    }

    fn token_key(s: &WecomSettings) -> String {
        format!("wecom:token:{}:{}", s.tenant_id, s.corp_id)
    }

    async fn access_token(&self, cache: &dyn Cache, s: &WecomSettings, fresh: bool) -> anyhow::Result<String> {
        let key = Self::token_key(s);
        if !fresh && let Some(token) = cache.get(&key).await? {
            return Ok(token);
        }
        check_api_base(s.base(), &self.allowed_hosts).map_err(|e| anyhow!("WeCom api_base refused: {e}"))?;
        let answer: TokenAnswer = self
            .http
            .get(format!("{}/cgi-bin/gettoken", s.base()))
            .query(&[("corpid", s.corp_id.as_str()), ("corpsecret", s.secret.as_str())])
            .send()
            .await
            // Errors carry the URL, and with it `corpsecret`: never let it reach a log.
            .map_err(reqwest::Error::without_url)
            .context("calling WeCom gettoken")?
            .json()
            .await
            .map_err(reqwest::Error::without_url)
            .context("reading WeCom gettoken")?;
        match (answer.errcode.unwrap_or(0), answer.access_token) {
            (0, Some(token)) => {
                // Refresh a little before WeCom's expiry (normally 7200 s).
                let ttl = answer.expires_in.unwrap_or(7200).saturating_sub(300).max(60);
                cache.set(&key, &token, Some(Duration::from_secs(ttl))).await?;
                Ok(token)
            }
            (code, _) => Err(WecomRefused::new("/cgi-bin/gettoken", code, &answer.errmsg.unwrap_or_default()).into()),
        }
    }

    /// POSTs to a WeCom API with the access token; on a token error, refreshes the
    /// token and tries once more.
    async fn post(
        &self,
        cache: &dyn Cache,
        s: &WecomSettings,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.call(cache, s, path, &[], Some(body)).await
    }

    /// Calls a WeCom API (GET without a body, POST with one) with the access token;
    /// on a token error, refreshes the token and tries once more. An answer WeCom
    /// gave but that is not a success is a [`WecomRefused`]; any other error (no
    /// connection, a timeout, a 5xx) may pass.
    async fn call(
        &self,
        cache: &dyn Cache,
        s: &WecomSettings,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        check_api_base(s.base(), &self.allowed_hosts).map_err(|e| anyhow!("WeCom api_base refused: {e}"))?;
        let mut fresh = false;
        loop {
            let token = self.access_token(cache, s, fresh).await?;
            let url = format!("{}{}", s.base(), path);
            let request = match body {
                Some(body) => self.http.post(url).json(body),
                None => self.http.get(url),
            };
            let response = request
                .query(&[("access_token", token.as_str())])
                .query(query)
                .send()
                .await
                .map_err(reqwest::Error::without_url)
                .with_context(|| format!("calling WeCom {path}"))?;
            let status = response.status();
            if status.is_server_error() {
                bail!("WeCom {path} answered HTTP {status}");
            }
            let answer: serde_json::Value = match response.json().await {
                Ok(answer) if status.is_success() => answer,
                _ => return Err(WecomRefused::new(path, i64::from(status.as_u16()), "not a WeCom answer").into()),
            };
            let code = answer["errcode"].as_i64().unwrap_or(0);
            if code == 0 {
                return Ok(answer);
            }
            if TOKEN_ERRORS.contains(&code) && !fresh {
                cache.del(&Self::token_key(s)).await?;
                fresh = true;
                continue;
            }
            return Err(WecomRefused::new(path, code, answer["errmsg"].as_str().unwrap_or("")).into());
        }
    }

    /// `externalcontact/get`: what WeCom knows of a customer, and what the member who
    /// added them noted.
    pub async fn external_contact(
        &self,
        cache: &dyn Cache,
        s: &WecomSettings,
        external_userid: &str,
    ) -> anyhow::Result<ExternalContact> {
        let answer = self
            .call(
                cache,
                s,
                "/cgi-bin/externalcontact/get",
                &[("external_userid", external_userid)],
                None,
            )
            .await?;
        serde_json::from_value(answer)
            .map_err(|e| WecomRefused::new("/cgi-bin/externalcontact/get", 0, &e.to_string()).into())
    }

    /// `message/send`: a text message from the tenant's app (`agent_id`) to one member.
    pub async fn send_text(
        &self,
        cache: &dyn Cache,
        s: &WecomSettings,
        touser: &str,
        content: &str,
    ) -> anyhow::Result<()> {
        let agent: i64 = s
            .agent_id
            .as_deref()
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| anyhow!("the tenant's WeCom settings have no numeric agent_id"))?;
        let body = json!({"touser": touser, "msgtype": "text", "agentid": agent, "text": {"content": content}});
        self.post(cache, s, "/cgi-bin/message/send", &body).await?;
        Ok(())
    }

    /// `externalcontact/add_contact_way`: a single-person "contact me" QR code whose
    /// adds come back to us with `state`.
    pub async fn add_contact_way(
        &self,
        cache: &dyn Cache,
        s: &WecomSettings,
        userid: &str,
        state: &str,
    ) -> anyhow::Result<ContactWay> {
        let down = format!("wecom:down:{}", s.tenant_id);
        if cache.get(&down).await?.is_some() {
            bail!("WeCom failed for this tenant less than {FAILURE_BACKOFF:?} ago; not calling it yet");
        }
        let body = json!({"type": 1, "scene": 2, "skip_verify": true, "state": state, "user": [userid]});
        let answer = match self
            .post(cache, s, "/cgi-bin/externalcontact/add_contact_way", &body)
            .await
        {
            Ok(answer) => answer,
            Err(err) => {
                let _ = cache.set(&down, "1", Some(FAILURE_BACKOFF)).await;
                return Err(err);
            }
        };
        match (answer["config_id"].as_str(), answer["qr_code"].as_str()) {
            (Some(config_id), Some(qr_code)) => Ok(ContactWay {
                config_id: config_id.into(),
                qr_code: qr_code.into(),
            }),
            _ => bail!("WeCom add_contact_way answered without config_id/qr_code"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_base_must_be_public_https_unless_allowed() {
        let none: Vec<String> = Vec::new();
        assert!(check_api_base(DEFAULT_API_BASE, &none).is_ok());
        assert!(check_api_base("https://wecom-proxy.example.com/", &none).is_ok());
        for bad in [
            "http://qyapi.weixin.qq.com",
            "http://169.254.169.254",
            "https://169.254.169.254/latest",
            "https://10.1.2.3",
            "https://127.0.0.1:8443",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://localhost/",
            "https://user:pw@example.com/",
            "ftp://example.com",
            "not a url",
        ] {
            assert!(check_api_base(bad, &none).is_err(), "{bad} accepted");
        }
        let allowed = vec!["127.0.0.1".to_string()];
        assert!(check_api_base("http://127.0.0.1:9999", &allowed).is_ok());
        assert!(check_api_base("http://127.0.0.2:9999", &allowed).is_err());
    }

    #[tokio::test]
    async fn failed_calls_never_log_the_secret() {
        let client = WecomClient::with_allowed_hosts(vec!["127.0.0.1".into()]);
        let cache = crate::cache::MemoryCache::new();
        let settings = WecomSettings {
            tenant_id: "t1".into(),
            corp_id: "ww-corp".into(),
            secret: "TOP-SECRET-VALUE".into(),
            agent_id: None,
            callback_token: "x".into(),
            encoding_aes_key: "y".into(),
            // Nothing listens on port 1.
            api_base: Some("http://127.0.0.1:1".into()),
            updated_at: 0,
        };
        let err = client
            .add_contact_way(&cache, &settings, "zhangsan", "state")
            .await
            .unwrap_err();
        let text = format!("{err:#} {err:?}");
        assert!(
            !text.contains("TOP-SECRET-VALUE") && !text.contains("corpsecret"),
            "{text}"
        );
        // The failure is remembered: the next scan does not call again.
        let again = client
            .add_contact_way(&cache, &settings, "zhangsan", "state")
            .await
            .unwrap_err();
        assert!(again.to_string().contains("not calling it yet"), "{again}");
    }
}
