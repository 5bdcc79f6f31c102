//! The imports metrics (Prometheus names). Labels are bounded: `kind` is
//! one of the known kinds, `outcome` a fixed word.

/// Counter: uploads by `kind` and `outcome` (`stored`, `duplicate`, `refused`).
pub const UPLOADS: &str = "tributary_imports_uploads_total";
/// Counter: decoded bytes of stored uploads, by `kind`.
pub const UPLOAD_BYTES: &str = "tributary_imports_upload_bytes_total";
/// Counter: records loaded, by `kind`.
pub const RECORDS_LOADED: &str = "tributary_imports_records_loaded_total";
/// Counter: records rejected by validation, by `kind`.
pub const RECORDS_REJECTED: &str = "tributary_imports_records_rejected_total";
/// Counter: uploads processed, by `kind` and `outcome` (`completed`, `failed`).
pub const PROCESSED: &str = "tributary_imports_processed_total";
/// Histogram: seconds from the processor's start on an upload to its end, by `kind`.
pub const PROCESSING_SECONDS: &str = "tributary_imports_processing_seconds";
/// Histogram: seconds of one batch's load transaction.
pub const BATCH_SECONDS: &str = "tributary_imports_batch_seconds";

/// The `outcome` values of [`UPLOADS`].
pub const UPLOAD_OUTCOMES: [&str; 3] = ["stored", "duplicate", "refused"];
/// The `outcome` values of [`PROCESSED`].
pub const PROCESSED_OUTCOMES: [&str; 2] = ["completed", "failed"];

/// The API's series for the kinds `kinds`, to register at start.
pub fn api_series(kinds: &[String]) -> Vec<tributary_platform::telemetry::Series> {
    use tributary_platform::telemetry::Series;
    let mut out = Vec::new();
    for kind in kinds {
        for outcome in UPLOAD_OUTCOMES {
            out.push(
                Series::counter(UPLOADS)
                    .label("kind", kind.as_str())
                    .label("outcome", outcome),
            );
        }
        out.push(Series::counter(UPLOAD_BYTES).label("kind", kind.as_str()));
    }
    out
}

/// The processor's series for the kinds `kinds`, to register at start.
pub fn processor_series(kinds: &[String]) -> Vec<tributary_platform::telemetry::Series> {
    use tributary_platform::telemetry::Series;
    let mut out = vec![Series::histogram(BATCH_SECONDS)];
    for kind in kinds {
        let k = kind.as_str();
        for outcome in PROCESSED_OUTCOMES {
            out.push(
                Series::counter(PROCESSED)
                    .label("kind", k)
                    .label("outcome", outcome),
            );
        }
        out.push(Series::counter(RECORDS_LOADED).label("kind", k));
        out.push(Series::counter(RECORDS_REJECTED).label("kind", k));
        out.push(Series::histogram(PROCESSING_SECONDS).label("kind", k));
    }
    out
}
