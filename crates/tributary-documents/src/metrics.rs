//! The executor's metrics (Prometheus names; no labels, so cardinality is
//! fixed). Documents are counted once per url per batch (a batch folds
//! the updates of one url before it touches the state).

/// Counter: valid updates consumed.
pub const UPDATES_IN: &str = "tributary_docs_updates_in_total";
/// Counter: documents whose merged state changed (new urls included).
pub const MERGED: &str = "tributary_docs_merged_total";
/// Counter: documents a batch left unchanged (duplicates, stale updates).
pub const UNCHANGED: &str = "tributary_docs_unchanged_total";
/// Counter: documents written to the outbox for the output topic.
pub const EMITTED: &str = "tributary_docs_emitted_total";
/// Counter: updates sent to the dead-letter topic.
pub const DEAD_LETTERED: &str = "tributary_docs_dead_lettered_total";
/// Counter: prior states found in the cache.
pub const CACHE_HITS: &str = "tributary_docs_cache_hits_total";
/// Counter: prior states not in the cache (read from the database).
pub const CACHE_MISSES: &str = "tributary_docs_cache_misses_total";
/// Counter: cache calls that failed (the cache is then bypassed for a while).
pub const CACHE_ERRORS: &str = "tributary_docs_cache_errors_total";
/// Counter: batches whose database transaction failed and was retried.
pub const BATCH_RETRIES: &str = "tributary_docs_batch_retries_total";
/// Histogram: messages per batch.
pub const BATCH_SIZE: &str = "tributary_docs_batch_size";
/// Histogram: seconds of a batch's database transaction (upsert + outbox + commit).
pub const COMMIT_SECONDS: &str = "tributary_docs_commit_seconds";

/// The executor's series, to register at start (all without labels).
pub fn series() -> Vec<tributary_platform::telemetry::Series> {
    use tributary_platform::telemetry::Series;
    let counters = [
        UPDATES_IN,
        MERGED,
        UNCHANGED,
        EMITTED,
        DEAD_LETTERED,
        CACHE_HITS,
        CACHE_MISSES,
        CACHE_ERRORS,
        BATCH_RETRIES,
    ];
    counters
        .into_iter()
        .map(Series::counter)
        .chain([BATCH_SIZE, COMMIT_SECONDS].map(Series::histogram))
        .collect()
}
