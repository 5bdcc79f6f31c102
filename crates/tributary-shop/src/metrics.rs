//! The shop metrics (Prometheus names). The only label is `service`, one
//! of the five shop service names, so cardinality is fixed.

use tributary_platform::telemetry::Series;

/// Counter: records consumed (or generated, for the emulator), by `service`.
pub const RECORDS_IN: &str = "tributary_shop_records_in_total";
/// Counter: records produced or written, by `service`.
pub const RECORDS_OUT: &str = "tributary_shop_records_out_total";
/// Counter: records rejected (dead-lettered: not the wire shape), by `service`.
pub const RECORDS_REJECTED: &str = "tributary_shop_records_rejected_total";
/// Counter: products the filter let through.
pub const FILTER_PASSED: &str = "tributary_shop_filter_passed_total";
/// Counter: products the filter held back.
pub const FILTER_DROPPED: &str = "tributary_shop_filter_dropped_total";
/// Gauge: passed / (passed + dropped) of this process since start.
pub const FILTER_PASS_RATIO: &str = "tributary_shop_filter_pass_ratio";
/// Counter: filter changes applied from the control topic.
pub const FILTER_CHANGES: &str = "tributary_shop_filter_changes_total";
/// Gauge: prompts and products held in the join state.
pub const JOIN_STATE_RECORDS: &str = "tributary_shop_join_state_records";
/// Gauge: distinct join keys in the join state.
pub const JOIN_STATE_KEYS: &str = "tributary_shop_join_state_keys";
/// Gauge: emitted pairs remembered by the join state.
pub const JOIN_STATE_EMITTED: &str = "tributary_shop_join_state_emitted";
/// Counter: recommendations (prompt, product pairs) emitted.
pub const JOIN_MATCHES: &str = "tributary_shop_join_matches_total";
/// Counter: records dropped by the join as later than the grace period.
pub const JOIN_LATE: &str = "tributary_shop_join_late_total";
/// Gauge: wall clock minus the join's stream time, seconds.
pub const JOIN_WATERMARK_LAG: &str = "tributary_shop_join_watermark_lag_seconds";
/// Counter: join state reloads from the database after a failed record.
pub const JOIN_RELOADS: &str = "tributary_shop_join_state_reloads_total";

/// The record counters of the pipeline service `service`, to register at
/// start: in and out, and rejected for a service that consumes (`consumes`).
pub fn records(service: &'static str, consumes: bool) -> Vec<Series> {
    let mut out = vec![
        Series::counter(RECORDS_IN).label("service", service),
        Series::counter(RECORDS_OUT).label("service", service),
    ];
    if consumes {
        out.push(Series::counter(RECORDS_REJECTED).label("service", service));
    }
    out
}

/// The live filter's series. The pass ratio is undefined (NaN) until the
/// first product.
pub fn filter() -> Vec<Series> {
    vec![
        Series::counter(FILTER_PASSED),
        Series::counter(FILTER_DROPPED),
        Series::gauge_undefined(FILTER_PASS_RATIO),
        Series::counter(FILTER_CHANGES),
    ]
}

/// The join's series. The watermark lag is undefined (NaN) until the join
/// has a stream time.
pub fn join() -> Vec<Series> {
    vec![
        Series::gauge(JOIN_STATE_RECORDS),
        Series::gauge(JOIN_STATE_KEYS),
        Series::gauge(JOIN_STATE_EMITTED),
        Series::gauge_undefined(JOIN_WATERMARK_LAG),
        Series::counter(JOIN_MATCHES),
        Series::counter(JOIN_LATE),
        Series::counter(JOIN_RELOADS),
    ]
}
