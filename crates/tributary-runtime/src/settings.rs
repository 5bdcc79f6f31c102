//! The settings of a `tributary` process: the platform part (backends,
//! admin server, telemetry, audit) and one typed section per system, loaded
//! together with the platform's precedence, lowest to highest:
//!
//! 1. defaults in code (each section's `Default`),
//! 2. a TOML file (`--config FILE` or `TRIBUTARY_CONFIG`),
//! 3. environment variables `TRIBUTARY__SECTION__KEY`.
//!
//! Every section is `deny_unknown_fields`; an unknown top-level section is
//! rejected too, naming the known ones. Every backend URL left empty means
//! the embedded default under `data_dir`: `sqlite://DATA/tributary.db`,
//! `sqlite://DATA/bus.db`, `file://DATA/objects`, `memory://`.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Value;
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tributary_bus::BusConfig;
use tributary_platform::config::{AdminConfig, ConfigError, TelemetryConfig, ENV_PREFIX};
use tributary_platform::url::redact;

use crate::system::System;

/// The platform part of the settings, shared by every system.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PlatformSettings {
    /// Where embedded backends keep their files.
    pub data_dir: PathBuf,
    /// Deployment environment shown on `/version` (e.g. `dev`, `prod`).
    pub environment: String,
    /// Admin server.
    pub admin: AdminConfig,
    /// Who may call the APIs: bearer tokens with roles, accepted hosts.
    pub auth: tributary_platform::auth::AuthSettings,
    /// Connection limits of every HTTP server (header read timeout, cap).
    pub server: tributary_platform::config::ServerConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// Shipping of the process's log records to the audit topic.
    pub audit: crate::audit::AuditSettings,
    /// Event bus.
    pub bus: BusConfig,
    /// SQL database.
    pub sql: SqlSettings,
    /// Object store (`url` empty = `file://DATA/objects`).
    pub objects: tributary_storage::ObjectsConfig,
    /// Cache.
    pub cache: CacheSettings,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        Self {
            data_dir: tributary_platform::config::default_data_dir(),
            environment: "dev".into(),
            admin: AdminConfig::default(),
            auth: tributary_platform::auth::AuthSettings::default(),
            server: tributary_platform::config::ServerConfig::default(),
            telemetry: TelemetryConfig::default(),
            audit: crate::audit::AuditSettings::default(),
            bus: BusConfig::default(),
            sql: SqlSettings::default(),
            objects: tributary_storage::ObjectsConfig::default(),
            cache: CacheSettings::default(),
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
    /// `redis://...`, `rediss://...` (TLS) or `memory://`.
    pub url: String,
    /// Prefix of every key this process writes.
    pub key_prefix: String,
    /// In-process cache size limit, MiB.
    pub memory_max_mb: u64,
    /// `rediss://` only: PEM file of the CA certificates to trust instead
    /// of the system's store (empty = the system's store).
    pub tls_ca_file: String,
}

impl std::fmt::Debug for CacheSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSettings")
            .field("url", &redact(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("memory_max_mb", &self.memory_max_mb)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            url: "memory://".into(),
            key_prefix: "tributary:".into(),
            memory_max_mb: 64,
            tls_ca_file: String::new(),
        }
    }
}

impl PlatformSettings {
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
            tls_ca_file: non_empty(&self.cache.tls_ca_file).map(PathBuf::from),
            ..tributary_storage::CacheConfig::default()
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The type-erased settings section of one system: how to make its
/// defaults, load it from the merged sources and print it with secrets
/// masked. Made with [`SettingsSection::of`].
pub struct SettingsSection {
    type_id: TypeId,
    defaults: fn() -> Result<Value, String>,
    load: fn(&Figment, &str) -> Result<AnySection, String>,
    debug: DebugFn,
}

/// A loaded section, type-erased.
type AnySection = Arc<dyn Any + Send + Sync>;

/// Prints a type-erased section with secrets masked.
type DebugFn = fn(&(dyn Any + Send + Sync)) -> String;

impl std::fmt::Debug for SettingsSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsSection").finish_non_exhaustive()
    }
}

