//! RabbitMQ through lapin. Topology, all names prefixed with the namespace:
//! - `huoke.events`: durable topic exchange every event is published to;
//! - one durable quorum queue per consumer, bound to the keys it needs, dead-lettering
//!   to `huoke.dlx` → `<queue>.dlq` when a handler rejects or retries run out;
//! - `<queue>.retry`: fixed-delay queue (TTL) that dead-letters back into `<queue>`;
//! - `huoke.delay.<ms>`: one fixed-delay queue per delay tier for timers, dead-lettering
//!   into `huoke.events` with the original routing key. One queue per tier because a
//!   per-message TTL would block behind the head of the queue.
//!
//! Publishing uses publisher confirms; consuming uses manual acks and a bounded
//! prefetch. Connections are re-established after a failure.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::{Bus, ConsumerOptions, Envelope, Handler, HandlerError, QueueSpec, run_handler};
use crate::config::Settings;

const ATTEMPTS_HEADER: &str = "x-huoke-attempts";

#[derive(Clone)]
pub struct AmqpBus {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    exchange: String,
    dead_letter_exchange: String,
    namespace_prefix: String,
    queue_expires: Option<Duration>,
    connection: Mutex<Option<Arc<Connection>>>,
    publisher: Mutex<Option<Channel>>,
    declared_delays: Mutex<HashSet<u64>>,
}

impl AmqpBus {
    pub async fn connect(url: &str, settings: &Settings) -> anyhow::Result<Self> {
        let bus = AmqpBus {
            inner: Arc::new(Inner {
                url: url.to_string(),
                exchange: settings.namespaced("huoke.events"),
                dead_letter_exchange: settings.namespaced("huoke.dlx"),
                namespace_prefix: settings.namespaced(""),
                queue_expires: settings.bus_queue_expires,
                connection: Mutex::new(None),
                publisher: Mutex::new(None),
                declared_delays: Mutex::new(HashSet::new()),
            }),
        };
        bus.connection().await.context("connecting to RabbitMQ (AMQP_URL)")?;
        Ok(bus)
    }

    fn queue_name(&self, queue: &str) -> String {
        format!("{}{}", self.inner.namespace_prefix, queue)
    }

    async fn connection(&self) -> anyhow::Result<Arc<Connection>> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            if conn.status().connected() {
                return Ok(conn.clone());
            }
        }
        let conn = Arc::new(Connection::connect(&self.inner.url, ConnectionProperties::default()).await?);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn publisher(&self) -> anyhow::Result<Channel> {
        let mut slot = self.inner.publisher.lock().await;
        if let Some(ch) = slot.as_ref() {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let ch = self.connection().await?.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        declare_exchanges(&ch, &self.inner.exchange, &self.inner.dead_letter_exchange).await?;
        *slot = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes and waits for the broker's confirm. On any failure the cached channel
    /// is dropped so the next call reconnects.
    async fn publish_to(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        headers: FieldTable,
        message_id: &str,
    ) -> anyhow::Result<()> {
        let result = async {
            let ch = self.publisher().await?;
            let props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message_id.into())
                .with_headers(headers);
            let confirm = ch
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    body,
                    props,
                )
                .await?
                .await?;
            if confirm.is_nack() {
                return Err(anyhow!("broker refused the message (nack)"));
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            *self.inner.publisher.lock().await = None;
        }
        result
    }

    /// Declares the delay tier for `ms`: a fanout exchange feeding a queue whose
    /// messages expire after `ms` and are dead-lettered, with their original routing
    /// key, into the events exchange. Returns the exchange to publish to.
    async fn ensure_delay_tier(&self, ms: u64) -> anyhow::Result<String> {
        let name = self.queue_name(&format!("huoke.delay.{ms}"));
        let mut declared = self.inner.declared_delays.lock().await;
        if !declared.contains(&ms) {
            let ch = self.connection().await?.create_channel().await?;
            let durable = ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            };
            ch.exchange_declare(
                name.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
            let mut args = FieldTable::default();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ms as i64));
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(self.inner.exchange.as_str().into()),
            );
            self.add_expiry(&mut args);
            ch.queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), args)
                .await?;
            ch.queue_bind(
                name.as_str().into(),
                name.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
            let _ = ch.close(200, "declared".into()).await;
            declared.insert(ms);
        }
        Ok(name)
    }

    fn add_expiry(&self, args: &mut FieldTable) {
        if let Some(expires) = self.inner.queue_expires {
            args.insert("x-expires".into(), AMQPValue::LongLongInt(expires.as_millis() as i64));
        }
    }

    async fn consume_session(
        &self,
        queue: &'static str,
        options: &ConsumerOptions,
        handler: &Arc<dyn Handler>,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let name = self.queue_name(queue);
        let ch = self.connection().await?.create_channel().await?;
        ch.basic_qos(options.prefetch, BasicQosOptions::default()).await?;
        let mut deliveries = ch
            .basic_consume(
                name.as_str().into(),
                ShortString::from(format!("{name}.{}", crate::clock::new_id())),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        loop {
            let delivery = tokio::select! {
                d = deliveries.next() => d,
                _ = stop.changed() => return Ok(()),
            };
            let delivery = match delivery {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(anyhow!("consumer stream ended")),
            };
            let attempts = attempts_of(&delivery.properties) + 1;
            let outcome = match serde_json::from_slice::<Envelope>(&delivery.data) {
                Ok(envelope) => run_handler(handler, &envelope).await,
                Err(e) => Err(HandlerError::Reject(format!("undecodable envelope: {e}"))),
            };
            match outcome {
                Ok(()) => {
                    delivery.acker.ack(BasicAckOptions::default()).await?;
                }
                Err(HandlerError::Retry(reason)) if attempts < options.max_attempts => {
                    tracing::warn!(%queue, attempts, %reason, "handler failed; will redeliver");
                    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
                    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(attempts as i64));
                    let message_id = delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    // Confirmed into the retry queue before the original is acked.
                    self.publish_to("", &format!("{name}.retry"), &delivery.data, headers, &message_id)
                        .await?;
                    delivery.acker.ack(BasicAckOptions::default()).await?;
                }
                Err(err) => {
                    tracing::error!(%queue, attempts, error = %err, "message dead-lettered");
                    metrics::counter!("huoke_bus_dead_lettered_total", "queue" => queue.to_string()).increment(1);
                    delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: false,
                            multiple: false,
                        })
                        .await?;
                }
            }
        }
    }
}

