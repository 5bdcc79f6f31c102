//! The error type of the logistics crate and its mapping to gRPC statuses.
//! (The HTTP mapping lives in `api/http/error.rs`.)

use crate::domain::ValidationError;

/// Everything a logistics operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; the message names the field.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No package with this id.
    #[error("package not found")]
    NotFound,
    /// An update that sets no field.
    #[error("no changes specified")]
    NoChanges,
    /// The database failed (details are logged, never sent to clients).
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database: {0}")]
    Storage(#[from] tributary_storage::Error),
    /// The event bus failed.
    #[error("event bus: {0}")]
    Bus(#[from] tributary_bus::Error),
    /// Stored data could not be decoded (a bug or a manual edit).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short stable label for metrics (`ok` is used for success).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) | Error::NoChanges => "invalid_argument",
            Error::NotFound => "not_found",
            _ => "internal",
        }
    }

    /// True for errors that are the server's fault (logged, hidden from clients).
    pub fn is_internal(&self) -> bool {
        self.code() == "internal"
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(v) => tonic::Status::invalid_argument(v.to_string()),
            Error::NoChanges => tonic::Status::invalid_argument("no changes specified"),
            Error::NotFound => tonic::Status::not_found("package not found"),
            other => {
                tracing::error!(error = %other, "request failed");
                tonic::Status::internal("internal error")
            }
        }
    }
}
