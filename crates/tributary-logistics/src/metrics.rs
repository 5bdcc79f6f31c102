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

/// The `rpc` label values: the five package RPCs (`service.rs` observes each).
pub const RPCS: [&str; 5] = [
    "CreatePackageV1",
    "DescribePackageV1",
    "ListPackagesV1",
    "UpdatePackageV1",
    "RemovePackageV1",
];
/// The `transport` label values.
pub const TRANSPORTS: [&str; 2] = ["grpc", "http"];
/// The `status` label values: `ok` and every [`crate::Error::code`].
pub const STATUSES: [&str; 4] = ["ok", "invalid_argument", "not_found", "internal"];

/// The API's series, to register at start: every rpc x transport x status
/// (bounded: 40 request counters, 10 latency histograms).
pub fn api_series() -> Vec<tributary_platform::telemetry::Series> {
    use tributary_platform::telemetry::Series;
    let mut out = vec![Series::counter(NOT_FOUND), Series::counter(CUD_EVENTS)];
    for rpc in RPCS {
        for transport in TRANSPORTS {
            for status in STATUSES {
                out.push(
                    Series::counter(REQUESTS)
                        .label("rpc", rpc)
                        .label("transport", transport)
                        .label("status", status),
                );
            }
            out.push(
                Series::histogram(REQUEST_SECONDS)
                    .label("rpc", rpc)
                    .label("transport", transport),
            );
        }
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the declared label values are the ones the code uses: every rpc name service.rs
    // observes, and every error code.
    #[test]
    fn declared_labels_match_the_code() {
        let src = include_str!("service.rs");
        let observed: Vec<&str> = src
            .split("observe(\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        let mut sorted = observed.clone();
        sorted.sort_unstable();
        let mut declared = RPCS.to_vec();
        declared.sort_unstable();
        assert_eq!(sorted, declared);
        for e in [
            crate::Error::NotFound,
            crate::Error::NoChanges,
            crate::Error::Corrupt(String::new()),
        ] {
            assert!(STATUSES.contains(&e.code()), "{}", e.code());
        }
    }
}
