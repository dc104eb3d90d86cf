//! Configuration from the environment, validated once at start-up. Every error names
//! the variable at fault so an operator can fix it without reading code.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("configuration error in {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn bad(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// How tokens are signed and checked.
#[derive(Clone)]
pub enum JwtConfig {
    /// HS256 with a shared secret.
    Secret(Vec<u8>),
    /// RS256 or EdDSA: a public key to verify, and a private key where tokens are issued.
    KeyPair {
        public_pem: String,
        private_pem: Option<String>,
    },
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtConfig::Secret(_) => f.write_str("JwtConfig::Secret(<redacted>)"),
            JwtConfig::KeyPair { private_pem, .. } => {
                write!(f, "JwtConfig::KeyPair {{ private: {} }}", private_pem.is_some())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `postgres://…` or `sqlite://…`; `None` means the embedded SQLite file under `data_dir`.
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub amqp_url: Option<String>,
    pub jwt: Option<JwtConfig>,
    pub listen: SocketAddr,
    /// Base URL the outside world reaches us at; used in QR codes and links.
    pub public_url: Option<String>,
    /// Where the web console reaches the API (`HUOKE_API_URL`); by default this
    /// process's own listening address.
    pub api_url: Option<String>,
    pub data_dir: PathBuf,
    /// Prefix for queue/exchange names and cache keys, so several installs (or tests)
    /// can share one broker and one Redis.
    pub namespace: String,
    pub http_workers: usize,
    pub token_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    pub default_sla: Duration,
    /// How often the router looks for SLA deadlines that passed.
    pub sla_poll: Duration,
    /// How often the pool looks for leads to recycle (no activity for the tenant's
    /// `recycle_after_days`).
    pub recycle_poll: Duration,
    /// How often an open inbox stream gets a comment line, so proxies keep it open.
    pub sse_heartbeat: Duration,
    /// How often qualify rescores leads whose stored score may have decayed…
    pub rescore_poll: Duration,
    /// …when they were last scored at least this long ago.
    pub rescore_age: Duration,
    pub bus_prefetch: u16,
    /// Most deliveries one consumer handles in one transaction.
    pub bus_batch: usize,
    /// How long a consumer waits for a batch to fill after its first delivery.
    pub bus_linger: Duration,
    /// Deliveries of one message before it is parked in its dead-letter queue.
    pub bus_max_attempts: u32,
    pub bus_retry: crate::bus::RetryPolicy,
    /// How long `processed_messages` markers are kept (at least the longest
    /// redelivery window).
    pub processed_retention: Duration,
    /// Test aid: broker queues vanish after this long unused (`x-expires`).
    pub bus_queue_expires: Option<Duration>,
    /// Test aid: `classic` makes the consumer queues classic (version 2) instead of
    /// quorum queues, which are costly to create and delete by the hundred on a
    /// broker that many test runs share.
    pub bus_classic_queues: bool,
    pub max_body_bytes: usize,
    /// Scans per second one client address may make, per process.
    pub scan_rate_per_ip: u32,
    /// Hosts a tenant's WeCom `api_base` may name beyond public HTTPS ones
    /// (`HUOKE_WECOM_ALLOWED_HOSTS`: private test servers).
    pub wecom_allowed_hosts: Vec<String>,
    /// How long a WeCom customer-contact event waits for WeCom to give the customer's
    /// details when it cannot be reached; after that the capture is made without them
    /// (`HUOKE_WECOM_DETAILS_WAIT_SECS`).
    pub wecom_details_wait: Duration,
    /// Hosts webhook subscriptions may name besides public HTTPS ones
    /// (`HUOKE_WEBHOOK_ALLOWED_HOSTS`: private test receivers).
    pub webhook_allowed_hosts: Vec<String>,
    /// Tries of one webhook delivery before it is parked as a dead letter.
    pub webhook_max_attempts: u32,
    /// Sign-in attempts per client address and minute.
    pub login_attempts_per_ip: i64,
    /// Sign-in attempts per account (tenant + e-mail) per `login_window`.
    pub login_attempts_per_account: i64,
    pub login_window: Duration,
    /// Proxies whose `X-Forwarded-For` is believed (`HUOKE_TRUSTED_PROXIES`); none by default.
    pub trusted_proxies: Vec<crate::proxies::Cidr>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Parses from an explicit map; `from_env` is this over the process environment.
    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| env.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let database_url = get("DATABASE_URL");
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:"))
        {
            return Err(bad("DATABASE_URL", "must start with postgres:// or sqlite:"));
        }
        let redis_url = get("REDIS_URL");
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(bad("REDIS_URL", "must start with redis:// or rediss://"));
        }
        let amqp_url = get("AMQP_URL");
        if let Some(url) = &amqp_url
            && !(url.starts_with("amqp://") || url.starts_with("amqps://"))
        {
            return Err(bad("AMQP_URL", "must start with amqp:// or amqps://"));
        }

