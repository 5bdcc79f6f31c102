//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;

/// Where in a file something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// The position is not known (e.g. the file could not be opened).
    Unknown,
    /// 1-based line and column (JSON syntax errors).
    LineColumn { line: u64, column: u64 },
    /// Byte offset from the start of the file (HTML).
    Byte(u64),
    /// 0-based index of the message within the file, with its id when known.
    Message { index: u64, id: Option<i64> },
    /// 1-based record number of a CSV backup (the header is record 0), with
    /// the line it starts on.
    Record { record: u64, line: u64 },
    /// 0-based row group of a Parquet backup.
    RowGroup { row_group: u64 },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Unknown => write!(f, "unknown position"),
            Position::LineColumn { line, column } => write!(f, "line {line}, column {column}"),
            Position::Byte(b) => write!(f, "byte {b}"),
            Position::Message {
                index,
                id: Some(id),
            } => {
                write!(f, "message #{index} (id {id})")
            }
            Position::Message { index, id: None } => write!(f, "message #{index}"),
            Position::Record { record, line } => write!(f, "record {record} (line {line})"),
            Position::RowGroup { row_group } => write!(f, "row group {row_group}"),
        }
    }
}

/// Everything that can go wrong while reading chat exports and backups.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading a stream failed part-way (at `position`).
    #[error("read error at {position}: {source}")]
    Read {
        position: Position,
        #[source]
        source: std::io::Error,
    },
    /// The JSON is not well-formed (or is not an export) at `position`.
    #[error("malformed JSON at {position}: {reason}")]
    Json { position: Position, reason: String },
    /// The HTML cannot be tokenized at `position`.
    #[error("malformed HTML at {position}: {reason}")]
    Html { position: Position, reason: String },
    /// A CSV backup record is malformed.
    #[error("malformed CSV backup at {position}: {reason}")]
    Csv { position: Position, reason: String },
    /// A Parquet backup cannot be read: not Parquet, not our schema (the
    /// reason names the column), truncated, or damaged at `position`.
    #[error("bad Parquet backup at {position}: {reason}")]
    Parquet { position: Position, reason: String },
    /// A zip archive (or one of its entries) cannot be read.
    #[error("bad zip archive: {reason}")]
    Zip { reason: String },
    /// One message is well-formed syntax but lacks something required (its
    /// id) or holds an unusable value; only that message is skipped.
    #[error("invalid message at {position}: {reason}")]
    InvalidMessage { position: Position, reason: String },

    // --- services (store, bus, backup) ---
    /// A request is not acceptable (bad filter, unsafe delete, bad path).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A request names something it may not reach (a server path outside
    /// the configured roots).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An upload is larger than `chat.max_upload_bytes`.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The SQL database failed (unreachable, constraint, migration).
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A storage port failed (migrations, object store).
    #[error("storage: {0}")]
    Storage(#[from] tributary_storage::Error),
    /// The event bus failed.
    #[error("event bus: {0}")]
    Bus(#[from] tributary_bus::Error),
    /// A local file could not be written or read outside parsing.
    #[error("{context}: {source}")]
    File {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A background task died (panicked or was cancelled).
    #[error("task failed: {0}")]
    Task(String),
}

impl Error {
    /// The position the error points at, if any.
    pub fn position(&self) -> Position {
        match self {
            Error::Read { position, .. }
            | Error::Json { position, .. }
            | Error::Html { position, .. }
            | Error::Csv { position, .. }
            | Error::Parquet { position, .. }
            | Error::InvalidMessage { position, .. } => position.clone(),
            Error::Io { .. }
            | Error::Zip { .. }
            | Error::InvalidRequest(_)
            | Error::PermissionDenied(_)
            | Error::NotFound(_)
            | Error::TooLarge(_)
            | Error::Sql(_)
            | Error::Storage(_)
            | Error::Bus(_)
            | Error::File { .. }
            | Error::Task(_) => Position::Unknown,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The one mapping of the crate's errors onto the API error model, used by
/// REST and gRPC alike: a bad request or unreadable input is
/// `invalid_argument` with its reason, a missing path or object is
/// `not_found`, anything else is `internal` (logged once where it is
/// answered, never detailed to the client).
impl From<Error> for tributary_runtime::ApiError {
    fn from(e: Error) -> Self {
        use tributary_runtime::ApiError;
        match &e {
            Error::InvalidRequest(msg) => ApiError::invalid(msg.clone()),
            Error::PermissionDenied(msg) => ApiError::new(
                tributary_runtime::error::ErrorKind::PermissionDenied,
                msg.clone(),
            ),
            Error::NotFound(msg) => ApiError::not_found(msg.clone()),
            Error::TooLarge(msg) => ApiError::new(
                tributary_runtime::error::ErrorKind::PayloadTooLarge,
                msg.clone(),
            ),
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ApiError::not_found(e.to_string())
            }
            Error::Storage(s) if s.is_not_found() => ApiError::not_found(s.to_string()),
            Error::Storage(tributary_storage::Error::InvalidKey { .. })
            | Error::Io { .. }
            | Error::Json { .. }
            | Error::Html { .. }
            | Error::Csv { .. }
            | Error::Parquet { .. }
            | Error::Zip { .. }
            | Error::InvalidMessage { .. } => ApiError::invalid(e.to_string()),
            Error::Read { .. }
            | Error::Sql(_)
            | Error::Storage(_)
            | Error::Bus(_)
            | Error::File { .. }
            | Error::Task(_) => ApiError::internal(e),
        }
    }
}

impl From<tributary_runtime::outbox::OutboxError> for Error {
    fn from(e: tributary_runtime::outbox::OutboxError) -> Self {
        use tributary_runtime::outbox::OutboxError;
        match e {
            OutboxError::Sql(e) => Error::Sql(e),
            OutboxError::Storage(e) => Error::Storage(e),
            other @ OutboxError::Corrupt(_) => Error::Task(other.to_string()),
        }
    }
}
