//! The event-bus port and its adapters, plus the at-least-once consumer
//! runner every service uses.
//!
//! Adapters are chosen by URL:
//! - `kafka://host:port[,host:port...]` — Apache Kafka or any Kafka-protocol
//!   broker, through `rdkafka` (librdkafka). For anything that spans more
//!   than one process.
//! - `sqlite://PATH` — the embedded bus: an append-only log in a SQLite file,
//!   for one machine and one process (one writer per file, enforced by a
//!   lock; `sqlite://PATH?mode=ro` opens it read-only next to the writer).
//!   It is **not** a Kafka replacement: no replication, no cross-process
//!   consumer groups.
//!
//! Both adapters give the same semantics (see [`EventBus`]); one conformance
//! suite (`tests/conformance.rs`) runs every scenario against both.
//! Wrappers: [`unreliable`] injects outages, [`namespaced`] prefixes topic
//! and group names (isolation on a shared broker).

pub mod embedded;
mod error;
pub mod kafka;
pub mod namespaced;
pub mod partitioner;
mod port;
mod record;
pub mod runner;
pub mod unreliable;

use std::sync::Arc;

pub use error::{Error, Result};
pub use port::{
    CleanupPolicy, Consumer, ConsumerOptions, EventBus, PartitionLag, StartFrom, TopicConfig,
};
pub use record::{Delivery, Header, Message, Record};

/// A shared bus handle.
pub type Bus = Arc<dyn EventBus>;

/// Settings of the bus port.
#[derive(Clone, serde::Serialize, serde::Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// `kafka://host:port,...` or `sqlite://PATH`; empty means the embedded bus
    /// under the data directory.
    pub url: String,
    /// Kafka adapter settings.
    pub kafka: kafka::KafkaConfig,
    /// Embedded bus settings (retention, compaction); see [`embedded::EmbeddedConfig`].
    pub embedded: embedded::EmbeddedConfig,
}

impl std::fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusConfig")
            .field("url", &tributary_platform::url::redact(&self.url))
            .field("kafka", &self.kafka)
            .field("embedded", &self.embedded)
            .finish()
    }
}

/// Opens the bus `url` names and checks that it answers.
///
/// # Errors
/// [`Error::InvalidUrl`] for an unknown scheme or malformed URL,
/// [`Error::Unreachable`] when the backend does not answer; both name the URL
/// with its password masked.
pub async fn connect(url: &str, config: &BusConfig) -> Result<Bus> {
    let safe = tributary_platform::url::redact(url);
    match tributary_platform::url::scheme(url).as_deref() {
        Some("kafka") => Ok(Arc::new(
            kafka::KafkaBus::connect(url, &config.kafka).await?,
        )),
        Some("sqlite") => Ok(Arc::new(
            embedded::EmbeddedBus::open_with(url, &config.embedded).await?,
        )),
        Some(other) => Err(Error::InvalidUrl {
            url: safe,
            reason: format!("unknown scheme {other:?}; use kafka:// or sqlite://"),
        }),
        None => Err(Error::InvalidUrl {
            url: safe,
            reason: "missing scheme; use kafka://host:port or sqlite://PATH".into(),
        }),
    }
}

/// Opens the bus `url` names for reading only: the embedded bus opens
/// read-only (no writer lock, so it works next to the process that owns the
/// file; it cannot send, create topics or commit offsets); a Kafka URL
/// connects as [`connect`] does (Kafka has no single writer).
///
/// For tools and tests that look at a bus a running process writes.
///
/// # Errors
/// As [`connect`].
pub async fn connect_read_only(url: &str, config: &BusConfig) -> Result<Bus> {
    match tributary_platform::url::scheme(url).as_deref() {
        Some("sqlite") => connect(&embedded::read_only_url(url), config).await,
        _ => connect(url, config).await,
    }
}

/// Readiness check for a bus.
#[derive(Clone)]
pub struct BusHealth(pub Bus);

#[async_trait::async_trait]
impl tributary_platform::HealthCheck for BusHealth {
    fn name(&self) -> String {
        format!("bus ({})", self.0.describe())
    }
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

/// Checks a topic name the way Kafka does: 1..=249 chars of `[a-zA-Z0-9._-]`.
pub(crate) fn validate_topic(topic: &str, partitions: i32) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidTopic {
            topic: topic.to_string(),
            reason: reason.to_string(),
        })
    };
    if topic.is_empty() || topic.len() > 249 {
        return bad("length must be 1..=249");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only [a-zA-Z0-9._-] allowed");
    }
    if partitions < 1 {
        return bad("partitions must be >= 1");
    }
    Ok(())
}
