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