impl SettingsSection {
    /// The section of settings type `T` (typed, `deny_unknown_fields`,
    /// `Default`; its `Debug` must mask secrets).
    pub fn of<T>() -> Self
    where
        T: Default + Serialize + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    {
        Self {
            type_id: TypeId::of::<T>(),
            defaults: || Value::serialize(T::default()).map_err(|e| e.to_string()),
            load: |fig, key| match fig.extract_inner::<T>(key) {
                Ok(t) => Ok(Arc::new(t)),
                Err(e) => Err(e.to_string()),
            },
            debug: |v| match v.downcast_ref::<T>() {
                Some(t) => format!("{t:#?}"),
                None => String::from("?"),
            },
        }
    }
}

/// The loaded settings: the platform part and every system's section.
#[derive(Clone)]
pub struct Settings {
    /// Backends, admin server, telemetry, audit.
    pub platform: PlatformSettings,
    sections: BTreeMap<&'static str, (TypeId, AnySection, DebugFn)>,
}

impl std::fmt::Debug for Settings {
    /// Every section, secrets masked (what `tributary config` prints).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:#?}", self.platform)?;
        for (name, (_, value, debug)) in &self.sections {
            writeln!(f, "[{name}] {}", debug(value.as_ref()))?;
        }
        Ok(())
    }
}

impl std::ops::Deref for Settings {
    type Target = PlatformSettings;
    fn deref(&self) -> &PlatformSettings {
        &self.platform
    }
}

impl std::ops::DerefMut for Settings {
    fn deref_mut(&mut self) -> &mut PlatformSettings {
        &mut self.platform
    }
}

