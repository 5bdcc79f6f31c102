//! Audit shipping for every server process: a `tracing_subscriber::Layer`
//! that turns log records at or above a level into [`AuditEvent`]s, and the
//! one shipper per process that sends them to [`AUDIT_TOPIC`] on the bus
//! (the chat system's audit consumer stores and serves them).
//!
//! The `service` of a record is the service that logged it: the supervisor
//! runs every service inside a span named [`SERVICE_SPAN`] with a field
//! `service`, and the layer takes the innermost such span around the event.
//! A record logged outside any service (start-up, the admin server) is
//! named after the process: `tributary` under `up`, the service under
//! `serve NAME`.
//!
//! Never blocks the application: the layer only `try_send`s into a bounded
//! queue; when the queue is full (bus slow or down, shipper not running)
//! the record is dropped and counted in `tributary_audit_dropped_total`.
//! The shipper ignores records logged by itself and by the Kafka client,
//! so a failing bus cannot feed the queue with its own complaints. The
//! shipper connects to the bus in the background (retrying with backoff)
//! and does not add the bus to `/readyz`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use tributary_bus::{Bus, Record};

/// Topic of audit records (key: the service).
pub const AUDIT_TOPIC: &str = "audit-create-log";

/// Name of the span the supervisor runs each service in.
pub const SERVICE_SPAN: &str = "service";

/// Field of [`SERVICE_SPAN`] holding the service name.
pub const SERVICE_FIELD: &str = "service";

/// One log record. Key on the bus: `service`. `id` makes storing idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique id (UUID v4).
    pub id: String,
    /// The service that logged it (see the module docs).
    pub service: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: String,
    /// The log message.
    pub message: String,
    /// When it was logged.
    pub created: DateTime<Utc>,
    /// Full tracing target (module path).
    #[serde(default)]
    pub target: String,
    /// The event's other fields, as JSON object text.
    #[serde(default)]
    pub fields: String,
}

/// Severity rank of a level name (case-insensitive): error 4 .. trace 0.
pub fn level_rank(level: &str) -> Option<i32> {
    match level.to_ascii_lowercase().as_str() {
        "error" => Some(4),
        "warn" | "warning" => Some(3),
        "info" => Some(2),
        "debug" => Some(1),
        "trace" => Some(0),
        _ => None,
    }
}

/// The `[audit]` settings section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Ship log records at all.
    pub enabled: bool,
    /// Least severe level shipped: `error`, `warn`, `info`, `debug`, `trace`.
    pub level: String,
    /// Records buffered between the application and the shipper; when full,
    /// new records are dropped (and counted), never waited for.
    pub queue: usize,
    /// Partitions of the audit topic when the shipper creates it.
    pub partitions: i32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            level: "warn".into(),
            queue: 10_000,
            partitions: 3,
        }
    }
}

tokio::task_local! {
    static SHIPPING: ();
}

/// Metric of records dropped because the queue was full.
pub const DROPPED_METRIC: &str = "tributary_audit_dropped_total";
/// Metric of records the bus refused (dropped, see [`ship`]).
pub const SEND_FAILURES_METRIC: &str = "tributary_audit_send_failures_total";

/// The series of the audit layer and shipper, to register at start when
/// auditing is enabled.
pub fn series() -> Vec<tributary_platform::telemetry::Series> {
    use tributary_platform::telemetry::Series;
    vec![
        Series::counter(DROPPED_METRIC),
        Series::counter(SEND_FAILURES_METRIC),
    ]
}

/// The layer; see the module docs.
#[derive(Debug, Clone)]
pub struct AuditLayer {
    tx: mpsc::Sender<AuditEvent>,
    min_rank: i32,
    dropped: Arc<AtomicU64>,
    process: Arc<str>,
}

/// The receiving end, handed to [`ship`].
#[derive(Debug)]
pub struct AuditQueue {
    rx: mpsc::Receiver<AuditEvent>,
}

/// Builds a layer and its queue from settings (an unknown level means `warn`).
/// `process` names records logged outside of any service's span.
pub fn audit_layer(settings: &AuditSettings, process: &str) -> (AuditLayer, AuditQueue) {
    let (tx, rx) = mpsc::channel(settings.queue.max(1));
    let layer = AuditLayer {
        tx,
        min_rank: level_rank(&settings.level).unwrap_or(3),
        dropped: Arc::new(AtomicU64::new(0)),
        process: Arc::from(process),
    };
    (layer, AuditQueue { rx })
}

impl AuditLayer {
    /// Records dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.rest.insert(field.name().to_owned(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        if field.name() == "message" {
            self.message.push_str(&s);
        } else {
            self.rest.insert(field.name().to_owned(), s.into());
        }
    }
}

/// The name recorded on a `service` span, kept in the span's extensions.
struct ServiceName(String);

/// Reads the `service` field of a span.
struct ServiceField(Option<String>);

