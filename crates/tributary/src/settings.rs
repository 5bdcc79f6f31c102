//! The settings of a `tributary` process: one typed tree, loaded with the
//! platform's precedence (defaults < TOML file < `TRIBUTARY__SECTION__KEY`).
//!
//! Every backend URL left empty means the embedded default under
//! `data_dir`: `sqlite://DATA/tributary.db`, `sqlite://DATA/bus.db`,
//! `file://DATA/objects`, `memory://`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tributary_bus::BusConfig;
use tributary_platform::config::{AdminConfig, TelemetryConfig};
use tributary_platform::url::redact;

/// Everything a process can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where embedded backends keep their files.
    pub data_dir: PathBuf,
    /// Deployment environment shown on `/version` (e.g. `dev`, `prod`).
    pub environment: String,
    /// Admin server.
    pub admin: AdminConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// Event bus.
    pub bus: BusConfig,
    /// SQL database.
    pub sql: SqlSettings,
    /// Object store (`url` empty = `file://DATA/objects`).
    pub objects: tributary_storage::ObjectsConfig,
    /// Cache.
    pub cache: CacheSettings,
    /// Logistics system.
    pub logistics: tributary_logistics::LogisticsSettings,
    /// Chat archive system.
    pub chat: tributary_chat::ChatSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: tributary_platform::config::default_data_dir(),
            environment: "dev".into(),
            admin: AdminConfig::default(),
            telemetry: TelemetryConfig::default(),
            bus: BusConfig::default(),
            sql: SqlSettings::default(),
            objects: tributary_storage::ObjectsConfig::default(),
            cache: CacheSettings::default(),
            logistics: tributary_logistics::LogisticsSettings::default(),
            chat: tributary_chat::ChatSettings::default(),
        }
    }
}

/// SQL database settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SqlSettings {
    /// `postgres://...` or `sqlite://PATH`; empty = `sqlite://DATA/tributary.db`.
    pub url: String,
    /// Pool size of this process.
    pub max_connections: u32,
    /// How long to wait for a connection, in seconds.
    pub acquire_timeout_secs: u64,
}

impl std::fmt::Debug for SqlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSettings")
            .field("url", &redact(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_secs", &self.acquire_timeout_secs)
            .finish()
    }
}

impl Default for SqlSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 10,
            acquire_timeout_secs: 5,
        }
    }
}

/// Cache settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// `redis://...` or `memory://`.
    pub url: String,
    /// Prefix of every key this process writes.
    pub key_prefix: String,
    /// In-process cache size limit, MiB.
    pub memory_max_mb: u64,
}

impl std::fmt::Debug for CacheSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSettings")
            .field("url", &redact(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("memory_max_mb", &self.memory_max_mb)
            .finish()
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            url: "memory://".into(),
            key_prefix: "tributary:".into(),
            memory_max_mb: 64,
        }
    }
}

impl Settings {
    /// The SQL URL in effect.
    pub fn sql_url(&self) -> String {
        non_empty(&self.sql.url)
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("tributary.db").display()))
    }

    /// The bus URL in effect.
    pub fn bus_url(&self) -> String {
        non_empty(&self.bus.url)
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("bus.db").display()))
    }

    /// The object-store URL in effect.
    pub fn objects_url(&self) -> String {
        non_empty(&self.objects.url)
            .unwrap_or_else(|| format!("file://{}", self.data_dir.join("objects").display()))
    }

    /// Storage-crate config of the SQL port.
    pub fn sql_config(&self) -> tributary_storage::SqlConfig {
        tributary_storage::SqlConfig {
            max_connections: self.sql.max_connections,
            acquire_timeout: Duration::from_secs(self.sql.acquire_timeout_secs),
            ..tributary_storage::SqlConfig::default()
        }
    }

    /// Storage-crate config of the object-store port.
    pub fn objects_config(&self) -> tributary_storage::ObjectsConfig {
        tributary_storage::ObjectsConfig {
            url: self.objects_url(),
            ..self.objects.clone()
        }
    }

    /// Storage-crate config of the cache port.
    pub fn cache_config(&self) -> tributary_storage::CacheConfig {
        tributary_storage::CacheConfig {
            url: self.cache.url.clone(),
            key_prefix: self.cache.key_prefix.clone(),
            memory_max_bytes: self.cache.memory_max_mb * 1024 * 1024,
            ..tributary_storage::CacheConfig::default()
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves `tributary config` output (Debug) never shows passwords or secrets.
    #[test]
    fn debug_masks_secrets() {
        let mut s = Settings::default();
        s.sql.url = "postgres://app:hunter2@db/x".into();
        s.cache.url = "redis://:hunter2@cache:6379".into();
        s.bus.url = "kafka://u:hunter2@k:9092".into();
        s.objects.secret_access_key = Some("hunter2".into());
        let text = format!("{s:#?}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    // Proves empty URLs fall back to embedded backends under the data directory.
    #[test]
    fn embedded_defaults_follow_data_dir() {
        let s = Settings {
            data_dir: "/srv/t".into(),
            ..Settings::default()
        };
        assert_eq!(s.sql_url(), "sqlite:///srv/t/tributary.db");
        assert_eq!(s.bus_url(), "sqlite:///srv/t/bus.db");
        assert_eq!(s.objects_url(), "file:///srv/t/objects");
    }
}
