//! The audit shipper: a `tracing_subscriber::Layer` that turns log records
//! at or above a level into [`AuditEvent`]s and ships them to
//! `audit-create-log` through the bus.
//!
//! Never blocks the application: the layer only `try_send`s into a bounded
//! queue; when the queue is full (bus slow or down, shipper not running)
//! the record is dropped and counted in `tributary_audit_dropped_total`.
//! The shipper task ignores records logged by itself and by the Kafka
//! client, so a failing bus cannot feed the queue with its own complaints.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;
use tributary_bus::{Bus, Record};

use crate::domain::events::{level_rank, AuditEvent, AUDIT_TOPIC};
use crate::settings::AuditSettings;

tokio::task_local! {
    static SHIPPING: ();
}

/// Metric of records dropped because the queue was full.
pub const DROPPED_METRIC: &str = "tributary_audit_dropped_total";

/// The layer; see the module docs.
#[derive(Debug, Clone)]
pub struct AuditLayer {
    tx: mpsc::Sender<AuditEvent>,
    min_rank: i32,
    dropped: Arc<AtomicU64>,
    namer: ServiceNamer,
}

/// A function from a tracing target to a service name.
type NameFn = dyn Fn(&str) -> String + Send + Sync;

/// Derives a record's `service` from its tracing target.
#[derive(Clone, Default)]
struct ServiceNamer(Option<Arc<NameFn>>);

impl std::fmt::Debug for ServiceNamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "custom" } else { "crate" })
    }
}

impl ServiceNamer {
    fn name(&self, target: &str) -> String {
        match &self.0 {
            Some(f) => f(target),
            None => target.split("::").next().unwrap_or(target).to_owned(),
        }
    }
}

/// The receiving end, handed to [`ship`].
#[derive(Debug)]
pub struct AuditQueue {
    rx: mpsc::Receiver<AuditEvent>,
}

/// Builds a layer and its queue from settings (an unknown level means `warn`).
pub fn audit_layer(settings: &AuditSettings) -> (AuditLayer, AuditQueue) {
    let (tx, rx) = mpsc::channel(settings.queue.max(1));
    let layer = AuditLayer {
        tx,
        min_rank: level_rank(&settings.level).unwrap_or(3),
        dropped: Arc::new(AtomicU64::new(0)),
        namer: ServiceNamer::default(),
    };
    (layer, AuditQueue { rx })
}

impl AuditLayer {
    /// Names the `service` of each record with `namer(target)` instead of
    /// the default, the target's first path segment (its crate).
    #[must_use]
    pub fn with_service_namer(
        mut self,
        namer: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Self {
        self.namer = ServiceNamer(Some(Arc::new(namer)));
        self
    }

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

impl<S: Subscriber> Layer<S> for AuditLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
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
            service: self.namer.name(target),
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
                        metrics::counter!("tributary_audit_send_failures_total").increment(1);
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
