//! The error type of the storage crate.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can fail in a storage port. URLs inside messages are
/// always redacted (no passwords).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL could not be parsed or lacks a required part.
    #[error("invalid {port} URL {url}: {reason}")]
    InvalidUrl {
        /// Which port (`sql`, `objects`, `cache`).
        port: &'static str,
        /// The URL without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL scheme names no adapter of this port.
    #[error("unsupported {port} URL {url}: expected {expected}")]
    UnsupportedScheme {
        /// Which port (`sql`, `objects`, `cache`).
        port: &'static str,
        /// The URL without its password.
        url: String,
        /// The schemes that are accepted.
        expected: &'static str,
    },
    /// The backend did not answer when the handle was opened.
    #[error("cannot connect to {port} at {url}: {reason}")]
    Connect {
        /// Which port (`sql`, `objects`, `cache`).
        port: &'static str,
        /// The URL without its password.
        url: String,
        /// One-line cause.
        reason: String,
    },
    /// A query or transaction failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Applying migrations failed (the failed migration was rolled back where
    /// the dialect allows it; earlier ones stay applied).
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A migration of one system's namespace failed or was changed after
    /// it ran; the whole call was rolled back.
    #[error("database migration {namespace}/{version}: {reason}")]
    Migration {
        /// The system that owns the migration.
        namespace: String,
        /// Its version (0: the history table itself).
        version: i64,
        /// One-line cause.
        reason: String,
    },
    /// No object is stored under this key.
    #[error("object {key:?} not found")]
    NotFound {
        /// Key relative to the store's prefix.
        key: String,
    },
    /// The object key is not a valid path (empty segment, `..`, ...).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The object store failed (network, permissions, server error) after its
    /// own retries.
    #[error("object store: {}", one_line_display(.0))]
    Objects(#[source] object_store::Error),
    /// A Redis command failed.
    #[error("cache: {0}")]
    Redis(#[from] redis::RedisError),
    /// The stream given to [`Objects::put_stream`](crate::Objects::put_stream)
    /// failed; the upload was aborted.
    #[error("reading the data for object {key:?} failed: {source}")]
    Source {
        /// Key being uploaded.
        key: String,
        /// The stream's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A local directory could not be created.
    #[error("cannot create directory {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// True when the error says "nothing stored here" (a missing object).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// `e` on one line (servers put XML or multi-line text in their errors).
fn one_line_display(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The error and its sources on one line.
pub(crate) fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    one_line_display(&out)
}
