//! Metric names (the seed's names kept) and small recording helpers.
//! Labels are bounded: rpc (5 values), transport (2), status (4).

use std::time::Duration;

/// Counter: requests answered NotFound (seed name).
pub const NOT_FOUND: &str = "logistic_package_api_not_found_total";
/// Counter: create/update/remove events written to the outbox (seed name).
pub const CUD_EVENTS: &str = "logistic_package_api_cud_event_total";
/// Gauge: events held by the relay right now (seed name).
pub const EVENTS_PROCESSING: &str = "logistic_package_api_retranslator_events_processing";
/// Counter: requests by rpc, transport and status.
pub const REQUESTS: &str = "logistic_package_api_requests_total";
/// Histogram: request latency by rpc and transport, seconds.
pub const REQUEST_SECONDS: &str = "logistic_package_api_request_duration_seconds";
/// Gauge: age of the oldest unsent outbox event, seconds (relay lag).
pub const RELAY_LAG: &str = "logistic_package_api_relay_lag_seconds";
/// Counter: events acknowledged by the bus.
pub const RELAY_SENT: &str = "logistic_package_api_relay_sent_total";
/// Counter: events whose send round failed (they are retried with backoff).
pub const RELAY_FAILED: &str = "logistic_package_api_relay_failed_total";
/// Histogram: commit-to-acknowledged latency of relayed events, seconds.
pub const RELAY_LATENCY: &str = "logistic_package_api_relay_commit_to_ack_seconds";

/// Records one answered request.
pub(crate) fn request(
    rpc: &'static str,
    transport: &'static str,
    status: &'static str,
    took: Duration,
) {
    metrics::counter!(REQUESTS, "rpc" => rpc, "transport" => transport, "status" => status)
        .increment(1);
    metrics::histogram!(REQUEST_SECONDS, "rpc" => rpc, "transport" => transport)
        .record(took.as_secs_f64());
    if status == "not_found" {
        metrics::counter!(NOT_FOUND).increment(1);
    }
}
