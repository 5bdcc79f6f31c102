#![allow(clippy::unwrap_used)]
use std::time::Duration;
use tributary_storage::*;
#[tokio::test]
async fn show() {
    let cfg = SqlConfig {
        acquire_timeout: Duration::from_millis(500),
        ..SqlConfig::default()
    };
    for u in [
        "postgres://app:hunter2@127.0.0.1:1/db",
        "postgres://u:pw@host:notaport/db",
        "mysql://a:b@c/d",
        "sqlite:///proc/nope/x.db",
        "postgres://postgres@127.0.0.1:5432/nonexistentdb",
    ] {
        eprintln!("{}", Database::connect(u, &cfg).await.unwrap_err());
    }
    eprintln!(
        "{}",
        Cache::connect(&CacheConfig {
            timeout: Duration::from_millis(500),
            ..CacheConfig::from_url("redis://:hunter2@127.0.0.1:1/0")
        })
        .await
        .unwrap_err()
    );
    eprintln!(
        "{}",
        Cache::connect(&CacheConfig::from_url("redis://[bad"))
            .await
            .unwrap_err()
    );
    let o = Objects::open(&ObjectsConfig {
        url: "s3://nobucket-xyz/p".into(),
        endpoint: Some("http://127.0.0.1:8333".into()),
        region: Some("us-east-1".into()),
        access_key_id: Some("k".into()),
        secret_access_key: Some("s".into()),
        allow_http: true,
    })
    .unwrap();
    eprintln!("{}", o.ping().await.unwrap_err());
    eprintln!("{}", o.get("x").await.unwrap_err());
    let o = Objects::open(&ObjectsConfig {
        url: "s3://tributary-test/p".into(),
        endpoint: Some("http://127.0.0.1:8333".into()),
        region: Some("us-east-1".into()),
        access_key_id: Some("k".into()),
        secret_access_key: Some("wrong".into()),
        allow_http: true,
    })
    .unwrap();
    eprintln!("{}", o.ping().await.unwrap_err());
}
