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

use crate::outbox::relay::{FAILED, IN_FLIGHT, LAG, LATENCY, SENT};
use tributary_bus::runner::{CONSUMER_LAG, HANDLE_SECONDS, MESSAGES, OUTCOMES, RETRIES};

/// The series `tributary_bus::runner::run` emits when `group` consumes
/// `topics`. The lag gauge is registered for partition 0 (every topic has
/// one); the others appear with the first refresh.
pub fn consumer(group: &str, topics: &[&str]) -> Vec<Series> {
    let mut out = Vec::new();
    for topic in topics {
        out.push(
            Series::gauge(CONSUMER_LAG)
                .label("group", group)
                .label("topic", *topic)
                .label("partition", "0"),
        );
        for outcome in OUTCOMES {
            out.push(
                Series::counter(MESSAGES)
                    .label("topic", *topic)
                    .label("outcome", outcome),
            );
        }
        out.push(Series::counter(RETRIES).label("topic", *topic));
        out.push(Series::histogram(HANDLE_SECONDS).label("topic", *topic));
    }
    out
}

/// The series an outbox relay of `namespace` emits.
pub fn outbox(namespace: &str) -> Vec<Series> {
    vec![
        Series::counter(SENT).label("namespace", namespace),
        Series::counter(FAILED).label("namespace", namespace),
        Series::gauge(LAG).label("namespace", namespace),
        Series::gauge(IN_FLIGHT).label("namespace", namespace),
        Series::histogram(LATENCY).label("namespace", namespace),
    ]
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
        let c = consumer("g", &["a", "b"]);
        assert_eq!(c.len(), 10);
        assert!(c.contains(
            &Series::gauge(CONSUMER_LAG)
                .label("group", "g")
                .label("topic", "a")
                .label("partition", "0")
        ));
        assert!(c.contains(
            &Series::counter(MESSAGES)
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
