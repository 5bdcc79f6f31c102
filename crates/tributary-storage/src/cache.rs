//! The cache port: short-lived bytes under string keys, Redis in production,
//! an in-process cache on one machine.
//!
//! A cache may lose any entry at any time (eviction, restart, TTL), so callers
//! treat a miss as "compute or load it again" and never keep the only copy of
//! data here. Every key is stored as `prefix + key`, so systems (and tests)
//! sharing one Redis do not collide.
//!
//! Failure: on Redis, a command that gets no answer within
//! [`CacheConfig::timeout`] fails with [`Error::Redis`]; the connection is
//! re-established in the background and later commands work again. Callers
//! usually treat a failed `get` as a miss. The in-memory adapter does not
//! fail. Cancelling (dropping) a `set` may or may not have stored the value.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache as Moka;
use moka::Expiry;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tributary_platform::url::{redact, scheme};

use crate::error::one_line;
use crate::{Error, Result};

const PORT: &str = "cache";

/// How to open a [`Cache`].
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS) or
    /// `memory://`.
    pub url: String,
    /// `rediss://` only: a PEM file of the CA certificates the server's
    /// certificate must chain to, instead of the system's trust store
    /// (for a private CA or a self-signed server).
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Prepended to every key (e.g. `docs:`); isolates users of one Redis.
    pub key_prefix: String,
    /// In-memory adapter: the most bytes (keys + values) kept before the
    /// least useful entries are evicted. Default 64 MiB.
    pub memory_max_bytes: u64,
    /// Redis: how long connecting and each command may take. Default 5 s.
    pub timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            url: "memory://".into(),
            key_prefix: String::new(),
            memory_max_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(5),
            tls_ca_file: None,
        }
    }
}

impl CacheConfig {
    /// Defaults with `url`.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// Which adapter a [`Cache`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// Redis through a reconnecting connection manager.
    Redis,
    /// In-process (moka), lost on restart, one process only.
    Memory,
}

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Option<Duration>,
}

/// Each entry expires after its own TTL, counted from its last write.
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _at: Instant) -> Option<Duration> {
        value.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        value.ttl
    }
}

#[derive(Clone)]
enum Backend {
    Redis(ConnectionManager),
    Memory(Moka<String, Entry>),
}

/// A handle to the cache. Cloning is cheap and shares the connection (Redis)
/// or the entries (memory).
#[derive(Clone)]
pub struct Cache {
    backend: Backend,
    prefix: Arc<str>,
    url: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The Redis client of `url`; `rediss://` verifies the server against
/// `config.tls_ca_file` when set, else against the system's trust store.
fn redis_client(
    url: &str,
    tls: bool,
    config: &CacheConfig,
) -> std::result::Result<redis::Client, String> {
    if !tls {
        if config.tls_ca_file.is_some() {
            return Err("cache.tls_ca_file is set but the URL is not rediss://".into());
        }
        return redis::Client::open(url).map_err(|e| one_line(&e));
    }
    crate::install_crypto_provider();
    let root_cert = match &config.tls_ca_file {
        None => None,
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| format!("cannot read cache.tls_ca_file {}: {e}", path.display()))?,
        ),
    };
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert,
    };
    redis::Client::build_with_tls(url, certs).map_err(|e| one_line(&e))
}

