//! Telemetry: `tracing` logs (human on a terminal, JSON otherwise), optional
//! OTLP trace export, and the process-wide Prometheus recorder.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, TelemetryConfig};

/// A boxed extra layer (e.g. an audit shipper) added to the subscriber.
pub type BoxLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Keeps trace export alive; flushes pending spans when dropped.
#[derive(Default)]
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("otlp", &self.provider.is_some())
            .finish()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("trace exporter shutdown: {e}");
            }
        }
    }
}

/// Error of [`init`].
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter does not parse.
    #[error("invalid log filter {filter:?}: {reason}")]
    Filter {
        /// The directive given.
        filter: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The OTLP exporter could not be built.
    #[error("cannot set up OTLP export to {endpoint}: {reason}")]
    Otlp {
        /// Configured endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A global subscriber is installed already.
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the global `tracing` subscriber. Call once, inside a Tokio
/// runtime when OTLP export is configured.
///
/// # Errors
/// On an invalid filter, an OTLP endpoint that cannot be set up, or a second call.
pub fn init(cfg: &TelemetryConfig, extra: Vec<BoxLayer>) -> Result<TelemetryGuard, TelemetryError> {
    let directive = std::env::var("RUST_LOG").unwrap_or_else(|_| cfg.log_filter.clone());
    let filter = EnvFilter::try_new(&directive).map_err(|e| TelemetryError::Filter {
        filter: directive.clone(),
        reason: e.to_string(),
    })?;
    let json = match cfg.log_format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let mut layers: Vec<BoxLayer> = extra;
    layers.push(if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(true)
            .boxed()
    });
    let mut guard = TelemetryGuard::default();
    if let Some(endpoint) = &cfg.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| TelemetryError::Otlp {
                endpoint: crate::url::redact(endpoint),
                reason: e.to_string(),
            })?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(cfg.service_name.clone())
            .build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("tributary");
        layers.push(tracing_opentelemetry::layer().with_tracer(tracer).boxed());
        opentelemetry::global::set_tracer_provider(provider.clone());
        guard.provider = Some(provider);
    }
    tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(guard)
}

/// The process-wide Prometheus recorder, installed on first use.
///
/// Tests that start several servers in one process share it.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist (a library test installed one); then
            // our handle still renders what is recorded through it.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves telemetry installs with OTLP export configured (no collector needed to start),
    // rejects a bad filter by name, and refuses a second installation.
    #[tokio::test]
    async fn installs_once_with_otlp() {
        let bad = TelemetryConfig {
            log_filter: "info,[[[".into(),
            ..TelemetryConfig::default()
        };
        if std::env::var("RUST_LOG").is_err() {
            let err = init(&bad, Vec::new()).expect_err("bad filter");
            assert!(err.to_string().contains("[[["), "{err}");
        }
        let cfg = TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:4317".into()),
            log_format: LogFormat::Json,
            ..TelemetryConfig::default()
        };
        let guard = init(&cfg, Vec::new()).expect("first init");
        tracing::info!("hello from the telemetry test");
        assert!(matches!(
            init(&cfg, Vec::new()),
            Err(TelemetryError::AlreadyInstalled)
        ));
        drop(guard);
    }
}
