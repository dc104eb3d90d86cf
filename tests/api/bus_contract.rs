//! One contract, both buses: what every consumer relies on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huoke_shared::bus::{
    AmqpBus, Bus, ConsumerOptions, Envelope, Handler, HandlerError, Message, QueueSpec, RetryPolicy, SqlBus,
};
use huoke_shared::store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::helpers::{Backend, Environment, eventually};
use crate::on_both_backends;

on_both_backends!(
    published_messages_are_delivered_once_acked,
    retries_redeliver_and_then_dead_letter,
    rejected_messages_go_to_the_dead_letter_queue,
    delayed_messages_wait_their_time,
    retry_timing_follows_the_policy,
    one_failure_in_a_batch_does_not_hold_up_the_others,
    messages_sent_to_one_queue_reach_only_that_queue
);

#[derive(Serialize, Deserialize)]
struct Ping {
    n: u32,
}
impl Message for Ping {
    const TOPIC: &'static str = "test.ping";
}

const QUEUE: &str = "contract.pings";
const OTHER: &str = "contract.others";
const TOPOLOGY: &[QueueSpec] = &[
    QueueSpec {
        name: QUEUE,
        bindings: &["test.*"],
        dead_letter_queue: "contract.pings.dlq",
    },
    QueueSpec {
        name: OTHER,
        bindings: &["test.*"],
        dead_letter_queue: "contract.others.dlq",
    },
];

async fn bus_for(backend: Backend) -> (Environment, Arc<dyn Bus>) {
    let env = Environment::new(backend).await;
    let mut settings = env.settings();
    // The contract runs on the queue type production uses.
    settings.bus_classic_queues = false;
    let bus: Arc<dyn Bus> = match backend {
        Backend::Embedded => {
            let store = Store::connect(&settings.effective_database_url()).await.unwrap();
            store.migrate().await.unwrap();
            Arc::new(SqlBus::new(store))
        }
        Backend::Services => Arc::new(
            AmqpBus::connect(settings.amqp_url.as_deref().unwrap(), &settings)
                .await
                .unwrap(),
        ),
    };
    bus.declare(TOPOLOGY).await.unwrap();
    (env, bus)
}

/// Records every delivery and answers according to `behaviour(attempt_number)`.
struct Recorder {
    seen: Arc<Mutex<Vec<(Envelope, Instant)>>>,
    behaviour: fn(usize) -> Result<(), HandlerError>,
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let attempt = {
            let mut seen = self.seen.lock().unwrap();
            seen.push((envelope.clone(), Instant::now()));
            seen.len()
        };
        (self.behaviour)(attempt)
    }
}

fn consume(
    bus: &Arc<dyn Bus>,
    queue: &'static str,
    behaviour: fn(usize) -> Result<(), HandlerError>,
    options: ConsumerOptions,
    stop: &watch::Receiver<bool>,
) -> Arc<Mutex<Vec<(Envelope, Instant)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    bus.consume(
        queue,
        options,
        Arc::new(Recorder {
            seen: seen.clone(),
            behaviour,
        }),
        stop.clone(),
    );
    seen
}

fn fast() -> ConsumerOptions {
    ConsumerOptions {
        prefetch: 8,
        batch: 8,
        linger: Duration::from_millis(3),
        max_attempts: 3,
        retry: RetryPolicy {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
            jitter: 0.2,
        },
    }
}

