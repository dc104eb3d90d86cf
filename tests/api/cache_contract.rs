//! One contract, both caches.

use std::sync::Arc;
use std::time::Duration;

use huoke_shared::cache::{Cache, CappedIncrement, MemoryCache, RedisCache};

use crate::helpers::{Backend, Environment};
use crate::on_both_backends;

on_both_backends!(cache_counts_claims_and_expires);
on_both_backends!(a_capped_reservation_and_its_pick_are_one_step);
on_both_backends!(a_thread_whose_runtime_ended_gets_a_working_connection);

async fn cache_for(backend: Backend) -> (Environment, Arc<dyn Cache>) {
    let env = Environment::new(backend).await;
    let settings = env.settings();
    let cache: Arc<dyn Cache> = match backend {
        Backend::Embedded => Arc::new(MemoryCache::new()),
        Backend::Services => Arc::new(
            RedisCache::connect(settings.redis_url.as_deref().unwrap(), &settings.namespace)
                .await
                .unwrap(),
        ),
    };
    (env, cache)
}

async fn cache_counts_claims_and_expires(backend: Backend) {
    let (_env, cache) = cache_for(backend).await;
    assert_eq!(cache.get("k").await.unwrap(), None);
    cache.set("k", "v", None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v"));
    cache.del("k").await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), None);

    assert!(cache.set_nx("claim", "a", Duration::from_millis(300)).await.unwrap());
    assert!(!cache.set_nx("claim", "b", Duration::from_millis(300)).await.unwrap());
    assert_eq!(cache.get("claim").await.unwrap().as_deref(), Some("a"));

    // Concurrent increments are never lost.
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .incr("counter", 1, Some(Duration::from_millis(400)))
                .await
                .unwrap()
        }));
    }
    let mut values: Vec<i64> = Vec::new();
    for t in tasks {
        values.push(t.await.unwrap());
    }
    values.sort();
    assert_eq!(values, (1..=50).collect::<Vec<_>>());

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(cache.get("claim").await.unwrap(), None, "claims expire");
    assert_eq!(
        cache.get("counter").await.unwrap(),
        None,
        "counters take their TTL when created"
    );
    assert!(cache.set_nx("claim", "c", Duration::from_secs(5)).await.unwrap());
    cache.ping().await.unwrap();
}

async fn a_capped_reservation_and_its_pick_are_one_step(backend: Backend) {
    let (_env, cache) = cache_for(backend).await;
    // 40 visitors race for 10 places: exactly 10 reserve one, and exactly those 10
    // have their pick written.
    let mut tasks = Vec::new();
    for visitor in 0..40 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            let cap = CappedIncrement {
                key: "codes:cap:{c1}:s1:20261201",
                limit: 10,
                ttl: Some(Duration::from_secs(60)),
            };
            let sticky = format!("codes:sticky:{{c1}}:v{visitor}:20261201");
            let reserved = cache
                .incr_capped_then_set(cap, &sticky, "s1", Some(Duration::from_secs(60)))
                .await
                .unwrap();
            (reserved, cache.get(&sticky).await.unwrap())
        }));
    }
    let mut reserved = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (Some(n), Some(pick)) => {
                assert_eq!(pick, "s1");
                reserved.push(n);
            }
            (None, None) => {}
            other => panic!("reservation and pick disagree: {other:?}"),
        }
    }
    reserved.sort();
    assert_eq!(reserved, (1..=10).collect::<Vec<_>>());
    assert_eq!(
        cache.get("codes:cap:{c1}:s1:20261201").await.unwrap().as_deref(),
        Some("10")
    );
}

/// Commands from a single-threaded runtime use a connection driven by that runtime;
/// once it has shut down, the same thread with a new runtime must still be served.
async fn a_thread_whose_runtime_ended_gets_a_working_connection(backend: Backend) {
    let (_env, cache) = cache_for(backend).await;
    let answers = tokio::task::spawn_blocking(move || {
        let mut answers = Vec::new();
        for round in 0..3 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            answers.push(runtime.block_on(async {
                let key = format!("round:{round}");
                cache.set(&key, "ok", Some(Duration::from_secs(30))).await.unwrap();
                cache.get(&key).await.unwrap()
            }));
            drop(runtime);
        }
        answers
    })
    .await
    .unwrap();
    assert_eq!(answers, vec![Some("ok".to_string()); 3]);
}
