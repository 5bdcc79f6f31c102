//! Test kit: where the real backends of the test rig are, one isolated
//! instance of each port per test on either adapter ([`ports`]: [`TestDb`],
//! [`TestBus`], [`TestObjects`], [`TestCache`]), so tests can run in parallel
//! against one shared PostgreSQL, broker, S3 server and Redis, the
//! spawned-binary helper ([`spawn`]) and a private broker a test may kill
//! and restart ([`broker`]: [`PrivateTansu`]).
//!
//! The rig (`scripts/test.sh`) exports one environment variable per backend.
//! A test asks for its backend with [`backend`]: outside CI an absent backend
//! skips the test with a line on stderr; with `CI=true` it fails the test, so a
//! real-backend test can never pass silently without its backend.

use std::fmt;

pub mod broker;
pub mod ports;
pub mod spawn;
pub mod tls;

pub use broker::PrivateTansu;
pub use ports::{BusKind, CacheKind, Sql, StoreKind, TestBus, TestCache, TestDb, TestObjects};

/// A real backend the rig can provide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A Kafka-protocol broker; the value is `kafka://host:port`.
    Kafka,
    /// PostgreSQL; the value is a `postgres://` URL of a database the tests may create databases from.
    Postgres,
    /// An S3-compatible server; the value is its endpoint `http://host:port`.
    S3,
    /// Redis; the value is a `redis://` URL.
    Redis,
}

impl Backend {
    /// The environment variable the rig sets for this backend.
    pub fn env_var(self) -> &'static str {
        match self {
            Backend::Kafka => "TRIBUTARY_TEST_KAFKA",
            Backend::Postgres => "TRIBUTARY_TEST_POSTGRES",
            Backend::S3 => "TRIBUTARY_TEST_S3",
            Backend::Redis => "TRIBUTARY_TEST_REDIS",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Backend::Kafka => "Kafka broker",
            Backend::Postgres => "PostgreSQL",
            Backend::S3 => "S3 server",
            Backend::Redis => "Redis",
        };
        f.write_str(name)
    }
}

/// True when running under CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI").ok().as_deref(),
        Some("true") | Some("1") | Some("TRUE") | Some("True")
    )
}

/// The address of `backend` from the rig, or `None` (test should return early).
///
/// # Panics
/// Under CI when the rig did not provide the backend: a real-backend test
/// must fail, not skip, when its backend is missing.
pub fn backend(backend: Backend) -> Option<String> {
    match std::env::var(backend.env_var()) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if in_ci() => panic!(
            "{backend} is required under CI but {} is not set; run the tests through scripts/test.sh",
            backend.env_var()
        ),
        _ => {
            eprintln!(
                "skipping: {backend} not configured ({} unset); scripts/test.sh starts it",
                backend.env_var()
            );
            None
        }
    }
}

/// A name unique to this test run: `prefix` + `-` + 12 hex chars, lowercase,
/// valid as a topic, database, bucket prefix or key prefix.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// Creates a fresh PostgreSQL database on the server of `base_url` and returns its URL.
pub async fn fresh_postgres_db(base_url: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = unique("t").replace('-', "_");
    let mut conn = sqlx::PgConnection::connect(base_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let mut url = url_without_db(base_url);
    url.push('/');
    url.push_str(&name);
    Ok(url)
}

/// Cuts every connection to the database of `db_url` (a database of the
/// test's own, e.g. from [`fresh_postgres_db`]): `pg_terminate_backend` on
/// each of its server processes, as a failover or a network cut does. Other
/// databases of the server are never touched. Returns how many were cut.
///
/// # Errors
/// When the server cannot be reached or the URL names no database.
pub async fn cut_postgres_connections(db_url: &str) -> anyhow::Result<u64> {
    use sqlx::{Connection, Row};
    let rest = db_url.split_once("://").map_or(db_url, |(_, r)| r);
    let name = rest
        .split_once('/')
        .map(|(_, path)| path.split('?').next().unwrap_or(path))
        .filter(|n| !n.is_empty() && *n != "postgres")
        .ok_or_else(|| anyhow::anyhow!("{db_url}: no database of the test's own"))?;
    let mut admin = url_without_db(db_url);
    admin.push_str("/postgres");
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS cut \
         FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(u64::try_from(row.try_get::<i64, _>("cut")?).unwrap_or(0))
}

fn url_without_db(base: &str) -> String {
    // postgres://user@host:port/db?params -> postgres://user@host:port
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

/// A consumer of `topic` on the bus `url` from the start, under a new group
/// (the reading side of [`read_topic`] and [`read_topic_until`]). The
/// embedded bus opens read-only, so this works next to the process that
/// owns the file; the reader stores and commits nothing.
async fn reader(url: &str, topic: &str) -> Box<dyn tributary_bus::Consumer> {
    let bus = tributary_bus::connect_read_only(url, &tributary_bus::BusConfig::default())
        .await
        .unwrap_or_else(|e| panic!("connect to the bus {url}: {e}"));
    bus.subscribe(
        &unique("reader"),
        &[topic.to_owned()],
        tributary_bus::ConsumerOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("subscribe to {topic}: {e}"))
}

/// Reads every record of `topic` on the bus `url` from the start, under a
/// new group: waits up to `first` for the first record, then until the
/// topic has been quiet for 5 s (for the embedded bus: after the process
/// that owned the file has stopped).
///
/// # Panics
/// When the bus cannot be reached or read.
pub async fn read_topic(
    url: &str,
    topic: &str,
    first: std::time::Duration,
) -> Vec<tributary_bus::Message> {
    let mut c = reader(url, topic).await;
    let mut out = Vec::new();
    let mut wait = first;
    while let Ok(m) = tokio::time::timeout(wait, c.recv()).await {
        out.push(m.unwrap_or_else(|e| panic!("read {topic}: {e}")));
        wait = std::time::Duration::from_secs(5);
    }
    out
}

/// Reads `topic` on the bus `url` from the start, under a new group,
/// until `done` says the records read so far are enough (then returns
/// them) or `timeout` passes (then returns what it has). For a check that
/// knows what the topic must hold: a slow broker pausing mid-read does not
/// end the read early.
///
/// # Panics
/// When the bus cannot be reached or read.
pub async fn read_topic_until(
    url: &str,
    topic: &str,
    timeout: std::time::Duration,
    done: impl Fn(&[tributary_bus::Message]) -> bool,
) -> Vec<tributary_bus::Message> {
    let mut c = reader(url, topic).await;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while !done(&out) {
        match tokio::time::timeout_at(deadline, c.recv()).await {
            Ok(m) => out.push(m.unwrap_or_else(|e| panic!("read {topic}: {e}"))),
            Err(_) => break,
        }
    }
    out
}

/// A fresh temporary directory removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("create temp dir: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_lowercase() {
        let a = unique("topic");
        let b = unique("topic");
        assert_ne!(a, b);
        assert_eq!(a, a.to_lowercase());
        assert!(a.starts_with("topic-"));
    }

    #[test]
    fn strips_database_from_url() {
        assert_eq!(
            url_without_db("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
            "postgres://postgres@127.0.0.1:5432"
        );
    }
}