        let jwt = match (get("HUOKE_JWT_SECRET"), get("HUOKE_JWT_PUBLIC_KEY")) {
            (_, Some(public_pem)) => {
                if !public_pem.contains("-----BEGIN") {
                    return Err(bad("HUOKE_JWT_PUBLIC_KEY", "expected a PEM public key"));
                }
                let private_pem = get("HUOKE_JWT_PRIVATE_KEY");
                if let Some(p) = &private_pem
                    && !p.contains("-----BEGIN")
                {
                    return Err(bad("HUOKE_JWT_PRIVATE_KEY", "expected a PEM private key"));
                }
                Some(JwtConfig::KeyPair {
                    public_pem,
                    private_pem,
                })
            }
            (Some(secret), None) => {
                if secret.len() < 32 {
                    return Err(bad("HUOKE_JWT_SECRET", "must be at least 32 bytes long"));
                }
                Some(JwtConfig::Secret(secret.into_bytes()))
            }
            (None, None) => None,
        };

        let listen = match get("HUOKE_LISTEN") {
            Some(v) => v
                .parse()
                .map_err(|_| bad("HUOKE_LISTEN", format!("`{v}` is not an address like 0.0.0.0:8080")))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let public_url = match get("HUOKE_PUBLIC_URL") {
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => {
                Some(v.trim_end_matches('/').to_string())
            }
            Some(_) => {
                return Err(bad("HUOKE_PUBLIC_URL", "must start with http:// or https://"));
            }
            None => None,
        };
        let namespace = get("HUOKE_NAMESPACE").unwrap_or_default();
        if !namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(bad(
                "HUOKE_NAMESPACE",
                "only letters, digits, '_', '-' and '.' are allowed",
            ));
        }

        Ok(Settings {
            database_url,
            redis_url,
            amqp_url,
            jwt,
            listen,
            public_url,
            api_url: get("HUOKE_API_URL")
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .filter(|u| !u.is_empty()),
            data_dir: get("HUOKE_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".huoke")),
            namespace,
            http_workers: number(&get, "HUOKE_HTTP_WORKERS", 0)?,
            token_ttl: Duration::from_secs(number(&get, "HUOKE_TOKEN_TTL_SECS", 15 * 60)?),
            refresh_ttl: Duration::from_secs(positive(&get, "HUOKE_REFRESH_TTL_SECS", 30 * 24 * 3600)?),
            default_sla: Duration::from_secs(60 * number(&get, "HUOKE_SLA_MINUTES", 30)?),
            sla_poll: Duration::from_millis(positive(&get, "HUOKE_SLA_POLL_MS", 250)?),
            recycle_poll: Duration::from_millis(positive(&get, "HUOKE_RECYCLE_POLL_MS", 60_000)?),
            sse_heartbeat: Duration::from_millis(positive(&get, "HUOKE_SSE_HEARTBEAT_MS", 15_000)?),
            rescore_poll: Duration::from_millis(positive(&get, "HUOKE_RESCORE_POLL_MS", 3_600_000)?),
            rescore_age: Duration::from_millis(positive(&get, "HUOKE_RESCORE_AGE_MS", 86_400_000)?),
            bus_prefetch: number(&get, "HUOKE_BUS_PREFETCH", 256)?,
            bus_batch: positive(&get, "HUOKE_BUS_BATCH", 64)?,
            bus_linger: Duration::from_millis(number(&get, "HUOKE_BUS_LINGER_MS", 0)?),
            bus_max_attempts: positive(&get, "HUOKE_BUS_MAX_ATTEMPTS", 10)?,
            bus_retry: crate::bus::RetryPolicy {
                base: Duration::from_millis(positive(&get, "HUOKE_BUS_RETRY_BASE_MS", 1_000)?),
                cap: Duration::from_millis(positive(&get, "HUOKE_BUS_RETRY_CAP_MS", 300_000)?),
                jitter: 0.2,
            },
            processed_retention: Duration::from_secs(3600 * positive(&get, "HUOKE_PROCESSED_RETENTION_HOURS", 24)?),
            bus_queue_expires: get("HUOKE_BUS_QUEUE_EXPIRES_MS")
                .map(|v| v.parse().map(Duration::from_millis))
                .transpose()
                .map_err(|_| bad("HUOKE_BUS_QUEUE_EXPIRES_MS", "must be a whole number"))?,
            bus_classic_queues: match get("HUOKE_BUS_QUEUE_TYPE").as_deref() {
                None | Some("quorum") => false,
                Some("classic") => true,
                Some(_) => return Err(bad("HUOKE_BUS_QUEUE_TYPE", "quorum or classic")),
            },
            max_body_bytes: number(&get, "HUOKE_MAX_BODY_BYTES", 256 * 1024)?,
            scan_rate_per_ip: number(&get, "HUOKE_SCAN_RATE_PER_IP", 2_000)?,
            login_attempts_per_ip: positive(&get, "HUOKE_LOGIN_ATTEMPTS_PER_IP", 30)?,
            login_attempts_per_account: positive(&get, "HUOKE_LOGIN_ATTEMPTS_PER_ACCOUNT", 10)?,
            login_window: Duration::from_secs(positive(&get, "HUOKE_LOGIN_WINDOW_SECS", 900)?),
            wecom_allowed_hosts: get("HUOKE_WECOM_ALLOWED_HOSTS")
                .unwrap_or_default()
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            webhook_allowed_hosts: get("HUOKE_WEBHOOK_ALLOWED_HOSTS")
                .unwrap_or_default()
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            wecom_details_wait: Duration::from_secs(positive(&get, "HUOKE_WECOM_DETAILS_WAIT_SECS", 60)?),
            webhook_max_attempts: positive(&get, "HUOKE_WEBHOOK_MAX_ATTEMPTS", 15)?,
            trusted_proxies: crate::proxies::parse_list(&get("HUOKE_TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|e| bad("HUOKE_TRUSTED_PROXIES", e))?,
        })
    }

    /// How the services' consumers take messages off the bus.
    pub fn consumer_options(&self) -> crate::bus::ConsumerOptions {
        crate::bus::ConsumerOptions {
            prefetch: self.bus_prefetch.max(1),
            batch: self.bus_batch,
            linger: self.bus_linger,
            max_attempts: self.bus_max_attempts,
            retry: self.bus_retry,
        }
    }

    /// The database URL to use: the configured one, or the embedded SQLite file.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("huoke.db").display()),
        }
    }

