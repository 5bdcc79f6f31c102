//! The filter's control topic: one partition, records keyed
//!
//! - `filter`: a [`FilterSpec`] (JSON), set through `shop-api`; the latest
//!   one is the filter;
//! - `ack/<replica>`: a [`ReplicaAck`], written by a `shop-filter` replica
//!   each time it applies a filter, with the product offset per partition
//!   from which the filter applies;
//! - `sync/<replica>`: a marker a follower writes on start and waits for,
//!   so it knows it has applied everything written before it started.
//!
//! Every follower (each `shop-filter` replica and each `shop-api`) reads
//! the topic from the beginning under a group of its own that never
//! commits, and then follows it live: every replica and every restart
//! applies the same filter, the latest. The embedded bus has no log
//! compaction, so the topic keeps every record; replaying it is cheap (a
//! few records per change). On Kafka, create it with
//! `cleanup.policy=compact` to bound it; the follower reads it the same way.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tributary_bus::{Bus, ConsumerOptions, Record, StartFrom, TopicConfig};

use crate::domain::{Filter, FilterSpec};

/// Key of the filter record.
pub const FILTER_KEY: &str = "filter";

/// What a filter replica reports after applying a filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplicaAck {
    /// The replica (`<host>-<pid>-<random>`).
    pub replica: String,
    /// `set_at` of the filter it applied.
    pub set_at: i64,
    /// Offset of the filter's record on the control topic.
    pub control_offset: i64,
    /// Per partition of the products topic, the first offset the filter
    /// applies to (partitions this replica had not consumed yet are absent:
    /// all their records get it). JSON object keys are strings: the
    /// partition numbers in decimal.
    #[schema(schema_with = partition_offsets_schema)]
    pub applies_from: BTreeMap<i32, i64>,
    /// When it applied it, ms since the epoch.
    pub applied_at: i64,
}

/// The OpenAPI schema of [`ReplicaAck::applies_from`]: utoipa derives
/// `propertyNames: {type: integer}` for an integer-keyed map, but JSON
/// keys are always strings (`{"0": 518}`), so the keys are documented as
/// decimal partition numbers and the values as offsets.
fn partition_offsets_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^(0|[1-9][0-9]*)$")),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .into(),
        )))
        .description(Some(
            "Per partition of the products topic (key: the partition number in decimal), the \
             first offset the filter applies to; partitions this replica had not consumed yet \
             are absent (all their records get it).",
        ))
        .build()
}

/// The filter in force, as one follower sees it.
#[derive(Debug, Clone)]
pub struct Current {
    /// The spec.
    pub spec: FilterSpec,
    /// It compiled.
    pub filter: Arc<Filter>,
    /// Offset of its record on the control topic (`None`: nothing set yet).
    pub control_offset: Option<i64>,
    /// Per products partition: the offset after the last record this
    /// replica matched (kept by the filter handler under the same lock, so
    /// an ack names exactly the first record matched with a new filter).
    pub next_offsets: BTreeMap<i32, i64>,
    /// Latest ack per replica.
    pub acks: BTreeMap<String, ReplicaAck>,
    /// Highest control-topic offset applied.
    pub applied_offset: Option<i64>,
}

/// The shared view of the control topic. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlView {
    inner: Arc<Mutex<Current>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Default for ControlView {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Current {
                spec: FilterSpec::empty(0),
                filter: Arc::new(Filter::All),
                control_offset: None,
                next_offsets: BTreeMap::new(),
                acks: BTreeMap::new(),
                applied_offset: None,
            })),
            changed: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

impl ControlView {
    /// Runs `f` on the current state, under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&mut Current) -> T) -> T {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> Current {
        self.with(|c| c.clone())
    }

    /// Waits until the control-topic record at `offset` has been applied,
    /// at most `timeout`. Returns whether it was.
    pub async fn wait_applied(&self, offset: i64, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.with(|c| c.applied_offset.is_some_and(|o| o >= offset)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

/// A name for this process among the replicas.
pub fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &id[..8])
}

