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
    /// Set on the copy parked in a dead-letter queue: why and after how many tries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterNote>,
}

/// Why a message was given up on; travels with the parked copy on both buses.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeadLetterNote {
    pub queue: String,
    pub reason: String,
    pub attempts: u32,
    pub at_ms: i64,
}

/// A message type: its routing key and schema version.
pub trait Message: Serialize + DeserializeOwned {
    const TOPIC: &'static str;
    const VERSION: u32 = 1;
}

impl Envelope {
    #[allow(
        clippy::expect_used,
        reason = "message types are plain structs with string keys; serialising them cannot fail"
    )]
    pub fn new<M: Message>(tenant_id: &str, message: &M) -> Self {
        Envelope {
            id: new_id(),
            kind: M::TOPIC.to_string(),
            version: M::VERSION,
            tenant_id: tenant_id.to_string(),
            occurred_at: rfc3339(now_ms()),
            trace: BTreeMap::new(),
            data: serde_json::to_value(message).expect("messages serialise"),
            dead_letter: None,
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

    /// The copy that goes to the dead-letter queue of `queue`.
    pub fn parked(&self, queue: &str, reason: &str, attempts: u32) -> Envelope {
        let mut copy = self.clone();
        copy.dead_letter = Some(DeadLetterNote {
            queue: queue.to_string(),
            reason: reason.chars().take(2000).collect(),
            attempts,
            at_ms: now_ms(),
        });
        copy
    }
}

/// What a handler tells the bus about one message.
#[derive(Debug, Clone, thiserror::Error)]
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

    /// Handles several deliveries at once; one outcome per envelope, in order. The
    /// buses hand over whatever is ready (up to `ConsumerOptions::batch`), so a
    /// handler that can share one transaction across messages overrides this.
    async fn handle_batch(&self, envelopes: &[Envelope]) -> Vec<Result<(), HandlerError>> {
        let mut outcomes = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            outcomes.push(self.handle(envelope).await);
        }
        outcomes
    }
}

/// A durable queue and the routing keys bound to it. Queues are declared by every
/// process at start-up (not only by their consumer), so nothing published before a
/// consumer first runs is dropped as unroutable.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub name: &'static str,
    pub bindings: &'static [&'static str],
    /// Always `<name>.dlq` (see [`dead_letter_queue`]); spelled out because consumers
    /// take `'static` queue names.
    pub dead_letter_queue: &'static str,
}

/// How failed deliveries come back: after `base`, doubling per attempt up to `cap`
/// (the tiers), each delay shortened by a random share of at most `jitter` so that a
/// burst that failed together does not come back together. Both buses use
/// [`RetryPolicy::delay`], so retry timing is the same on RabbitMQ and in `huoke dev`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// Between 0 and 1.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The tier for the `attempt`-th failure (1-based): `base × 2^(attempt-1)`, capped.
    /// RabbitMQ keeps one delay queue per tier.
    pub fn tier(&self, attempt: u32) -> Duration {
        backoff(self.base, attempt).min(self.cap.max(self.base))
    }

    /// The delay before redelivering after the `attempt`-th failure: within
    /// `[tier × (1 - jitter), tier]`; `unit` is a random number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let tier = self.tier(attempt);
        let shave = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        tier.mul_f64(1.0 - shave)
    }

    /// Every tier this policy can produce, shortest first.
    pub fn tiers(&self) -> Vec<Duration> {
        let mut tiers = Vec::new();
        for attempt in 1..=32 {
            let t = self.tier(attempt);
            if tiers.last() == Some(&t) {
                break;
            }
            tiers.push(t);
        }
        tiers
    }

    /// The longest a message can keep coming back before `max_attempts` parks it.
    pub fn longest_redelivery(&self, max_attempts: u32) -> Duration {
        (1..max_attempts).map(|a| self.tier(a)).sum()
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Deliveries the broker may hand over before they are acknowledged.
    pub prefetch: u16,
    /// Most deliveries given to the handler at once.
    pub batch: usize,
    /// How long the first delivery of a batch waits for others to join it.
    pub linger: Duration,
    /// Deliveries before a message goes to the dead-letter queue.
    pub max_attempts: u32,
    pub retry: RetryPolicy,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            prefetch: 256,
            batch: 64,
            linger: Duration::ZERO,
            max_attempts: 10,
            retry: RetryPolicy::default(),
        }
    }
}

/// What a failed delivery becomes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Settlement {
    Done,
    RetryAfter(Duration),
    DeadLetter(String),
}

impl ConsumerOptions {
    /// Decides the fate of a delivery that was tried `attempts` times (this one included).
    pub(crate) fn settle(&self, queue: &str, attempts: u32, outcome: &Result<(), HandlerError>) -> Settlement {
        match outcome {
            Ok(()) => Settlement::Done,
            Err(HandlerError::Retry(reason)) if attempts < self.max_attempts => {
                let delay = self.retry.delay(attempts, rand::random::<f64>());
                tracing::warn!(%queue, attempts, %reason, delay_ms = delay.as_millis() as u64, "handler failed; will redeliver");
                metrics::counter!("huoke_bus_retries_total", "queue" => queue.to_string()).increment(1);
                Settlement::RetryAfter(delay)
            }
            Err(err) => {
                tracing::error!(%queue, attempts, error = %err, "message dead-lettered");
                metrics::counter!("huoke_bus_dead_lettered_total", "queue" => queue.to_string()).increment(1);
                Settlement::DeadLetter(err.to_string())
            }
        }
    }
}

