//! Settings of the imports system (`[imports]` in the configuration file,
//! `TRIBUTARY__IMPORTS__KEY` in the environment).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tributary_runtime::outbox::RelayConfig;

/// Topic of stored uploads (`FileExtractSuccess`, key = upload name).
pub const FILES_TOPIC: &str = "processedFile";
/// Topic of every other import event (`FileExtractError`,
/// `ValidationError`, `ImportCompleted`), through the outbox.
pub const EVENTS_TOPIC: &str = "importEvents";
/// Consumer group of `imports-processor`.
pub const GROUP: &str = "imports-processor";

/// The `[imports]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImportsSettings {
    /// Address of the upload and status API (`imports-api`); the CLI's
    /// default `--api`.
    pub http_listen: SocketAddr,
    /// Largest upload body, bytes, after gzip decoding (413 past it).
    pub max_body_bytes: u64,
    /// Largest single record of a body, bytes (400 past it).
    pub max_record_bytes: usize,
    /// Longest time an API request may take until its answer starts,
    /// seconds (an upload answers only once its body is stored).
    pub request_timeout_secs: u64,
    /// Topic of stored uploads (`FileExtractSuccess`, key = name).
    pub files_topic: String,
    /// Partitions of the files topic when it is created.
    pub partitions: i32,
    /// Consumer group of the processor replicas.
    pub group: String,
    /// Records per load transaction of the processor.
    pub batch_size: usize,
    /// Validation errors kept in an upload's status (all of them are in
    /// `GET /api/imports/uploads/{id}/errors` and on the events topic).
    pub status_errors: u32,
    /// First retry delay of a file whose processing failed on a backend, ms
    /// (doubles per attempt; the partition waits meanwhile).
    pub retry_base_ms: u64,
    /// Retry delay cap, ms.
    pub retry_max_ms: u64,
    /// Page size of the list routes without `limit`.
    pub page_default: u32,
    /// Largest `limit` accepted.
    pub page_max: u32,
    /// The `imports-outbox` relay (`[imports.relay]`); `relay.topic` is the
    /// events topic. `FileExtractSuccess` events go to `files_topic`.
    pub relay: RelayConfig,
    /// Kinds declared by a JSON Schema (`[[imports.kinds]]`), besides the
    /// built-in `company`.
    pub kinds: Vec<SchemaKindSettings>,
}

/// One kind declared by a JSON Schema file (draft 2020-12) and the JSON
/// pointer of its natural key; its records go to the generic table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SchemaKindSettings {
    /// Kind name: 1 to 64 of `a-z`, `0-9`, `-`, `_` (not `company`).
    pub name: String,
    /// The schema file (JSON).
    pub schema: PathBuf,
    /// JSON pointer of the natural key, e.g. `/sku`.
    pub key: String,
}

impl Default for ImportsSettings {
    fn default() -> Self {
        Self {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8096)),
            max_body_bytes: 1024 * 1024 * 1024,
            max_record_bytes: 16 * 1024 * 1024,
            request_timeout_secs: 900,
            files_topic: FILES_TOPIC.into(),
            partitions: 3,
            group: GROUP.into(),
            batch_size: 1000,
            status_errors: 20,
            retry_base_ms: 200,
            retry_max_ms: 30_000,
            page_default: 100,
            page_max: 1000,
            relay: RelayConfig::for_topic(EVENTS_TOPIC),
            kinds: Vec::new(),
        }
    }
}

impl ImportsSettings {
    /// The events topic (the relay's destination).
    pub fn events_topic(&self) -> &str {
        &self.relay.topic
    }

    /// The request time limit.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// The dead-letter topic of the files topic (`<files_topic>.dlq`).
    pub fn dead_letter_topic(&self) -> String {
        format!("{}{}", self.files_topic, tributary_bus::runner::DLQ_SUFFIX)
    }
}
