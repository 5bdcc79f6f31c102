//! TLS to PostgreSQL (`sslmode`) and Redis (`rediss://`), against private
//! servers of this test's own that speak TLS only, with a certificate
//! authority made for the test (the rig's shared PostgreSQL and Redis have
//! no TLS). Outside CI a machine without the server binaries skips; under
//! `CI=true` that fails.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tributary_storage::{Cache, CacheConfig, Database, Error, SqlConfig};
use tributary_testkit::tls::{TestCa, TlsPostgres, TlsRedis};
use tributary_testkit::{in_ci, temp_dir};

/// `Ok(v)` as `Some(v)`; an error skips outside CI and fails under CI.
fn required<T>(what: &str, r: anyhow::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if in_ci() => panic!("{what} is required under CI: {e:#}"),
        Err(e) => {
            eprintln!("skipped: {what}: {e:#}");
            None
        }
    }
}

/// The test's CA (which signs the server) and another one (which does not).
fn two_cas(dir: &std::path::Path) -> Option<(TestCa, TestCa)> {
    let ca = required("openssl", TestCa::generate(&dir.join("ca"), "tributary-ca"))?;
    let other = TestCa::generate(&dir.join("other"), "other-ca").unwrap();
    Some((ca, other))
}

fn quick() -> SqlConfig {
    SqlConfig {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        ..SqlConfig::default()
    }
}

// Proves: with `sslmode=verify-full` and the test CA the pool connects and
// the session is encrypted (pg_stat_ssl); the server refuses plain
// connections, so the check above cannot pass over plaintext; a CA that did
// not sign the server's certificate is refused by the client, naming the
// certificate, and the URL in the error has no secret.
#[tokio::test]
async fn postgres_verify_full_against_a_private_ca() {
    let dir = temp_dir();
    let Some((ca, other)) = two_cas(dir.path()) else {
        return;
    };
    let Some(pg) = required("a private PostgreSQL", TlsPostgres::start(&ca).await) else {
        return;
    };

    let db = Database::connect(&pg.url("postgres", &ca.ca_cert), &quick())
        .await
        .unwrap();
    let (ssl, version): (bool, String) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(db.as_postgres().unwrap())
            .await
            .unwrap();
    assert!(ssl, "the session is not encrypted");
    assert!(version.starts_with("TLSv1."), "{version}");
    db.ping().await.unwrap();
    db.close().await;

    let plain = format!(
        "postgres://postgres:hunter2@127.0.0.1:{}/postgres?sslmode=disable",
        pg.port
    );
    let err = Database::connect(&plain, &quick()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(!text.contains("hunter2"), "{text}");

    let err = Database::connect(&pg.url("postgres", &other.ca_cert), &quick())
        .await
        .unwrap_err();
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("issuer"),
        "a wrong CA must fail on the certificate: {text}"
    );
}

// Proves: `rediss://` with `tls_ca_file` connects to a TLS-only Redis and
// stores, reads and deletes; plain `redis://` to the same port fails; a CA
// that did not sign the server is refused; `tls_ca_file` on a plain URL is
// a configuration error, not silently ignored.
#[tokio::test]
async fn redis_over_tls_against_a_private_ca() {
    let dir = temp_dir();
    let Some((ca, other)) = two_cas(dir.path()) else {
        return;
    };
    let Some(redis) = required("a private TLS redis-server", TlsRedis::start(&ca)) else {
        return;
    };
    let config = CacheConfig {
        tls_ca_file: Some(ca.ca_cert.clone()),
        timeout: Duration::from_secs(3),
        ..CacheConfig::from_url(redis.url())
    };
    let cache = Cache::connect(&config).await.unwrap();
    cache.set("k", "over tls", None).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().unwrap(), &b"over tls"[..]);
    assert!(cache.delete("k").await.unwrap());
    assert_eq!(cache.get("k").await.unwrap(), None);

    let plain = CacheConfig {
        timeout: Duration::from_secs(2),
        ..CacheConfig::from_url(format!("redis://127.0.0.1:{}", redis.port))
    };
    assert!(
        Cache::connect(&plain).await.is_err(),
        "plaintext to a TLS port"
    );

    let wrong = CacheConfig {
        tls_ca_file: Some(other.ca_cert.clone()),
        ..config.clone()
    };
    let err = Cache::connect(&wrong).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");

    let misplaced = CacheConfig {
        tls_ca_file: Some(ca.ca_cert.clone()),
        ..CacheConfig::from_url("redis://127.0.0.1:6379")
    };
    let err = Cache::connect(&misplaced).await.unwrap_err();
    assert!(err.to_string().contains("tls_ca_file"), "{err}");
}
