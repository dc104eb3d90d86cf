//! One contract, both caches.

use std::sync::Arc;
use std::time::Duration;

use huoke_shared::cache::{Cache, CappedIncrement, MemoryCache, RedisCache, Reserved};

use crate::helpers::{Backend, Environment};
use crate::on_both_backends;

on_both_backends!(cache_counts_claims_and_expires);
on_both_backends!(a_thread_whose_runtime_ended_gets_a_working_connection);
on_both_backends!(block_reservations_never_exceed_the_cap);

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

async fn block_reservations_never_exceed_the_cap(backend: Backend) {
    let (_env, cache) = cache_for(backend).await;
    let cap = CappedIncrement {
        key: "codes:block:{c1}:s1:20261201",
        limit: 100,
        ttl: Some(Duration::from_secs(60)),
    };
    // 40 callers race to reserve 3 places each, 120 asked for 100: exactly 100 are
    // granted in all.
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move { cache.reserve(cap, 3).await.unwrap() }));
    }
    let mut granted = 0;
    for t in tasks {
        let reserved = t.await.unwrap();
        assert!((0..=3).contains(&reserved.granted), "granted {} of 3", reserved.granted);
        // A grant of any place leaves the counter at most at the cap, a partial one
        // exactly at it; a refusal saw it at the cap or past it (on Redis, others'
        // overshoot not yet given back).
        match reserved.granted {
            3 => assert!(reserved.count <= 100, "{reserved:?}"),
            1 | 2 => assert_eq!(reserved.count, 100, "{reserved:?}"),
            _ => assert!(reserved.count >= 100, "{reserved:?}"),
        }
        granted += reserved.granted;
    }
    assert_eq!(granted, 100);
    assert_eq!(cache.get(cap.key).await.unwrap().as_deref(), Some("100"));
    assert_eq!(
        cache.reserve(cap, 1).await.unwrap(),
        Reserved { granted: 0, count: 100 },
        "a full counter grants nothing"
    );
    assert_eq!(cache.get(cap.key).await.unwrap().as_deref(), Some("100"));

    // Places not used go back, and only those can be reserved again.
    assert_eq!(cache.incr(cap.key, -7, None).await.unwrap(), 93);
    assert_eq!(
        cache.reserve(cap, 10).await.unwrap(),
        Reserved { granted: 7, count: 100 }
    );
    assert_eq!(cache.get(cap.key).await.unwrap().as_deref(), Some("100"));

    // Asking for no place is a mistake, and leaves the counter alone.
    assert!(cache.reserve(cap, 0).await.is_err());
    assert!(cache.reserve(cap, -3).await.is_err());
    assert_eq!(cache.get(cap.key).await.unwrap().as_deref(), Some("100"));

    // The TTL applies when a reservation creates the counter.
    let short = CappedIncrement {
        key: "codes:block:{c1}:s2:20261201",
        limit: 100,
        ttl: Some(Duration::from_millis(300)),
    };
    assert_eq!(
        cache.reserve(short, 5).await.unwrap(),
        Reserved { granted: 5, count: 5 }
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cache.get(short.key).await.unwrap(), None, "the counter expires");
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
