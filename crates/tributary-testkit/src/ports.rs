//! One isolated instance of each port per test, on either adapter:
//! [`TestDb`] (SQLite file or a fresh PostgreSQL database), [`TestBus`]
//! (embedded bus file or the rig's Kafka under a unique topic/group prefix),
//! [`TestObjects`] (a directory or a unique key prefix of the rig's S3
//! bucket) and [`TestCache`] (in-process or the rig's Redis under a unique
//! key prefix).
//!
//! Every constructor returns `None` when the real backend is not configured
//! outside CI (the test then returns early, with a line on stderr); under
//! `CI=true` it panics instead (see [`crate::backend`]). Each value keeps its
//! temporary directory alive while it lives, and its `url` (or config) is
//! what a spawned `tributary` process needs to reach the same instance.

use std::time::Duration;

use tempfile::TempDir;
use tributary_bus::{Bus, BusConfig};
use tributary_storage::{Cache, CacheConfig, Database, Objects, ObjectsConfig, SqlConfig};

use crate::{backend, fresh_postgres_db, temp_dir, unique, Backend};

/// Which SQL adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sql {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the rig's PostgreSQL.
    Postgres,
}

/// Which bus adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    /// The embedded bus, its own SQLite file.
    Embedded,
    /// The rig's Kafka broker, topics and groups under a unique prefix.
    Kafka,
}

/// Which object-store adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `file://` in a temporary directory.
    Dir,
    /// The rig's S3 server, under a unique key prefix of its bucket.
    S3,
}

/// Which cache adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// The in-process cache.
    Memory,
    /// The rig's Redis under a unique key prefix.
    Redis,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A database of its own for one test.
pub struct TestDb {
    /// The connected database (not migrated: that is the system's job).
    pub db: Database,
    /// Its URL, for a spawned process.
    pub url: String,
    _dir: TempDir,
}

impl TestDb {
    /// A fresh database on `kind` with 16 connections and a 30 s busy timeout.
    ///
    /// # Panics
    /// When the backend is configured but cannot be reached.
    pub async fn open(kind: Sql) -> Option<Self> {
        let dir = temp_dir();
        let url = match kind {
            Sql::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
            Sql::Postgres => {
                let base = backend(Backend::Postgres)?;
                fresh_postgres_db(&base)
                    .await
                    .unwrap_or_else(|e| panic!("create a fresh PostgreSQL database: {e:#}"))
            }
        };
        let config = SqlConfig {
            max_connections: 16,
            busy_timeout: Duration::from_secs(30),
            ..SqlConfig::default()
        };
        let db = Database::connect(&url, &config)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Some(Self { db, url, _dir: dir })
    }

    /// The temporary directory of this test (also handy for other files).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

/// A bus of its own for one test.
pub struct TestBus {
    /// The connected bus; on Kafka every topic and group name gets
    /// [`TestBus::prefix`] in front, so tests never see each other's records.
    pub bus: Bus,
    /// The unwrapped URL (`sqlite://...` or `kafka://host:port`).
    pub url: String,
    /// The topic/group prefix on Kafka (empty on the embedded bus, whose
    /// file is the test's own).
    pub prefix: String,
    /// Which adapter.
    pub kind: BusKind,
    _dir: TempDir,
}

impl TestBus {
    /// A bus on `kind`.
    ///
    /// # Panics
    /// When the backend is configured but cannot be reached.
    pub async fn open(kind: BusKind) -> Option<Self> {
        let dir = temp_dir();
        let (url, prefix) = match kind {
            BusKind::Embedded => (
                format!("sqlite://{}", dir.path().join("bus.db").display()),
                String::new(),
            ),
            BusKind::Kafka => (backend(Backend::Kafka)?, format!("{}.", unique("t"))),
        };
        let raw = tributary_bus::connect(&url, &BusConfig::default())
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let bus = if prefix.is_empty() {
            raw
        } else {
            tributary_bus::namespaced::Namespaced::wrap(raw, prefix.clone())
        };
        Some(Self {
            bus,
            url,
            prefix,
            kind,
            _dir: dir,
        })
    }

    /// How long to wait for group joins and deliveries on this adapter
    /// (a Kafka group join takes seconds; the embedded bus milliseconds).
    pub fn patience(&self) -> Duration {
        match self.kind {
            BusKind::Embedded => Duration::from_secs(15),
            BusKind::Kafka => Duration::from_secs(90),
        }
    }
}

/// An object store of its own for one test.
pub struct TestObjects {
    /// The opened store.
    pub objects: Objects,
    /// Its configuration, for a spawned process.
    pub config: ObjectsConfig,
    _dir: TempDir,
}

impl TestObjects {
    /// A store on `kind`. The S3 bucket, region and keys come from
    /// `TRIBUTARY_TEST_S3_BUCKET`/`_REGION`/`_ACCESS_KEY_ID`/`_SECRET_ACCESS_KEY`
    /// (the rig's defaults when unset).
    ///
    /// # Panics
    /// When the configuration is invalid.
    pub fn open(kind: StoreKind) -> Option<Self> {
        let dir = temp_dir();
        let config = match kind {
            StoreKind::Dir => {
                ObjectsConfig::from_url(format!("file://{}", dir.path().join("objects").display()))
            }
            StoreKind::S3 => ObjectsConfig {
                url: format!(
                    "s3://{}/{}",
                    env_or("TRIBUTARY_TEST_S3_BUCKET", "tributary-test"),
                    unique("t")
                ),
                endpoint: Some(backend(Backend::S3)?),
                region: Some(env_or("TRIBUTARY_TEST_S3_REGION", "us-east-1")),
                access_key_id: Some(env_or("TRIBUTARY_TEST_S3_ACCESS_KEY_ID", "k")),
                secret_access_key: Some(env_or("TRIBUTARY_TEST_S3_SECRET_ACCESS_KEY", "s")),
                allow_http: true,
            },
        };
        let objects = Objects::open(&config).unwrap_or_else(|e| panic!("open objects: {e}"));
        Some(Self {
            objects,
            config,
            _dir: dir,
        })
    }
}

/// A cache of its own for one test.
pub struct TestCache {
    /// The connected cache.
    pub cache: Cache,
    /// Its configuration (URL and the unique key prefix), for a spawned process.
    pub config: CacheConfig,
}

impl TestCache {
    /// A cache on `kind`, keys under a unique prefix.
    ///
    /// # Panics
    /// When the backend is configured but cannot be reached.
    pub async fn open(kind: CacheKind) -> Option<Self> {
        let url = match kind {
            CacheKind::Memory => "memory://".to_owned(),
            CacheKind::Redis => backend(Backend::Redis)?,
        };
        let config = CacheConfig {
            key_prefix: format!("{}:", unique("t")),
            ..CacheConfig::from_url(url)
        };
        let cache = Cache::connect(&config)
            .await
            .unwrap_or_else(|e| panic!("connect cache {}: {e}", config.url));
        Some(Self { cache, config })
    }
}
