//! The consumers and producers of the shop system, each run on the shared
//! at-least-once runner (`tributary_bus::runner`: offsets stored only after
//! the handler's side effect is durable, a record that is not the wire
//! shape to `<topic>.dlq` with the error in `dlq.*` headers, a failed side
//! effect retried with backoff while the partition waits):
//!
//! | module | service | what |
//! |---|---|---|
//! | [`control`] | `shop-filter`, `shop-api` | follows the filter's control topic from the start |
//! | [`filter`] | `shop-filter` | `shop_products` -> filter -> `analytic_products_filtered` |
//! | [`repartition`] | `shop-recommendations` | prompts, filtered products -> repartition topics keyed by the join key |
//! | [`join`] | `shop-recommendations` | prompts x filtered products -> `personal_recom`, state in SQL by partition |
//! | [`sink`] | `shop-sink` | products, filtered products, recommendations -> tables |
//! | [`emulator`] | `shop-emulator` | generated products -> `shop_products` |

pub mod control;
pub mod emulator;
pub mod filter;
pub mod join;
pub mod repartition;
pub mod sink;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tributary_bus::runner::HandlerError;
use tributary_bus::Message;

/// Header carrying a record's event time (ms since the epoch) when it is
/// copied to another topic, so the copy keeps the original's event time.
pub const EVENT_TIME_HEADER: &str = "shop.event_time_ms";
/// Header of `personal_recom` records: the idempotent key
/// `{prompt_id}:{product_id}`.
pub const RECOMMENDATION_KEY_HEADER: &str = "shop.key";

/// Wall clock, ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A record's event time: the [`EVENT_TIME_HEADER`] of a copy, else the
/// record's timestamp (set by its producer), else now.
pub fn event_time(m: &Message) -> i64 {
    m.header(EVENT_TIME_HEADER)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .or(m.timestamp_ms)
        .unwrap_or_else(now_ms)
}

/// Readiness of one consumer service: red while records fail on a backend
/// and are retried (nothing is committed meanwhile).
#[derive(Clone, Debug)]
pub struct ConsumerHealth {
    name: &'static str,
    failing: Arc<AtomicBool>,
    reason: Arc<Mutex<String>>,
}

impl ConsumerHealth {
    /// A green check named `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            failing: Arc::new(AtomicBool::new(false)),
            reason: Arc::new(Mutex::new(String::new())),
        }
    }

    /// Records the outcome of one side effect and passes it on.
    pub fn track<T>(&self, r: Result<T, HandlerError>) -> Result<T, HandlerError> {
        match &r {
            Err(HandlerError::Retryable(reason)) => {
                if let Ok(mut g) = self.reason.lock() {
                    g.clone_from(reason);
                }
                self.failing.store(true, Ordering::Relaxed);
            }
            _ => self.failing.store(false, Ordering::Relaxed),
        }
        r
    }
}

#[async_trait::async_trait]
impl tributary_platform::HealthCheck for ConsumerHealth {
    fn name(&self) -> String {
        self.name.to_owned()
    }
    async fn check(&self) -> Result<(), String> {
        if self.failing.load(Ordering::Relaxed) {
            let reason = self.reason.lock().map(|r| r.clone()).unwrap_or_default();
            Err(format!(
                "records fail and are retried (nothing is committed meanwhile): {reason}"
            ))
        } else {
            Ok(())
        }
    }
}

/// Counts a record in for `service`.
pub(crate) fn count_in(service: &'static str) {
    metrics::counter!(crate::metrics::RECORDS_IN, "service" => service).increment(1);
}

/// Counts `n` records out for `service`.
pub(crate) fn count_out(service: &'static str, n: u64) {
    metrics::counter!(crate::metrics::RECORDS_OUT, "service" => service).increment(n);
}

/// A record that is not the wire shape: counted and dead-lettered.
pub(crate) fn reject(service: &'static str, what: &str, e: impl std::fmt::Display) -> HandlerError {
    metrics::counter!(crate::metrics::RECORDS_REJECTED, "service" => service).increment(1);
    HandlerError::Permanent(format!("invalid {what}: {e}"))
}

/// A backend failed: retry the record.
pub(crate) fn retry(what: &str, e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retryable(format!("{what}: {e}"))
}

/// Creates `topics` (with `partitions`) and their dead-letter topics,
/// retrying until it works or `shutdown`. Returns false on shutdown.
pub(crate) async fn ensure_topics(
    bus: &tributary_bus::Bus,
    topics: &[(&str, i32)],
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    for (topic, partitions) in topics {
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match bus.create_topic(topic, *partitions).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(%topic, error = %e, "cannot create a shop topic; retrying")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(std::time::Duration::from_secs(10));
        }
    }
    true
}
