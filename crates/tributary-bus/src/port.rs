//! The event-bus port: what every service uses, implemented by the Kafka
//! adapter and the embedded adapter with the same semantics.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::record::{Delivery, Message, Record};
use crate::Result;

/// Where a consumer group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// The oldest retained record.
    #[default]
    Earliest,
    /// Only records published after the group first joined.
    Latest,
}

/// Options of one consumer.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Start position for partitions the group has no committed offset for.
    pub start_from: StartFrom,
    /// How often stored offsets are committed in the background
    /// (they are also committed on [`Consumer::commit`] and [`Consumer::close`]).
    pub commit_interval: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            start_from: StartFrom::Earliest,
            commit_interval: Duration::from_secs(1),
        }
    }
}

/// What happens to a topic's old records (Kafka's `cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanupPolicy {
    /// Retention by time and size: old records are deleted, whole batches
    /// (Kafka: segments) at a time, whether or not a consumer group has read
    /// them (Kafka semantics). A group whose committed offset was deleted
    /// resumes at the earliest remaining offset (`auto.offset.reset=earliest`).
    #[default]
    Delete,
    /// Log compaction: the latest record per key is kept and older records
    /// of that key are removed; offsets of the survivors do not change. A
    /// record with an empty value is a tombstone: it removes its key, and is
    /// itself removed some time after compaction (Kafka's
    /// `delete.retention.ms`). Every record needs a key.
    Compact,
}

/// How to create a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// Partition count (>= 1).
    pub partitions: i32,
    /// What happens to old records.
    pub cleanup: CleanupPolicy,
}

impl TopicConfig {
    /// A topic with `partitions` partitions and time/size retention.
    pub fn new(partitions: i32) -> Self {
        Self {
            partitions,
            cleanup: CleanupPolicy::Delete,
        }
    }

    /// A compacted topic (`cleanup.policy=compact`) with `partitions` partitions.
    pub fn compacted(partitions: i32) -> Self {
        Self {
            partitions,
            cleanup: CleanupPolicy::Compact,
        }
    }
}

/// An event bus: topics with partitions, keyed records, consumer groups.
///
/// Semantics shared by every adapter:
/// - a keyed record goes to partition `murmur2(key) % partitions` (Kafka's
///   default partitioner), so both adapters put a key on the same partition;
/// - records of one partition are delivered in offset order;
/// - a group's committed offsets survive restarts of its consumers and of the bus;
/// - the partitions of a topic are split among the live members of a group.
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Creates `topic` with `partitions` partitions and the default cleanup
    /// policy ([`CleanupPolicy::Delete`]); see [`EventBus::create_topic_with`].
    async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        self.create_topic_with(topic, &TopicConfig::new(partitions))
            .await
    }

    /// Creates `topic` as `config` says (Kafka: `cleanup.policy` set as a
    /// topic config at creation). Idempotent: an existing topic keeps its
    /// partition count; on Kafka it also keeps its configs, while on the
    /// embedded bus (which has no other admin tool) declaring an existing
    /// topic compacted makes it compacted (a plain create never undoes that).
    ///
    /// Fails when the backend is unreachable or the name/count is invalid.
    async fn create_topic_with(&self, topic: &str, config: &TopicConfig) -> Result<()>;

    /// The partition count of `topic`; [`crate::Error::UnknownTopic`] when it does not exist.
    async fn partitions(&self, topic: &str) -> Result<i32>;

    /// Publishes `record` (an empty value is a tombstone on a compacted
    /// topic; Kafka gets it as a null value). The record is enqueued before this returns, so
    /// records sent one after another keep their order per key; the future
    /// resolves once the record is durable (acknowledged by the broker with
    /// `acks=all`, or committed to the embedded store). Dropping the future
    /// does not withdraw the record. Fails when the topic does not exist or
    /// the backend refuses/does not answer within its delivery timeout.
    fn send(&self, record: Record) -> BoxFuture<'static, Result<Delivery>>;

    /// Waits until every record sent so far is durable or failed.
    async fn flush(&self, timeout: Duration) -> Result<()>;

    /// Joins consumer `group` on `topics`. The consumer gets a share of the
    /// partitions and follows rebalances as members join and leave.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[String],
        options: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>>;

    /// Succeeds when the backend answers (readiness).
    async fn ping(&self) -> Result<()>;

    /// A short description for logs, without secrets (e.g. `kafka://a:9092`).
    fn describe(&self) -> String;
}

/// How far a consumer group is behind on one partition ([`Consumer::lag`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Log end offset (Kafka's high watermark): the next offset written.
    pub end_offset: i64,
    /// The offset the group resumes at: stored by this member, else
    /// committed, else where a group without offsets starts (the earliest
    /// retained offset, or the end for [`StartFrom::Latest`]).
    pub position: i64,
}

impl PartitionLag {
    /// Records not yet processed: `end_offset - position`, never negative.
    pub fn lag(&self) -> i64 {
        (self.end_offset - self.position).max(0)
    }
}

/// One member of a consumer group.
///
/// At-least-once contract: call [`Consumer::store`] for a message only after
/// its side effects are durable; stored offsets are committed in the
/// background, on [`Consumer::commit`] and on [`Consumer::close`]. A consumer
/// dropped without `close` (a crash) commits nothing more, and whatever was
/// not committed is delivered again to the group.
#[async_trait::async_trait]
pub trait Consumer: Send {
    /// The next message of any assigned partition. Cancel-safe: dropping the
    /// future loses no message. Fails when the backend fails in a way a retry
    /// cannot fix; transient broker trouble is retried inside.
    async fn recv(&mut self) -> Result<Message>;

    /// Marks `message` as processed: the group resumes after it.
    /// Ignored for a partition this member no longer owns.
    fn store(&mut self, message: &Message) -> Result<()>;

    /// Commits stored offsets now.
    async fn commit(&mut self) -> Result<()>;

    /// The partitions assigned to this member right now.
    fn assignment(&self) -> Vec<(String, i32)>;

    /// The lag of the partitions assigned to this member when called (none
    /// before the first assignment). The future owns what it needs, so it can
    /// run beside [`Consumer::recv`] (the runner refreshes
    /// `tributary_bus_consumer_lag` with it); dropping it is harmless. Fails
    /// when the backend does not answer (Kafka: within a few seconds).
    fn lag(&self) -> BoxFuture<'static, Result<Vec<PartitionLag>>>;

    /// Commits stored offsets and leaves the group.
    async fn close(self: Box<Self>) -> Result<()>;
}