#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Declares queues, bindings and dead-letter queues; idempotent.
    async fn declare(&self, queues: &[QueueSpec]) -> anyhow::Result<()>;
    /// Returns once the message is durable in the bus (publisher confirm).
    async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.publish_batch(&[(envelope.clone(), Duration::ZERO)]).await
    }
    /// As `publish`, delivered after `delay`.
    async fn publish_delayed(&self, envelope: &Envelope, delay: Duration) -> anyhow::Result<()> {
        self.publish_batch(&[(envelope.clone(), delay)]).await
    }
    /// Publishes several messages (each with its delay, zero for none) and returns
    /// once all are durable; on error some may have been published.
    async fn publish_batch(&self, batch: &[(Envelope, Duration)]) -> anyhow::Result<()>;
    /// Puts a message straight into one queue, bypassing topic routing (replaying a
    /// dead letter to the one consumer that failed it).
    async fn send_to_queue(&self, queue: &str, envelope: &Envelope) -> anyhow::Result<()>;
    /// Starts consuming `queue` until `stop` turns true.
    fn consume(
        &self,
        queue: &'static str,
        options: ConsumerOptions,
        handler: Arc<dyn Handler>,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()>;
    /// This process's own copy of every event of [`LIVE_TOPICS`](crate::messages::LIVE_TOPICS)
    /// published anywhere, for pushing to connected clients (the inbox stream). Best
    /// effort and not durable: a client that missed some resumes from the store.
    fn live(&self) -> Live;
    /// Waits (at most `within`) until this process's live feed is receiving; false
    /// if it is not by then. A stream opened before would miss what is published
    /// meanwhile.
    async fn live_ready(&self, within: Duration) -> bool {
        let _ = within;
        true
    }
    async fn ping(&self) -> anyhow::Result<()>;
    fn name(&self) -> &'static str;
}

/// A receiver of [`Bus::live`] events.
pub type Live = tokio::sync::broadcast::Receiver<Arc<Envelope>>;

/// How many live events a slow receiver may fall behind before it is told it lagged.
pub const LIVE_BUFFER: usize = 1024;

/// The dead-letter queue of `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dlq")
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

/// Runs a handler on a batch in its own task so that a panic becomes a retry of
/// the batch instead of killing the consumer loop.
pub(crate) async fn run_batch(handler: &Arc<dyn Handler>, envelopes: Vec<Envelope>) -> Vec<Result<(), HandlerError>> {
    let handler = handler.clone();
    let started = std::time::Instant::now();
    let n = envelopes.len();
    let outcomes = match tokio::spawn(async move { handler.handle_batch(&envelopes).await }).await {
        Ok(outcomes) if outcomes.len() == n => outcomes,
        Ok(outcomes) => vec![
            Err(HandlerError::Retry(format!(
                "handler answered {} outcomes for {n} messages",
                outcomes.len()
            )));
            n
        ],
        Err(join) => vec![Err(HandlerError::Retry(format!("handler panicked: {join}"))); n],
    };
    metrics::histogram!("huoke_bus_batch_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("huoke_bus_batch_size").record(n as f64);
    outcomes
}

/// Runs the handler over the envelopes that decoded; an undecodable body is
/// rejected (it can never succeed) without holding up the others.
pub(crate) async fn handle_decoded(
    handler: &Arc<dyn Handler>,
    envelopes: &[Option<Envelope>],
) -> Vec<Result<(), HandlerError>> {
    let decoded: Vec<Envelope> = envelopes.iter().flatten().cloned().collect();
    let mut outcomes = if decoded.is_empty() {
        Vec::new()
    } else {
        run_batch(handler, decoded).await
    }
    .into_iter();
    envelopes
        .iter()
        .map(|e| match e {
            Some(_) => outcomes
                .next()
                .unwrap_or_else(|| Err(HandlerError::Retry("missing outcome".into()))),
            None => Err(HandlerError::Reject("undecodable envelope".into())),
        })
        .collect()
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
    fn retry_delays_double_by_tier_and_jitter_only_shortens() {
        let policy = RetryPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
            jitter: 0.2,
        };
        assert_eq!(policy.tier(1), Duration::from_millis(200));
        assert_eq!(policy.tier(2), Duration::from_millis(400));
        assert_eq!(policy.tier(10), Duration::from_secs(2));
        assert_eq!(policy.delay(2, 0.0), Duration::from_millis(400));
        assert_eq!(policy.delay(2, 0.5), Duration::from_millis(360));
        assert_eq!(policy.delay(2, 0.999_999).as_millis(), 320);
        let tiers: Vec<u128> = policy.tiers().iter().map(Duration::as_millis).collect();
        assert_eq!(tiers, [200, 400, 800, 1600, 2000]);
        assert_eq!(policy.longest_redelivery(4), Duration::from_millis(1400));
    }

    #[test]
    fn the_default_policy_outlasts_a_long_outage() {
        let options = ConsumerOptions::default();
        assert!(options.retry.longest_redelivery(options.max_attempts) > Duration::from_secs(5 * 60));
        assert!(options.retry.tiers().len() <= 10, "a small set of delay queues");
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