impl Visit for ServiceField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == SERVICE_FIELD {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == SERVICE_FIELD {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

impl<S> Layer<S> for AuditLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SERVICE_SPAN {
            return;
        }
        let mut field = ServiceField(None);
        attrs.record(&mut field);
        if let (Some(name), Some(span)) = (field.0, ctx.span(id)) {
            span.extensions_mut().insert(ServiceName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let rank = level_rank(meta.level().as_str()).unwrap_or(2);
        if rank < self.min_rank || SHIPPING.try_with(|()| ()).is_ok() {
            return;
        }
        let target = meta.target();
        if target.starts_with("rdkafka") || target.starts_with("librdkafka") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let ev = AuditEvent {
            id: uuid::Uuid::new_v4().to_string(),
            service: service_of(event, &ctx).unwrap_or_else(|| self.process.to_string()),
            level: meta.level().as_str().to_owned(),
            message: fields.message,
            created: chrono::Utc::now(),
            target: target.to_owned(),
            fields: serde_json::Value::Object(fields.rest).to_string(),
        };
        if self.tx.try_send(ev).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(DROPPED_METRIC).increment(1);
        }
    }
}

/// The name on the innermost `service` span around `event`, if any.
fn service_of<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let scope = ctx.event_scope(event)?;
    for span in scope {
        if let Some(name) = span.extensions().get::<ServiceName>() {
            return Some(name.0.clone());
        }
    }
    None
}

/// Ships queued records to the bus until `shutdown`, then drains what is
/// queued for up to 5 s. A record the bus refuses is dropped and counted
/// (`tributary_audit_send_failures_total`): the audit log is best-effort
/// by design, the application never waits for it.
pub async fn ship(mut queue: AuditQueue, bus: Bus, shutdown: CancellationToken) {
    SHIPPING
        .scope((), async move {
            let send = |ev: AuditEvent| {
                let bus = bus.clone();
                async move {
                    let Ok(payload) = serde_json::to_vec(&ev) else {
                        return;
                    };
                    let record = Record::new(AUDIT_TOPIC, ev.service.into_bytes(), payload);
                    if let Err(e) = bus.send(record).await {
                        metrics::counter!(SEND_FAILURES_METRIC).increment(1);
                        tracing::debug!(error = %e, "audit record not shipped");
                    }
                }
            };
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    ev = queue.rx.recv() => match ev {
                        Some(ev) => send(ev).await,
                        None => return,
                    },
                }
            }
            let drain = async {
                while let Ok(ev) = queue.rx.try_recv() {
                    send(ev).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
        })
        .await;
}

/// Connects to the process's bus (retrying with backoff, without making it
/// a readiness dependency), creates the audit topic, then ships `queue`
/// until `stop` and drains it (bounded, see [`ship`]).
pub async fn run_shipper(ctx: Arc<crate::Context>, queue: AuditQueue, stop: CancellationToken) {
    let mut failures: u32 = 0;
    let partitions = ctx.settings.audit.partitions.max(1);
    let bus = loop {
        let attempt = async {
            let bus = ctx.bus_unchecked().await?;
            bus.create_topic(AUDIT_TOPIC, partitions)
                .await
                .map_err(|e| anyhow::anyhow!("create topic {AUDIT_TOPIC}: {e}"))?;
            anyhow::Ok(bus)
        };
        match attempt.await {
            Ok(bus) => break bus,
            Err(e) if failures == 0 => {
                tracing::warn!(error = %format!("{e:#}"), "audit shipper cannot reach the bus yet; records wait in its queue");
            }
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "audit shipper still cannot reach the bus")
            }
        }
        let delay = Duration::from_millis(500)
            .saturating_mul(2u32.saturating_pow(failures.min(6)))
            .min(Duration::from_secs(30));
        failures = failures.saturating_add(1);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    };
    ship(queue, bus, stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    // Proves: a record is named after the innermost service span around it, and after the process outside any.
    #[test]
    fn records_are_named_after_the_service_span() {
        let (layer, mut queue) = audit_layer(&AuditSettings::default(), "tributary");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("outside");
            let span = tracing::info_span!(SERVICE_SPAN, service = "chat-api");
            span.in_scope(|| {
                tracing::warn!("inside");
                tracing::info_span!("request").in_scope(|| tracing::error!("nested"));
            });
            tracing::info!("below the level");
        });
        let got: Vec<(String, String)> = std::iter::from_fn(|| queue.rx.try_recv().ok())
            .map(|e| (e.service, e.message))
            .collect();
        assert_eq!(
            got,
            vec![
                ("tributary".to_owned(), "outside".to_owned()),
                ("chat-api".to_owned(), "inside".to_owned()),
                ("chat-api".to_owned(), "nested".to_owned()),
            ]
        );
    }

    // Proves: the audit layer never blocks: with a full queue and no shipper, records are dropped and counted.
    #[test]
    fn audit_layer_drops_instead_of_blocking() {
        let settings = AuditSettings {
            queue: 1,
            ..Default::default()
        };
        let (layer, _queue) = audit_layer(&settings, "p");
        let probe = layer.clone();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                tracing::warn!(i, "overflow");
            }
        });
        assert_eq!(probe.dropped(), 4);
    }
}
