//! RabbitMQ through lapin. Topology, all names prefixed with the namespace:
//! - `huoke.events`: durable topic exchange every event is published to;
//! - one durable quorum queue per consumer, bound to the keys it needs, with
//!   `<queue>.dlq` behind `huoke.dlx`: a consumer that gives up on a message (rejected,
//!   or out of attempts) publishes a copy annotated with the reason there (confirmed),
//!   then acks the original;
//! - `huoke.retry.<ms>`: one fanout exchange + queue per retry tier (the doubling delays
//!   of [`RetryPolicy`](super::RetryPolicy)), shared by every consumer queue. A failed
//!   message is published there with its queue's name as routing key and a
//!   per-message expiration (the jittered delay, never above the tier, so nothing
//!   waits long behind the head), and dead-letters through the default exchange
//!   straight back into its queue;
//! - `huoke.delay.<ms>`: one fixed-delay queue per delay tier for timers, dead-lettering
//!   into `huoke.events` with the original routing key. One queue per tier because a
//!   per-message TTL would block behind the head of the queue.
//!
//! Publishing uses publisher confirms; consuming uses manual acks and a bounded
//! prefetch. Connections are re-established after a failure. Every exchange with the
//! broker that should get an answer has a deadline ([`BROKER_ANSWER_WITHIN`]): a
//! connection that dies in the wrong state can leave lapin's futures pending, and a
//! relay or consumer waiting on one would never retry nor stop.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures_util::{FutureExt, StreamExt};
use lapin::PublisherConfirm;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::{Bus, ConsumerOptions, Envelope, Handler, QueueSpec, Settlement, handle_decoded};
use crate::config::Settings;

const ATTEMPTS_HEADER: &str = "x-huoke-attempts";