impl Settings {
    /// The section of type `T`, or its defaults when no system of this
    /// build registered it (never the case for a system's own section).
    pub fn section<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let id = TypeId::of::<T>();
        self.sections
            .values()
            .find(|(t, _, _)| *t == id)
            .and_then(|(_, v, _)| v.clone().downcast::<T>().ok())
            .unwrap_or_else(|| Arc::new(T::default()))
    }

    /// Platform defaults plus each system's default section.
    ///
    /// # Errors
    /// When a section's defaults cannot be serialised (a bug).
    pub fn defaults(systems: &[System]) -> Result<Self, ConfigError> {
        Self::from_figment(&defaults_figment(systems)?, systems)
    }

    /// Loads every section from defaults, then `file`, then the environment.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, a value has the wrong type, a
    /// key or top-level section is unknown; the message names it and its source.
    pub fn load(file: Option<&Path>, systems: &[System]) -> Result<Self, ConfigError> {
        let mut fig = defaults_figment(systems)?;
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::new(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(Env::prefixed(ENV_PREFIX).split("__"));
        Self::from_figment(&fig, systems)
    }

    fn from_figment(fig: &Figment, systems: &[System]) -> Result<Self, ConfigError> {
        let err = |e: figment::Error| ConfigError::new(e.to_string());
        let known = known_sections(systems)?;
        let all: BTreeMap<String, Value> = fig.extract().map_err(err)?;
        for key in all.keys() {
            if !known.iter().any(|k| k == key) {
                return Err(ConfigError::new(format!(
                    "unknown configuration section `{key}`; known sections: {}",
                    known.join(", ")
                )));
            }
        }
        let platform: PlatformSettings = fig.extract().map_err(err)?;
        let mut sections = BTreeMap::new();
        for sys in systems {
            let s = &sys.settings;
            let value = (s.load)(fig, sys.name).map_err(ConfigError::new)?;
            sections.insert(sys.name, (s.type_id, value, s.debug));
        }
        Ok(Self { platform, sections })
    }

    /// Every settings key as `section.key` (nested keys joined by `.`) with
    /// its default value as TOML-ish text, for the README's configuration
    /// table and its check.
    ///
    /// # Errors
    /// When a section's defaults cannot be serialised (a bug).
    pub fn keys(systems: &[System]) -> Result<Vec<(String, String)>, ConfigError> {
        let fig = defaults_figment(systems)?;
        let all: BTreeMap<String, Value> =
            fig.extract().map_err(|e| ConfigError::new(e.to_string()))?;
        let mut out = Vec::new();
        for (k, v) in all {
            flatten(&k, &v, &mut out);
        }
        Ok(out)
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Dict(_, d) if !d.is_empty() => {
            for (k, v) in d {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => {
            let text = serde_json::to_string(other).unwrap_or_default();
            out.push((prefix.to_owned(), text));
        }
    }
}

fn known_sections(systems: &[System]) -> Result<Vec<String>, ConfigError> {
    let platform = Value::serialize(PlatformSettings::default())
        .map_err(|e| ConfigError::new(e.to_string()))?;
    let mut known: Vec<String> = match platform {
        Value::Dict(_, d) => d.keys().cloned().collect(),
        _ => Vec::new(),
    };
    known.extend(systems.iter().map(|s| s.name.to_owned()));
    Ok(known)
}

fn defaults_figment(systems: &[System]) -> Result<Figment, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(PlatformSettings::default()));
    for sys in systems {
        let value = (sys.settings.defaults)().map_err(ConfigError::new)?;
        fig = fig.merge(Serialized::default(sys.name, value));
    }
    Ok(fig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct ToySettings {
        greeting: String,
        nested: ToyNested,
    }

    #[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct ToyNested {
        count: u32,
    }

    fn toy() -> System {
        System {
            name: "toy",
            about: "a toy",
            settings: SettingsSection::of::<ToySettings>(),
            services: Vec::new(),
            cli: None,
            topics: &[],
            migrations: None,
        }
    }

    // Proves `tributary config` output (Debug) never shows passwords or secrets.
    #[test]
    fn debug_masks_secrets() {
        let mut s = Settings::defaults(&[toy()]).expect("defaults");
        s.sql.url = "postgres://app:hunter2@db/x".into();
        s.cache.url = "redis://:hunter2@cache:6379".into();
        s.bus.url = "kafka://u:hunter2@k:9092".into();
        s.objects.secret_access_key = Some("hunter2".into());
        let text = format!("{s:#?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[toy]"), "{text}");
    }

    // Proves empty URLs fall back to embedded backends under the data directory.
    #[test]
    fn embedded_defaults_follow_data_dir() {
        let s = PlatformSettings {
            data_dir: "/srv/t".into(),
            ..PlatformSettings::default()
        };
        assert_eq!(s.sql_url(), "sqlite:///srv/t/tributary.db");
        assert_eq!(s.bus_url(), "sqlite:///srv/t/bus.db");
        assert_eq!(s.objects_url(), "file:///srv/t/objects");
    }

    // Proves a system's section loads from file and env with the precedence, and unknown keys and sections are named.
    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn system_sections_load_with_precedence() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[toy]\ngreeting = \"file\"\n[toy.nested]\ncount = 1\n[admin]\nlisten = \"127.0.0.1:1000\"\n",
            )?;
            jail.set_env("TRIBUTARY__TOY__NESTED__COUNT", "7");
            let s =
                Settings::load(Some(Path::new("t.toml")), &[toy()]).map_err(|e| e.to_string())?;
            let t = s.section::<ToySettings>();
            assert_eq!(t.greeting, "file");
            assert_eq!(t.nested.count, 7);
            assert_eq!(s.admin.listen.port(), 1000);

            jail.set_env("TRIBUTARY__TOY__GREETNG", "x");
            let err = Settings::load(None, &[toy()]).expect_err("unknown key");
            assert!(err.to_string().contains("greetng"), "{err}");
            jail.clear_env();

            jail.set_env("TRIBUTARY__NOPE__X", "1");
            let err = Settings::load(None, &[toy()]).expect_err("unknown section");
            let msg = err.to_string();
            assert!(
                msg.contains("`nope`") && msg.contains("toy") && msg.contains("sql"),
                "{msg}"
            );
            Ok(())
        });
    }

    // Proves the flattened key list covers platform and system keys (the README table is checked against it).
    #[test]
    fn keys_cover_every_section() {
        let keys = Settings::keys(&[toy()]).expect("keys");
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        for want in [
            "toy.greeting",
            "toy.nested.count",
            "sql.url",
            "admin.listen",
            "audit.enabled",
        ] {
            assert!(names.contains(&want), "{want} missing: {names:?}");
        }
    }
}
