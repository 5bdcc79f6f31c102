//! Every series a process emits exists in `/metrics` from the start: the
//! binary calls [`register_at_start`] before the admin server answers, with
//! the services it runs. Each service declares its own series
//! ([`Service::metrics`]: its system's metrics with the label values it
//! will use); this module adds the process's (restarts per service under
//! `up`, the audit layer's, the admin server's) and supplies the series of
//! the shared building blocks a service declares: the bus runner
//! ([`consumer`]) and the outbox relay ([`outbox`]).
//!
//! Nothing is recorded: a counter shows 0, a gauge 0 (a ratio NaN), a
//! histogram an empty summary (see [`tributary_platform::telemetry::register`]).

use std::sync::Arc;

use tributary_platform::telemetry::{self, Series};

use crate::context::Context;
use crate::supervise::{Mode, RESTARTS};
use crate::system::Service;

/// Counter names and labels of `tributary_bus::runner` (which keeps them as
/// literals): messages by `topic` and `outcome`, retries and handling time
/// by `topic`.
const CONSUMER_MESSAGES: &str = "tributary_consumer_messages_total";
const CONSUMER_RETRIES: &str = "tributary_consumer_retries_total";
const CONSUMER_SECONDS: &str = "tributary_consumer_handle_seconds";
/// The `outcome` values of [`CONSUMER_MESSAGES`].
const CONSUMER_OUTCOMES: [&str; 2] = ["ok", "dead_letter"];

/// The outbox relay's metrics (`crate::outbox::relay`), by `namespace`.
const OUTBOX_COUNTERS: [&str; 2] = [
    "tributary_outbox_sent_total",
    "tributary_outbox_failed_total",
];
const OUTBOX_GAUGES: [&str; 2] = ["tributary_outbox_lag_seconds", "tributary_outbox_in_flight"];
const OUTBOX_LATENCY: &str = "tributary_outbox_commit_to_ack_seconds";

/// The series `tributary_bus::runner::run` emits when it consumes `topics`.
pub fn consumer(topics: &[&str]) -> Vec<Series> {
    let mut out = Vec::new();
    for topic in topics {
        for outcome in CONSUMER_OUTCOMES {
            out.push(
                Series::counter(CONSUMER_MESSAGES)
                    .label("topic", *topic)
                    .label("outcome", outcome),
            );
        }
        out.push(Series::counter(CONSUMER_RETRIES).label("topic", *topic));
        out.push(Series::histogram(CONSUMER_SECONDS).label("topic", *topic));
    }
    out
}

/// The series an outbox relay of `namespace` emits.
pub fn outbox(namespace: &str) -> Vec<Series> {
    let mut out: Vec<Series> = OUTBOX_COUNTERS
        .iter()
        .map(|n| Series::counter(n).label("namespace", namespace))
        .chain(
            OUTBOX_GAUGES
                .iter()
                .map(|n| Series::gauge(n).label("namespace", namespace)),
        )
        .collect();
    out.push(Series::histogram(OUTBOX_LATENCY).label("namespace", namespace));
    out
}

/// Every series of a process running `services` under `mode`: what each
/// service declares, the admin server's, restarts per service (only `up`
/// restarts), the audit layer's when enabled.
pub fn at_start(ctx: &Context, services: &[Arc<dyn Service>], mode: Mode) -> Vec<Series> {
    let mut out = tributary_platform::serve::series("admin");
    for svc in services {
        out.extend(svc.metrics(ctx));
        if mode == Mode::Up {
            out.push(Series::counter(RESTARTS).label("service", svc.name()));
        }
    }
    if ctx.settings.audit.enabled {
        out.extend(crate::audit::series());
    }
    out
}

/// Registers [`at_start`]'s series; returns how many.
pub fn register_at_start(ctx: &Context, services: &[Arc<dyn Service>], mode: Mode) -> usize {
    let series = at_start(ctx, services, mode);
    telemetry::register(&series);
    series.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the building blocks' series carry the label values the dashboards filter on.
    #[test]
    fn consumer_and_outbox_series_are_labelled() {
        let c = consumer(&["a", "b"]);
        assert_eq!(c.len(), 8);
        assert!(c.contains(
            &Series::counter(CONSUMER_MESSAGES)
                .label("topic", "b")
                .label("outcome", "dead_letter")
        ));
        let o = outbox("docs");
        assert_eq!(o.len(), 5);
        assert!(o
            .iter()
            .all(|s| s.labels == vec![("namespace", "docs".to_owned())]));
    }
}
