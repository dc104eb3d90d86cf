//! One contract, both buses: what every consumer relies on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huoke_shared::bus::{AmqpBus, Bus, ConsumerOptions, Envelope, Handler, HandlerError, Message, QueueSpec, SqlBus};
use huoke_shared::store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::helpers::{Backend, Environment, eventually};
use crate::on_both_backends;

on_both_backends!(
    published_messages_are_delivered_once_acked,
    retries_redeliver_and_then_dead_letter,
    rejected_messages_go_to_the_dead_letter_queue,
    delayed_messages_wait_their_time
);

#[derive(Serialize, Deserialize)]
struct Ping {
    n: u32,
}
impl Message for Ping {
    const TOPIC: &'static str = "test.ping";
}

const QUEUE: &str = "contract.pings";
const TOPOLOGY: &[QueueSpec] = &[QueueSpec {
    name: QUEUE,
    bindings: &["test.*"],
}];

async fn bus_for(backend: Backend) -> (Environment, Arc<dyn Bus>) {
    let env = Environment::new(backend).await;
    let settings = env.settings();
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
        max_attempts: 3,
        retry_delay: Duration::from_millis(100),
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
    assert_eq!(dead.lock().unwrap()[0].0.id, sent.id);
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
    assert_eq!(dead.lock().unwrap()[0].0, sent);
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
