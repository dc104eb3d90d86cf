//! One contract, both caches.

use std::sync::Arc;
use std::time::Duration;

use huoke_shared::cache::{Cache, MemoryCache, RedisCache};

use crate::helpers::{Backend, Environment};
use crate::on_both_backends;

on_both_backends!(cache_counts_claims_and_expires);

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