async fn published_messages_are_delivered_once_acked(backend: Backend) {
    let (_env, bus) = bus_for(backend).await;
    let (stop, rx) = watch::channel(false);
    let seen = consume(&bus, QUEUE, |_| Ok(()), fast(), &rx);
    for n in 0..5 {
        bus.publish(&Envelope::new("t1", &Ping { n })).await.unwrap();
    }
    eventually(Duration::from_secs(5), "five deliveries", || async {
        (seen.lock().unwrap().len() >= 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5, "acked messages must not come back");
    let mut ns: Vec<u32> = seen.iter().map(|(e, _)| e.decode::<Ping>().unwrap().n).collect();
    ns.sort();
    assert_eq!(ns, [0, 1, 2, 3, 4]);
    assert!(seen.iter().all(|(e, _)| e.tenant_id == "t1" && e.kind == "test.ping"));
    let _ = stop.send(true);
}

async fn retries_redeliver_and_then_dead_letter(backend: Backend) {
    let (_env, bus) = bus_for(backend).await;
    let (stop, rx) = watch::channel(false);
    // Fails twice, then succeeds: delivered three times, no dead letter.
    let seen = consume(
        &bus,
        QUEUE,
        |attempt| {
            if attempt < 3 {
                Err(HandlerError::Retry("busy".into()))
            } else {
                Ok(())
            }
        },
        fast(),
        &rx,
    );
    let dead = consume(&bus, "contract.pings.dlq", |_| Ok(()), fast(), &rx);
    let sent = Envelope::new("t1", &Ping { n: 1 });
    bus.publish(&sent).await.unwrap();
    eventually(Duration::from_secs(10), "three deliveries", || async {
        (seen.lock().unwrap().len() >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert!(seen.lock().unwrap().iter().all(|(e, _)| e.id == sent.id));
    assert!(dead.lock().unwrap().is_empty());
    let _ = stop.send(true);

    // Always failing: after max_attempts it is parked in the dead-letter queue.
    let (_env, bus) = bus_for(backend).await;
    let (stop, rx) = watch::channel(false);
    let seen = consume(&bus, QUEUE, |_| Err(HandlerError::Retry("down".into())), fast(), &rx);
    let dead = consume(&bus, "contract.pings.dlq", |_| Ok(()), fast(), &rx);
    let sent = Envelope::new("t1", &Ping { n: 2 });
    bus.publish(&sent).await.unwrap();
    eventually(Duration::from_secs(15), "the dead letter", || async {
        (!dead.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    assert_eq!(seen.lock().unwrap().len(), 3);
    let parked = dead.lock().unwrap()[0].0.clone();
    assert_eq!(parked.id, sent.id);
    let note = parked.dead_letter.expect("the parked copy says why");
    assert_eq!(note.attempts, 3);
    assert_eq!(note.queue, QUEUE);
    assert!(note.reason.contains("down"), "{}", note.reason);
    let _ = stop.send(true);
}

async fn rejected_messages_go_to_the_dead_letter_queue(backend: Backend) {
    let (_env, bus) = bus_for(backend).await;
    let (stop, rx) = watch::channel(false);
    let seen = consume(&bus, QUEUE, |_| Err(HandlerError::Reject("poison".into())), fast(), &rx);
    let dead = consume(&bus, "contract.pings.dlq", |_| Ok(()), fast(), &rx);
    let sent = Envelope::new("t1", &Ping { n: 3 });
    bus.publish(&sent).await.unwrap();
    eventually(Duration::from_secs(10), "the dead letter", || async {
        (!dead.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    assert_eq!(seen.lock().unwrap().len(), 1, "a rejected message is not retried");
    let mut parked = dead.lock().unwrap()[0].0.clone();
    let note = parked.dead_letter.take().expect("the parked copy says why");
    assert_eq!(parked, sent, "apart from the note, the message is unchanged");
    assert_eq!(note.attempts, 1);
    assert!(note.reason.contains("poison"), "{}", note.reason);
    let _ = stop.send(true);
}

async fn delayed_messages_wait_their_time(backend: Backend) {
    let (_env, bus) = bus_for(backend).await;
    let (stop, rx) = watch::channel(false);
    let seen = consume(&bus, QUEUE, |_| Ok(()), fast(), &rx);
    let published = Instant::now();
    bus.publish_delayed(&Envelope::new("t1", &Ping { n: 4 }), Duration::from_secs(2))
        .await
        .unwrap();
    bus.publish(&Envelope::new("t1", &Ping { n: 5 })).await.unwrap();
    eventually(Duration::from_secs(10), "both deliveries", || async {
        (seen.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].0.decode::<Ping>().unwrap().n,
        5,
        "the undelayed message overtakes"
    );
    let waited = seen[1].1 - published;
    assert!(waited >= Duration::from_millis(1900), "delivered after {waited:?}");
    let _ = stop.send(true);
}

/// Fails three times, then succeeds: the gaps between deliveries follow the
/// policy's doubling tiers, shortened by at most the jitter — on both buses alike.
async fn retry_timing_follows_the_policy(backend: Backend) {
    let (_env, bus) = bus_for(backend).await;
    let (stop, rx) = watch::channel(false);
    let mut options = fast();
    options.max_attempts = 5;
    let seen = consume(
        &bus,
        QUEUE,
        |attempt| {
            if attempt <= 3 {
                Err(HandlerError::Retry("busy".into()))
            } else {
                Ok(())
            }
        },
        options.clone(),
        &rx,
    );
    bus.publish(&Envelope::new("t1", &Ping { n: 9 })).await.unwrap();
    eventually(Duration::from_secs(15), "four deliveries", || async {
        (seen.lock().unwrap().len() >= 4).then_some(())
    })
    .await;
    let times: Vec<Instant> = seen.lock().unwrap().iter().map(|(_, t)| *t).collect();
    for attempt in 1..=3u32 {
        let gap = times[attempt as usize] - times[attempt as usize - 1];
        let tier = options.retry.tier(attempt);
        let shortest = tier.mul_f64(1.0 - options.retry.jitter) - Duration::from_millis(15);
        // Never early (jitter only shortens a tier); late by at most a poll and the
        // scheduling delays of a whole suite running at once on two cores.
        let longest = tier + Duration::from_millis(800);
        assert!(
            gap >= shortest && gap <= longest,
            "attempt {attempt}: redelivered after {gap:?}, expected {shortest:?}..{longest:?}"
        );
    }
    let _ = stop.send(true);
}

/// A batch handler that fails one message: that one alone is dead-lettered, the
/// others are acknowledged once.
struct FailsOne {
    seen: Arc<Mutex<Vec<u32>>>,
    batches: Arc<Mutex<Vec<usize>>>,
}

#[async_trait::async_trait]
impl Handler for FailsOne {
    async fn handle(&self, envelope: &Envelope) -> Result<(), HandlerError> {
        let n = envelope.decode::<Ping>()?.n;
        self.seen.lock().unwrap().push(n);
        if n == 7 {
            Err(HandlerError::Reject("seven is poison".into()))
        } else {
            Ok(())
        }
    }

    async fn handle_batch(&self, envelopes: &[Envelope]) -> Vec<Result<(), HandlerError>> {
        self.batches.lock().unwrap().push(envelopes.len());
        let mut out = Vec::new();
        for e in envelopes {
            out.push(self.handle(e).await);
        }
        out
    }
}

async fn one_failure_in_a_batch_does_not_hold_up_the_others(backend: Backend) {
    let (_env, bus) = bus_for(backend).await;
    let (stop, rx) = watch::channel(false);
    let batch: Vec<(Envelope, Duration)> = (0..40)
        .map(|n| (Envelope::new("t1", &Ping { n }), Duration::ZERO))
        .collect();
    // Published before anyone consumes, so the consumer finds a backlog to batch.
    bus.publish_batch(&batch).await.unwrap();
    let handler = FailsOne {
        seen: Arc::default(),
        batches: Arc::default(),
    };
    let (seen, batches) = (handler.seen.clone(), handler.batches.clone());
    bus.consume(QUEUE, fast(), Arc::new(handler), rx.clone());
    let dead = consume(&bus, "contract.pings.dlq", |_| Ok(()), fast(), &rx);
    eventually(Duration::from_secs(10), "the dead letter", || async {
        (!dead.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ns = seen.lock().unwrap().clone();
    ns.sort();
    assert_eq!(ns, (0..40).collect::<Vec<_>>(), "each message handled exactly once");
    assert_eq!(dead.lock().unwrap().len(), 1);
    assert_eq!(dead.lock().unwrap()[0].0.decode::<Ping>().unwrap().n, 7);
    assert!(
        batches.lock().unwrap().iter().any(|&size| size > 1),
        "a backlog is handed over in batches: {:?}",
        batches.lock().unwrap()
    );
    assert!(
        batches.lock().unwrap().iter().all(|&size| size <= 8),
        "never above the batch size"
    );
    let _ = stop.send(true);
}

/// What a dead-letter replay relies on: a message sent to one queue reaches that
/// queue only, not every queue bound to its type.
async fn messages_sent_to_one_queue_reach_only_that_queue(backend: Backend) {
    let (_env, bus) = bus_for(backend).await;
    let (stop, rx) = watch::channel(false);
    let pings = consume(&bus, QUEUE, |_| Ok(()), fast(), &rx);
    let others = consume(&bus, OTHER, |_| Ok(()), fast(), &rx);
    let sent = Envelope::new("t1", &Ping { n: 11 });
    bus.send_to_queue(OTHER, &sent).await.unwrap();
    eventually(Duration::from_secs(10), "the delivery", || async {
        (!others.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(others.lock().unwrap().len(), 1);
    assert_eq!(others.lock().unwrap()[0].0, sent);
    assert!(pings.lock().unwrap().is_empty());
    let _ = stop.send(true);
}
