//! Typed configuration loading.
//!
//! Precedence, lowest to highest:
//! 1. defaults in code (`Default` of the settings type),
//! 2. a TOML file (`--config FILE` or `TRIBUTARY_CONFIG`), when given,
//! 3. environment variables `TRIBUTARY__SECTION__KEY` (double underscores
//!    separate nesting levels; keys are case-insensitive).
//!
//! Settings types use `#[serde(deny_unknown_fields)]`, so a misspelt key in
//! the file or the environment is an error naming that key, not a silent no-op.
//! Secrets are never printed: settings types redact them in `Debug`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "TRIBUTARY__";

/// Error of [`load`]: which source and which key was wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// An error with this one-line message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Loads settings `T` from defaults, then `file` (if any), then the environment.
///
/// # Errors
/// When the file cannot be read or parsed, or a value (from any source) has
/// the wrong type or an unknown key; the message names the key and the source.
pub fn load<T>(file: Option<&Path>) -> Result<T, ConfigError>
where
    T: Default + Serialize + DeserializeOwned,
{
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        fig = fig.merge(Toml::file(path));
    }
    fig = fig.merge(Env::prefixed(ENV_PREFIX).split("__"));
    fig.extract().map_err(|e| {
        // figment's error names the key path and the provider (file/env).
        ConfigError(e.to_string())
    })
}

/// Settings of the admin HTTP server every process runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where `/livez`, `/readyz` and `/metrics` are served.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// Connection limits of every HTTP server (`[server]`; see
/// [`crate::serve`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// A client must send a request's whole header within this, ms, or its
    /// connection is closed.
    pub header_read_timeout_ms: u64,
    /// Connections served at once per listener; more wait in the backlog.
    pub max_connections: usize,
    /// PEM certificate chain: when set (with `tls_key_file`), every REST,
    /// gRPC and admin listener of the process speaks TLS only (HTTPS, gRPC
    /// over TLS). Empty = plaintext.
    pub tls_cert_file: String,
    /// PEM private key of `tls_cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            max_connections: 1024,
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// Always human-readable.
    Human,
    /// Always JSON lines.
    Json,
}

/// Logging and tracing settings (`Debug` masks secrets in the endpoint).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `tracing` filter directive, e.g. `info` or `info,tributary_bus=debug`.
    /// `RUST_LOG`, when set, wins over this.
    pub log_filter: String,
    /// Log output format.
    pub log_format: LogFormat,
    /// OTLP/gRPC collector endpoint (e.g. `http://127.0.0.1:4317`); traces are
    /// exported only when set.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource of exported traces.
    pub service_name: String,
}

impl std::fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("log_filter", &self.log_filter)
            .field("log_format", &self.log_format)
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(crate::url::redact),
            )
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: "info".into(),
            log_format: LogFormat::Auto,
            otlp_endpoint: None,
            service_name: "tributary".into(),
        }
    }
}

/// Where a process keeps its embedded data by default.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from(".tributary")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Settings {
        admin: AdminConfig,
        telemetry: TelemetryConfig,
    }

    // Proves the precedence: defaults < file < env, and unknown keys are rejected.
    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature
    fn precedence_and_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[admin]\nlisten = \"127.0.0.1:1000\"\n[telemetry]\nlog_filter = \"debug\"\n",
            )?;
            jail.set_env("TRIBUTARY__ADMIN__LISTEN", "127.0.0.1:2000");
            let s: Settings = load(Some(Path::new("t.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.admin.listen.port(), 2000);
            assert_eq!(s.telemetry.log_filter, "debug");
            assert_eq!(s.telemetry.service_name, "tributary");

            jail.set_env("TRIBUTARY__ADMIN__LISTN", "x");
            let err = load::<Settings>(None).expect_err("unknown key must fail");
            assert!(err.to_string().contains("listn"), "{err}");
            Ok(())
        });
    }

    // Proves a missing config file is an error naming the file.
    #[test]
    fn missing_file_is_named() {
        let err = load::<Settings>(Some(Path::new("/nonexistent/x.toml"))).expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/x.toml"));
    }
}
