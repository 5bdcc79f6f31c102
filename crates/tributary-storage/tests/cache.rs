//! Conformance scenarios of the cache port, each written once and run against
//! the in-memory cache (always) and Redis (when the rig provides it).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tributary_platform::health::HealthCheck;
use tributary_storage::{Cache, CacheConfig, CacheKind, Error};
use tributary_testkit::{backend, unique, Backend};

async fn memory() -> Option<Cache> {
    let config = CacheConfig {
        key_prefix: format!("{}:", unique("cache")),
        ..CacheConfig::from_url("memory://")
    };
    Some(Cache::connect(&config).await.unwrap())
}

/// A cache on the rig's Redis under a unique key prefix, or `None` outside the rig.
async fn redis() -> Option<Cache> {
    let url = backend(Backend::Redis)?;
    let config = CacheConfig {
        key_prefix: format!("{}:", unique("cache")),
        ..CacheConfig::from_url(url)
    };
    Some(Cache::connect(&config).await.unwrap())
}

async fn set_get_delete(cache: Cache) {
    // Proves: set stores bytes, a second set replaces them, delete removes them and says whether they were there.
    assert_eq!(cache.get("k").await.unwrap(), None);
    cache.set("k", "v1", None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().unwrap(), &b"v1"[..]);
    cache.set("k", vec![0u8, 255, 7], None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().unwrap(), &[0u8, 255, 7][..]);
    assert!(cache.delete("k").await.unwrap());
    assert!(!cache.delete("k").await.unwrap());
    assert_eq!(cache.get("k").await.unwrap(), None);
}

async fn entries_expire_after_their_ttl(cache: Cache) {
    // Proves: each entry expires after its own TTL; a later set without TTL keeps the entry; a zero TTL removes it.
    cache
        .set("short", "gone soon", Some(Duration::from_millis(200)))
        .await
        .unwrap();
    cache
        .set("long", "stays", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    cache
        .set("renewed", "a", Some(Duration::from_millis(200)))
        .await
        .unwrap();
    cache.set("renewed", "b", None).await.unwrap();
    assert_eq!(
        cache.get("short").await.unwrap().unwrap(),
        &b"gone soon"[..]
    );

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(cache.get("short").await.unwrap(), None);
    assert_eq!(cache.get("long").await.unwrap().unwrap(), &b"stays"[..]);
    assert_eq!(cache.get("renewed").await.unwrap().unwrap(), &b"b"[..]);

    cache.set("long", "x", Some(Duration::ZERO)).await.unwrap();
    assert_eq!(cache.get("long").await.unwrap(), None);
}

async fn prefixes_isolate(cache: Cache) {
    // Proves: handles with different key prefixes on one cache do not see each other's keys.
    let a = cache.with_prefix("a:");
    let b = cache.with_prefix("b:");
    a.set("k", "from a", None).await.unwrap();
    b.set("k", "from b", None).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().unwrap(), &b"from a"[..]);
    assert_eq!(b.get("k").await.unwrap().unwrap(), &b"from b"[..]);
    assert_eq!(cache.get("k").await.unwrap(), None);
    assert_eq!(cache.get("a:k").await.unwrap().unwrap(), &b"from a"[..]);
    a.delete("k").await.unwrap();
    assert_eq!(b.get("k").await.unwrap().unwrap(), &b"from b"[..]);
}

async fn readiness_answers(cache: Cache) {
    // Proves: the readiness check passes when the cache answers.
    assert_eq!(cache.name(), "cache");
    cache.check().await.unwrap();
}

macro_rules! run_on {
    ($adapter:ident: $($scenario:ident),+ $(,)?) => {
        mod $adapter {
            $(
                // Runs the scenario of the same name (see its first line) on this adapter.
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let Some(cache) = super::$adapter().await else { return };
                    super::$scenario(cache).await;
                }
            )+
        }
    };
}

run_on!(memory: set_get_delete, entries_expire_after_their_ttl, prefixes_isolate, readiness_answers);
run_on!(redis: set_get_delete, entries_expire_after_their_ttl, prefixes_isolate, readiness_answers);

#[tokio::test]
async fn adapters_are_picked_by_scheme() {
    // Proves: memory:// and redis:// pick their adapters and other schemes are refused.
    let cache = Cache::connect(&CacheConfig::default()).await.unwrap();
    assert_eq!(cache.kind(), CacheKind::Memory);
    let err = Cache::connect(&CacheConfig::from_url("memcached://h:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedScheme { .. }), "{err}");
}

#[tokio::test]
async fn unreachable_redis_fails_without_showing_password() {
    // Proves: connecting to a Redis that is not there fails with one line that hides the password.
    let config = CacheConfig {
        timeout: Duration::from_millis(500),
        ..CacheConfig::from_url("redis://:hunter2@127.0.0.1:1/0")
    };
    let err = Cache::connect(&config).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}
