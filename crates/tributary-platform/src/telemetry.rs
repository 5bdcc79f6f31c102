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

/// The instrument of a declared [`Series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// `counter!`: only goes up.
    Counter,
    /// `gauge!`: set, increased or decreased.
    Gauge,
    /// `histogram!`: rendered as a summary (quantiles, `_sum`, `_count`).
    Histogram,
}

/// One series a service emits (its kind, name and label values), declared
/// so that [`register`] can make it exist in `/metrics` before the first
/// event: a dashboard or alert then sees 0 instead of no data, and a
/// `label_values(...)` variable lists every value from the first scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its instrument.
    pub kind: MetricKind,
    /// The Prometheus name, as the code emitting it spells it.
    pub name: &'static str,
    /// Label names and values, as the code emitting it sets them.
    pub labels: Vec<(&'static str, String)>,
    /// The gauge's value until the code first sets it: `None` leaves the
    /// exporter's 0; `Some(f64::NAN)` for a value that is undefined until
    /// then (a ratio of nothing).
    pub initial: Option<f64>,
}

impl Series {
    fn new(kind: MetricKind, name: &'static str) -> Self {
        Self {
            kind,
            name,
            labels: Vec::new(),
            initial: None,
        }
    }

    /// A counter without labels (add them with [`Series::label`]).
    pub fn counter(name: &'static str) -> Self {
        Self::new(MetricKind::Counter, name)
    }

    /// A gauge without labels.
    pub fn gauge(name: &'static str) -> Self {
        Self::new(MetricKind::Gauge, name)
    }

    /// A gauge that means nothing until first set (e.g. a pass ratio before
    /// any record): registered as NaN, which Prometheus stores and Grafana
    /// shows as no value, rather than a 0 that reads as a real ratio.
    pub fn gauge_undefined(name: &'static str) -> Self {
        Self {
            initial: Some(f64::NAN),
            ..Self::new(MetricKind::Gauge, name)
        }
    }

    /// A histogram without labels.
    pub fn histogram(name: &'static str) -> Self {
        Self::new(MetricKind::Histogram, name)
    }

    /// This series with one more label.
    #[must_use]
    pub fn label(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((name, value.into()));
        self
    }
}

/// Registers every series with the process-wide recorder ([`prometheus`])
/// without recording anything: a counter renders 0, a gauge 0 (or its
/// [`Series::initial`]), a histogram its summary with `_count 0` and
/// `_sum 0` (metrics-exporter-prometheus 0.17 renders each quantile of an
/// empty summary as 0). Call it at start, before the services run: a
/// counter, histogram or plain gauge that exists already keeps its value,
/// but a gauge with an [`Series::initial`] value is set to it.
pub fn register(series: &[Series]) {
    static METADATA: metrics::Metadata<'static> =
        metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
    let _ = prometheus();
    metrics::with_recorder(|recorder| {
        for s in series {
            let labels: Vec<metrics::Label> = s
                .labels
                .iter()
                .map(|(k, v)| metrics::Label::new(*k, v.clone()))
                .collect();
            let key = metrics::Key::from_parts(s.name, labels);
            match s.kind {
                MetricKind::Counter => drop(recorder.register_counter(&key, &METADATA)),
                MetricKind::Gauge => {
                    let gauge = recorder.register_gauge(&key, &METADATA);
                    if let Some(v) = s.initial {
                        gauge.set(v);
                    }
                }
                MetricKind::Histogram => drop(recorder.register_histogram(&key, &METADATA)),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves a registered series is in /metrics before anything is recorded: a counter and
    // a gauge at 0, an undefined gauge as NaN, a histogram as an empty summary (`_count 0`,
    // `_sum 0`, its quantiles); and that registering again keeps a recorded value.
    #[test]
    fn registered_series_render_before_first_use() {
        let handle = prometheus();
        register(&[
            Series::counter("tributary_telemetry_test_total").label("kind", "a"),
            Series::gauge("tributary_telemetry_test_gauge"),
            Series::gauge_undefined("tributary_telemetry_test_ratio"),
            Series::histogram("tributary_telemetry_test_seconds").label("kind", "a"),
        ]);
        let text = handle.render();
        for line in [
            "tributary_telemetry_test_total{kind=\"a\"} 0",
            "tributary_telemetry_test_gauge 0",
            "tributary_telemetry_test_ratio NaN",
            "tributary_telemetry_test_seconds{kind=\"a\",quantile=\"0.99\"} 0",
            "tributary_telemetry_test_seconds_sum{kind=\"a\"} 0",
            "tributary_telemetry_test_seconds_count{kind=\"a\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
        }
        metrics::counter!("tributary_telemetry_test_total", "kind" => "a").increment(2);
        register(&[Series::counter("tributary_telemetry_test_total").label("kind", "a")]);
        let text = handle.render();
        assert!(
            text.lines()
                .any(|l| l == "tributary_telemetry_test_total{kind=\"a\"} 2"),
            "{text}"
        );
    }

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