/// How long a declare, publish, confirm or ack may wait for the broker. Generous next
/// to the milliseconds they take, short next to an operator's patience.
pub const BROKER_ANSWER_WITHIN: Duration = Duration::from_secs(20);

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
    classic_queues: bool,
    connection: Mutex<Option<Arc<Connection>>>,
    publisher: Mutex<Option<Channel>>,
    declared_delays: Mutex<HashSet<String>>,
    /// Set when the broker left a request unanswered: the cached connection and
    /// channel still say "connected" but cannot be trusted, so the next use opens new
    /// ones. A flag rather than a reset so it can be raised while a lock is held.
    suspect: AtomicBool,
    /// Live events for this process (see [`Bus::live`]), fed by one exclusive queue
    /// started on first use.
    live: tokio::sync::broadcast::Sender<Arc<Envelope>>,
    live_started: AtomicBool,
    /// True while the live queue is bound and consumed.
    live_up: watch::Sender<bool>,
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
                classic_queues: settings.bus_classic_queues,
                connection: Mutex::new(None),
                publisher: Mutex::new(None),
                declared_delays: Mutex::new(HashSet::new()),
                suspect: AtomicBool::new(false),
                live: tokio::sync::broadcast::channel(super::LIVE_BUFFER).0,
                live_started: AtomicBool::new(false),
                live_up: watch::channel(false).0,
            }),
        };
        bus.connection().await.context("connecting to RabbitMQ (AMQP_URL)")?;
        Ok(bus)
    }

    fn queue_name(&self, queue: &str) -> String {
        format!("{}{}", self.inner.namespace_prefix, queue)
    }

    /// Awaits one answer from the broker, at most [`BROKER_ANSWER_WITHIN`]; when none
    /// comes the connection is marked suspect so the next call starts afresh.
    async fn answered<T, E>(&self, what: &str, request: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
    where
        E: Into<anyhow::Error>,
    {
        match tokio::time::timeout(BROKER_ANSWER_WITHIN, request).await {
            Ok(result) => result.map_err(Into::into),
            Err(_) => {
                self.inner.suspect.store(true, Ordering::SeqCst);
                Err(anyhow!(
                    "RabbitMQ did not answer {what} within {} s",
                    BROKER_ANSWER_WITHIN.as_secs()
                ))
            }
        }
    }

    async fn connection(&self) -> anyhow::Result<Arc<Connection>> {
        let mut slot = self.inner.connection.lock().await;
        if self.inner.suspect.swap(false, Ordering::SeqCst) {
            // Dropping our handle is enough: lapin closes the socket with the last one.
            *slot = None;
        }
        if let Some(conn) = slot.as_ref()
            && conn.status().connected()
        {
            return Ok(conn.clone());
        }
        // Bounded: the lock is held meanwhile, and a stalled handshake must not
        // freeze every publisher and consumer behind it.
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            Connection::connect(&self.inner.url, ConnectionProperties::default()),
        )
        .await
        .map_err(|_| anyhow!("RabbitMQ did not complete the connection within 10 s"))??;
        let conn = Arc::new(conn);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn publisher(&self) -> anyhow::Result<Channel> {
        let mut slot = self.inner.publisher.lock().await;
        if let Some(ch) = slot.as_ref()
            && ch.status().connected()
            && !self.inner.suspect.load(Ordering::SeqCst)
        {
            return Ok(ch.clone());
        }
        let conn = self.connection().await?;
        let ch = self.answered("opening a channel", conn.create_channel()).await?;
        self.answered("confirm.select", ch.confirm_select(ConfirmSelectOptions::default()))
            .await?;
        self.answered(
            "declaring the exchanges",
            declare_exchanges(&ch, &self.inner.exchange, &self.inner.dead_letter_exchange),
        )
        .await?;
        *slot = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes and waits for the broker's confirm.
    async fn publish_to(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> anyhow::Result<()> {
        let confirm = self.start_publish(exchange, routing_key, body, props).await?;
        self.await_confirms(vec![confirm]).await
    }

    /// Sends one message on the publishing channel; the returned confirm is awaited
    /// with [`Self::await_confirms`], so many publishes share one round trip.
    async fn start_publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> anyhow::Result<PublisherConfirm> {
        let result = async {
            let ch = self.publisher().await?;
            self.answered(
                "a publish",
                ch.basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    body,
                    props.with_delivery_mode(2).with_content_type("application/json".into()),
                ),
            )
            .await
        }
        .await;
        if result.is_err() {
            // Drop the cached channel so the next call reconnects.
            *self.inner.publisher.lock().await = None;
        }
        result
    }

    async fn await_confirms(&self, confirms: Vec<PublisherConfirm>) -> anyhow::Result<()> {
        let mut failure = None;
        for confirm in confirms {
            match self.answered("a publisher confirm", confirm).await {
                Ok(c) if c.is_nack() => failure = Some(anyhow!("broker refused a message (nack)")),
                Ok(_) => {}
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            None => Ok(()),
            Some(err) => {
                *self.inner.publisher.lock().await = None;
                Err(err)
            }
        }
    }

    /// Declares a fixed-delay tier: a fanout exchange `<kind>.<ms>` feeding a queue
    /// whose messages expire after `ms` and are dead-lettered into `target` (the events
    /// exchange for timers, the default exchange for retries) with their own routing
    /// key. Returns the exchange to publish to.
    async fn ensure_tier(&self, kind: &str, ms: u64, target: &str) -> anyhow::Result<String> {
        let name = self.queue_name(&format!("{kind}.{ms}"));
        let mut declared = self.inner.declared_delays.lock().await;
        if !declared.contains(&name) {
            let conn = self.connection().await?;
            self.answered("declaring a delay tier", async {
                let ch = conn.create_channel().await?;
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
                args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(target.into()));
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
                anyhow::Ok(())
            })
            .await?;
            declared.insert(name.clone());
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
        let conn = self.connection().await?;
        let mut deliveries = self
            .answered("starting a consumer", async {
                let ch = conn.create_channel().await?;
                ch.basic_qos(options.prefetch.max(1), BasicQosOptions::default())
                    .await?;
                ch.basic_consume(
                    name.as_str().into(),
                    ShortString::from(format!("{name}.{}", crate::clock::new_id())),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
            })
            .await?;
        loop {
            let first = tokio::select! {
                d = deliveries.next() => d,
                _ = stop.changed() => return Ok(()),
            };
            let mut batch: Vec<Delivery> = vec![next_delivery(first)?];
            // What arrives within `linger` of the first joins the batch: a moment's
            // wait turns a steady trickle into one transaction per handful.
            let until = tokio::time::Instant::now() + options.linger;
            while batch.len() < options.batch.max(1) {
                match deliveries.next().now_or_never() {
                    Some(d) => batch.push(next_delivery(d)?),
                    None if options.linger.is_zero() => break,
                    None => match tokio::time::timeout_at(until, deliveries.next()).await {
                        Ok(d) => batch.push(next_delivery(d)?),
                        Err(_) => break,
                    },
                }
            }
            let envelopes: Vec<Option<Envelope>> = batch.iter().map(|d| serde_json::from_slice(&d.data).ok()).collect();
            let outcomes = handle_decoded(handler, &envelopes).await;

            // Failed messages are copied (retry tier or dead-letter queue) and those
            // copies confirmed before anything in the batch is acked.
            let mut confirms = Vec::new();
            for ((delivery, envelope), outcome) in batch.iter().zip(&envelopes).zip(&outcomes) {
                let attempts = attempts_of(&delivery.properties) + 1;
                match options.settle(queue, attempts, outcome) {
                    Settlement::Done => {}
                    Settlement::RetryAfter(delay) => {
                        let tier = options.retry.tier(attempts);
                        let exchange = self.ensure_tier("huoke.retry", tier.as_millis() as u64, "").await?;
                        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
                        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(attempts as i64));
                        let props = copy_props(delivery)
                            .with_headers(headers)
                            .with_expiration(delay.as_millis().max(1).to_string().into());
                        confirms.push(self.start_publish(&exchange, &name, &delivery.data, props).await?);
                    }
                    Settlement::DeadLetter(reason) => {
                        let body = match envelope {
                            Some(e) => serde_json::to_vec(&e.parked(queue, &reason, attempts))?,
                            None => delivery.data.clone(),
                        };
                        let mut headers = FieldTable::default();
                        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(attempts as i64));
                        let props = copy_props(delivery).with_headers(headers);
                        let dlx = self.inner.dead_letter_exchange.clone();
                        confirms.push(self.start_publish(&dlx, &name, &body, props).await?);
                    }
                }
            }
            self.await_confirms(confirms).await?;
            if let Some(last) = batch.last() {
                self.answered("an ack", last.acker.ack(BasicAckOptions { multiple: true }))
                    .await?;
            }
        }
    }

    /// Feeds this process's live receivers from a queue of its own — server-named,
    /// exclusive, deleted with the connection — bound to the live topics: every
    /// process gets every live event (a fan-out), unlike the consumer queues, where
    /// replicas share the work. Reconnects after a failure; events published while
    /// it was away are not replayed (clients resume from the store).
    async fn live_session(&self) -> anyhow::Result<()> {
        let conn = self.connection().await?;
        let mut deliveries = self
            .answered("starting the live feed", async {
                let ch = conn.create_channel().await?;
                let queue = ch
                    .queue_declare(
                        "".into(),
                        QueueDeclareOptions {
                            exclusive: true,
                            auto_delete: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                for topic in crate::messages::LIVE_TOPICS {
                    ch.queue_bind(
                        queue.name().as_str().into(),
                        self.inner.exchange.as_str().into(),
                        (*topic).into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                }
                ch.basic_consume(
                    queue.name().as_str().into(),
                    "live".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
            })
            .await?;
        self.inner.live_up.send_replace(true);
        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery?;
            if let Ok(envelope) = serde_json::from_slice::<Envelope>(&delivery.data) {
                let _ = self.inner.live.send(Arc::new(envelope));
            }
        }
        Err(anyhow!("the live feed ended"))
    }

    /// The queues, exchanges and bindings of [`Bus::declare`], on a channel of its own.
    async fn declare_on(&self, conn: &Connection, queues: &[QueueSpec]) -> anyhow::Result<()> {
        let ch = conn.create_channel().await?;
        declare_exchanges(&ch, &self.inner.exchange, &self.inner.dead_letter_exchange).await?;
        for queue in queues {
            let name = self.queue_name(queue.name);
            let mut main_args = FieldTable::default();
            if self.inner.classic_queues {
                main_args.insert("x-queue-version".into(), AMQPValue::LongInt(2));
            } else {
                main_args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
            }
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
        }
        let _ = ch.close(200, "declared".into()).await;
        Ok(())
    }
}

fn next_delivery(d: Option<Result<Delivery, lapin::Error>>) -> anyhow::Result<Delivery> {
    match d {
        Some(Ok(d)) => Ok(d),
        Some(Err(e)) => Err(e.into()),
        None => Err(anyhow!("consumer stream ended")),
    }
}

fn copy_props(delivery: &Delivery) -> BasicProperties {
    let mut props = BasicProperties::default();
    if let Some(id) = delivery.properties.message_id() {
        props = props.with_message_id(id.clone());
    }
    props
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
        let conn = self.connection().await?;
        self.answered("declaring the topology", self.declare_on(&conn, queues))
            .await
    }

    async fn publish_batch(&self, batch: &[(Envelope, Duration)]) -> anyhow::Result<()> {
        let mut confirms = Vec::with_capacity(batch.len());
        for (envelope, delay) in batch {
            let body = serde_json::to_vec(envelope)?;
            let exchange = if delay.is_zero() {
                self.inner.exchange.clone()
            } else {
                // Round up to whole seconds so the number of delay queues stays small.
                let ms = delay.as_millis().div_ceil(1000) as u64 * 1000;
                self.ensure_tier("huoke.delay", ms, &self.inner.exchange.clone())
                    .await?
            };
            let props = BasicProperties::default().with_message_id(envelope.id.as_str().into());
            confirms.push(self.start_publish(&exchange, &envelope.kind, &body, props).await?);
        }
        self.await_confirms(confirms).await
    }

    async fn send_to_queue(&self, queue: &str, envelope: &Envelope) -> anyhow::Result<()> {
        let body = serde_json::to_vec(envelope)?;
        let props = BasicProperties::default().with_message_id(envelope.id.as_str().into());
        self.publish_to("", &self.queue_name(queue), &body, props).await
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

    fn live(&self) -> super::Live {
        let receiver = self.inner.live.subscribe();
        if !self.inner.live_started.swap(true, Ordering::SeqCst) {
            let bus = self.clone();
            tokio::spawn(async move {
                let mut pause = Duration::from_millis(200);
                loop {
                    if let Err(err) = bus.live_session().await {
                        tracing::warn!(error = %format!("{err:#}"), "live feed lost; reconnecting");
                    }
                    bus.inner.live_up.send_replace(false);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            });
        }
        receiver
    }

    async fn live_ready(&self, within: Duration) -> bool {
        drop(self.live());
        let mut up = self.inner.live_up.subscribe();
        tokio::time::timeout(within, up.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
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
