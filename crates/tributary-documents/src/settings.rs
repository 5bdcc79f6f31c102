//! Settings of the documents system (`[docs]` in the configuration file,
//! `TRIBUTARY__DOCS__KEY` in the environment).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tributary_runtime::outbox::RelayConfig;

use crate::domain::EmitPolicy;

/// Input topic: document updates in the wire shape, key = url.
pub const INPUT_TOPIC: &str = "doc-updates-incoming";
/// Output topic: merged documents, key = url (through the outbox).
pub const OUTPUT_TOPIC: &str = "doc-updates-outgoing";
/// Dead-letter topic: updates that can never be applied.
pub const DEAD_LETTER_TOPIC: &str = "doc-updates-dead";
/// Consumer group of `docs-executor`.
pub const GROUP: &str = "doc-updates-group";

/// The `[docs]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DocsSettings {
    /// Address of the REST API (`docs-api`); the CLI's default `--api`.
    pub http_listen: SocketAddr,
    /// Topic the executor consumes (and the API's ingest route produces to).
    pub input_topic: String,
    /// Topic of updates that can never be applied (original bytes, the
    /// error and origin in `dlq.*` headers).
    pub dead_letter_topic: String,
    /// Consumer group of the executor replicas.
    pub group: String,
    /// Partitions of the input and dead-letter topics when they are created.
    pub partitions: i32,
    /// Messages per batch, at most.
    pub batch_max: usize,
    /// A batch is cut this long after its first message at the latest, ms.
    pub batch_wait_ms: u64,
    /// `changed`: emit a document only when its merged state changed;
    /// `always`: emit the state of every url of a batch (the seed's
    /// behaviour, once per url per batch).
    pub emit: EmitPolicy,
    /// First retry delay of a batch whose database transaction failed, ms
    /// (doubles per attempt).
    pub retry_base_ms: u64,
    /// Retry delay cap, ms.
    pub retry_max_ms: u64,
    /// After a failed cache call the cache is bypassed (prior states come
    /// from the database alone) for this long before it is tried again, ms.
    pub cache_retry_ms: u64,
    /// Page size of `GET /api/docs/documents` without `limit`.
    pub page_default: u32,
    /// Largest `limit` accepted.
    pub page_max: u32,
    /// The `docs-outbox` relay (`[docs.relay]`, the shared outbox relay's
    /// settings); `relay.topic` is the output topic.
    pub relay: RelayConfig,
}

impl Default for DocsSettings {
    fn default() -> Self {
        Self {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8095)),
            input_topic: INPUT_TOPIC.into(),
            dead_letter_topic: DEAD_LETTER_TOPIC.into(),
            group: GROUP.into(),
            partitions: 3,
            batch_max: 1000,
            batch_wait_ms: 20,
            emit: EmitPolicy::Changed,
            retry_base_ms: 100,
            retry_max_ms: 10_000,
            cache_retry_ms: 5_000,
            page_default: 100,
            page_max: 1000,
            relay: RelayConfig::for_topic(OUTPUT_TOPIC),
        }
    }
}

impl DocsSettings {
    /// Delay before retry number `n` (0-based) of a failed batch, capped.
    pub fn retry_delay(&self, n: u32) -> Duration {
        let base = self.retry_base_ms.max(1);
        let ms = base.saturating_mul(1u64 << n.min(20));
        Duration::from_millis(ms.min(self.retry_max_ms.max(base)))
    }

    /// The output topic (the relay's destination).
    pub fn output_topic(&self) -> &str {
        &self.relay.topic
    }
}