/// A control-topic follower: `replica` is this follower's name; `ack`
/// makes it report every filter it applies (filter replicas do, the API
/// does not).
#[derive(Clone)]
pub struct Follower {
    /// The bus.
    pub bus: Bus,
    /// The control topic.
    pub topic: String,
    /// This follower's name.
    pub replica: String,
    /// Report applied filters as `ack/<replica>`.
    pub ack: bool,
    /// The view it updates.
    pub view: ControlView,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("bus", &self.bus.describe())
            .field("topic", &self.topic)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// Creates the control topic (one partition, compacted), joins a group of its own
    /// from the earliest record, writes its `sync` marker, and returns once
    /// it has read everything up to the marker (so the view holds the
    /// filter set before this start). Then follows the topic live in a task
    /// until `shutdown`.
    ///
    /// # Errors
    /// When the topic cannot be created or read, or the marker not written.
    pub async fn start(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Compacted: the filter (key `filter`) and each replica's latest
        // report and marker survive retention; older versions go.
        self.bus
            .create_topic_with(&self.topic, &TopicConfig::compacted(1))
            .await
            .with_context(|| format!("create the control topic {}", self.topic))?;
        let group = format!("shop-control-{}", self.replica);
        let mut consumer = self
            .bus
            .subscribe(
                &group,
                std::slice::from_ref(&self.topic),
                ConsumerOptions {
                    start_from: StartFrom::Earliest,
                    ..ConsumerOptions::default()
                },
            )
            .await
            .with_context(|| format!("follow the control topic {}", self.topic))?;
        let marker_key = format!("sync/{}", self.replica);
        let marker = uuid::Uuid::new_v4().to_string();
        self.bus
            .send(Record::new(
                self.topic.clone(),
                Bytes::from(marker_key.clone().into_bytes()),
                Bytes::from(marker.clone().into_bytes()),
            ))
            .await
            .context("write the control topic's sync marker")?;
        loop {
            let m = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                m = consumer.recv() => m.context("read the control topic")?,
            };
            let done =
                m.key.as_deref() == Some(marker_key.as_bytes()) && m.value == marker.as_bytes();
            self.apply(&m).await;
            if done {
                break;
            }
        }
        tracing::info!(topic = %self.topic, replica = %self.replica,
            filter = ?self.view.snapshot().spec, "control topic read; following it");
        tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    () = shutdown.cancelled() => break,
                    m = consumer.recv() => m,
                };
                match m {
                    Ok(m) => self.apply(&m).await,
                    Err(e) => {
                        tracing::error!(error = %e, topic = %self.topic, "control topic failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
            }
            // Nothing was stored: nothing to commit, the group only leaves.
            if let Err(e) = consumer.close().await {
                tracing::debug!(error = %e, "leave the control group");
            }
        });
        Ok(())
    }

    async fn apply(&self, m: &tributary_bus::Message) {
        let key = m.key.as_deref().unwrap_or_default();
        let mut ack = None;
        if key == FILTER_KEY.as_bytes() {
            let parsed = serde_json::from_slice::<FilterSpec>(&m.value)
                .map_err(|e| e.to_string())
                .and_then(|spec| {
                    Filter::compile(&spec)
                        .map(|f| (spec, f))
                        .map_err(|e| e.to_string())
                });
            match parsed {
                Ok((spec, filter)) => {
                    let from = self.view.with(|c| {
                        c.spec = spec.clone();
                        c.filter = Arc::new(filter);
                        c.control_offset = Some(m.offset);
                        c.next_offsets.clone()
                    });
                    metrics::counter!(crate::metrics::FILTER_CHANGES).increment(1);
                    tracing::info!(replica = %self.replica, offset = m.offset, ?spec, "filter applied");
                    if self.ack {
                        ack = Some(ReplicaAck {
                            replica: self.replica.clone(),
                            set_at: spec.set_at,
                            control_offset: m.offset,
                            applies_from: from,
                            applied_at: super::now_ms(),
                        });
                    }
                }
                Err(e) => tracing::warn!(offset = m.offset, error = %e,
                    "control record is not a valid filter; the filter stays as it was"),
            }
        } else if key.starts_with(b"ack/") {
            match serde_json::from_slice::<ReplicaAck>(&m.value) {
                Ok(a) => self.view.with(|c| {
                    c.acks.insert(a.replica.clone(), a);
                }),
                Err(e) => tracing::warn!(offset = m.offset, error = %e, "control record: bad ack"),
            }
        }
        self.view.with(|c| c.applied_offset = Some(m.offset));
        self.view.changed.notify_waiters();
        if let Some(a) = ack {
            let value = serde_json::to_vec(&a).unwrap_or_default();
            let rec = Record::new(
                self.topic.clone(),
                Bytes::from(format!("ack/{}", self.replica).into_bytes()),
                Bytes::from(value),
            );
            if let Err(e) = self.bus.send(rec).await {
                tracing::warn!(error = %e, "cannot report the applied filter");
            }
        }
    }
}