    /// Base URL for links we hand out (QR codes, card pages).
    pub fn public_base(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Prefix a broker or cache name with the namespace.
    pub fn namespaced(&self, name: &str) -> String {
        if self.namespace.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.namespace, name)
        }
    }
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    let n = number(get, var, default)?;
    if n <= T::default() {
        return Err(bad(var, "must be above zero"));
    }
    Ok(n)
}

fn number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(var) {
        Some(v) => v.parse().map_err(|_| bad(var, format!("`{v}` is not a valid number"))),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert!(s.database_url.is_none());
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert!(s.effective_database_url().starts_with("sqlite://"));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = Settings::from_map(&env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(e.var, "DATABASE_URL");
        let e = Settings::from_map(&env(&[("HUOKE_JWT_SECRET", "short")])).unwrap_err();
        assert_eq!(e.var, "HUOKE_JWT_SECRET");
        let e = Settings::from_map(&env(&[("HUOKE_LISTEN", "nowhere")])).unwrap_err();
        assert_eq!(e.var, "HUOKE_LISTEN");
        assert!(e.to_string().contains("HUOKE_LISTEN"));
        let e = Settings::from_map(&env(&[("HUOKE_SLA_MINUTES", "soon")])).unwrap_err();
        assert_eq!(e.var, "HUOKE_SLA_MINUTES");
        let e = Settings::from_map(&env(&[("HUOKE_TRUSTED_PROXIES", "10.0.0.0/99")])).unwrap_err();
        assert_eq!(e.var, "HUOKE_TRUSTED_PROXIES");
        let e = Settings::from_map(&env(&[("HUOKE_BUS_BATCH", "0")])).unwrap_err();
        assert_eq!(e.var, "HUOKE_BUS_BATCH");
        let e = Settings::from_map(&env(&[("AMQP_URL", "http://x")])).unwrap_err();
        assert_eq!(e.var, "AMQP_URL");
    }

    #[test]
    fn namespacing() {
        let s = Settings::from_map(&env(&[("HUOKE_NAMESPACE", "t_1")])).unwrap();
        assert_eq!(s.namespaced("huoke.events"), "t_1.huoke.events");
    }
}
