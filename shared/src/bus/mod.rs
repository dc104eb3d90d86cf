//! The bus seam: publish events, consume them from durable queues with manual
//! acknowledgement. Two implementations with the same semantics — RabbitMQ
//! (`AmqpBus`) and a queue table in the SQL store (`SqlBus`, for `huoke dev`) —
//! both exercised by the same tests.

mod amqp;
mod sql;

pub use amqp::AmqpBus;
pub use sql::SqlBus;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{new_id, now_ms, rfc3339};

/// A versioned event as it travels on the bus. Consumers are idempotent on `id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub tenant_id: String,
    pub occurred_at: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trace: BTreeMap<String, String>,
    pub data: serde_json::Value,
}

/// A message type: its routing key and schema version.
pub trait Message: Serialize + DeserializeOwned {
    const TOPIC: &'static str;
    const VERSION: u32 = 1;
}

impl Envelope {
    pub fn new<M: Message>(tenant_id: &str, message: &M) -> Self {
        Envelope {
            id: new_id(),
            kind: M::TOPIC.to_string(),
            version: M::VERSION,
            tenant_id: tenant_id.to_string(),
            occurred_at: rfc3339(now_ms()),
            trace: BTreeMap::new(),
            data: serde_json::to_value(message).expect("messages serialise"),
        }
    }

    pub fn decode<M: Message>(&self) -> Result<M, HandlerError> {
        if self.kind != M::TOPIC {
            return Err(HandlerError::Reject(format!(
                "expected {}, got {}",
                M::TOPIC,
                self.kind
            )));
        }
        serde_json::from_value(self.data.clone())
            .map_err(|e| HandlerError::Reject(format!("undecodable {}: {e}", self.kind)))
    }
}

/// What a handler tells the bus about one message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A passing failure (database busy, a race lost): deliver again later.
    #[error("retry: {0}")]
    Retry(String),
    /// The message can never succeed: park it in the dead-letter queue.
    #[error("reject: {0}")]
    Reject(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(err: sqlx::Error) -> Self {
        HandlerError::Retry(err.to_string())
    }
}

impl From<anyhow::Error> for HandlerError {
    fn from(err: anyhow::Error) -> Self {
        HandlerError::Retry(format!("{err:#}"))
    }
}

#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError>;
}

/// A durable queue and the routing keys bound to it. Queues are declared by every
/// process at start-up (not only by their consumer), so nothing published before a
/// consumer first runs is dropped as unroutable.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: &'static str,
    pub bindings: &'static [&'static str],
}

#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub prefetch: u16,
    /// Deliveries before a message goes to the dead-letter queue.
    pub max_attempts: u32,
    pub retry_delay: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            prefetch: 32,
            max_attempts: 8,
            retry_delay: Duration::from_secs(1),
        }
    }
}

#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Declares queues, bindings and dead-letter queues; idempotent.
    async fn declare(&self, queues: &[QueueSpec]) -> anyhow::Result<()>;
    /// Returns once the message is durable in the bus (publisher confirm).
    async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()>;
    /// As `publish`, delivered after `delay`.
    async fn publish_delayed(&self, envelope: &Envelope, delay: Duration) -> anyhow::Result<()>;
    /// Starts consuming `queue` until `stop` turns true.
    fn consume(
        &self,
        queue: &'static str,
        options: ConsumerOptions,
        handler: Arc<dyn Handler>,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()>;
    async fn ping(&self) -> anyhow::Result<()>;
    fn name(&self) -> &'static str;
}

/// RabbitMQ topic matching: `*` is exactly one word, `#` zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

/// Delay before the `attempt`-th redelivery: doubling from `base`, capped at 5 minutes.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_match_like_rabbitmq() {
        assert!(topic_matches("capture.received", "capture.received"));
        assert!(topic_matches("capture.*", "capture.received"));
        assert!(!topic_matches("capture.*", "capture.received.v2"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("lead.#", "lead"));
        assert!(topic_matches("lead.#", "lead.assigned.again"));
        assert!(topic_matches("*.assigned", "lead.assigned"));
        assert!(!topic_matches("lead.assigned", "lead.qualified"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 3), Duration::from_millis(400));
        assert_eq!(backoff(base, 40), Duration::from_secs(300));
    }

    #[derive(Serialize, Deserialize)]
    struct Ping {
        n: u32,
    }
    impl Message for Ping {
        const TOPIC: &'static str = "test.ping";
    }

    #[test]
    fn envelopes_round_trip_and_check_their_type() {
        let env = Envelope::new("t1", &Ping { n: 7 });
        let back: Envelope = serde_json::from_str(&serde_json::to_string(&env).unwrap()).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.decode::<Ping>().unwrap().n, 7);
        let mut wrong = env.clone();
        wrong.kind = "other".into();
        assert!(matches!(wrong.decode::<Ping>(), Err(HandlerError::Reject(_))));
    }
}

/// Runs a handler in its own task so that a panic becomes a retry instead of
/// killing the consumer loop.
pub(crate) async fn run_handler(handler: &Arc<dyn Handler>, envelope: &Envelope) -> Result<(), HandlerError> {
    let handler = handler.clone();
    let envelope = envelope.clone();
    let started = std::time::Instant::now();
    let kind = envelope.kind.clone();
    let outcome = match tokio::spawn(async move { handler.handle(&envelope).await }).await {
        Ok(outcome) => outcome,
        Err(join) => Err(HandlerError::Retry(format!("handler panicked: {join}"))),
    };
    let result = if outcome.is_ok() { "ok" } else { "error" };
    metrics::histogram!("huoke_bus_handle_seconds", "type" => kind, "result" => result)
        .record(started.elapsed().as_secs_f64());
    outcome
}
