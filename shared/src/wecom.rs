//! WeCom (企业微信): a tenant's settings and a small API client. The client keeps the
//! access token in the cache until it expires and refreshes it once when WeCom says
//! it is invalid or expired. The API base is configurable so tests can use a fake.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

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
    http: reqwest::Client,
}

impl Default for WecomClient {
    fn default() -> Self {
        Self::new()
    }
}

impl WecomClient {
    #[allow(
        clippy::expect_used,
        reason = "building a client without custom certificates only fails when TLS cannot start at all"
    )]
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        WecomClient { http }
    }

    fn token_key(s: &WecomSettings) -> String {
        format!("wecom:token:{}:{}", s.tenant_id, s.corp_id)
    }

    async fn access_token(&self, cache: &dyn Cache, s: &WecomSettings, fresh: bool) -> anyhow::Result<String> {
        let key = Self::token_key(s);
        if !fresh && let Some(token) = cache.get(&key).await? {
            return Ok(token);
        }
        let answer: TokenAnswer = self
            .http
            .get(format!("{}/cgi-bin/gettoken", s.base()))
            .query(&[("corpid", s.corp_id.as_str()), ("corpsecret", s.secret.as_str())])
            .send()
            .await
            .context("calling WeCom gettoken")?
            .json()
            .await
            .context("reading WeCom gettoken")?;
        match (answer.errcode.unwrap_or(0), answer.access_token) {
            (0, Some(token)) => {
                // Refresh a little before WeCom's expiry (normally 7200 s).
                let ttl = answer.expires_in.unwrap_or(7200).saturating_sub(300).max(60);
                cache.set(&key, &token, Some(Duration::from_secs(ttl))).await?;
                Ok(token)
            }
            (code, _) => bail!("WeCom gettoken failed: {code} {}", answer.errmsg.unwrap_or_default()),
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
        let mut fresh = false;
        loop {
            let token = self.access_token(cache, s, fresh).await?;
            let answer: serde_json::Value = self
                .http
                .post(format!("{}{}", s.base(), path))
                .query(&[("access_token", token.as_str())])
                .json(body)
                .send()
                .await
                .with_context(|| format!("calling WeCom {path}"))?
                .json()
                .await
                .with_context(|| format!("reading WeCom {path}"))?;
            let code = answer["errcode"].as_i64().unwrap_or(0);
            if code == 0 {
                return Ok(answer);
            }
            if TOKEN_ERRORS.contains(&code) && !fresh {
                cache.del(&Self::token_key(s)).await?;
                fresh = true;
                continue;
            }
            return Err(anyhow!(
                "WeCom {path} failed: {code} {}",
                answer["errmsg"].as_str().unwrap_or("")
            ));
        }
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
        let body = json!({"type": 1, "scene": 2, "skip_verify": true, "state": state, "user": [userid]});
        let answer = self
            .post(cache, s, "/cgi-bin/externalcontact/add_contact_way", &body)
            .await?;
        match (answer["config_id"].as_str(), answer["qr_code"].as_str()) {
            (Some(config_id), Some(qr_code)) => Ok(ContactWay {
                config_id: config_id.into(),
                qr_code: qr_code.into(),
            }),
            _ => bail!("WeCom add_contact_way answered without config_id/qr_code"),
        }
    }
}
