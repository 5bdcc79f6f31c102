//! Errors of the bus port.

/// Error of the bus port and its adapters.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus URL is not one this crate knows.
    #[error("invalid bus URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend did not answer (network, broker down, file not openable).
    #[error("bus backend {url} unreachable: {reason}")]
    Unreachable {
        /// The URL, password masked.
        url: String,
        /// The cause.
        reason: String,
    },
    /// The topic does not exist.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// A topic name or partition count is not acceptable.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// Topic name.
        topic: String,
        /// Why.
        reason: String,
    },
    /// Kafka client error.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Embedded store error.
    #[error("embedded bus store: {0}")]
    Store(#[from] sqlx::Error),
    /// Another process holds the embedded bus file for writing.
    #[error(
        "embedded bus {path} is in use by another tributary process{}; stop it or use its API (read-only tools open sqlite://PATH?mode=ro)",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked {
        /// The bus file.
        path: String,
        /// The holder's pid, when it could be read from the lock file.
        pid: Option<u32>,
    },
    /// The embedded bus was opened read-only and cannot do this.
    #[error("embedded bus {url} is open read-only: cannot {what}")]
    ReadOnly {
        /// The bus URL.
        url: String,
        /// What was refused (`send`, `commit offsets`, ...).
        what: &'static str,
    },
    /// A record the topic cannot take (e.g. no key on a compacted topic).
    #[error("invalid record for topic {topic:?}: {reason}")]
    InvalidRecord {
        /// Topic name.
        topic: String,
        /// Why.
        reason: String,
    },
    /// The bus or consumer was closed.
    #[error("bus closed")]
    Closed,
    /// Waiting for the backend took too long.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// Result of the bus port.
pub type Result<T, E = Error> = std::result::Result<T, E>;