fn attempts_of(props: &BasicProperties) -> u32 {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPTS_HEADER).cloned())
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => Some(n as u32),
            AMQPValue::LongInt(n) => Some(n as u32),
            _ => None,
        })
        .unwrap_or(0)
}

async fn declare_exchanges(ch: &Channel, exchange: &str, dlx: &str) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await?;
    ch.exchange_declare(dlx.into(), ExchangeKind::Direct, durable, FieldTable::default())
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl Bus for AmqpBus {
    async fn declare(&self, queues: &[QueueSpec]) -> anyhow::Result<()> {
        let ch = self.connection().await?.create_channel().await?;
        declare_exchanges(&ch, &self.inner.exchange, &self.inner.dead_letter_exchange).await?;
        for queue in queues {
            let name = self.queue_name(queue.name);
            let mut main_args = FieldTable::default();
            main_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
            main_args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(self.inner.dead_letter_exchange.as_str().into()),
            );
            main_args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(name.as_str().into()),
            );
            self.add_expiry(&mut main_args);
            ch.queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), main_args)
                .await?;
            for key in queue.bindings {
                ch.queue_bind(
                    name.as_str().into(),
                    self.inner.exchange.as_str().into(),
                    (*key).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            }

            let mut dlq_args = FieldTable::default();
            self.add_expiry(&mut dlq_args);
            let dlq = format!("{name}.dlq");
            ch.queue_declare(dlq.as_str().into(), QueueDeclareOptions::durable(), dlq_args)
                .await?;
            ch.queue_bind(
                dlq.as_str().into(),
                self.inner.dead_letter_exchange.as_str().into(),
                name.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

            let mut retry_args = FieldTable::default();
            retry_args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(1000));
            retry_args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
            retry_args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(name.as_str().into()),
            );
            self.add_expiry(&mut retry_args);
            ch.queue_declare(
                format!("{name}.retry").as_str().into(),
                QueueDeclareOptions::durable(),
                retry_args,
            )
            .await?;
        }
        let _ = ch.close(200, "declared".into()).await;
        Ok(())
    }

    async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let body = serde_json::to_vec(envelope)?;
        self.publish_to(
            &self.inner.exchange,
            &envelope.kind,
            &body,
            FieldTable::default(),
            &envelope.id,
        )
        .await
    }

    async fn publish_delayed(&self, envelope: &Envelope, delay: Duration) -> anyhow::Result<()> {
        // Round up to whole seconds so the number of delay queues stays small.
        let ms = delay.as_millis().div_ceil(1000) as u64 * 1000;
        let exchange = self.ensure_delay_tier(ms).await?;
        let body = serde_json::to_vec(envelope)?;
        self.publish_to(&exchange, &envelope.kind, &body, FieldTable::default(), &envelope.id)
            .await
    }

    fn consume(
        &self,
        queue: &'static str,
        options: ConsumerOptions,
        handler: Arc<dyn Handler>,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let bus = self.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(200);
            loop {
                if *stop.borrow() {
                    return;
                }
                match bus.consume_session(queue, &options, &handler, &mut stop).await {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::warn!(%queue, error = %format!("{err:#}"), "consumer lost its channel; reconnecting");
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stop.changed() => return,
                        }
                        pause = (pause * 2).min(Duration::from_secs(10));
                    }
                }
            }
        })
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let conn = self.connection().await?;
        if conn.status().connected() {
            Ok(())
        } else {
            Err(anyhow!("not connected to RabbitMQ"))
        }
    }

    fn name(&self) -> &'static str {
        "rabbitmq"
    }
}