impl Cache {
    /// Opens the cache of `config.url`; for Redis, connects and fails when the
    /// server does not answer within [`CacheConfig::timeout`].
    ///
    /// # Errors
    /// [`Error::UnsupportedScheme`], [`Error::InvalidUrl`], [`Error::Connect`]
    /// (messages name the URL without its password).
    pub async fn connect(config: &CacheConfig) -> Result<Self> {
        let url = config.url.trim();
        let redacted = redact(url);
        let backend = match scheme(url).as_deref() {
            Some("memory") => {
                let cache = Moka::builder()
                    .max_capacity(config.memory_max_bytes)
                    .weigher(|k: &String, v: &Entry| {
                        u32::try_from(k.len() + v.value.len()).unwrap_or(u32::MAX)
                    })
                    .expire_after(PerEntryTtl)
                    .build();
                Backend::Memory(cache)
            }
            Some(tls @ ("redis" | "rediss")) => {
                let client = redis_client(url, tls == "rediss", config).map_err(|reason| {
                    Error::InvalidUrl {
                        port: PORT,
                        url: redacted.clone(),
                        reason,
                    }
                })?;
                let cm_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.timeout))
                    .set_response_timeout(Some(config.timeout))
                    .set_number_of_retries(2);
                let cm = ConnectionManager::new_with_config(client, cm_config)
                    .await
                    .map_err(|e| Error::Connect {
                        port: PORT,
                        url: redacted.clone(),
                        reason: one_line(&e),
                    })?;
                Backend::Redis(cm)
            }
            _ => {
                return Err(Error::UnsupportedScheme {
                    port: PORT,
                    url: redacted,
                    expected: "redis://, rediss:// or memory://",
                })
            }
        };
        Ok(Self {
            backend,
            prefix: Arc::from(config.key_prefix.as_str()),
            url: redacted,
        })
    }

    /// A handle sharing this cache whose keys get `sub` appended to the
    /// prefix (isolation per component or test).
    pub fn with_prefix(&self, sub: &str) -> Self {
        Self {
            backend: self.backend.clone(),
            prefix: Arc::from(format!("{}{sub}", self.prefix)),
            url: self.url.clone(),
        }
    }

    /// Which adapter this handle uses.
    pub fn kind(&self) -> CacheKind {
        match self.backend {
            Backend::Redis(_) => CacheKind::Redis,
            Backend::Memory(_) => CacheKind::Memory,
        }
    }

    /// The value of `key`, or `None` when absent or expired.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis does not answer.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(m) => Ok(m.get(&key).await.map(|e| e.value)),
            Backend::Redis(cm) => {
                let mut conn = cm.clone();
                let value: Option<Vec<u8>> =
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
                Ok(value.map(Bytes::from))
            }
        }
    }

    /// The values of `keys`, in the same order (`None` where absent or
    /// expired): one `MGET` round trip on Redis, lookups in memory.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis does not answer (callers usually treat
    /// that as all misses).
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match &self.backend {
            Backend::Memory(m) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    out.push(m.get(&self.key(k)).await.map(|e| e.value));
                }
                Ok(out)
            }
            Backend::Redis(cm) => {
                let mut conn = cm.clone();
                let mut cmd = redis::cmd("MGET");
                for k in keys {
                    cmd.arg(self.key(k));
                }
                let values: Vec<Option<Vec<u8>>> = cmd.query_async(&mut conn).await?;
                Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
            }
        }
    }

    /// Stores every `(key, value)` without TTL, replacing what was there:
    /// one pipelined round trip on Redis. Not atomic: on failure or
    /// cancellation any subset may have been stored.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis does not answer.
    pub async fn set_many(&self, entries: &[(&str, Bytes)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        match &self.backend {
            Backend::Memory(m) => {
                for (k, v) in entries {
                    let entry = Entry {
                        value: v.clone(),
                        ttl: None,
                    };
                    m.insert(self.key(k), entry).await;
                }
            }
            Backend::Redis(cm) => {
                let mut conn = cm.clone();
                let mut pipe = redis::pipe();
                for (k, v) in entries {
                    pipe.cmd("SET").arg(self.key(k)).arg(v.as_ref()).ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
            }
        }
        Ok(())
    }

    /// Stores `value` under `key`, replacing any value and its TTL. With
    /// `ttl` the entry disappears after that long (millisecond precision);
    /// a zero TTL removes the key. Without `ttl` it stays until evicted or
    /// deleted.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis does not answer.
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let value = value.into();
        if ttl.is_some_and(|t| t.as_millis() == 0) {
            self.delete(key).await?;
            return Ok(());
        }
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(m) => {
                m.insert(key, Entry { value, ttl }).await;
            }
            Backend::Redis(cm) => {
                let mut conn = cm.clone();
                let mut cmd = redis::cmd("SET");
                cmd.arg(&key).arg(value.as_ref());
                if let Some(ttl) = ttl {
                    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                    cmd.arg("PX").arg(ms);
                }
                cmd.query_async::<()>(&mut conn).await?;
            }
        }
        Ok(())
    }

    /// Removes `key`; true when it was there.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis does not answer.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(m) => Ok(m.remove(&key).await.is_some()),
            Backend::Redis(cm) => {
                let mut conn = cm.clone();
                let n: u64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
                Ok(n > 0)
            }
        }
    }

    /// Redis `PING`; always `Ok` in memory.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis does not answer.
    pub async fn ping(&self) -> Result<()> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(cm) => {
                let mut conn = cm.clone();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                Ok(())
            }
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait::async_trait]
impl tributary_platform::health::HealthCheck for Cache {
    fn name(&self) -> String {
        PORT.to_string()
    }

    /// `PING` on Redis; the in-memory cache is always ready.
    async fn check(&self) -> Result<(), String> {
        self.ping().await.map_err(|e| format!("{}: {e}", self.url))
    }
}
